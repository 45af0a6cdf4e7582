"""The error hierarchy.

Every error maskcodec raises on bad *input* derives from :class:`MaskcodecError`,
itself a :class:`ValueError`, so ``except ValueError`` keeps working for callers
that do not know this package.  Wrong argument *types* (a list where an array
was expected) raise :class:`TypeError` with a hint instead.
"""

from __future__ import annotations

__all__ = ["InputError", "LabelError", "MaskcodecError", "ParseError"]


class MaskcodecError(ValueError):
    """Base class of every error maskcodec raises on bad input."""


class InputError(MaskcodecError):
    """A mask, grid, size or option is unusable (wrong shape, dtype, range...)."""


class LabelError(MaskcodecError):
    """A label cannot be written unambiguously in the text format."""


class ParseError(MaskcodecError):
    """Text does not follow the grammar.

    Attributes
    ----------
    pos : int
        0-based character offset into the text that was parsed.
    line, column : int
        1-based line and column of ``pos``.
    expected : str
        What the parser expected at ``pos`` (may be empty).
    reason : str
        The message without its position prefix.
    """

    def __init__(self, reason: str, text: str, pos: int, expected: str = "") -> None:
        pos = max(0, min(pos, len(text)))
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        self.reason = reason
        self.pos = pos
        self.line = line
        self.column = column
        self.expected = expected
        super().__init__(f"line {line}, column {column}: {reason}")

    def __reduce__(self):  # keep the error picklable across processes
        return (_rebuild_parse_error, (self.reason, self.pos, self.line, self.column, self.expected))


def _rebuild_parse_error(reason: str, pos: int, line: int, column: int, expected: str) -> ParseError:
    err = ParseError.__new__(ParseError)
    ValueError.__init__(err, f"line {line}, column {column}: {reason}")
    err.reason, err.pos, err.line, err.column, err.expected = reason, pos, line, column, expected
    return err
