"""The parser in its three modes: round trips, robustness, the Text4Seg reference, repairs."""

from __future__ import annotations

import re
import tracemalloc

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

import maskcodec as mc
import reference as ref
from maskcodec import _parser
from strategies import arbitrary_text, examples, label_grids, mutated, valid_then_mutated

FORMATS = ["rrle", "irle", "full"]


def _same_grid(a: mc.LabelGrid, b: mc.LabelGrid) -> bool:
    """Same shape, same ids and same label names (not only the same meaning)."""
    return a.labels == b.labels and a.ids.shape == b.ids.shape and np.array_equal(a.ids, b.ids)


# ============================================================================ strict round trips


@given(g=label_grids(max_rows=14, max_cols=14), fmt=st.sampled_from(FORMATS), envelope=st.booleans())
@settings(max_examples=examples(300))
def test_strict_round_trip(g, fmt, envelope):
    text = mc.to_text(g, format=fmt, envelope=envelope)
    back = mc.parse(text, grid=g.shape, format=fmt, envelope=envelope, background=g.background)
    assert back.grid == g
    assert _same_grid(back.grid, g.canonical())
    assert back.repairs == () and back.complete and back.found
    assert (back.start, back.end) == (0, len(text))


@given(g=label_grids(max_rows=14, max_cols=14), envelope=st.booleans())
@settings(max_examples=examples(200))
def test_strict_rrle_infers_the_grid(g, envelope):
    text = mc.to_text(g, envelope=envelope)
    back = mc.from_text(text, envelope=envelope, background=g.background)
    assert _same_grid(back, g.canonical())


@given(g=label_grids(max_rows=9, max_cols=9), fmt=st.sampled_from(["irle", "full"]))
@settings(max_examples=examples(100))
def test_strict_flat_formats_infer_square_grids(g, fmt):
    text = mc.to_text(g, format=fmt)
    if g.rows == g.cols:
        assert _same_grid(mc.from_text(text, format=fmt, background=g.background), g.canonical())
    elif int(round((g.rows * g.cols) ** 0.5)) ** 2 != g.rows * g.cols:
        with pytest.raises(mc.ParseError, match="not a square"):
            mc.from_text(text, format=fmt, background=g.background)


@given(g=label_grids(max_rows=8, max_cols=8), prefix=st.text(max_size=20), suffix=st.text(max_size=20))
@settings(max_examples=examples(100))
def test_strict_finds_the_block_in_free_text(g, prefix, suffix):
    assume("<seg>" not in prefix)
    text = mc.to_text(g)
    res = mc.parse(prefix + "Sure, it is here:\n" + text + suffix, background=g.background)
    assert _same_grid(res.grid, g.canonical())
    assert res.start == len(prefix) + len("Sure, it is here:\n")
    assert res.end == res.start + len(text)


# ============================================================================ robustness


_vocabularies = st.none() | st.just(["dog", "x", "others dog"])


@given(text=arbitrary_text, fmt=st.sampled_from(FORMATS), grid=st.none() | st.integers(1, 6), labels=_vocabularies)
@settings(max_examples=examples(400))
@example(text="<seg>others *99999999999\n</seg>", fmt="rrle", grid=None, labels=None)
@example(text="<seg>" + "others *1| " * 5000, fmt="rrle", grid=None, labels=None)
def test_strict_raises_only_parse_errors(text, fmt, grid, labels):
    try:
        res = mc.parse(text, grid=grid, format=fmt, labels=labels)
    except mc.ParseError as exc:
        assert 1 <= exc.line and 1 <= exc.column and 0 <= exc.pos <= len(text)
        assert str(exc).startswith(f"line {exc.line}, column {exc.column}: ")
    else:
        assert res.grid.rows >= 1 and res.grid.cols >= 1


@given(data=st.data(), fmt=st.sampled_from(FORMATS))
@settings(max_examples=examples(300))
def test_strict_on_mutated_text_raises_only_parse_errors(data, fmt):
    g, text, bad = data.draw(valid_then_mutated(fmt))
    try:
        res = mc.parse(bad, grid=g.shape, format=fmt)
    except mc.ParseError:
        return
    # Whatever strict accepts must be the grammar: writing it again gives the very same body.
    body = bad[res.start : res.end]
    assert mc.to_text(res.grid, format=fmt) == body


@given(
    text=arbitrary_text,
    fmt=st.sampled_from(FORMATS),
    rows=st.integers(1, 20),
    cols=st.integers(1, 20),
    labels=_vocabularies,
    unknown=st.sampled_from(["background", "keep"]),
)
@settings(max_examples=examples(400))
def test_repair_never_raises_and_keeps_the_shape(text, fmt, rows, cols, labels, unknown):
    res = mc.parse(text, grid=(rows, cols), mode="repair", format=fmt, labels=labels, unknown=unknown)
    assert res.grid.shape == (rows, cols)
    assert all(isinstance(r, mc.Repair) and r.line >= 1 and r.column >= 1 for r in res.repairs)
    for lab in res.grid.labels:
        mc.check_label(lab)


