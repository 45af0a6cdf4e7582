"""maskcodec.coco against pycocotools and maskcodec.quantize, on the shared COCO masks and random data."""

from __future__ import annotations

import itertools
import subprocess
import sys
import warnings
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pycocotools import _mask as _cmask
from pycocotools import mask as mask_utils

import maskcodec as mc
import reference as ref
from maskcodec import coco as cocoio
from strategies import examples, label_grids, small_masks

METHODS = ("nearest", "area", "coverage")


def _decode(rle) -> np.ndarray:
    with warnings.catch_warnings():  # pycocotools' own numpy 2 deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle)


def _encode(mask: np.ndarray) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _column_runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO counts of a mask, by itertools.groupby over the column-major pixels."""
    flat = (np.asarray(mask) != 0).ravel(order="F").tolist()
    counts = [len(list(g)) for _, g in itertools.groupby(flat)]
    return counts if not flat[0] else [0, *counts]


def _expand(counts: list[int], h: int, w: int) -> np.ndarray:
    """The mask of uncompressed counts (zero-length runs allowed), written out plainly."""
    flat: list[int] = []
    for i, c in enumerate(counts):
        flat.extend([i % 2] * c)
    return np.asarray(flat, dtype=np.uint8).reshape(w, h).T


# ----------------------------------------------------------------------------- the 734 shared masks


@pytest.mark.slow_without_jit
@pytest.mark.parametrize("grid", [16, 24])
@pytest.mark.parametrize("method", METHODS)
def test_rle_to_grid_equals_decode_then_quantize(coco, grid, method):
    for ann, mask in coco:
        for nonempty in (False, True):
            want = mc.quantize(mask, grid=grid, method=method, nonempty=nonempty)
            got = cocoio.rle_to_grid(ann["segmentation"], grid=grid, method=method, nonempty=nonempty)
            assert got.dtype == want.dtype == np.uint8
            assert np.array_equal(got, want), (ann["image_id"], grid, method, nonempty)


@pytest.mark.slow_without_jit
def test_annotation_dict_uncompressed_and_odd_grids(coco):
    for ann, mask in coco[::7]:
        h, w = mask.shape
        uncompressed = {"size": [h, w], "counts": _column_runs(mask)}
        for grid, method in [((7, 31), "area"), ((33, 5), "nearest"), (3, "coverage")]:
            want = mc.quantize(mask, grid=grid, method=method)
            assert np.array_equal(cocoio.rle_to_grid(ann, grid=grid, method=method), want)
            assert np.array_equal(cocoio.rle_to_grid(uncompressed, grid=grid, method=method, size=(h, w)), want)
        want = mc.quantize(mask, grid=16, method="coverage", threshold=0.2)
        assert np.array_equal(cocoio.rle_to_grid(ann, method="coverage", threshold=0.2), want)


@pytest.mark.slow_without_jit
def test_encode_annotation_equals_encode_mask(coco):
    for ann, mask in coco:
        for grid, method in [(16, "nearest"), (24, "area")]:
            want = mc.encode_mask(mask, "white horse", grid=grid, method=method)
            assert cocoio.encode_annotation(ann, "white horse", grid=grid, method=method) == want
    ann, mask = coco[0]
    for fmt in ("irle", "full"):
        want = mc.encode_mask(mask, "dog", format=fmt, envelope=False, background="bg", nonempty=True)
        got = cocoio.encode_annotation(ann, "dog", format=fmt, envelope=False, background="bg", nonempty=True)
        assert got == want


@pytest.mark.slow_without_jit
def test_rle_round_trips_byte_for_byte(coco):
    for ann, mask in coco:
        rle = ann["segmentation"]
        counts = rle["counts"].encode("ascii")
        assert np.array_equal(cocoio.rle_to_mask(rle), mask.astype(bool))
        assert cocoio.to_rle(rle) == {"size": rle["size"], "counts": counts}
        assert cocoio.mask_to_rle(mask)["counts"] == counts  # Fortran uint8, as pycocotools returns it
        assert cocoio.mask_to_rle(np.ascontiguousarray(mask).astype(bool))["counts"] == counts


@pytest.mark.slow_without_jit
@pytest.mark.parametrize("grid", [16, 24])
def test_grid_to_rle_equals_pycocotools_on_real_grids(coco, grid):
    for ann, mask in coco:
        g = mc.encode_grid(mask, "dog", grid=grid)
        size = mask.shape
        want = _encode(g.mask(size))
        assert cocoio.grid_to_rle(g, size) == want, ann["image_id"]
        text = g.to_text()
        assert cocoio.text_to_rle(text, size=size) == want


# ----------------------------------------------------------------------------- random data


@st.composite
def runs(draw, max_side: int = 12, h=None, w=None):
    """(h, w, uncompressed counts) with zero-length runs anywhere, like hand-made crowd RLE."""
    h = draw(st.integers(1, max_side)) if h is None else h
    w = draw(st.integers(1, max_side)) if w is None else w
    total = h * w
    cuts = sorted(draw(st.lists(st.integers(0, total), max_size=12)))
    counts = [b - a for a, b in zip([0, *cuts], [*cuts, total])]
    return h, w, counts


@given(runs(), st.integers(1, 9), st.integers(1, 9), st.sampled_from(METHODS), st.booleans())
@settings(max_examples=examples(300))
def test_uncompressed_runs_against_exact_references(hwc, rows, cols, method, nonempty):
    h, w, counts = hwc
    mask = _expand(counts, h, w)
    rle = {"size": [h, w], "counts": counts}
    got = cocoio.rle_to_grid(rle, grid=(rows, cols), method=method, nonempty=nonempty)
    assert np.array_equal(got, mc.quantize(mask, grid=(rows, cols), method=method, nonempty=nonempty))
    if not nonempty:  # the slow exact references, independent of maskcodec
        if method == "nearest":
            want = ref.pil_nearest(mask, rows, cols)
        elif method == "area":
            want = ref.area_majority(mask, rows, cols)
        else:
            want = ref.coverage(mask, rows, cols, Fraction(1, 2))
        assert np.array_equal(got, want)
    assert np.array_equal(cocoio.rle_to_mask(rle), mask.astype(bool))
    assert cocoio.to_rle(rle) == _encode(mask)
    assert cocoio.mask_to_rle(mask) == _encode(mask)


@st.composite
def big_runs(draw):
    """(h, w, counts) of a big image with no empty run after the first (as pycocotools writes them)."""
    h = draw(st.integers(1, 3000))
    w = draw(st.integers(1, 3000))
    total = h * w
    cuts = sorted(draw(st.sets(st.integers(1, total - 1), max_size=10))) if total > 1 else []
    first = [0] if draw(st.booleans()) else []
    counts = [b - a for a, b in zip([0, *cuts], [*cuts, total])]
    return h, w, first + counts


@given(big_runs(), st.integers(1, 16))
@settings(max_examples=examples(200))
def test_compressed_counts_of_big_images_match_pycocotools(hwc, grid):
    # Long runs take several 5-bit groups, and deltas against the count two back go negative.
    h, w, counts = hwc
    uncompressed = {"size": [h, w], "counts": counts}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        want = mask_utils.frPyObjects(uncompressed, h, w)
    got = cocoio.to_rle(uncompressed)
    assert got == want
    assert cocoio.to_rle({"size": [h, w], "counts": got["counts"].decode("ascii")}) == got
    if h * w <= 1 << 20:
        mask = _decode(want)
        assert np.array_equal(
            cocoio.rle_to_grid(got, grid=grid, method="area"), mc.quantize(mask, grid=grid, method="area")
        )


@given(small_masks(max_side=14))
@settings(max_examples=examples(200))
def test_mask_to_rle_accepts_any_order_and_dtype(mask):
    want = _encode(mask != 0)
    for m in (mask, np.asfortranarray(mask), np.ascontiguousarray(mask), mask.astype(bool), mask.T.T):
        assert cocoio.mask_to_rle(m) == want
    assert _column_runs(mask) == coco_counts(want)


def coco_counts(rle) -> list[int]:
    """Uncompressed counts of a compressed RLE via pycocotools' own decoder of the string."""
    h, w = rle["size"]
    return _column_runs(_decode(rle)) if h * w else []


