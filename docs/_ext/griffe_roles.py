"""Griffe extension for the docs build: turn Sphinx roles in docstrings into mkdocs links.

maskcodec's docstrings are numpydoc and use Sphinx cross-reference roles
(``:func:`~maskcodec.parse```), which read well in ``help()`` and in editors.
mkdocstrings renders Markdown, where such a role would show up literally, so
this extension rewrites each role before rendering: a target that the API
page documents (a name in ``maskcodec.__all__``, or a member of one) becomes
an autorefs link, anything else (private modules, builtins) plain code.
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
        if obj.docstring is None or ":" not in obj.docstring.value:
            return
        owner = obj if obj.is_class else obj.parent if obj.parent is not None and obj.parent.is_class else None
        obj.docstring.value = _ROLE.sub(lambda m: self._replace(m, owner), obj.docstring.value)