@given(data=st.data(), fmt=st.sampled_from(FORMATS), envelope=st.booleans())
@settings(max_examples=examples(300))
def test_repair_on_mutated_text(data, fmt, envelope):
    g, text, bad = data.draw(valid_then_mutated(fmt))
    if not envelope:
        bad = bad.replace("<seg>", "").replace("</seg>", "")
    res = mc.parse(bad, grid=g.shape, mode="repair", format=fmt, envelope=envelope)
    assert res.grid.shape == g.shape
    # Without a grid it still returns some grid, never raising.
    res2 = mc.parse(bad, mode="repair", format=fmt, envelope=envelope)
    assert 1 <= res2.grid.rows <= mc.MAX_GRID_SIDE and 1 <= res2.grid.cols <= mc.MAX_GRID_SIDE
    mask = mc.decode_mask(bad, size=(7, 9), grid=g.shape, format=fmt, envelope=envelope)
    assert mask.shape == (7, 9) and mask.dtype == bool


@given(g=label_grids(max_rows=10, max_cols=10, background="others"), fmt=st.sampled_from(FORMATS))
@settings(max_examples=examples(150))
def test_repair_of_valid_text_changes_nothing(g, fmt):
    text = mc.to_text(g, format=fmt)
    res = mc.parse(text, grid=g.shape, mode="repair", format=fmt)
    folded = [lab for lab in g.labels[1:] if lab.casefold() == "others" and lab in g.canonical().labels]
    if not folded:
        assert res.repairs == ()
        assert _same_grid(res.grid, g.canonical())
    else:
        # Repair reads a background in another case as the background, and says so.
        assert {r.kind for r in res.repairs} == {"mapped_label"}
        assert res.grid == g.relabel({lab: "others" for lab in folded})


@given(text=arbitrary_text, fmt=st.sampled_from(FORMATS))
@settings(max_examples=examples(200))
def test_repair_without_grid_never_raises(text, fmt):
    res = mc.parse(text, mode="repair", format=fmt)
    assert 1 <= res.grid.rows <= mc.MAX_GRID_SIDE and 1 <= res.grid.cols <= mc.MAX_GRID_SIDE


# ============================================================================ text4seg mode


def _expandable(text: str) -> bool:
    """True when the plain reference can expand every count of ``text`` without running out of memory."""
    return not re.search(r"\d{6,}", text)


def _check_text4seg(text: str, rows: int, cols: int, fmt: str) -> None:
    ids, names = ref.text4seg_decode(text, rows, cols, fmt, cap=rows * cols)
    if _expandable(text):  # the cap is only a memory bound: it changes nothing
        assert (ids, names) == ref.text4seg_decode(text, rows, cols, fmt)
    res = mc.parse(text, grid=(rows, cols), mode="text4seg", format=fmt)
    assert res.grid.shape == (rows, cols)
    np.testing.assert_array_equal(res.grid.ids, np.asarray(ids), err_msg=repr(text))
    if names is None:
        # The reference fails and falls back to all background; the result says why.
        assert not res.grid.ids.any() and not res.complete
        assert [r.kind for r in res.repairs] in (["no_block"], ["reference_error"])
        assert res.found == ("<seg>" in text)
    else:
        # Every cell carries the same label text; labels seen only past the cut may be left out.
        assert res.grid.labels == tuple(names[: len(res.grid.labels)])
    # And the binary mask the evaluation scripts score.
    np.testing.assert_array_equal(
        mc.decode_mask(text, size=(rows, cols), grid=(rows, cols), mode="text4seg", format=fmt),
        np.asarray(ids) > 0,
    )


@given(data=st.data(), fmt=st.sampled_from(FORMATS))
@settings(max_examples=examples(300))
def test_text4seg_mode_matches_reference(data, fmt):
    g, text, bad = data.draw(valid_then_mutated(fmt))
    _check_text4seg(text, g.rows, g.cols, fmt)
    _check_text4seg(bad, g.rows, g.cols, fmt)


@given(text=arbitrary_text, fmt=st.sampled_from(FORMATS), rows=st.integers(1, 6), cols=st.integers(1, 6))
@settings(max_examples=examples(300))
@example(text="<seg>a|b *3| others *2\n</seg>", fmt="rrle", rows=2, cols=3)
@example(text="<seg>dog *-1| cat *+2| x * 3| y *1_0\n</seg>", fmt="rrle", rows=2, cols=3)
@example(text="<seg>dog *2\ncat *2\n</seg>", fmt="rrle", rows=2, cols=2)
@example(text="<seg>dog *2\n cat *2\n</seg>", fmt="irle", rows=2, cols=2)
@example(text="<seg>dog *3\n</seg>", fmt="rrle", rows=2, cols=2)
@example(text="<seg>others *0\n</seg>", fmt="rrle", rows=1, cols=2)
@example(text="<seg>cat| others\n</seg>", fmt="full", rows=1, cols=2)
def test_text4seg_mode_matches_reference_on_random_text(text, fmt, rows, cols):
    _check_text4seg(text, rows, cols, fmt)


