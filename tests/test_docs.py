"""The documentation cannot rot: its examples run, its outputs match, its API page is complete.

* Every fenced ``python`` block of ``README.md`` and ``docs/quickstart.md`` runs, in order, in one
  namespace per file.  When a ``text`` block follows a ``python`` block directly, it is the output
  that block prints, and it must match exactly (trailing spaces aside).
* Every name in ``maskcodec.__all__`` has a ``::: maskcodec.NAME`` entry on ``docs/api.md``
  (``__version__`` is mentioned in prose), so mkdocstrings renders it and links to it resolve.
* The commands the README promises exist and the pages the docs link to are in the mkdocs nav.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import maskcodec

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

# A fenced block: ```lang (optional attributes) ... ```, at the start of a line.
_FENCE = re.compile(r"^```([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def fenced_blocks(text: str) -> list[tuple[str, str, int, int]]:
    """(language, code, start, end) of each fenced block, in order."""
    return [(m.group(1), m.group(2), m.start(), m.end()) for m in _FENCE.finditer(text)]


def python_examples(text: str) -> list[tuple[str, str | None, int]]:
    """(code, expected output or None, line number) for each ``python`` block."""
    blocks = fenced_blocks(text)
    out = []
    for i, (lang, code, start, end) in enumerate(blocks):
        if lang != "python":
            continue
        expected = None
        if i + 1 < len(blocks):
            nlang, ncode, nstart, _ = blocks[i + 1]
            if nlang == "text" and not text[end:nstart].strip():
                expected = ncode
        out.append((code, expected, text.count("\n", 0, start) + 1))
    return out


def _normalise(output: str) -> str:
    return "\n".join(line.rstrip() for line in output.strip("\n").splitlines())


def run_examples(path: Path) -> int:
    text = path.read_text(encoding="utf-8")
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    examples = python_examples(text)
    for code, expected, line in examples:
        buf = io.StringIO()
        try:
            with contextlib.redirect_stdout(buf):
                exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
        except Exception as exc:  # pragma: no cover - the message is the point
            raise AssertionError(f"{path.name}, block at line {line} raised {exc!r}") from exc
        if expected is not None:
            assert _normalise(buf.getvalue()) == _normalise(expected), (
                f"{path.name}, block at line {line}: printed output differs from the text block after it"
            )
    return len(examples)


@pytest.mark.parametrize("name", ["README.md", "docs/quickstart.md"])
def test_python_blocks_run_and_print_what_the_docs_show(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    assert run_examples(ROOT / name) >= 1


@pytest.mark.parametrize("name", sorted(p.name for p in DOCS.glob("*.md")))
def test_pycon_blocks_are_doctests(name):
    """``pycon`` blocks (``>>>`` sessions) on each docs page run as doctests, in order, in one
    namespace that starts with ``mc`` (maskcodec) and ``np`` (numpy)."""
    import doctest

    import numpy as np

    text = (DOCS / name).read_text(encoding="utf-8")
    sessions = [code for lang, code, _, _ in fenced_blocks(text) if lang == "pycon"]
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    namespace = {"mc": maskcodec, "np": np}  # shared: later sessions build on earlier ones
    for k, code in enumerate(sessions):
        test = parser.get_doctest(code, namespace, f"{name}[{k}]", name, 0)  # copies namespace
        runner.run(test, clear_globs=False)
        namespace = test.globs
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} pycon example(s) on docs/{name} failed (see output above)"


def _console_sessions(text: str) -> list[list[tuple[str, str]]]:
    """Each ``console`` block as [(command, expected output)], joining ``\\`` continuations."""
    sessions = []
    for lang, code, _, _ in fenced_blocks(text):
        if lang != "console":
            continue
        steps: list[tuple[str, list[str]]] = []
        lines = code.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                steps.append((command, []))
            elif steps:
                steps[-1][1].append(line)
            i += 1
        sessions.append([(cmd, "\n".join(out)) for cmd, out in steps])
    return sessions


def _cli_fixtures(where: Path) -> None:
    """The files docs/cli.md's examples use: horse.png, scene.png and names.txt."""
    import numpy as np
    from PIL import Image

    horse = np.zeros((480, 640), dtype=np.uint8)
    horse[120:360, 200:440] = 255
    Image.fromarray(horse).save(where / "horse.png")
    scene = np.zeros((300, 400), dtype=np.uint8)
    scene[:100] = 3
    scene[200:] = 7
    scene[150:250, 150:250] = 12
    scene[:20, :20] = 255
    Image.fromarray(scene).save(where / "scene.png")
    (where / "names.txt").write_text("3 sky\n7 grass\n12 cow\n", encoding="utf-8")


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_cli_page_transcripts_are_real(tmp_path):
    """Every ``console`` session on docs/cli.md (but ``--help`` ones, which depend on the
    terminal and on commands added later) replays in bash with the output shown."""
    _cli_fixtures(tmp_path)
    sessions = _console_sessions((DOCS / "cli.md").read_text(encoding="utf-8"))
    replayed = 0
    for steps in sessions:
        if not steps or any("--help" in cmd for cmd, _ in steps):
            continue
        script = [f'maskcodec() {{ "{sys.executable}" -m maskcodec "$@"; }}']
        for k, (cmd, _) in enumerate(steps):
            script.append(f"__rc=$?; echo '@@step {k}'; (exit $__rc)")  # keep $? for `echo $?`
            script.append(f"{cmd} 2>&1")
        proc = subprocess.run(
            ["bash", "-c", "\n".join(script)], cwd=tmp_path, capture_output=True, text=True,
            timeout=300, env={**os.environ, "COLUMNS": "100"},
        )
        outputs = proc.stdout.split("@@step ")[1:]
        assert len(outputs) == len(steps), proc.stderr
        for (cmd, expected), got in zip(steps, outputs):
            got = got.split("\n", 1)[1] if "\n" in got else ""
            assert _normalise(got) == _normalise(expected), f"docs/cli.md: `{cmd}` printed:\n{got}"
        replayed += 1
    assert replayed >= 4


