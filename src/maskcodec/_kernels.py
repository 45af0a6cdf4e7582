"""Every Numba kernel of maskcodec, and the one JIT policy they share.

Kernels only loop: they take arrays that the public wrappers have already
checked, coerced and allocated, write into them, and return plain integers.
They never raise and never touch Python objects.  Importing this module
imports numba (about 0.3 s), so the rest of the package imports it lazily,
inside the functions that need it; ``import maskcodec`` stays cheap.

Numba's on-disk cache keys each kernel on this file only, which is one reason
all kernels live here (a change elsewhere would not invalidate them).

Setting ``NUMBA_DISABLE_JIT=1`` runs the very same code as plain Python; the
test suite runs once that way so coverage sees inside the kernels.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)

# Text format codes shared with the Python side.
FMT_RRLE = 0
FMT_IRLE = 1
FMT_FULL = 2

# Parse status codes for the fast path (0 is success).
OK = 0
FAIL = 1

_SEP_ROW = np.frombuffer(b"\n ", dtype=np.uint8)


# --------------------------------------------------------------------------- quantize


@_jit
def nearest_sample(mask, yi, xi, out):
    """out[r, c] = mask[yi[r], xi[c]]."""
    for r in range(yi.shape[0]):
        row = yi[r]
        for c in range(xi.shape[0]):
            out[r, c] = mask[row, xi[c]]
    return 0


@_jit
def area_binary(mask, yptr, yidx, yw, xptr, xidx, xw, out):
    """Exact weighted foreground area per cell of a uint8 0/1 mask.

    Weights are integers: along an axis of ``n`` pixels and ``k`` cells, pixel
    ``p`` spans ``[p*k, (p+1)*k)`` and cell ``c`` spans ``[c*n, (c+1)*n)``; the
    overlap length is the weight (so a cell's weights sum to ``n``).
    ``out[r, c]`` is the sum over pixels of ``wy * wx * mask``.
    """
    width = mask.shape[1]
    band = np.zeros(width, dtype=np.int64)
    for r in range(out.shape[0]):
        band[:] = 0
        for t in range(yptr[r], yptr[r + 1]):
            i = yidx[t]
            w = yw[t]
            for j in range(width):
                band[j] += w * mask[i, j]
        for c in range(out.shape[1]):
            s = 0
            for t in range(xptr[c], xptr[c + 1]):
                s += xw[t] * band[xidx[t]]
            out[r, c] = s
    return 0


@_jit
def area_labels(dense, yptr, yidx, yw, pptr, pcell, pw, hist):
    """Exact weighted area per cell and per dense label id.

    ``dense`` holds dense ids 0..K-1; ``pptr/pcell/pw`` map each pixel column to
    the cell columns it overlaps (the transpose of the x table) so every pixel
    is read once per cell row it overlaps.
    """
    width = dense.shape[1]
    for r in range(hist.shape[0]):
        for t in range(yptr[r], yptr[r + 1]):
            i = yidx[t]
            wy = yw[t]
            for j in range(width):
                d = dense[i, j]
                for u in range(pptr[j], pptr[j + 1]):
                    hist[r, pcell[u], d] += wy * pw[u]
    return 0


@_jit
def dense_lut_u16(mask, lut):
    """Mark which values of a uint8/uint16 mask occur (lut[v] = 1)."""
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            lut[mask[i, j]] = 1
    return 0


@_jit
def apply_lut(mask, lut, out):
    for i in range(mask.shape[0]):
        for j in range(mask.shape[1]):
            out[i, j] = lut[mask[i, j]]
    return 0


# --------------------------------------------------------------------------- render


@_jit
def render(ids, ys, xs, out):
    """out[y, x] = ids[ys[y], xs[x]], expanding each grid row once."""
    rows = ids.shape[0]
    width = xs.shape[0]
    expanded = np.empty((rows, width), dtype=out.dtype)
    for r in range(rows):
        for x in range(width):
            expanded[r, x] = ids[r, xs[x]]
    for y in range(ys.shape[0]):
        out[y, :] = expanded[ys[y], :]
    return 0


# --------------------------------------------------------------------------- text writing


@_jit
def _put(out, n, src, start, stop):
    for k in range(start, stop):
        out[n] = src[k]
        n += 1
    return n


@_jit
def _put_int(out, n, value):
    digits = np.empty(20, dtype=np.uint8)
    k = 0
    while True:
        digits[k] = 48 + value % 10
        value //= 10
        k += 1
        if value == 0:
            break
    while k > 0:
        k -= 1
        out[n] = digits[k]
        n += 1
    return n


@_jit
def _put_run(out, n, first, lab, off, v, count):
    if not first:
        out[n] = 124  # "|"
        out[n + 1] = 32
        n += 2
    n = _put(out, n, lab, off[v], off[v + 1])
    out[n] = 32  # " *"
    out[n + 1] = 42
    return _put_int(out, n + 2, count)


@_jit
def write_text(ids, lab, off, fmt, envelope, out):
    """Write ``ids`` (rows, cols) as text into ``out``; return the byte count.

    ``lab`` holds every label's UTF-8 bytes back to back, label ``v`` at
    ``lab[off[v]:off[v+1]]``.  ``out`` must be large enough (the wrapper sizes
    it from the worst case: one run per cell).
    """
    rows, cols = ids.shape
    n = 0
    if envelope:
        for ch in (60, 115, 101, 103, 62):  # "<seg>"
            out[n] = ch
            n += 1
    if fmt == 0:  # rrle
        for r in range(rows):
            if r > 0:
                out[n] = 10
                out[n + 1] = 32
                n += 2
            c = 0
            while c < cols:
                v = ids[r, c]
                e = c + 1
                while e < cols and ids[r, e] == v:
                    e += 1
                n = _put_run(out, n, c == 0, lab, off, v, e - c)
                c = e
    elif fmt == 1:  # irle
        total = rows * cols
        k = 0
        while k < total:
            v = ids[k // cols, k % cols]
            e = k + 1
            while e < total and ids[e // cols, e % cols] == v:
                e += 1
            n = _put_run(out, n, k == 0, lab, off, v, e - k)
            k = e
    else:  # full
        for r in range(rows):
            for c in range(cols):
                if r > 0 or c > 0:
                    out[n] = 124
                    out[n + 1] = 32
                    n += 2
                v = ids[r, c]
                n = _put(out, n, lab, off[v], off[v + 1])
    out[n] = 10
    n += 1
    if envelope:
        for ch in (60, 47, 115, 101, 103, 62):  # "</seg>"
            out[n] = ch
            n += 1
    return n


# --------------------------------------------------------------------------- parsing (fast path)


@_jit
def _same_bytes(buf, a0, a1, b0, b1):
    if a1 - a0 != b1 - b0:
        return False
    for k in range(a1 - a0):
        if buf[a0 + k] != buf[b0 + k]:
            return False
    return True


@_jit
def parse_rrle(buf, start, stop, rows, cols, max_side, run_lab, run_cnt, spans, shape):
    """Strictly parse canonical-or-not R-RLE body bytes ``buf[start:stop]``.

    The body must be exactly ``row {"\\n " row} "\\n"``.  ``rows``/``cols`` of
    -1 mean "infer" (cols from the first row's sum, rows from the row count,
    each at most ``max_side``).  On success returns 0 and fills
    ``run_lab``/``run_cnt`` (label index and length of each run, in order),
    ``spans`` (start, end byte offsets of each distinct label, in order of
    first appearance) and ``shape`` (rows, cols, number of labels, number of
    runs).  Returns 1 on anything unusual; the caller then runs the
    hand-written parser, which either accepts with the same result or raises a
    positioned error.  Labels are only checked for the structural bytes here;
    the caller checks their decoded text.
    """
    nlab = 0
    pos = start
    r = 0
    nrun = 0
    width = cols
    while True:
        # one row
        rowsum = 0
        while True:
            # label: up to " *"
            lab0 = pos
            while pos < stop:
                b = buf[pos]
                if b == 42 or b == 124 or b == 10 or b == 13 or b == 60:
                    break
                pos += 1
            if pos >= stop or buf[pos] != 42:
                return 1
            lab1 = pos - 1  # the space before "*"
            if lab1 <= lab0 or buf[lab1] != 32:
                return 1
            first = buf[lab0]
            last = buf[lab1 - 1]
            if first == 32 or first == 9 or last == 32 or last == 9:
                return 1
            pos += 1
            # count: [1-9][0-9]*
            if pos >= stop or buf[pos] < 49 or buf[pos] > 57:
                return 1
            count = 0
            while pos < stop and 48 <= buf[pos] <= 57:
                count = count * 10 + (buf[pos] - 48)
                if count > max_side:
                    return 1
                pos += 1
            rowsum += count
            if rowsum > max_side or (width >= 0 and rowsum > width):
                return 1
            # intern the label
            k = -1
            for q in range(nlab):
                if _same_bytes(buf, spans[q, 0], spans[q, 1], lab0, lab1):
                    k = q
                    break
            if k < 0:
                if nlab >= spans.shape[0]:
                    return 1
                spans[nlab, 0] = lab0
                spans[nlab, 1] = lab1
                k = nlab
                nlab += 1
            if nrun >= run_lab.shape[0]:
                return 1
            run_lab[nrun] = k
            run_cnt[nrun] = count
            nrun += 1
            if pos + 1 < stop and buf[pos] == 124 and buf[pos + 1] == 32:
                pos += 2
                continue
            break
        if width < 0:
            width = rowsum
        elif rowsum != width:
            return 1
        r += 1
        if pos >= stop or buf[pos] != 10:
            return 1
        pos += 1
        if pos == stop:
            break
        if buf[pos] != 32:
            return 1
        pos += 1
        if rows >= 0 and r >= rows:
            return 1
        if r >= max_side:
            return 1
    if rows >= 0 and r != rows:
        return 1
    shape[0] = r
    shape[1] = width
    shape[2] = nlab
    shape[3] = nrun
    return 0
