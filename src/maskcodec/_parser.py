"""The hand-written parser for Text4Seg text, in three modes.

Grammar (EBNF; ``-`` is set difference).  It is also in ``docs/format.md``::

    answer     = "<seg>" , body , "</seg>" ;
    body       = rrle_body | irle_body | full_body ;       (chosen by `format`)
    rrle_body  = row , { "\\n " , row } , "\\n" ;
    row        = run , { "| " , run } ;                     (counts sum to cols)
    irle_body  = run , { "| " , run } , "\\n" ;             (counts sum to rows*cols)
    full_body  = label , { "| " , label } , "\\n" ;         (rows*cols labels)
    run        = label , " *" , count ;
    count      = nonzero , { digit } ;
    nonzero    = "1" | ... | "9" ;   digit = "0" | nonzero ;
    label      = edge , [ { inner } , edge ] ;              (no "<seg>" / "</seg>" inside)
    edge       = inner - whitespace ;
    inner      = char - ( "|" | "*" | line break | control character other than tab ) ;

Modes
-----
``"strict"``
    Exactly the grammar; ``rows`` rows of ``cols`` cells (inferred from the
    text when ``grid`` is None); labels from ``labels`` when given.  Any
    deviation raises :class:`~maskcodec.ParseError` with line and column.
``"repair"``
    For model output.  Never raises on text; always returns ``rows x cols``
    and records every repair (see :class:`Repair`).  Policy, per row:
    ``"\\n"``/``"|"`` without the space, ``"\\r"`` and stray whitespace are
    tolerated; a short row is padded with its own last label; a long row is
    cut; a row with no readable run is background; missing rows are
    background; extra rows are dropped; counts over the row width are
    clamped; a truncated answer (no ``</seg>``) keeps every row that was
    terminated by a newline and drops the unfinished one.  Labels: the
    background matches case-insensitively; with a vocabulary, labels match
    exactly, then case- and space-insensitively, else follow ``unknown``.
``"text4seg"``
    Reproduces the reference decoder of the Text4Seg evaluation scripts,
    quirks included (see ``docs/format.md``), for reproducing published
    numbers.  Never raises on text.

No count is ever used to allocate: counts are bounded by the row width (or
the grid size) before anything is expanded.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections import Counter
from typing import Final, Literal, NamedTuple

import numpy as np

from ._errors import InputError, LabelError, ParseError
from ._labels import _problem, is_safe_label, safe_label
from .grid import MAX_PIXELS, LabelGrid, as_size, render
from .quantize import MAX_GRID_SIDE, as_grid

__all__ = ["ParseResult", "Repair", "decode_mask", "from_text", "parse", "parse_all"]

SEG_OPEN: Final = "<seg>"
SEG_CLOSE: Final = "</seg>"
ROW_SEP: Final = "\n "
RUN_SEP: Final = "| "
COUNT_MARK: Final = " *"
BODY_END: Final = "\n"

#: Grid used when repair mode has nothing to infer one from.
DEFAULT_GRID: Final = 16
# A count with more digits than this is out of range whatever the grid (1024**2 < 10**7).
_MAX_COUNT_DIGITS: Final = 7

# text4seg mode: the reference expands `[label] * int(count)`.  Python raises OverflowError for a
# count outside a C ssize_t and MemoryError when the list cannot be allocated.  Where that happens
# depends on the machine; maskcodec fixes it at a documented bound: the list of cells decoded so far
# (8 bytes per cell, one pointer each) needing more than 2**38 bytes (256 GiB) is a MemoryError.
_T4S_SSIZE_MIN: Final = -(2**63)
_T4S_SSIZE_MAX: Final = 2**63 - 1
T4S_MEMORY_BYTES: Final = 2**38
_T4S_MAX_CELLS: Final = T4S_MEMORY_BYTES // 8

Mode = Literal["strict", "repair", "text4seg"]
_MODES = ("strict", "repair", "text4seg")
_FORMATS = ("rrle", "irle", "full")

# Where a label stops: a structural character or a tag.  Used as a lexer helper
# (find the next stop), never to match structure.
_STOP = re.compile("[|*\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]|</?seg>")
_DIGITS = frozenset("0123456789")


class Repair(NamedTuple):
    """One change repair mode made to model output.

    ``kind`` is one of: ``no_block``, ``unterminated``, ``incomplete_row``,
    ``bad_run``, ``bad_separator``, ``clamped_count``, ``short_row``,
    ``long_row``, ``empty_row``, ``missing_rows``, ``extra_rows``,
    ``unknown_label``, ``mapped_label``, ``unsafe_label``, ``inferred_grid``,
    ``short_body``, ``long_body``, ``bad_count``; in ``"text4seg"`` mode only ``no_block`` and
    ``reference_error`` (why the reference decoder gave an all-background
    grid: the mask is unchanged, the record only explains it).
    """

    kind: str
    line: int
    column: int
    message: str


class ParseResult(NamedTuple):
    """What :func:`parse` found: the grid, where it was and what was repaired.

    Attributes
    ----------
    grid : LabelGrid
        The decoded grid.
    repairs : tuple of Repair
        Every change repair mode made (empty in strict mode).
    start, end : int
        Offsets of the block in the text (``<seg>`` to after ``</seg>``).
    complete : bool
        False when the block had no ``</seg>`` (a truncated answer).
    found : bool
        False when the text had no block at all (the grid is then all background).
    """

    grid: LabelGrid
    repairs: tuple[Repair, ...] = ()
    start: int = 0
    end: int = 0
    complete: bool = True
    found: bool = True

    @property
    def repaired(self) -> bool:
        """True when repair mode changed anything."""
        return bool(self.repairs)


def _line_col(text: str, pos: int) -> tuple[int, int]:
    return text.count("\n", 0, pos) + 1, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _show(text: str, pos: int) -> str:
    if pos >= len(text):
        return "end of text"
    for tag in (SEG_OPEN, SEG_CLOSE):
        if text.startswith(tag, pos):
            return repr(tag)
    return repr(text[pos])


# =========================================================================== strict


class _Strict:
    """Strict recursive-descent parser: one method per grammar rule, ``rule(pos) -> pos``."""

    def __init__(self, text, rows, cols, vocab, background, envelope, end):
        self.src = text
        self.rows = rows
        self.cols = cols
        self.vocab = vocab
        self.background = background
        self.envelope = envelope
        self.end = end  # where the body may end (len(text) without envelope)
        self.index: dict[str, int] = {background: 0}
        self.labels: list[str] = [background]

    def error(self, reason, pos, expected=""):
        return ParseError(reason, self.src, pos, expected)

    def label(self, pos):
        """label: the text up to the next structural character; returns where it stops."""
        m = _STOP.search(self.src, pos, self.end)
        return m.start() if m else self.end

    def intern(self, name, pos):
        problem = _problem(name)
        if problem is not None:
            raise self.error(problem, pos, "a label")
        i = self.index.get(name)
        if i is None:
            if self.vocab is not None and name not in self.vocab:
                shown = ", ".join(repr(v) for v in sorted(self.vocab)[:10])
                more = ", ..." if len(self.vocab) > 10 else ""
                raise self.error(f"unknown label {name!r}; expected one of {shown}{more}", pos, "a label")
            i = len(self.labels)
            self.index[name] = i
            self.labels.append(name)
        return i

    def run(self, pos, limit):
        """run = label " *" count; returns (pos, id, count)."""
        src = self.src
        stop = self.label(pos)
        if stop >= self.end or src[stop] != "*":
            raise self.error(
                f"expected ' *' and a count after {src[pos:stop]!r}, found {_show(src, stop)}",
                stop,
                "' *'",
            )
        if stop == pos or src[stop - 1] != " ":
            raise self.error("expected a space before '*'", stop, "' *'")
        name = src[pos : stop - 1]
        if not name:
            raise self.error("empty label before ' *'", pos, "a label")
        ident = self.intern(name, pos)
        return self.count(stop + 1, limit, ident)

    def count(self, pos, limit, ident):
        """count = nonzero { digit }, at most ``limit``."""
        src = self.src
        k = pos
        while k < self.end and src[k] in _DIGITS:
            k += 1
        digits = src[pos:k]
        if not digits:
            raise self.error(f"expected a count after '*', found {_show(src, pos)}", pos, "a count")
        if digits.strip("0") == "":
            raise self.error(f"count {digits!r} is zero; a run has at least 1 cell", pos, "a count from 1")
        if digits[0] == "0":
            raise self.error(f"count {digits!r} has a leading zero", pos, "a count from 1")
        if len(digits) > _MAX_COUNT_DIGITS or int(digits) > limit:
            left = f"{limit} cell{'s' if limit != 1 else ''} left"
            raise self.error(f"count {digits} exceeds the {left}", pos, f"a count <= {limit}")
        return k, ident, int(digits)

    def sep(self, pos, what="runs"):
        """After a run or label: ``"| "`` (True), the body end (False) or an error."""
        src = self.src
        if src.startswith(RUN_SEP, pos):
            return True
        if pos < self.end and src[pos] == "|":
            raise self.error(f"expected '| ' between {what}, found '|' then {_show(src, pos + 1)}", pos + 1, "' '")
        return False

    def row(self, pos, r, out):
        """row = run { "| " run }, its counts summing to ``cols``."""
        width = self.cols if self.cols is not None else MAX_GRID_SIDE
        total = 0
        while True:
            pos, ident, n = self.run(pos, width - total)
            out.append((ident, n))
            total += n
            if not self.sep(pos):
                break
            if self.cols is not None and total == width:
                raise self.error(f"row {r + 1} already has {width} cells; expected its end", pos, "'\\n'")
            pos += len(RUN_SEP)
        if self.cols is None:
            self.cols = total
        elif total != self.cols:
            raise self.error(f"row {r + 1} has {total} cells, expected {self.cols}", pos, "'| ' and more runs")
        return pos

    def body_end(self, pos):
        """The ``"\\n"`` that ends a body, then ``</seg>`` (or the end of the text)."""
        src = self.src
        if pos >= self.end or src[pos] != "\n":
            raise self.error(f"expected a newline, found {_show(src, pos)}", pos, "'\\n'")
        pos += 1
        return pos

    def closed(self, pos):
        if self.envelope:
            return self.src.startswith(SEG_CLOSE, pos)
        return pos >= self.end

    def rrle(self, pos):
        """rrle_body = row { "\\n " row } "\\n"."""
        src = self.src
        runs: list[list[tuple[int, int]]] = []
        while True:
            out: list[tuple[int, int]] = []
            pos = self.row(pos, len(runs), out)
            runs.append(out)
            pos = self.body_end(pos)
            if self.closed(pos):
                break
            if pos < self.end and src[pos] == " ":
                if self.rows is not None and len(runs) >= self.rows:
                    raise self.error(f"more than {self.rows} rows", pos + 1, "'</seg>'" if self.envelope else "end of text")
                if len(runs) >= MAX_GRID_SIDE:
                    raise self.error(f"more than {MAX_GRID_SIDE} rows", pos + 1)
                pos += 1
                continue
            want = "' ' (next row) or '</seg>'" if self.envelope else "' ' (next row) or end of text"
            raise self.error(f"expected {want}, found {_show(src, pos)}", pos, want)
        if self.rows is not None and len(runs) != self.rows:
            raise self.error(f"expected {self.rows} rows, got {len(runs)}", pos, "' ' (next row)")
        self.rows = len(runs)
        ids = np.empty((self.rows, self.cols), dtype=np.int64)
        for r, out in enumerate(runs):
            c = 0
            for ident, n in out:
                ids[r, c : c + n] = ident
                c += n
        return pos, ids

    def _cells_limit(self):
        if self.rows is not None and self.cols is not None:
            return self.rows * self.cols
        return MAX_GRID_SIDE * MAX_GRID_SIDE

    def irle(self, pos):
        """irle_body = run { "| " run } "\\n"."""
        limit = self._cells_limit()
        runs: list[tuple[int, int]] = []
        total = 0
        while True:
            pos, ident, n = self.run(pos, limit - total)
            runs.append((ident, n))
            total += n
            if not self.sep(pos):
                break
            pos += len(RUN_SEP)
        return self._flat_end(pos, np.repeat([i for i, _ in runs], [n for _, n in runs]))

    def full(self, pos):
        """full_body = label { "| " label } "\\n"."""
        limit = self._cells_limit()
        cells: list[int] = []
        while True:
            stop = self.label(pos)
            name = self.src[pos:stop]
            if not name:
                raise self.error(f"expected a label, found {_show(self.src, pos)}", pos, "a label")
            if stop < self.end and self.src[stop] not in "|\n":
                raise self.error(f"found {_show(self.src, stop)} inside a label", stop, "'| ' or '\\n'")
            if len(cells) >= limit:
                raise self.error(f"more than {limit} cells", pos)
            cells.append(self.intern(name, pos))
            pos = stop
            if not self.sep(pos, "labels"):
                break
            pos += len(RUN_SEP)
        return self._flat_end(pos, np.asarray(cells, dtype=np.int64))

    def _flat_end(self, pos, flat):
        end = self.body_end(pos)
        if not self.closed(end):
            want = "'</seg>'" if self.envelope else "end of text"
            raise self.error(f"expected {want}, found {_show(self.src, end)}", end, want)
        n = flat.size
        if self.rows is None or self.cols is None:
            side = int(round(n**0.5))
            if side * side != n:
                raise self.error(
                    f"cannot infer the grid of {n} cells (not a square); pass grid=(rows, cols)", pos
                )
            self.rows = self.cols = side
        if n != self.rows * self.cols:
            raise self.error(f"expected {self.rows * self.cols} cells, got {n}", pos, "'| ' and more")
        return end, flat.reshape(self.rows, self.cols)


def _vocab(labels, background):
    if labels is None:
        return None
    if isinstance(labels, str):
        raise TypeError("labels must be a collection of str (the allowed foreground labels)")
    vocab = set(labels)
    vocab.add(background)
    return vocab


def _strict(text, start, end, rows, cols, fmt, vocab, background, envelope):
    p = _Strict(text, rows, cols, vocab, background, envelope, end)
    pos, ids = getattr(p, fmt)(start)
    dtype = np.uint8 if len(p.labels) <= 256 else np.int32
    return pos, LabelGrid._trusted(ids.astype(dtype), tuple(p.labels))


@functools.lru_cache(maxsize=8)
def _background_ids(rows: int, cols: int) -> np.ndarray:
    """One read-only all-background grid per shape, shared by every empty result.

    ``parse_all`` on 5,000 empty blocks at grid 1024 held a megabyte per block
    (2.7 GB in all); grids are read-only, so they can share one array.
    """
    ids = np.zeros((rows, cols), dtype=np.uint8)
    ids.setflags(write=False)
    return ids


@functools.lru_cache(maxsize=64)
def _bg_bytes(background: str) -> np.ndarray:
    arr = np.frombuffer(background.encode("utf-8"), dtype=np.uint8)
    return arr


_NO_FOLD: Final = np.zeros(0, dtype=np.uint8)


@functools.lru_cache(maxsize=64)
def _bg_fold(background: str) -> np.ndarray | None:
    """The bytes that repair mode's background folding compares ASCII labels with (the kernel
    leaves such a label to the repair parser); None for a non-ASCII background, whose folding
    only the Python parser knows."""
    if not background.isascii():
        return None
    return np.frombuffer(background.lower().encode("ascii"), dtype=np.uint8)


@functools.lru_cache(maxsize=64)
def _fast_background(background: str, repair: bool):
    """``(bytes, fold bytes)`` of the background for the decode kernels, or None when they cannot
    take it (an unsafe background, or a non-ASCII one in repair mode, whose folding only the
    Python parser knows)."""
    if _problem(background) is not None:
        return None
    fold = _bg_fold(background) if repair else _NO_FOLD
    return None if fold is None else (_bg_bytes(background), fold)


_MAX_FAST_CELLS: Final = MAX_GRID_SIDE * MAX_GRID_SIDE


def _fast_rrle(text, start, end, rows, cols, vocab, background):
    """The Numba fast path for well-formed R-RLE; None when the text needs the full parser.

    It accepts a subset of what :class:`_Strict` accepts and then gives the
    same grid (the tests check both).
    """
    from . import _kernels

    try:
        raw = text[start:end].encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: the full parser names it
        return None
    if not raw:
        return None
    buf = np.frombuffer(raw, dtype=np.uint8)
    # np.empty does not touch the pages, so the worst-case size costs nothing.
    cells = np.empty(rows * cols if rows is not None else _MAX_FAST_CELLS, dtype=np.uint8)
    spans = np.empty((256, 2), dtype=np.int64)
    shape = np.empty(3, dtype=np.int64)
    code = _kernels.parse_rrle(
        buf, 0, buf.size, _bg_bytes(background), _NO_FOLD, -1 if rows is None else rows,
        -1 if cols is None else cols, MAX_GRID_SIDE, cells, spans, shape,
    )
    if code == 1:
        return None
    nr, nc, nlab = shape.tolist()
    labels = [background]
    for a, b in spans[1:nlab].tolist():
        name = raw[a:b].decode("utf-8")
        # code 0: the kernel has checked every (ASCII) label; code 2: some need the full rule
        if (code and _problem(name) is not None) or (vocab is not None and name not in vocab):
            return None
        labels.append(name)
    ids = cells[: nr * nc].reshape(nr, nc)
    if rows is None:
        ids = ids.copy()  # do not keep the worst-case buffer alive
    return LabelGrid._trusted(ids, tuple(labels))


# =========================================================================== repair


#: At most this many repairs of one kind are listed per block; one more record of
#: that kind then says how many were left out.  Without a cap a hostile answer
#: ("a|" repeated) makes a record per two characters: 170 bytes of memory per byte.
MAX_REPAIRS_PER_KIND: Final = 100


class _RepairLog:
    """The repairs of one block, with line and column found in O(log n) each."""

    def __init__(self, text: str) -> None:
        self.src = text
        self.repairs: list[Repair] = []
        self._count: dict[str, int] = {}
        self._first_dropped: dict[str, int] = {}
        self._newlines: list[int] | None = None

    def position(self, pos: int) -> tuple[int, int]:
        # Newline offsets are found once, so many repairs in a long text stay linear.
        if self._newlines is None:
            self._newlines = [m.start() for m in re.finditer("\n", self.src)]
        pos = max(0, min(pos, len(self.src)))
        line = bisect.bisect_left(self._newlines, pos)
        start = self._newlines[line - 1] + 1 if line else 0
        return line + 1, pos - start + 1

    def note(self, kind: str, pos: int, message: str) -> None:
        n = self._count.get(kind, 0) + 1
        self._count[kind] = n
        if n > MAX_REPAIRS_PER_KIND:
            self._first_dropped.setdefault(kind, pos)
            return
        self.repairs.append(Repair(kind, *self.position(pos), message))

    def result(self) -> tuple[Repair, ...]:
        """Every listed repair, then one record per kind that was cut."""
        out = list(self.repairs)
        for kind, pos in self._first_dropped.items():
            more = self._count[kind] - MAX_REPAIRS_PER_KIND
            out.append(Repair(kind, *self.position(pos), f"{more} more {kind!r} repairs from here on not listed"))
        return tuple(out)


class _Repairer:
    def __init__(self, text, rows, cols, vocab, background, unknown):
        self.src = text
        self.rows = rows
        self.cols = cols
        self.background = background
        self.bg_fold = background.casefold()
        self.vocab = vocab
        self.fold = {_fold(v): v for v in vocab} if vocab is not None else None
        self.unknown = unknown
        self.log = _RepairLog(text)
        self.note = self.log.note
        self.index: dict[str, int] = {background: 0}
        self.labels: list[str] = [background]
        self.cache: dict[str, int] = {}

    def ident(self, raw, pos):
        """Map a raw label to an id, applying the label rules."""
        hit = self.cache.get(raw)
        if hit is not None:
            return hit
        name = raw
        if name == self.background or name.casefold() == self.bg_fold:
            if name != self.background:
                self.note("mapped_label", pos, f"label {name!r} read as the background {self.background!r}")
            ident = 0
        elif self.vocab is not None and name not in self.vocab:
            mapped = self.fold.get(_fold(name))
            if mapped is not None:
                self.note("mapped_label", pos, f"label {name!r} read as {mapped!r}")
                ident = self._add(mapped)
            elif self.unknown == "keep":
                kept = name if is_safe_label(name) else safe_label(name, fallback=self.background)
                self.note("unknown_label", pos, f"unknown label {name!r} kept as {kept!r}")
                ident = 0 if kept == self.background else self._add(kept)
            else:
                self.note("unknown_label", pos, f"unknown label {name!r} read as background")
                ident = 0
        else:
            if not is_safe_label(name):
                fixed = safe_label(name, fallback=self.background)
                self.note("unsafe_label", pos, f"label {name!r} made safe as {fixed!r}")
                name = fixed
            ident = 0 if name == self.background else self._add(name)
        self.cache[raw] = ident
        return ident

    def _add(self, name):
        i = self.index.get(name)
        if i is None:
            i = self.index[name] = len(self.labels)
            self.labels.append(name)
        return i

    def runs(self, line, base, limit, truncated, keep=None):
        """Read one line's runs tolerantly: ``(runs, total)``, runs a list of (id, count, pos).

        Pieces are split on "|"; inside a piece every ``*`` followed by digits
        ends a run, so a missing separator (``dog *3 others *5``) is recovered.
        Runs are kept until their counts pass ``keep`` cells (``limit`` by
        default), so the caller still sees the first run past it; later ones
        only add to ``total`` (a row of a million runs for 16 cells held a
        tuple per run).
        """
        keep = limit if keep is None else keep
        note = self.note
        out = []
        total = 0
        pos = base
        pieces = line.split("|")
        last = len(pieces) - 1
        for k, piece in enumerate(pieces):
            ppos = pos
            pos += len(piece) + 1
            if k > 0:
                if piece and piece[0] != " ":
                    note("bad_separator", ppos - 1, "'|' without the space after it")
                elif piece[1:2].isspace():
                    note("bad_separator", ppos - 1, "more than one blank after '|'")
            if "*" not in piece:  # no run in it: what _scan_runs would say, without the generator
                if not piece.strip():
                    if last:
                        note("bad_run", ppos, "empty run dropped")
                elif not (truncated and k == last):
                    note("bad_run", ppos, f"unreadable run {piece.strip()[:40]!r} dropped")
                continue
            scanned = _scan_runs(piece)
            item = next(scanned, None)
            j = 0
            while item is not None:
                raw_label, count, off, tidy = item
                item = next(scanned, None)  # look ahead: is this the piece's last run?
                j += 1
                rpos = ppos + off
                label = raw_label.strip()
                if count is None or not label:
                    if truncated and k == last and item is None:
                        continue  # the unfinished run of a truncated answer
                    shown = (label or piece[off : off + 80].strip())[:40]
                    note("bad_run", rpos, f"unreadable run {shown!r} dropped")
                    continue
                if j > 1:
                    note("bad_separator", rpos, "run not preceded by '| '")
                if not tidy or not raw_label.endswith(" ") or raw_label[-2:-1].isspace():
                    note("bad_separator", rpos, f"expected ' *' right before the count of {label[:40]!r}")
                if len(count) > 1 and count[0] == "0" and count.strip("0"):
                    note("bad_count", rpos, f"count {count[:12]!r} has a leading zero; read as {int(count[:12])}")
                if len(count) > _MAX_COUNT_DIGITS or int(count) > limit:
                    note("clamped_count", rpos, f"count {count[:12]} clamped to {limit}")
                    n = limit
                else:
                    n = int(count)
                if n == 0:
                    note("bad_run", rpos, "run of 0 cells dropped")
                    continue
                if total <= keep:
                    out.append((self.ident(label, rpos), n, rpos))
                total += n
        return out, total


# A run's end inside a piece: "*", blanks, digits (ASCII only: str.isdigit takes other scripts).
_RUN_END = re.compile("\\*( *)([0-9]+)")


def _scan_runs(piece: str):
    """Yield (label, digits or None, offset, tidy) for each ``label *digits`` in ``piece``.

    Each ``*`` followed by blanks and digits ends a run (a ``*`` without
    digits is part of the label); text after the last run is yielded with
    ``None``.  ``tidy`` is False when blanks stood between the ``*`` and the
    digits.  The lexer helper is a regex: scanning by hand cost 0.8 us a run.
    """
    i = 0
    for m in _RUN_END.finditer(piece):
        yield piece[i : m.start()], m.group(2), i, not m.group(1)
        i = m.end()
    if piece[i:].strip():
        yield piece[i:], None, i, True


def _fold(name: str) -> str:
    return " ".join(name.casefold().split())


def _lines(body: str, base: int):
    """Split on newlines (tolerating "\\r\\n" and "\\r"), yielding (text, start, terminated)."""
    pos = 0
    n = len(body)
    while pos <= n:
        k = body.find("\n", pos)
        if k < 0:
            yield body[pos:], base + pos, False
            return
        yield body[pos:k], base + pos, True
        pos = k + 1


def _newlines(rp, body, base):
    """Read "\r\n" and a lone "\r" as "\n", keeping every offset (so repairs point at the right place)."""
    k = body.find("\r")
    if k < 0:
        return body
    rp.note("bad_separator", base + k, "'\\r' read as a line end")
    return body.replace("\r\n", " \n").replace("\r", "\n")


def _repair_rrle(rp, body, base, complete):
    rows_out = []
    raw_rows = []
    # Rows past the grid (or past MAX_GRID_SIDE when the grid is inferred) are only counted:
    # reading their runs would cost time for nothing.
    keep = rp.rows if rp.rows is not None else MAX_GRID_SIDE
    extra = 0
    first_extra = 0
    for line, lpos, terminated in _lines(_newlines(rp, body, base), base):
        if not line.strip():
            continue
        if len(raw_rows) >= keep and (terminated or complete):
            if not extra:
                first_extra = lpos
            extra += 1
            continue
        if not terminated and not complete:
            rp.note("incomplete_row", lpos, "unfinished last row of a truncated answer dropped")
            continue
        if not terminated and complete:
            rp.note("bad_separator", lpos + len(line), "missing newline before '</seg>'")
        blanks = len(line) - len(line.lstrip())
        if raw_rows and not line.startswith(" "):
            rp.note("bad_separator", lpos, "row not preceded by '\\n '")
        elif blanks > (1 if raw_rows else 0):  # "\n " gives later rows exactly one
            rp.note("bad_separator", lpos, "extra blanks at the start of a row")
        limit = rp.cols if rp.cols is not None else MAX_GRID_SIDE
        runs, total = rp.runs(line, lpos, limit, False)
        raw_rows.append((runs, lpos, total))
    if rp.cols is None or rp.rows is None:
        sums = [total for runs, _, total in raw_rows if runs]
        if rp.cols is None:
            rp.cols = min(Counter(sums).most_common(1)[0][0], MAX_GRID_SIDE) if sums else DEFAULT_GRID
        if rp.rows is None:
            n = len(raw_rows)
            rp.rows = rp.cols if (not complete and n < rp.cols) or n == 0 else min(n, MAX_GRID_SIDE)
        # Complete text whose rows all have one width determines the grid: no guess to record.
        if not (complete and sums and len(raw_rows) == len(sums) and len(set(sums)) == 1):
            rp.note("inferred_grid", base, f"grid inferred as {rp.rows}x{rp.cols}")
    rows, cols = rp.rows, rp.cols
    # No row at all (an empty block): the shared background grid, nothing allocated.
    ids = np.zeros((rows, cols), dtype=np.int64) if raw_rows else _background_ids(rows, cols)
    if len(raw_rows) > rows:
        extra += len(raw_rows) - rows
        first_extra = raw_rows[rows][1]
        del raw_rows[rows:]
    for r, (runs, lpos, _) in enumerate(raw_rows):
        c = 0
        last = 0
        for ident, n, rpos in runs:
            if c >= cols:
                rp.note("long_row", rpos, f"row {r + 1} is longer than {cols} cells; cut")
                break
            take = min(n, cols - c)
            if take < n:
                rp.note("long_row", rpos, f"row {r + 1} is longer than {cols} cells; cut")
            ids[r, c : c + take] = ident
            c += take
            last = ident
            if take < n:
                break
        if not runs:
            rp.note("empty_row", lpos, f"row {r + 1} has no readable run; background")
        elif c < cols:
            rp.note("short_row", lpos, f"row {r + 1} has {c} of {cols} cells; padded with its last label")
            ids[r, c:] = last
        rows_out.append(r)
    if extra:
        rp.note("extra_rows", first_extra, f"{extra} row(s) beyond {rows} dropped")
    if len(raw_rows) < rows:
        rp.note(
            "missing_rows",
            base + len(body),
            f"{rows - len(raw_rows)} missing row(s) filled with background",
        )
    return ids


def _repair_flat(rp, body, base, complete, fmt):
    text = _newlines(rp, body, base)
    if fmt == "full":
        cells = []
        pos = base
        for sep in re.finditer(r"\|(?! )", text):
            rp.note("bad_separator", base + sep.start() + 1, "'|' without the space after it")
        for piece in re.split(r"[|\n]", text):
            name = piece.strip()
            if name:
                cells.append(rp.ident(name, pos))
            pos += len(piece) + 1
        flat = np.asarray(cells, dtype=np.int64)
    else:
        limit = (rp.rows * rp.cols) if rp.rows and rp.cols else MAX_GRID_SIDE * MAX_GRID_SIDE
        runs, _ = rp.runs(text.replace("\n", " "), base, MAX_GRID_SIDE * MAX_GRID_SIDE, not complete, limit)
        total = 0
        kept = []
        for ident, n, rpos in runs:
            take = min(n, limit - total)
            if take < n:
                rp.note("long_body", rpos, f"more than {limit} cells; cut")
            if take <= 0:
                break
            kept.append((ident, take))
            total += take
            if take < n:
                break
        flat = np.repeat([i for i, _ in kept], [n for _, n in kept]).astype(np.int64)
    if rp.rows is None or rp.cols is None:
        side = max(1, min(int(round(flat.size**0.5)), MAX_GRID_SIDE)) if flat.size else DEFAULT_GRID
        rp.rows = rp.cols = side
        rp.note("inferred_grid", base, f"grid inferred as {side}x{side}")
    want = rp.rows * rp.cols
    if flat.size < want:
        rp.note("short_body", base + len(body), f"{flat.size} of {want} cells; padded with the last label")
        fill = flat[-1] if flat.size else 0
        flat = np.concatenate([flat, np.full(want - flat.size, fill, dtype=np.int64)])
    elif flat.size > want:
        rp.note("long_body", base + len(body), f"{flat.size} cells for {want}; cut")
        flat = flat[:want]
    return flat.reshape(rp.rows, rp.cols)


# =========================================================================== text4seg


def _t4s_int(s: str):
    """Python's int(str) for the reference's int(count); None where it raises."""
    try:
        return int(s)
    except ValueError:
        return None


def _t4s_class_names(class_table):
    """Names for the ids of a class table: a repeated name keeps its last index, earlier ones are shadowed."""
    last = {name: i for i, name in enumerate(class_table)}
    names = []
    taken = set(class_table)
    for i, name in enumerate(class_table):
        if last[name] == i:
            names.append(name)
            continue
        alias = f"{name}#{i}"  # an index the reference can never produce; a distinct, visible name
        while alias in taken:
            alias += "#"
        taken.add(alias)
        names.append(alias)
    return last, tuple(names)


def _text4seg(text, rows, cols, fmt, vocab_list, background, class_table=None):
    """The Text4Seg evaluation decoder, quirk for quirk, without allocating from counts.

    Returns ``(ids, labels, failure)``: ``failure`` is None, or why the
    reference decoder would have raised (and so returned all background).
    ``class_table``: the semantic script's ``{name: index}`` of a class file.
    """
    want = rows * cols
    parts = text.split(SEG_OPEN)
    empty = np.zeros((rows, cols), dtype=np.int64)
    if len(parts) < 2:
        return empty, (background,), "no_block"
    body = parts[1].split(SEG_CLOSE)[0]
    # decode_mask: rows on "\n ", runs on "| ", label/count on " *", then "|".join
    # The reference expands each run to cells, joins them with "|" and splits on "|": the same
    # as concatenating each cell's own "|"-pieces.  So each run's label is split (and its pieces
    # stripped and interned) once, and repeated by reference: a 10 MB label over 1024x1024
    # cells costs 10 MB and a list of a million references, not 10 TB of joined text.
    seq: list[str] = []
    canon: dict[str, str] = {}
    late: dict[str, None] = {}
    ncells = 0
    bg_seen = False
    if fmt == "full":
        seq = [s.strip() for s in body.split("|")]
    else:
        # image-wise RLE (the reference's decode_mask_s) has no rows: "\n " stays inside a run
        lines = body.strip("\n").split("\n ") if fmt == "rrle" else [body.strip("\n")]
        total = 0  # cells the reference's list would hold: never allocated here
        for row in lines:
            for token in row.split("| "):
                pieces = token.split(" *")
                if len(pieces) != 2:
                    return empty, (background,), f"run {token[:40]!r} does not split into label and count"
                label, count = pieces
                n = _t4s_int(count)
                if n is None:
                    return empty, (background,), f"count {count[:20]!r} is not an integer"
                if n < _T4S_SSIZE_MIN or n > _T4S_SSIZE_MAX:
                    return empty, (background,), f"count {count[:20]!r} overflows (OverflowError in the reference)"
                if n > 0:
                    total += n
                    if total > _T4S_MAX_CELLS:
                        return empty, (background,), (
                            f"count {count[:20]!r} makes a list of {total} cells, over "
                            f"{T4S_MEMORY_BYTES} bytes (MemoryError in the reference)"
                        )
                # Expanding past `want` cells changes nothing but the cut, so stop early.
                # Each cell may split further on "|" below, never into fewer pieces.
                if n > 0:
                    if ncells < want:
                        pieces = [canon.setdefault(p, p) for p in (q.strip() for q in label.split("|"))]
                        m = min(n, want - ncells)
                        ncells += m
                        if len(seq) < want:
                            # enough whole cells to reach `want` pieces (a cell gives >= 1 piece)
                            seq.extend(pieces * min(m, -(-(want - len(seq)) // len(pieces))))
                        else:  # pieces past the cut still name labels, as in the joined text
                            late.update(dict.fromkeys(pieces))
                    elif not bg_seen:
                        bg_seen = any(p.strip() == background for p in label.split("|"))
        if ncells == 0:
            seq = [""]  # "|".join of no cells, split: one empty piece
    # translate: a fixed table (semantic script) or ids by first appearance (referring script)
    if class_table is not None:
        # model_semantic_seg.py: {category: idx for idx, category in enumerate(labels)}, .get(item, 0)
        index, names = _t4s_class_names(class_table)
        ids = [index.get(s, 0) for s in seq[:want]]
    elif vocab_list is not None:
        # As the reference's dict: a repeated name keeps its last index.
        table = {name: i + 1 for i, name in enumerate(vocab_list)}
        table[background] = 0
        by_id = {i: name for name, i in table.items()}
        order = sorted(by_id)
        compact = {i: k for k, i in enumerate(order)}
        ids = [compact[table.get(s, 0)] for s in seq[:want]]
        names = [by_id[i] for i in order]
    else:
        order = list({**dict.fromkeys(seq), **late})
        if background in order:
            order.remove(background)
            order.insert(0, background)
        elif bg_seen:
            order.insert(0, background)
        table = {name: i for i, name in enumerate(order)}
        ids = [table[s] for s in seq[:want]]
        names = order
    if len(ids) < want:
        ids = ids + [ids[-1]] * (want - len(ids))
    return np.asarray(ids, dtype=np.int64).reshape(rows, cols), tuple(names), None


def _check_class_table(class_table, mode, labels):
    if class_table is None:
        return None
    if mode != "text4seg":
        raise InputError("class_table is the reference's semantic class file: use it with mode='text4seg'")
    if labels is not None:
        raise InputError("pass either labels or class_table, not both")
    if isinstance(class_table, str) or not hasattr(class_table, "__iter__"):
        raise TypeError(f"class_table must be a sequence of class names, got {type(class_table).__name__}")
    table = list(class_table)
    if not table:
        raise InputError("class_table is empty; it needs at least the class of id 0")
    for name in table:
        if not isinstance(name, str):
            raise TypeError(f"class_table entries must be str, got {type(name).__name__}")
    return table


# =========================================================================== entry points


def _check_options(mode, format, envelope, background):
    if mode not in _MODES:
        raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(_MODES)}")
    if format not in _FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(_FORMATS)}")
    if not isinstance(background, str) or _problem(background) is not None:
        raise LabelError(f"background label {background!r} is not a safe label")


def _blocks(text: str, envelope: bool, first_only: bool):
    """Yield (body_start, body_end or None when unterminated, block_start)."""
    if not envelope:
        yield 0, len(text), 0
        return
    pos = 0
    while True:
        i = text.find(SEG_OPEN, pos)
        if i < 0:
            return
        j = text.find(SEG_CLOSE, i + len(SEG_OPEN))
        yield i + len(SEG_OPEN), (j if j >= 0 else None), i
        if j < 0 or first_only:
            return
        pos = j + len(SEG_CLOSE)


def _parse_block(text, body_start, body_end, block_start, rows, cols, mode, format, vocab, background, envelope, unknown):
    if mode == "strict":
        grid = None
        if format == "rrle" and body_end is not None:
            grid = _fast_rrle(text, body_start, body_end, rows, cols, vocab, background)
        if grid is not None:
            end = body_end + (len(SEG_CLOSE) if envelope else 0)
        else:
            end, grid = _strict(text, body_start, len(text), rows, cols, format, vocab, background, envelope)
            if envelope:
                end += len(SEG_CLOSE)
        return ParseResult(grid, (), block_start, end, True)
    # repair
    complete = body_end is not None
    stop = body_end if complete else len(text)
    if format == "rrle" and complete:
        grid = _fast_rrle(text, body_start, body_end, rows, cols, vocab, background)
        # A label that only differs from the background by case is a repair: leave it to the slow path.
        if grid is not None and not any(lab.casefold() == background.casefold() for lab in grid.labels[1:]):
            return ParseResult(grid, (), block_start, stop + (len(SEG_CLOSE) if envelope else 0), True)
    rp = _Repairer(text, rows, cols, vocab, background, unknown)
    if not complete:
        rp.note("unterminated", stop, "no '</seg>': the answer was cut off")
    body = text[body_start:stop]
    if format == "rrle":
        ids = _repair_rrle(rp, body, body_start, complete)
    else:
        ids = _repair_flat(rp, body, body_start, complete, format)
    dtype = np.uint8 if len(rp.labels) <= 256 else np.int32
    if ids.dtype != dtype:
        ids = _background_ids(*ids.shape) if dtype == np.uint8 and not ids.any() else ids.astype(dtype)
    grid = LabelGrid._trusted(ids, tuple(rp.labels))
    end = stop + (len(SEG_CLOSE) if (envelope and complete) else 0)
    return ParseResult(grid, rp.log.result(), block_start, end, complete)


def _grid_or_none(grid):
    if grid is None:
        return None, None
    return as_grid(grid)


def parse(
    text: str,
    /,
    *,
    grid: int | tuple[int, int] | None = None,
    mode: Mode | None = None,
    format: str = "rrle",
    envelope: bool = True,
    background: str = "others",
    labels=None,
    unknown: Literal["background", "keep"] = "background",
    class_table=None,
) -> ParseResult:
    """Parse the first ``<seg>`` block of ``text`` (or all of it with ``envelope=False``).

    Parameters
    ----------
    text : str
        Model output or a stored answer; free text around the block is ignored.
    grid : int or (rows, cols), optional
        The expected grid; inferred from the text when None (strict: from the
        first row's width and the row count; repair: from the most common row
        width, and a truncated answer is assumed square).
    mode : {"strict", "repair", "text4seg"}, optional
        See the module documentation.  Left out, it is ``"strict"`` for now,
        and text that strict mode refuses but repair mode reads also raises a
        ``FutureWarning``: the one default of the package is ``"repair"``
        (:func:`decode_mask`, :class:`~maskcodec.Codec`), and ``parse`` moves
        to it in 0.3.  Pass ``mode=`` to choose and silence the warning.
    format : {"rrle", "irle", "full"}
        The text format.
    envelope : bool
        Whether the text carries ``<seg>...</seg>``.
    background : str
        The background label.
    labels : collection of str, optional
        The allowed foreground labels (strict: others are an error; repair:
        see ``unknown``; text4seg: a fixed table, others are background).
    unknown : {"background", "keep"}
        Repair mode: what an unknown label becomes when ``labels`` is given.
    class_table : sequence of str, optional
        ``mode="text4seg"`` only: the class file of the reference's semantic
        script (``model_semantic_seg.py``).  A label's id is its index in the
        table (its *last* index when the name repeats), any other label is id 0,
        whatever name the table puts there.  The grid's labels are the table,
        with a shadowed repeat named ``"name#index"``.

    Returns
    -------
    ParseResult
        ``.grid`` (a :class:`~maskcodec.LabelGrid`), ``.repairs``, the block's
        ``.start``/``.end`` offsets, ``.complete`` and ``.found``.

    Raises
    ------
    ParseError
        In strict mode, with ``line``, ``column`` and ``pos``.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if mode is None:
        try:
            return parse(text, grid=grid, mode="strict", format=format, envelope=envelope,
                         background=background, labels=labels, unknown=unknown)
        except ParseError:
            _warn_default_mode()
            raise
    _check_options(mode, format, envelope, background)
    if unknown not in ("background", "keep"):
        raise InputError(f"unknown must be 'background' or 'keep', got {unknown!r}")
    rows, cols = _grid_or_none(grid)
    table = _check_class_table(class_table, mode, labels)
    vocab = _vocab(labels, background)
    if mode == "text4seg":
        r, c = (rows, cols) if rows is not None else (DEFAULT_GRID, DEFAULT_GRID)
        # The scripts strip the generated text (str.strip) before looking for <seg>.
        stripped = text.strip()
        t = stripped if envelope else SEG_OPEN + stripped
        ids, names, failure = _text4seg(
            t, r, c, format, None if labels is None else list(labels), background, table
        )
        if failure is not None and table is not None:
            names = _t4s_class_names(table)[1]  # all id 0, still named by the class file
        repairs: tuple[Repair, ...] = ()
        if failure == "no_block":
            repairs = (Repair("no_block", 1, 1, f"no {SEG_OPEN!r} in the text; the grid is all background"),)
        elif failure is not None:
            repairs = (Repair("reference_error", 1, 1, f"the reference decoder fails: {failure}; all background"),)
        dtype = np.uint8 if len(names) <= 256 else np.int32
        grid = LabelGrid._trusted(ids.astype(dtype), names)
        return ParseResult(grid, repairs, 0, len(text), failure is None, failure != "no_block")
    for body_start, body_end, block_start in _blocks(text, envelope, True):
        return _parse_block(
            text, body_start, body_end, block_start, rows, cols, mode, format, vocab, background, envelope, unknown
        )
    if mode == "strict":
        raise ParseError(f"no {SEG_OPEN!r} in the text", text, 0, repr(SEG_OPEN))
    r, c = (rows, cols) if rows is not None else (DEFAULT_GRID, DEFAULT_GRID)
    line, col = 1, 1
    rep = Repair("no_block", line, col, f"no {SEG_OPEN!r} in the text; the grid is all background")
    empty = LabelGrid._trusted(_background_ids(r, c), (background,))
    return ParseResult(empty, (rep,), 0, 0, False, False)