@given(label_grids(max_rows=10, max_cols=10), st.integers(1, 40), st.integers(1, 40), st.sampled_from(["corner", "center"]))
@settings(max_examples=examples(300))
def test_grid_to_rle_equals_pycocotools(g, h, w, align):
    assert cocoio.grid_to_rle(g, (h, w), align=align) == _encode(g.mask((h, w), align=align))
    label = g.labels[-1]
    assert cocoio.grid_to_rle(g, (h, w), label=label) == _encode(g.mask((h, w), label=label))
    ids = np.asarray(g.ids)
    assert cocoio.grid_to_rle(ids, (h, w)) == _encode(g.mask((h, w)))
    assert cocoio.grid_to_rle(ids != 0, (h, w)) == _encode(g.mask((h, w)))


@st.composite
def polygons(draw):
    h = draw(st.integers(1, 40))
    w = draw(st.integers(1, 40))
    coord = st.floats(-3.0, 45.0, allow_nan=False, allow_infinity=False)
    polys = draw(
        st.lists(
            st.lists(st.tuples(coord, coord), min_size=3, max_size=8).map(lambda pts: [v for p in pts for v in p]),
            min_size=1,
            max_size=3,
        )
    )
    return h, w, polys


@given(polygons(), st.sampled_from(METHODS), st.integers(1, 12))
@settings(max_examples=examples(200))
def test_polygons_match_pycocotools(hwp, method, grid):
    h, w, polys = hwp
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        merged = mask_utils.merge(mask_utils.frPyObjects(polys, h, w))
    mask = _decode(merged)
    assert cocoio.to_rle(polys, size=(h, w)) == merged
    assert np.array_equal(cocoio.rle_to_mask(polys, size=(h, w)), mask.astype(bool))
    want = mc.quantize(mask, grid=grid, method=method)
    assert np.array_equal(cocoio.rle_to_grid(polys, grid=grid, method=method, size=(h, w)), want)
    ann = {"segmentation": polys, "iscrowd": 0}
    assert cocoio.encode_annotation(ann, "dog", grid=grid, method=method, size=(h, w)) == mc.encode_mask(
        mask, "dog", grid=grid, method=method
    )


