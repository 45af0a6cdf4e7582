"""Exported grammars accept exactly what the strict parser accepts.

Each form runs in a real engine: GBNF in xgrammar, Lark in lark's Earley
parser, the regex in Python's ``re``.  Ground truth is
``maskcodec.parse(mode="strict")`` over the whole text.
"""

from __future__ import annotations

import functools
import itertools
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from strategies import any_strings, examples, label_grids, mutated

import maskcodec as mc
from maskcodec import grammar
from maskcodec.grammar import export_grammar

lark = pytest.importorskip("lark")
xgr = pytest.importorskip("xgrammar")
from xgrammar.testing import _is_grammar_accept_string

FORMATS = ["rrle", "irle", "full"]


def strict_accepts(text, *, fmt, grid, labels, envelope, canonical=False, background="others") -> bool:
    """The ground truth: the strict parser reads the whole text (and runs differ if canonical)."""
    try:
        res = mc.parse(text, grid=grid, format=fmt, labels=labels, envelope=envelope, background=background)
    except mc.MaskcodecError:
        return False
    if (res.start, res.end) != (0, len(text)):
        return False
    if canonical and fmt != "full":
        return all(a != b for row in _runs(text, fmt) for a, b in itertools.pairwise(row))
    return True


def _runs(text, fmt):
    """The run labels of a well-formed R-RLE/I-RLE text, per row (per body for I-RLE)."""
    body = text[len("<seg>") : -len("</seg>")] if text.startswith("<seg>") else text
    rows = body[:-1].split("\n ") if fmt == "rrle" else [body[:-1]]
    return [[run.rsplit(" *", 1)[0] for run in row.split("| ")] for row in rows]


@functools.lru_cache(maxsize=256)
def engines(fmt, grid, labels, envelope, canonical):
    # The body's language, so no prefix: tests/test_serving.py checks the prefix policies.
    kw = {"format": fmt, "grid": grid, "labels": labels, "envelope": envelope, "canonical": canonical,
          "prefix": "none"}
    xg = xgr.Grammar.from_ebnf(export_grammar(form="gbnf", **kw))
    lk = lark.Lark(export_grammar(form="lark", **kw), parser="earley", lexer="dynamic")
    try:
        rx = re.compile(export_grammar(form="regex", **kw))
    except mc.InputError:
        rx = None
    return xg, lk, rx


def engine_verdicts(text, fmt, grid, labels, envelope, canonical=False):
    xg, lk, rx = engines(fmt, grid, labels, envelope, canonical)
    out = {"gbnf": _is_grammar_accept_string(xg, text)}
    try:
        lk.parse(text)
        out["lark"] = True
    except lark.exceptions.LarkError:
        out["lark"] = False
    if rx is not None:
        out["regex"] = rx.fullmatch(text) is not None
    return out


def check(text, fmt, grid, labels, envelope, canonical=False):
    want = strict_accepts(text, fmt=fmt, grid=grid, labels=labels, envelope=envelope, canonical=canonical)
    got = engine_verdicts(text, fmt, grid, labels, envelope, canonical)
    assert all(v == want for v in got.values()), (text, want, got)
    return want


# ============================================================================ the label language


@given(s=any_strings)
@settings(max_examples=examples(2000))
@example("a <seg> b")
@example("a </seg")
@example("<</seg>")
@example("x\u3000")
@example("\u00a0x")
@example("<se<seg")
@example("a\u200bb")
def test_label_automaton_is_exactly_is_safe_label(s):
    st_ = grammar.START
    for ch in s:
        st_ = grammar.label_step(st_, ch)
    assert (st_ >= 0 and grammar.label_accepts(st_)) == mc.is_safe_label(s)
    assert (re.fullmatch(grammar._label_regex(), s) is not None) == mc.is_safe_label(s)


# ============================================================================ valid and mutated answers


@given(g=label_grids(max_rows=4, max_cols=5, max_labels=3, background="others"),
       fmt=st.sampled_from(FORMATS), envelope=st.booleans(), fixed=st.booleans(), data=st.data())
@settings(max_examples=examples(150))
def test_grammars_agree_with_strict_parser(g, fmt, envelope, fixed, data):
    labels = tuple(g.labels[1:]) if fixed else None
    text = mc.to_text(g, format=fmt, envelope=envelope)
    assert check(text, fmt, g.shape, labels, envelope)
    bad = data.draw(mutated(text))
    check(bad, fmt, g.shape, labels, envelope)


