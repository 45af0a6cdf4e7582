"""Polygon text: masks as simplified polygons, written as normalised coordinates or loc tokens.

Many recent multimodal models answer segmentation prompts with polygons
instead of grids.  This module turns a binary mask into polygon rings within
a vertex budget, writes them in two text forms, and renders them back.

Geometry and pixel convention
-----------------------------
Coordinates are ``(x, y)`` in *pixel-corner* units: pixel ``(row, col)``
covers the square ``col <= x <= col + 1``, ``row <= y <= row + 1``, so an
image of size ``(height, width)`` spans ``[0, width] x [0, height]``.
:func:`trace` follows the cracks between foreground and background pixels,
so its rings pass through pixel corners; outer rings run clockwise on
screen (y down) and holes counter-clockwise.  Diagonal neighbours belong to
one ring with ``connectivity=8`` (the default, as in COCO), to two with 4.

:func:`rasterize` fills a pixel when its *centre* ``(col + 0.5, row + 0.5)``
lies inside an odd number of rings (the even-odd rule), so holes need no
marking and the traced rings of any mask render back to exactly that mask.
Pillow's ``ImageDraw.polygon`` is not used for this because it also fills
every pixel whose centre lies on the outline and rounds fractional vertices,
which grows each shape by about half a pixel all round and cannot
reproduce a mask exactly.

Text forms
----------
``format="json"``
    Coordinates divided by the width and height, rounded to ``decimals``
    (default 3): one ring is ``[[x, y], [x, y], ...]``, several are a list of
    rings ``[[[x, y], ...], [[x, y], ...]]``; no mask at all is ``[]``.
``format="loc"``
    Florence-2 style location tokens: each coordinate becomes
    ``<loc_N>`` with ``N = min(999, floor(1000 * x / width))`` (and the same
    for y over the height), read back as the bin centre ``(N + 0.5) * width
    / 1000``; vertices are ``<loc_x><loc_y>`` pairs and rings are separated by
    ``<sep>``.  In a model that has the 1000 loc tokens in its vocabulary each
    costs one token; in plain text every ``<loc_N>`` costs several.

Both grammars, in EBNF::

    json_text = "[]" | ring | "[" , ring , { ", " , ring } , "]" ;
    ring      = "[" , point , { ", " , point } , "]" ;       (3 points at least)
    point     = "[" , number , ", " , number , "]" ;           (0 <= number <= 1)
    loc_text  = [ loc_ring , { "<sep>" , loc_ring } ] ;
    loc_ring  = loc_pair , loc_pair , loc_pair , { loc_pair } ;
    loc_pair  = loc , loc ;
    loc       = "<loc_" , ( "0" | nonzero , { digit } ) , ">" ;   (at most 999)

(the JSON parser also accepts any JSON whitespace and number syntax).

What is lost
------------
Simplification (Douglas-Peucker with one tolerance for every ring, the
smallest that fits ``max_vertices``) cuts corners, and rings that shrink
below three vertices disappear, smallest parts first.  Holes are kept
unless ``holes=False``.  Quantization moves each vertex by at most half a
bin (``loc``) or half a unit of the last decimal (``json``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np

from ._errors import InputError, ParseError
from .grid import as_size
from .quantize import as_mask

__all__ = [
    "FORMATS",
    "decode_polygons",
    "encode_polygons",
    "from_text",
    "mask_to_polygons",
    "rasterize",
    "simplify",
    "to_text",
    "trace",
]

Format = Literal["json", "loc"]
FORMATS: Final = ("json", "loc")
LOC_BINS: Final = 1000
SEP: Final = "<sep>"
_LOC = re.compile(r"<loc_(0|[1-9][0-9]{0,2})>")


# =========================================================================== tracing

# Directions: 0 east (+x), 1 south (+y), 2 west, 3 north.
_DX = (1, 0, -1, 0)
_DY = (0, 1, 0, -1)


def trace(mask, /, *, connectivity: int = 8) -> list[np.ndarray]:
    """Every boundary ring of ``mask``: outer rings clockwise, holes counter-clockwise.

    Each ring is a ``(k, 2)`` float array of ``(x, y)`` pixel corners where the
    boundary turns, not closed (the last vertex joins the first).

    Examples
    --------
    >>> m = np.zeros((4, 5), bool); m[1:3, 1:4] = True
    >>> trace(m)[0].astype(int).tolist()
    [[1, 1], [4, 1], [4, 3], [1, 3]]
    >>> ring = np.ones((3, 3), bool); ring[1, 1] = False
    >>> [r.shape[0] for r in trace(ring)]  # the outside, then the hole
    [4, 4]
    """
    m = as_mask(mask)
    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8, got {connectivity!r}")
    m = m != 0
    h, w = m.shape
    p = np.zeros((h + 2, w + 2), dtype=bool)
    p[1:-1, 1:-1] = m
    # Crack edges, foreground on the right of the direction of travel.
    # Horizontal cracks at corner row y between pixel rows y-1 and y (padded indices y, y+1).
    above, below = p[:-1, 1:-1], p[1:, 1:-1]  # shape (h + 1, w)
    left, right = p[1:-1, :-1], p[1:-1, 1:]  # shape (h, w + 1)
    out: dict[tuple[int, int], list[int]] = {}
    for y, x in zip(*np.nonzero(below & ~above)):  # top side of a fg pixel: east from (x, y)
        out.setdefault((int(x), int(y)), []).append(0)
    for y, x in zip(*np.nonzero(above & ~below)):  # bottom side: west from (x + 1, y)
        out.setdefault((int(x) + 1, int(y)), []).append(2)
    for y, x in zip(*np.nonzero(left & ~right)):  # right side of a fg pixel: south from (x, y)
        out.setdefault((int(x), int(y)), []).append(1)
    for y, x in zip(*np.nonzero(right & ~left)):  # left side: north from (x, y + 1)
        out.setdefault((int(x), int(y) + 1), []).append(3)
    rings = []
    # Start each ring at its top-left-most unused east edge, so the output order is stable.
    starts = sorted((v for v, ds in out.items() if 0 in ds), key=lambda v: (v[1], v[0]))
    for start in starts:
        if 0 not in out.get(start, ()):
            continue  # its east edge was walked by an earlier ring
        verts = [start]
        out[start].remove(0)
        x, y = start[0] + 1, start[1]
        prev = 0
        while True:
            ds = out.get((x, y), [])
            if (x, y) == start:
                ds = [*ds, 0]  # the edge the ring started with closes it
            if len(ds) == 1:
                d = ds[0]
            else:  # a saddle: turn left to join diagonal pixels (8), right to split them (4)
                turn = (prev + 3) % 4 if connectivity == 8 else (prev + 1) % 4
                d = turn if turn in ds else ds[0]
            if (x, y) == start and d == 0:
                break
            if d != prev:
                verts.append((x, y))
            out[(x, y)].remove(d)
            x, y = x + _DX[d], y + _DY[d]
            prev = d
        if prev == 0:  # arrived going east: the start is not a corner
            verts.pop(0)
        rings.append(np.asarray(verts, dtype=np.float64))
    return rings


def _signed_area(ring: np.ndarray) -> float:
    """Shoelace area; positive for clockwise rings on screen (y down)."""
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


# =========================================================================== simplification


def _dp_open(pts: np.ndarray, eps: float) -> np.ndarray:
    """Douglas-Peucker keep-flags for an open polyline (both ends kept)."""
    n = len(pts)
    keep = np.zeros(n, dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, n - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg = pts[b] - pts[a]
        rel = pts[a + 1 : b] - pts[a]
        # distance to the segment (not its line), so a kept chord is within eps of every point
        len2 = float(seg[0] * seg[0] + seg[1] * seg[1])
        t = np.clip(rel @ seg / len2, 0.0, 1.0) if len2 > 0 else np.zeros(len(rel))
        dist = np.hypot(rel[:, 0] - t * seg[0], rel[:, 1] - t * seg[1])
        i = int(np.argmax(dist))
        if dist[i] > eps:
            k = a + 1 + i
            keep[k] = True
            stack.append((a, k))
            stack.append((k, b))
    return keep


def simplify(ring, /, epsilon: float) -> np.ndarray:
    """Douglas-Peucker simplification of a closed ring at tolerance ``epsilon`` (pixels).

    The ring is split at its first vertex and the vertex farthest from it,
    and each half is simplified as an open polyline.

    Examples
    --------
    >>> sq = np.array([[0, 0], [1, 0.1], [2, 0], [2, 2], [0, 2]], float)
    >>> simplify(sq, 0.5).tolist()
    [[0.0, 0.0], [2.0, 0.0], [2.0, 2.0], [0.0, 2.0]]
    """
    pts = np.asarray(ring, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(f"a ring must be a (k, 2) array of (x, y), got shape {pts.shape}")
    if len(pts) <= 3 or epsilon <= 0:
        return pts.copy()
    far = int(np.argmax(np.hypot(*(pts - pts[0]).T)))
    if far == 0:
        return pts[:1].copy()
    first = pts[: far + 1]
    second = np.vstack([pts[far:], pts[:1]])
    k1 = _dp_open(first, epsilon)
    k2 = _dp_open(second, epsilon)
    return np.vstack([first[k1], second[k2][1:-1]])


def mask_to_polygons(
    mask,
    /,
    *,
    max_vertices: int | None = None,
    epsilon: float | None = None,
    holes: bool = True,
    connectivity: int = 8,
) -> list[np.ndarray]:
    """Trace ``mask`` and simplify its rings to at most ``max_vertices`` vertices in all.

    With ``epsilon`` the tolerance is fixed; with ``max_vertices`` it is the
    smallest (to 1% of the search range, by bisection) that fits the budget;
    with neither the traced rings are returned exactly.  Rings left with fewer
    than three vertices are dropped; if the budget is still exceeded the
    smallest rings are dropped until it fits.

    Examples
    --------
    >>> m = np.zeros((50, 50), bool); m[10:40, 5:45] = True; m[20:30, 20:30] = False
    >>> [len(r) for r in mask_to_polygons(m)], [len(r) for r in mask_to_polygons(m, holes=False)]
    ([4, 4], [4])
    """
    rings = trace(mask, connectivity=connectivity)
    if not holes:
        rings = [r for r in rings if _signed_area(r) > 0]
    if epsilon is not None:
        rings = [simplify(r, epsilon) for r in rings]
    elif max_vertices is not None:
        if not isinstance(max_vertices, (int, np.integer)) or max_vertices < 3:
            raise InputError(f"max_vertices must be an int >= 3, got {max_vertices!r}")
        if sum(len(r) for r in rings) > max_vertices:
            lo, hi = 0.0, float(max(np.shape(mask)))
            best = None
            for _ in range(20):
                mid = (lo + hi) / 2
                cand = [s for s in (simplify(r, mid) for r in rings) if len(s) >= 3]
                if sum(len(s) for s in cand) <= max_vertices:
                    best, hi = cand, mid
                else:
                    lo = mid
                if hi - lo < 0.01 * hi:
                    break
            rings = best if best is not None else [s for s in (simplify(r, hi) for r in rings) if len(s) >= 3]
        while rings and sum(len(r) for r in rings) > max_vertices:
            rings.remove(min(rings, key=lambda r: abs(_signed_area(r))))
    return [r for r in rings if len(r) >= 3]


# =========================================================================== rendering


def rasterize(polygons: Sequence, /, size, *,
              method: Literal["even-odd", "pillow"] = "even-odd") -> np.ndarray:
    """Fill ``polygons`` (rings of ``(x, y)`` pixel-corner coordinates) by the even-odd rule.

    With ``method="even-odd"`` (the default) a pixel is foreground when its
    centre lies inside an odd number of rings; traced rings come back exactly.
    ``method="pillow"`` draws each ring with ``PIL.ImageDraw.polygon`` (vertices
    passed unchanged, outline pixels included) and XORs the rings, as
    pipelines built on Pillow do: on the COCO masks it adds about 2% of
    pixels to an exact ring (cIoU 0.981) and gives cIoU 0.944 instead of 0.949
    for 16-vertex polygons.

    Examples
    --------
    >>> rasterize([[[0, 0], [4, 0], [0, 3]]], (3, 4)).astype(int)
    array([[1, 1, 1, 0],
           [1, 1, 0, 0],
           [1, 0, 0, 0]])
    """
    h, w = as_size(size)
    if method not in ("even-odd", "pillow"):
        raise InputError(f"unknown method {method!r}; choose 'even-odd' or 'pillow'")
    rings = []
    for ring in polygons:
        pts = np.asarray(ring, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
            raise InputError(f"a ring must be a (k >= 3, 2) array of (x, y), got shape {pts.shape}")
        if not np.isfinite(pts).all():
            raise InputError("ring coordinates must be finite")
        rings.append(pts)
    if method == "pillow":
        from PIL import Image, ImageDraw

        out = np.zeros((h, w), dtype=bool)
        for pts in rings:
            img = Image.new("1", (w, h), 0)
            ImageDraw.Draw(img).polygon([(float(x), float(y)) for x, y in pts], fill=1)
            out ^= np.asarray(img)
        return out
    from . import _kernels

    # One numba pass: memory O(pixels + vertices) whatever the number of edge/row crossings.
    out = np.zeros((h, w), dtype=bool)
    if rings:
        xs = np.ascontiguousarray(np.concatenate([r[:, 0] for r in rings]))
        ys = np.ascontiguousarray(np.concatenate([r[:, 1] for r in rings]))
        starts = np.zeros(len(rings) + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rings], out=starts[1:])
        toggles = np.zeros((h, w + 1), dtype=np.uint8)
        _kernels.polygon_fill(xs, ys, starts, toggles, out.view(np.uint8))
    return out


# =========================================================================== text


def _fmt(v: float, decimals: int) -> str:
    s = f"{v:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s


def to_text(polygons: Sequence, /, size, *, format: Format = "json", decimals: int = 3) -> str:
    """Write rings (pixel-corner coordinates in an image of ``size``) as text.

    Examples
    --------
    >>> tri = [np.array([[0, 0], [64, 0], [0, 48]])]
    >>> to_text(tri, (480, 640))
    '[[0, 0], [0.1, 0], [0, 0.1]]'
    >>> to_text(tri, (480, 640), format="loc")
    '<loc_0><loc_0><loc_100><loc_0><loc_0><loc_100>'
    """
    h, w = as_size(size)
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    rings = [np.asarray(r, dtype=np.float64) for r in polygons]
    for r in rings:
        if r.ndim != 2 or r.shape[1] != 2 or len(r) < 3:
            raise InputError(f"a ring must be a (k >= 3, 2) array of (x, y), got shape {r.shape}")
    if format == "loc":
        parts = []
        for r in rings:
            qx = np.clip(np.floor(r[:, 0] * LOC_BINS / w), 0, LOC_BINS - 1).astype(int)
            qy = np.clip(np.floor(r[:, 1] * LOC_BINS / h), 0, LOC_BINS - 1).astype(int)
            parts.append("".join(f"<loc_{a}><loc_{b}>" for a, b in zip(qx.tolist(), qy.tolist())))
        return SEP.join(parts)
    if not isinstance(decimals, int) or not 0 <= decimals <= 8:
        raise InputError(f"decimals must be an int in 0..8, got {decimals!r}")
    texts = []
    for r in rings:
        nx = np.clip(r[:, 0] / w, 0.0, 1.0)
        ny = np.clip(r[:, 1] / h, 0.0, 1.0)
        points = (f"[{_fmt(a, decimals)}, {_fmt(b, decimals)}]" for a, b in zip(nx, ny))
        texts.append("[" + ", ".join(points) + "]")
    if len(texts) == 1:
        return texts[0]
    return "[" + ", ".join(texts) + "]"


def _no_constant(name: str):
    raise ValueError(f"{name} is not a coordinate")


def _json_rings(text: str) -> list[np.ndarray]:
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise ParseError(f"not JSON: {err.msg}", text, err.pos, "JSON") from None
    except (ValueError, RecursionError) as err:
        raise ParseError(f"not a polygon: {err}", text, 0, "numbers in 0..1") from None
    if not isinstance(data, list):
        raise ParseError("expected a list of points or of rings", text, 0, "'['")
    if not data:
        return []

    def is_point(v):
        return (isinstance(v, list) and len(v) == 2
                and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in v))

    rings = [data] if is_point(data[0]) else data
    out = []
    for i, ring in enumerate(rings):
        if not isinstance(ring, list) or not all(is_point(p) for p in ring):
            raise ParseError(f"ring {i + 1} is not a list of [x, y] number pairs", text, 0, "[[x, y], ...]")
        if len(ring) < 3:
            raise ParseError(f"ring {i + 1} has {len(ring)} points; a ring needs 3", text, 0,
                             "3 points or more")
        try:
            arr = np.asarray(ring, dtype=np.float64)
        except OverflowError:  # an int of hundreds of digits does not fit a float
            raise ParseError(f"ring {i + 1} has a coordinate outside 0..1", text, 0, "numbers in 0..1") from None
        if not (np.isfinite(arr).all() and (arr >= 0).all() and (arr <= 1).all()):
            raise ParseError(f"ring {i + 1} has a coordinate outside 0..1", text, 0, "numbers in 0..1")
        out.append(arr)
    return out


def _loc_rings(text: str) -> list[np.ndarray]:
    if not text:
        return []
    rings = []
    pos = 0
    vals: list[int] = []
    while True:
        m = _LOC.match(text, pos)
        if m is None:
            shown = repr(text[pos : pos + 8]) if pos < len(text) else "end of text"
            raise ParseError(f"expected <loc_N> with N in 0..999, found {shown}", text, pos, "<loc_N>")
        vals.append(int(m.group(1)))
        pos = m.end()
        if pos == len(text) or text.startswith(SEP, pos):
            if len(vals) % 2:
                raise ParseError("a ring has an odd number of coordinates", text, pos, "<loc_N>")
            if len(vals) < 6:
                raise ParseError(f"a ring has {len(vals) // 2} points; a ring needs 3", text, pos, "<loc_N>")
            rings.append(np.asarray(vals, dtype=np.float64).reshape(-1, 2))
            vals = []
            if pos == len(text):
                return rings
            pos += len(SEP)


def from_text(text: str, /, size, *, format: Format = "json") -> list[np.ndarray]:
    """Parse polygon text into rings of pixel-corner coordinates for an image of ``size``.

    Raises
    ------
    ParseError
        Text that does not follow the format (with its position).

    Examples
    --------
    >>> from_text("[[0, 0], [0.5, 0], [0, 1]]", (10, 20))[0].tolist()
    [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]
    >>> from_text("<loc_0><loc_0><loc_999><loc_0><loc_0><loc_999>", (10, 20), format="loc")[0][1].tolist()
    [19.99, 0.005]
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    h, w = as_size(size)
    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    scale = np.array([w, h], dtype=np.float64)
    if format == "json":
        return [r * scale for r in _json_rings(text.strip())]
    return [(r + 0.5) * scale / LOC_BINS for r in _loc_rings(text.strip())]