def test_four_number_polygon_is_a_polygon_not_a_box():
    # pycocotools.mask.frPyObjects reads [[x0, y0, x1, y1]] as a box (and then fails); it is a polygon.
    got = cocoio.to_rle([[1, 1, 3, 3]], size=(5, 5))
    assert got == _cmask.frPoly([np.array([1, 1, 3, 3], dtype=np.float64)], 5, 5)[0]
    assert cocoio.to_rle([1.0, 1.0, 4.0, 1.0, 4.0, 4.0], size=(5, 5)) == cocoio.to_rle(
        [[1.0, 1.0, 4.0, 1.0, 4.0, 4.0]], size=(5, 5)
    )


@given(st.lists(runs(h=6, w=5), min_size=1, max_size=4))
@settings(max_examples=examples(100))
def test_list_of_rles_is_their_union(parts):
    rles = [{"size": [h, w], "counts": c} for h, w, c in parts]
    union = np.zeros((6, 5), dtype=bool)
    for h, w, c in parts:
        union |= _expand(c, h, w).astype(bool)
    assert np.array_equal(cocoio.rle_to_mask(rles), union)
    assert cocoio.to_rle(rles) == _encode(union)
    assert np.array_equal(cocoio.rle_to_grid(rles, grid=4, method="area"), mc.quantize(union.view(np.uint8), grid=4, method="area"))


def test_empty_segmentations():
    assert cocoio.to_rle([], size=(2, 3)) == {"size": [2, 3], "counts": b"6"}
    assert not cocoio.rle_to_grid({"size": [5, 5], "counts": [25]}, grid=4, nonempty=True).any()
    full = cocoio.rle_to_grid({"size": [5, 5], "counts": [0, 25]}, grid=4, method="area")
    assert full.all()


