"""LabelGrid and render()."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import maskcodec as mc
import reference as ref
from strategies import examples, label_grids

_ids = st.integers(1, 12).flatmap(
    lambda r: st.integers(1, 12).flatmap(lambda c: hnp.arrays(np.uint8, (r, c), elements=st.integers(0, 9)))
)


@given(ids=_ids, h=st.integers(1, 90), w=st.integers(1, 90), align=st.sampled_from(["corner", "center"]))
@settings(max_examples=examples(200))
@example(ids=np.arange(16, dtype=np.uint8).reshape(4, 4), h=3, w=5, align="corner")
@example(ids=np.arange(6, dtype=np.uint8).reshape(2, 3), h=1, w=1, align="center")
def test_render_matches_reference(ids, h, w, align):
    out = mc.render(ids, (h, w), align=align)
    assert out.dtype == ids.dtype
    np.testing.assert_array_equal(out, ref.upsample(ids, h, w, align))
    g = mc.LabelGrid(ids, [f"l{i}" for i in range(16)])
    np.testing.assert_array_equal(g.render((h, w), align=align), out)
    np.testing.assert_array_equal(g.mask((h, w), align=align), out != 0)


@pytest.mark.slow_without_jit  # renders up to 700x700 pixels per example
def test_render_matches_torch_interpolate():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for _ in range(60):
        r, c = (int(v) for v in rng.integers(1, 33, size=2))
        h, w = (int(v) for v in rng.integers(1, 700, size=2))
        ids = rng.integers(0, 2, size=(r, c)).astype(np.uint8)
        t = torch.nn.functional.interpolate(
            torch.from_numpy(ids).double()[None, None], size=(h, w), mode="nearest"
        )[0, 0].numpy().astype(np.uint8)
        np.testing.assert_array_equal(mc.render(ids, (h, w)), t, err_msg=f"{r}x{c} -> {h}x{w}")


def test_center_align_is_flip_symmetric_off_cell_edges():
    # Flipping the grid flips the rendering, except for a pixel whose centre lies exactly on a
    # cell edge (odd size, even grid: the middle pixel), which reads the higher cell both ways.
    rng = np.random.default_rng(4)
    for _ in range(40):
        r, c = (int(v) for v in rng.integers(1, 9, size=2))
        ids = rng.integers(0, 5, size=(r, c))
        h, w = (int(v) for v in rng.integers(1, 50, size=2))
        a = mc.render(ids[::-1, ::-1], (h, w), align="center")
        b = mc.render(ids, (h, w), align="center")[::-1, ::-1]
        ys = np.array([(2 * y + 1) * r % (2 * h) != 0 for y in range(h)])
        xs = np.array([(2 * x + 1) * c % (2 * w) != 0 for x in range(w)])
        np.testing.assert_array_equal(a[np.ix_(ys, xs)], b[np.ix_(ys, xs)])
    # Corner alignment is not symmetric: 3 px over 2 cells reads cells 0, 0, 1.
    assert mc.render(np.array([[0, 1]]), (1, 3)).tolist() == [[0, 0, 1]]
    assert mc.render(np.array([[0, 1]]), (1, 3), align="center").tolist() == [[0, 1, 1]]
    assert mc.render(np.array([[0, 1]]), (1, 4), align="center").tolist() == [[0, 0, 1, 1]]


def test_render_errors():
    with pytest.raises(mc.InputError, match="non-empty 2-D"):
        mc.render(np.zeros(4, dtype=int), (2, 2))
    with pytest.raises(mc.InputError, match="unknown align 'middle'"):
        mc.render(np.zeros((2, 2), dtype=int), (2, 2), align="middle")
    with pytest.raises(mc.InputError, match="positive"):
        mc.render(np.zeros((2, 2), dtype=int), (2, -1))
    with pytest.raises(TypeError, match=r"\(height, width\)"):
        mc.render(np.zeros((2, 2), dtype=int), "2x2")


# ------------------------------------------------------------------------ LabelGrid


def test_properties():
    g = mc.LabelGrid([[0, 2], [1, 0], [2, 2]], ("others", "cat", "dog"))
    assert (g.rows, g.cols, g.shape) == (3, 2, (3, 2))
    assert g.background == "others" and g.labels == ("others", "cat", "dog")
    assert g.foreground.tolist() == [[False, True], [True, False], [True, True]]
    assert not g.is_empty() and mc.LabelGrid([[0, 0]], ["others", "x"]).is_empty()
    assert g.mask(label="dog").tolist() == [[False, True], [False, False], [True, True]]
    assert g.mask().tolist() == g.foreground.tolist()
    with pytest.raises(mc.LabelError, match="no label 'bird'"):
        g.mask(label="bird")
    with pytest.raises(ValueError):
        g.ids[0, 0] = 1  # read-only
    np.testing.assert_array_equal(np.asarray(g), g.ids)
    assert np.asarray(g, dtype=np.int64).dtype == np.int64


def test_equality_is_by_meaning():
    a = mc.LabelGrid([[0, 1], [2, 1]], ["others", "cat", "dog"])
    b = mc.LabelGrid([[0, 2], [1, 2]], ["others", "dog", "cat"])
    assert a == b and not (a != b)
    assert a == mc.LabelGrid([[0, 1], [2, 1]], ["others", "cat", "dog", "unused"])
    assert a != mc.LabelGrid([[0, 1], [2, 2]], ["others", "cat", "dog"])
    assert a != mc.LabelGrid([[0, 1, 0], [2, 1, 0]], ["others", "cat", "dog"])
    assert a != mc.LabelGrid([[0, 1], [2, 1]], ["bg", "cat", "dog"])
    assert (a == "text") is False
    with pytest.raises(TypeError):
        hash(a)


@given(g=label_grids())
@settings(max_examples=examples(100))
def test_canonical_and_pickle(g):
    c = g.canonical()
    assert c == g and c.background == g.background
    used = set(g.ids.ravel().tolist())
    assert len(c.labels) == len(used | {0})
    # First-appearance order, as from_text numbers labels.
    firsts = list(dict.fromkeys([0] + g.ids.ravel().tolist()))
    assert c.labels == tuple(g.labels[i] for i in firsts)
    assert c.canonical().labels == c.labels
    back = pickle.loads(pickle.dumps(g))
    assert back == g and back.labels == g.labels and np.array_equal(back.ids, g.ids)
    assert not back.ids.flags.writeable
    assert eval(repr(g), {"LabelGrid": mc.LabelGrid}) == g


def test_relabel():
    g = mc.LabelGrid([[0, 1, 2, 3]], ["others", "cat", "kitten", "dog"])
    merged = g.relabel({"kitten": "cat"})
    assert merged.labels == ("others", "cat", "dog") and merged.ids.tolist() == [[0, 1, 1, 2]]
    upper = g.relabel(str.upper)
    assert upper.labels == ("OTHERS", "CAT", "KITTEN", "DOG") and upper.ids.tolist() == g.ids.tolist()
    as_bg = g.relabel({"dog": "others"})
    assert as_bg.ids.tolist() == [[0, 1, 2, 0]]
    # Renaming the background onto a class would silently erase that class: refused.
    with pytest.raises(mc.LabelError, match="renames the background to 'cat'"):
        g.relabel({"others": "cat"})
    # Renaming both is an explicit merge and allowed.
    both = g.relabel({"others": "bg", "cat": "bg"})
    assert both.labels == ("bg", "kitten", "dog") and both.ids.tolist() == [[0, 0, 1, 2]]
    with pytest.raises(mc.LabelError, match="appears twice|safe|'\\|'"):
        g.relabel({"cat": "a|b"}).to_text()


@pytest.mark.parametrize(
    "ids, labels, error, pattern",
    [
        ([[0, 1]], ["others", "cat", "cat"], mc.LabelError, "label 'cat' appears twice"),
        ([[0, 3]], ["others", "cat"], mc.InputError, r"id 3 has no label; ids must be in 0..1"),
        ([[0, -1]], ["others", "cat"], mc.InputError, "id -1 has no label"),
        ([0, 1], ["others", "cat"], mc.InputError, "2-D"),
        (np.zeros((0, 3), dtype=int), ["others"], mc.InputError, "non-empty"),
        ([[0.0, 1.0]], ["others", "cat"], mc.InputError, "integers, got dtype float64"),
        ([[0, 1]], "others", TypeError, "sequence of str"),
        ([[0, 1]], [], mc.LabelError, "at least the background"),
        ([[0, 1]], ["others", 1], TypeError, "labels must be str"),
    ],
)
def test_label_grid_errors(ids, labels, error, pattern):
    with pytest.raises(error, match=pattern):
        mc.LabelGrid(ids, labels)


def test_unsafe_labels_are_refused_when_written():
    g = mc.LabelGrid([[0, 1]], ["others", "a|b"])
    with pytest.raises(mc.LabelError, match=r"'\|'"):
        g.to_text()


def test_from_text_and_from_mask_classmethods():
    g = mc.LabelGrid.from_text("<seg>others *1| cat *1\n</seg>")
    assert g.labels == ("others", "cat") and g.ids.tolist() == [[0, 1]]
    m = np.zeros((4, 4), dtype=bool)
    m[:2] = True
    assert mc.LabelGrid.from_mask(m, "sky", grid=2) == mc.LabelGrid([[1, 1], [0, 0]], ["others", "sky"])