def _warn_default_mode() -> None:
    import warnings

    warnings.warn(
        "parse() was called without mode= and the text breaks the strict grammar; parse() will "
        "default to mode='repair' (as decode_mask and Codec do) in maskcodec 0.3. Pass "
        "mode='strict' to keep this ParseError, or mode='repair' to read model output.",
        FutureWarning,
        stacklevel=3,
    )


def parse_all(text: str, /, **options) -> list[ParseResult]:
    """Parse every ``<seg>`` block of ``text``, in order (options as :func:`parse`).

    Returns an empty list when there is no block (also in strict mode).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    mode = options.get("mode", "strict")
    if mode == "text4seg":
        raise InputError("parse_all does not support mode='text4seg' (the reference reads one block)")
    _check_class_table(options.get("class_table"), mode, options.get("labels"))
    options.setdefault("format", "rrle")
    options.setdefault("background", "others")
    _check_options(mode, options["format"], options.get("envelope", True), options["background"])
    if not options.get("envelope", True):
        return [parse(text, **options)]
    rows, cols = _grid_or_none(options.get("grid"))
    vocab = _vocab(options.get("labels"), options["background"])
    results = []
    for body_start, body_end, block_start in _blocks(text, True, False):
        results.append(
            _parse_block(
                text, body_start, body_end, block_start, rows, cols, mode, options["format"],
                vocab, options["background"], True, options.get("unknown", "background"),
            )
        )
    return results


def from_text(text: str, /, *, mode: Mode = "strict", **options) -> LabelGrid:
    """Parse text to a :class:`~maskcodec.LabelGrid` (strict by default; options as :func:`parse`).

    Examples
    --------
    >>> g = from_text("<seg>others *1| cat *2\\n others *3\\n</seg>")
    >>> g.labels, g.ids.tolist()
    (('others', 'cat'), [[0, 1, 1], [0, 0, 0]])
    >>> from_text("<seg>others *1| cat *1\\n others *3\\n</seg>")
    Traceback (most recent call last):
    ...
    maskcodec._errors.ParseError: line 2, column 10: count 3 exceeds the 2 cells left
    """
    return parse(text, mode=mode, **options).grid


def decode_mask(
    text: str,
    /,
    *,
    size,
    grid: int | tuple[int, int] | None = None,
    mode: Mode = "repair",
    format: str = "rrle",
    envelope: bool = True,
    background: str = "others",
    labels=None,
    unknown: Literal["background", "keep"] = "background",
    align: Literal["corner", "center", "torch"] = "corner",
    via=None,
    class_table=None,
    max_pixels: int = MAX_PIXELS,
) -> np.ndarray:
    """Decode an answer to a boolean foreground mask of ``size = (height, width)``.

    Every label other than the background is foreground.  The default
    ``mode="repair"`` never raises on text (see :func:`parse` for the policy
    and the other options); use :func:`parse` to see what was repaired.
    ``align`` and ``via`` are as :func:`~maskcodec.render`: the Text4Seg
    scripts are reproduced exactly by ``mode="text4seg", align="torch"``
    (and ``via=(336, 336)`` for the open-vocabulary script).
    A ``size`` of more than ``max_pixels`` pixels (default
    :data:`~maskcodec.MAX_PIXELS`, 2**30) raises :class:`~maskcodec.InputError`
    before the text is read or anything allocated.

    Examples
    --------
    >>> decode_mask("<seg>others *1| dog *1\\n dog *2\\n</seg>", size=(2, 4)).astype(int)
    array([[0, 0, 1, 1],
           [1, 1, 1, 1]])
    """
    as_size(size, max_pixels=max_pixels)
    if (
        type(text) is str
        and (mode == "repair" or mode == "strict")
        and format == "rrle"
        and envelope is True
        and labels is None
        and class_table is None
        and via is None
        and type(background) is str
        and (align == "corner" or align == "center")
    ):
        # Fast path for well-formed answers: parsed and rendered in one kernel call, no Python
        # object per run or per label.  Anything unusual goes to parse() below.
        i = text.find(SEG_OPEN)
        if i >= 0:
            j = text.find(SEG_CLOSE, i + len(SEG_OPEN))
            fast = _fast_background(background, mode == "repair") if j >= 0 else None
            if fast is not None:
                h, w = as_size(size, max_pixels=max_pixels)
                rows, cols = _grid_or_none(grid)
                raw = text[i + len(SEG_OPEN) : j].encode("utf-8", "surrogatepass")  # a surrogate: code 2
                out = np.empty((h, w), dtype=bool)
                from . import _kernels

                if not _kernels.decode_rrle(
                    np.frombuffer(raw, dtype=np.uint8), 0, len(raw), fast[0], fast[1],
                    -1 if rows is None else rows, -1 if cols is None else cols, MAX_GRID_SIDE,
                    align == "center", out.view(np.uint8),
                ):
                    return out
    result = parse(
        text, grid=grid, mode=mode, format=format, envelope=envelope,
        background=background, labels=labels, unknown=unknown, class_table=class_table,
    )
    return render(result.grid.foreground, size, align=align, via=via, dtype=bool, max_pixels=max_pixels)
