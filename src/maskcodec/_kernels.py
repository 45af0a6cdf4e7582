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

#: True when NUMBA_DISABLE_JIT=1 runs the kernels as plain Python.
JIT_DISABLED = bool(numba.config.DISABLE_JIT)


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
def area_binary(mask, yptr, yidx, yw, xptr, xidx, xw, full, seen, out):
    """Exact weighted foreground area per cell of a 0/1 uint8 mask.

    Weights are integers: along an axis of ``n`` pixels and ``k`` cells, pixel
    ``p`` spans ``[p*k, (p+1)*k)`` and cell ``c`` spans ``[c*n, (c+1)*n)``; the
    overlap length is the weight (so a cell's weights sum to ``n``).
    ``out[r, c]`` is the sum over pixels of ``wy * wx * mask``.

    Pixel rows lying wholly inside a cell row (weight ``k``, most of them) are
    summed unweighted into ``full``, whose dtype the wrapper picks as narrow as
    the row count allows (uint8 for up to 255 rows: 32 lanes per AVX2 add);
    only the boundary rows are multiplied.

    ``seen`` (zeroed, the mask's dtype, one lane per column) collects the
    bitwise OR of every value read, so the caller learns in the same pass
    whether the mask really was 0/1: the kernel returns 1 if any value was
    above 1 (the sums are then wrong and must not be used), else 0.  Per-lane
    ORs keep the loop vectorised; a scalar OR reduction made it 3x slower.
    """
    width = mask.shape[1]
    k = out.shape[0]
    kx = out.shape[1]
    part = np.zeros(width, dtype=np.int64)
    comb = np.empty(width, dtype=np.int64)
    for r in range(k):
        full[:] = 0
        partial = False
        ta = yptr[r]
        tb = yptr[r + 1]
        # Only the first and last pixel rows of a cell row can be partial;
        # the ones between are consecutive rows of full weight k.
        for t in (ta, tb - 1):
            if t >= ta and t < tb and yw[t] != k:
                if not partial:
                    part[:] = 0
                    partial = True
                w = yw[t]
                row = mask[yidx[t]]
                for j in range(width):
                    part[j] += w * row[j]
                    seen[j] |= row[j]
                if tb - ta == 1:
                    break
        if ta < tb and yw[ta] != k:
            ta += 1
        if tb > ta and yw[tb - 1] != k:
            tb -= 1
        i = yidx[ta] if ta < tb else 0
        stop = i + (tb - ta)
        while i + 4 <= stop:  # four rows per sweep: a third of the loop overhead
            a = mask[i]
            b = mask[i + 1]
            c = mask[i + 2]
            d = mask[i + 3]
            for j in range(width):
                full[j] += (a[j] + b[j]) + (c[j] + d[j])
                seen[j] |= (a[j] | b[j]) | (c[j] | d[j])
            i += 4
        while i < stop:
            a = mask[i]
            for j in range(width):
                full[j] += a[j]
                seen[j] |= a[j]
            i += 1
        if partial:
            for j in range(width):
                comb[j] = k * np.int64(full[j]) + part[j]
        else:
            for j in range(width):
                comb[j] = k * np.int64(full[j])
        # A cell's pixels are consecutive: partial first and last, full weight
        # (kx) in between, so the middle is a plain, vectorisable sum.
        for c in range(kx):
            t0 = xptr[c]
            t1 = xptr[c + 1] - 1
            s = xw[t0] * comb[xidx[t0]]
            if t1 > t0:
                s += xw[t1] * comb[xidx[t1]]
                inner = np.int64(0)
                for j in range(xidx[t0] + 1, xidx[t1]):
                    inner += comb[j]
                s += kx * inner
            out[r, c] = s
    any_big = 0
    for j in range(width):
        if seen[j] > 1:
            any_big = 1
    return any_big


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
    """out[y, x] = ids[ys[y], xs[x]], expanding each grid row once.

    ``ys`` is non-decreasing (both alignments are), so consecutive output rows
    that read the same grid row are plain copies of the expanded row.
    """
    rows = ids.shape[0]
    width = xs.shape[0]
    expanded = np.empty((rows, width), dtype=out.dtype)
    for r in range(rows):
        for x in range(width):
            expanded[r, x] = ids[r, xs[x]]
    for y in range(ys.shape[0]):
        src = expanded[ys[y]]
        dst = out[y]
        for x in range(width):
            dst[x] = src[x]
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
    """Write the decimal digits of ``value`` (>= 0) at ``out[n:]``; return the new end."""
    ndig = 1
    v = value
    while v >= 10:
        v //= 10
        ndig += 1
    end = n + ndig
    k = end
    while True:
        k -= 1
        out[k] = 48 + value % 10
        value //= 10
        if value == 0:
            break
    return end


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


@_jit
def encode_binary(mask, yi, xi, lab, off, fmt, envelope, out):
    """Nearest-sample a mask (non-zero is foreground, id 1) and write it as text in one call."""
    ids = np.empty((yi.shape[0], xi.shape[0]), dtype=np.uint8)
    for r in range(yi.shape[0]):
        row = yi[r]
        for c in range(xi.shape[0]):
            ids[r, c] = 1 if mask[row, xi[c]] != 0 else 0
    return write_text(ids, lab, off, fmt, envelope, out)


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
def parse_rrle(buf, stop, bg, rows, cols, max_side, cells, spans, shape):
    """Strictly parse R-RLE body bytes ``buf[:stop]`` straight into label ids.

    The body must be exactly ``row {"\\n " row} "\\n"``.  ``rows``/``cols`` of
    -1 mean "infer" (cols from the first row's sum, rows from the row count,
    each at most ``max_side``).  Label id 0 is the background, whose bytes are
    ``bg``; other labels are numbered by first appearance, as the hand-written
    parser numbers them.  On success returns 0 and fills ``cells`` (row-major
    ids, uint8), ``spans`` (start, end byte offsets of label ``k`` in row
    ``k``; row 0 is unused) and ``shape`` (rows, cols, number of labels).
    Returns 1 on anything unusual (including more than 256 labels or more
    cells than ``cells`` holds); the caller then runs the hand-written parser,
    which either accepts with the same result or raises a positioned error.
    Labels are only checked for structural bytes here (``* | \\n \\r <`` and
    edge spaces/tabs); the caller checks their decoded text.
    """
    nlab = 1
    nbg = bg.shape[0]
    pos = 0
    r = 0
    ncell = 0
    width = cols
    while True:
        rowsum = 0
        while True:
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
            if pos >= stop or buf[pos] < 49 or buf[pos] > 57:  # count: [1-9][0-9]*
                return 1
            count = 0
            while pos < stop and 48 <= buf[pos] <= 57:
                count = count * 10 + (np.int64(buf[pos]) - 48)  # int64: uint8 math wraps with the JIT off
                if count > max_side:
                    return 1
                pos += 1
            rowsum += count
            if rowsum > max_side or (width >= 0 and rowsum > width):
                return 1
            # intern the label: the background, a known label, or a new one
            k = -1
            if lab1 - lab0 == nbg:
                k = 0
                for q in range(nbg):
                    if buf[lab0 + q] != bg[q]:
                        k = -1
                        break
            if k < 0:
                for q in range(1, nlab):
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
            if ncell + count > cells.shape[0]:
                return 1
            for q in range(count):
                cells[ncell + q] = k
            ncell += count
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
        if (rows >= 0 and r >= rows) or r >= max_side:
            return 1
    if rows >= 0 and r != rows:
        return 1
    shape[0] = r
    shape[1] = width
    shape[2] = nlab
    return 0