def _parse_text4seg_small(text):
    """Parse at 4x4 in text4seg mode, checking that it allocates less than 20 MB."""
    tracemalloc.start()
    try:
        res = mc.parse(text, grid=4, mode="text4seg")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    return res


@pytest.mark.parametrize(
    "text, why",
    [
        # [label] * int(count) needs 8 bytes per cell: > 2**38 bytes is the reference's MemoryError.
        ("<seg>others *99999999999\n</seg>", "MemoryError"),
        ("<seg>dog *99999999999\n</seg>", "MemoryError"),
        ("<seg>others *3| dog *" + str(2**60) + "\n</seg>", "MemoryError"),
        ("<seg>dog *" + str(2**34) + "| others *" + str(2**34 + 1) + "\n</seg>", "MemoryError"),  # in total
        # Beyond a C ssize_t: OverflowError, also for a negative count.
        ("<seg>cat *2| dog *" + str(2**63) + "\n</seg>", "OverflowError"),
        ("<seg>cat *2| dog *" + str(-(2**63) - 1) + "\n</seg>", "OverflowError"),
        ("<seg>cat *2| dog *" + "9" * 200 + "\n</seg>", "OverflowError"),
    ],
)
def test_text4seg_counts_the_reference_cannot_allocate_give_background(text, why):
    # The reference's bare `except` turns these errors into an all-background mask; maskcodec
    # reaches the same result without allocating anything from the count.
    res = _parse_text4seg_small(text)
    assert res.grid.ids.tolist() == [[0] * 4] * 4 and not res.complete and res.found
    assert [r.kind for r in res.repairs] == ["reference_error"] and why in res.repairs[0].message
    assert ref.text4seg_decode(text, 4, 4, cap=16) == ([[0] * 4] * 4, None)


@pytest.mark.parametrize(
    "text, expect",
    [
        # Counts the reference can allocate (<= 2**35 cells in all) are expanded and then cut.
        ("<seg>others *3| dog *" + str(2**35 - 3) + "\n</seg>", [[0, 0, 0, 1]] + [[1] * 4] * 3),
        ("<seg>dog *99999| others *99999\n</seg>", [[1] * 4] * 4),
        ("<seg>others *3| dog *-5| dog *99\n</seg>", [[0, 0, 0, 1]] + [[1] * 4] * 3),
    ],
)
def test_text4seg_large_counts_within_memory_are_cut(text, expect):
    res = _parse_text4seg_small(text)
    assert res.grid.ids.tolist() == expect and res.complete and not res.repairs


def test_text4seg_strips_the_generated_text_like_the_scripts():
    # `outputs = ....strip()` before splitting: a trailing "\n " (a bare SentencePiece "▁" after
    # a token-limit cut) no longer leaves an empty row that fails to split.
    text = "<seg>others *2\n dog *2\n "
    res = mc.parse(text, grid=2, mode="text4seg")
    assert res.grid.ids.tolist() == [[0, 0], [1, 1]] and res.complete and not res.repairs
    assert ref.text4seg_decode(text, 2, 2)[0] == [[0, 0], [1, 1]]
    # Leading whitespace and an answer without envelope strip the same way.
    assert mc.parse(" \t" + text, grid=2, mode="text4seg").grid.ids.tolist() == [[0, 0], [1, 1]]
    assert mc.parse("others *2\n dog *2\n ", grid=2, mode="text4seg", envelope=False).grid.ids.tolist() == [
        [0, 0],
        [1, 1],
    ]
    # Only the ends of the whole text are stripped: inside, "\n" must still be followed by a space.
    bad = mc.parse("<seg>others *2\n dog *2\n \n</seg>", grid=2, mode="text4seg")
    assert not bad.grid.ids.any() and [r.kind for r in bad.repairs] == ["reference_error"]


@pytest.mark.parametrize(
    "table, text, ids, labels",
    [
        # The example: the class file [dog, cat, others, sky]; "others" is id 2, not 0.
        (
            ["dog", "cat", "others", "sky"],
            "<seg>others *1| dog *1\n cat *1| sky *1\n</seg>",
            [[2, 0], [1, 3]],
            ("dog", "cat", "others", "sky"),
        ),
        # A repeated name maps to its last index; the earlier index is never produced.
        (
            ["others", "dog", "cat", "dog"],
            "<seg>dog *1| cat *1\n others *1| bird *1\n</seg>",
            [[3, 2], [0, 0]],
            ("others", "dog#1", "cat", "dog"),
        ),
    ],
)
def test_text4seg_class_table_ids_are_the_class_file_indices(table, text, ids, labels):
    res = mc.parse(text, grid=2, mode="text4seg", class_table=table)
    assert res.grid.ids.tolist() == ids and res.grid.labels == labels
    assert ref.text4seg_decode(text, 2, 2, classes=table)[0] == ids
    mask = mc.decode_mask(text, size=(2, 2), grid=2, mode="text4seg", class_table=table)
    assert mask.tolist() == (np.asarray(ids) != 0).tolist()


