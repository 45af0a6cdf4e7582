"""Compact dialects of the R-RLE row format: the same grid in fewer tokens.

Text4Seg's R-RLE spends about five tokens on every row even when the row is
empty (``others``, `` *``, ``1``, ``6``, the separator).  The dialects below
keep the row structure (each row is written, or referred to, on its own line,
so a damaged row cannot shift the others) but drop what a reader can infer.
They are opt-in: :func:`maskcodec.to_text` never writes them.  Each converts
losslessly to and from standard R-RLE through :class:`~maskcodec.LabelGrid`
(:func:`convert`), and each has a strict hand-written parser whose errors are
:class:`~maskcodec.ParseError` with line and column.

``"crle"`` (compact R-RLE)
    R-RLE with two abbreviations: the last run of a row has no count (it fills
    the row), and a row equal to the previous ones is written once followed by
    `` **k`` (it occurs ``k`` times).  Labels are written in full::

        <seg>others **5
         others *5| white horse *6| others **4
         others
        </seg>

``"arle"`` (aliased R-RLE)
    Header lines name each foreground label once (``a=white horse``); rows
    then use the alias (``a``, ``b``, ..., ``z``, ``aa``, ...), ``.`` for the
    background, ``*`` before counts, a space between runs, the same
    fill-the-row last run and `` **k`` repeats::

        <seg>a=white horse
        . **5
        .*5 a*6 . **4
        .
        </seg>

``"spans"`` (column spans)
    The same header; each row lists its foreground cells as column spans
    ``start-end`` (0-based, both ends included; ``start`` alone for one cell),
    prefixed by the alias when the grid has more than one foreground label.
    An empty row is an empty line; `` **k`` (``**k`` on an empty row) repeats::

        <seg>a=white horse
        **5
        5-10 **4
        6
        </seg>

A background other than ``others`` is declared in the header as ``.=name``
in ``arle`` and ``spans``; in ``crle`` it is simply written.  Parsing needs the
grid size (``grid=``, default 16), since a row whose last run has no count does
not tell its width.

Grammar (EBNF, ``-`` is set difference; ``label`` is the label rule of
``docs/format.md``; ``count`` = nonzero digit then digits)::

    answer      = "<seg>" , body , "</seg>" ;
    crle_body   = crle_row , { "\\n " , crle_row } , "\\n" ;
    crle_row    = { label , " *" , count , "| " } , label , [ " **" , count ] ;
    arle_body   = header , arle_row , { "\\n" , arle_row } , "\\n" ;
    arle_row    = { alias , "*" , count , " " } , alias , [ " **" , count ] ;
    spans_body  = header , spans_row , { "\\n" , spans_row } , "\\n" ;
    spans_row   = span , { " " , span } , [ " **" , count ] | [ "**" , count ] ;
    span        = [ name ] , index , [ "-" , index ] ;    (name iff 2+ labels)
    header      = [ ".=" , label , "\\n" ] , { name , "=" , label , "\\n" } ;
    alias       = "." | name ;
    name        = lower , { lower } ;                      ("a", "b", ... in order)
    index       = "0" | count ;

Constraints the grammar cannot express, checked by the parser: runs sum to
``cols`` with the last run at least one cell; ``**k`` has ``k >= 2`` and at
most the rows left; there are exactly ``rows`` rows; header names are declared
in order ``a, b, c, ...`` with distinct labels; spans are in increasing order,
do not overlap and end before ``cols``.  No count or index is ever used to
allocate: each is checked against the grid before a cell is written.
"""

from __future__ import annotations

import re
from typing import Final, Literal

import numpy as np

from ._errors import InputError, LabelError, ParseError
from ._labels import _problem, check_label
from .grid import LabelGrid
from .quantize import as_grid

__all__ = ["DIALECTS", "convert", "decode_mask", "ebnf", "export_grammar", "from_text", "parse", "to_text"]

Dialect = Literal["crle", "arle", "spans"]
#: The dialect names, in the order of the docs.
DIALECTS: Final = ("crle", "arle", "spans")
_TARGETS: Final = ("rrle", *DIALECTS)

SEG_OPEN: Final = "<seg>"
SEG_CLOSE: Final = "</seg>"
REPEAT: Final = "**"
BACKGROUND_ALIAS: Final = "."
DEFAULT_BACKGROUND: Final = "others"
_MAX_DIGITS: Final = 7  # 1024 * 1024 < 10**7: anything longer is out of range for any grid
_DIGITS = frozenset("0123456789")
_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
# Where a crle label stops (a lexer helper, as in the core parser; never used to match structure).
_STOP = re.compile("[|*\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]|</?seg>")
_EOL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]|</?seg>")


# =========================================================================== writing


def alias(i: int) -> str:
    """The alias of foreground id ``i >= 1``: ``a``..``z``, then ``aa``, ``ab``, ...

    Examples
    --------
    >>> [alias(i) for i in (1, 2, 26, 27, 28, 702, 703)]
    ['a', 'b', 'z', 'aa', 'ab', 'zz', 'aaa']
    """
    out = []
    while i > 0:
        i, r = divmod(i - 1, 26)
        out.append(chr(97 + r))
    return "".join(reversed(out))