def encode_polygons(mask, /, *, format: Format = "json", max_vertices: int | None = 32, decimals: int = 3,
                    holes: bool = True, connectivity: int = 8, max_tokens: int | None = None,
                    count_tokens=None) -> str:
    """Mask to polygon text within ``max_vertices`` (see :func:`mask_to_polygons`) or ``max_tokens``.

    With ``max_tokens``, ``count_tokens(text) -> int`` (for example
    ``lambda s: maskcodec.tokens.count_tokens(s, tokenizer)``, or ``len`` for
    characters) measures each candidate, and the answer is the text of the
    largest vertex budget (at most ``max_vertices`` when given) whose text fits,
    found by bisection; when not even one triangle fits, the empty answer
    (``"[]"`` or ``""``), which loses the mask.

    Examples
    --------
    >>> m = np.zeros((100, 100), bool); m[10:60, 20:40] = True
    >>> text = encode_polygons(m)
    >>> text
    '[[0.2, 0.1], [0.4, 0.1], [0.4, 0.6], [0.2, 0.6]]'
    >>> bool((decode_polygons(text, m.shape) == m).all())
    True
    >>> m[30:40, 40:80] = True  # an arm: 8 vertices exactly, 5 within 60 characters
    >>> encode_polygons(m, max_tokens=60, count_tokens=len)
    '[[0.2, 0.1], [0.8, 0.4], [0.4, 0.4], [0.4, 0.6], [0.2, 0.6]]'
    >>> encode_polygons(m, max_tokens=30, count_tokens=len)  # not even a triangle fits
    '[]'
    """
    m = as_mask(mask)
    if max_tokens is None:
        rings = mask_to_polygons(m, max_vertices=max_vertices, holes=holes, connectivity=connectivity)
        return to_text(rings, m.shape, format=format, decimals=decimals)
    if not callable(count_tokens):
        raise TypeError("max_tokens needs count_tokens, a callable text -> number of tokens")
    traced = trace(m, connectivity=connectivity)
    if not holes:
        traced = [r for r in traced if _signed_area(r) > 0]
    hi = sum(len(r) for r in traced)
    if max_vertices is not None:
        hi = min(hi, max_vertices)

    def text_for(budget: int) -> str:
        rings = mask_to_polygons(m, max_vertices=budget, holes=holes, connectivity=connectivity)
        return to_text(rings, m.shape, format=format, decimals=decimals)

    best = text_for(hi) if hi >= 3 else to_text([], m.shape, format=format)
    if count_tokens(best) <= max_tokens:  # the whole budget fits: nothing to search
        return best
    best = to_text([], m.shape, format=format)
    lo = 3
    while lo <= hi:  # token counts grow with the budget, nearly monotonically: bisect
        mid = (lo + hi) // 2
        text = text_for(mid)
        if count_tokens(text) <= max_tokens:
            best, lo = text, mid + 1
        else:
            hi = mid - 1
    return best


def decode_polygons(text: str, /, size, *, format: Format = "json",
                    method: Literal["even-odd", "pillow"] = "even-odd") -> np.ndarray:
    """Polygon text back to a boolean mask of ``size`` (see :func:`rasterize`)."""
    return rasterize(from_text(text, size, format=format), size, method=method)
