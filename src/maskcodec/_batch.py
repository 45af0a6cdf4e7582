"""Many masks or answers in one call: :func:`encode_masks` and :func:`decode_masks`.

One call amortises what a call per mask pays again and again (argument checks,
label tables, numba's dispatch, allocating the result): binary masks sampled
with Pillow-exact nearest sampling are encoded by one kernel call per chunk,
and well-formed R-RLE answers are parsed and rendered straight into one
output buffer by one kernel call per chunk.  Everything else (label maps,
other quantizations, answers that need repairs) goes through
:func:`~maskcodec.encode_mask` / :func:`~maskcodec.decode_mask` sample by
sample, so the results are always exactly theirs.

The kernels release the GIL, so ``threads=N`` runs chunks on ``N`` threads of
this process (no pickling, no start-up of workers); the output does not
depend on ``threads``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np

from ._errors import InputError, MaskcodecError
from ._labels import check_label
from .grid import MAX_PIXELS, as_size
from .quantize import MAX_GRID_SIDE, Method, as_grid, as_mask, nearest_index
from .text import (
    Format,
    _bound,
    _check_distinct,
    _coerce_input,
    _label_table,
    _single_label_check,
    encode_mask,
    format_code,
)

__all__ = ["decode_masks", "encode_masks"]

# Worst-case text bytes one chunk may reserve: np.empty leaves untouched pages unmapped, so this
# bounds address space, not memory actually written (a 16x16 answer is about 300 bytes).
_CHUNK_BYTES = 1 << 25


def _k():
    from . import _kernels

    return _kernels


def _threads(threads: object) -> int:
    if threads is None:
        import os

        return os.cpu_count() or 1
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool):
        raise TypeError(f"threads must be an int >= 1 or None (one per CPU), got {threads!r}")
    if threads < 1:
        raise InputError(f"threads must be >= 1, got {threads}")
    return int(threads)


def _chunks(n: int, threads: int, limit: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` ranges: one per thread, at most ``limit`` long."""
    per = max(1, min(-(-n // threads), limit))
    return [(lo, min(n, lo + per)) for lo in range(0, n, per)]


def _map(fn, chunks: list[tuple[int, int]], threads: int) -> list:
    if threads == 1 or len(chunks) < 2:
        return [fn(lo, hi) for lo, hi in chunks]
    from concurrent.futures import ThreadPoolExecutor

    # A pool per call, joined before returning: threads left alive would make a later fork
    # unsafe (and datasets.convert then spawns its workers instead), for about 0.1 ms per call.
    with ThreadPoolExecutor(max_workers=min(threads, len(chunks)), thread_name_prefix="maskcodec") as pool:
        return list(pool.map(lambda c: fn(*c), chunks))


def _where(exc: Exception, where: str) -> Exception:
    """Say which sample an error came from (its type and attributes stay)."""
    if hasattr(exc, "add_note"):
        exc.add_note(f"(in {where})")
    return exc


# =========================================================================== encode


def _per_mask_labels(labels, n: int) -> list:
    if isinstance(labels, (str, Mapping)):
        return [labels] * n
    if isinstance(labels, Sequence):
        if len(labels) != n:
            raise InputError(
                f"got {len(labels)} labels for {n} masks; give one label (a str, or a dict of names for "
                "label maps) for all masks, or a list with one per mask"
            )
        return list(labels)
    raise TypeError(
        "labels must be a str or a dict of names (the same for every mask), or a list with one per "
        f"mask, got {type(labels).__name__}"
    )


def encode_masks(
    masks,
    /,
    labels,
    *,
    threads: int | None = 1,
    grid: int | tuple[int, int] = 16,
    method: Method = "nearest",
    format: Format = "rrle",
    background: str = "others",
    envelope: bool = True,
    threshold: float = 0.5,
    nonempty: bool = False,
    ignore_index: int | None = 255,
) -> list[str]:
    """Encode many masks as Text4Seg text: ``[encode_mask(m, label, ...) for m in masks]``, faster.

    Parameters
    ----------
    masks : ndarray (n, height, width) or sequence of masks
        A stack of masks of one size, or a list of masks of any sizes (each as
        :func:`maskcodec.encode_mask` takes it).
    labels : str, dict or sequence
        A str (every mask is binary, with this foreground label) or a dict of
        names (every mask is a label map with these names), the same for all;
        or a list with one entry per mask (a str or a names table each).
    threads : int or None
        Threads to run chunks of the batch on (None: one per CPU).  The
        texts do not depend on it.
    grid, method, format, background, envelope, threshold, nonempty, ignore_index
        As in :func:`maskcodec.encode_mask`.

    Returns
    -------
    list of str
        The text of each mask, in order; each equal to what
        :func:`maskcodec.encode_mask` returns for it.

    Examples
    --------
    >>> import numpy as np
    >>> masks = np.zeros((3, 4, 4), dtype=bool); masks[1, :2] = True; masks[2] = True
    >>> encode_masks(masks, ["cat", "dog", "sky"], grid=2, envelope=False)
    ['others *2\\n others *2\\n', 'dog *2\\n others *2\\n', 'sky *2\\n sky *2\\n']
    """
    threads = _threads(threads)
    fmt = format_code(format)
    if isinstance(masks, np.ndarray):
        if masks.ndim != 3:
            raise InputError(
                f"a stack of masks must be 3-D (n, height, width), got shape {masks.shape}; "
                "pass a list for masks of different sizes"
            )
        n = masks.shape[0]
    elif isinstance(masks, Sequence) and not isinstance(masks, (str, bytes)):
        n = len(masks)
    else:
        raise TypeError(
            f"masks must be a (n, height, width) array or a list of masks, got {type(masks).__name__}"
        )
    per = _per_mask_labels(labels, n)
    if n == 0:
        return []
    opts = dict(grid=grid, method=method, format=format, background=background, envelope=envelope,
                threshold=threshold, nonempty=nonempty, ignore_index=ignore_index)
    if method != "nearest" or nonempty or not all(type(lab) is str for lab in per):
        return _encode_each(masks, per, n, threads, opts)
    rows, cols = as_grid(grid)
    check_label(background)
    names = list(dict.fromkeys(per))
    for lab in names:
        check_label(lab)
        _check_distinct(lab, background)
    table = (background, *names)
    index = {lab: i + 1 for i, lab in enumerate(names)}
    fg = np.array([index[lab] for lab in per], dtype=np.int32)
    buf, off, longest = _label_table(table)
    ascii_only = all(lab.isascii() for lab in table)
    bound = _bound(rows, cols, longest)
    K = _k()
    if isinstance(masks, np.ndarray):
        as_mask(masks[0], "masks[0]", allow_negative=True)  # the checks of one mask hold for all
        yi = nearest_index(masks.shape[1], rows)
        xi = nearest_index(masks.shape[2], cols)

        def write(lo: int, hi: int):
            ids = np.empty((hi - lo, rows, cols), dtype=np.int32)
            out = np.empty((hi - lo) * bound, dtype=np.uint8)
            ends = np.empty(hi - lo, dtype=np.int64)
            total = K.encode_binary_batch(masks[lo:hi], yi, xi, fg[lo:hi], buf, off, fmt, bool(envelope),
                                          ids, out, ends)
            if total < 0:  # a label map named by one str label: the one-mask check says why
                i = lo - 1 - total
                try:
                    _single_label_check(masks[i], per[i], yi, xi)
                except MaskcodecError as exc:
                    raise _where(exc, f"masks[{i}]")
            return out, ends, total
    else:
        checked = [as_mask(_coerce_input(m, f"masks[{i}]"), f"masks[{i}]", allow_negative=True)
                   for i, m in enumerate(masks)]

        def write(lo: int, hi: int):
            ids = np.empty((hi - lo, rows, cols), dtype=np.int32)
            for i in range(lo, hi):
                m = checked[i]
                yi, xi = nearest_index(m.shape[0], rows), nearest_index(m.shape[1], cols)
                if K.sample_binary(m, yi, xi, fg[i], ids, i - lo):
                    try:
                        _single_label_check(m, per[i], yi, xi)
                    except MaskcodecError as exc:
                        raise _where(exc, f"masks[{i}]")
            out = np.empty((hi - lo) * bound, dtype=np.uint8)
            ends = np.empty(hi - lo, dtype=np.int64)
            total = K.write_texts(ids, buf, off, fmt, bool(envelope), out, ends)
            return out, ends, total

    texts: list[str] = []
    for out, ends, total in _map(write, _chunks(n, threads, max(1, _CHUNK_BYTES // bound)), threads):
        data = out[:total].tobytes()
        starts = [0, *ends[:-1].tolist()]
        if ascii_only:  # one decode, then str slices (byte and character offsets agree)
            s = data.decode("ascii")
            texts.extend(s[a:b] for a, b in zip(starts, ends.tolist()))
        else:
            texts.extend(data[a:b].decode("utf-8") for a, b in zip(starts, ends.tolist()))
    return texts


def _encode_each(masks, per, n, threads, opts) -> list[str]:
    def work(lo: int, hi: int) -> list[str]:
        out = []
        for i in range(lo, hi):
            try:
                out.append(encode_mask(masks[i], per[i], **opts))
            except (MaskcodecError, TypeError) as exc:
                raise _where(exc, f"masks[{i}]")
        return out

    return [t for part in _map(work, _chunks(n, threads, n), threads) for t in part]


# =========================================================================== decode


def _is_size(size: object) -> bool:
    return (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)
    )


def _check_total(pixels: int, n: int, max_pixels: int) -> None:
    if pixels > max_pixels:
        raise InputError(
            f"the batch of {n} masks holds {pixels} pixels, more than max_pixels={max_pixels}; "
            "decode it in chunks or pass a larger max_pixels"
        )


def decode_masks(
    texts,
    /,
    *,
    size,
    threads: int | None = 1,
    grid: int | tuple[int, int] | None = None,
    mode: Literal["strict", "repair", "text4seg"] = "repair",
    format: str = "rrle",
    envelope: bool = True,
    background: str = "others",
    labels=None,
    unknown: Literal["background", "keep"] = "background",
    align: Literal["corner", "center", "torch"] = "corner",
    via=None,
    class_table=None,
    out: np.ndarray | None = None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray | list[np.ndarray]:
    """Decode many answers to boolean masks: ``decode_mask`` for each text, faster.

    Parameters
    ----------
    texts : sequence of str
        The answers.
    size : (int, int) or sequence of (int, int)
        One ``(height, width)`` for every mask, or one per text.
    threads : int or None
        Threads to run chunks of the batch on (None: one per CPU).  The masks
        do not depend on it.
    grid, mode, format, envelope, background, labels, unknown, align, via, class_table
        As in :func:`maskcodec.decode_mask` (repair mode by default: never
        raises on text).
    out : ndarray, optional
        With one size: a C-contiguous ``(n, height, width)`` bool array to
        decode into (and return), e.g. one buffer reused batch after batch.
        Writing into memory already touched skips the page faults of a
        fresh allocation, which cost more than the decoding itself and do
        not get faster with threads.
    max_pixels : int
        The most pixels the whole batch may hold (default
        :data:`~maskcodec.MAX_PIXELS`, 2**30, one GiB of bool): a larger batch
        raises :class:`~maskcodec.InputError` before anything is allocated.
        Pass a larger value, or decode in chunks, to go past it.

    Returns
    -------
    ndarray or list of ndarray
        With one size, a ``(n, height, width)`` bool array; with one size per
        text, a list of ``(h, w)`` bool arrays (views into one buffer).  Each
        mask equals what :func:`maskcodec.decode_mask` returns for its text.

    Examples
    --------
    >>> texts = ["<seg>others *1| dog *1\\n dog *2\\n</seg>", "no mask", "<seg>cat *2\\n others *2\\n</seg>"]
    >>> decode_masks(texts, size=(2, 2)).astype(int).tolist()
    [[[0, 1], [1, 1]], [[0, 0], [0, 0]], [[1, 1], [0, 0]]]
    >>> [m.shape for m in decode_masks(texts, size=[(2, 2), (1, 1), (4, 2)])]
    [(2, 2), (1, 1), (4, 2)]
    """
    from ._parser import SEG_CLOSE, SEG_OPEN, _fast_background, decode_mask

    threads = _threads(threads)
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"texts must be a sequence of str, got {type(texts).__name__}")
    n = len(texts)
    for k, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{k}] must be a str, got {type(t).__name__}")
    one = _is_size(size)
    if one:
        h, w = as_size(size, max_pixels=max_pixels)
        sizes = [(h, w)] * n
        _check_total(n * h * w, n, max_pixels)
        if out is None:
            result = np.empty((n, h, w), dtype=bool)
        elif not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
        elif out.shape != (n, h, w) or out.dtype != np.bool_ or not out.flags.c_contiguous or not out.flags.writeable:
            raise InputError(
                f"out must be a writeable C-contiguous bool array of shape {(n, h, w)}, got "
                f"{out.dtype} {out.shape}{'' if out.flags.c_contiguous else ', not C-contiguous'}"
            )
        else:
            result = out
        flat = result.reshape(-1)
        offs = np.arange(n, dtype=np.int64) * (h * w)
    else:
        if out is not None:
            raise InputError("out= needs one size for every text")
        if isinstance(size, (str, bytes)) or not isinstance(size, Sequence):
            raise TypeError(f"size must be (height, width) or a sequence of them, got {size!r}")
        if len(size) != n:
            raise InputError(f"got {len(size)} sizes for {n} texts; give one size or one per text")
        sizes = [
            as_size(tuple(s) if isinstance(s, list) else s, f"size[{k}]", max_pixels) for k, s in enumerate(size)
        ]
        _check_total(sum(a * b for a, b in sizes), n, max_pixels)
        areas = np.array([a * b for a, b in sizes], dtype=np.int64)
        offs = np.zeros(n, dtype=np.int64)
        np.cumsum(areas[:-1], out=offs[1:])
        flat = np.empty(int(areas.sum()), dtype=bool)
        result = [flat[o : o + a * b].reshape(a, b) for o, (a, b) in zip(offs.tolist(), sizes)]
    options = dict(grid=grid, mode=mode, format=format, envelope=envelope, background=background,
                   labels=labels, unknown=unknown, align=align, via=via, class_table=class_table)
    codes = np.ones(n, dtype=np.int64)
    fast = _fast_background(background, mode == "repair") if type(background) is str else None
    if (
        n
        and (mode == "repair" or mode == "strict")
        and format == "rrle"
        and envelope is True
        and labels is None
        and via is None
        and class_table is None
        and fast is not None
        and (align == "corner" or align == "center")
    ):
        rows, cols = (-1, -1) if grid is None else as_grid(grid)
        pieces: list[bytes] = []
        starts: list[int] = []
        stops: list[int] = []
        pos = 0
        for t in texts:
            i = t.find(SEG_OPEN)
            j = t.find(SEG_CLOSE, i + len(SEG_OPEN)) if i >= 0 else -1
            if j < 0:
                starts.append(-1)
                stops.append(-1)
                continue
            piece = t[i + len(SEG_OPEN) : j].encode("utf-8", "surrogatepass")
            pieces.append(piece)
            starts.append(pos)
            pos += len(piece)
            stops.append(pos)
        buf = np.frombuffer(b"".join(pieces) or b"\0", dtype=np.uint8)
        st = np.array(starts, dtype=np.int64)
        sp = np.array(stops, dtype=np.int64)
        hs = np.array([s[0] for s in sizes], dtype=np.int64)
        ws = np.array([s[1] for s in sizes], dtype=np.int64)
        bg, fold = fast
        flat8 = flat.view(np.uint8)
        K = _k()

        def work(lo: int, hi: int) -> None:
            K.decode_rrle_batch(buf, st[lo:hi], sp[lo:hi], bg, fold, rows, cols, MAX_GRID_SIDE,
                                align == "center", flat8, offs[lo:hi], hs[lo:hi], ws[lo:hi], codes[lo:hi])

        _map(work, _chunks(n, threads, n), threads)
    for k in np.flatnonzero(codes).tolist():
        try:
            mask = decode_mask(texts[k], size=sizes[k], **options)
        except (MaskcodecError, TypeError) as exc:
            raise _where(exc, f"texts[{k}]")
        if one:
            result[k] = mask
        else:
            result[k][...] = mask
    return result

