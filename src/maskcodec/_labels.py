"""Label safety: which strings can stand in the text format, and how to make one safe.

A label is written verbatim between separators, so it must not contain anything
the grammar uses as structure, and it must not start or end with whitespace (the
reference decoder strips labels, so such a label would not come back as written).
"""

from __future__ import annotations

import re
import unicodedata

from ._errors import LabelError

__all__ = ["check_label", "is_safe_label", "safe_label"]

SEG_OPEN = "<seg>"
SEG_CLOSE = "</seg>"

# Characters that split a Python string into lines (str.splitlines), plus "|" and
# "*".  Any of them inside a label would make a row ambiguous.
_LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
_FORBIDDEN = _LINE_BREAKS | frozenset("|*")
_FORBIDDEN_RE = re.compile(r"[|*\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029\ud800-\udfff]")
# Everything a safe label may not contain, for the fast check: "|", "*", C0/C1
# control characters except tab (this covers every line break but two) and the
# two Unicode line/paragraph separators; and lone surrogates (U+D800..U+DFFF), which a
# Python str can hold but UTF-8 (hence any tokenizer or file) cannot.
_UNSAFE_RE = re.compile("[|*\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]|</?seg>")


def _char_name(ch: str) -> str:
    name = unicodedata.name(ch, None)
    return f"{ch!r} (U+{ord(ch):04X}{', ' + name if name else ''})"


def _problem(label: object) -> str | None:
    """Why ``label`` is unsafe, or None when it is safe."""
    if (
        type(label) is str
        and label
        and not label[0].isspace()
        and not label[-1].isspace()
        and _UNSAFE_RE.search(label) is None
    ):
        return None
    if not isinstance(label, str):
        return f"a label must be a str, got {type(label).__name__}"
    if not label:
        return "a label must not be empty"
    if label[0].isspace() or label[-1].isspace():
        where = "starts" if label[0].isspace() else "ends"
        ch = label[0] if label[0].isspace() else label[-1]
        return f"label {label!r} {where} with whitespace {_char_name(ch)}"
    for i, ch in enumerate(label):
        if ch in _FORBIDDEN:
            return f"label {label!r} contains {_char_name(ch)} at index {i}"
        if unicodedata.category(ch) == "Cc" and ch != "\t":
            return f"label {label!r} contains the control character {_char_name(ch)} at index {i}"
        if "\ud800" <= ch <= "\udfff":
            return f"label {label!r} contains the lone surrogate {_char_name(ch)} at index {i} (not UTF-8)"
    for tag in (SEG_OPEN, SEG_CLOSE):
        i = label.find(tag)
        if i >= 0:
            return f"label {label!r} contains {tag!r} at index {i}"
    return None


def is_safe_label(label: object) -> bool:
    """Return True when ``label`` can be written and parsed back exactly.

    Examples
    --------
    >>> is_safe_label("white horse")
    True
    >>> is_safe_label("cat | dog")
    False
    """
    return _problem(label) is None


def check_label(label: str) -> str:
    """Return ``label`` unchanged, or raise :class:`LabelError` naming the offending character.

    Examples
    --------
    >>> check_label("dog")
    'dog'
    >>> check_label("a*b")
    Traceback (most recent call last):
    ...
    maskcodec._errors.LabelError: label 'a*b' contains '*' (U+002A, ASTERISK) at index 1
    """
    problem = _problem(label)
    if problem is not None:
        if not isinstance(label, str):
            raise TypeError(problem)
        raise LabelError(problem)
    return label


def safe_label(text: str, /, *, replacement: str = " ", fallback: str | None = None) -> str:
    """Turn an arbitrary string (e.g. a raw referring expression) into a safe label.

    Every structural character (``|``, ``*``, line breaks, other control
    characters) becomes ``replacement``, every ``<seg>``/``</seg>`` tag is
    removed, runs of whitespace collapse to one space and the ends are stripped.
    Safe labels come back unchanged, so the function is idempotent.

    Parameters
    ----------
    text : str
        The string to clean.
    replacement : str
        What each forbidden character becomes; must itself be safe or a space.
    fallback : str, optional
        Returned when nothing is left; without it an empty result raises
        :class:`LabelError`.

    Examples
    --------
    >>> safe_label("man in red | left *")
    'man in red left'
    >>> safe_label("  the <seg>dog</seg>\\n on the left ")
    'the dog on the left'
    """
    if not isinstance(text, str):
        raise TypeError(f"safe_label expects a str, got {type(text).__name__}")
    if replacement != " " and not is_safe_label(replacement):
        raise LabelError(f"replacement {replacement!r} is not itself safe")
    if is_safe_label(text):
        return text
    out = _FORBIDDEN_RE.sub(replacement, text)
    out = "".join(replacement if unicodedata.category(c) == "Cc" and c != "\t" else c for c in out)
    while SEG_OPEN in out or SEG_CLOSE in out:
        out = out.replace(SEG_OPEN, " ").replace(SEG_CLOSE, " ")
    out = " ".join(out.split())
    if not out:
        if fallback is None:
            raise LabelError(f"nothing of {text!r} is left once it is made safe")
        return check_label(fallback)
    return check_label(out)
