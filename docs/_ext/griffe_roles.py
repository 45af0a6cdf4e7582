"""Griffe extension for the docs build: turn Sphinx roles in docstrings into mkdocs links.

maskcodec's docstrings are numpydoc and use Sphinx cross-reference roles
(``:func:`~maskcodec.parse```), which read well in ``help()`` and in editors.
mkdocstrings renders Markdown, where such a role would show up literally, so
this extension rewrites each role before rendering: a target that the API
page documents (a name in ``maskcodec.__all__``, or a member of one) becomes
an autorefs link, anything else (private modules, builtins) plain code.

It also makes the parameter tables right.  griffe's numpy parser reads a grouped entry
(``grid, method, threshold``) as parameters that all share the first one's type and default,
and takes the first of ``{"a", "b"}`` choices as the default, so such entries rendered with a
wrong type and default.  Before parsing, each grouped entry is split into one entry per name
(same description), and choices whose first item is not the signature's default are reordered
(or, when the default is not among them, written as ``one of ...`` so that the signature's
default shows).  ``tests/test_api_params.py`` checks every rendered default.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:py:)?(?:func|class|meth|attr|mod|data|exc|obj|const):`(~?)([^`<>]+?)`")


def _public_names() -> set[str]:
    try:
        import maskcodec
    except ImportError:  # the docs can still build, without links
        return set()
    return set(maskcodec.__all__)


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` into ``[`name`][maskcodec.target]`` or ``` `name` ```."""

    def __init__(self) -> None:
        super().__init__()
        self.public = _public_names()

    def _replace(self, match: re.Match[str], owner: griffe.Object | None = None) -> str:
        short, target = match.group(1) == "~", match.group(2).strip()
        if target.startswith("."):
            target = target[1:]
        parts = target.split(".")
        if owner is not None and owner.name in self.public and parts[0] in owner.members:
            # a member named relative to its public class: :meth:`decode` inside Codec
            parts = ["maskcodec", owner.name, *parts]
            short = True
        elif parts[0] != "maskcodec":
            parts = ["maskcodec", *parts]
        shown = parts[-1] if short or len(parts) == 2 else ".".join(parts)
        if len(parts) >= 2 and parts[1] in self.public:
            # maskcodec.X or maskcodec.X.member: both are documented on the API page.
            return f"[`{shown}`][{'.'.join(parts)}]"
        return f"`{match.group(2).strip().lstrip('~.')}`"

    def on_object(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is None:
            return
        obj.docstring.value = fix_parameter_entries(obj.docstring.value, _signature_defaults(obj))
        if ":" not in obj.docstring.value:
            return
        owner = obj if obj.is_class else obj.parent if obj.parent is not None and obj.parent.is_class else None
        obj.docstring.value = _ROLE.sub(lambda m: self._replace(m, owner), obj.docstring.value)


_SECTION_END = {"Returns", "Raises", "Yields", "Examples", "Notes", "See Also", "Attributes", "Warns",
                "References", "Methods", "Receives", "Warnings"}
_ENTRY = re.compile(r"^(?P<names>[A-Za-z_*][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_*][A-Za-z0-9_]*)*)"
                    r"(?:\s+:\s*(?P<type>.*))?$")


def _signature_defaults(obj) -> dict[str, str | None]:
    """``{parameter: default as source text or None}`` of a function, or of a class's __init__."""
    func = obj
    if obj.is_class:
        func = obj.members.get("__init__")
        if func is None or not func.is_function:
            return {}
    if not getattr(func, "is_function", False):
        return {}
    return {p.name: (None if p.default is None else str(p.default)) for p in func.parameters}


def _choices(text: str):
    m = re.match(r"^\{(?P<items>.*)\}(?P<rest>.*)$", text.strip())
    if not m:
        return None
    return [c.strip() for c in m.group("items").split(",")], m.group("rest")


def _same(a: str, b: str) -> bool:
    import ast

    try:
        return ast.literal_eval(a) == ast.literal_eval(b)
    except (ValueError, SyntaxError):
        return a == b


def fix_parameter_entries(text: str, defaults: dict[str, str | None]) -> str:
    """Split grouped numpydoc parameter entries and keep choices from overriding the default."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    in_params = False
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        nxt = lines[i + 1].strip() if i + 1 < len(lines) else ""
        if stripped in ("Parameters", "Other Parameters") and set(nxt) == {"-"}:
            in_params = True
            out.extend([line, lines[i + 1]])
            i += 2
            continue
        if stripped in _SECTION_END and set(nxt) == {"-"}:
            in_params = False
        m = _ENTRY.match(line) if in_params and line and not line[0].isspace() else None
        if m is None:
            out.append(line)
            i += 1
            continue
        body = []
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j][0].isspace()):
            body.append(lines[j])
            j += 1
        while body and not body[-1].strip():
            j -= 1
            body.pop()
        names = [n.strip() for n in m.group("names").split(",")]
        typ = m.group("type")
        for name in names:
            header = name
            if typ:
                t = typ
                ch = _choices(typ)
                key = name.lstrip("*")
                want = defaults.get(key)
                if ch is not None and key in defaults and (want is None or not _same(ch[0][0], want)):
                    # (want None: a required parameter, which has no default to show)
                    items, rest = ch
                    hit = [c for c in items if want is not None and _same(c, want)]
                    if hit:
                        t = "{" + ", ".join(hit + [c for c in items if c is not hit[0]]) + "}" + rest
                    else:
                        t = "one of " + ", ".join(items) + rest
                header = f"{name} : {t}"
            out.append(header)
            out.extend(body)
        i = j
    return "\n".join(out)
