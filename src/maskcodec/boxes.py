"""Box-wise descriptors: a quantized box, then a row grid of the mask inside it.

A whole-image 16x16 grid gives an object that covers 1% of the image about
two cells, and 36% of the COCO masks vanish altogether.  Text4Seg++ instead
localises each region with a box and describes the mask inside the box (its
exact format is not public); this module defines one such format.  Each
*instance* is a box on a ``bins x bins`` lattice over the image followed by
an ordinary grid of the pixels inside that box, so a small object gets a
fine grid for a handful of extra tokens::

    <seg><box>41 12 58 60</box>others *2| dog *4| others *2
     others *1| dog *6| others *1
     ...
    <box>3 70 20 99</box>others *8
     ...
    </seg>

Coordinate convention
---------------------
``<box>x0 y0 x1 y1</box>``: integers in ``0 .. bins - 1`` (default
``bins=100``), x for columns and y for rows, both ends *included*.  Each
axis of a ``(height, width)`` image is cut into ``bins`` bins; pixel column
``x`` lies in bin ``x * bins // width``, so bin ``i`` holds the columns
``ceil(i * width / bins) <= x < ceil((i + 1) * width / bins)`` (empty when
``bins > width`` leaves it no pixel).  The box of a mask is the smallest
range of bins holding every foreground pixel, so its pixel region (see
:func:`box_pixels`) always contains the whole mask.

Body
----
After ``</box>`` comes the body of the instance's grid in one of the row
formats: ``"rrle"`` (the Text4Seg R-RLE body; its size is read from the text,
so instances may use different grids) or a compact dialect of
:mod:`maskcodec.dialects` (``"crle"``, ``"arle"``, ``"spans"``; its size must
be given).  The grid is rendered onto the box's pixel region with the
Text4Seg nearest-neighbour rule (``align="corner"``); where instances
overlap, the later one wins on its foreground cells.  Labels may not contain
``<box>`` or ``</box>``.

Grammar (EBNF; ``body`` as in ``docs/format.md`` or ``docs/dialects.md``)::

    answer   = "<seg>" , { instance } , "</seg>" ;
    instance = "<box>" , index , " " , index , " " , index , " " , index , "</box>" , body ;
    index    = "0" | nonzero , { digit } ;                (at most bins - 1; x0 <= x1, y0 <= y1)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Literal, NamedTuple

import numpy as np

from ._errors import InputError, LabelError, ParseError
from ._labels import _problem, check_label
from .grid import LabelGrid, as_size, render
from .quantize import as_grid, as_mask

__all__ = [
    "BoxInstance",
    "BoxesResult",
    "box_of",
    "box_pixels",
    "boxes_of",
    "decode_boxes",
    "encode_boxes",
    "parse",
    "parse_boxes",
    "render_boxes",
    "to_text",
]

BOX_OPEN: Final = "<box>"
BOX_CLOSE: Final = "</box>"
SEG_OPEN: Final = "<seg>"
SEG_CLOSE: Final = "</seg>"
DEFAULT_BINS: Final = 100
FORMATS: Final = ("rrle", "crle", "arle", "spans")
_MAX_BINS: Final = 10_000


class BoxInstance(NamedTuple):
    """One region: ``box = (x0, y0, x1, y1)`` in bins (ends included) and the grid inside it."""

    box: tuple[int, int, int, int]
    grid: LabelGrid


class BoxesResult(NamedTuple):
    """What :func:`parse` found: the instances, the repairs and where the block was.

    Attributes as :class:`~maskcodec.ParseResult`, with ``instances`` (a list
    of :class:`BoxInstance`) in place of ``grid``.
    """

    instances: list
    repairs: tuple = ()
    start: int = 0
    end: int = 0
    complete: bool = True
    found: bool = True


def _check_bins(bins: object) -> int:
    if not isinstance(bins, (int, np.integer)) or isinstance(bins, bool):
        raise TypeError(f"bins must be an int, got {bins!r}")
    if not 1 <= bins <= _MAX_BINS:
        raise InputError(f"bins {bins} is out of range 1..{_MAX_BINS}")
    return int(bins)


def _check_format(fmt: object) -> str:
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return fmt  # type: ignore[return-value]


def _bin_start(i: int, n: int, bins: int) -> int:
    return -(-i * n // bins)  # ceil(i * n / bins), exact


def box_pixels(box, /, size, *, bins: int = DEFAULT_BINS) -> tuple[int, int, int, int]:
    """The pixel region ``(top, left, bottom, right)`` (bottom and right excluded) of a box.

    Examples
    --------
    >>> box_pixels((0, 0, 99, 99), (480, 640))
    (0, 0, 480, 640)
    >>> box_pixels((10, 50, 19, 59), (480, 640))
    (240, 64, 288, 128)
    """
    h, w = as_size(size)
    bins = _check_bins(bins)
    x0, y0, x1, y1 = (int(v) for v in box)
    if not (0 <= x0 <= x1 < bins and 0 <= y0 <= y1 < bins):
        raise InputError(f"box {tuple(box)!r} is not 0 <= x0 <= x1 < {bins}, 0 <= y0 <= y1 < {bins}")
    top, left = _bin_start(y0, h, bins), _bin_start(x0, w, bins)
    return top, left, _bin_start(y1 + 1, h, bins), _bin_start(x1 + 1, w, bins)


def box_of(mask, /, *, bins: int = DEFAULT_BINS) -> tuple[int, int, int, int] | None:
    """The smallest box, in bins, that holds every foreground pixel of ``mask`` (None if empty).

    Examples
    --------
    >>> m = np.zeros((480, 640), bool); m[100:200, 300:301] = True
    >>> box_of(m)
    (46, 20, 46, 41)
    >>> box_pixels(box_of(m), m.shape)
    (96, 295, 202, 301)
    """
    m = as_mask(mask)
    bins = _check_bins(bins)
    h, w = m.shape
    rows = np.flatnonzero(m.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(m.any(axis=0))
    return (
        int(cols[0]) * bins // w,
        int(rows[0]) * bins // h,
        int(cols[-1]) * bins // w,
        int(rows[-1]) * bins // h,
    )


def _check_box_label(label: str) -> None:
    check_label(label)
    for tag in (BOX_OPEN, BOX_CLOSE):
        if tag in label:
            raise LabelError(f"label {label!r} contains {tag!r}, which delimits box instances")


def _body(grid: LabelGrid, fmt: str) -> str:
    if fmt == "rrle":
        from .text import to_text

        return to_text(grid, envelope=False)
    from . import dialects

    return dialects.to_text(grid, fmt, envelope=False)


def to_text(instances: Sequence[BoxInstance], /, *, format: str = "rrle", envelope: bool = True) -> str:
    """Write box instances as text.

    Examples
    --------
    >>> g = LabelGrid([[0, 1], [1, 1]], ("others", "cat"))
    >>> to_text([BoxInstance((3, 4, 10, 12), g)])
    '<seg><box>3 4 10 12</box>others *1| cat *1\\n cat *2\\n</seg>'
    >>> to_text([BoxInstance((3, 4, 10, 12), g)], format="spans", envelope=False)
    '<box>3 4 10 12</box>a=cat\\n1\\n0-1\\n'
    """
    _check_format(format)
    parts = []
    for inst in instances:
        if not isinstance(inst, BoxInstance):
            raise TypeError(f"instances must be BoxInstance, got {type(inst).__name__}")
        x0, y0, x1, y1 = (int(v) for v in inst.box)
        if not (0 <= x0 <= x1 and 0 <= y0 <= y1):
            raise InputError(f"box {inst.box!r} is not 0 <= x0 <= x1, 0 <= y0 <= y1")
        for lab in inst.grid.canonical().labels:
            _check_box_label(lab)
        parts.append(f"{BOX_OPEN}{x0} {y0} {x1} {y1}{BOX_CLOSE}{_body(inst.grid, format)}")
    body = "".join(parts)
    return f"{SEG_OPEN}{body}{SEG_CLOSE}" if envelope else body


def encode_boxes(
    masks,
    /,
    labels,
    *,
    bins: int = DEFAULT_BINS,
    grid=8,
    method: str = "nearest",
    nonempty: bool = True,
    format: str = "rrle",
    background: str = "others",
    envelope: bool = True,
) -> str:
    """Write one box instance per non-empty mask: its box, then its grid inside the box.

    Parameters
    ----------
    masks : 2-D array or sequence of 2-D arrays
        One binary mask, or one per instance (all of the same size).
    labels : str or sequence of str
        The foreground label of every instance, or one per mask.
    bins : int
        Box coordinates are in ``0 .. bins - 1`` (see the module docstring).
    grid : int or (rows, cols)
        The grid inside each box.
    method, nonempty
        How the pixels inside the box are quantized (:func:`maskcodec.quantize`);
        ``nonempty=True`` keeps a cell for an object smaller than a cell.
    format : {"rrle", "crle", "arle", "spans"}
        The body format of each instance.

    Examples
    --------
    >>> m = np.zeros((100, 100), bool); m[10:20, 30:50] = True
    >>> text = encode_boxes(m, "car", bins=10, grid=2)
    >>> text
    '<seg><box>3 1 4 1</box>car *2\\n car *2\\n</seg>'
    >>> bool((decode_boxes(text, (100, 100), bins=10).mask() == m).all())
    True
    """
    instances = boxes_of(masks, labels, bins=bins, grid=grid, method=method, nonempty=nonempty,
                         background=background)
    return to_text(instances, format=format, envelope=envelope)


def boxes_of(masks, labels, *, bins=DEFAULT_BINS, grid=8, method="nearest", nonempty=True,
             background="others"):
    """The :class:`BoxInstance` list that :func:`encode_boxes` writes."""
    from .quantize import quantize

    bins = _check_bins(bins)
    rows, cols = as_grid(grid)
    check_label(background)
    if isinstance(masks, np.ndarray) and masks.ndim == 2 or hasattr(masks, "getbands"):
        masks = [masks]
    masks = [as_mask(m) for m in masks]
    if isinstance(labels, str):
        labels = [labels] * len(masks)
    labels = list(labels)
    if len(labels) != len(masks):
        raise InputError(f"got {len(masks)} masks but {len(labels)} labels")
    out = []
    size = None
    for m, lab in zip(masks, labels):
        _check_box_label(lab)
        if lab == background:
            raise LabelError(f"the foreground label {lab!r} equals the background label")
        if size is None:
            size = m.shape
        elif m.shape != size:
            raise InputError(f"all masks must have one size; got {size} and {m.shape}")
        box = box_of(m, bins=bins)
        if box is None:
            continue
        t, l, b, r = box_pixels(box, m.shape, bins=bins)
        q = quantize(m[t:b, l:r] != 0, grid=(rows, cols), method=method, nonempty=nonempty)
        ids = q.astype(np.uint8)
        out.append(BoxInstance(box, LabelGrid._trusted(ids, (background, lab))))
    return out


# =========================================================================== parsing


def _number(text: str, pos: int, end: int, hi: int, what: str) -> tuple[int, int]:
    k = pos
    while k < end and text[k] in "0123456789":
        k += 1
    digits = text[pos:k]
    if not digits:
        shown = repr(text[pos]) if pos < end else "the end"
        raise ParseError(f"expected {what}, found {shown}", text, pos, what)
    if len(digits) > 1 and digits[0] == "0":
        raise ParseError(f"{what} {digits!r} starts with 0", text, pos, what)
    if len(digits) > 6 or int(digits) > hi:
        raise ParseError(f"{what} {digits} is out of range 0..{hi}", text, pos, f"{what} in 0..{hi}")
    return k, int(digits)


def _expect(text: str, pos: int, token: str) -> int:
    if not text.startswith(token, pos):
        shown = repr(text[pos]) if pos < len(text) else "end of text"
        raise ParseError(f"expected {token!r}, found {shown}", text, pos, repr(token))
    return pos + len(token)


def _parse_body(text, start, end, fmt, grid, background):
    body = text[start:end]
    try:
        if fmt == "rrle":
            from ._parser import from_text

            return from_text(body, grid=grid, envelope=False, background=background)
        from . import dialects

        return dialects.from_text(body, fmt, grid=16 if grid is None else grid, envelope=False,
                                  background=background)
    except ParseError as err:  # report the position in the whole text
        raise ParseError(err.reason, text, start + err.pos, err.expected) from None


# Repair mode reads a box head tolerantly: blanks may vary, numbers are clamped.
_LENIENT_HEAD = re.compile(r"<box>[ \t]*(\d{1,12})[ \t,]+(\d{1,12})[ \t,]+(\d{1,12})[ \t,]+(\d{1,12})[ \t]*</box>")


def _shift(rep, line0: int, col0: int, cut: int):
    """A body's repair moved to the whole text: the body starts at ``line0, col0``;
    ``cut`` characters that the body parser saw in front of it on its first line are removed."""
    from ._parser import Repair

    if rep.line == 1:
        return Repair(rep.kind, line0, max(1, rep.column - cut) + col0 - 1, rep.message)
    return Repair(rep.kind, line0 + rep.line - 1, rep.column, rep.message)


def _repair(text, bins, grid, fmt, background, envelope) -> BoxesResult:
    from . import dialects
    from ._parser import _RepairLog
    from ._parser import parse as parse_rrle

    log = _RepairLog(text)
    complete = True
    if envelope:
        start = text.find(SEG_OPEN)
        if start < 0:
            log.note("no_block", 0, f"no {SEG_OPEN} in the text: no instances")
            return BoxesResult([], log.result(), 0, 0, False, False)
        pos = start + len(SEG_OPEN)
        end = text.find(SEG_CLOSE, pos)
        if end < 0:
            complete, end = False, len(text)
            log.note("unterminated", end, f"no {SEG_CLOSE}: the answer was cut off")
    else:
        start, pos, end = 0, 0, len(text)
    out = []
    extra = []
    first = text.find(BOX_OPEN, pos, end)
    if (text[pos:end] if first < 0 else text[pos:first]).strip():
        log.note("bad_run", pos, f"text before the first {BOX_OPEN} dropped")
    pos = end if first < 0 else first
    while pos < end:
        nxt = text.find(BOX_OPEN, pos + len(BOX_OPEN), end)
        stop = end if nxt < 0 else nxt
        m = _LENIENT_HEAD.match(text, pos, stop)
        if m is None:
            log.note("bad_run", pos, f"unreadable {BOX_OPEN} head; instance dropped")
            pos = stop
            continue
        raw = tuple(int(v) for v in m.groups())
        x0, y0, x1, y1 = (min(v, bins - 1) for v in raw)
        if (x0, y0, x1, y1) != raw:
            log.note("clamped_count", m.start(1), f"box coordinates clamped to 0..{bins - 1}")
        if x1 < x0 or y1 < y0:
            log.note("bad_run", m.start(1), "box corners in the wrong order; swapped")
            x0, x1 = min(x0, x1), max(x0, x1)
            y0, y1 = min(y0, y1), max(y0, y1)
        elif (x0, y0, x1, y1) == raw and m.group(0) != f"{BOX_OPEN}{x0} {y0} {x1} {y1}{BOX_CLOSE}":
            log.note("bad_separator", pos, "box head not written as '<box>x0 y0 x1 y1</box>'")
        body_at = m.end()
        body = text[body_at:stop]
        last_cut = not complete and nxt < 0
        # The last body of a cut-off answer is read as a cut-off block (its unfinished row dropped).
        lead = SEG_OPEN if last_cut else ""
        if fmt == "rrle":
            res = parse_rrle(lead + body, mode="repair", grid=grid, background=background, envelope=last_cut)
        else:
            res = dialects.parse(lead + body, fmt, grid=16 if grid is None else grid, background=background,
                                 envelope=last_cut, mode="repair")
        line0, col0 = log.position(body_at)
        extra.extend(_shift(r, line0, col0, len(lead)) for r in res.repairs if r.kind != "unterminated")
        out.append(BoxInstance((x0, y0, x1, y1), res.grid))
        pos = stop
    stop = end + (len(SEG_CLOSE) if envelope and complete else 0)
    return BoxesResult(out, log.result() + tuple(extra), start, stop, complete, True)


def parse(
    text: str,
    /,
    *,
    bins: int = DEFAULT_BINS,
    grid=None,
    format: str = "rrle",
    background: str = "others",
    envelope: bool = True,
    mode: Literal["strict", "repair"] = "strict",
) -> BoxesResult:
    """Parse box-wise text into a :class:`BoxesResult` (instances, repairs, position).

    ``mode="strict"`` is :func:`parse_boxes` (it raises :class:`~maskcodec.ParseError`).
    ``mode="repair"`` is for model output and never raises on text.  Policy:
    no ``<seg>`` gives no instances (``found=False``); without ``</seg>`` the
    text runs to the end and the last body is read as a cut-off answer; text
    before the first ``<box>`` is dropped; a box head is read with any blanks
    (or commas) between its four numbers, numbers past ``bins - 1`` are
    clamped and corners in the wrong order swapped; an unreadable head drops
    its instance; each body is read by the repair mode of its format
    (:func:`maskcodec.parse` or :func:`maskcodec.dialects.parse`), its
    repairs reported at their place in the whole text.

    Examples
    --------
    >>> r = parse("<seg><box>1 2 3 4</box>dog *1\\n<box>9 9 1 1</box>cat *2\\n", mode="repair")
    >>> [inst.box for inst in r.instances], r.complete
    ([(1, 2, 3, 4), (1, 1, 9, 9)], False)
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    if mode not in ("strict", "repair"):
        raise InputError(f"unknown mode {mode!r}; choose one of strict, repair")
    bins = _check_bins(bins)
    _check_format(format)
    if grid is not None:
        grid = as_grid(grid)
    if mode == "repair":
        if not isinstance(background, str) or _problem(background) is not None:
            raise LabelError(f"background label {background!r} is not a safe label")
        return _repair(text, bins, grid, format, background, envelope)
    inst = parse_boxes(text, bins=bins, grid=grid, format=format, background=background, envelope=envelope)
    start = text.find(SEG_OPEN) if envelope else 0
    stop = text.find(SEG_CLOSE, start) + len(SEG_CLOSE) if envelope else len(text)
    return BoxesResult(inst, (), start, stop, True, True)


