"""Compact dialects: lossless round trips, strict parsing, and the token savings on real COCO masks."""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import maskcodec as mc
from maskcodec import dialects as D
from maskcodec._cli_codec import _COCO_NAMES
from maskcodec.quantize import as_grid

from conftest import coco_annotations, coco_masks
from strategies import arbitrary_text, examples, label_grids, mutated


# ----------------------------------------------------------------------------- round trips


@settings(max_examples=examples(300))
@given(g=label_grids(max_rows=10, max_cols=10), dialect=st.sampled_from(D.DIALECTS), envelope=st.booleans())
def test_round_trip_random_grids(g, dialect, envelope):
    text = D.to_text(g, dialect, envelope=envelope)
    back = D.from_text(text, dialect, grid=g.shape, background=g.background, envelope=envelope)
    assert back == g
    # The writer is canonical: equal grids give equal text.
    assert D.to_text(back, dialect, envelope=envelope) == text


@settings(max_examples=examples(150))
@given(g=label_grids(max_rows=8, max_cols=8, background="others"), dialect=st.sampled_from(D.DIALECTS))
def test_convert_to_and_from_rrle(g, dialect):
    rrle = mc.to_text(g)
    text = D.convert(rrle, "rrle", dialect)
    assert D.convert(text, dialect, "rrle", grid=g.shape) == rrle
    assert D.convert(text, dialect, dialect, grid=g.shape) == text


def test_background_other_than_others_is_declared():
    g = mc.LabelGrid([[0, 1], [0, 0]], ("bg", "cat"))
    assert D.to_text(g, "arle") == "<seg>.=bg\na=cat\n.*1 a\n.\n</seg>"
    assert D.to_text(g, "spans") == "<seg>.=bg\na=cat\n1\n\n</seg>"
    assert D.to_text(g, "crle") == "<seg>bg *1| cat\n bg\n</seg>"
    for d in ("arle", "spans"):  # the header wins over the default background
        assert D.from_text(D.to_text(g, d), d, grid=2) == g
    assert D.from_text(D.to_text(g, "crle"), "crle", grid=2, background="bg") == g


def test_several_labels_and_long_aliases():
    labels = ["others"] + [f"thing {i}" for i in range(30)]
    ids = np.arange(31 * 2).reshape(2, 31) % 31
    g = mc.LabelGrid(ids, labels)
    arle = D.to_text(g, "arle")
    assert "\nad=thing 29\n" in arle and " ac*1 ad **2\n" in arle
    spans = D.to_text(g, "spans")
    assert spans.endswith("\na1 b2 c3 d4 e5 f6 g7 h8 i9 j10 k11 l12 m13 n14 o15 p16 q17 r18 s19 t20 u21 v22 w23 "
                          "x24 y25 z26 aa27 ab28 ac29 ad30 **2\n</seg>")
    for d in D.DIALECTS:
        assert D.from_text(D.to_text(g, d), d, grid=(2, 31)) == g


def test_examples_from_the_docs():
    g = mc.LabelGrid([[0] * 16] * 5 + [[0] * 5 + [1] * 6 + [0] * 5] * 4 + [[0] * 16] * 7, ("others", "white horse"))
    assert D.to_text(g, "crle") == "<seg>others **5\n others *5| white horse *6| others **4\n others **7\n</seg>"
    assert D.to_text(g, "arle") == "<seg>a=white horse\n. **5\n.*5 a*6 . **4\n. **7\n</seg>"
    assert D.to_text(g, "spans") == "<seg>a=white horse\n**5\n5-10 **4\n**7\n</seg>"
    empty = mc.LabelGrid(np.zeros((16, 16), int), ("others",))
    assert [D.to_text(empty, d) for d in D.DIALECTS] == [
        "<seg>others **16\n</seg>", "<seg>. **16\n</seg>", "<seg>**16\n</seg>"]


def test_text_around_the_answer_is_ignored():
    g = D.from_text("Sure: <seg>a=dog\n.\n.*1 a\n</seg> done <seg>junk", "arle", grid=2)
    assert g.ids.tolist() == [[0, 0], [0, 1]]


def test_writer_checks_its_input():
    with pytest.raises(TypeError, match="LabelGrid"):
        D.to_text(np.zeros((2, 2)), "crle")
    with pytest.raises(mc.InputError, match="unknown dialect 'x'; choose one of crle, arle, spans"):
        D.to_text(mc.LabelGrid([[0]], ("others",)), "x")
    with pytest.raises(mc.LabelError):
        D.to_text(mc.LabelGrid([[0, 1]], ("others", "a|b")), "arle")
    with pytest.raises(mc.InputError, match="unknown dialect"):
        D.convert("<seg>others *1\n</seg>", "rrle", "irle")