def test_text4seg_labels_option_renumbers_compactly():
    # labels= keeps the background at 0 and numbers the table's names by their last index, compactly.
    res = mc.parse("<seg>dog *1| cat *1\n others *2\n</seg>", grid=2, mode="text4seg",
                   labels=["others", "dog", "cat", "dog"])
    assert res.grid.labels == ("others", "cat", "dog") and res.grid.ids.tolist() == [[2, 1], [0, 0]]


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"mode": "repair", "class_table": ["others"]}, mc.InputError, "mode='text4seg'"),
        ({"mode": "text4seg", "class_table": []}, mc.InputError, "class_table is empty"),
        ({"mode": "text4seg", "class_table": ["a"], "labels": ["a"]}, mc.InputError, "either labels or class_table"),
        ({"mode": "text4seg", "class_table": "others"}, TypeError, "sequence of class names"),
        ({"mode": "text4seg", "class_table": ["others", 3]}, TypeError, "entries must be str"),
    ],
)
def test_class_table_errors(kwargs, err, match):
    with pytest.raises(err, match=match):
        mc.parse("<seg>others *1\n</seg>", grid=1, **kwargs)
    if kwargs["mode"] == "repair":
        with pytest.raises(err, match=match):
            mc.parse_all("<seg>others *1\n</seg>", grid=1, **kwargs)


@given(data=st.data(), fmt=st.sampled_from(FORMATS))
@settings(max_examples=examples(100))
def test_text4seg_class_table_matches_the_semantic_script(data, fmt):
    g, text, bad = data.draw(valid_then_mutated(fmt))
    pool = sorted(set(g.labels) | {"sky", "road", "Others"})
    table = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=8))  # repeats allowed
    for t in (text, bad):
        ids, names = ref.text4seg_decode(t, g.rows, g.cols, fmt, classes=table, cap=g.rows * g.cols)
        res = mc.parse(t, grid=g.shape, mode="text4seg", format=fmt, class_table=table)
        np.testing.assert_array_equal(res.grid.ids, np.asarray(ids), err_msg=repr(t))
        assert len(res.grid.labels) == len(table)


@given(data=st.data(), fmt=st.sampled_from(FORMATS))
@settings(max_examples=examples(200))
def test_text4seg_mode_with_a_class_table_matches_the_semantic_script(data, fmt):
    g, text, bad = data.draw(valid_then_mutated(fmt))
    # The class table: some of the grid's labels, plus names it never uses, in random order.
    pool = sorted(set(g.labels[1:]) | {"sky", "road", "Others"})
    classes = data.draw(st.lists(st.sampled_from(pool), unique=True))
    for t in (text, bad):
        ids, names = ref.text4seg_decode(t, g.rows, g.cols, fmt, classes=["others", *classes], cap=g.rows * g.cols)
        res = mc.parse(t, grid=g.shape, mode="text4seg", format=fmt, labels=classes)
        np.testing.assert_array_equal(res.grid.ids, np.asarray(ids), err_msg=repr(t))
        if names is not None:
            assert res.grid.labels == tuple(names)


@given(data=st.data(), fmt=st.sampled_from(FORMATS))
@settings(max_examples=examples(40))
def test_text4seg_huge_counts_in_mutated_text_stay_small(data, fmt):
    g, text, _ = data.draw(valid_then_mutated(fmt))
    # Every count of the answer becomes 99999999999 (> 100 GB of cells in total once expanded).
    huge = re.sub(r"\*\d+", "*99999999999", text)
    bad = data.draw(mutated(huge))
    tracemalloc.start()
    try:
        for t in (huge, bad):
            mc.parse(t, grid=g.shape, mode="text4seg", format=fmt)
            mc.parse(t, grid=g.shape, mode="repair", format=fmt)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    _check_text4seg(huge, g.rows, g.cols, fmt)
    _check_text4seg(bad, g.rows, g.cols, fmt)


def test_text4seg_quirks_are_kept():
    # A short row shifts every later row (row sums are never checked).
    res = mc.parse("<seg>others *1| dog *2\n others *3\n</seg>", grid=(2, 4), mode="text4seg")
    assert res.grid.ids.tolist() == [[0, 1, 1, 0], [0, 0, 0, 0]]
    # "\n" without the space: the whole answer becomes background.
    res = mc.parse("<seg>others *4\nothers *1| dog *3\n</seg>", grid=(2, 4), mode="text4seg")
    assert not res.grid.ids.any() and res.found and not res.complete
    assert [r.kind for r in res.repairs] == ["reference_error"]
    assert "'others *4\\nothers *1' does not split into label and count" in res.repairs[0].message
    # A label containing "|" splits into several cells.
    res = mc.parse("<seg>a|b *2\n</seg>", grid=(1, 4), mode="text4seg")
    assert res.grid.ids.tolist() == [[0, 1, 0, 1]] and res.grid.labels == ("a", "b")