@given(g=label_grids(max_rows=3, max_cols=4, max_labels=3, background="others"),
       fmt=st.sampled_from(["rrle", "irle"]), data=st.data())
@settings(max_examples=examples(80))
def test_canonical_grammars(g, fmt, data):
    labels = tuple(dict.fromkeys(g.labels[1:] + ("cat",)))
    labels = tuple(x for x in labels if x != "others")
    canon = mc.to_text(g, format=fmt)  # the writer merges equal neighbours: canonical
    assert check(canon, fmt, g.shape, labels, True, canonical=True)
    # Split one run in two: the same grid, no longer canonical.
    m = re.search(r"(?:^<seg>|\| |\n )([^|*\n]+) \*([2-9])(?=[|\n])", canon)
    if m:
        name, n = m.group(1), int(m.group(2))
        split = canon[: m.start(2)] + f"1| {name} *{n - 1}" + canon[m.end(2) :]
        assert mc.parse(split, grid=g.shape, format=fmt).grid == g
        assert not check(split, fmt, g.shape, labels, True, canonical=True)
    check(data.draw(mutated(canon)), fmt, g.shape, labels, True, canonical=True)


@pytest.mark.parametrize(
    "text",
    [
        "<seg>others *2\n others *2\n</seg>",
        "<seg>others *1| dog *1\n others *2\n</seg>",
        "<seg>others *1| dog *1\n others *2\n</seg> ",
        "<seg>others *02\n others *2\n</seg>",
        "<seg>others *1|dog *1\n others *2\n</seg>",
        "<seg>others *2\nothers *2\n</seg>",
        "<seg>others *2\n others *2</seg>",
        "<seg>others *3\n others *1\n</seg>",
        "<seg>others  *2\n others *2\n</seg>",
        "<seg> others *2\n others *2\n</seg>",
        "<seg>a <seg> *2\n others *2\n</seg>",
        "<seg>a </se *2\n others *2\n</seg>",
        "<seg>x\ty *2\n others *2\n</seg>",
        "<seg>x\u3000 *2\n others *2\n</seg>",
        "<seg>\u732b *2\n others *2\n</seg>",
        "<seg>others *2\n others *2\n others *2\n</seg>",
    ],
)
def test_hand_written_cases(text):
    for labels in (None, ("dog",)):
        check(text, "rrle", (2, 2), labels, True)


def test_sixteen_by_sixteen_any_label_in_xgrammar():
    g = mc.LabelGrid([[0] * 5 + [1] * 6 + [0] * 5] * 16, ["others", "white horse"])
    text = mc.to_text(g)
    xg = xgr.Grammar.from_ebnf(export_grammar(grid=16, prefix="none"))
    assert _is_grammar_accept_string(xg, text)
    assert not _is_grammar_accept_string(xg, text.replace("*6", "*7", 1))
    # 16 columns: 136 count alternatives, as the module docstring says.
    assert export_grammar(grid=16, labels=["x"]).count('"| " r') == 120  # + 16 ending alternatives


# ============================================================================ options and errors


def test_regex_refuses_to_explode():
    with pytest.raises(mc.InputError, match="max_size"):
        export_grammar(grid=16, form="regex")
    assert len(export_grammar(grid=(4, 6), labels=["dog"], form="regex")) < 20_000


def test_option_errors():
    with pytest.raises(mc.InputError, match="canonical"):
        export_grammar(canonical=True)
    with pytest.raises(mc.InputError, match="format"):
        export_grammar(format="rle")
    with pytest.raises(mc.InputError, match="form"):
        export_grammar(form="ebnf")
    with pytest.raises(mc.LabelError):
        export_grammar(labels=["a|b"])
    with pytest.raises(TypeError):
        export_grammar(labels="dog")
    with pytest.raises(mc.InputError, match="max_size"):
        export_grammar(format="irle", grid=64)


def test_full_format_uses_repetition():
    text = export_grammar(format="full", grid=(24, 24), labels=["cat"])
    assert '("| " label){575}' in text
    assert "cell~575 last" in export_grammar(format="full", grid=(24, 24), labels=["cat"], form="lark")
    assert "(\"| \" label)~575" in export_grammar(format="full", grid=(24, 24), form="lark")


# ============================================================================ command line


