"""Writing masks and grids as Text4Seg text.

Format
------
``"rrle"`` (row-wise run-length encoding, what Text4Seg trains on)::

    <seg>others *4
     others *1| dog *2| others *1
     others *4
    </seg>

Each row is its runs ``f"{label} *{count}"`` joined by ``"| "``; rows are
joined by ``"\\n "`` (a newline and a space); the body ends with one ``"\\n"``.
With ``envelope=True`` the body is wrapped in ``<seg>`` and ``</seg>``.

``"irle"`` (image-wise RLE) is one run list over the row-major cells, runs
crossing row ends, joined by ``"| "``, then ``"\\n"``.  ``"full"`` writes every
cell's label, joined by ``"| "``, then ``"\\n"``.

The formal grammar is in ``docs/format.md`` and :mod:`maskcodec._parser`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from ._errors import InputError, LabelError
from ._labels import check_label
from .grid import LabelGrid
from .quantize import Method, as_grid, as_mask, nearest_index, quantize

__all__ = ["encode_grid", "encode_mask", "to_text"]

Format = Literal["rrle", "irle", "full"]
FORMATS: tuple[str, ...] = ("rrle", "irle", "full")
_FMT_CODE = {"rrle": 0, "irle": 1, "full": 2}


def _k():
    from . import _kernels

    return _kernels


def format_code(format: str) -> int:
    try:
        return _FMT_CODE[format]
    except (KeyError, TypeError):
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}") from None


@functools.lru_cache(maxsize=512)
def _label_table(labels: tuple[str, ...]):
    """UTF-8 bytes of checked labels back to back, their offsets and the longest length."""
    for lab in labels:
        check_label(lab)
    encoded = [lab.encode("utf-8") for lab in labels]
    off = np.zeros(len(encoded) + 1, dtype=np.int64)
    off[1:] = np.cumsum([len(b) for b in encoded])
    buf = np.frombuffer(b"".join(encoded) or b"\0", dtype=np.uint8)
    return buf, off, max(len(b) for b in encoded)


def _bound(rows: int, cols: int, longest: int) -> int:
    """Worst-case byte length: one run per cell, each "label *count| ", row separators, envelope."""
    cells = rows * cols
    return cells * (longest + 4 + len(str(cells))) + 2 * rows + 16


def _write(ids: np.ndarray, labels: tuple[str, ...], fmt: int, envelope: bool) -> str:
    buf, off, longest = _label_table(labels)
    out = np.empty(_bound(ids.shape[0], ids.shape[1], longest), dtype=np.uint8)
    n = _k().write_text(ids, buf, off, fmt, envelope, out)
    return out[:n].tobytes().decode("utf-8")


def to_text(grid: LabelGrid, /, *, format: Format = "rrle", envelope: bool = True) -> str:
    """Write a :class:`LabelGrid` as text.

    Every label must be safe (see :func:`maskcodec.check_label`); the text
    parses back with :func:`maskcodec.from_text` to an equal grid.

    Examples
    --------
    >>> from maskcodec import LabelGrid
    >>> to_text(LabelGrid([[0, 1, 1]], ["others", "cat"]), envelope=False)
    'others *1| cat *2\\n'
    >>> to_text(LabelGrid([[0, 1], [1, 1]], ["others", "cat"]), format="irle", envelope=False)
    'others *1| cat *3\\n'
    """
    if not isinstance(grid, LabelGrid):
        raise TypeError(f"to_text expects a LabelGrid, got {type(grid).__name__}")
    return _write(grid.ids, grid.labels, format_code(format), bool(envelope))


_NO_LABELS = object()


def _labels_arg(labels, label, where: str):
    """The one label argument: ``labels`` (positional or keyword) or its alias ``label``."""
    if label is not _NO_LABELS:
        if labels is not _NO_LABELS:
            raise TypeError(f"{where}() got both labels and label; give one (they are the same argument)")
        return label
    if labels is _NO_LABELS:
        raise TypeError(f"{where}() needs the label: a str for a binary mask, or names for a label map")
    return labels


def _equal_channels(arr: np.ndarray, where: str) -> np.ndarray:
    """An (H, W, C) array whose colour channels are equal, as its first channel (alpha ignored)."""
    colour = arr[..., :3] if arr.shape[2] in (3, 4) else arr[..., :1]
    first = colour[..., 0]
    for c in range(1, colour.shape[2]):
        diff = np.argwhere(colour[..., c] != first)
        if diff.size:
            r, col = (int(v) for v in diff[0])
            raise InputError(
                f"{where} has {arr.shape[2]} channels that differ (at row {r}, column {col}: "
                f"{colour[r, col].tolist()}); a mask needs one channel, or equal channels"
            )
    return np.ascontiguousarray(first)


def _coerce_input(mask, where: str = "mask"):
    """Accept what users hand over besides arrays and PIL images.

    A path (str or ``os.PathLike``) is read with Pillow; a torch tensor is
    copied to the CPU (without importing torch); an RGB(A) image or
    ``(H, W, 3|4)`` array whose colour channels are equal (a grey mask saved
    as RGB) becomes its first channel.  Anything else goes on unchanged to
    :func:`maskcodec.quantize.as_mask`, which checks it.
    """
    if isinstance(mask, (str, os.PathLike)):
        from PIL import Image

        path = os.fspath(mask)
        if not os.path.isfile(path):
            raise InputError(f"{where}: no such file {path!r} (a mask is an array, a PIL image or a path)")
        from PIL import UnidentifiedImageError

        from .grid import MAX_PIXELS

        try:
            with Image.open(path) as img:
                w, h = img.size  # from the header: refuse a decompression bomb before decoding a pixel
                if w * h > MAX_PIXELS:
                    raise InputError(f"{path}: the image is {w}x{h}, more than MAX_PIXELS={MAX_PIXELS} pixels")
                img.load()
                mask = img.copy()
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError,
                EOFError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{path}: cannot read the image ({type(exc).__name__}: {str(exc)[:200]})") from None
        where = path
    mod = type(mask).__module__ or ""
    if mod.startswith("torch") and hasattr(mask, "detach") and hasattr(mask, "cpu"):
        mask = mask.detach().cpu().numpy()
    if hasattr(mask, "getbands") and hasattr(mask, "mode") and len(mask.getbands()) > 1:
        if mask.mode not in ("RGB", "RGBA", "LA"):
            raise InputError(f"{where} is an image in mode {mask.mode!r}; a mask needs one band")
        mask = _equal_channels(np.asarray(mask), f"{where} (mode {mask.mode})")
    elif isinstance(mask, np.ndarray) and mask.ndim == 3 and mask.shape[2] in (1, 2, 3, 4):
        mask = _equal_channels(mask, f"{where} of shape {mask.shape}")
    return mask


def _label_map_error(values, label: str) -> InputError:
    shown = values[:12].tolist()
    more = f" ... ({values.size} in all)" if values.size > 12 else ""
    return InputError(
        f"labels={label!r} is one name, but the mask is a label map with values {shown}{more}; "
        "give {id: name} (or names[id]) for a label map, or pass mask > 0 / mask == id for one class"
    )


def _single_label_check(m: np.ndarray, label: str, yi=None, xi=None) -> None:
    """A str label names the foreground of a *binary* mask: refuse a multi-class label map.

    With ``yi``/``xi`` (the nearest path) only the sampled cells are looked at, by one kernel
    call, so the fast path stays fast; otherwise the whole mask.
    """
    if m.dtype == np.bool_:
        return
    if yi is not None:
        found = np.zeros(2, dtype=m.dtype)
        if _k().sampled_classes(m, yi, xi, found) < 2:
            return
        values = np.unique(m[np.ix_(yi, xi)])
    else:
        if int(m.max()) <= 1:
            return
        values = np.unique(m)
        if values.size <= 2 and (values.size < 2 or values[0] == 0):
            return
    raise _label_map_error(values, label)


def _check_distinct(label: str, background: str) -> None:
    if label == background:
        raise LabelError(f"the foreground label {label!r} equals the background label")


def _name_table(labels, background: str) -> dict[int, str]:
    if isinstance(labels, Mapping):
        items = labels.items()
    elif isinstance(labels, Sequence) and not isinstance(labels, str):
        items = enumerate(labels)
    else:
        raise TypeError(
            "labels must be a str (binary mask), or a mapping / sequence from ids to names "
            f"(label map), got {type(labels).__name__}"
        )
    table: dict[int, str] = {}
    for key, name in items:
        if not isinstance(key, (int, np.integer)) or isinstance(key, bool) or key < 0:
            raise InputError(f"label ids must be ints >= 0, got {key!r}")
        if not isinstance(name, str):
            raise TypeError(f"the name of id {key} must be a str, got {type(name).__name__}")
        check_label(name)
        table[int(key)] = name
    return table


def encode_grid(
    mask,
    /,
    labels=_NO_LABELS,
    *,
    label=_NO_LABELS,
    grid: int | tuple[int, int] = 16,
    method: Method = "nearest",
    background: str = "others",
    threshold: float = 0.5,
    nonempty: bool = False,
    ignore_index: int | None = 255,
) -> LabelGrid:
    """Quantize a mask and name its cells, returning a :class:`LabelGrid`.

    Parameters
    ----------
    mask : ndarray, PIL image, torch tensor or path
        A binary mask (0 and one other value: foreground) when ``labels`` is a
        str, otherwise a label map.  A path is read with Pillow; an RGB(A)
        image or ``(H, W, 3)`` array must have equal colour channels.
    labels : str, mapping or sequence
        The foreground name of a binary mask, or ``{id: name}`` / ``names[id]``
        for a label map.  In a label map, id 0 (unless named) and
        ``ignore_index`` (unless named) are the background; any other id
        without a name is an error.  A str with a mask holding several non-zero
        values is an error that lists them.
    label : str or mapping or sequence
        The same argument under its singular name (``label="dog"``, as the
        command line's ``--label``); give one of the two.
    grid : int or (rows, cols)
        As in :func:`maskcodec.quantize`.
    method : {"nearest", "area", "coverage"}
        As in :func:`maskcodec.quantize`.
    background : str
        The background label, ``"others"`` in Text4Seg.
    threshold : float
        As in :func:`maskcodec.quantize`.
    nonempty : bool
        As in :func:`maskcodec.quantize`.
    ignore_index : int or None
        As in :func:`maskcodec.quantize`.

    Returns
    -------
    LabelGrid
        Label ids are numbered in order of first appearance (row-major),
        background first, as :func:`maskcodec.from_text` numbers them.
    """
    labels = _labels_arg(labels, label, "encode_grid")
    mask = _coerce_input(mask)
    check_label(background)
    rows, cols = as_grid(grid)
    if isinstance(labels, str):
        check_label(labels)
        _check_distinct(labels, background)
        m = as_mask(mask, allow_negative=True)
        if method == "nearest" and not nonempty:
            yi, xi = nearest_index(m.shape[0], rows), nearest_index(m.shape[1], cols)
            _single_label_check(m, labels, yi, xi)
            q = np.empty((rows, cols), dtype=m.dtype)
            _k().nearest_sample(m, yi, xi, q)
        else:
            _single_label_check(m, labels)
            if m.dtype != np.bool_:
                m = m != 0
            q = quantize(m, grid=(rows, cols), method=method, threshold=threshold, nonempty=nonempty)
        ids = (q != 0).view(np.uint8)
        return LabelGrid._trusted(ids, (background, labels))
    table = _name_table(labels, background)
    q = quantize(
        mask,
        grid=(rows, cols),
        method=method,
        threshold=threshold,
        nonempty=nonempty,
        ignore_index=ignore_index,
    )
    values, inverse = np.unique(q, return_inverse=True)
    names: list[str] = []
    for v in values.tolist():
        if v in table:
            names.append(table[v])
        elif v == 0 or v == ignore_index:
            names.append(background)
        else:
            missing = sorted(set(values.tolist()) - set(table) - {0, ignore_index})
            raise InputError(
                f"the mask has id(s) {missing} with no name in labels; "
                f"named ids are {sorted(table)}"
            )
    # Number labels by first appearance, background first.
    order = [background]
    flat = inverse.ravel()
    _, first_pos = np.unique(flat, return_index=True)
    for d in np.argsort(first_pos, kind="stable").tolist():
        name = names[d]
        if name not in order:
            order.append(name)
    index = {name: i for i, name in enumerate(order)}
    first_ids = np.array([index[n] for n in names], dtype=np.int64)
    dtype = np.uint8 if len(order) <= 256 else np.int32
    ids = first_ids[flat].reshape(rows, cols).astype(dtype)
    return LabelGrid._trusted(ids, tuple(order))


def encode_mask(
    mask,
    /,
    labels=_NO_LABELS,
    *,
    label=_NO_LABELS,
    grid: int | tuple[int, int] = 16,
    method: Method = "nearest",
    format: Format = "rrle",
    background: str = "others",
    envelope: bool = True,
    threshold: float = 0.5,
    nonempty: bool = False,
    ignore_index: int | None = 255,
) -> str:
    """Encode a mask as Text4Seg text.

    With the defaults the output is byte-identical to the Text4Seg data
    pipeline: Pillow NEAREST to a 16x16 grid, ``"others"`` for background, R-RLE
    rows, inside ``<seg>...</seg>``.

    Parameters
    ----------
    mask : ndarray, PIL image, torch tensor or path
        Binary mask (with a str ``labels``) or label map; see :func:`encode_grid`.
    labels : str, mapping or sequence
        See :func:`encode_grid`.
    label : str, mapping or sequence
        The same argument under its singular name; give one of the two.
    grid : int or (rows, cols)
        The grid, 16x16 by default (as in :func:`maskcodec.quantize`).
    method : {"nearest", "area", "coverage"}
        As in :func:`maskcodec.quantize`.
    format : {"rrle", "irle", "full"}
        Row-wise RLE (default), image-wise RLE or full descriptors.
    background : str
        The background label, ``"others"`` in Text4Seg.
    envelope : bool
        Wrap the text in ``<seg>`` and ``</seg>``.
    threshold : float
        As in :func:`maskcodec.quantize`.
    nonempty : bool
        As in :func:`maskcodec.quantize`.
    ignore_index : int or None
        As in :func:`maskcodec.quantize`.

    Returns
    -------
    str
        The answer text.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 4), dtype=bool); m[1:3, 1:3] = True
    >>> print(encode_mask(m, "dog", grid=4))
    <seg>others *4
     others *1| dog *2| others *1
     others *1| dog *2| others *1
     others *4
    </seg>
    """
    labels = _labels_arg(labels, label, "encode_mask")
    fmt = format_code(format)
    if isinstance(labels, str) and method == "nearest" and not nonempty:
        # The common case, fused into one kernel call: sample and write.
        rows, cols = as_grid(grid)
        m = as_mask(_coerce_input(mask), allow_negative=True)
        _check_distinct(labels, background)
        yi, xi = nearest_index(m.shape[0], rows), nearest_index(m.shape[1], cols)
        _single_label_check(m, labels, yi, xi)
        buf, off, longest = _label_table((background, labels))
        out = np.empty(_bound(rows, cols, longest), dtype=np.uint8)
        n = _k().encode_binary(m, yi, xi, buf, off, fmt, bool(envelope), out)
        return out[:n].tobytes().decode("utf-8")
    g = encode_grid(
        mask,
        labels,
        grid=grid,
        method=method,
        background=background,
        threshold=threshold,
        nonempty=nonempty,
        ignore_index=ignore_index,
    )
    return _write(g.ids, g.labels, fmt, bool(envelope))