# ----------------------------------------------------------------------------- strict errors

INVALID = [
    # (dialect, grid, text, line, column, message fragment)
    ("crle", 2, "<seg>others *2\n others\n</seg>", 1, 14, "a count 2 is out of range 1..1"),
    ("crle", 2, "<seg>others *1| dog *1\n others\n</seg>", 1, 21, "1 cell left"),
    ("crle", 2, "<seg>others\n</seg>", 1, 12, "expected '\\n ' and row 2"),
    ("crle", 2, "<seg>others **3\n</seg>", 1, 15, "a repeat count 3 is out of range 2..2"),
    ("crle", 2, "<seg>others **1\n others\n</seg>", 1, 15, "out of range 2..2"),
    ("crle", 2, "<seg>others **2\n others\n</seg>", 1, 16, "the grid already has its 2 rows"),
    ("crle", 2, "<seg>others*1| dog\n others\n</seg>", 1, 12, "expected ' *' and a count"),
    ("crle", 2, "<seg>others *01| dog\n others\n</seg>", 1, 14, "starts with 0"),
    ("crle", 2, "<seg>others | dog\n others\n</seg>", 1, 13, "expected ' *'"),
    ("crle", 2, "<seg>others **2\n", 2, 1, "cut off"),
    ("crle", 2, "others **2\n", 1, 1, "no <seg>"),
    ("crle", 2, "<seg> others **2\n</seg>", 1, 6, "whitespace"),
    ("arle", 2, "<seg>b=dog\n. **2\n</seg>", 1, 6, "expected alias 'a' next, found 'b'"),
    ("arle", 2, "<seg>a=dog\nb=dog\n. **2\n</seg>", 2, 3, "declared twice"),
    ("arle", 2, "<seg>a=dog\n.*1 b\n.\n</seg>", 2, 5, "alias 'b' is not declared"),
    ("arle", 2, "<seg>a=dog\n.*1a\n.\n</seg>", 2, 4, "expected ' ' and the next run"),
    ("arle", 2, "<seg>.\n.\n.\n</seg>", 3, 1, "expected the end of the body after 2 rows"),
    ("arle", 2, "<seg>a=\n. **2\n</seg>", 1, 8, "empty"),
    ("spans", 4, "<seg>a=dog\n2-1\n**3\n</seg>", 2, 3, "a column 1 is out of range 2..3"),
    ("spans", 4, "<seg>a=dog\n1-2 2\n**3\n</seg>", 2, 5, "a column 2 is out of range 3..3"),
    ("spans", 4, "<seg>a=dog\n4\n**3\n</seg>", 2, 1, "a column 4 is out of range 0..3"),
    ("spans", 4, "<seg>a=dog\n0-3 1\n**3\n</seg>", 2, 5, "row 1 is full"),
    ("spans", 4, "<seg>a=dog\nb=cat\n1\n**3\n</seg>", 3, 1, "expected an alias"),
    ("spans", 4, "<seg>a=dog\nb=cat\n.1\n**3\n</seg>", 3, 1, "a span cannot be background"),
    ("spans", 4, "<seg>a=dog\n1**3\n.\n</seg>", 2, 2, "expected ' ' before '**'"),
    ("spans", 4, "<seg>a=dog\n 1\n**3\n</seg>", 2, 1, "expected a column"),
    ("spans", 1, "<seg>0\n</seg>", 1, 6, "a span needs a foreground label"),
]


@pytest.mark.parametrize(("dialect", "grid", "text", "line", "column", "fragment"), INVALID)
def test_invalid_text_raises_positioned_errors(dialect, grid, text, line, column, fragment):
    with pytest.raises(mc.ParseError) as info:
        D.from_text(text, dialect, grid=grid)
    err = info.value
    assert fragment in str(err)
    assert (err.line, err.column) == (line, column), str(err)


def test_options_are_checked():
    with pytest.raises(TypeError):
        D.from_text(b"<seg>.\n</seg>", "arle", grid=1)
    with pytest.raises(mc.LabelError):
        D.from_text("<seg>.\n</seg>", "arle", grid=1, background="a|b")
    with pytest.raises(mc.InputError):
        D.from_text("<seg>.\n</seg>", "arle", grid=0)