# ============================================================================ fast path


def _fast_vs_strict(text: str, rows, cols):
    start = text.find("<seg>")
    if start < 0:
        return
    start += len("<seg>")
    end = text.find("</seg>", start)
    if end < 0:
        return
    fast = _parser._fast_rrle(text, start, end, rows, cols, None, "others")
    if fast is None:
        return
    pos, slow = _parser._strict(text, start, end, rows, cols, "rrle", None, "others", False)
    assert pos == end
    assert _same_grid(fast, slow), text


@given(data=st.data(), given_grid=st.booleans())
@settings(max_examples=examples(400))
def test_fast_rrle_agrees_with_strict_parser(data, given_grid):
    g, text, bad = data.draw(valid_then_mutated("rrle", max_side=10))
    rows, cols = g.shape if given_grid else (None, None)
    if all(re.fullmatch(r"[\w ,.'-]+", lab, re.ASCII) for lab in g.labels):
        # Canonical text with plain labels always takes the fast path.
        assert _parser._fast_rrle(text, 5, len(text) - 6, rows, cols, None, "others") is not None
    _fast_vs_strict(text, rows, cols)
    _fast_vs_strict(bad, rows, cols)


@given(text=arbitrary_text, rows=st.none() | st.integers(1, 5))
@settings(max_examples=examples(300))
def test_fast_rrle_agrees_on_random_text(text, rows):
    _fast_vs_strict(text, rows, rows)


# ============================================================================ golden files

DATA = __import__("pathlib").Path(__file__).parent / "data"

# Every invalid text, the options it is parsed with, and the exact error: line, column, message.
INVALID = {
    'short_row': ({}, 2, 19, 'row 2 has 3 cells, expected 4'),
    'long_row': ({}, 2, 29, 'count 2 exceeds the 1 cell left'),
    'newline_without_space': ({}, 2, 1, "expected ' ' (next row) or '</seg>', found 'o'"),
    'truncated_answer': ({}, 2, 24, "expected ' *' and a count after 'oth', found end of text"),
    'huge_count': ({}, 1, 14, 'count 99999999999 exceeds the 1024 cells left'),
    'huge_count_with_grid': ({'grid': 16}, 1, 14, 'count 99999999999 exceeds the 16 cells left'),
    'label_with_count_mark': ({}, 1, 22, "expected a count after '*', found 'f'"),
    'pipe_without_space': ({}, 1, 16, "expected '| ' between runs, found '|' then 'd'"),
    'pipe_in_label': ({}, 1, 20, "expected ' *' and a count after 'cat', found '|'"),
    'leading_zero_count': ({}, 1, 14, "count '04' has a leading zero"),
    'zero_count': ({}, 1, 14, "count '0' is zero; a run has at least 1 cell"),
    'empty_label': ({}, 1, 6, "empty label before ' *'"),
    'empty_label_after_separator': ({}, 1, 17, "empty label before ' *'"),
    'missing_count': ({}, 1, 14, "expected a count after '*', found '\\n'"),
    'missing_space_before_star': ({}, 1, 12, "expected a space before '*'"),
    'missing_seg_open': ({}, 1, 1, "no '<seg>' in the text"),
    'missing_seg_close': ({}, 3, 1, "expected ' ' (next row) or '</seg>', found end of text"),
    'missing_final_newline': ({}, 2, 11, "expected a newline, found '</seg>'"),
    'crlf_line_ends': ({}, 1, 15, "expected a newline, found '\\r'"),
    'too_few_rows': ({'grid': 4}, 3, 1, 'expected 4 rows, got 2'),
    'too_many_rows': ({'grid': 2}, 3, 2, 'more than 2 rows'),
    'unknown_label': ({'labels': ['dog', 'cat']}, 1, 17, "unknown label 'dgo'; expected one of 'cat', 'dog', 'others'"),
    'label_with_leading_space': ({}, 1, 17, "label ' dog' starts with whitespace ' ' (U+0020, SPACE)"),
    'label_with_seg_tag': ({}, 1, 18, "expected ' *' and a count after 'a', found '<seg>'"),
    'irle_too_few_cells': ({'grid': 3, 'format': 'irle'}, 1, 23, 'expected 9 cells, got 8'),
    'irle_too_many_cells': ({'grid': 3, 'format': 'irle'}, 1, 22, 'count 5 exceeds the 4 cells left'),
    'irle_not_square_without_grid': ({'format': 'irle'}, 1, 23, 'cannot infer the grid of 6 cells (not a square); pass grid=(rows, cols)'),
    'full_too_few_cells': ({'grid': 2, 'format': 'full'}, 1, 25, 'expected 4 cells, got 3'),
    'full_too_many_cells': ({'grid': 2, 'format': 'full'}, 1, 32, 'more than 4 cells'),
    'full_pipe_without_space': ({'grid': 2, 'format': 'full'}, 1, 13, "expected '| ' between labels, found '|' then 'd'"),
    'full_star_in_label': ({'grid': 2, 'format': 'full'}, 1, 18, "found '*' inside a label"),
    'no_envelope_trailing_text': ({'envelope': False}, 3, 1, "expected ' ' (next row) or end of text, found 't'"),
    'tab_before_count': ({}, 1, 13, "expected a space before '*'"),
    'empty_body': ({}, 1, 6, "expected ' *' and a count after '', found '</seg>'"),
    'space_row_separator_only': ({}, 1, 15, "expected a newline, found ' '"),}