def test_cli_grammar(tmp_path, capsys):
    from maskcodec.cli import main

    assert main(["grammar", "--grid", "2", "3", "--labels", "dog", "white horse"]) == 0
    out = capsys.readouterr().out
    assert out == export_grammar(grid=(2, 3), labels=["dog", "white horse"]) + "\n"
    target = tmp_path / "g.lark"
    assert main(["grammar", "--grid", "4", "--form", "lark", "--format", "full", "-o", str(target)]) == 0
    assert target.read_text() == export_grammar(grid=4, format="full", form="lark")
    assert main(["grammar", "--grid", "1", "2", "--labels", "dog", "--form", "regex", "--canonical",
                 "--prefix", "none"]) == 0
    rx = capsys.readouterr().out.strip()
    assert re.fullmatch(rx, "<seg>dog *1| others *1\n</seg>")
    assert not re.fullmatch(rx, "<seg>dog *1| dog *1\n</seg>")
    assert main(["grammar", "--grid", "16", "--form", "regex"]) == 1
    assert "max_size" in capsys.readouterr().err
    assert main(["grammar", "--grid", "1", "2", "3"]) == 1
    assert main(["grammar", "--any-label", "--labels", "x"]) == 1
    assert main(["grammar", "--labels", "a|b"]) == 1


def test_canonical_with_the_background_only():
    """One label: a canonical row is a single run."""
    assert check("<seg>others *3\n</seg>", "rrle", (1, 3), (), True, canonical=True)
    assert not check("<seg>others *1| others *2\n</seg>", "rrle", (1, 3), (), True, canonical=True)
    assert check("<seg>others *6\n</seg>", "irle", (2, 3), (), True, canonical=True)


# ============================================================================ a second engine: llguidance


@functools.lru_cache(maxsize=1)
def _byte_tokenizer():
    """llguidance over a 256-token byte vocabulary (a tiktoken encoding built here)."""
    tiktoken = pytest.importorskip("tiktoken")
    lt = pytest.importorskip("llguidance.tiktoken")
    enc = tiktoken.Encoding(name="bytes", pat_str=r"[\s\S]", mergeable_ranks={bytes([b]): b for b in range(256)},
                            special_tokens={"<eos>": 256}, explicit_n_vocab=257)
    return lt.lltokenizer_from_encoding(enc, n_vocab=257, eos_token=256)


@functools.lru_cache(maxsize=128)
def _ll_grammars(fmt, grid, labels, envelope):
    llg = pytest.importorskip("llguidance")
    from llguidance.gbnf_to_lark import gbnf_to_lark

    kw = {"format": fmt, "grid": grid, "labels": labels, "envelope": envelope, "prefix": "none"}
    out = {
        "lark": llg.LLMatcher.grammar_from_lark(export_grammar(form="lark", **kw)),
        # llguidance reads GBNF the way llama.cpp does: the escape rules are llama.cpp's.
        "gbnf": llg.LLMatcher.grammar_from_lark(gbnf_to_lark(export_grammar(form="gbnf", **kw))),
    }
    try:
        out["regex"] = llg.LLMatcher.grammar_from_regex(export_grammar(form="regex", **kw))
    except mc.InputError:
        pass
    tok = _byte_tokenizer()
    for name, g in out.items():
        assert llg.LLMatcher.validate_grammar(g, tok) == "", name
    return out


def _ll_accepts(grammar, text):
    import llguidance as llg

    tok = _byte_tokenizer()
    m = llg.LLMatcher(tok, grammar)
    data = text.encode("utf-8")
    return m.try_consume_tokens(list(data)) == len(data) and m.is_accepting()


@given(g=label_grids(max_rows=3, max_cols=4, max_labels=3, background="others"),
       fmt=st.sampled_from(FORMATS), envelope=st.booleans(), fixed=st.booleans(), data=st.data())
@settings(max_examples=examples(60))
def test_llguidance_reads_every_form_the_same_way(g, fmt, envelope, fixed, data):
    pytest.importorskip("llguidance")
    labels = tuple(g.labels[1:]) if fixed else None
    grammars = _ll_grammars(fmt, g.shape, labels, envelope)
    for text in (mc.to_text(g, format=fmt, envelope=envelope), data.draw(mutated(mc.to_text(g, format=fmt, envelope=envelope)))):
        want = strict_accepts(text, fmt=fmt, grid=g.shape, labels=labels, envelope=envelope)
        got = {name: _ll_accepts(gr, text) for name, gr in grammars.items()}
        assert all(v == want for v in got.values()), (text, want, got)