def parse_boxes(
    text: str,
    /,
    *,
    bins: int = DEFAULT_BINS,
    grid=None,
    format: str = "rrle",
    background: str = "others",
    envelope: bool = True,
    mode: Literal["strict", "repair"] = "strict",
) -> list[BoxInstance]:
    """Parse box-wise text into its instances (strictly, by default).

    ``grid`` is the size of every instance's grid: inferred from each body
    when None with ``format="rrle"``, required (default 16) for a dialect.
    ``mode="repair"`` never raises on text (see :func:`parse` for the policy
    and for the repairs made).

    Raises
    ------
    ParseError
        With the line and column of the first deviation from the grammar.

    Examples
    --------
    >>> [inst.box for inst in parse_boxes("<seg><box>1 2 3 4</box>dog *1\\n</seg>")]
    [(1, 2, 3, 4)]
    >>> parse_boxes("<seg><box>1 2 0 4</box>dog *1\\n</seg>")
    Traceback (most recent call last):
      ...
    maskcodec._errors.ParseError: line 1, column 15: x1 0 is out of range 1..99
    """
    if mode != "strict":
        return parse(text, bins=bins, grid=grid, format=format, background=background, envelope=envelope,
                     mode=mode).instances
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    bins = _check_bins(bins)
    _check_format(format)
    if grid is not None:
        grid = as_grid(grid)
    if envelope:
        start = text.find(SEG_OPEN)
        if start < 0:
            raise ParseError(f"no {SEG_OPEN} in the text", text, 0, repr(SEG_OPEN))
        pos = start + len(SEG_OPEN)
        end = text.find(SEG_CLOSE, pos)
        if end < 0:
            raise ParseError(f"no {SEG_CLOSE} after {SEG_OPEN}: the answer is cut off", text, len(text),
                             repr(SEG_CLOSE))
    else:
        pos, end = 0, len(text)
    out = []
    while pos < end:
        pos = _expect(text, pos, BOX_OPEN)
        pos, x0 = _number(text, pos, end, bins - 1, "x0")
        pos = _expect(text, pos, " ")
        pos, y0 = _number(text, pos, end, bins - 1, "y0")
        pos = _expect(text, pos, " ")
        at = pos
        pos, x1 = _number(text, pos, end, bins - 1, "x1")
        if x1 < x0:
            raise ParseError(f"x1 {x1} is out of range {x0}..{bins - 1}", text, at, f"x1 in {x0}..{bins - 1}")
        pos = _expect(text, pos, " ")
        at = pos
        pos, y1 = _number(text, pos, end, bins - 1, "y1")
        if y1 < y0:
            raise ParseError(f"y1 {y1} is out of range {y0}..{bins - 1}", text, at, f"y1 in {y0}..{bins - 1}")
        pos = _expect(text, pos, BOX_CLOSE)
        nxt = text.find(BOX_OPEN, pos, end)
        stop = end if nxt < 0 else nxt
        out.append(BoxInstance((x0, y0, x1, y1), _parse_body(text, pos, stop, format, grid, background)))
        pos = stop
    return out


