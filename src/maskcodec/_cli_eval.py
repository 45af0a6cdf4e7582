"""Subcommand ``eval``: score a JSONL of model answers against targets (see maskcodec.metrics.evaluate)."""

from __future__ import annotations

import argparse
import json
import math
import sys


def _fmt(v) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.2f}"


def table(summary: dict) -> str:
    """The summary's metrics as a small text table, one column per pipeline (percent)."""
    keys = (("cIoU", "ciou"), ("gIoU", "giou"), ("N-acc", "n_acc"), ("Acc@0.5", "acc50"), ("mIoU", "miou"))
    if summary["semantic"]:
        keys = keys[-1:]
    ref = summary["text4seg"]
    lines = [f"{'':<10}{'text4seg':>10}{'maskcodec':>11}"]
    for name, key in keys:
        lines.append(f"{name:<10}{_fmt(None if ref is None else ref[key]):>10}{_fmt(summary['maskcodec'][key]):>11}")
    tail = f"scored {summary['scored']}, skipped {summary['skipped']}"
    if summary["parse_failures"]:
        tail += f", {summary['parse_failures']} answers did not parse (scored as empty)"
    if ref is None:
        tail += f"; the reference has no decoder for {summary['format']!r}"
    lines.append(tail)
    return "\n".join(lines)


def _cmd_eval(args: argparse.Namespace) -> int:
    from ._errors import InputError
    from .cli import CLIError
    from .metrics import evaluate

    if args.grid is not None and len(args.grid) > 2:
        raise CLIError(f"--grid takes N or ROWS COLS, got {len(args.grid)} numbers")
    grid = None if args.grid is None else (args.grid[0] if len(args.grid) == 1 else tuple(args.grid))
    try:
        summary = evaluate(
            args.answers, args.targets, grid=grid, format=args.format, class_table=args.class_table,
            image_root=args.image_root,
            samples_path=args.samples, summary_path=args.summary, progress=not args.no_progress, fatal=args.fatal,
        )
    except InputError as exc:
        raise CLIError(str(exc)) from None
    for err in summary["errors"]:
        print(f"maskcodec eval: skipped line {err['line']}: {err['error']}", file=sys.stderr)
    if args.json:
        from ._evaluate import json_safe

        print(json.dumps(json_safe(summary), indent=1))
    else:
        print(table(summary))
    return 0


def register(sub) -> None:
    from ._evaluate import FORMATS

    p = sub.add_parser(
        "eval",
        help="score answers against targets, the Text4Seg scripts' way and maskcodec's",
        description=(
            "Score a JSONL of answers (text under answer/text/output/prediction/response) against their targets: "
            "a 'mask' PNG or a COCO 'segmentation' in the record, or the record with the same id in --targets "
            "(masks, segmentations, or the converted dataset's own records).  Reports both the Text4Seg scripts' "
            "numbers (text4seg decoding, torch rendering, float32 metrics) and maskcodec's (repair decoding, "
            "exact metrics).  A record that cannot be scored is reported with its line number and skipped "
            "(or stops the run with --fatal)."
        ),
    )
    p.add_argument("answers", help="JSONL of model answers")
    p.add_argument("--targets", help="JSONL of target records, matched by id")
    p.add_argument("--grid", type=int, nargs="+", help="N or ROWS COLS (default: inferred from each answer)")
    p.add_argument("--format", default="rrle", choices=list(FORMATS),
                   help="rrle, irle, full: both pipelines; the others: maskcodec's only (default: rrle)")
    p.add_argument("--class-table", metavar="FILE",
                   help="semantic segmentation: the class file (one name per line); targets are label-map PNGs")
    p.add_argument("--image-root", help="folder for relative paths (default: the folder of each JSONL)")
    p.add_argument("--samples", help="write one JSON line per answer here")
    p.add_argument("--summary", help="write the summary JSON here")
    p.add_argument("--fatal", action="store_true", help="stop at the first record that cannot be scored")
    p.add_argument("--json", action="store_true", help="print the summary as JSON instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_eval)
