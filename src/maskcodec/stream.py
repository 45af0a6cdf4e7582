"""Decoding an answer while it streams in, for UIs that draw the mask row by row.

:class:`StreamDecoder` takes text chunks as a server sends them (token by
token, or any split, even inside ``<seg>`` or a multi-byte label) and reports
an update each time a row of R-RLE is complete (a run for image-wise RLE, a
cell for full descriptors), with the grid decoded so far: the rows written,
background below.  When ``</seg>`` arrives, or at :meth:`StreamDecoder.close`,
the last update holds exactly what :func:`maskcodec.parse` returns for the
whole text in the decoder's mode.

>>> from maskcodec.stream import StreamDecoder
>>> dec = StreamDecoder(grid=(2, 3))
>>> [u.rows for u in dec.feed("Sure:\\n<seg>others *1| d")]
[]
>>> [(u.rows, u.grid.ids.tolist()) for u in dec.feed("og *2\\n oth")]
[(1, [[0, 1, 1], [0, 0, 0]])]
>>> [(u.rows, u.done) for u in dec.feed("ers *3\\n</seg>")]
[(2, False), (2, True)]
>>> [u.rows for u in StreamDecoder(grid=(3, 1)).feed("<seg>a *1\\n a *1\\n a *1\\n")]
[1, 2, 3]

Each update re-reads the answer so far with the repair parser (a few tens of
microseconds for a 16x16 answer), so the grid of an update is always what
:func:`maskcodec.parse` makes of that text in repair mode.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from ._errors import InputError
from ._parser import ParseResult, parse
from .grid import LabelGrid
from .quantize import as_grid

__all__ = ["StreamDecoder", "StreamUpdate", "stream_decode"]

_OPEN, _CLOSE = "<seg>", "</seg>"


class StreamUpdate(NamedTuple):
    """One step of a streamed answer.

    Attributes
    ----------
    rows : int
        Complete rows so far (R-RLE); for ``"irle"``/``"full"``, complete runs/cells.
    grid : LabelGrid
        The grid decoded so far (what is not written yet is background).
    done : bool
        True for the last update (``</seg>`` seen, or :meth:`StreamDecoder.close`).
    result : ParseResult or None
        With ``done``: the parse of the whole text (``repairs``, ``complete``...).
    """

    rows: int
    grid: LabelGrid
    done: bool
    result: ParseResult | None = None


class StreamDecoder:
    """Incremental decoder: :meth:`feed` chunks, get :class:`StreamUpdate` s.

    Parameters
    ----------
    grid : int or (rows, cols)
        The grid the answer is written on (needed before the answer is complete).
    format : {"rrle", "irle", "full"}
        The text format.
    background : str
        The background label.
    labels : collection of str, optional
        The allowed foreground labels (see :func:`maskcodec.parse`).
    mode : {"repair", "strict"}
        How the final update reads the whole text (intermediate ones always repair).
    """

    def __init__(
        self,
        *,
        grid: int | tuple[int, int] = 16,
        format: str = "rrle",
        background: str = "others",
        labels: Iterable[str] | None = None,
        mode: str = "repair",
    ) -> None:
        if mode not in ("repair", "strict"):
            raise InputError(f"a stream decodes in mode 'repair' or 'strict', got {mode!r}")
        if format not in ("rrle", "irle", "full"):
            raise InputError(f"unknown format {format!r}; choose one of rrle, irle, full")
        self.grid = as_grid(grid)
        self.format = format
        self.mode = mode
        self._opts = dict(grid=self.grid, format=format, background=background,
                          labels=None if labels is None else list(labels))
        self._text = ""
        self._body = -1  # offset just past <seg>, once seen
        self._units = 0  # completed rows / runs / cells
        self._done = False

    @property
    def text(self) -> str:
        """Everything fed so far."""
        return self._text

    def feed(self, chunk: str) -> list[StreamUpdate]:
        """Add a chunk; returns the updates it completes (often none)."""
        if not isinstance(chunk, str):
            raise TypeError(f"chunks must be str, got {type(chunk).__name__}; decode bytes first")
        if self._done:
            if chunk:
                self._text += chunk  # text after </seg> is kept but changes nothing
            return []
        self._text += chunk
        if self._body < 0:
            i = self._text.find(_OPEN)
            if i < 0:
                return []
            self._body = i + len(_OPEN)
        end = self._text.find(_CLOSE, self._body)
        body = self._text[self._body:] if end < 0 else self._text[self._body:end]
        out = []
        units = self._count_units(body, end >= 0)
        for k in range(self._units + 1, units + 1):  # one update per row (run, cell) completed
            out.append(StreamUpdate(k, self._partial(body, k), False))
        self._units = max(self._units, units)
        if end >= 0:
            out.append(self._finish())
        return out

    def close(self) -> StreamUpdate:
        """The final update for a stream that ended (with or without ``</seg>``)."""
        if self._done:
            return self._last
        return self._finish()

    def _count_units(self, body: str, closed: bool) -> int:
        if self.format == "rrle":
            return min(body.count("\n"), self.grid[0])
        # One line: a run / cell is complete at each "| ", and the last one at the newline.
        n = body.count("| ") + (1 if ("\n" in body or closed) and body.strip() else 0)
        return n

    def _partial(self, body: str, k: int) -> LabelGrid:
        """The grid of the first ``k`` units of ``body``."""
        sep = "\n" if self.format == "rrle" else "| "
        pos = -1
        for _ in range(k):
            nxt = body.find(sep, pos + 1)
            if nxt < 0:  # the last run / cell, ended by the newline or </seg>
                pos = len(body)
                break
            pos = nxt
        cut = body[: pos + 1] if self.format == "rrle" else body[:pos].rstrip("\n") + "\n"
        return parse(_OPEN + cut, mode="repair", **self._opts).grid

    def _finish(self) -> StreamUpdate:
        self._done = True
        result = parse(self._text, mode=self.mode, **self._opts)
        rows = self.grid[0] if self.format == "rrle" else self._units
        self._last = StreamUpdate(rows if result.complete else self._units, result.grid, True, result)
        return self._last


def stream_decode(chunks: Iterable[str], /, **options) -> Iterator[StreamUpdate]:
    """Yield the updates of a whole stream of chunks, ending with the final one.

    Options as :class:`StreamDecoder`.

    >>> ups = list(stream_decode(["<seg>dog *2\\n", " others *2\\n</seg>"], grid=2))
    >>> [(u.rows, u.done) for u in ups], ups[-1].grid.ids.tolist()
    ([(1, False), (2, False), (2, True)], [[1, 1], [0, 0]])
    """
    dec = StreamDecoder(**options)
    for chunk in chunks:
        yield from dec.feed(chunk)
        if dec._done:
            return
    yield dec.close()
