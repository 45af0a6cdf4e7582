"""Formal grammars of a well-formed answer, for constrained decoding.

:func:`export_grammar` writes the exact language that :func:`maskcodec.parse`
accepts in strict mode, for one format, grid and label set, in the forms that
structured-generation engines read:

``"gbnf"``
    llama.cpp's GBNF, also read by xgrammar.
``"lark"``
    A Lark grammar (lark, outlines, llguidance); labels are one regex terminal.
``"regex"``
    One regular expression (Python ``re`` syntax without look-arounds), only
    where it stays small: every row of R-RLE is written out, so its size grows
    like ``2**cols``; a grid whose regex would exceed ``max_size`` characters
    raises :class:`~maskcodec.InputError`.

How counts are kept exact
-------------------------
The rows of a grid with ``cols`` columns form a finite language, so a
context-free grammar can count: one nonterminal ``r<k>`` per number of cells
``k`` left in the row, ``r<k> ::= label " *" ("1| " r<k-1> | "2| " r<k-2> |
... | "<k>")``; that is ``cols * (cols + 1) / 2`` alternatives per grid (136 at
16 columns).  Image-wise RLE counts over the whole grid instead, so its grammar
has ``rows*cols`` such nonterminals and grows with the square of the cell count.

Labels
------
With ``labels`` the label is one of the given strings or the background.
Without, it is *any safe label*, exactly :func:`maskcodec.is_safe_label`: not
empty, no white space (``str.isspace``) at either end, none of ``|``, ``*``,
C0/C1 control characters other than tab, U+2028/U+2029, and no ``<seg>`` or
``</seg>`` inside.  The grammar is a small automaton: 11 states that remember
whether the last character was white space and how much of a tag it has seen.
The only difference from the parser is that the grammar works on Unicode text,
so lone surrogates (which cannot be encoded in UTF-8, and so never occur in
model output) are outside it.

Prefix policy
-------------
``prefix`` says what may come before ``<seg>``:

``"templates"`` (the default with an envelope)
    exactly one of the answer templates that ``maskcodec convert`` trains
    (:data:`maskcodec.datasets.DEFAULT_TEMPLATES`, or a
    :class:`~maskcodec.datasets.Templates` of your own), such as
    ``"Sure, this is where {label} is:\n"``; ``{label}`` is one of ``labels``
    or, without them, any safe label.  A model fine-tuned on converted data
    stays on its training distribution.  One space may come first: the
    word-start marker SentencePiece models put before their first word.
``"any"``
    any text that does not contain ``<seg>``.
``"none"``
    nothing: the answer starts with ``<seg>`` (the only choice without an
    envelope).

``canonical=True`` (fixed labels only) also requires adjacent runs (within a
row for R-RLE, across the body for I-RLE) to carry different labels, as the
writers of :mod:`maskcodec` always produce.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from ._errors import InputError
from ._labels import check_label
from .quantize import as_grid

__all__ = ["PREFIXES", "export_grammar", "prefix_strings", "resolve_prefix"]

Form = Literal["gbnf", "lark", "regex"]
Prefix = Literal["none", "any", "templates"]
PREFIXES: tuple[str, ...] = ("none", "any", "templates")
#: Marks the ``{label}`` slot in the parts returned by :func:`prefix_strings`.
LABEL_SLOT = None
_FORMS = ("gbnf", "lark", "regex")
_FORMATS = ("rrle", "irle", "full")

# ---------------------------------------------------------------------------- label automaton

#: Code points a label may never contain (inclusive ranges).
FORBIDDEN_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x08), (0x0A, 0x1F), (0x2A, 0x2A), (0x7C, 0x7C), (0x7F, 0x9F), (0x2028, 0x2029),
)
#: White space (``str.isspace``) a label may contain, but not at either end.
INNER_SPACE_RANGES: tuple[tuple[int, int], ...] = (
    (0x09, 0x09), (0x20, 0x20), (0xA0, 0xA0), (0x1680, 0x1680), (0x2000, 0x200A),
    (0x202F, 0x202F), (0x205F, 0x205F), (0x3000, 0x3000),
)
_INNER_SPACE = frozenset(
    chr(c) for lo, hi in INNER_SPACE_RANGES for c in range(lo, hi + 1)
)
_TAG_CHARS = "<seg/>"
# Tag states: the longest suffix of the label so far that is a proper prefix of a tag.
_TAGS = ("", "<", "<s", "<se", "<seg", "</", "</s", "</se", "</seg")
_TAG_INDEX = {t: i for i, t in enumerate(_TAGS)}

# Label automaton states: START (nothing read), SPACE (last char inner white space),
# and 2 + tag-state index after a non-space character (the accepting states).
START, SPACE = 0, 1
N_LABEL_STATES = 2 + len(_TAGS)
DEAD = -1


def _tag_next(t: int, ch: str) -> int:
    """Tag state after ``ch``; DEAD when ``ch`` completes ``<seg>`` or ``</seg>``."""
    s = _TAGS[t] + ch
    if s in ("<seg>", "</seg>"):
        return DEAD
    while s and s not in _TAG_INDEX:
        s = s[1:]
    return _TAG_INDEX[s]


_TAG_NEXT = {(t, ch): _tag_next(t, ch) for t in range(len(_TAGS)) for ch in _TAG_CHARS}


def is_forbidden(ch: str) -> bool:
    """True for a character no label may contain."""
    c = ord(ch)
    return c <= 0x08 or 0x0A <= c <= 0x1F or ch in "|*" or 0x7F <= c <= 0x9F or c in (0x2028, 0x2029)


def label_step(state: int, ch: str) -> int:
    """One character of the "any safe label" automaton; DEAD when it cannot continue.

    >>> s = START
    >>> for ch in "a <seg": s = label_step(s, ch)
    >>> label_step(s, ">"), label_accepts(s)
    (-1, True)
    """
    if state < 0 or is_forbidden(ch):
        return DEAD
    if ch in _INNER_SPACE:
        return DEAD if state == START else SPACE
    t = state - 2 if state >= 2 else 0
    if ch in _TAG_CHARS:
        n = _TAG_NEXT[(t, ch)]
        return DEAD if n < 0 else 2 + n
    return 2  # any other character: no tag in progress


def label_accepts(state: int) -> bool:
    """True when the label read so far is complete and safe."""
    return state >= 2


def _label_edges() -> dict[int, dict[int, set[str]]]:
    """The automaton as ``{state: {target: atoms}}``, atoms from ``"<seg/>"``, ``"O"`` (other) and ``"W"``."""
    edges: dict[int, dict[int, set[str]]] = {}
    for s in range(N_LABEL_STATES):
        out: dict[int, set[str]] = {}
        for atom, ch in [(c, c) for c in _TAG_CHARS] + [("O", "a"), ("W", " ")]:
            t = label_step(s, ch)
            if t >= 0:
                out.setdefault(t, set()).add(atom)
        edges[s] = out
    return edges


# ---------------------------------------------------------------------------- character classes


def _esc_char(c: int, dialect: str) -> str:
    """One code point inside a character class (the same spelling works in GBNF and regex)."""
    ch = chr(c)
    if c < 0x20 or 0x7F <= c <= 0xA0 or (c >= 0x80 and (ch.isspace() or not ch.isprintable())):
        return f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}"
    # llama.cpp's GBNF knows only \\ \" \[ \] (and \x \u \t \r \n) as escapes in a class.
    if ch in ("\\][\"" if dialect == "gbnf" else "\\]^-[\"/"):
        return "\\" + ch
    return ch


def _class(atoms: set[str], dialect: str) -> str:
    """A character class for a set of atoms (see :func:`_label_edges`)."""
    parts: list[str] = []

    def add_ranges(ranges):
        for lo, hi in ranges:
            parts.append(_esc_char(lo, dialect) if lo == hi else f"{_esc_char(lo, dialect)}-{_esc_char(hi, dialect)}")

    if "O" in atoms:
        add_ranges(FORBIDDEN_RANGES)
        if "W" not in atoms:
            add_ranges(INNER_SPACE_RANGES)
        for ch in _TAG_CHARS:
            if ch not in atoms:
                parts.append(_esc_char(ord(ch), dialect))
        return "[^" + "".join(parts) + "]"
    chars = [ch for ch in _TAG_CHARS if ch in atoms]
    if "W" in atoms:
        add_ranges(INNER_SPACE_RANGES)
    parts[:0] = [_esc_char(ord(ch), dialect) for ch in chars]
    if len(parts) == 1 and len(atoms) == 1 and "W" not in atoms:
        return _re_lit(chars[0]) if dialect == "regex" else _gbnf_str(chars[0])
    return "[" + "".join(parts) + "]"


# ---------------------------------------------------------------------------- literals


def _gbnf_str(s: str) -> str:
    out = []
    for ch in s:
        c = ord(ch)
        if ch == "\\" or ch == '"':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif c < 0x20 or 0x7F <= c <= 0x9F:
            out.append(f"\\x{c:02x}")
        else:  # other characters as UTF-8: every GBNF reader takes them as they are
            out.append(ch)
    return '"' + "".join(out) + '"'


_RE_SPECIAL = set("\\.^$|?*+()[]{}/")


def _re_lit(s: str) -> str:
    out = []
    for ch in s:
        c = ord(ch)
        if ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch in _RE_SPECIAL:
            out.append("\\" + ch)
        elif c < 0x20 or 0x7F <= c <= 0xA0:
            out.append(f"\\x{c:02x}")
        elif c >= 0x80 and not ch.isprintable():
            out.append(f"\\u{c:04x}" if c <= 0xFFFF else f"\\U{c:08x}")
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------------------- label expressions


def _label_regex() -> str:
    """The "any safe label" language as a regex without look-arounds.

    A ``<`` opens a group: ``<``, an optional ``/`` and a prefix of ``seg``
    (``P``).  A group either runs into the next ``<``, ends the label, or ends
    with a character that breaks the tag (``K``).  ``M`` is one unit (a char
    other than ``<``, or groups then a breaking character); the first unit
    must not start with white space and the last must not end with it.
    """

    def cls(exclude: str, space: bool) -> str:
        parts = [f"{_esc_char(lo, 'regex')}-{_esc_char(hi, 'regex')}" if lo != hi else _esc_char(lo, "regex")
                 for lo, hi in FORBIDDEN_RANGES + (() if space else INNER_SPACE_RANGES)]
        return "[^" + "".join(parts) + "".join(_esc_char(ord(c), "regex") for c in exclude) + "]"

    def breaking(space: bool) -> str:
        s_chain = f"s(?:{cls('<e', space)}|e(?:{cls('<g', space)}|g{cls('<>', space)}))"
        return f"(?:{cls('<s/', space)}|{s_chain}|\\/(?:{cls('<s', space)}|{s_chain}))"

    groups = "(?:<\\/?(?:s(?:eg?)?)?)"
    unit = f"(?:{cls('<', True)}|{groups}*<{breaking(True)})"
    first = f"(?:{cls('<', False)}|{groups}*<{breaking(True)})"
    last = f"(?:{cls('<', False)}|{groups}*<{breaking(False)})"
    both = f"(?:{cls('<', False)}|{groups}*<{breaking(False)})"
    return f"(?:{first}{unit}*(?:{groups}+|{last})|{both}|{groups}+)"


def _label_rules(prefix: str, lark: bool) -> tuple[str, list[str]]:
    """Rules for "any safe label", one nonterminal per automaton state.

    Returns the start nonterminal and the rule lines.  In Lark every class is
    a one-character regex terminal, so the Earley parser never has to guess
    where a label ends.
    """
    edges = _label_edges()
    define = ": " if lark else " ::= "
    lines = []
    for s in range(N_LABEL_STATES):
        alts = []
        for t, atoms in sorted(edges[s].items()):
            if lark:
                c = _class(atoms, "regex")
                term = f"/{c}/" if c.startswith("[") else _gbnf_str(c.replace("\\", ""))
            else:
                term = _class(atoms, "gbnf")
            alts.append(f"{term} {prefix}{t}")
        body = " | ".join(alts)
        if label_accepts(s):
            body = f"({body})?" if lark else f"{body} | \"\""
        lines.append(f"{prefix}{s}{define}{body}")
    return f"{prefix}{START}", lines


def _labels_list(labels, background: str) -> list[str] | None:
    check_label(background)
    if labels is None:
        return None
    if isinstance(labels, str) or not isinstance(labels, Iterable):
        raise TypeError("labels must be a collection of str (the allowed foreground labels) or None")
    out = [background]
    for lab in labels:
        if not isinstance(lab, str):
            raise TypeError(f"labels must be str, got {type(lab).__name__}")
        check_label(lab)
        if lab not in out:
            out.append(lab)
    return out


# ---------------------------------------------------------------------------- prefix policy


def resolve_prefix(prefix, envelope: bool):
    """``"none"``, ``"any"`` or a :class:`~maskcodec.datasets.Templates` for a ``prefix`` argument."""
    if prefix is None:
        prefix = "templates" if envelope else "none"
    if isinstance(prefix, str):
        if prefix not in PREFIXES:
            raise InputError(f"unknown prefix {prefix!r}; choose one of {', '.join(PREFIXES)} (or a Templates)")
        if prefix == "templates":
            from .datasets.templates import DEFAULT_TEMPLATES

            prefix = DEFAULT_TEMPLATES
        elif prefix == "none":
            return "none"
    elif type(prefix).__name__ != "Templates" or not hasattr(prefix, "referring_answers"):
        raise TypeError(
            "prefix must be 'none', 'any', 'templates' or a maskcodec.datasets.Templates, "
            f"got {type(prefix).__name__}"
        )
    if not envelope:
        raise InputError("a prefix before <seg> needs the envelope; use prefix='none' with envelope=False")
    return prefix


def prefix_strings(templates) -> list[tuple]:
    """The distinct texts before ``{seg}`` of a Templates' answers, each as a tuple of parts:
    literal strings and :data:`LABEL_SLOT` where ``{label}`` (or ``{labels}``) goes.

    >>> from maskcodec.datasets import Templates
    >>> prefix_strings(Templates(referring_answers=("Mask of {label}:\\n{seg}",),
    ...                          semantic_answers=("{seg}",)))
    [('Mask of ', None, ':\\n'), ()]
    """
    out: list[tuple] = []
    for kind, answers in (("label", templates.referring_answers), ("labels", templates.semantic_answers)):
        for a in answers:
            head = a.split("{seg}", 1)[0]
            parts: list = []
            for i, piece in enumerate(head.split("{" + kind + "}")):
                if i:
                    parts.append(LABEL_SLOT)
                if piece:
                    parts.append(piece)
            t = tuple(parts)
            if t not in out:
                out.append(t)
    return out


# Text without "<seg>": from "<" the walk returns to "<" on _NOSEG_BACK and leaves on _NOSEG_EXIT.
_NOSEG_REGEX = (
    "(?:[^<]|<(?:<|s<|se<|seg<)*(?:[^<s]|s[^<e]|se[^<g]|seg[^<>]))*"
    "(?:<(?:<|s<|se<|seg<)*(?:s|se|seg)?)?"
)


def _prefix_regex(policy, names) -> str:
    """The prefix (``<seg>`` not included) as one regex."""
    if policy == "any":
        return _NOSEG_REGEX
    label = _label_regex() if names is None else "(?:" + "|".join(_re_lit(n) for n in names[1:]) + ")"
    alts = []
    for parts in prefix_strings(policy):
        alts.append("".join(label if p is LABEL_SLOT else _re_lit(p) for p in parts))
    return "[ ]?(?:" + "|".join(alts) + ")"


def _prefix_gbnf(policy, names) -> list[str]:
    """GBNF rules for ``prefix``."""
    if policy == "any":
        return [
            'prefix ::= ([^<] | "<" pback* pexit)* ("<" pback* ("s" | "se" | "seg")?)?',
            'pback ::= "<" | "s<" | "se<" | "seg<"',
            'pexit ::= [^<s] | "s" [^<e] | "se" [^<g] | "seg" [^<>]',
        ]
    alts = []
    for parts in prefix_strings(policy):
        seq = " ".join("plabel" if p is LABEL_SLOT else _gbnf_str(p) for p in parts)
        alts.append(seq or '""')
    lines = ['prefix ::= " "? (' + " | ".join(alts) + ")"]
    if names is None:
        lines.append("plabel ::= label")
    else:
        lines.append("plabel ::= " + " | ".join(_gbnf_str(n) for n in names[1:]))
    return lines


# ---------------------------------------------------------------------------- exporters


def _body_plan(fmt: str, rows: int, cols: int):
    """(run width per row, number of rows) for the counting part."""
    if fmt == "rrle":
        return cols, rows
    return rows * cols, 1


def export_grammar(
    *,
    format: Literal["rrle", "irle", "full"] = "rrle",
    grid: int | tuple[int, int] = 16,
    labels: Iterable[str] | None = None,
    background: str = "others",
    envelope: bool = True,
    canonical: bool = False,
    form: Form = "gbnf",
    max_size: int = 200_000,
    prefix: Prefix | object | None = None,
) -> str:
    """Write the grammar of a well-formed answer.

    Parameters
    ----------
    format : {"rrle", "irle", "full"}
        The text format.
    grid : int or (rows, cols)
        The grid.
    labels : collection of str, optional
        The allowed foreground labels (the background is always allowed);
        None allows any safe label.
    background : str
        The background label.
    envelope : bool
        Include ``<seg>`` and ``</seg>``.
    canonical : bool
        Adjacent runs must carry different labels (needs ``labels``; not for
        ``"full"``).
    form : {"gbnf", "lark", "regex"}
        The grammar language.
    max_size : int
        Refuse (:class:`~maskcodec.InputError`) to write a grammar longer than
        this many characters.
    prefix : {"templates", "any", "none"} or Templates, optional
        What comes before ``<seg>`` (see the module documentation); the
        default is ``"templates"`` with an envelope (the text the converted
        training data puts there) and ``"none"`` without.

    Returns
    -------
    str
        The grammar; its start rule is ``root`` (GBNF) or ``start`` (Lark).

    Examples
    --------
    >>> print(export_grammar(grid=(2, 2), labels=["dog"], prefix="none"))
    root ::= "<seg>" body "</seg>"
    body ::= row "\\n " row "\\n"
    row ::= r2
    r1 ::= label " *" "1"
    r2 ::= label " *" ("1" "| " r1 | "2")
    label ::= "others" | "dog"
    >>> import re
    >>> rx = export_grammar(grid=(1, 2), labels=["dog"], form="regex")
    >>> bool(re.fullmatch(rx, "Sure, this is where dog is:\\n<seg>dog *1| others *1\\n</seg>"))
    True
    """
    if format not in _FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(_FORMATS)}")
    if form not in _FORMS:
        raise InputError(f"unknown form {form!r}; choose one of {', '.join(_FORMS)}")
    rows, cols = as_grid(grid)
    names = _labels_list(labels, background)
    if canonical and names is None:
        raise InputError("canonical=True needs a fixed label set (labels=...)")
    if canonical and format == "full":
        raise InputError("canonical=True applies to run-length formats, not 'full'")
    policy = resolve_prefix(prefix, envelope)
    if form == "regex":
        text = _regex(format, rows, cols, names, envelope, canonical, max_size)
        if policy != "none":
            text = _prefix_regex(policy, names) + text
    else:
        text = _cfg(format, rows, cols, names, envelope, canonical, form, max_size)
        if policy != "none":
            text = _with_prefix(text, form, policy, names)
    if len(text) > max_size:
        raise InputError(
            f"the {form} grammar for a {rows}x{cols} {format} grid has {len(text)} characters, "
            f"more than max_size={max_size}"
        )
    return text


def _with_prefix(text: str, form: str, policy, names) -> str:
    """Put the prefix rule(s) in front of ``<seg>`` in a GBNF or Lark grammar."""
    first, rest = text.split("\n", 1)
    if form == "gbnf":
        head, tail = first.split(" ::= ", 1)
        return "\n".join([f"{head} ::= prefix {tail}", *_prefix_gbnf(policy, names), rest])
    # Lark: the prefix and <seg> as one regex terminal, so that no lexer (Earley's, or
    # llguidance's greedy one) has to guess where free text or a label in it ends.
    head, tail = first.split(": ", 1)
    assert tail.startswith('"<seg>" ')
    rx = _prefix_regex(policy, names) + "<seg>"  # every "/" in it is escaped already
    return "\n".join([f"{head}: PREFIX_SEG {tail[len(chr(34) + '<seg>' + chr(34)) + 1:]}",
                      f"PREFIX_SEG: /{rx}/", rest])


def _cfg(fmt, rows, cols, names, envelope, canonical, form, max_size):
    lark = form == "lark"
    lit = _gbnf_str  # Lark string literals take the same escapes
    define = " ::= " if not lark else ": "
    start = "root" if not lark else "start"
    width, nrows = _body_plan(fmt, rows, cols)
    # Cheap size guard before building anything quadratic.
    alternatives = width * (width + 1) // 2 * (len(names) ** 2 if canonical else 1)
    if fmt != "full" and alternatives * 8 > max_size:
        raise InputError(
            f"the {form} grammar for a {rows}x{cols} {fmt} grid needs about {alternatives} alternatives, "
            f"more than max_size={max_size} characters allow"
        )
    # Lark engines with a greedy lexer (llguidance) cannot back off "others" once "others dog"
    # is a longer candidate, so with fixed labels each label is fused with what follows it.
    fuse = lark and names is not None
    lines = []
    inner = "body"
    lines.append(f"{start}{define}{lit('<seg>')} body {lit('</seg>')}" if envelope else f"{start}{define}body")
    if fmt == "full":
        n = rows * cols
        if fuse:
            lines.append(f"body{define}" + (f"cell~{n - 1} " if n > 1 else "") + "last")
            lines.append(f"cell{define}" + " | ".join(lit(x + "| ") for x in names))
            lines.append(f"last{define}" + " | ".join(lit(x + chr(10)) for x in names))
        else:
            rep = f" ({lit('| ')} label)~{n - 1}" if lark else f" ({lit('| ')} label){{{n - 1}}}"
            lines.append(f"body{define}label{rep if n > 1 else ''} {lit(chr(10))}")
    else:
        seq = " ".join(["row"] + [f"{lit(chr(10) + ' ')} row"] * (nrows - 1)) + f" {lit(chr(10))}"
        lines.append(f"{inner}{define}{seq}")
        if not canonical:
            lines.append(f"row{define}r{width}")
            for k in range(1, width + 1):
                alts = [f"{lit(str(n))} {lit('| ')} r{k - n}" for n in range(1, k)] + [lit(str(k))]
                body = alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"
                head = "run" if fuse else f"label {lit(' *')}"
                lines.append(f"r{k}{define}{head} {body}")
            if fuse:
                lines.append(f"run{define}" + " | ".join(lit(x + " *") for x in names))
        else:
            m = len(names)
            lines.append(f"row{define}r{width}_{m}")  # previous label m: none yet
            # With one label only, a row is that label once: no second run could differ.
            more = m > 1
            for k in range(1, width + 1):
                for p in range(m + 1):
                    if more or p == m:
                        lines.append(f"r{k}_{p}{define}" + " | ".join(f"u{k}_{l}" for l in range(m) if l != p))
                for l in range(m):
                    alts = [f"{lit(str(n))} {lit('| ')} r{k - n}_{l}" for n in range(1, k) if more] + [lit(str(k))]
                    body = alts[0] if len(alts) == 1 else "(" + " | ".join(alts) + ")"
                    head = lit(names[l] + " *") if fuse else f"{lit(names[l])} {lit(' *')}"
                    lines.append(f"u{k}_{l}{define}{head} {body}")
    if names is not None:
        if not fuse and (not canonical or fmt == "full"):
            lines.append(f"label{define}" + " | ".join(lit(n) for n in names))
    else:
        first, rules = _label_rules("_l" if lark else "l", lark)
        lines.append(f"label{define}{first}")
        lines.extend(rules)
    return "\n".join(lines) + ("\n" if lark else "")


def _regex(fmt, rows, cols, names, envelope, canonical, max_size):
    if names is None:
        label = _label_regex()
    else:
        label = "(?:" + "|".join(_re_lit(n) for n in names) + ")"
    nl = "\\n"
    sep = "\\| "
    star = " \\*"
    if fmt == "full":
        n = rows * cols
        body = label + (f"(?:{sep}{label}){{{n - 1}}}" if n > 1 else "") + nl
    else:
        width, nrows = _body_plan(fmt, rows, cols)
        # Size of r_k: |label| + sum of smaller ones; refuse before building something huge.
        size, total = [0], 0
        for k in range(1, width + 1):
            size.append(len(label) * (len(names) if canonical else 1) + 12 * k + sum(size[1:k]))
            if size[k] > max_size:
                raise InputError(
                    f"a regex for {width}-cell runs would exceed max_size={max_size} characters "
                    f"(it doubles with every cell); use form='gbnf' or 'lark'"
                )
        del total
        if not canonical:
            memo: dict[int, str] = {}
            for k in range(1, width + 1):
                alts = [f"{n}{sep}{memo[k - n]}" for n in range(1, k)] + [str(k)]
                memo[k] = f"{label}{star}(?:{'|'.join(alts)})"
            row = memo[width]
        else:
            m = len(names)
            cmemo: dict[tuple[int, int], str] = {}
            for k in range(1, width + 1):
                for p in range(m + 1):
                    parts = []
                    for lab in range(m):
                        if lab == p:
                            continue
                        alts = [f"{n}{sep}{cmemo[(k - n, lab)]}" for n in range(1, k) if m > 1] + [str(k)]
                        parts.append(f"{_re_lit(names[lab])}{star}(?:{'|'.join(alts)})")
                    cmemo[(k, p)] = "(?:" + "|".join(parts) + ")"
            row = cmemo[(width, m)]
        body = row + (f"(?:{nl} {row}){{{nrows - 1}}}" if nrows > 1 else "") + nl
    return f"<seg>{body}</seg>" if envelope else body
