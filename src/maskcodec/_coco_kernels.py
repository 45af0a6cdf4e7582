"""Numba kernels for COCO run-length encoded masks (used by :mod:`maskcodec.coco`).

Same JIT policy as :mod:`maskcodec._kernels`: ``njit(cache=True, nogil=True)``,
kernels only loop over arrays the wrappers in :mod:`maskcodec.coco` checked and
allocated, and report problems through their integer return value, never by
raising.  They live in their own file because numba's cache is keyed per
file and these kernels change on a different schedule.

COCO runs
---------
A COCO RLE of an ``h x w`` mask lists run lengths over the pixels in
*column-major* order (pixel ``(y, x)`` is at flat position ``x * h + y``),
starting with a background run (possibly of length 0) and alternating.  The
compressed ``counts`` string stores each count, minus the count two places
earlier from the fourth count on, as a little-endian sequence of 5-bit groups;
each group is one character ``48 + bits``, with ``0x20`` set when another
group follows and ``0x10`` of the last group the sign bit.
"""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(cache=True, nogil=True)


@_jit
def counts_from_string(buf, out):
    """Decode a compressed counts string (``buf``, uint8) into ``out`` (int64).

    Returns the number of counts, ``-1 - p`` when the byte at ``p`` is not
    a counts character, or ``-1 - len(buf)`` when the string ends inside a count.  ``out`` must hold
    ``len(buf)`` values (every count takes at least one character).
    Negative counts are returned as they are; the wrapper rejects them.
    """
    n = buf.shape[0]
    m = 0
    p = 0
    while p < n:
        x = 0
        k = 0
        more = True
        while more:
            if p >= n:
                return -1 - n
            c = np.int64(buf[p]) - 48
            if c < 0 or c > 63:
                return -1 - p
            if k >= 12:  # more than 60 bits: no real count is that long
                return -1 - p
            x |= (c & 0x1F) << (5 * k)
            more = (c & 0x20) != 0
            p += 1
            k += 1
            if not more and (c & 0x10) != 0:
                x |= np.int64(-1) << (5 * k)
        if m > 2:
            x += out[m - 2]
        out[m] = x
        m += 1
    return m


@_jit
def counts_to_string(cnts, n, out):
    """Write ``cnts[:n]`` as a compressed counts string into ``out``; return its length.

    ``out`` must hold ``13 * n`` bytes.  Mirrors pycocotools' ``rleToString``.
    """
    p = 0
    for i in range(n):
        x = np.int64(cnts[i])
        if i > 2:
            x -= np.int64(cnts[i - 2])
        more = True
        while more:
            c = x & 0x1F
            x >>= 5
            if (c & 0x10) != 0:
                more = x != -1
            else:
                more = x != 0
            if more:
                c |= 0x20
            out[p] = c + 48
            p += 1
    return p


@_jit
def count_stats(cnts, n):
    """Return ``(total, index of the first negative count or -1)``."""
    total = 0
    for i in range(n):
        if cnts[i] < 0:
            return total, i
        total += cnts[i]
    return total, -1


@_jit
def union_counts(a, na, b, nb, out):
    """Union of two run lists over the same pixels, written to ``out``; returns its length.

    Both lists start with a background run and sum to the same total (the
    wrapper checks).  Zero-length runs in the inputs are allowed; the output
    has none except possibly the first.  ``out`` must hold ``na + nb + 1``.
    """
    # ia/ib: index of the current run, ea/eb: where it ends, va/vb: its value.
    ia = 0
    ib = 0
    ea = a[0] if na > 0 else 0
    eb = b[0] if nb > 0 else 0
    va = 0
    vb = 0
    pos = 0
    cur = 0  # value of the output run being built
    length = 0
    m = 0
    total = 0
    for i in range(na):
        total += a[i]
    while pos < total:
        while ea <= pos and ia + 1 < na:
            ia += 1
            ea += a[ia]
            va ^= 1
        while eb <= pos and ib + 1 < nb:
            ib += 1
            eb += b[ib]
            vb ^= 1
        stop = ea if ea < eb else eb
        v = va | vb
        if v != cur:
            out[m] = length
            m += 1
            cur = v
            length = 0
        length += stop - pos
        pos = stop
    out[m] = length
    return m + 1


@_jit
def nearest_from_counts(cnts, n, h, yi, xi, out):
    """``out[r, c]`` = the mask value at pixel ``(yi[r], xi[c])``, read from the runs.

    ``yi`` and ``xi`` are non-decreasing, so the sampled flat positions
    ``xi[c] * h + yi[r]`` never decrease in column-major order and one pass
    over the runs finds them all (a column sampled twice, when there are more
    cells than pixels, is copied).
    """
    k = 0
    end = cnts[0]
    v = 0
    for c in range(xi.shape[0]):
        if c > 0 and xi[c] == xi[c - 1]:
            for r in range(yi.shape[0]):
                out[r, c] = out[r, c - 1]
            continue
        base = xi[c] * h
        for r in range(yi.shape[0]):
            p = base + yi[r]
            while p >= end and k + 1 < n:
                k += 1
                end += cnts[k]
                v ^= 1
            out[r, c] = v
    return 0


