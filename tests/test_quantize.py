"""quantize() against its references: Pillow NEAREST and an exact-fraction area quantizer."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

import maskcodec as mc
import reference as ref
from strategies import big_sides, examples, grid_sides, small_masks


def _position_mask(h: int, w: int) -> np.ndarray:
    """A mask whose every pixel value depends on its row and column, so a sample
    taken one pixel off (in either direction) reads a different value."""
    i = np.arange(h, dtype=np.int64)[:, None]
    j = np.arange(w, dtype=np.int64)[None, :]
    return ((i * 31 + j * 17) % 256).astype(np.uint8)


# ----------------------------------------------------------------------------- nearest


@given(h=big_sides, w=big_sides, rows=grid_sides, cols=grid_sides)
@settings(max_examples=examples(150))
@example(h=128, w=128, rows=24, cols=24)  # PIL reads pixel 23 for cell 4, the closed formula 24
@example(h=400, w=448, rows=24, cols=24)
@example(h=496, w=496, rows=24, cols=24)
@example(h=2048, w=1, rows=64, cols=1)
@example(h=1, w=1, rows=64, cols=64)
def test_nearest_matches_pillow(h, w, rows, cols):
    m = _position_mask(h, w)
    np.testing.assert_array_equal(mc.quantize(m, grid=(rows, cols)), ref.pil_nearest(m, rows, cols))


def test_nearest_known_pil_quirk():
    # 128 px -> 24 cells: Pillow accumulates the step in floating point; cell 4 reads pixel 23.
    m = np.arange(128, dtype=np.uint8)[None, :].repeat(2, axis=0)
    q = mc.quantize(m, grid=(1, 24))
    assert q[0, 4] == 23
    assert int(np.floor((4 + 0.5) * 128 / 24)) == 24  # the formula Pillow does not follow


def test_nearest_every_size_up_to_2048_at_text4seg_grids():
    # Exhaustive over the grids Text4Seg uses, one axis at a time (the axes are independent):
    # each pixel of the 1 x n row holds its own index, so any off-by-one sample shows.
    row = np.arange(2048, dtype=np.int32)[None, :]
    for g in (16, 24, 32, 64):
        for n in range(1, 2049):
            m = row[:, :n]
            got = mc.quantize(m, grid=(1, g))
            want = np.asarray(Image.fromarray(m).resize((g, 1), Image.NEAREST))
            if not np.array_equal(got, want):
                raise AssertionError(f"{n} px -> {g} cells: {got.tolist()} != Pillow {want.tolist()}")


@given(m=small_masks(max_side=40, max_value=1))
@settings(max_examples=examples(60))
def test_nearest_binary_masks_keep_dtype(m):
    q = mc.quantize(m, grid=(7, 5))
    assert q.dtype == m.dtype and q.shape == (7, 5)
    np.testing.assert_array_equal(q, ref.pil_nearest(m, 7, 5))


def test_nearest_label_map_beyond_uint8():
    rng = np.random.default_rng(0)
    m = rng.integers(0, 70000, size=(50, 37)).astype(np.int32)
    np.testing.assert_array_equal(mc.quantize(m, grid=16), ref.pil_nearest(m, 16, 16))


def test_pil_image_input_equals_array_input():
    m = _position_mask(33, 47)
    img = Image.fromarray(m)
    np.testing.assert_array_equal(mc.quantize(img, grid=16), mc.quantize(m, grid=16))
    np.testing.assert_array_equal(mc.quantize(Image.fromarray(m >= 128), grid=8), mc.quantize(m >= 128, grid=8))
    # Pillow's mode "1" hands numpy bools stored as the byte 255: still a binary mask.
    for method in ("area", "coverage"):
        np.testing.assert_array_equal(
            mc.quantize(Image.fromarray(m >= 128), grid=(5, 7), method=method),
            mc.quantize(m >= 128, grid=(5, 7), method=method),
        )
        assert mc.quantize(Image.fromarray(m >= 128), grid=(5, 7), method=method).view(np.uint8).max() <= 1


@pytest.mark.parametrize("method", ["nearest", "area", "coverage"])
def test_fortran_and_strided_inputs_equal_c_order(method):
    rng = np.random.default_rng(1)
    m = rng.random((37, 53)) < 0.3
    for variant in (np.asfortranarray(m), m[::1, ::1].copy(order="F"), np.ascontiguousarray(m), m[:, ::-1][:, ::-1]):
        np.testing.assert_array_equal(
            mc.quantize(variant, grid=(9, 11), method=method), mc.quantize(m, grid=(9, 11), method=method)
        )
    wide = np.zeros((37, 106), dtype=bool)
    wide[:, ::2] = m
    np.testing.assert_array_equal(
        mc.quantize(wide[:, ::2], grid=(9, 11), method=method), mc.quantize(m, grid=(9, 11), method=method)
    )


# ----------------------------------------------------------------------------- area / coverage


@given(m=small_masks(max_side=12, max_value=1), rows=st.integers(1, 9), cols=st.integers(1, 9))
@settings(max_examples=examples(120))
@example(m=np.array([[1, 0]], dtype=bool), rows=1, cols=1)  # exact tie: background
@example(m=np.array([[0, 1, 1]], dtype=np.uint8), rows=1, cols=2)  # pixel 1 straddles the edge
def test_area_matches_fractions(m, rows, cols):
    np.testing.assert_array_equal(mc.quantize(m, grid=(rows, cols), method="area"), ref.area_majority(m, rows, cols))


@given(m=small_masks(max_side=10, max_value=4), rows=st.integers(1, 7), cols=st.integers(1, 7))
@settings(max_examples=examples(100))
@example(m=np.array([[3, 2]]), rows=1, cols=1)  # tie between two labels: the lower id
@example(m=np.array([[0, 300, 300, 7]]), rows=1, cols=2)
def test_area_label_map_matches_fractions(m, rows, cols):
    np.testing.assert_array_equal(mc.quantize(m, grid=(rows, cols), method="area"), ref.area_majority(m, rows, cols))


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64, np.uint32])
def test_area_label_map_dtypes(dtype):
    rng = np.random.default_rng(2)
    m = rng.choice(np.array([0, 5, 200, 255]), size=(11, 13)).astype(dtype)
    q = mc.quantize(m, grid=(4, 6), method="area")
    assert q.dtype == m.dtype
    np.testing.assert_array_equal(q, ref.area_majority(m, 4, 6))


@pytest.mark.parametrize(
    "dtype, values",
    [
        (np.uint16, [0, 3, 65534, 65535]),
        (np.uint32, [0, 1, 2**32 - 1, 70000]),
        (np.int64, [0, 2**40, 5, 2**62]),
        (np.int8, [0, 1, 127, 3]),
    ],
)
@pytest.mark.parametrize("method", ["area", "nearest"])
def test_label_maps_with_extreme_values(dtype, values, method):
    rng = np.random.default_rng(5)
    dense = rng.integers(0, len(values), size=(13, 11))
    m = np.asarray(values, dtype=dtype)[dense]
    q = mc.quantize(m, grid=(5, 4), method=method)
    assert q.dtype == m.dtype
    if method == "area":
        np.testing.assert_array_equal(q, ref.area_majority(m, 5, 4))
    else:  # Pillow has no 64-bit mode: compare the dense ids, which NEAREST moves the same way
        np.testing.assert_array_equal(q, np.asarray(values, dtype=dtype)[ref.pil_nearest(dense, 5, 4)])
    nonempty = mc.quantize(m, grid=(1, 1), method=method, nonempty=True)
    assert nonempty.shape == (1, 1)


_DYADIC = st.sampled_from([Fraction(1, 8), Fraction(1, 4), Fraction(3, 8), Fraction(1, 2), Fraction(3, 4), Fraction(1)])


@given(m=small_masks(max_side=12, max_value=1), rows=st.integers(1, 9), cols=st.integers(1, 9), t=_DYADIC)
@settings(max_examples=examples(120))
@example(m=np.array([[1, 0]], dtype=bool), rows=1, cols=1, t=Fraction(1, 2))  # exactly half: foreground
def test_coverage_matches_fractions(m, rows, cols, t):
    # Dyadic thresholds are exact in binary, so the reference's exact comparison is unambiguous.
    q = mc.quantize(m, grid=(rows, cols), method="coverage", threshold=float(t))
    np.testing.assert_array_equal(q != 0, ref.coverage(m, rows, cols, t))


def test_coverage_refuses_label_maps():
    with pytest.raises(mc.InputError, match="coverage"):
        mc.quantize(np.array([[0, 2]]), grid=1, method="coverage")


@pytest.mark.parametrize("threshold", [0, -0.5, 1.5, float("nan")])
def test_coverage_threshold_range(threshold):
    with pytest.raises(mc.InputError, match="threshold"):
        mc.quantize(np.ones((4, 4), dtype=bool), grid=2, method="coverage", threshold=threshold)


# ----------------------------------------------------------------------------- nonempty


@given(m=small_masks(max_side=40, max_value=1), g=st.integers(1, 8), method=st.sampled_from(["nearest", "area", "coverage"]))
@settings(max_examples=examples(120))
def test_nonempty_never_loses_a_binary_object(m, g, method):
    q = mc.quantize(m, grid=g, method=method, nonempty=True)
    assert bool(q.any()) == bool(m.any())
    plain = mc.quantize(m, grid=g, method=method)
    if plain.any():  # nonempty only acts on an empty grid
        np.testing.assert_array_equal(q, plain)
    elif m.any():
        assert np.count_nonzero(q) == 1
        # The cell it restores holds the most foreground area.
        areas = [[cell.get(1, 0) for cell in line] for line in ref.cell_areas(m != 0, g, g)]
        best = max(max(line) for line in areas)
        r, c = np.argwhere(q)[0]
        assert areas[r][c] == best


@given(m=small_masks(max_side=30, max_value=5), g=st.integers(1, 6), method=st.sampled_from(["nearest", "area"]))
@settings(max_examples=examples(100))
def test_nonempty_label_maps_keep_every_value_while_cells_are_free(m, g, method):
    q = mc.quantize(m, grid=g, method=method, nonempty=True)
    present = set(np.unique(m).tolist()) - {0, 255}
    got = set(np.unique(q).tolist()) - {0, 255}
    if present:
        assert got, "a mask with foreground quantized to an empty grid"
    missing = present - got
    if missing:  # only when every cell is already taken by another foreground value
        assert not np.isin(q, [0, 255]).any()
    # Cells that were foreground stay as they were.
    plain = mc.quantize(m, grid=g, method=method)
    keep = ~np.isin(plain, [0, 255])
    np.testing.assert_array_equal(q[keep], plain[keep])


@pytest.mark.slow_without_jit  # exact areas of 200 full-size masks
def test_nonempty_on_real_masks_empties_nothing(coco):
    for ann, m in coco[:200]:
        for method in ("nearest", "area"):
            assert mc.quantize(m, grid=16, method=method, nonempty=True).any(), ann["image_id"]


def test_nonempty_ignore_index_is_background():
    m = np.full((20, 20), 255, dtype=np.uint8)
    m[3, 3] = 9
    q = mc.quantize(m, grid=4, nonempty=True)
    assert (q == 9).sum() == 1 and q[0, 0] == 9


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "mask, error, pattern",
    [
        (np.zeros((2, 2, 2), dtype=bool), mc.InputError, r"2-D.*\(2, 2, 2\)"),
        (np.zeros(5, dtype=bool), mc.InputError, "2-D"),
        (np.zeros((0, 4), dtype=bool), mc.InputError, "empty"),
        (np.zeros((3, 3), dtype=np.float32), mc.InputError, r"float32.*threshold it"),
        (np.array([[0, -1]], dtype=np.int8), mc.InputError, r"negative value -1 at \(row 0, column 1\)"),
        (np.zeros((2, 2), dtype=complex), mc.InputError, "complex"),
        ([[0, 1], [1, 0]], TypeError, "np.asarray"),
        (Image.new("RGB", (4, 4)), mc.InputError, "one band"),
    ],
)
def test_bad_masks(mask, error, pattern):
    with pytest.raises(error, match=pattern):
        mc.quantize(mask, grid=2)


@pytest.mark.parametrize(
    "grid, error, pattern",
    [
        (0, mc.InputError, "1..1024"),
        (mc.MAX_GRID_SIDE + 1, mc.InputError, "out of range"),
        ((4, 0), mc.InputError, "out of range"),
        ((4, -2), mc.InputError, "out of range"),
        (2.0, TypeError, "int or a .rows, cols. pair"),
        (True, TypeError, "int or a"),
        ((1, 2, 3), TypeError, "pair"),
        ("16", TypeError, "pair"),
    ],
)
def test_bad_grids(grid, error, pattern):
    with pytest.raises(error, match=pattern):
        mc.quantize(np.zeros((4, 4), dtype=bool), grid=grid)


def test_unknown_method_lists_choices():
    with pytest.raises(mc.InputError, match="unknown method 'bilinear'; choose one of nearest, area, coverage"):
        mc.quantize(np.zeros((4, 4), dtype=bool), method="bilinear")


def test_max_grid_side_is_allowed():
    q = mc.quantize(np.ones((3, 5), dtype=bool), grid=(mc.MAX_GRID_SIDE, 1))
    assert q.shape == (mc.MAX_GRID_SIDE, 1) and q.all()
