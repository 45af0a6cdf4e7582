"""Writers (to_text / encode_mask / encode_grid) against the groupby references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import maskcodec as mc
import reference as ref
from strategies import examples, label_grids, small_masks


@given(g=label_grids(max_rows=16, max_cols=16), fmt=st.sampled_from(["rrle", "irle", "full"]), envelope=st.booleans())
@settings(max_examples=examples(200))
def test_writers_match_groupby(g, fmt, envelope):
    assert mc.to_text(g, format=fmt, envelope=envelope) == ref.WRITERS[fmt](g.ids, g.labels, envelope)
    assert g.to_text(format=fmt, envelope=envelope) == ref.WRITERS[fmt](g.ids, g.labels, envelope)


def test_writers_large_grid_and_counts():
    # Counts with several digits, a long label, the largest grid side.
    ids = np.zeros((3, mc.MAX_GRID_SIDE), dtype=np.int64)
    ids[1, 5:900] = 1
    g = mc.LabelGrid(ids, ["others", "a rather long referring expression " * 3 + "end"])
    for fmt in ("rrle", "irle", "full"):
        assert mc.to_text(g, format=fmt) == ref.WRITERS[fmt](g.ids, g.labels)


def test_writers_many_labels():
    ids = np.arange(300 * 4).reshape(40, 30) % 300
    labels = ["others"] + [f"class {i}" for i in range(1, 300)]
    g = mc.LabelGrid(ids, labels)
    assert g.ids.dtype != np.uint8
    for fmt in ("rrle", "irle", "full"):
        assert mc.to_text(g, format=fmt) == ref.WRITERS[fmt](ids, labels)


def test_issue_example_4x4():
    m = np.zeros((4, 4), dtype=bool)
    m[1:3, 1:3] = True
    assert (
        mc.encode_mask(m, "dog", grid=4)
        == "<seg>others *4\n others *1| dog *2| others *1\n others *1| dog *2| others *1\n others *4\n</seg>"
    )
    assert mc.encode_mask(m, "dog", grid=4, format="irle", envelope=False) == (
        "others *5| dog *2| others *2| dog *2| others *5\n"
    )
    # 4 px -> 2 cells: NEAREST reads pixels 1 and 3.
    assert mc.encode_mask(m, "dog", grid=2, format="full") == "<seg>dog| others| others| others\n</seg>"


@given(m=small_masks(max_side=48, max_value=1), g=st.integers(1, 20), label=st.sampled_from(["dog", "white horse", "猫"]))
@settings(max_examples=examples(150))
def test_encode_mask_binary_equals_text4seg_pipeline(m, g, label):
    assert mc.encode_mask(m, label, grid=g) == ref.text4seg_encode(m, label, g, g)


@given(m=small_masks(max_side=12, max_value=4), fmt=st.sampled_from(["rrle", "irle", "full"]))
@settings(max_examples=examples(80))
def test_encode_label_map(m, fmt):
    names = {1: "cat", 2: "dog", 3: "white horse", 4: "sky"}
    g = mc.encode_grid(m, names, grid=(5, 7), method="area")
    q = ref.area_majority(m, 5, 7)
    # The grid names every cell as the reference quantizer does ...
    expect = np.vectorize(lambda v: "others" if v == 0 else names[int(v)], otypes=[object])(q)
    np.testing.assert_array_equal(np.asarray(g.labels, dtype=object)[g.ids], expect)
    # ... and numbers labels by first appearance, background first, like from_text.
    assert g == g.canonical() and g.labels == g.canonical().labels
    text = mc.encode_mask(m, names, grid=(5, 7), method="area", format=fmt)
    assert text == ref.WRITERS[fmt](g.ids, g.labels)
    back = mc.from_text(text, grid=(5, 7), format=fmt)
    assert back == g and back.labels == g.labels


def test_encode_label_map_sequence_and_ignore_index():
    m = np.array([[0, 1, 255], [2, 2, 1]], dtype=np.uint8)
    text = mc.encode_mask(m, ["others", "cat", "dog"], grid=(2, 3))
    assert text == "<seg>others *1| cat *1| others *1\n dog *2| cat *1\n</seg>"
    # A sequence names id 0 too: a name other than the background makes it a class.
    text = mc.encode_mask(m, ["unlabeled", "cat", "dog"], grid=(2, 3))
    assert text == "<seg>unlabeled *1| cat *1| others *1\n dog *2| cat *1\n</seg>"
    # A name for 255 makes it a class.
    text = mc.encode_mask(m, {1: "cat", 2: "dog", 255: "void"}, grid=(2, 3))
    assert text == "<seg>others *1| cat *1| void *1\n dog *2| cat *1\n</seg>"
    # Naming id 0 renames the background cells, the background label stays first.
    g = mc.encode_grid(m, {0: "sky", 1: "cat", 2: "dog"}, grid=(2, 3))
    assert g.labels[0] == "others" and "sky" in g.labels


def test_encode_label_map_unnamed_id():
    m = np.array([[0, 1, 7]], dtype=np.uint8)
    with pytest.raises(mc.InputError, match=r"id\(s\) \[7\] with no name"):
        mc.encode_mask(m, {1: "cat"}, grid=(1, 3))


@pytest.mark.parametrize(
    "labels, error, pattern",
    [
        ("a|b", mc.LabelError, r"'\|' \(U\+007C"),
        ("dog *", mc.LabelError, r"'\*'"),
        ("", mc.LabelError, "empty"),
        ("others", mc.LabelError, "equals the background"),
        ({1: "a\nb"}, mc.LabelError, r"U\+000A"),
        ({-1: "cat"}, mc.InputError, "ids must be ints >= 0"),
        ({1: 3}, TypeError, "must be a str"),
        (3, TypeError, "mapping / sequence"),
    ],
)
def test_encode_bad_labels(labels, error, pattern):
    with pytest.raises(error, match=pattern):
        mc.encode_mask(np.array([[0, 1]], dtype=np.uint8), labels, grid=(1, 2))


def test_encode_bad_background_and_format():
    m = np.ones((2, 2), dtype=bool)
    with pytest.raises(mc.LabelError, match="whitespace"):
        mc.encode_mask(m, "dog", background=" others")
    with pytest.raises(mc.InputError, match="unknown format 'csv'; choose one of rrle, irle, full"):
        mc.encode_mask(m, "dog", format="csv")
    with pytest.raises(mc.InputError, match="unknown format"):
        mc.to_text(mc.LabelGrid([[0]], ["others"]), format="RRLE")
    with pytest.raises(TypeError, match="LabelGrid"):
        mc.to_text(np.zeros((2, 2), dtype=int))


def test_custom_background():
    m = np.array([[0, 1]], dtype=bool)
    assert mc.encode_mask(m, "dog", grid=(1, 2), background="bg") == "<seg>bg *1| dog *1\n</seg>"
    assert mc.from_text("<seg>bg *1| dog *1\n</seg>", background="bg").labels == ("bg", "dog")


@pytest.mark.parametrize("method", ["nearest", "area", "coverage"])
def test_encode_accepts_pil_images_and_any_memory_order(method):
    from PIL import Image

    rng = np.random.default_rng(6)
    m = rng.random((45, 61)) < 0.4
    want = mc.encode_mask(m, "cat", grid=(7, 9), method=method)
    for variant in (np.asfortranarray(m), m.astype(np.uint8) * 255, Image.fromarray(m), Image.fromarray(m.astype(np.uint8) * 255)):
        assert mc.encode_mask(variant, "cat", grid=(7, 9), method=method) == want
    assert want == mc.to_text(mc.LabelGrid(mc.quantize(m, grid=(7, 9), method=method).astype(int), ["others", "cat"]))