def _read(path) -> str:
    with open(path, encoding="utf-8", newline="") as fh:  # keep "\r\n" as written
        return fh.read()


def test_invalid_corpus_is_complete():
    assert sorted(p.stem for p in (DATA / "invalid").glob("*.txt")) == sorted(INVALID)


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_texts_raise_pinned_errors(name):
    options, line, column, reason = INVALID[name]
    text = _read(DATA / "invalid" / f"{name}.txt")
    with pytest.raises(mc.ParseError) as info:
        mc.parse(text, **options)
    err = info.value
    assert (err.line, err.column, err.reason) == (line, column, reason)
    assert str(err) == f"line {line}, column {column}: {reason}"
    assert _parser._line_col(text, err.pos) == (line, column)
    # The same text never raises in repair mode, and keeps a requested shape.
    res = mc.parse(text, **{**options, "mode": "repair", "labels": options.get("labels")})
    if "grid" in options:
        rows, cols = (options["grid"],) * 2 if isinstance(options["grid"], int) else options["grid"]
        assert res.grid.shape == (rows, cols)
    assert res.repairs, "repair mode accepted an invalid text without a record"


VALID = sorted(p.stem for p in (DATA / "valid").glob("*.txt"))


def test_valid_corpus_has_expectations():
    assert VALID and sorted(p.stem for p in (DATA / "valid").glob("*.json")) == VALID


@pytest.mark.parametrize("name", VALID)
def test_valid_texts_parse_to_their_grids(name):
    import json

    text = _read(DATA / "valid" / f"{name}.txt")
    spec = json.loads((DATA / "valid" / f"{name}.json").read_text(encoding="utf-8"))
    options = dict(spec["options"])
    if isinstance(options.get("grid"), list):
        options["grid"] = tuple(options["grid"])
    expect = mc.LabelGrid(spec["ids"], spec["labels"])
    res = mc.parse(text, **options)
    assert _same_grid(res.grid, expect) and res.repairs == ()
    # Repair mode reads the same grid; it only notes an inferred grid, and reads a label that
    # differs from the background only by case as the background.
    res = mc.parse(text, mode="repair", **options)
    folded = {lab: expect.background for lab in expect.labels[1:] if lab.casefold() == expect.background}
    assert res.grid == (expect.relabel(folded) if folded else expect)
    assert {r.kind for r in res.repairs} <= {"inferred_grid", "mapped_label"}
    assert any(r.kind == "mapped_label" for r in res.repairs) == bool(folded)
    # Without the options that only help (a grid, a vocabulary), strict still agrees when the grid is inferable.
    if "grid" not in options:
        assert _same_grid(mc.from_text(text, **{k: v for k, v in options.items() if k != "labels"}), expect)
    # Written back, the block is byte-identical.
    res = mc.parse(text, **options)
    assert mc.to_text(res.grid, format=options.get("format", "rrle"), envelope=options.get("envelope", True)) == (
        text[res.start : res.end]
    )


# ============================================================================ repair records

