"""Mask -> label grid quantization.

Specification
-------------
A mask of ``H x W`` pixels is cut into ``rows x cols`` cells, ignoring its
aspect ratio (as Text4Seg does).  Each method gives every cell one value:

``"nearest"`` (the Text4Seg default)
    One sample per cell, bit-exact with
    ``PIL.Image.fromarray(mask).resize((cols, rows), Image.NEAREST)``.  Pillow
    does not sample ``floor((k + 0.5) * in / out)``: it starts at ``s / 2``
    (``s = in / out`` in double precision) and *adds* ``s`` for every further
    cell, truncating each sum.  The accumulated rounding error moves a sample
    by one pixel for some sizes (128 px -> 24 cells: cell 4 reads pixel 23, the
    closed formula says 24), so the index table is built the same way.
"``area"``
    The value covering the largest exact area of the cell.  Cell edges fall at
    ``k * in / out`` and pixels that straddle an edge count fractionally; all
    arithmetic is in integers (a pixel spans ``out`` units, a cell ``in``), so
    ties are real ties and go to the lower value.
``"coverage"``
    Binary masks only: a cell is foreground when the foreground covers at least
    ``threshold`` of its area (``threshold=0.5`` is area-majority with ties
    going to the foreground).

``nonempty=True`` guarantees that small objects survive: when a foreground
value present in the mask (any value except 0 and ``ignore_index``) got no
cell, the cell holding most of its area among the cells still at background
takes it.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np

from ._errors import InputError

__all__ = ["MAX_GRID_SIDE", "quantize"]

#: Largest number of rows or columns a grid may have.  It bounds what a hostile
#: text can make the parser allocate (at most ``MAX_GRID_SIDE ** 2`` cells).
MAX_GRID_SIDE = 1024

Method = Literal["nearest", "area", "coverage"]
_METHODS = ("nearest", "area", "coverage")

# A histogram bigger than this (cells x distinct values) is refused rather than allocated.
_MAX_HIST = 1 << 25


def _k():
    from . import _kernels

    return _kernels


def as_grid(grid: object, name: str = "grid") -> tuple[int, int]:
    """Normalise ``grid`` (an int or a ``(rows, cols)`` pair) to a pair of ints."""
    if isinstance(grid, (int, np.integer)) and not isinstance(grid, bool):
        rows = cols = int(grid)
    elif isinstance(grid, (tuple, list)) and len(grid) == 2 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in grid
    ):
        rows, cols = int(grid[0]), int(grid[1])
    else:
        raise TypeError(f"{name} must be an int or a (rows, cols) pair of ints, got {grid!r}")
    if not (1 <= rows <= MAX_GRID_SIDE and 1 <= cols <= MAX_GRID_SIDE):
        raise InputError(f"{name} {grid!r} is out of range: each side must be 1..{MAX_GRID_SIDE}")
    return rows, cols


def as_mask(mask: object, name: str = "mask", *, allow_negative: bool = False) -> np.ndarray:
    """Coerce a 2-D bool/integer array or a PIL image to a numpy array, checking it."""
    if not isinstance(mask, np.ndarray):
        if hasattr(mask, "getbands") and hasattr(mask, "mode"):  # a PIL image, without importing PIL
            if len(mask.getbands()) != 1:
                raise InputError(
                    f"{name} is a PIL image in mode {mask.mode!r}; a mask needs one band "
                    "(mode '1', 'L', 'P', 'I' or 'I;16')"
                )
            mask = np.asarray(mask)
            if mask.dtype == np.bool_:  # Pillow's mode "1" stores True as the byte 255
                mask = mask.view(np.uint8) != 0
        else:
            raise TypeError(
                f"{name} must be a numpy array or a PIL image, got {type(mask).__name__}; "
                "wrap lists with np.asarray"
            )
    if mask.ndim != 2:
        raise InputError(f"{name} must be 2-D (height, width), got shape {mask.shape}")
    if mask.shape[0] == 0 or mask.shape[1] == 0:
        raise InputError(f"{name} is empty: shape {mask.shape}")
    kind = mask.dtype.kind
    if kind not in "biu":
        hint = " (threshold it first, e.g. mask > 0.5)" if kind == "f" else ""
        raise InputError(f"{name} must be bool or integer, got dtype {mask.dtype}{hint}")
    if kind == "i" and not allow_negative and mask.min() < 0:
        at = np.unravel_index(int(np.argmin(mask)), mask.shape)
        raise InputError(
            f"{name} has a negative value {int(mask[at])} at (row {at[0]}, column {at[1]}); "
            "label ids must be >= 0"
        )
    return mask


@functools.lru_cache(maxsize=4096)
def nearest_index(n_in: int, n_out: int) -> np.ndarray:
    """Source pixel of each of ``n_out`` cells, exactly as Pillow's NEAREST resize picks it."""
    scale = n_in / n_out
    pos = scale * 0.5
    idx = np.empty(n_out, dtype=np.intp)
    for k in range(n_out):
        # Pillow truncates toward zero; pos is never negative here.
        idx[k] = min(int(pos), n_in - 1)
        pos += scale
    idx.setflags(write=False)
    return idx


