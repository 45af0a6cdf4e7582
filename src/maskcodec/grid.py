"""The label-grid value type and rendering back to full-size masks.

A :class:`LabelGrid` is what a text answer means: ``ids`` (rows x cols, one
small integer per cell) and ``labels``, the name of each id.  ``labels[0]`` is
always the background (``"others"`` in Text4Seg); every other id is foreground.

Rendering
---------
``align="corner"`` (the default) reproduces the Text4Seg upsampling,
``torch.nn.functional.interpolate(mode="nearest")`` on a float64 tensor:
output pixel ``y`` reads cell ``y * rows // height`` (exact integers).
``align="center"`` reads the cell containing the pixel centre,
``((2 * y + 1) * rows) // (2 * height)``, which is symmetric under flipping
except for a pixel whose centre lies exactly on a cell edge (it reads the higher cell).
``align="torch"`` reproduces torch's CPU index arithmetic for every shape,
including the float32 path torch takes when ``height + width <= 128`` (see
:func:`torch_nearest_index`); ``via=(h1, w1)`` upsamples in two steps, as the
Text4Seg open-vocabulary script does (grid -> 336x336 -> image size).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Final, Literal

import numpy as np

from ._errors import InputError, LabelError

__all__ = ["LabelGrid", "render", "torch_nearest_index"]

Align = Literal["corner", "center", "torch"]
_ALIGNS = ("corner", "center", "torch")


def _k():
    from . import _kernels

    return _kernels


#: The largest ``height * width`` any ``size=`` may ask for (2**30 pixels: a 1 GiB boolean
#: mask, 32768 x 32768).  A larger size is an :class:`~maskcodec.InputError` before anything
#: is allocated; ``decode_mask`` and ``render`` take ``max_pixels=`` to allow more.
MAX_PIXELS: Final = 1 << 30


def as_size(size: object, name: str = "size", max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """Normalise ``size`` = ``(height, width)`` to a pair of positive ints of at most ``max_pixels``."""
    if (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    ):
        h, w = int(size[0]), int(size[1])
        if h >= 1 and w >= 1:
            if h * w > max_pixels:
                raise InputError(
                    f"{name} {h}x{w} is {h * w} pixels, more than max_pixels={max_pixels}; "
                    "pass a larger max_pixels to allow it"
                )
            return h, w
        raise InputError(f"{name} must be positive (height, width), got {tuple(size)!r}")
    raise TypeError(f"{name} must be a (height, width) pair of ints, got {size!r}")


@functools.lru_cache(maxsize=4096)
def _src_index(n_out: int, n_in: int, align: str) -> np.ndarray:
    d = np.arange(n_out, dtype=np.int64)
    if align == "corner":
        idx = d * n_in // n_out
    else:
        idx = (2 * d + 1) * n_in // (2 * n_out)
    idx = idx.astype(np.intp)
    idx.setflags(write=False)
    return idx


@functools.lru_cache(maxsize=4096)
def _bounds(n_out: int, n_in: int, align: str) -> np.ndarray:
    """Cell boundaries along one axis: cell ``c`` covers output pixels ``b[c]:b[c + 1]``."""
    b = np.empty(n_in + 1, dtype=np.int64)
    _k().bounds(n_out, n_in, align == "center", b)
    b.setflags(write=False)
    return b


def _bounds_of(idx: np.ndarray, n_in: int) -> np.ndarray:
    """Cell boundaries of a non-decreasing index map (every map above is one, composed too)."""
    return np.searchsorted(idx, np.arange(n_in + 1)).astype(np.int64)


@functools.lru_cache(maxsize=4096)
def _torch_index(n_out: int, n_in: int, small: bool) -> np.ndarray:
    # Derived from ATen's CPU nearest kernels (aten/src/ATen/native/UpSample.h and
    # cpu/UpSampleKernel.cpp).  For a (1, 1, h, w) input, _use_vectorized_kernel_cond_2d
    # sends outputs with h_out + w_out <= 128 to cpu_upsample_nearest_channels_last, whose
    # nearest_idx special-cases out == in and out == 2 * in and otherwise computes in float32:
    # scale = (float)in / out, src = floorf((float)dst * scale).  Larger outputs go through
    # HelperInterpNearest, which computes scale = (double)in / out and src = dst * scale in
    # the tensor's opmath type (double for float64), then floorf() rounds it to float first.
    # Both clamp to in - 1.
    d = np.arange(n_out, dtype=np.int64)
    if small:
        if n_out == n_in:
            idx = d
        elif n_out == 2 * n_in:
            idx = d >> 1
        else:
            scale = np.float32(n_in) / np.float32(n_out)
            idx = np.floor(d.astype(np.float32) * scale).astype(np.int64)
    else:
        scale = np.float64(n_in) / np.float64(n_out)
        idx = np.floor((d.astype(np.float64) * scale).astype(np.float32)).astype(np.int64)
    idx = np.minimum(idx, n_in - 1).astype(np.intp)
    idx.setflags(write=False)
    return idx


def torch_nearest_index(n_out: int, n_in: int, /, *, other_out: int) -> np.ndarray:
    """The source index of every output position of torch's CPU ``F.interpolate(mode="nearest")``.

    For one axis of a ``(1, 1, h, w)`` float64 tensor upsampled to ``(h_out,
    w_out)``: ``n_in`` is the input side, ``n_out`` the output side and
    ``other_out`` the output side of the other axis, which selects torch's
    kernel.  When ``h_out + w_out <= 128`` torch computes the index in float32
    (``floorf(dst * ((float)in / out))``, with ``out == in`` and ``out == 2*in``
    special-cased), otherwise in float64 (``floorf(dst * ((double)in / out))``,
    which equals ``dst * in // out`` for grids up to 64 and sides up to 4096, as
    the tests check).

    Examples
    --------
    >>> torch_nearest_index(82, 16, other_out=1)[40:44].tolist()
    [7, 7, 8, 8]
    >>> torch_nearest_index(82, 16, other_out=200)[40:44].tolist()
    [7, 8, 8, 8]
    """
    for v, name in ((n_out, "n_out"), (n_in, "n_in"), (other_out, "other_out")):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise InputError(f"{name} must be a positive int, got {v!r}")
    return _torch_index(int(n_out), int(n_in), int(n_out) + int(other_out) <= 128)


def _axis_indices(size: tuple[int, int], shape: tuple[int, int], align: str, via) -> tuple[np.ndarray, np.ndarray]:
    """Source row and column of every output pixel, composed over an intermediate size ``via``."""
    if align not in _ALIGNS:
        raise InputError(f"unknown align {align!r}; choose one of {', '.join(map(repr, _ALIGNS))}")
    def one(h, w, rows, cols):
        if align == "torch":
            return _torch_index(h, rows, h + w <= 128), _torch_index(w, cols, h + w <= 128)
        return _src_index(h, rows, align), _src_index(w, cols, align)

    if via is None:
        return one(size[0], size[1], shape[0], shape[1])  # cached, read-only vectors
    mid = as_size(via, "via")
    y1, x1 = one(mid[0], mid[1], shape[0], shape[1])
    y2, x2 = one(size[0], size[1], mid[0], mid[1])
    return y1[y2], x1[x2]


def render(ids: np.ndarray, /, size, *, align: Align = "corner", dtype=None, via=None,
           max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Upsample a ``(rows, cols)`` grid to ``size = (height, width)`` by nearest neighbour.

    ``align`` is ``"corner"`` (``y * rows // height``, Text4Seg's upsampling at
    ordinary sizes), ``"center"`` (the cell under the pixel centre) or
    ``"torch"`` (torch's own index arithmetic for every shape, see
    :func:`torch_nearest_index`).  ``via = (h1, w1)`` renders in two steps,
    grid -> ``via`` -> ``size``, as the Text4Seg open-vocabulary script does
    with ``via=(336, 336)``.

    A ``size`` of more than ``max_pixels`` pixels (default :data:`MAX_PIXELS`,
    2**30) raises :class:`~maskcodec.InputError` before anything is allocated.

    Examples
    --------
    >>> import numpy as np
    >>> render(np.array([[0, 1], [1, 0]]), (3, 3))
    array([[0, 0, 1],
           [0, 0, 1],
           [1, 1, 0]])
    """
    ids = np.asarray(ids)
    if ids.ndim != 2 or ids.size == 0:
        raise InputError(f"a grid must be a non-empty 2-D array, got shape {ids.shape}")
    h, w = as_size(size, max_pixels=max_pixels)
    if via is None and (align == "corner" or align == "center"):
        yb, xb = _bounds(h, ids.shape[0], align), _bounds(w, ids.shape[1], align)
    else:
        ys, xs = _axis_indices((h, w), ids.shape, align, via)
        yb, xb = _bounds_of(ys, ids.shape[0]), _bounds_of(xs, ids.shape[1])
    out = np.empty((h, w), dtype=ids.dtype if dtype is None else dtype)
    if out.dtype == np.bool_:  # bytes are faster to move than numba's normalised booleans
        src = ids.view(np.uint8) if ids.dtype == np.bool_ else (ids != 0).view(np.uint8)
        _k().render(src, yb, xb, out.view(np.uint8))
        return out
    _k().render(ids, yb, xb, out)
    return out


