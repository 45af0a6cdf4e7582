"""The API reference's parameter tables are right: one parameter per numpydoc entry, and the
default each entry renders with (griffe, as mkdocstrings reads the docstrings) is the signature's.

griffe parses ``a, b : int`` as two parameters that share the first one's type and default, so a
grouped entry renders every name after the first with a wrong type and default (``method`` shown
as ``int | tuple[int, int] = 16``); this test fails on any such entry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

griffe = pytest.importorskip("griffe")

SRC = Path(__file__).resolve().parents[1] / "src"
_GROUPED = re.compile(r"^(\s*)([A-Za-z_][A-Za-z0-9_]*(?:\s*,\s*[A-Za-z_*][A-Za-z0-9_]*)+)\s*(?::.*)?$")


def _functions(obj, seen=None):
    seen = set() if seen is None else seen
    for member in list(obj.members.values()):
        if member.is_alias or member.path in seen:
            continue
        seen.add(member.path)
        if member.is_function:
            yield member
        elif member.is_class or member.is_module:
            yield from _functions(member, seen)


def _extension():
    import importlib.util

    path = SRC.parent / "docs" / "_ext" / "griffe_roles.py"
    spec = importlib.util.spec_from_file_location("griffe_roles", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def package():
    """maskcodec as the docs build loads it: with the extension of mkdocs.yml."""
    import logging

    logging.getLogger("griffe").setLevel(logging.ERROR)
    ext = griffe.load_extensions(_extension().SphinxRoles())
    return griffe.load("maskcodec", search_paths=[str(SRC)], docstring_parser="numpy",
                       allow_inspection=False, extensions=ext)


def _parameter_sections(func):
    for section in func.docstring.parse("numpy"):
        if section.kind.value in ("parameters", "other parameters"):
            yield section


def _same(a, b) -> bool:
    import ast

    try:
        return ast.literal_eval(str(a)) == ast.literal_eval(str(b))
    except (ValueError, SyntaxError):
        return str(a) == str(b)


def test_no_grouped_parameter_entries(package):
    grouped = []
    for func in _functions(package):
        if func.docstring is None:
            continue
        in_params = False
        for line in func.docstring.value.splitlines():
            stripped = line.strip()
            if stripped in ("Parameters", "Other Parameters"):
                in_params = True
                continue
            if in_params and stripped in ("Returns", "Raises", "Yields", "Examples", "Notes", "See Also",
                                          "Attributes", "Warns"):
                in_params = False
            if in_params and not line.startswith(" ") and _GROUPED.match(line):
                grouped.append(f"{func.path}: {stripped}")
    assert not grouped, "one parameter per docstring entry, please:\n" + "\n".join(grouped)


def test_rendered_defaults_are_the_signatures(package):
    wrong = []
    checked = 0
    for func in _functions(package):
        if func.docstring is None:
            continue
        signature = {p.name: p for p in func.parameters}
        for section in _parameter_sections(func):
            for p in section.value:
                if p.name not in signature:
                    continue
                want = signature[p.name].default
                got = p.default
                checked += 1
                if got is not None and not _same(got, want):
                    wrong.append(f"{func.path}({p.name}): renders default {got}, the signature says {want}")
    assert checked > 200
    assert not wrong, "\n".join(wrong)


def test_the_extension_splits_groups_and_keeps_signature_defaults():
    fix = _extension().fix_parameter_entries
    doc = "Do.\n\nParameters\n----------\ngrid, method\n    As elsewhere.\nmode : {\"a\", \"b\"}\n    M.\n" \
          "x : {\"p\", \"q\"}, optional\n    X.\n\nReturns\n-------\nint, str\n    Not parameters.\n"
    got = fix(doc, {"grid": "16", "method": "'nearest'", "mode": "'b'", "x": "None"})
    assert "grid\n    As elsewhere.\nmethod\n    As elsewhere." in got
    assert 'mode : {"b", "a"}' in got and 'x : one of "p", "q", optional' in got
    assert got.endswith("int, str\n    Not parameters.")


def test_the_check_catches_a_grouped_entry(tmp_path):
    (tmp_path / "demo_pkg.py").write_text('''
def f(grid=16, method="nearest"):
    """Do.

    Parameters
    ----------
    grid, method
        As elsewhere.
    """
''')
    pkg = griffe.load("demo_pkg", search_paths=[str(tmp_path)], docstring_parser="numpy")
    params = next(_parameter_sections(pkg["f"])).value
    assert [str(p.default) for p in params] == ["16", "16"]  # griffe copies the first default: wrong