def test_nonempty_keeps_a_thin_object():
    m = np.zeros((64, 64), dtype=np.uint8)
    m[11, 3:9] = 1  # one pixel high, between the sampled rows 10 and 14
    rle = cocoio.mask_to_rle(m)
    assert not cocoio.rle_to_grid(rle, grid=16).any()
    got = cocoio.rle_to_grid(rle, grid=16, nonempty=True)
    assert got.sum() == 1 and np.array_equal(got, mc.quantize(m, grid=16, nonempty=True))


def test_text_to_rle_matches_decode_mask():
    text = "<seg>others *2| dog *2\n dog *4\n others *4\n</seg>"
    want = _encode(mc.decode_mask(text, size=(7, 5)))
    assert cocoio.text_to_rle(text, size=(7, 5)) == want
    assert cocoio.text_to_rle("no answer here", size=(3, 3), grid=4) == {"size": [3, 3], "counts": b"9"}


def test_import_maskcodec_does_not_import_pycocotools():
    code = "import sys, maskcodec; print('pycocotools' in sys.modules, 'maskcodec.coco' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
    code = "import sys, maskcodec.coco; print('pycocotools' in sys.modules, 'numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_coco_is_a_lazy_submodule_not_in_all():
    assert mc.coco is cocoio
    assert "coco" not in mc.__all__
    with pytest.raises(AttributeError, match="no attribute 'cocoa'"):
        mc.cocoa  # noqa: B018


# ----------------------------------------------------------------------------- errors


def _compressed(counts) -> bytes:
    """A compressed counts string for arbitrary (even negative) counts, via maskcodec's writer."""
    from maskcodec import _coco_kernels

    arr = np.asarray(counts, dtype=np.int64)
    out = np.empty(13 * arr.size + 1, dtype=np.uint8)
    return out[: _coco_kernels.counts_to_string(arr, arr.size, out)].tobytes()


@pytest.mark.parametrize(
    ("rle", "message"),
    [
        ({"counts": "32"}, "missing 'size'"),
        ({"size": [2, 2]}, "missing 'counts'"),
        ({}, "missing 'size' and 'counts'"),
        ({"size": [2], "counts": "4"}, r"'size'\] must be \[height, width\]"),
        ({"size": [0, 4], "counts": "0"}, "two positive ints"),
        ({"size": [2.0, 2.0], "counts": "4"}, "two positive ints"),
        ({"size": [2, 2], "counts": "3"}, "sum to 3, but size 2x2 needs height \\* width = 4"),
        ({"size": [2, 2], "counts": [1, 1, 1]}, "sum to 3"),
        ({"size": [2, 2], "counts": [5, -1]}, "negative count -1 at index 1"),
        ({"size": [2, 2], "counts": _compressed([1, 1, 3, -1])}, "negative count -1 at index 3"),
        ({"size": [2, 2], "counts": ""}, "is empty"),
        ({"size": [2, 2], "counts": []}, "is empty"),
        ({"size": [2, 2], "counts": "4 "}, r"byte b' ' at offset 1"),
        ({"size": [2, 2], "counts": "4~"}, r"byte b'~' at offset 1"),
        ({"size": [2, 2], "counts": "é"}, "contains 'é'"),
        ({"size": [2, 2], "counts": "P"}, "ends inside a count"),
        ({"size": [2, 2], "counts": "o" * 14}, "offset 12"),
        ({"size": [2, 2], "counts": [1.5, 2.5]}, "flat list of ints"),
        ({"size": [2, 2], "counts": [[1, 3]]}, "flat list of ints"),
    ],
)
def test_bad_rle_dicts_raise_input_error(rle, message):
    with pytest.raises(mc.InputError, match=message):
        cocoio.rle_to_mask(rle)
    with pytest.raises(mc.InputError, match=message):
        cocoio.rle_to_grid(rle)