class LabelGrid:
    """A decoded grid: an id per cell and a name per id (``labels[0]`` is the background).

    Parameters
    ----------
    ids : array_like of int, shape (rows, cols)
        Values in ``0 .. len(labels) - 1``.
    labels : sequence of str
        ``labels[i]`` names id ``i``; names must be distinct.

    Examples
    --------
    >>> g = LabelGrid([[0, 1], [1, 1]], ("others", "dog"))
    >>> g.to_text()
    '<seg>others *1| dog *1\\n dog *2\\n</seg>'
    >>> LabelGrid.from_text(g.to_text()) == g
    True
    >>> g.mask((4, 4)).astype(int)
    array([[0, 0, 1, 1],
           [0, 0, 1, 1],
           [1, 1, 1, 1],
           [1, 1, 1, 1]])
    """

    __slots__ = ("_ids", "_labels")

    def __init__(self, ids, labels: Sequence[str]) -> None:
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise TypeError("labels must be a sequence of str (labels[0] is the background)")
        labels = tuple(labels)
        if not labels:
            raise LabelError("labels must name at least the background (labels[0])")
        for lab in labels:
            if not isinstance(lab, str):
                raise TypeError(f"labels must be str, got {type(lab).__name__}")
        if len(set(labels)) != len(labels):
            dup = next(lab for i, lab in enumerate(labels) if lab in labels[:i])
            raise LabelError(f"label {dup!r} appears twice; labels must be distinct")
        arr = np.asarray(ids)
        if arr.ndim != 2 or arr.size == 0:
            raise InputError(f"ids must be a non-empty 2-D array, got shape {arr.shape}")
        if arr.dtype.kind not in "biu":
            raise InputError(f"ids must be integers, got dtype {arr.dtype}")
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= len(labels)):
            bad = int(arr.max()) if int(arr.max()) >= len(labels) else int(arr.min())
            raise InputError(f"id {bad} has no label; ids must be in 0..{len(labels) - 1}")
        dtype = np.uint8 if len(labels) <= 256 else np.int32
        arr = np.ascontiguousarray(arr, dtype=dtype)
        arr.setflags(write=False)
        self._ids = arr
        self._labels = labels

    @classmethod
    def _trusted(cls, ids: np.ndarray, labels: tuple[str, ...]) -> LabelGrid:
        """Build without checks, for ids and labels the package made itself."""
        self = object.__new__(cls)
        ids.setflags(write=False)
        self._ids = ids
        self._labels = labels
        return self

    # ---------------------------------------------------------------- properties
    @property
    def ids(self) -> np.ndarray:
        """The ``(rows, cols)`` id array (read-only)."""
        return self._ids

    @property
    def labels(self) -> tuple[str, ...]:
        """Name of each id; ``labels[0]`` is the background."""
        return self._labels

    @property
    def background(self) -> str:
        return self._labels[0]

    @property
    def shape(self) -> tuple[int, int]:
        return self._ids.shape  # type: ignore[return-value]

    @property
    def rows(self) -> int:
        return self._ids.shape[0]

    @property
    def cols(self) -> int:
        return self._ids.shape[1]

    @property
    def foreground(self) -> np.ndarray:
        """Boolean ``(rows, cols)``: cells whose label is not the background."""
        return self._ids != 0

    def is_empty(self) -> bool:
        """True when no cell is foreground."""
        return not self._ids.any()

    # ---------------------------------------------------------------- conversion
    def render(self, size, *, align: Align = "corner", via=None) -> np.ndarray:
        """The id of every pixel of a ``size = (height, width)`` image (options as :func:`render`)."""
        return render(self._ids, size, align=align, via=via)

    def mask(self, size=None, *, label: str | None = None, align: Align = "corner", via=None) -> np.ndarray:
        """Boolean mask at ``size`` (the grid itself when None).

        Foreground is every non-background label, or only ``label`` when given.
        """
        if label is None:
            cells = self._ids != 0
        else:
            try:
                cells = self._ids == self._labels.index(label)
            except ValueError:
                raise LabelError(f"no label {label!r} in this grid; labels are {self._labels!r}") from None
        if size is None:
            return cells
        return render(cells, size, align=align, via=via)

    def to_text(self, *, format: str = "rrle", envelope: bool = True) -> str:
        """Write the grid as Text4Seg text (see :func:`maskcodec.to_text`)."""
        from .text import to_text

        return to_text(self, format=format, envelope=envelope)

    @classmethod
    def from_text(cls, text: str, /, **options) -> LabelGrid:
        """Parse text strictly (see :func:`maskcodec.from_text`)."""
        from ._parser import from_text

        return from_text(text, **options)

    @classmethod
    def from_mask(cls, mask, /, labels, *, background: str = "others", **options) -> LabelGrid:
        """Quantize a mask and name its values (see :func:`maskcodec.encode_grid`)."""
        from .text import encode_grid

        return encode_grid(mask, labels, background=background, **options)

    def relabel(self, mapping) -> LabelGrid:
        """A grid whose labels are renamed by ``mapping`` (a dict or a callable).

        Labels that end up equal are merged into one id; renaming a foreground
        label to the background's name merges it into the background.
        Renaming the *background* to a name that a foreground label keeps is
        refused, since it would silently turn that label's cells into
        background.
        """
        fn = mapping if callable(mapping) else (lambda s: mapping.get(s, s))
        new = [fn(lab) for lab in self._labels]
        if new[0] != self._labels[0]:
            for old, lab in zip(self._labels[1:], new[1:]):
                if lab == new[0] and lab == old:
                    raise LabelError(
                        f"relabel renames the background to {lab!r}, a foreground label of this grid"
                    )
        uniq: list[str] = []
        remap = np.empty(len(new), dtype=np.int64)
        for i, lab in enumerate(new):
            if lab not in uniq:
                uniq.append(lab)
            remap[i] = uniq.index(lab)
        return LabelGrid(remap[self._ids], uniq)

    def canonical(self) -> LabelGrid:
        """The same grid with unused labels dropped (background kept) and ids renumbered
        in order of first appearance, which is how :func:`from_text` numbers them."""
        order: list[int] = [0]
        seen = {0}
        for v in self._ids.ravel().tolist():
            if v not in seen:
                seen.add(v)
                order.append(v)
        remap = np.zeros(len(self._labels), dtype=self._ids.dtype)
        remap[order] = np.arange(len(order))
        return LabelGrid(remap[self._ids], [self._labels[i] for i in order])

    # ---------------------------------------------------------------- protocol
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelGrid):
            return NotImplemented
        return (
            self._ids.shape == other._ids.shape
            and np.array_equal(
                np.asarray(self._labels, dtype=object)[self._ids],
                np.asarray(other._labels, dtype=object)[other._ids],
            )
            and self.background == other.background
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LabelGrid({self._ids.tolist()!r}, {self._labels!r})"

    def __reduce__(self):
        return (LabelGrid, (self._ids.copy(), self._labels))

    def __array__(self, dtype=None, copy=None):
        return self._ids if dtype is None else self._ids.astype(dtype)