def _alias_index(name: str) -> int:
    i = 0
    for ch in name:
        i = i * 26 + (ord(ch) - 96)
    return i


def _row_runs(row: np.ndarray) -> list[tuple[int, int]]:
    cuts = np.flatnonzero(row[1:] != row[:-1]) + 1
    starts = [0, *cuts.tolist()]
    ends = [*cuts.tolist(), row.size]
    vals = row[starts].tolist()
    return [(v, e - s) for v, s, e in zip(vals, starts, ends)]


def _row_groups(ids: np.ndarray) -> list[tuple[int, int]]:
    """(first row index, repetitions) for each maximal block of identical consecutive rows."""
    same = np.all(ids[1:] == ids[:-1], axis=1)
    out: list[tuple[int, int]] = []
    r = 0
    n = ids.shape[0]
    while r < n:
        k = 1
        while r + k < n and same[r + k - 1]:
            k += 1
        out.append((r, k))
        r += k
    return out


def _repeat(k: int, lead: str = " ") -> str:
    return f"{lead}{REPEAT}{k}" if k > 1 else ""


def _header(labels: tuple[str, ...]) -> str:
    head = "" if labels[0] == DEFAULT_BACKGROUND else f"{BACKGROUND_ALIAS}={labels[0]}\n"
    return head + "".join(f"{alias(i)}={lab}\n" for i, lab in enumerate(labels) if i)


def _write_crle(ids, labels) -> str:
    rows = []
    for r, k in _row_groups(ids):
        runs = _row_runs(ids[r])
        body = "".join(f"{labels[v]} *{n}| " for v, n in runs[:-1]) + labels[runs[-1][0]]
        rows.append(body + _repeat(k))
    return "\n ".join(rows) + "\n"


def _write_arle(ids, labels) -> str:
    names = [BACKGROUND_ALIAS] + [alias(i) for i in range(1, len(labels))]
    rows = []
    for r, k in _row_groups(ids):
        runs = _row_runs(ids[r])
        body = "".join(f"{names[v]}*{n} " for v, n in runs[:-1]) + names[runs[-1][0]]
        rows.append(body + _repeat(k))
    return _header(labels) + "\n".join(rows) + "\n"


def _write_spans(ids, labels) -> str:
    named = len(labels) > 2
    rows = []
    for r, k in _row_groups(ids):
        spans = []
        c = 0
        for v, n in _row_runs(ids[r]):
            if v:
                name = alias(v) if named else ""
                spans.append(f"{name}{c}" if n == 1 else f"{name}{c}-{c + n - 1}")
            c += n
        line = " ".join(spans)
        rows.append(line + _repeat(k, " " if spans else ""))
    return _header(labels) + "\n".join(rows) + "\n"


_WRITERS = {"crle": _write_crle, "arle": _write_arle, "spans": _write_spans}


def _check_dialect(dialect: object, choices=DIALECTS) -> str:
    if dialect not in choices:
        raise InputError(f"unknown dialect {dialect!r}; choose one of {', '.join(choices)}")
    return dialect  # type: ignore[return-value]


def to_text(grid: LabelGrid, /, dialect: Dialect = "crle", *, envelope: bool = True) -> str:
    """Write ``grid`` in a compact dialect.

    Unused labels are dropped and foreground labels are numbered in order of
    first appearance (as :meth:`LabelGrid.canonical` does), so equal grids give
    equal text.

    Parameters
    ----------
    grid : LabelGrid
        The grid to write; every label must be safe (:func:`maskcodec.check_label`).
    dialect : {"crle", "arle", "spans"}
        See the module docstring and ``docs/dialects.md``.
    envelope : bool
        Wrap the body in ``<seg>`` ... ``</seg>``.

    Examples
    --------
    >>> import maskcodec as mc
    >>> g = mc.LabelGrid([[0, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 0]], ("others", "dog"))
    >>> print(to_text(g, "crle"))
    <seg>others
     others *1| dog *2| others **2
     others
    </seg>
    >>> print(to_text(g, "arle"))
    <seg>a=dog
    .
    .*1 a*2 . **2
    .
    </seg>
    >>> print(to_text(g, "spans", envelope=False))
    a=dog
    <BLANKLINE>
    1-2 **2
    <BLANKLINE>
    """
    _check_dialect(dialect)
    if not isinstance(grid, LabelGrid):
        raise TypeError(f"grid must be a maskcodec.LabelGrid, got {type(grid).__name__}")
    g = grid.canonical()
    for lab in g.labels:
        check_label(lab)
    body = _WRITERS[dialect](np.asarray(g.ids, dtype=np.int64), g.labels)
    return f"{SEG_OPEN}{body}{SEG_CLOSE}" if envelope else body


# =========================================================================== parsing


def _show(src: str, pos: int, end: int) -> str:
    if pos >= end:
        return "end of text" if end == len(src) else repr(SEG_CLOSE)
    for tag in (SEG_OPEN, SEG_CLOSE):
        if src.startswith(tag, pos):
            return repr(tag)
    return repr(src[pos])