@functools.lru_cache(maxsize=1024)
def overlap_table(n_in: int, n_out: int):
    """Exact integer overlaps between ``n_in`` pixels and ``n_out`` cells along one axis.

    Returns ``(ptr, idx, w, pptr, pcell, pw)``: for cell ``c`` the pixels
    ``idx[ptr[c]:ptr[c+1]]`` with weights ``w[...]``, and the transpose (for
    pixel ``p`` the cells ``pcell[pptr[p]:pptr[p+1]]`` with weights ``pw``).
    Pixel ``p`` spans ``[p*n_out, (p+1)*n_out)``, cell ``c`` spans
    ``[c*n_in, (c+1)*n_in)``, so each cell's weights sum to ``n_in``.
    """
    ptr = [0]
    idx: list[int] = []
    w: list[int] = []
    per_pixel: list[list[tuple[int, int]]] = [[] for _ in range(n_in)]
    for c in range(n_out):
        lo, hi = c * n_in, (c + 1) * n_in
        for p in range(lo // n_out, (hi - 1) // n_out + 1):
            ov = min((p + 1) * n_out, hi) - max(p * n_out, lo)
            if ov > 0:
                idx.append(p)
                w.append(ov)
                per_pixel[p].append((c, ov))
        ptr.append(len(idx))
    pptr = [0]
    pcell: list[int] = []
    pw: list[int] = []
    for pairs in per_pixel:
        for c, ov in pairs:
            pcell.append(c)
            pw.append(ov)
        pptr.append(len(pcell))
    arrays = tuple(
        np.asarray(a, dtype=np.int64) for a in (ptr, idx, w, pptr, pcell, pw)
    )
    for a in arrays:
        a.setflags(write=False)
    return arrays


def _oriented(mask: np.ndarray, rows: int, cols: int):
    """Return (array to scan row by row, rows, cols, transposed?).

    Masks from ``pycocotools.mask.decode`` are Fortran-ordered; scanning their
    transpose keeps the inner loop contiguous.
    """
    if not mask.flags.c_contiguous and mask.flags.f_contiguous:
        return mask.T, cols, rows, True
    if not mask.flags.c_contiguous:
        mask = np.ascontiguousarray(mask)
    return mask, rows, cols, False


def area_weights(mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Foreground (non-zero) area of each cell, in units of ``1 / (rows * cols)`` pixel.

    A full cell weighs ``H * W``.
    """
    weights, binary = _area_weights(mask, rows, cols)
    if binary:
        return weights
    return _area_weights(mask != 0, rows, cols)[0]


def _area_weights(mask: np.ndarray, rows: int, cols: int):
    """(weights, binary): the weights are only right when ``binary`` (every value 0 or 1)."""
    m, r, c, transposed = _oriented(mask, rows, cols)
    h, w = m.shape
    ytab = overlap_table(h, r)
    xtab = overlap_table(w, c)
    out = np.empty((r, c), dtype=np.int64)
    if m.dtype == np.bool_:
        m = m.view(np.uint8)
    # At most ceil(h / r) pixel rows lie wholly inside one cell row; count them in
    # the narrowest lanes that cannot overflow (the kernel adds 0/1 values).
    inner = -(-h // r)
    full = np.empty(w, dtype=np.uint8 if inner <= 255 else np.int32)
    seen = np.zeros(w, dtype=m.dtype)
    if _k().JIT_DISABLED and m.dtype != np.uint8:
        # As plain Python the lanes would warn about the overflow that the
        # returned flag already reports; compiled, they wrap silently.
        with np.errstate(over="ignore"):
            big = _k().area_binary(m, ytab[0], ytab[1], ytab[2], xtab[0], xtab[1], xtab[2], full, seen, out)
        return (out.T if transposed else out), not big
    big = _k().area_binary(m, ytab[0], ytab[1], ytab[2], xtab[0], xtab[1], xtab[2], full, seen, out)
    return (out.T if transposed else out), not big


def _dense(mask: np.ndarray):
    """Map values to dense ids 0..K-1 (ascending), returning (dense, values)."""
    if mask.dtype.itemsize <= 2 and mask.dtype.kind == "u":
        present = np.zeros(1 << (8 * mask.dtype.itemsize), dtype=np.uint8)
        _k().dense_lut_u16(mask, present)
        values = np.flatnonzero(present)
        lut = np.zeros(present.shape[0], dtype=np.int64)
        lut[values] = np.arange(values.size)
        dense = np.empty(mask.shape, dtype=np.int64)
        _k().apply_lut(mask, lut, dense)
        return dense, values
    values, inverse = np.unique(mask, return_inverse=True)
    return inverse.reshape(mask.shape).astype(np.int64), values


def area_histogram(mask: np.ndarray, rows: int, cols: int):
    """Exact area of every value in every cell: ``(hist[rows, cols, K], values[K])``."""
    m, r, c, transposed = _oriented(mask, rows, cols)
    dense, values = _dense(m)
    if r * c * values.size > _MAX_HIST:
        raise InputError(
            f"mask has {values.size} distinct values; area quantization to a {rows}x{cols} grid "
            f"would need {r * c * values.size} counters (limit {_MAX_HIST})"
        )
    h, w = m.shape
    ytab = overlap_table(h, r)
    xtab = overlap_table(w, c)
    hist = np.zeros((r, c, values.size), dtype=np.int64)
    _k().area_labels(dense, ytab[0], ytab[1], ytab[2], xtab[3], xtab[4], xtab[5], hist)
    if transposed:
        hist = hist.transpose(1, 0, 2)
    return hist, values


def _is_binary(mask: np.ndarray) -> bool:
    return mask.dtype == np.bool_ or int(mask.max()) <= 1


def _restore_missing(mask, out, ignore_index, binary):
    """Give every foreground value of ``mask`` that got no cell the cell with most of its area."""
    rows, cols = out.shape
    if binary:
        if out.any() or not mask.any():
            return out
        weights = area_weights(mask, rows, cols)
        k = int(np.argmax(weights))
        out = out.copy()
        out.flat[k] = 1 if out.dtype != np.bool_ else True
        return out
    hist, values = area_histogram(mask, rows, cols)
    bg = (values == 0) | (values == ignore_index if ignore_index is not None else False)
    present_in_grid = set(np.unique(out).tolist())
    missing = [
        d for d in range(values.size) if not bg[d] and int(values[d]) not in present_in_grid
    ]
    if not missing:
        return out
    out = out.copy()
    totals = hist.sum(axis=(0, 1))
    for d in sorted(missing, key=lambda d: (-int(totals[d]), d)):
        free = (out == 0) | (out == ignore_index if ignore_index is not None else False)
        if not free.any():
            break
        score = np.where(free, hist[:, :, d], -1)
        k = int(np.argmax(score))
        out.flat[k] = values[d]
    return out


def quantize(
    mask,
    /,
    *,
    grid: int | tuple[int, int] = 16,
    method: Method = "nearest",
    threshold: float = 0.5,
    nonempty: bool = False,
    ignore_index: int | None = 255,
) -> np.ndarray:
    """Quantize a mask or label map to a ``rows x cols`` grid.

    Parameters
    ----------
    mask : ndarray or PIL.Image.Image
        A 2-D boolean mask or an integer label map (ids >= 0), C- or
        Fortran-ordered, or a one-band PIL image.
    grid : int or (int, int)
        Number of cells, square or ``(rows, cols)``; each side 1..1024.
    method : {"nearest", "area", "coverage"}
        See the module documentation.  ``"nearest"`` is bit-exact with
        Pillow's NEAREST resize and is what Text4Seg uses.
    threshold : float
        For ``"coverage"``: the covered fraction (0 < threshold <= 1) at which
        a cell becomes foreground.
    nonempty : bool
        When True, a foreground value present in the mask never disappears
        from the grid (see the module documentation).
    ignore_index : int or None
        The value treated like background by ``nonempty`` (255 in semantic
        segmentation datasets).

    Returns
    -------
    ndarray
        ``(rows, cols)`` with the mask's dtype (bool for boolean masks).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((8, 8), dtype=bool); m[2:6, 2:6] = True
    >>> quantize(m, grid=4).astype(int)
    array([[0, 0, 0, 0],
           [0, 1, 1, 0],
           [0, 1, 1, 0],
           [0, 0, 0, 0]])
    """
    mask = as_mask(mask)
    rows, cols = as_grid(grid)
    if method not in _METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(_METHODS)}")
    if method == "nearest":
        out = np.empty((rows, cols), dtype=mask.dtype)
        _k().nearest_sample(
            mask, nearest_index(mask.shape[0], rows), nearest_index(mask.shape[1], cols), out
        )
        if nonempty:
            out = _restore_missing(mask, out, ignore_index, _is_binary(mask))
        return out
    if method == "coverage" and not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
        raise InputError(f"threshold must be in (0, 1], got {threshold!r}")
    # One pass both sums the foreground and tells whether the mask is 0/1, so a
    # binary uint8 mask (what pycocotools gives) costs no separate max().
    weights, binary = _area_weights(mask, rows, cols)
    full = mask.shape[0] * mask.shape[1]
    if method == "coverage":
        if not binary:
            raise InputError(
                "method 'coverage' needs a binary mask (bool, or integers 0/1); "
                "use 'area' for label maps"
            )
        fg = weights >= threshold * full
    elif binary:
        fg = 2 * weights > full  # a tie goes to the lower value, background
    else:
        hist, values = area_histogram(mask, rows, cols)
        out = values[np.argmax(hist, axis=2)].astype(mask.dtype)  # argmax: first, so lowest value
        if nonempty:
            out = _restore_missing(mask, out, ignore_index, False)
        return out
    out = fg.astype(mask.dtype)
    if nonempty and not out.any() and weights.any():
        out.flat[int(np.argmax(weights))] = 1
    return out
