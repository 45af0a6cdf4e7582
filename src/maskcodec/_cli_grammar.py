"""Subcommand ``grammar``: print the grammar of a well-formed answer (GBNF, Lark or regex)."""

from __future__ import annotations

import argparse
import sys


def _prefix(args):
    if args.templates:
        from .datasets.templates import load_templates

        if args.prefix not in (None, "templates"):
            from .cli import CLIError

            raise CLIError("--templates goes with --prefix templates")
        return load_templates(args.templates)
    if args.prefix is None:
        return None
    return args.prefix


def _cmd_grammar(args: argparse.Namespace) -> int:
    from .cli import CLIError
    from .grammar import export_grammar

    if len(args.grid) > 2:
        raise CLIError(f"--grid takes N or ROWS COLS, got {len(args.grid)} numbers")
    if args.any_label and args.labels:
        raise CLIError("--any-label and --labels exclude each other")
    grid = args.grid[0] if len(args.grid) == 1 else (args.grid[0], args.grid[1])
    labels = None if (args.any_label or not args.labels) else list(args.labels)
    text = export_grammar(
        format=args.format,
        grid=grid,
        labels=labels,
        background=args.background,
        envelope=not args.no_envelope,
        canonical=args.canonical,
        form=args.form,
        max_size=args.max_size,
        prefix=_prefix(args),
    )
    if args.output and args.output != "-":
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text if text.endswith("\n") else text + "\n")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def register(sub) -> None:
    p = sub.add_parser(
        "grammar",
        help="print the grammar of a well-formed answer for constrained decoding",
        description=(
            "Print the exact language of well-formed answers for one format, grid and label set, "
            "as GBNF (llama.cpp, xgrammar), Lark, or a regex (small grids only). Without --labels "
            "(or with --any-label) any safe label is allowed; the background is always allowed."
        ),
    )
    p.add_argument("--format", choices=["rrle", "irle", "full"], default="rrle")
    p.add_argument("--grid", type=int, nargs="+", default=[16], metavar="N",
                   help="N for N x N, or ROWS COLS (default 16)")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="the allowed foreground labels")
    p.add_argument("--any-label", action="store_true", help="allow any safe label (the default without --labels)")
    p.add_argument("--background", default="others")
    p.add_argument("--form", choices=["gbnf", "lark", "regex"], default="gbnf")
    p.add_argument("--canonical", action="store_true", help="adjacent runs must carry different labels")
    p.add_argument("--no-envelope", action="store_true", help="leave out <seg> and </seg>")
    p.add_argument("--prefix", choices=["templates", "any", "none"], default=None,
                   help="what comes before <seg>: the answer templates that 'maskcodec convert' trains "
                   "(default with the envelope), any text without <seg>, or nothing")
    p.add_argument("--templates", metavar="FILE.json", help="with --prefix templates: your own templates")
    p.add_argument("--max-size", type=int, default=200_000, help="refuse grammars longer than this")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=_cmd_grammar)