_DIALECT_BITS = ["<seg>", "</seg>", "\n", "\n ", " ", "*", " *", "**", " **", "| ", "|", "-", ".", "=", "a", "b",
                 "ab", "0", "1", "2", "3", "9", "10", "99999999", "others", "dog", ".=", "a=", "\r", "\t"]
dialect_text = st.one_of(
    arbitrary_text,
    st.lists(st.sampled_from(_DIALECT_BITS), max_size=40).map("".join),
    st.lists(st.sampled_from(_DIALECT_BITS), max_size=40).map(lambda parts: "<seg>" + "".join(parts) + "</seg>"),
)


@settings(max_examples=examples(400))
@given(text=dialect_text, dialect=st.sampled_from(D.DIALECTS), grid=st.sampled_from([1, 2, 3, (2, 5)]),
       envelope=st.booleans())
def test_only_parse_errors_escape_on_arbitrary_text(text, dialect, grid, envelope):
    try:
        g = D.from_text(text, dialect, grid=grid, envelope=envelope)
    except mc.ParseError as err:
        assert 0 <= err.pos <= len(text) and err.line >= 1 and err.column >= 1
    else:
        assert g.shape == as_grid(grid)
        assert int(g.ids.max()) < len(g.labels)  # every id has a label
        assert D.from_text(D.to_text(g, dialect, envelope=envelope), dialect, grid=grid, envelope=envelope) == g


@settings(max_examples=examples(300))
@given(data=st.data(), dialect=st.sampled_from(D.DIALECTS))
def test_mutated_valid_text_parses_or_raises_parse_error(data, dialect):
    g = data.draw(label_grids(6, 6, 4, background="others"))
    text = data.draw(mutated(D.to_text(g, dialect)))
    try:
        back = D.from_text(text, dialect, grid=g.shape)
    except mc.ParseError:
        return
    # Whatever parsed is a well-formed grid that the writer can write again.
    assert back.shape == g.shape
    assert D.from_text(D.to_text(back, dialect), dialect, grid=g.shape) == back


def test_huge_counts_never_allocate():
    for d, text in [("crle", "<seg>others *99999999999999999999| x\n</seg>"),
                    ("arle", "<seg>. **99999999999999999999\n</seg>"),
                    ("spans", "<seg>a=x\n0-99999999999999999999\n</seg>")]:
        with pytest.raises(mc.ParseError, match="out of range"):
            D.from_text(text, d, grid=4)


# ----------------------------------------------------------------------------- real masks, real tokenizers


def _coco_grids(grid):
    return [mc.LabelGrid(mc.quantize(m.astype(bool), grid=grid).astype(np.uint8),
                         ("others", _COCO_NAMES[a["category_id"]]))
            for a, m in zip(coco_annotations(), coco_masks())]


@pytest.mark.slow_without_jit
@pytest.mark.parametrize("grid", [16, 32])
def test_every_coco_mask_round_trips(grid):
    for g in _coco_grids(grid):
        rrle = mc.to_text(g)
        for d in D.DIALECTS:
            text = D.convert(rrle, "rrle", d)
            assert D.from_text(text, d, grid=grid) == g
            assert D.convert(text, d, "rrle", grid=grid) == rrle


def _tokenizers():
    mistral_common = pytest.importorskip("mistral_common")
    pytest.importorskip("sentencepiece")
    from maskcodec.tokens import load_tokenizer

    data = os.path.join(os.path.dirname(mistral_common.__file__), "data")
    return {"sentencepiece": load_tokenizer(os.path.join(data, "tokenizer.model.v1")),
            "tekken": load_tokenizer(os.path.join(data, "tekken_240911.json"))}


@pytest.mark.slow_without_jit
def test_at_least_40_percent_fewer_tokens_than_rrle_on_coco():
    from maskcodec.tokens import count_tokens

    grids = _coco_grids(16)[::3]  # every third mask keeps the test quick; the benchmark runs all 734
    for name, tok in _tokenizers().items():
        base = np.array([count_tokens(mc.to_text(g), tok) for g in grids])
        for d in D.DIALECTS:
            n = np.array([count_tokens(D.to_text(g, d), tok) for g in grids])
            saving = 1 - n.mean() / base.mean()
            # Measured on all 734 masks at 16x16: crle 69%, arle 72-73%, spans 79% fewer.
            assert saving >= 0.40, (name, d, saving)
            assert np.median(n) <= 0.6 * np.median(base), (name, d)


