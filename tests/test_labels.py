"""Label safety: check_label, is_safe_label, safe_label, and exact round trips of safe labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import maskcodec as mc
from strategies import any_strings, examples, safe_labels


@pytest.mark.parametrize(
    "label, pattern",
    [
        ("cat | dog", r"label 'cat \| dog' contains '\|' \(U\+007C, VERTICAL LINE\) at index 4"),
        ("a*b", r"contains '\*' \(U\+002A, ASTERISK\) at index 1"),
        ("dog *3", r"contains '\*' \(U\+002A, ASTERISK\) at index 4"),
        ("two\nlines", r"contains '\\n' \(U\+000A"),
        ("cr\rhere", r"contains '\\r' \(U\+000D"),
        ("para\u2029graph", r"U\+2029, PARAGRAPH SEPARATOR"),
        ("nul\x00", r"control character '\\x00' \(U\+0000"),
        ("a<seg>b", r"contains '<seg>' at index 1"),
        ("x</seg>", r"contains '</seg>' at index 1"),
        (" dog", r"starts with whitespace ' ' \(U\+0020, SPACE\)"),
        ("dog\t", r"ends with whitespace '\\t' \(U\+0009"),
        ("dog\u00a0", r"ends with whitespace '\\xa0' \(U\+00A0, NO-BREAK SPACE\)"),
        ("", "must not be empty"),
    ],
)
def test_check_label_names_the_offending_character(label, pattern):
    assert not mc.is_safe_label(label)
    with pytest.raises(mc.LabelError, match=pattern):
        mc.check_label(label)


@pytest.mark.parametrize("label", ["dog", "white horse", "猫", "a<b", "x\ty", "seg>", "3", "Others", "a  b", "é\u0301"])
def test_safe_labels_pass_unchanged(label):
    assert mc.is_safe_label(label)
    assert mc.check_label(label) is label
    assert mc.safe_label(label) is label


@pytest.mark.parametrize("value", [None, 3, b"dog", ["dog"]])
def test_non_strings(value):
    assert not mc.is_safe_label(value)
    with pytest.raises(TypeError, match="must be a str"):
        mc.check_label(value)


def test_safe_label_type_check():
    with pytest.raises(TypeError, match="expects a str"):
        mc.safe_label(3)


@given(s=any_strings)
@settings(max_examples=examples(500))
def test_safe_label_is_safe_and_idempotent(s):
    out = mc.safe_label(s, fallback="object")
    assert mc.is_safe_label(out)
    assert mc.safe_label(out) == out
    # Nothing structural survives, and only what was there (or the fallback) comes out.
    assert "|" not in out and "*" not in out and "\n" not in out
    if out != "object":
        assert set(out) <= set(s) | {" "}


@given(s=any_strings)
@settings(max_examples=examples(200))
def test_safe_label_without_fallback_raises_only_label_error(s):
    try:
        out = mc.safe_label(s)
    except mc.LabelError as exc:
        assert "nothing of" in str(exc)
    else:
        assert mc.is_safe_label(out)


@pytest.mark.parametrize(
    "text, kwargs, expect",
    [
        ("man in red | left *", {}, "man in red left"),
        ("  the <seg>dog</seg>\n on the left ", {}, "the dog on the left"),
        ("a|b*c", {"replacement": "_"}, "a_b_c"),
        ("<se<seg>g>", {}, "<se g>"),
        ("|||", {"fallback": "thing"}, "thing"),
    ],
)
def test_safe_label_examples(text, kwargs, expect):
    assert mc.safe_label(text, **kwargs) == expect


def test_safe_label_errors():
    with pytest.raises(mc.LabelError, match="nothing of '| \\* ' is left"):
        mc.safe_label("| * ")
    with pytest.raises(mc.LabelError, match="replacement '\\|' is not itself safe"):
        mc.safe_label("a b", replacement="|")
    with pytest.raises(mc.LabelError):
        mc.safe_label("|", fallback="also|bad")


@given(label=safe_labels, fmt=st.sampled_from(["rrle", "irle", "full"]))
@settings(max_examples=examples(300))
def test_every_safe_label_round_trips_exactly(label, fmt):
    if label == "others":
        return
    m = np.array([[0, 1], [1, 1]], dtype=bool)
    text = mc.encode_mask(m, label, grid=2, format=fmt)
    g = mc.from_text(text, grid=2, format=fmt)
    assert g.labels == ("others", label)
    assert g.ids.tolist() == [[0, 1], [1, 1]]


@given(raw=any_strings)
@settings(max_examples=examples(200))
def test_raw_referring_expressions_encode_after_safe_label(raw):
    label = mc.safe_label(raw, fallback="object")
    if label == "others":
        return
    text = mc.encode_mask(np.ones((3, 3), dtype=bool), label, grid=3)
    assert mc.from_text(text).labels == ("others", label)
