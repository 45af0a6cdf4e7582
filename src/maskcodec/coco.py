"""COCO interop: RLE dicts and polygons <-> grids, masks and Text4Seg text.

COCO stores an instance mask as a run-length encoding (RLE) dict
``{"size": [height, width], "counts": ...}`` or as polygons.  This module turns
them into maskcodec grids and answer text without decoding the full mask, and
turns grids back into RLE that is byte-identical to what
``pycocotools.mask.encode`` writes for the rendered mask.

Format
------
``counts`` lists run lengths over the pixels in *column-major* order (pixel
``(y, x)`` is at position ``x * height + y``), starting with a background run
(of length 0 when the first pixel is foreground) and alternating.  It is
either a list of ints ("uncompressed", used for crowd annotations) or a
compressed ``str``/``bytes``: from the fourth count on each count is stored
minus the count two places earlier, as little-endian 5-bit groups, each
written as the character ``chr(48 + bits)`` with ``0x20`` set when another
group follows and ``0x10`` of the last group the sign.  The counts must sum to
``height * width``.

Polygons are a list of flat ``[x0, y0, x1, y1, ...]`` lists in pixel
coordinates; they are rasterised by pycocotools itself (so the result is
exactly COCO's), then handled as RLE.  Several parts of one object (a list of
polygons, a list of RLE dicts) are merged into their union.

Quantization follows :func:`maskcodec.quantize` exactly: ``"nearest"`` reads
one pixel per cell straight from the runs (one pass over the runs and the
cells), ``"area"`` and ``"coverage"`` integrate the runs against the exact
integer overlap weights.  The results equal
``maskcodec.quantize(pycocotools.mask.decode(rle), ...)`` value for value and
dtype for dtype (``uint8``), which the test suite checks on every shared COCO
mask.

pycocotools is imported only for polygons, so ``import maskcodec.coco`` is
cheap.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ._errors import InputError, LabelError
from ._labels import check_label
from .grid import MAX_PIXELS, LabelGrid, _src_index, as_size
from .quantize import Method, as_grid, nearest_index, overlap_table

__all__ = [
    "encode_annotation",
    "grid_to_rle",
    "mask_to_rle",
    "rle_to_grid",
    "rle_to_mask",
    "text_to_rle",
    "to_rle",
]

_METHODS = ("nearest", "area", "coverage")


def _ck():
    from . import _coco_kernels

    return _coco_kernels


# --------------------------------------------------------------------------- reading RLE


def _int_pair(value, what: str) -> tuple[int, int]:
    if (
        isinstance(value, (list, tuple, np.ndarray))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        h, w = int(value[0]), int(value[1])
        if h >= 1 and w >= 1:
            if h * w > MAX_PIXELS:  # before a count-sum check could let a huge mask be allocated
                raise InputError(f"{what} {h}x{w} is more than MAX_PIXELS={MAX_PIXELS} pixels")
            return h, w
    raise InputError(f"{what} must be [height, width] with two positive ints, got {_short(value)}")


def _short(value) -> str:
    """repr of a value from a file, cut to 80 characters (a 400-digit int stays readable)."""
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _counts_of(rle, name: str = "rle") -> tuple[int, int, np.ndarray]:
    """Check one RLE dict (a Mapping) and return ``(height, width, counts as int64)``."""
    missing = [k for k in ("size", "counts") if k not in rle]
    if missing:
        raise InputError(
            f"{name} is missing {' and '.join(repr(k) for k in missing)}; a COCO RLE dict has "
            f"'size' ([height, width]) and 'counts'; got keys {sorted(map(str, rle))}"
        )
    h, w = _int_pair(rle["size"], f"{name}['size']")
    counts = rle["counts"]
    if isinstance(counts, str):
        try:
            counts = counts.encode("ascii")
        except UnicodeEncodeError:
            bad = next(ch for ch in counts if ord(ch) > 127)
            raise InputError(
                f"{name}['counts'] is not a compressed RLE string: it contains {bad!r}"
            ) from None
    if isinstance(counts, (bytes, bytearray, memoryview)):
        buf = np.frombuffer(counts, dtype=np.uint8)
        cnts = np.empty(max(buf.size, 1), dtype=np.int64)
        n = _ck().counts_from_string(buf, cnts)
        if n < 0:
            p = -1 - n
            if p >= buf.size:
                raise InputError(f"{name}['counts'] is not a compressed RLE string: it ends inside a count")
            raise InputError(
                f"{name}['counts'] is not a compressed RLE string: byte {bytes(buf[p : p + 1])!r} "
                f"at offset {p} (valid characters are '0'..'o', chr(48)..chr(111))"
            )
        cnts = cnts[:n]
    elif isinstance(counts, (list, tuple, np.ndarray)):
        arr = np.asarray(counts)
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise InputError(
                f"{name}['counts'] must be a flat list of ints (uncompressed RLE) or a compressed "
                f"string, got {arr.dtype} values of shape {arr.shape}"
            )
        cnts = arr.astype(np.int64)
    else:
        raise TypeError(
            f"{name}['counts'] must be a str/bytes (compressed RLE) or a list of ints, "
            f"got {type(counts).__name__}"
        )
    if cnts.size == 0:
        raise InputError(f"{name}['counts'] is empty; the counts must sum to height * width = {h * w}")
    total, neg = _ck().count_stats(cnts, cnts.size)
    if neg >= 0:
        raise InputError(f"{name}['counts'] has a negative count {int(cnts[neg])} at index {neg}")
    if total != h * w:
        raise InputError(
            f"{name}['counts'] sum to {int(total)}, but size {h}x{w} needs height * width = {h * w}"
        )
    return h, w, cnts


def _union(parts: list[tuple[int, int, np.ndarray]], name: str) -> tuple[int, int, np.ndarray]:
    h, w, cnts = parts[0]
    for i, (h2, w2, other) in enumerate(parts[1:], 1):
        if (h2, w2) != (h, w):
            raise InputError(f"{name}: part {i} has size {h2}x{w2} but part 0 has {h}x{w}; parts must agree")
        out = np.empty(cnts.size + other.size + 1, dtype=np.int64)
        n = _ck().union_counts(cnts, cnts.size, other, other.size, out)
        cnts = out[:n]
    return h, w, cnts


def _polygons(polys, size, name: str) -> tuple[int, int, np.ndarray]:
    if size is None:
        raise InputError(f"{name} holds polygons; pass size=(height, width) of the image to rasterise them")
    h, w = as_size(size)
    flat = []
    for i, poly in enumerate(polys):
        arr = np.asarray(poly, dtype=np.float64) if not isinstance(poly, Mapping) else None
        if arr is None or arr.ndim != 1 or arr.size < 2 or arr.size % 2:
            raise InputError(
                f"{name}[{i}] is not a polygon: a polygon is a flat [x0, y0, x1, y1, ...] list "
                f"with an even number of coordinates, got {poly!r:.80}"
            )
        if not np.isfinite(arr).all():
            raise InputError(f"{name}[{i}] has a non-finite coordinate")
        flat.append(arr)
    # pycocotools.mask.frPyObjects would read a 4-number polygon as a box: call its
    # polygon rasteriser directly so every polygon is a polygon.
    from pycocotools import _mask

    parts = [_counts_of(r, name) for r in _mask.frPoly(flat, h, w)]
    return _union(parts, name)


def _segmentation(segm, size, name: str = "segmentation") -> tuple[int, int, np.ndarray]:
    """Any COCO segmentation (annotation, RLE, list of RLEs, polygons) -> merged runs."""
    if isinstance(segm, Mapping) and "segmentation" in segm and "counts" not in segm:
        return _segmentation(segm["segmentation"], size, f"{name}['segmentation']")
    if isinstance(segm, Mapping):
        h, w, cnts = _counts_of(segm, name)
    elif isinstance(segm, (list, tuple)):
        if not segm:
            if size is None:
                raise InputError(f"{name} is an empty list; pass size=(height, width) to get an empty mask")
            h, w = as_size(size)
            return h, w, np.array([h * w], dtype=np.int64)
        if all(isinstance(s, Mapping) for s in segm):
            h, w, cnts = _union([_counts_of(s, f"{name}[{i}]") for i, s in enumerate(segm)], name)
        elif any(isinstance(s, Mapping) for s in segm):
            raise InputError(f"{name} mixes RLE dicts and polygons; give one kind")
        elif all(isinstance(v, (int, float, np.number)) for v in segm):
            h, w, cnts = _polygons([segm], size, name)  # a single flat polygon
        else:
            h, w, cnts = _polygons(segm, size, name)
    else:
        raise TypeError(
            f"{name} must be a COCO RLE dict, a list of them, a list of polygons or an annotation "
            f"dict with 'segmentation', got {type(segm).__name__}"
        )
    if size is not None and as_size(size) != (h, w):
        raise InputError(f"{name} has size {h}x{w} but size={tuple(size)!r} was given")
    return h, w, cnts


# --------------------------------------------------------------------------- writing RLE


def _rle(h: int, w: int, cnts: np.ndarray, n: int) -> dict:
    out = np.empty(13 * n + 1, dtype=np.uint8)
    k = _ck().counts_to_string(cnts, n, out)
    return {"size": [h, w], "counts": out[:k].tobytes()}


def to_rle(segmentation, /, *, size=None) -> dict:
    """Any COCO segmentation as one compressed RLE dict (the union of its parts).

    Parameters
    ----------
    segmentation : dict or list
        An RLE dict (compressed or uncompressed ``counts``), a list of RLE
        dicts, a list of polygons, or a COCO annotation dict holding one of
        those under ``"segmentation"``.
    size : (int, int), optional
        ``(height, width)`` of the image; needed for polygons, checked for RLE.

    Returns
    -------
    dict
        ``{"size": [height, width], "counts": bytes}`` as
        ``pycocotools.mask.encode`` would write it (``counts.decode("ascii")``
        for JSON).

    Examples
    --------
    >>> to_rle({"size": [2, 3], "counts": [1, 2, 3]})
    {'size': [2, 3], 'counts': b'123'}
    >>> to_rle([[0, 0, 2, 0, 2, 2, 0, 2]], size=(4, 4))
    {'size': [4, 4], 'counts': b'02208'}
    """
    h, w, cnts = _segmentation(segmentation, size)
    if cnts.size > 1 and not cnts[1:].all():
        # pycocotools writes no empty run after the first: merge them away.
        cnts = _canonical(cnts)
    return _rle(h, w, cnts, cnts.size)


def _canonical(cnts: np.ndarray) -> np.ndarray:
    """Drop empty runs after the first (merging their neighbours), as pycocotools never writes them."""
    out: list[int] = [int(cnts[0])]
    for i, c in enumerate(cnts[1:].tolist(), 1):
        if c == 0:
            continue
        if (len(out) - 1) % 2 == i % 2:  # same value as the last run kept
            out[-1] += c
        else:
            out.append(c)
    return np.asarray(out, dtype=np.int64)


def rle_to_mask(rle, /, *, size=None) -> np.ndarray:
    """Decode a COCO segmentation to a boolean ``(height, width)`` mask.

    Unlike ``pycocotools.mask.decode`` this checks the dict (missing keys,
    wrong size, counts that do not sum to ``height * width``, negative counts,
    bad characters) and raises :class:`maskcodec.InputError` with a clear
    message instead of reading past the data.  A list of RLE dicts or of
    polygons (with ``size``) is decoded to the union of its parts.

    Returns
    -------
    ndarray of bool
        ``(height, width)``, Fortran-ordered (COCO's native order; index it as
        usual, ``np.ascontiguousarray`` if a C-ordered copy is needed).

    Examples
    --------
    >>> rle_to_mask({"size": [2, 3], "counts": b"123"}).astype(int)
    array([[0, 1, 0],
           [1, 0, 0]])
    """
    h, w, cnts = _segmentation(rle, size, "rle")
    flat = np.empty(h * w, dtype=np.uint8)
    _ck().fill_from_counts(cnts, cnts.size, flat)
    return flat.view(np.bool_).reshape(w, h).T


def mask_to_rle(mask, /) -> dict:
    """Encode a 2-D mask as a compressed COCO RLE dict.

    Accepts what ``pycocotools.mask.encode`` rejects: C-ordered arrays, bool
    arrays and any integer dtype (non-zero is foreground).  For a 0/1 mask the
    result is byte-identical to
    ``pycocotools.mask.encode(np.asfortranarray(mask.astype(np.uint8)))``.

    Examples
    --------
    >>> import numpy as np
    >>> mask_to_rle(np.array([[0, 1, 0], [1, 0, 0]], dtype=bool))
    {'size': [2, 3], 'counts': b'123'}
    """
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"mask must be a numpy array, got {type(mask).__name__}; wrap lists with np.asarray")
    if mask.ndim != 2:
        hint = "; encode each mask of a stack separately" if mask.ndim == 3 else ""
        raise InputError(f"mask must be 2-D (height, width), got shape {mask.shape}{hint}")
    if mask.shape[0] == 0 or mask.shape[1] == 0:
        raise InputError(f"mask is empty: shape {mask.shape}")
    if mask.dtype.kind not in "biu":
        raise InputError(f"mask must be bool or integer, got dtype {mask.dtype}")
    h, w = mask.shape
    if mask.dtype.itemsize != 1:
        mask = mask != 0
    # A view for Fortran-ordered masks; one transposing copy otherwise, which is
    # still faster than scanning a C-ordered mask column by column.
    flat = mask.ravel(order="F").view(np.uint8)
    words = flat[: flat.size - flat.size % 8].view(np.uint64)
    cnts = np.empty(flat.size + 1, dtype=np.int64)
    n = _ck().counts_from_flat(flat, words, cnts)
    return _rle(h, w, cnts, n)


def _cells(grid, label) -> np.ndarray:
    if isinstance(grid, LabelGrid):
        if label is None:
            return grid.ids
        return grid.mask(label=label).view(np.uint8)
    if label is not None:
        raise InputError("label= needs a LabelGrid (an array has no label names)")
    arr = np.asarray(grid)
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"grid must be a LabelGrid or a non-empty 2-D array, got shape {arr.shape}")
    if arr.dtype.kind not in "biu":
        raise InputError(f"grid must be bool or integer, got dtype {arr.dtype}")
    return arr.view(np.uint8) if arr.dtype == np.bool_ else arr


def grid_to_rle(grid, /, size, *, label: str | None = None, align: str = "corner") -> dict:
    """The COCO RLE of the mask a grid renders to at ``size = (height, width)``.

    Byte-identical to ``pycocotools.mask.encode(np.asfortranarray(m))`` with
    ``m = grid.mask(size, label=label, align=align).astype(np.uint8)``, computed
    from the grid without rendering the mask.

    Parameters
    ----------
    grid : LabelGrid or array
        A grid; every non-background cell (non-zero for an array) is foreground.
    size : (int, int)
        ``(height, width)`` of the image.
    label : str, optional
        Only this label is foreground (a :class:`~maskcodec.LabelGrid` only).
    align : {"corner", "center"}
        As in :func:`maskcodec.render`.

    Examples
    --------
    >>> from maskcodec import LabelGrid
    >>> grid_to_rle(LabelGrid([[0, 1], [1, 0]], ["others", "dog"]), (4, 4))
    {'size': [4, 4], 'counts': b'22220N0'}
    """
    h, w = as_size(size)
    if align not in ("corner", "center"):
        raise InputError(f"unknown align {align!r}; choose 'corner' or 'center'")
    cells = _cells(grid, label)
    rows = cells.shape[0]
    ylen = np.bincount(_src_index(h, rows, align), minlength=rows)
    xs = _src_index(w, cells.shape[1], align)
    cnts = np.empty(rows * w + 1, dtype=np.int64)
    n = _ck().counts_from_grid(cells, ylen, xs, cnts)
    return _rle(h, w, cnts, n)


def text_to_rle(text: str, /, *, size, grid=None, mode: str = "repair", label: str | None = None, **options) -> dict:
    """Decode answer text straight to the COCO RLE of its mask at ``size``.

    For COCO-style evaluation of model output: :func:`maskcodec.parse` (with
    ``mode``, ``grid`` and ``options``), then :func:`grid_to_rle`.

    Examples
    --------
    >>> text_to_rle("<seg>others *1| dog *1\\n dog *2\\n</seg>", size=(2, 4))
    {'size': [2, 4], 'counts': b'1114'}
    """
    from ._parser import parse

    return grid_to_rle(parse(text, grid=grid, mode=mode, **options).grid, size, label=label)


# --------------------------------------------------------------------------- grids


def _area_weights(h: int, w: int, cnts: np.ndarray, rows: int, cols: int) -> np.ndarray:
    xtab = overlap_table(w, cols)
    out = np.zeros((rows, cols), dtype=np.int64)
    _ck().area_from_counts(cnts, cnts.size, h, rows, xtab[3], xtab[4], xtab[5], out)
    return out


def rle_to_grid(
    segmentation,
    /,
    *,
    grid: int | tuple[int, int] = 16,
    method: Method = "nearest",
    size=None,
    threshold: float = 0.5,
    nonempty: bool = False,
) -> np.ndarray:
    """Quantize a COCO segmentation to a ``(rows, cols)`` grid without decoding it.

    Equal to ``maskcodec.quantize(pycocotools.mask.decode(rle), grid=grid,
    method=method, ...)`` (a ``uint8`` array of 0/1), computed from the runs.

    Parameters
    ----------
    segmentation : dict or list
        An RLE dict (compressed or not), a list of RLE dicts, a list of
        polygons (needs ``size``) or an annotation dict; parts are merged.
    grid, method, threshold, nonempty
        As in :func:`maskcodec.quantize`.
    size : (int, int), optional
        ``(height, width)``; required for polygons, checked against RLE.

    Examples
    --------
    Column 3 of a 4x4 image is foreground in rows 0..2 (runs are column-major):

    >>> rle = {"size": [4, 4], "counts": [12, 3, 1]}
    >>> rle_to_grid(rle, grid=2)
    array([[0, 1],
           [0, 0]], dtype=uint8)
    >>> rle_to_grid(rle, grid=2, method="area")  # half of the cell: a tie, background
    array([[0, 0],
           [0, 0]], dtype=uint8)
    >>> rle_to_grid(rle, grid=2, method="coverage", threshold=0.5)
    array([[0, 1],
           [0, 0]], dtype=uint8)
    """
    rows, cols = as_grid(grid)
    if method not in _METHODS:
        raise InputError(f"unknown method {method!r}; choose one of {', '.join(_METHODS)}")
    if method == "coverage" and not (
        isinstance(threshold, (int, float)) and not isinstance(threshold, bool) and 0.0 < threshold <= 1.0
    ):
        raise InputError(f"threshold must be in (0, 1], got {threshold!r}")
    h, w, cnts = _segmentation(segmentation, size)
    if method == "nearest":
        out = np.empty((rows, cols), dtype=np.uint8)
        _ck().nearest_from_counts(cnts, cnts.size, h, nearest_index(h, rows), nearest_index(w, cols), out)
        if nonempty and not out.any():
            weights = _area_weights(h, w, cnts, rows, cols)
            if weights.any():  # every foreground pixel weighs > 0 somewhere
                out.flat[int(np.argmax(weights))] = 1
        return out
    weights = _area_weights(h, w, cnts, rows, cols)
    full = h * w
    if method == "coverage":
        fg = weights >= threshold * full
    else:
        fg = 2 * weights > full  # a tie goes to the background, as in quantize
    out = fg.astype(np.uint8)
    if nonempty and not out.any() and weights.any():
        out.flat[int(np.argmax(weights))] = 1
    return out


def encode_annotation(
    segmentation,
    /,
    label: str,
    *,
    grid: int | tuple[int, int] = 16,
    method: Method = "nearest",
    size=None,
    format: str = "rrle",
    background: str = "others",
    envelope: bool = True,
    threshold: float = 0.5,
    nonempty: bool = False,
) -> str:
    """Answer text for a COCO annotation, RLE or polygons, without decoding the mask.

    Equal to ``maskcodec.encode_mask(pycocotools.mask.decode(rle), label, ...)``
    with the same options.

    Examples
    --------
    >>> ann = {"id": 1, "segmentation": {"size": [4, 4], "counts": [12, 3, 1]}}
    >>> print(encode_annotation(ann, "dog", grid=2))
    <seg>others *1| dog *1
     others *2
    </seg>
    """
    from .text import to_text

    check_label(label)
    check_label(background)
    if label == background:
        raise LabelError(f"the foreground label {label!r} equals the background label")
    cells = rle_to_grid(
        segmentation, grid=grid, method=method, size=size, threshold=threshold, nonempty=nonempty
    )
    return to_text(LabelGrid._trusted(cells, (background, label)), format=format, envelope=envelope)