# (text, options, grid ids expected, [(kind, line, column), ...] in order)
REPAIR_CASES = {
    "no_block": ("no answer here", {"grid": 2}, [[0, 0], [0, 0]], [("no_block", 1, 1)]),
    "bad_count": (
        "<seg>others *02\n dog *1| others *01\n</seg>",
        {"grid": 2},
        [[0, 0], [1, 0]],
        [("bad_count", 1, 6), ("bad_count", 2, 9)],
    ),
    "extra_blank": (
        "<seg>others *2\n  dog *1|  others *1\n</seg>",
        {"grid": 2},
        [[0, 0], [1, 0]],
        [("bad_separator", 2, 1), ("bad_separator", 2, 9)],
    ),
    "unterminated": (
        "<seg>others *2\n dog *2\n oth",
        {"grid": 2},
        [[0, 0], [1, 1]],
        [("unterminated", 3, 5), ("incomplete_row", 3, 1)],
    ),
    "bad_run": (
        "<seg>others *2\n dog| others *1\n</seg>",
        {"grid": 2},
        [[0, 0], [0, 0]],
        [("bad_run", 2, 1), ("short_row", 2, 1)],
    ),
    "pipe_without_space": ("<seg>others *1|dog *1\n others *2\n</seg>", {"grid": 2}, [[0, 1], [0, 0]], [("bad_separator", 1, 15)]),
    "newline_without_space": ("<seg>others *2\nothers *2\n</seg>", {"grid": 2}, [[0, 0], [0, 0]], [("bad_separator", 2, 1)]),
    "missing_run_separator": ("<seg>others *1 dog *1\n others *2\n</seg>", {"grid": 2}, [[0, 1], [0, 0]], [("bad_separator", 1, 15)]),
    "huge_count": ("<seg>others *99999999999\n dog *2\n</seg>", {"grid": 2}, [[0, 0], [1, 1]], [("clamped_count", 1, 6)]),
    "short_row": (
        "<seg>others *1| dog *1\n others *1\n</seg>",
        {"grid": (2, 3)},
        [[0, 1, 1], [0, 0, 0]],
        [("short_row", 1, 6), ("short_row", 2, 1)],
    ),
    "long_row": ("<seg>others *2| dog *2\n others *3\n</seg>", {"grid": (2, 3)}, [[0, 0, 1], [0, 0, 0]], [("long_row", 1, 16)]),
    "empty_row": ("<seg>dog *3\n ???\n</seg>", {"grid": (2, 3)}, [[1, 1, 1], [0, 0, 0]], [("bad_run", 2, 1), ("empty_row", 2, 1)]),
    "missing_rows": ("<seg>dog *3\n</seg>", {"grid": (2, 3)}, [[1, 1, 1], [0, 0, 0]], [("missing_rows", 2, 1)]),
    "extra_rows": ("<seg>others *3\n others *3\n dog *3\n</seg>", {"grid": (2, 3)}, [[0, 0, 0], [0, 0, 0]], [("extra_rows", 3, 1)]),
    "zero_count": ("<seg>others *0| dog *3\n others *3\n</seg>", {"grid": (2, 3)}, [[1, 1, 1], [0, 0, 0]], [("bad_run", 1, 6)]),
    "unknown_label": (
        "<seg>others *1| dgo *2\n</seg>",
        {"grid": (1, 3), "labels": ["dog"]},
        [[0, 0, 0]],
        [("unknown_label", 1, 16)],
    ),
    "mapped_label": (
        "<seg>others *1| White  Horse *2\n</seg>",
        {"grid": (1, 3), "labels": ["white horse"]},
        [[0, 1, 1]],
        [("mapped_label", 1, 16)],
    ),
    "background_in_another_case": ("<seg>OTHERS *1| dog *2\n</seg>", {"grid": (1, 3)}, [[0, 1, 1]], [("mapped_label", 1, 6)]),
    "unsafe_label": ("<seg>others *1| <seg>dog *2\n</seg>", {"grid": (1, 3)}, [[0, 1, 1]], [("unsafe_label", 1, 16)]),
    "inferred_grid": (
        "<seg>others *1| dog *2\n others *3\n others *1\n</seg>",
        {},
        [[0, 1, 1], [0, 0, 0], [0, 0, 0]],
        [("inferred_grid", 1, 6), ("short_row", 3, 1)],
    ),
    "irle_short_body": ("<seg>others *3| dog *2\n</seg>", {"grid": (2, 3), "format": "irle"}, [[0, 0, 0], [1, 1, 1]], [("short_body", 2, 1)]),
    "irle_long_body": ("<seg>others *3| dog *5\n</seg>", {"grid": (2, 3), "format": "irle"}, [[0, 0, 0], [1, 1, 1]], [("long_body", 1, 16)]),
    "full_long_body": (
        "<seg>others| dog| dog\n</seg>",
        {"grid": (1, 2), "format": "full"},
        [[0, 1]],
        [("long_body", 2, 1)],
    ),
    "full_pipe_without_space": (
        "<seg>others|dog\n</seg>",
        {"grid": (1, 2), "format": "full"},
        [[0, 1]],
        [("bad_separator", 1, 13)],
    ),
    "crlf": (
        "<seg>others *3\r\n others *3\r\n others *1\r\n</seg>",
        {"grid": (3, 3)},
        [[0, 0, 0], [0, 0, 0], [0, 0, 0]],
        [("bad_separator", 1, 15), ("short_row", 3, 1)],
    ),
    "truncated_inside_a_row": (
        "<seg>others *3\n dog *2| oth",
        {"grid": (2, 3)},
        [[0, 0, 0], [0, 0, 0]],
        [("unterminated", 2, 13), ("incomplete_row", 2, 1), ("missing_rows", 2, 13)],
    ),
}


@pytest.mark.parametrize("name", sorted(REPAIR_CASES))
def test_repair_records(name):
    text, options, ids, expected = REPAIR_CASES[name]
    res = mc.parse(text, mode="repair", **options)
    assert res.grid.ids.tolist() == ids
    assert [(r.kind, r.line, r.column) for r in res.repairs] == expected
    assert all(r.message for r in res.repairs)
    assert res.repaired