def render_boxes(instances: Sequence[BoxInstance], /, size, *, bins: int = DEFAULT_BINS) -> LabelGrid:
    """Paint each instance's grid onto its box's pixels; a pixel-resolution :class:`LabelGrid`.

    Labels are merged by name, background first; where boxes overlap, the
    later instance's foreground wins.
    """
    from . import _kernels

    h, w = as_size(size)
    bins = _check_bins(bins)
    labels: list[str] = [instances[0].grid.background if instances else "others"]
    index = {labels[0]: 0}  # a dict, not list.index: 20,000 distinct labels were quadratic
    n = len(instances)
    boxes = np.zeros((n, 4), dtype=np.int64)
    shapes = np.zeros((n, 2), dtype=np.int64)
    coff = np.zeros(n, dtype=np.int64)
    roff = np.zeros(n, dtype=np.int64)
    cells, remaps = [], []
    ncells = nremap = 0
    for k, inst in enumerate(instances):
        boxes[k] = box_pixels(inst.box, (h, w), bins=bins)
        grid_labels = inst.grid.labels
        remap = np.zeros(len(grid_labels), dtype=np.int32)
        for i, lab in enumerate(grid_labels[1:], 1):
            remap[i] = index.setdefault(lab, len(index))
            if remap[i] == len(labels):
                labels.append(lab)
        ids = inst.grid.ids
        shapes[k] = ids.shape
        coff[k], roff[k] = ncells, nremap
        cells.append(ids.ravel())
        remaps.append(remap)
        ncells += ids.size
        nremap += remap.size
    ids = np.zeros((h, w), dtype=np.int32)
    if n:
        nxt = np.empty((h, w + 1), dtype=np.int32)
        nxt[:] = np.arange(w + 1, dtype=np.int32)
        _kernels.paint_boxes(boxes, np.concatenate(cells).astype(np.int64), coff, shapes,
                             np.concatenate(remaps), roff, nxt, ids)
    dtype = np.uint8 if len(labels) <= 256 else np.int32
    return LabelGrid._trusted(ids.astype(dtype), tuple(labels))


def decode_boxes(text: str, /, size, *, bins: int = DEFAULT_BINS, grid=None, format: str = "rrle",
                 background: str = "others", envelope: bool = True,
                 mode: Literal["strict", "repair"] = "strict") -> LabelGrid:
    """Parse box-wise text (strictly, by default) and render it at ``size = (height, width)``.

    Returns a :class:`LabelGrid` with one cell per pixel; ``.mask()`` is the
    binary mask of every foreground label.  With ``mode="repair"`` it never
    raises on text and always has ``size`` (all background when nothing is
    readable).
    """
    h, w = as_size(size)
    inst = parse_boxes(text, bins=bins, grid=grid, format=format, background=background, envelope=envelope,
                       mode=mode)
    if mode == "repair" and not inst:
        from ._parser import _background_ids

        return LabelGrid._trusted(_background_ids(h, w), (background,))
    return render_boxes(inst, (h, w), bins=bins)