class _RowError(Exception):
    """A row that breaks off, in repair mode (a ParseError would find its line: O(n) per row)."""

    def __init__(self, reason: str, pos: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pos = pos


class _Reader:
    """Strict recursive-descent parser of one dialect body: ``rule(pos) -> pos``."""

    def __init__(self, src, end, rows, cols, background):
        self.src = src
        self.end = end
        self.rows = rows
        self.cols = cols
        self.labels: list[str] = [background]
        self.index: dict[str, int] = {background: 0}
        self.ids = np.zeros((rows, cols), dtype=np.int32)  # sized by the grid, never by a count
        self.lenient = None  # repair mode: a note(kind, pos, message) callback

    def error(self, reason, pos, expected=""):
        if self.lenient is not None:  # repair: caught per row, so no line/column scan of the text
            return _RowError(reason, pos)
        return ParseError(reason, self.src, pos, expected)

    def expect(self, token, pos, what=None):
        if not self.src.startswith(token, pos) or pos + len(token) > self.end:
            shown = what or repr(token)
            raise self.error(f"expected {shown}, found {_show(self.src, pos, self.end)}", pos, shown)
        return pos + len(token)

    def number(self, pos, lo, hi, what):
        """A decimal number without leading zeros in ``lo..hi``; returns (pos, value)."""
        src = self.src
        k = pos
        while k < self.end and src[k] in _DIGITS:
            k += 1
        digits = src[pos:k]
        if not digits:
            raise self.error(f"expected {what}, found {_show(src, pos, self.end)}", pos, what)
        if digits[0] == "0" and len(digits) > 1:
            raise self.error(f"{what} {digits!r} starts with 0", pos, what)
        if len(digits) > _MAX_DIGITS or not lo <= int(digits) <= hi:
            raise self.error(f"{what} {digits} is out of range {lo}..{hi}", pos, f"{what} in {lo}..{hi}")
        return k, int(digits)

    def add_label(self, name, pos):
        problem = _problem(name)
        if problem is not None:
            raise self.error(problem, pos, "a label")
        i = self.index.get(name)
        if i is None:
            i = len(self.labels)
            self.index[name] = i
            self.labels.append(name)
        return i

    def counted(self, mark, r, c, ident, what):
        """The count after the ``*`` at ``mark`` of a run that is not the row's last; returns (pos, c)."""
        cols = self.cols
        if self.lenient is not None:  # repair: a last run may keep its count (R-RLE habit)
            pos, n = self.number(mark + 1, 1, cols - c, "a count")
            if n == cols - c:
                self.lenient("counted_last_run", mark, f"the last run of row {r + 1} has a count; accepted")
        else:
            if cols - c <= 1:
                raise self.error(f"row {r + 1} has {cols - c} cell left: write its last {what} "
                                 "without a count", mark, "'\\n' or ' **'")
            pos, n = self.number(mark + 1, 1, cols - c - 1, "a count")
        self.ids[r, c : c + n] = ident
        return pos, c + n

    def repeat(self, pos, r):
        """``**k`` (the marker at ``pos``): returns (pos, k), k in 2..rows left."""
        pos = self.expect(REPEAT, pos)
        return self.number(pos, 2, self.rows - r, "a repeat count")

    def fill(self, r, k):
        """Copy row ``r`` to the next ``k - 1`` rows (``k`` was checked against the rows left)."""
        if k > 1:
            self.ids[r + 1 : r + k] = self.ids[r]
        return r + k

    def body(self, pos, row, sep):
        """rows separated by ``sep``, then the body's final newline."""
        r = 0
        while True:
            pos, r = row(pos, r)
            if r == self.rows:
                break
            pos = self.expect(sep, pos, f"{sep!r} and row {r + 1}")
        if self.src.startswith(sep, pos) and sep != "\n":
            raise self.error(f"the grid already has its {self.rows} rows", pos, "'\\n'")
        pos = self.expect("\n", pos, "'\\n' (the end of the body)")
        if pos != self.end:
            raise self.error(
                f"expected the end of the body after {self.rows} rows, "
                f"found {_show(self.src, pos, self.end)}",
                pos,
                repr(SEG_CLOSE),
            )
        return pos

    # ------------------------------------------------------------------ crle
    def crle_row(self, pos, r):
        src = self.src
        c = 0
        while True:
            m = _STOP.search(src, pos, self.end)
            stop = m.start() if m else self.end
            if stop < self.end and src[stop] == "*" and stop > pos and src[stop - 1] == " ":
                name = src[pos : stop - 1]
                if not name:
                    raise self.error("empty label before ' *'", pos, "a label")
                ident = self.add_label(name, pos)
                if src.startswith(REPEAT, stop):  # the last label, then the repeat
                    self.ids[r, c:] = ident
                    pos, k = self.repeat(stop, r)
                    return pos, self.fill(r, k)
                pos, c = self.counted(stop, r, c, ident, "label")
                if c == self.cols:  # only in repair mode
                    return pos, r + 1
                pos = self.expect("| ", pos)
                continue
            if stop < self.end and src[stop] in "*|":
                raise self.error(
                    f"expected ' *' and a count, or the end of the row, after {src[pos:stop]!r}",
                    stop,
                    "' *'",
                )
            name = src[pos:stop]
            if not name:
                raise self.error(f"expected a label, found {_show(src, pos, self.end)}", pos, "a label")
            self.ids[r, c:] = self.add_label(name, pos)
            return stop, r + 1

    # ------------------------------------------------------------------ header
    def header(self, pos):
        """Alias lines; returns (pos, names) with ``names[alias] = id``."""
        src = self.src
        names = {BACKGROUND_ALIAS: 0}
        if src.startswith(BACKGROUND_ALIAS + "=", pos) and pos + 2 <= self.end:
            pos, name = self.header_label(pos + 2)
            self.labels[0] = name
            self.index = {name: 0}
        while True:
            k = pos
            while k < self.end and src[k] in _LOWER:
                k += 1
            if k == pos or k >= self.end or src[k] != "=":
                return pos, names
            want = alias(len(self.labels))
            if src[pos:k] != want:
                raise self.error(f"expected alias {want!r} next, found {src[pos:k]!r}", pos, repr(want))
            start = k + 1
            pos, name = self.header_label(start)
            if name in self.index:
                raise self.error(f"label {name!r} declared twice", start, "a new label")
            names[want] = self.add_label(name, start)
            if len(self.labels) > 65536:
                raise self.error("too many labels", start)

    def header_label(self, pos):
        m = _EOL.search(self.src, pos, self.end)
        stop = m.start() if m else self.end
        name = self.src[pos:stop]
        problem = _problem(name)
        if problem is not None:
            raise self.error(problem, pos, "a label")
        return self.expect("\n", stop, "'\\n' after the label"), name

    def alias_at(self, pos, names):
        """An alias (``.`` or lowercase letters) that the header declared; returns (pos, id)."""
        src = self.src
        if src.startswith(BACKGROUND_ALIAS, pos) and pos < self.end:
            return pos + 1, 0
        k = pos
        while k < self.end and src[k] in _LOWER:
            k += 1
        if k == pos:
            raise self.error(f"expected an alias, found {_show(src, pos, self.end)}", pos, "an alias")
        ident = names.get(src[pos:k])
        if ident is None:
            raise self.error(f"alias {src[pos:k]!r} is not declared in the header", pos, "a declared alias")
        return k, ident

    # ------------------------------------------------------------------ arle
    def arle_row(self, pos, r, names):
        src = self.src
        c = 0
        while True:
            pos, ident = self.alias_at(pos, names)
            if src.startswith("*", pos) and pos < self.end:
                pos, c = self.counted(pos, r, c, ident, "alias")
                if c == self.cols:  # only in repair mode
                    return pos, r + 1
                pos = self.expect(" ", pos, "' ' and the next run")
                continue
            self.ids[r, c:] = ident
            if src.startswith(" " + REPEAT, pos) and pos + 3 <= self.end:
                pos, k = self.repeat(pos + 1, r)
                return pos, self.fill(r, k)
            return pos, r + 1

    # ------------------------------------------------------------------ spans
    def spans_row(self, pos, r, names, named):
        src, cols = self.src, self.cols
        nxt = 0  # the first column a span may start at
        first = True
        while pos < self.end and src[pos] != "\n":
            if src.startswith(REPEAT, pos):
                if not first:
                    raise self.error("expected ' ' before '**'", pos, "' **'")
                pos, k = self.repeat(pos, r)
                return pos, self.fill(r, k)
            if not first:
                if src.startswith(" " + REPEAT, pos):
                    pos, k = self.repeat(pos + 1, r)
                    return pos, self.fill(r, k)
                pos = self.expect(" ", pos, "' ', '**' or the end of the row")
            first = False
            ident = 1
            if len(self.labels) < 2:
                raise self.error("a span needs a foreground label: declare 'a=label' in the header", pos,
                                 "'**' or the end of the row")
            if named:
                at = pos
                pos, ident = self.alias_at(pos, names)
                if ident == 0:
                    raise self.error("a span cannot be background", at, "a foreground alias")
            if nxt >= cols:
                raise self.error(f"row {r + 1} is full: no column after {cols - 1}", pos,
                                 "the end of the row")
            pos, a = self.number(pos, nxt, cols - 1, "a column")
            b = a
            if src.startswith("-", pos) and pos < self.end:
                pos, b = self.number(pos + 1, a, cols - 1, "a column")
            self.ids[r, a : b + 1] = ident
            nxt = b + 1
        return pos, r + 1


def _envelope(text: str, envelope: bool) -> tuple[int, int]:
    if not envelope:
        return 0, len(text)
    i = text.find(SEG_OPEN)
    if i < 0:
        raise ParseError(f"no {SEG_OPEN} in the text", text, 0, repr(SEG_OPEN))
    j = text.find(SEG_CLOSE, i + len(SEG_OPEN))
    if j < 0:
        raise ParseError(f"no {SEG_CLOSE} after {SEG_OPEN}: the answer is cut off", text, len(text),
                         repr(SEG_CLOSE))
    return i + len(SEG_OPEN), j


def from_text(
    text: str,
    /,
    dialect: Dialect = "crle",
    *,
    grid=16,
    background: str = DEFAULT_BACKGROUND,
    envelope: bool = True,
) -> LabelGrid:
    """Parse dialect text strictly into a :class:`~maskcodec.LabelGrid`.

    Parameters
    ----------
    text : str
        The answer (with ``envelope=True`` the first ``<seg>`` ... ``</seg>``
        block is read and text around it ignored) or a bare body.
    dialect : {"crle", "arle", "spans"}
    grid : int or (rows, cols)
        The grid size; required because a row's last run has no count.
    background : str
        Name of the background (id 0); ``arle`` and ``spans`` may override it
        with a ``.=name`` header line.
    envelope : bool
        Whether the body is wrapped in ``<seg>`` ... ``</seg>``.

    Raises
    ------
    ParseError
        Anything that does not follow the dialect's grammar, with its line and column.

    Examples
    --------
    >>> g = from_text("<seg>a=cat\\n. **2\\n.*1 a\\n</seg>", "arle", grid=(3, 2))
    >>> g.ids.tolist(), g.labels
    ([[0, 0], [0, 0], [0, 1]], ('others', 'cat'))
    >>> from_text("<seg>a=cat\\n.*2 a\\n</seg>", "arle", grid=2)
    Traceback (most recent call last):
      ...
    maskcodec._errors.ParseError: line 2, column 3: a count 2 is out of range 1..1
    """
    _check_dialect(dialect)
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    rows, cols = as_grid(grid)
    if not isinstance(background, str) or _problem(background) is not None:
        raise LabelError(f"background label {background!r} is not a safe label")
    start, end = _envelope(text, envelope)
    rd = _Reader(text, end, rows, cols, background)
    if dialect == "crle":
        rd.body(start, rd.crle_row, "\n ")
    else:
        pos, names = rd.header(start)
        if dialect == "arle":
            rd.body(pos, lambda p, r: rd.arle_row(p, r, names), "\n")
        else:
            named = len(rd.labels) > 2
            rd.body(pos, lambda p, r: rd.spans_row(p, r, names, named), "\n")
    ids = rd.ids.astype(np.uint8) if len(rd.labels) <= 256 else rd.ids
    return LabelGrid._trusted(ids, tuple(rd.labels))


def _row_reader(rd: _Reader, dialect: str, names=None):
    if dialect == "crle":
        return rd.crle_row
    if dialect == "arle":
        return lambda p, r: rd.arle_row(p, r, names)
    named = len(rd.labels) > 2
    return lambda p, r: rd.spans_row(p, r, names, named)


def _lenient_header(rd: _Reader, pos: int, end: int, note) -> tuple[int, dict]:
    """Header lines ``name=label`` in any order; unsafe labels are made safe, empty ones skipped."""
    from ._labels import safe_label

    src = rd.src
    names = {BACKGROUND_ALIAS: 0}
    while pos < end:
        stop = src.find("\n", pos, end)
        if stop < 0:
            return pos, names
        k = pos
        while k < stop and src[k] in _LOWER:
            k += 1
        is_bg = k == pos and src.startswith(BACKGROUND_ALIAS + "=", pos)
        if not is_bg and (k == pos or k >= stop or src[k] != "="):
            return pos, names
        raw = src[(pos + 2 if is_bg else k + 1) : stop].rstrip("\r")
        try:
            name = safe_label(raw)
        except LabelError:  # nothing is left of "a=" or "a=*"
            name = ""
        if name != raw:
            note("unsafe_label", pos, f"header label {raw!r} read as {name!r}")
        if not name:
            note("bad_run", pos, "empty header label skipped")
        elif is_bg:
            # A foreground label of the same name keeps its id (as a rebuilt index would).
            # Updated in place: rebuilding made 40,000 alternating header lines quadratic.
            if rd.index.get(rd.labels[0]) == 0:
                del rd.index[rd.labels[0]]
            rd.labels[0] = name
            rd.index.setdefault(name, 0)
        else:
            names[src[pos:k]] = rd.add_label(name, pos)
        pos = stop + 1
    return pos, names


def parse(
    text: str,
    /,
    dialect: Dialect = "crle",
    *,
    grid=16,
    background: str = DEFAULT_BACKGROUND,
    envelope: bool = True,
    mode: Literal["strict", "repair"] = "strict",
):
    """Parse dialect text into a :class:`~maskcodec.ParseResult` (grid, repairs, position).

    ``mode="strict"`` is :func:`from_text` (it raises :class:`~maskcodec.ParseError`).
    ``mode="repair"`` is for model output and never raises on text; it
    records each change as a :class:`~maskcodec.Repair`.  Policy: no
    ``<seg>`` gives an all-background grid (``found=False``); without
    ``</seg>`` the unfinished last line is dropped; header lines are read in
    any alias order and unsafe labels made safe; each row is read on its own
    line, and a row that breaks off keeps the cells read before the error, the
    rest being background; a last run that keeps its count (as in R-RLE) is
    accepted (``counted_last_run``); a repeat beyond the last row is cut;
    missing rows are background and extra rows are dropped; ``\\r`` before a
    newline is ignored.  So R-RLE text read as ``crle`` comes back whole.

    Examples
    --------
    >>> r = parse("<seg>a=dog\\n.*1 a\\n.*9 a\\n.*1", "arle", grid=2, mode="repair")
    >>> r.grid.ids.tolist(), r.complete, [x.kind for x in r.repairs]
    ([[0, 1], [0, 0]], False, ['unterminated', 'incomplete_row', 'bad_run'])
    """
    from ._parser import ParseResult, _background_ids, _RepairLog

    if mode not in ("strict", "repair"):
        raise InputError(f"unknown mode {mode!r}; choose one of strict, repair")
    if mode == "strict":
        g = from_text(text, dialect, grid=grid, background=background, envelope=envelope)
        start = text.find(SEG_OPEN) if envelope else 0
        stop = text.find(SEG_CLOSE, start) + len(SEG_CLOSE) if envelope else len(text)
        return ParseResult(g, (), start, stop, True, True)
    _check_dialect(dialect)
    if not isinstance(text, str):
        raise TypeError(f"text must be str, got {type(text).__name__}")
    rows, cols = as_grid(grid)
    if not isinstance(background, str) or _problem(background) is not None:
        raise LabelError(f"background label {background!r} is not a safe label")
    log = _RepairLog(text)
    note = log.note

    complete = found = True
    if envelope:
        block = text.find(SEG_OPEN)
        if block < 0:
            note("no_block", 0, f"no {SEG_OPEN} in the text: the grid is all background")
            ids = _background_ids(rows, cols)
            return ParseResult(LabelGrid._trusted(ids, (background,)), log.result(), 0, 0, False, False)
        start = block + len(SEG_OPEN)
        end = text.find(SEG_CLOSE, start)
        if end < 0:
            complete = False
            end = len(text)
            note("unterminated", end, f"no {SEG_CLOSE}: the answer was cut off")
    else:
        block, start, end = 0, 0, len(text)
    rd = _Reader(text, end, rows, cols, background)
    rd.lenient = note
    names = None
    pos = start
    if dialect != "crle":
        pos, names = _lenient_header(rd, start, end, note)
    row = _row_reader(rd, dialect, names)
    # The lines of the body: a complete body ends with a newline; an unfinished last line is dropped.
    lines = []
    while pos < end:
        stop = text.find("\n", pos, end)
        if stop < 0:
            if complete:
                lines.append((pos, end))
            else:
                note("incomplete_row", pos, "the unfinished last row was dropped")
            break
        lines.append((pos, stop))
        pos = stop + 1
    r = 0
    crlf = False
    for i, (a, b) in enumerate(lines):
        if r >= rows:
            if any(text[x:y].strip() for x, y in lines[i:]):
                note("extra_rows", a, f"text after the {rows} rows was dropped")
            break
        if b > a and text[b - 1] == "\r":
            b -= 1
            crlf = True
        if dialect == "crle" and i > 0 and text.startswith(" ", a):
            a += 1
        rd.end = b
        try:
            p, r2 = row(a, r)
            if p != b:
                raise rd.error(f"unexpected {_show(text, p, b)} after the row", p)
        except _RowError as err:
            r2 = r + 1
            k = text.find(REPEAT, a, b) + len(REPEAT)
            digits = text[k : k + _MAX_DIGITS + 1] if k >= len(REPEAT) else ""
            digits = digits[: len(digits) - len(digits.lstrip("0123456789"))]
            if err.pos == k and digits and int(digits) > rows - r:
                note("clamped_count", err.pos, f"{err.reason}; repeated to the last row")
                rd.fill(r, rows - r)
                r2 = rows
            else:
                note("bad_run", err.pos, f"{err.reason}; the rest of row {r + 1} is background")
        r = r2
    if crlf:
        note("bad_separator", start, "'\\r' before newlines ignored")
    if r < rows:
        note("missing_rows", end, f"{rows - r} missing rows are background")
    ids = rd.ids.astype(np.uint8) if len(rd.labels) <= 256 else rd.ids
    stop = end + (len(SEG_CLOSE) if envelope and complete else 0)
    grid_out = LabelGrid._trusted(ids, tuple(rd.labels))
    return ParseResult(grid_out, log.result(), block, stop, complete, found)


def decode_mask(text: str, /, dialect: Dialect = "crle", *, size, grid=16,
                background: str = DEFAULT_BACKGROUND, envelope: bool = True,
                mode: Literal["strict", "repair"] = "repair") -> np.ndarray:
    """Dialect answer to a boolean mask of ``size = (height, width)`` (repair mode by default).

    Examples
    --------
    >>> decode_mask("<seg>others\\n others *1| cat\\n</seg>", size=(4, 4), grid=2).astype(int)
    array([[0, 0, 0, 0],
           [0, 0, 0, 0],
           [0, 0, 1, 1],
           [0, 0, 1, 1]])
    """
    g = parse(text, dialect, grid=grid, background=background, envelope=envelope, mode=mode).grid
    return g.mask(size)


def convert(
    text: str,
    /,
    source: str,
    target: str,
    *,
    grid=None,
    background: str = DEFAULT_BACKGROUND,
    envelope: bool = True,
) -> str:
    """Rewrite an answer from one format to another (``"rrle"`` or a dialect), losslessly.

    ``grid`` is needed when ``source`` is a dialect (default 16 then); for R-RLE
    it is inferred when None.

    Examples
    --------
    >>> rrle = "<seg>others *3\\n others *1| dog *2\\n others *1| dog *2\\n</seg>"
    >>> convert(rrle, "rrle", "crle")
    '<seg>others\\n others *1| dog **2\\n</seg>'
    >>> convert(convert(rrle, "rrle", "spans"), "spans", "rrle", grid=3) == rrle
    True
    """
    _check_dialect(source, _TARGETS)
    _check_dialect(target, _TARGETS)
    if source == "rrle":
        from ._parser import from_text as rrle_from_text

        g = rrle_from_text(text, grid=grid, background=background, envelope=envelope)
    else:
        g = from_text(text, source, grid=16 if grid is None else grid, background=background,
                      envelope=envelope)
    if target == "rrle":
        from .text import to_text as rrle_to_text

        return rrle_to_text(g, envelope=envelope)
    return to_text(g, target, envelope=envelope)


_EBNF = {
    "crle": """\
answer    = "<seg>" , crle_body , "</seg>" ;
crle_body = crle_row , { "\\n " , crle_row } , "\\n" ;
crle_row  = { label , " *" , count , "| " } , label , [ " **" , count ] ;
count     = nonzero , { digit } ;""",
    "arle": """\
answer    = "<seg>" , arle_body , "</seg>" ;
arle_body = header , arle_row , { "\\n" , arle_row } , "\\n" ;
arle_row  = { alias , "*" , count , " " } , alias , [ " **" , count ] ;
header    = [ ".=" , label , "\\n" ] , { name , "=" , label , "\\n" } ;
alias     = "." | name ;
name      = lower , { lower } ;
count     = nonzero , { digit } ;""",
    "spans": """\
answer     = "<seg>" , spans_body , "</seg>" ;
spans_body = header , spans_row , { "\\n" , spans_row } , "\\n" ;
spans_row  = span , { " " , span } , [ " **" , count ] | [ "**" , count ] ;
span       = [ name ] , index , [ "-" , index ] ;
header     = [ ".=" , label , "\\n" ] , { name , "=" , label , "\\n" } ;
name       = lower , { lower } ;
index      = "0" | count ;
count      = nonzero , { digit } ;""",
}


def ebnf(dialect: Dialect) -> str:
    """The grammar of ``dialect`` in EBNF (``label`` as in ``docs/format.md``).

    Examples
    --------
    >>> print(ebnf("crle").splitlines()[2])
    crle_row  = { label , " *" , count , "| " } , label , [ " **" , count ] ;
    """
    return _EBNF[_check_dialect(dialect)]


# =========================================================================== grammar export


def export_grammar(
    dialect: Dialect,
    *,
    grid=16,
    labels=None,
    background: str = DEFAULT_BACKGROUND,
    envelope: bool = True,
    form: Literal["gbnf", "lark"] = "gbnf",
    max_labels: int = 4,
    max_size: int = 400_000,
) -> str:
    """The exact grammar of a ``rows x cols`` answer in ``dialect``, for constrained decoding.

    Counts are kept exact as in :func:`maskcodec.grammar.export_grammar`: one
    nonterminal per number of cells left in a row (``crle``, ``arle``), per
    first free column (``spans``) and per number of rows left (the repeats).

    Parameters
    ----------
    dialect : {"crle", "arle", "spans"}
    grid : int or (rows, cols)
    labels : collection of str, optional
        The allowed foreground labels; None allows any safe label (and, for
        ``arle``/``spans``, up to ``max_labels`` header lines).
    background : str
        Written in the header as ``.=name`` (``arle``, ``spans``) unless it is ``others``.
    envelope : bool
    form : {"gbnf", "lark"}
        llama.cpp GBNF (start rule ``root``) or Lark (start rule ``start``).
    max_size : int
        Refuse (:class:`~maskcodec.InputError`) a longer grammar.

    Notes
    -----
    The grammar is the writer's language, slightly looser in one place and
    stricter in another than the parser: it does not check that header labels
    are distinct (the parser does), and it writes the ``.=`` header line
    exactly when ``background`` is not ``others`` (the parser accepts it always).

    Examples
    --------
    >>> print(export_grammar("crle", grid=(2, 2), labels=["dog"]))
    root ::= "<seg>" l2 "</seg>"
    l1 ::= c2 ("\\n")
    l2 ::= c2 ("\\n " l1 | " **2" "\\n")
    c1 ::= label
    c2 ::= label (" *" "1" "| " c1)?
    label ::= "others" | "dog"
    """
    from .grammar import _gbnf_str as lit
    from .grammar import _label_rules, _labels_list

    _check_dialect(dialect)
    if form not in ("gbnf", "lark"):
        raise InputError(f"unknown form {form!r}; choose one of gbnf, lark")
    rows, cols = as_grid(grid)
    names = _labels_list(labels, background)
    lark = form == "lark"
    define = ": " if lark else " ::= "
    start = "start" if lark else "root"
    sep = "\n " if dialect == "crle" else "\n"
    # A cheap size guard before building anything quadratic or worse.
    n_fg = (len(names) - 1) if names is not None else max_labels
    branches = 1 if dialect == "crle" else n_fg + 1
    if (rows * rows + cols * cols) * branches * 6 > max_size:
        raise InputError(f"the {form} grammar for a {rows}x{cols} {dialect} grid would exceed "
                         f"max_size={max_size}")
    lines: list[str] = []

    def rows_rules(prefix: str, row: str, empty_row: str | None = None) -> None:
        """l<j>: j rows left; a row then its optional repeat, then the separator or the end."""
        for j in range(1, rows + 1):
            def tails(lead: str) -> list[str]:
                alts = [lit(sep) + f" {prefix}l{j - 1}" if j > 1 else lit("\n")]
                for k in range(2, j + 1):
                    rest = lit(sep) + f" {prefix}l{j - k}" if k < j else lit("\n")
                    alts.append(f"{lit(lead + REPEAT + str(k))} {rest}")
                return alts
            body = f"{row} (" + " | ".join(tails(" ")) + ")"
            if empty_row is not None:  # spans: an empty row repeats with "**k", no space
                body += " | (" + " | ".join(tails("")) + ")"
            lines.append(f"{prefix}l{j}{define}{body}")

    def runs_rules(prefix: str, label: str, star: str, between: str) -> None:
        """c<k>: a row with k cells left: the last label alone, or a counted run then more."""
        for k in range(1, cols + 1):
            if k == 1:
                lines.append(f"{prefix}c1{define}{label}")
                continue
            alts = [f"{lit(str(n))} {lit(between)} {prefix}c{k - n}" for n in range(1, k)]
            inner = alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"
            lines.append(f"{prefix}c{k}{define}{label} ({lit(star)} {inner})?")

    head_bg = "" if background == DEFAULT_BACKGROUND else f"{lit('.=' + background + chr(10))} "
    if dialect == "crle":
        body = f"{lit(SEG_OPEN)} l{rows} {lit(SEG_CLOSE)}" if envelope else f"l{rows}"
        lines.append(f"{start}{define}{body}")
        rows_rules("", f"c{cols}")
        runs_rules("", "label", " *", "| ")
        label_rule = "label"
    else:
        bodies = []
        for m in range(n_fg + 1):
            p = f"m{m}"
            header = " ".join(f"{lit(alias(i) + '=')} hlabel {lit(chr(10))}" for i in range(1, m + 1))
            bodies.append(" ".join(x for x in (head_bg.strip(), header, f"{p}l{rows}") if x))
            if dialect == "arle":
                aliases = " | ".join(lit(a) for a in [BACKGROUND_ALIAS] + [alias(i) for i in range(1, m + 1)])
                lines.append(f"{p}a{define}{aliases}")
                rows_rules(p, f"{p}c{cols}")
                runs_rules(p, f"{p}a", "*", " ")
            else:
                if m == 0:  # no label declared: only empty rows, repeated with "**k"
                    rows_rules(p, '""')
                    for i in range(len(lines) - rows, len(lines)):
                        lines[i] = lines[i].replace('" ' + REPEAT, '"' + REPEAT)
                    continue
                name = "" if m == 1 else f"{p}n "
                if m > 1:
                    lines.append(f"{p}n{define}" + " | ".join(lit(alias(i)) for i in range(1, m + 1)))
                rows_rules(p, f"{p}s0", empty_row="")
                for c in range(cols):
                    alts = [f"{lit(str(a))} {p}e{a}" for a in range(c, cols)]
                    lines.append(f"{p}s{c}{define}{name}(" + " | ".join(alts) + ")")
                for a in range(cols):
                    nxt = [f"{lit(' ')} {p}s{a + 1}"] if a + 1 < cols else []
                    ends = [lit(str(b)) + (f" ({lit(' ')} {p}s{b + 1})?" if b + 1 < cols else "")
                            for b in range(a + 1, cols)]
                    alts = nxt + ([f"{lit('-')} (" + " | ".join(ends) + ")"] if ends else [])
                    body = " | ".join(alts)
                    lines.append(f"{p}e{a}{define}" + (f"({body})?" if body else '""'))
        wrap = (lambda b: f"{lit(SEG_OPEN)} {b} {lit(SEG_CLOSE)}") if envelope else (lambda b: b)
        lines.insert(0, f"{start}{define}" + " | ".join(f"({wrap(b)})" for b in bodies))
        label_rule = "hlabel"
    if names is not None:
        allowed = names if dialect == "crle" else names[1:]
        if allowed:
            lines.append(f"{label_rule}{define}" + " | ".join(lit(n) for n in allowed))
    else:
        first, rules = _label_rules("_l" if lark else "l", lark)
        lines.append(f"{label_rule}{define}{first}")
        lines.extend(rules)
    if lark:  # Lark has no empty string terminal: an empty expansion says the same
        lines = [ln.replace('"" ', "").replace(' ""', " ").replace('""', "") for ln in lines]
    text = "\n".join(lines) + ("\n" if lark else "")
    if len(text) > max_size:
        raise InputError(f"the {form} grammar for a {rows}x{cols} {dialect} grid has {len(text)} characters, "
                         f"more than max_size={max_size}")
    return text