def test_bad_arguments():
    good = {"size": [2, 2], "counts": [4]}
    with pytest.raises(TypeError, match="str/bytes .* or a list of ints"):
        cocoio.rle_to_mask({"size": [2, 2], "counts": 4})
    with pytest.raises(TypeError, match="must be a COCO RLE dict"):
        cocoio.rle_to_grid("VQi31m>0")
    with pytest.raises(TypeError, match="RLE dict"):
        cocoio.rle_to_mask(3)
    with pytest.raises(mc.InputError, match="pass size=\\(height, width\\)"):
        cocoio.rle_to_grid([[0, 0, 4, 0, 4, 4]])
    with pytest.raises(mc.InputError, match="empty list; pass size"):
        cocoio.to_rle([])
    with pytest.raises(mc.InputError, match="even number of coordinates"):
        cocoio.to_rle([[0, 0, 4]], size=(4, 4))
    with pytest.raises(mc.InputError, match="non-finite"):
        cocoio.to_rle([[0, 0, 4, float("nan"), 4, 4]], size=(4, 4))
    with pytest.raises(mc.InputError, match="mixes RLE dicts and polygons"):
        cocoio.to_rle([good, [0, 0, 1, 1, 1, 0]], size=(2, 2))
    with pytest.raises(mc.InputError, match="part 1 has size 1x4 but part 0 has 2x2"):
        cocoio.to_rle([good, {"size": [1, 4], "counts": [4]}])
    with pytest.raises(mc.InputError, match="has size 2x2 but size=\\(3, 3\\)"):
        cocoio.rle_to_grid(good, size=(3, 3))
    with pytest.raises(mc.InputError, match="unknown method 'bilinear'"):
        cocoio.rle_to_grid(good, method="bilinear")
    with pytest.raises(mc.InputError, match="threshold must be in"):
        cocoio.rle_to_grid(good, method="coverage", threshold=0)
    with pytest.raises(mc.InputError, match="out of range"):
        cocoio.rle_to_grid(good, grid=0)
    with pytest.raises(mc.LabelError):
        cocoio.encode_annotation(good, "a|b")
    with pytest.raises(mc.LabelError, match="equals the background"):
        cocoio.encode_annotation(good, "others")


def test_bad_masks_and_grids():
    with pytest.raises(TypeError, match="numpy array"):
        cocoio.mask_to_rle([[0, 1]])
    with pytest.raises(mc.InputError, match="encode each mask of a stack separately"):
        cocoio.mask_to_rle(np.zeros((2, 2, 3), dtype=np.uint8))
    with pytest.raises(mc.InputError, match="bool or integer"):
        cocoio.mask_to_rle(np.zeros((2, 2)))
    with pytest.raises(mc.InputError, match="empty"):
        cocoio.mask_to_rle(np.zeros((0, 2), dtype=bool))
    with pytest.raises(mc.InputError, match="needs a LabelGrid"):
        cocoio.grid_to_rle(np.zeros((2, 2), dtype=bool), (4, 4), label="dog")
    with pytest.raises(mc.InputError, match="non-empty 2-D"):
        cocoio.grid_to_rle(np.zeros(3, dtype=bool), (4, 4))
    with pytest.raises(mc.InputError, match="bool or integer"):
        cocoio.grid_to_rle(np.zeros((2, 2)), (4, 4))
    with pytest.raises(mc.InputError, match="unknown align"):
        cocoio.grid_to_rle(np.zeros((2, 2), dtype=bool), (4, 4), align="middle")
    with pytest.raises(mc.LabelError, match="no label 'cat'"):
        cocoio.grid_to_rle(mc.LabelGrid([[0, 1]], ["others", "dog"]), (4, 4), label="cat")


def test_pycocotools_rejects_what_mask_to_rle_accepts():
    m = np.zeros((3, 4), dtype=np.uint8)
    m[1, 1:3] = 1
    with pytest.raises(Exception):  # pycocotools' cryptic complaint about C order
        mask_utils.encode(m)
    assert cocoio.mask_to_rle(m) == _encode(m)
