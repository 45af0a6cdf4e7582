"""Fuzz every parser, the COCO and dataset readers and the CLI (see ``targets.py`` for the rule).

Hypothesis drives it by default; atheris (coverage-guided, libFuzzer) when asked and installed::

    python fuzz/fuzz.py                          # every target, 2,000 examples each (a few minutes)
    python fuzz/fuzz.py --examples 50000 rle box # longer, on some targets
    python fuzz/fuzz.py --atheris rle -- -max_total_time=600   # libFuzzer flags after --

The hypothesis inputs are drawn from the grammar's own pieces (``<seg>``,
``| ``, `` *``, digits, newlines, ``<box>``, ``<loc_N>``, JSON brackets, huge
integers, lone surrogates, control characters...) as well as from any
Unicode; failures are shrunk and printed, and hypothesis keeps them in its
example database (``.hypothesis/``) so the next run tries them first.
Exit status 0 when every target held, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import targets  # noqa: E402

PIECES = [
    "<seg>", "</seg>", "| ", "|", " *", "*", "\n ", "\n", "\r\n", "\r", " ", "  ", "\t",
    "0", "1", "2", "7", "16", "255", "1024", "99999999", "9" * 30, "1" + "0" * 400,
    "others", "Others", "dog", "white horse", "a", "b", ".", "=", "a=", ".=", "**", "-", "0-3",
    "<box>", "</box>", "0 0 9 9", "<loc_0>", "<loc_999>", "<loc_", ";", "[", "]", ", ", "0.5", "1e400", "NaN",
    '{"size": [2, 3], "counts": ', '"counts"', '"size"', "{", "}", ":", '"', "null",
    "\ud800", "\udfff", "\x00", "\x85", "\u2028", "\ufeff", "é", "猫", "²", "٣", "x", "2x", "--size", "4x4", "--grid", "--mode",
    "repair", "strict", "text4seg", "--format", "irle", "full", "--background", "-o", "@", "-", "--help",
]


def _valid(draw_args):
    """Valid text of some format for a random grid, so the round-trip rule gets exercised."""
    import numpy as np

    import maskcodec as mc
    from maskcodec import boxes, dialects, polygon

    rows, cols, seed, form, edits = draw_args
    rng = np.random.default_rng(seed)
    labels = ("others", "dog", "white horse", "猫")[: 1 + seed % 4]
    grid = mc.LabelGrid(rng.integers(0, len(labels), (rows, cols)), labels)
    if form < 3:
        text = grid.to_text(format=("rrle", "irle", "full")[form])
    elif form < 6:
        text = dialects.to_text(grid, dialects.DIALECTS[form - 3])
    elif form == 6:
        text = boxes.to_text([boxes.BoxInstance((0, 1, 5, 7), grid), boxes.BoxInstance((2, 2, 9, 3), grid)])
    else:
        text = polygon.to_text(polygon.mask_to_polygons(grid.foreground), grid.shape)
    for pos, piece in edits:  # a few damaging edits: insert a piece, or delete a character
        pos %= len(text) + 1
        text = text[:pos] + piece + text[pos:] if piece else text[:pos] + text[pos + 1 :]
    return text


def strategy():
    from hypothesis import strategies as st

    pieces = st.lists(st.sampled_from(PIECES), max_size=40).map("".join)
    anything = st.text(st.characters(codec=None), max_size=200)
    edits = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(["", *PIECES])), max_size=3)
    valid = st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2**16), st.integers(0, 7), edits).map(_valid)
    return st.one_of(pieces, anything, st.tuples(pieces, anything, pieces).map("".join), valid)


def run_hypothesis(names, examples: int, seed: int | None) -> int:
    from hypothesis import HealthCheck, given, seed as hseed, settings

    failed = 0
    for name in names:
        t0 = time.perf_counter()

        @settings(max_examples=examples, deadline=None, database=None if seed is not None else settings().database,
                  suppress_health_check=list(HealthCheck))
        @given(text=strategy())
        def check(text):
            targets.run(name, text)

        if seed is not None:
            check = hseed(seed)(check)
        try:
            check()
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - report every target, then fail
            failed += 1
            status = f"FAILED: {exc}"
        print(f"{name:<10} {examples} examples, {time.perf_counter() - t0:.1f} s: {status}", flush=True)
    return 1 if failed else 0


def run_atheris(names, argv) -> int:
    try:
        import atheris
    except ImportError:
        print("atheris is not installed (pip install atheris; it needs a clang build on some platforms)",
              file=sys.stderr)
        return 2

    def one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        name = names[fdp.ConsumeIntInRange(0, len(names) - 1)]
        targets.run(name, fdp.ConsumeUnicodeNoSurrogates(len(data)) if fdp.ConsumeBool()
                    else data.decode("utf-8", "surrogateescape"))

    atheris.instrument_all()
    atheris.Setup([sys.argv[0], *argv], one_input)
    atheris.Fuzz()
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = argv[argv.index("--") + 1 :] if "--" in argv else []  # libFuzzer's own flags
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("targets", nargs="*", default=[],
                    help=f"targets to run (default all: {', '.join(targets.TARGETS)})")
    ap.add_argument("--examples", type=int, default=2000, help="hypothesis examples per target")
    ap.add_argument("--seed", type=int, help="a fixed hypothesis seed (and no example database)")
    ap.add_argument("--atheris", action="store_true", help="coverage-guided fuzzing with atheris")
    args = ap.parse_args(argv)
    unknown = [t for t in args.targets if t not in targets.TARGETS]
    if unknown:
        ap.error(f"unknown targets {unknown}; choose from {', '.join(targets.TARGETS)}")
    names = args.targets or list(targets.TARGETS)
    if args.atheris:
        return run_atheris(names, rest)
    return run_hypothesis(names, args.examples, args.seed)


if __name__ == "__main__":
    raise SystemExit(main())