@_jit
def area_from_counts(cnts, n, h, rows, pptr, pcell, pw, out):
    """Exact foreground area per cell, integrated from the runs.

    Units are those of :func:`maskcodec._kernels.area_binary`: along the
    vertical axis pixel ``y`` spans ``[y * rows, (y + 1) * rows)`` and cell row
    ``r`` spans ``[r * h, (r + 1) * h)``; the horizontal weights come from the
    transposed overlap table (``pptr/pcell/pw``: for pixel column ``x`` the cell
    columns it overlaps and by how much).  A run of foreground rows
    ``[y0, y1)`` in one pixel column overlaps cell row ``r`` by the overlap of
    ``[y0 * rows, y1 * rows)`` with ``[r * h, (r + 1) * h)``.
    """
    pos = 0
    v = 0
    for i in range(n):
        length = cnts[i]
        if v == 1 and length > 0:
            s = pos
            e = pos + length
            while s < e:
                x = s // h
                y0 = s - x * h
                y1 = y0 + (e - s)
                if y1 > h:
                    y1 = h
                a0 = y0 * rows
                a1 = y1 * rows
                for r in range(a0 // h, (a1 - 1) // h + 1):
                    lo = r * h
                    hi = lo + h
                    wy = (a1 if a1 < hi else hi) - (a0 if a0 > lo else lo)
                    for u in range(pptr[x], pptr[x + 1]):
                        out[r, pcell[u]] += wy * pw[u]
                s += y1 - y0
        pos += length
        v ^= 1
    return 0


@_jit
def fill_from_counts(cnts, n, flat):
    """Write the mask of the runs into ``flat`` (uint8, column-major order)."""
    pos = 0
    v = 0
    for i in range(n):
        length = cnts[i]
        if v == 1:
            flat[pos : pos + length] = 1
        else:
            flat[pos : pos + length] = 0
        pos += length
        v ^= 1
    return 0


@_jit
def counts_from_flat(flat, words, out):
    """Column-major runs of a flat mask (non-zero is foreground); returns their number.

    Like pycocotools' ``rleEncode``: the first run is background (length 0
    when the first pixel is foreground) and no other run is empty.  ``words``
    is ``flat``'s first ``8 * len(words)`` bytes seen as uint64: inside a run
    of a 0/1 mask, eight pixels at a time are skipped by comparing one word
    (about 2x faster than pycocotools on the COCO masks; bytes other than 0/1
    simply take the byte path).  ``out`` must hold ``len(flat) + 1`` values.
    """
    n = flat.shape[0]
    nw = words.shape[0]
    zeros = np.uint64(0)
    ones = np.uint64(0x0101010101010101)
    m = 0
    prev = 0
    length = 0
    j = 0
    while j < n:
        k = j >> 3
        if (j & 7) == 0 and k < nw:
            word = words[k]
            if (prev == 0 and word == zeros) or (prev == 1 and word == ones):
                length += 8
                j += 8
                continue
        v = 1 if flat[j] != 0 else 0
        if v != prev:
            out[m] = length
            m += 1
            length = 0
            prev = v
        length += 1
        j += 1
    out[m] = length
    return m + 1


@_jit
def counts_from_grid(cells, ylen, xs, out):
    """Column-major runs of the mask a grid renders to; returns their number.

    ``cells`` is the ``(rows, cols)`` grid (non-zero is foreground), ``ylen[r]``
    the number of pixel rows that read cell row ``r`` (they are consecutive, in
    order), ``xs[x]`` the cell column read by pixel column ``x`` (non-decreasing).
    Every pixel column that reads cell column ``c`` has the same runs, so they
    are worked out once per cell column (``pv``/``pl``: value and length of
    each) and replayed.  ``out`` must hold ``rows * len(xs) + 1`` values.
    """
    rows = cells.shape[0]
    pv = np.empty(rows, dtype=np.int64)
    pl = np.empty(rows, dtype=np.int64)
    npat = 0
    last_c = -1
    m = 0
    cur = 0
    length = 0
    for x in range(xs.shape[0]):
        c = xs[x]
        if c != last_c:
            last_c = c
            npat = 0
            for r in range(rows):
                k = ylen[r]
                if k == 0:
                    continue
                v = 1 if cells[r, c] != 0 else 0
                if npat > 0 and pv[npat - 1] == v:
                    pl[npat - 1] += k
                else:
                    pv[npat] = v
                    pl[npat] = k
                    npat += 1
        for t in range(npat):
            v = pv[t]
            if v != cur:
                out[m] = length
                m += 1
                cur = v
                length = 0
            length += pl[t]
    out[m] = length
    return m + 1