def test_every_cli_command_is_on_the_cli_page():
    """A `## name` section or a row of the 'Other commands' table for each subcommand."""
    import argparse

    from maskcodec.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    page = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [
        name for name in sub.choices
        if not re.search(rf"^## {name}\s*$|^\| `{name}` \|", page, re.MULTILINE)
    ]
    assert not missing, f"docs/cli.md does not mention the command(s) {missing}"


def test_extractor_pairs_code_with_its_output():
    doc = (
        "intro\n```python\nprint(1)\n```\n\n```text\n1\n```\n"
        "```python\nx = 2\n```\nprose\n```text\nnot output\n```\n"
        "```console\n$ ls\n```\n"
    )
    assert python_examples(doc) == [("print(1)\n", "1\n", 2), ("x = 2\n", None, 9)]


def test_a_wrong_output_block_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```python\nprint(6 * 7)\n```\n```text\n41\n```\n", encoding="utf-8")
    with pytest.raises(AssertionError, match="printed output differs"):
        run_examples(page)
    page.write_text("```python\nprint(6 * 7)\n```\n```text\n42\n```\n", encoding="utf-8")
    assert run_examples(page) == 1


def test_every_public_name_has_an_api_entry():
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    entries = set(re.findall(r"^::: maskcodec\.([A-Za-z_][A-Za-z0-9_.]*)\s*$", api, re.MULTILINE))
    missing = [
        name for name in maskcodec.__all__ if name != "__version__" and name not in entries
    ]
    assert not missing, f"docs/api.md lacks '::: maskcodec.NAME' entries for {missing}"
    assert "maskcodec.__version__" in api


def _resolve(path: str) -> object:
    """Import the longest module prefix of a dotted path, then follow attributes."""
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for attr in parts[i:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


def test_api_entries_name_real_objects():
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    paths = re.findall(r"^::: (maskcodec[A-Za-z0-9_.]*)\s*$", api, re.MULTILINE)
    assert paths
    for path in paths:
        try:
            _resolve(path)
        except (ImportError, AttributeError) as exc:
            raise AssertionError(f"docs/api.md documents {path}, which does not exist") from exc


def test_docs_pages_are_all_in_the_nav():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = set(re.findall(r"^\s*- [^:\n]+: ([\w/.-]+\.md)\s*$", config, re.MULTILINE))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if "_ext" not in p.parts}
    assert pages <= nav, f"pages missing from the mkdocs nav: {sorted(pages - nav)}"
    for page in ("index.md", "quickstart.md", "format.md", "cli.md", "api.md"):
        assert page in nav


def test_readme_commands_exist():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        assert f"bash {script}" in readme
        assert (ROOT / script).is_file()
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "bash scripts/test.sh" in ci  # CI runs exactly the README's test command


def test_format_page_grammar_matches_the_parser_docstring():
    """The EBNF on docs/format.md and in maskcodec._parser list the same productions."""
    from maskcodec import _parser

    page = (DOCS / "format.md").read_text(encoding="utf-8")
    ebnf = next(code for lang, code, _, _ in fenced_blocks(page) if lang == "ebnf")

    def rules(text: str) -> dict[str, str]:
        found = {}
        for m in re.finditer(r"^\s*(\w+)\s+=\s+(.*?);", text, re.MULTILINE):
            found[m.group(1)] = " ".join(m.group(2).replace("\\\\", "\\").split())
        return found

    doc_rules, code_rules = rules(ebnf), rules(_parser.__doc__)
    # The page adds the document rule and spells out `nonzero`; the rest must agree word for word.
    for name in ("answer", "rrle_body", "row", "irle_body", "full_body", "run", "count", "label", "edge"):
        assert doc_rules[name] == code_rules[name], name


def test_every_repair_kind_is_specified():
    """Each kind the Repair docstring lists has a row (or a mention) on docs/format.md."""
    kinds = re.findall(r"``([a-z_]+)``", maskcodec.Repair.__doc__)
    assert {"no_block", "short_row", "unterminated", "reference_error"} <= set(kinds)
    page = (DOCS / "format.md").read_text(encoding="utf-8")
    missing = [kind for kind in kinds if kind != "kind" and f"`{kind}`" not in page]
    assert not missing, f"docs/format.md does not specify repair kinds {missing}"


@pytest.mark.parametrize("side", [16, 24, 32])
def test_fast_parser_counts_past_255_cells(side):
    """Regression: with NUMBA_DISABLE_JIT=1 the R-RLE fast path summed counts in uint8 and
    decoded the quickstart's 24x24 and 32x32 answers to garbage (found replaying docs/cli.md)."""
    import numpy as np

    mask = np.zeros((480, 640), dtype=bool)
    mask[120:360, 200:440] = True
    text = maskcodec.encode_mask(mask, "white horse", grid=side)
    grid = maskcodec.from_text(text)
    assert np.array_equal(grid.foreground, maskcodec.quantize(mask, grid=side))


def test_demo_prints_text_iou_and_length(capsys):
    from maskcodec.cli import main

    assert main(["demo", "--index", "0"]) == 0
    out = capsys.readouterr().out
    assert "category 18 (dog)" in out
    text = out[out.index("<seg>") : out.index("</seg>") + len("</seg>")]
    assert maskcodec.from_text(text).labels == ("others", "dog")
    assert f"characters: {len(text)}" in out
    iou = float(re.search(r"IoU of the decoded mask against the original: ([0-9.]+)", out).group(1))
    assert 0.5 < iou <= 1.0