# ----------------------------------------------------------------------------- grammar export

_LABELS = ["dog", "cat", "a b"]


def _lark(dialect, grid, background, labels=_LABELS):
    pytest.importorskip("lark")
    return _lark_cached(dialect, tuple(grid), background, None if labels is None else tuple(labels))


@functools.lru_cache(maxsize=None)
def _lark_cached(dialect, grid, background, labels):
    import lark as lark_mod

    text = D.export_grammar(dialect, grid=grid, labels=labels, background=background, form="lark", max_labels=3)
    return lark_mod.Lark(text, start="start")


def _accepts(parser, text):
    lark_mod = pytest.importorskip("lark")
    try:
        parser.parse(text)
    except lark_mod.exceptions.LarkError:
        return False
    return True


@settings(max_examples=examples(60))
@given(dialect=st.sampled_from(D.DIALECTS), background=st.sampled_from(["others", "bg"]),
       shape=st.tuples(st.integers(1, 5), st.integers(1, 5)), data=st.data())
def test_grammar_accepts_what_the_writer_writes(dialect, background, shape, data):
    ids = data.draw(st.lists(st.integers(0, 3), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
    g = mc.LabelGrid(np.array(ids).reshape(shape), [background, *_LABELS])
    text = D.to_text(g, dialect)
    assert _accepts(_lark(dialect, shape, background), text)
    assert _accepts(_lark(dialect, shape, background, labels=None), text)  # any safe label


@settings(max_examples=examples(200))
@given(dialect=st.sampled_from(D.DIALECTS), background=st.sampled_from(["others", "bg"]), data=st.data())
def test_grammar_and_parser_agree_on_damaged_text(dialect, background, data):
    shape = (data.draw(st.integers(1, 4)), data.draw(st.integers(1, 4)))
    ids = data.draw(st.lists(st.integers(0, 3), min_size=shape[0] * shape[1], max_size=shape[0] * shape[1]))
    g = mc.LabelGrid(np.array(ids).reshape(shape), [background, *_LABELS])
    text = data.draw(mutated(D.to_text(g, dialect)))
    try:
        back = D.from_text(text, dialect, grid=shape, background=background)
    except mc.ParseError:
        back = None
    in_grammar = _accepts(_lark(dialect, shape, background), text)
    if in_grammar:  # the grammar never accepts what the parser refuses
        assert back is not None and set(back.labels[1:]) <= set(_LABELS)
    elif back is not None:
        # what the parser accepts beyond the grammar: labels outside the set, or the optional
        # ".=" header line written where the grammar does not (or missing where it does)
        start = text.find("<seg>") + 5
        declares = dialect != "crle" and text.startswith(".=", start)
        assert (not set(back.labels[1:]) <= set(_LABELS) or back.labels[0] != background
                or declares != (background != "others" and dialect != "crle")
                or text.find("<seg>") != 0 or not text.endswith("</seg>")), text


def test_gbnf_is_the_lark_grammar_in_gbnf_syntax():
    for d in D.DIALECTS:
        gbnf = D.export_grammar(d, grid=(3, 4), labels=["dog", "cat"], background="bg")
        lark_text = D.export_grammar(d, grid=(3, 4), labels=["dog", "cat"], background="bg", form="lark")
        as_lark = [ln.replace(" ::= ", ": ", 1).replace('"" ', "").replace(' ""', " ").replace('""', "")
                   for ln in gbnf.splitlines()]
        as_lark[0] = as_lark[0].replace("root: ", "start: ", 1)
        assert as_lark == lark_text.splitlines()
        assert gbnf.startswith("root ::= ")


def test_grammar_options_are_checked():
    with pytest.raises(mc.InputError, match="unknown form"):
        D.export_grammar("crle", form="regex")
    with pytest.raises(mc.InputError, match="max_size"):
        D.export_grammar("spans", grid=256, labels=["dog"])
    with pytest.raises(mc.InputError, match="unknown dialect"):
        D.export_grammar("rrle")


# ----------------------------------------------------------------------------- repair mode


@settings(max_examples=examples(200))
@given(g=label_grids(max_rows=6, max_cols=6, background="others"), dialect=st.sampled_from(D.DIALECTS))
def test_repair_mode_reads_valid_text_without_repairs(g, dialect):
    r = D.parse(D.to_text(g, dialect), dialect, grid=g.shape, mode="repair")
    assert r.grid == g and r.repairs == () and r.complete and r.found
    strict = D.parse(D.to_text(g, dialect), dialect, grid=g.shape)
    assert strict.grid == g and (strict.start, strict.end) == (0, len(D.to_text(g, dialect)))


@settings(max_examples=examples(300))
@given(data=st.data(), dialect=st.sampled_from(D.DIALECTS))
def test_repair_mode_never_raises_on_damaged_text(data, dialect):
    g = data.draw(label_grids(6, 6, 4, background="others"))
    text = data.draw(st.one_of(mutated(D.to_text(g, dialect)), dialect_text))
    r = D.parse(text, dialect, grid=g.shape, mode="repair")
    assert r.grid.shape == g.shape and int(r.grid.ids.max()) < len(r.grid.labels)
    for rep in r.repairs:
        assert rep.line >= 1 and rep.column >= 1 and rep.message


def test_repair_policies():
    parse = D.parse
    # a truncated answer keeps its finished rows
    r = parse("Here: <seg>others **2\n others *1| dog\n others *", "crle", grid=(4, 2), mode="repair")
    assert r.grid.ids.tolist() == [[0, 0], [0, 0], [0, 1], [0, 0]] and not r.complete
    assert [x.kind for x in r.repairs] == ["unterminated", "incomplete_row", "missing_rows"]
    # R-RLE text read as crle comes back whole
    rrle = "<seg>others *3\n others *1| dog *2\n</seg>"
    r = parse(rrle, "crle", grid=(2, 3), mode="repair")
    assert r.grid == mc.from_text(rrle) and {x.kind for x in r.repairs} == {"counted_last_run"}
    # a repeat beyond the grid is cut; extra rows are dropped; \r is ignored
    r = parse("<seg>a=dog\r\n.*1 a **9\r\n.\n</seg>", "arle", grid=(3, 2), mode="repair")
    assert r.grid.ids.tolist() == [[0, 1]] * 3
    assert [x.kind for x in r.repairs] == ["clamped_count", "extra_rows", "bad_separator"]
    # a broken row keeps the cells before the error, the rest is background
    r = parse("<seg>a=dog\n0-1 x\n**2\n</seg>", "spans", grid=(3, 4), mode="repair")
    assert r.grid.ids.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert [x.kind for x in r.repairs] == ["bad_run"]
    # no block at all
    r = parse("I cannot see a dog.", "spans", grid=2, mode="repair")
    assert not r.found and r.grid.is_empty() and r.repairs[0].kind == "no_block"
    # header lines in any order, unsafe labels made safe
    r = parse("<seg>b=cat\na=dog|x\n.*1 a\nb\n</seg>", "arle", grid=2, mode="repair")
    assert r.grid.labels == ("others", "cat", "dog x") and r.grid.ids.tolist() == [[0, 2], [1, 1]]
    assert [x.kind for x in r.repairs] == ["unsafe_label"]
    mask = D.decode_mask("<seg>. **2\n</seg>", "arle", size=(4, 4), grid=2)
    assert mask.shape == (4, 4) and not mask.any()
    with pytest.raises(mc.InputError, match="unknown mode"):
        parse("", "crle", mode="text4seg")


@pytest.mark.slow_without_jit
def test_savings_on_multi_label_semantic_grids():
    """One grid per image with every instance: smaller savings, measured and pinned here."""
    import collections

    from maskcodec.tokens import count_tokens

    by_image = collections.defaultdict(list)
    for a, m in zip(coco_annotations(), coco_masks()):
        by_image[a["image_id"]].append((a["category_id"], m.astype(bool)))
    grids = []
    for items in by_image.values():
        ids = np.zeros(items[0][1].shape, dtype=np.int64)
        for cat, m in items:
            ids[m] = cat
        grids.append(mc.encode_grid(ids, {cat: _COCO_NAMES[cat] for cat, _ in items}, grid=16))
    assert len(grids) == 99
    for name, tok in _tokenizers().items():
        base = np.mean([count_tokens(mc.to_text(g), tok) for g in grids])
        saving = {d: 1 - np.mean([count_tokens(D.to_text(g, d), tok) for g in grids]) / base for d in D.DIALECTS}
        # Measured: crle 30-31%, arle 43-46%, spans 54-55% (the 40% goal holds for arle and spans only).
        assert saving["crle"] > 0.25 and saving["arle"] > 0.40 and saving["spans"] > 0.50, (name, saving)
