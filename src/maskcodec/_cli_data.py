"""Subcommands ``convert`` (datasets -> conversation JSONL) and ``show`` (a sample -> PNG)."""

from __future__ import annotations

import argparse
import sys


def cmd_convert(args) -> int:
    from .cli import CLIError
    from .datasets import check_images, convert, open_source

    if len(args.grid) not in (1, 2):
        raise CLIError(f"--grid takes N or ROWS COLS, got {len(args.grid)} numbers")
    on_error = "raise" if args.fatal else "skip"
    source = open_source(
        args.src,
        kind=args.kind,
        dataset=args.dataset,
        split_by=args.split_by,
        split=args.split,
        names=args.names,
        image_root=args.image_root,
        image_ext=args.image_ext,
        instance_dir=args.instances,
        group=args.group,
        instances=args.instance_labels,
        on_error=on_error,
        ignore_index=None if args.ignore_index < 0 else args.ignore_index,
        first_id=args.names_start,
        image_name=args.image_name,
    )
    if args.check_images is not None:
        source = check_images(source, args.check_images, on_error=on_error)
    for p in source.problems:
        print(f"maskcodec convert: skipped {p}", file=sys.stderr)
    if len(source) == 0:
        raise CLIError(f"{args.src}: no samples to convert")
    grid = args.grid[0] if len(args.grid) == 1 else (args.grid[0], args.grid[1])
    summary = convert(
        source,
        args.output,
        to=args.to,
        grid=grid,
        method=args.method,
        format=args.format,
        nonempty=args.nonempty,
        seed=args.seed,
        templates=args.templates,
        workers=args.workers,
        chunk_size=args.chunk_size,
        resume=args.resume,
        on_error=on_error,
        progress=False if args.quiet else None,
        source_name=source.name,
        layout=args.layout,
        dataset_info=args.dataset_info,
    )
    print(summary.to_text(), file=sys.stderr)
    if args.hf_dataset:
        from .datasets.scale import to_hf_dataset

        embed = args.embed_images is not None
        ds = to_hf_dataset(args.output, image_root=args.embed_images or "", embed_images=embed)
        ds.save_to_disk(args.hf_dataset)
        print(f"saved a Hugging Face dataset of {len(ds)} records (id, messages, images) to "
              f"{args.hf_dataset}", file=sys.stderr)
    return 0


def cmd_show(args) -> int:
    from .show import show_cli

    return show_cli(args)


