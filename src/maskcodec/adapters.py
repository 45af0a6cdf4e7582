"""Adapters to the conventions of neighbouring tools: ``supervision`` and pycocotools.

Imported on demand (``import maskcodec.adapters``); ``supervision`` itself is
imported only by the functions that build or read ``sv.Detections``.

pycocotools-style helpers
-------------------------
:func:`encode`, :func:`decode`, :func:`area` and :func:`toBbox` take and return
what ``pycocotools.mask`` does (compressed RLE dicts, ``(H, W, N)`` stacks,
``uint32`` areas, ``[x, y, w, h]`` float boxes), so that code written against
pycocotools can switch without changes, and they accept more: C-ordered and
bool arrays, any integer dtype.

>>> import numpy as np
>>> from maskcodec import adapters
>>> m = np.zeros((4, 5), dtype=np.uint8); m[1:3, 2:4] = 1
>>> rle = adapters.encode(m)
>>> int(adapters.area(rle)), adapters.toBbox(rle).tolist()
(4, [2.0, 1.0, 2.0, 2.0])

supervision
-----------
:func:`to_detections` turns an answer (or a :class:`~maskcodec.LabelGrid`) into
``sv.Detections``, one detection per label with its mask at the image size, its
box, ``class_id`` and ``data["class_name"]``; :func:`from_detections` turns
detections into a grid or answer text (one label: the union of the masks;
several classes: a label map, larger objects painted first so that small ones
stay visible).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._errors import InputError
from ._parser import parse
from .coco import _counts_of, mask_to_rle, rle_to_mask
from .grid import LabelGrid
from .text import encode_grid, to_text

__all__ = ["area", "decode", "encode", "from_detections", "toBbox", "to_detections"]


# ============================================================================ pycocotools


def encode(masks, /):
    """``pycocotools.mask.encode``: an ``(H, W)`` mask to one RLE dict, an ``(H, W, N)`` stack to a list.

    Byte-identical to pycocotools for 0/1 masks; any order and integer or bool dtype is accepted.
    """
    if not isinstance(masks, np.ndarray):
        raise TypeError(f"masks must be a numpy array, got {type(masks).__name__}; wrap lists with np.asarray")
    if masks.ndim == 2:
        return mask_to_rle(masks)
    if masks.ndim != 3:
        raise InputError(f"masks must be (H, W) or a stack (H, W, N), got shape {masks.shape}")
    return [mask_to_rle(masks[:, :, i]) for i in range(masks.shape[2])]


def decode(rles, /) -> np.ndarray:
    """``pycocotools.mask.decode``: one RLE dict to ``(H, W)``, a list to ``(H, W, N)`` (uint8, F-order)."""
    if isinstance(rles, Mapping):
        return np.asfortranarray(rle_to_mask(rles).astype(np.uint8))
    rles = list(rles)
    if not rles:
        raise InputError("decode needs at least one RLE dict")
    masks = [rle_to_mask(r) for r in rles]
    shapes = {m.shape for m in masks}
    if len(shapes) > 1:
        raise InputError(f"the RLEs have different sizes {sorted(shapes)}; a stack needs one size")
    return np.asfortranarray(np.stack(masks, axis=2).astype(np.uint8))


def _one_area(rle, name) -> int:
    _, _, cnts = _counts_of(rle, name)
    return int(cnts[1::2].sum())


def area(rles, /):
    """``pycocotools.mask.area``: foreground pixels of one RLE (``np.uint32``) or of each in a list."""
    if isinstance(rles, Mapping):
        return np.uint32(_one_area(rles, "rle"))
    return np.array([_one_area(r, f"rles[{i}]") for i, r in enumerate(rles)], dtype=np.uint32)


def _one_bbox(rle, name) -> np.ndarray:
    h, _, cnts = _counts_of(rle, name)
    m = cnts.size // 2 * 2
    if m == 0:
        return np.zeros(4)
    cc = np.cumsum(cnts[:m])
    t = cc - (np.arange(m) % 2)  # first pixel of each run of ones, last pixel of it
    y, x = t % h, t // h
    xs, ys, xe, ye = int(x.min()), int(y.min()), int(x.max()), int(y.max())
    if np.any(x[1::2] > x[0::2]):  # a run continues into the next column: all rows are covered
        ys, ye = 0, h - 1
    return np.array([xs, ys, xe - xs + 1, ye - ys + 1], dtype=np.float64)


def toBbox(rles, /) -> np.ndarray:
    """``pycocotools.mask.toBbox``: ``[x, y, width, height]`` of one RLE, or ``(N, 4)`` for a list."""
    if isinstance(rles, Mapping):
        return _one_bbox(rles, "rle")
    boxes = [_one_bbox(r, f"rles[{i}]") for i, r in enumerate(rles)]
    return np.array(boxes, dtype=np.float64).reshape(len(boxes), 4)


# ============================================================================ supervision


def _sv():
    try:
        import supervision as sv
    except ImportError:
        raise ImportError("maskcodec.adapters needs supervision for Detections: pip install supervision") from None
    return sv


def to_detections(answer, /, *, size, grid=None, mode: str = "repair", background: str = "others", **options):
    """``sv.Detections`` of an answer text or a :class:`~maskcodec.LabelGrid`.

    Parameters
    ----------
    answer : str or LabelGrid
        Model output (parsed with :func:`maskcodec.parse`) or a grid.
    size : (height, width)
        The image size the masks are rendered at (Text4Seg's upsampling).
    grid : int or (rows, cols), optional
        The expected grid (see :func:`maskcodec.parse`).
    mode : {"repair", "strict", "text4seg"}
        The parse mode.
    background : str
        The background label (no detection is made for it).
    **options
        More :func:`maskcodec.parse` options (``labels``, ``format``...).

    Returns
    -------
    supervision.Detections
        One detection per foreground label present, in label order: ``mask``
        ``(N, H, W)`` bool, ``xyxy`` (inclusive pixel edges, as supervision
        computes them from masks), ``class_id`` (the label's id in the grid,
        from 1) and ``data["class_name"]``.
    """
    sv = _sv()
    if isinstance(answer, LabelGrid):
        g = answer
    elif isinstance(answer, str):
        g = parse(answer, grid=grid, mode=mode, background=background, **options).grid
    else:
        raise TypeError(f"answer must be a str or a LabelGrid, got {type(answer).__name__}")
    ids = g.render(size)
    masks, names, classes = [], [], []
    for k, name in enumerate(g.labels):
        if name == background:
            continue
        m = ids == k
        if m.any():
            masks.append(m)
            names.append(name)
            classes.append(k)
    h, w = ids.shape
    if not masks:
        return sv.Detections(xyxy=np.empty((0, 4)), mask=np.empty((0, h, w), dtype=bool),
                             class_id=np.empty(0, dtype=int), data={"class_name": np.array([], dtype=str)})
    stack = np.stack(masks)
    return sv.Detections(xyxy=sv.mask_to_xyxy(stack).astype(float), mask=stack,
                         class_id=np.array(classes, dtype=int), data={"class_name": np.array(names)})


def _names_of(det, class_names) -> list[str]:
    n = len(det)
    if class_names is not None:
        if det.class_id is None:
            raise InputError("class_names needs detections with class_id")
        if isinstance(class_names, Mapping):
            table = class_names
        elif isinstance(class_names, Sequence) and not isinstance(class_names, str):
            table = dict(enumerate(class_names))
        else:
            raise TypeError("class_names must be a mapping or sequence from class_id to name")
        missing = sorted({int(c) for c in det.class_id} - set(table))
        if missing:
            raise InputError(f"class_id(s) {missing} have no name in class_names")
        return [table[int(c)] for c in det.class_id]
    data = getattr(det, "data", {}) or {}
    if "class_name" in data:
        return [str(v) for v in data["class_name"]]
    if det.class_id is not None:
        return [f"class {int(c)}" for c in det.class_id]
    return ["object"] * n


def from_detections(
    detections,
    /,
    *,
    grid: int | tuple[int, int] = 16,
    label: str | None = None,
    class_names=None,
    background: str = "others",
    text: bool = True,
    **options,
):
    """Answer text (or a :class:`~maskcodec.LabelGrid` with ``text=False``) of ``sv.Detections``.

    Parameters
    ----------
    detections : supervision.Detections
        With ``mask`` (N, H, W); boxes alone carry no shape to encode.
    grid : int or (rows, cols)
        The grid.
    label : str, optional
        One name for all detections: their masks are merged (a referring answer).
    class_names : mapping or sequence, optional
        Names by ``class_id``; default ``data["class_name"]``, else ``"class <id>"``.
    background : str
        The background label.
    text : bool
        Return the answer text (default) or the grid.
    **options
        More :func:`maskcodec.encode_grid` options (``method``, ``nonempty``...).
    """
    masks = getattr(detections, "mask", None)
    if masks is None:
        if not hasattr(detections, "xyxy"):
            raise TypeError(f"detections must be a supervision.Detections, got {type(detections).__name__}")
        raise InputError("the detections have no masks (mask=None); a grid needs masks, not only boxes")
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[0] == 0:
        raise InputError(f"the detections' masks must be (N, H, W) with N >= 1, got shape {masks.shape}")
    if label is not None:
        g = encode_grid(masks.any(axis=0), label, grid=grid, background=background, **options)
    else:
        names = _names_of(detections, class_names)
        order = sorted(range(len(names)), key=lambda i: -int(masks[i].sum()))  # large first
        table: dict[str, int] = {}
        label_map = np.zeros(masks.shape[1:], dtype=np.int32)
        for i in order:
            lid = table.setdefault(names[i], len(table) + 1)
            label_map[masks[i].astype(bool)] = lid
        id_names = {lid: name for name, lid in table.items()}
        g = encode_grid(label_map, id_names, grid=grid, background=background, ignore_index=None, **options)
    return to_text(g) if text else g