def test_every_documented_repair_kind_is_covered():
    documented = set(re.findall(r"``(\w+)``", mc.Repair.__doc__.split("kind")[1].split(";")[0]))
    covered = {kind for _, _, _, rec in REPAIR_CASES.values() for kind, _, _ in rec}
    assert len(documented) >= 15 and documented <= covered


def test_truncated_answer_keeps_complete_rows():
    g = mc.LabelGrid(np.eye(6, dtype=int), ["others", "cat"])
    text = mc.to_text(g)
    cut = text[: text.index("\n", text.index("\n", text.index("\n") + 1) + 1) + 8]  # 3 rows and a bit
    res = mc.parse(cut, grid=6, mode="repair")
    assert not res.complete and res.found
    np.testing.assert_array_equal(res.grid.ids[:3], g.ids[:3])
    assert not res.grid.ids[3:].any()


def test_unknown_keep_and_vocab_matching():
    text = "<seg>others *1| dgo *1| Dog *1\n</seg>"
    res = mc.parse(text, grid=(1, 3), mode="repair", labels=["dog"], unknown="keep")
    assert res.grid.labels == ("others", "dgo", "dog")
    assert [r.kind for r in res.repairs] == ["unknown_label", "mapped_label"]
    with pytest.raises(mc.InputError, match="unknown must be 'background' or 'keep'"):
        mc.parse(text, mode="repair", unknown="drop")


# ============================================================================ several blocks, decode_mask


def test_parse_all_reads_every_block():
    a = mc.LabelGrid([[0, 1], [1, 1]], ["others", "cat"])
    b = mc.LabelGrid([[1, 0, 0]], ["others", "dog"])
    text = f"First: {a.to_text()}\nSecond: {b.to_text()} and a cut one: <seg>dog *1| oth"
    repaired = mc.parse_all(text, mode="repair")
    assert [r.grid for r in repaired[:2]] == [a, b]
    assert [r.complete for r in repaired] == [True, True, False]
    assert text[repaired[0].start : repaired[0].end] == a.to_text()
    assert text[repaired[1].start : repaired[1].end] == b.to_text()
    # The cut block's only row is unfinished: dropped, and said so.
    assert repaired[2].grid.is_empty()
    assert [r.kind for r in repaired[2].repairs][:2] == ["unterminated", "incomplete_row"]
    with pytest.raises(mc.ParseError):
        mc.parse_all(text)  # strict: the cut block is an error
    assert [r.grid for r in mc.parse_all(text[: text.index(" and a cut")])] == [a, b]
    assert mc.parse_all("no blocks") == []
    with pytest.raises(mc.InputError, match="text4seg"):
        mc.parse_all(text, mode="text4seg")


@pytest.mark.parametrize("size", [(1, 1), (3, 7), (480, 640), (17, 5)])
@pytest.mark.parametrize("mode", ["strict", "repair", "text4seg"])
def test_decode_mask_shapes(size, mode):
    g = mc.LabelGrid(np.tri(4, dtype=int), ["others", "cat"])
    m = mc.decode_mask(g.to_text(), size=size, grid=4, mode=mode)
    assert m.shape == size and m.dtype == bool
    np.testing.assert_array_equal(m, ref.upsample(g.ids, *size) != 0)


def test_decode_mask_bad_sizes():
    text = "<seg>dog *1\n</seg>"
    with pytest.raises(mc.InputError, match="positive"):
        mc.decode_mask(text, size=(0, 4))
    with pytest.raises(TypeError, match=r"\(height, width\)"):
        mc.decode_mask(text, size=4)
    with pytest.raises(TypeError, match=r"\(height, width\)"):
        mc.decode_mask(text, size=(2.0, 4))


def test_decode_mask_default_repair_never_raises():
    assert not mc.decode_mask("the model said nothing useful", size=(5, 5)).any()
    assert mc.decode_mask("<seg>dog *2\n dog *2", size=(2, 2), grid=2)[0].all()


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"mode": "lenient"}, mc.InputError, "unknown mode 'lenient'; choose one of strict, repair, text4seg"),
        ({"format": "rle"}, mc.InputError, "unknown format 'rle'; choose one of rrle, irle, full"),
        ({"background": "a|b"}, mc.LabelError, "background label 'a|b' is not a safe label"),
        ({"grid": 0}, mc.InputError, "out of range"),
        ({"grid": mc.MAX_GRID_SIDE + 1}, mc.InputError, "out of range"),
        ({"labels": "dog"}, TypeError, "collection of str"),
    ],
)
def test_parse_bad_options(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        mc.parse("<seg>dog *1\n</seg>", **kwargs)


def test_parse_rejects_non_text():
    with pytest.raises(TypeError, match="str"):
        mc.parse(b"<seg>dog *1\n</seg>")
    with pytest.raises(TypeError, match="str"):
        mc.parse_all(None)