# maskcodec.datasets.FORMATS, repeated so that building the parser imports nothing heavy
# (tests/test_convert.py checks that the two agree).
FORMATS = ("llava", "sharegpt", "ms-swift", "swift", "hf-messages")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a segmentation dataset to conversation JSONL for MLLM training",
        description="Read COCO / refCOCO(+/g) / gRefCOCO / semantic label folders and write "
        "LLaVA, ShareGPT, ms-swift or Hugging Face chat JSONL with Text4Seg answers.",
    )
    p.add_argument("src", help="COCO instances JSON or results list, REFER/gRefCOCO folder, "
                   "or folder of label PNGs")
    p.add_argument("--to", required=True, choices=FORMATS, help="record format")
    p.add_argument("-o", "--output", required=True,
                   help="output file, written atomically: .jsonl (one record a line) or .json (one array, "
                   "what LLaVA's train.py reads)")
    p.add_argument("--layout", choices=("jsonl", "json"), default=None,
                   help="one record per line or one JSON array (default: from the output's extension)")
    p.add_argument("--dataset-info", dest="dataset_info", action="store_true", default=None,
                   help="add the output to LLaMA-Factory's dataset_info.json beside it "
                   "(default for --to sharegpt / ms-swift)")
    p.add_argument("--no-dataset-info", dest="dataset_info", action="store_false",
                   help="do not write dataset_info.json")
    p.add_argument("--hf-dataset", metavar="DIR",
                   help="also save a Hugging Face dataset with structured messages and images columns "
                   "(datasets' save_to_disk; load_from_disk / push_to_hub it)")
    p.add_argument("--embed-images", metavar="ROOT", nargs="?", const="",
                   help="with --hf-dataset: embed the image files (paths under ROOT) as datasets.Image")
    p.add_argument(
        "--grid", type=int, nargs="+", metavar="N", default=[16], help="N or ROWS COLS (default 16)"
    )
    p.add_argument("--method", choices=("nearest", "area", "coverage"), default="nearest")
    p.add_argument("--format", choices=("rrle", "irle", "full"), default="rrle")
    p.add_argument("--nonempty", action="store_true", help="never let a small object vanish from the grid")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--chunk-size", type=int, default=256, help="samples per work unit (default 256)")
    p.add_argument("--templates", metavar="FILE.json", help="question/answer templates (see docs)")
    p.add_argument("--seed", type=int, default=0, help="seed of the template choice (default 0)")
    p.add_argument("--resume", action="store_true", help="carry on from OUTPUT.partial of an interrupted run")
    p.add_argument("--fatal", action="store_true", help="stop at the first bad file instead of skipping it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    g = p.add_argument_group("source layout")
    g.add_argument("--kind", choices=("coco", "refer", "grefcoco", "semantic"), help="default: detected")
    g.add_argument("--dataset", default="refcoco", help="REFER dataset folder: refcoco, refcoco+, refcocog")
    g.add_argument("--split-by", default="unc", help="the name in refs(NAME).p / grefs(NAME).json")
    g.add_argument("--split", help="keep only this split (train, val, testA, ...)")
    g.add_argument("--names", metavar="FILE", help="class-name file of a semantic label folder")
    g.add_argument(
        "--names-start",
        type=int,
        default=0,
        metavar="ID",
        help="id of the first name in a one-name-per-line file (1 for ADE20K's 150 names)",
    )
    g.add_argument(
        "--ignore-index",
        type=int,
        default=255,
        metavar="V",
        help="label value that becomes background (default 255; -1 for none)",
    )
    g.add_argument("--instances", metavar="DIR", help="instance-id PNG folder: labels become 'person 1', ...")
    g.add_argument(
        "--group",
        choices=("object", "category", "image"),
        default="object",
        help="COCO: a sample per object, per (image, category) with objects merged, "
        "or per image (all objects in one multi-class grid)",
    )
    g.add_argument(
        "--instance-labels",
        action="store_true",
        help="COCO with --group image: label objects 'person 1', 'person 2', ...",
    )
    g.add_argument("--image-root", default="", help="prefix of image paths in the output")
    g.add_argument(
        "--check-images",
        metavar="DIR",
        nargs="?",
        const="",
        help="skip (or with --fatal, stop at) samples whose image is missing under DIR",
    )
    g.add_argument("--image-ext", default=".jpg", help="semantic folders: image extension (default .jpg)")
    g.add_argument("--image-name", default="{image_id:012d}.jpg", metavar="FORMAT",
                   help="COCO results lists (which name no files): image file name from the image id "
                   "(default {image_id:012d}.jpg, COCO 2017; COCO_val2014_{image_id:012d}.jpg for 2014)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("show", help="draw a sample's decoded grid over its image, with the text, as a PNG")
    p.add_argument(
        "sample", help="a JSONL line, @FILE (first line, or --line N), or an image path with --answer"
    )
    p.add_argument("--answer", help="answer text (or @FILE) when SAMPLE is an image")
    p.add_argument("--line", type=int, default=1, help="which line of @FILE (1-based)")
    p.add_argument("--image-root", default="", help="folder the record's image path is relative to")
    p.add_argument("--size", metavar="WIDTHxHEIGHT", help="canvas size when the image is missing")
    p.add_argument("-o", "--output", required=True, help="output PNG")
    p.set_defaults(func=cmd_show)
