"""Subcommands ``encode``, ``decode``, ``validate`` and ``demo``."""

from __future__ import annotations

import argparse
import os
import sys

#: The foreground label ``maskcodec encode`` writes for a binary mask when no --label is given.
DEFAULT_LABEL = "object"

# One mask of at most this many grid cells, or an answer of at most this many characters, runs the
# kernels as plain Python (MASKCODEC_JIT=0): about a millisecond there, against about 0.5 s for
# importing numba and loading its cached kernels (2 s or more to compile them on an empty cache).
_PLAIN_CELLS = 64 * 64
_PLAIN_CHARS = 100_000


#: Set by ``cli.main`` when it runs as the whole process (not called from Python code).
WHOLE_PROCESS = False


def _plain_kernels(small: bool) -> None:
    """Run this process's kernels as plain Python when the work is small and numba is not loaded."""
    if small and WHOLE_PROCESS and "maskcodec._kernels" not in sys.modules:
        os.environ.setdefault("MASKCODEC_JIT", "0")  # an explicit MASKCODEC_JIT=1 wins


def _read_text(arg: str) -> str:
    """TEXT|-: the text itself, ``-`` for stdin, or ``@FILE`` for a file.

    Text that is the name of an existing file (and holds no ``<seg>``) is refused with a hint
    to write ``@FILE``: decoding the file *name* as an answer would give an all-background mask.
    """
    if arg == "-":
        return sys.stdin.read()
    if arg.startswith("@"):
        try:
            with open(arg[1:], encoding="utf-8") as fh:
                return fh.read()
        except UnicodeDecodeError as exc:
            from .cli import CLIError

            raise CLIError(f"{arg[1:]}: not UTF-8 text (byte {exc.object[exc.start:exc.start + 1]!r} "
                           f"at offset {exc.start})") from None
    if "<seg>" not in arg and "\n" not in arg and os.path.isfile(arg):
        from .cli import CLIError

        raise CLIError(f"{arg!r} is a file, not answer text; write @{arg} to read the file")
    return arg


def _grid(values: list[int] | None):
    if values is None:
        return None
    return values[0] if len(values) == 1 else (values[0], values[1])


def _size(text: str) -> tuple[int, int]:
    """WIDTHxHEIGHT -> (height, width)."""
    from .cli import CLIError

    parts = text.lower().split("x")
    # isascii: str.isdigit also takes "²" and other digits that int() refuses
    if len(parts) != 2 or not all(p.isascii() and p.isdigit() and int(p) > 0 for p in parts):
        raise CLIError(f"--size must be WIDTHxHEIGHT with positive integers, got {text!r}")
    return int(parts[1]), int(parts[0])


def _load_mask(path: str):
    """A mask PNG as an array: one channel, or RGB(A) whose colour channels are equal."""
    import numpy as np

    from .text import _coerce_input

    if not os.path.isfile(path):
        raise FileNotFoundError(2, "No such file or directory", path)
    return np.asarray(_coerce_input(path))


def _read_names(path: str) -> dict[int, str]:
    """A class-name file: one name per line (line i names id i), or 'ID NAME' / 'ID: NAME' lines.

    Blank lines and lines starting with '#' are skipped; ``name, synonym`` keeps the first name.
    """
    names: dict[int, str] = {}
    with open(path, encoding="utf-8") as fh:
        lines = [ln.rstrip("\n") for ln in fh]
    explicit = all(
        ln.split(None, 1)[0].rstrip(":").isascii() and ln.split(None, 1)[0].rstrip(":").isdigit()
        for ln in lines if ln.strip() and not ln.startswith("#")
    )
    i = 0
    for ln in lines:
        if not ln.strip() or ln.startswith("#"):
            continue
        if explicit:
            key, _, name = ln.strip().partition(" ")
            idx = int(key.rstrip(":"))
        else:
            idx, name = i, ln
            i += 1
        names[idx] = name.split(",")[0].strip()
    return names


def cmd_encode(args) -> int:
    from . import encode_mask
    from .cli import CLIError

    from ._errors import InputError

    mask = _load_mask(args.mask)
    if args.label is not None and args.labels is not None:
        raise CLIError("give one of --label (binary mask) or --labels FILE (label map), not both")
    labels = _read_names(args.labels) if args.labels is not None else args.label or DEFAULT_LABEL
    grid = 16 if args.grid is None else _grid(args.grid)
    rows, cols = (grid, grid) if isinstance(grid, int) else grid
    _plain_kernels(args.method == "nearest" and not args.nonempty and rows * cols <= _PLAIN_CELLS)
    try:
        text = _encode(encode_mask, mask, labels, args)
    except InputError as exc:
        if args.labels is None and "is a label map" in str(exc):
            raise CLIError(f"{args.mask}: {exc}; on the command line: --labels NAMES.txt") from None
        raise
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def _encode(encode_mask, mask, labels, args) -> str:
    return encode_mask(
        mask,
        labels,
        grid=16 if args.grid is None else _grid(args.grid),
        method=args.method,
        format=args.format,
        envelope=not args.no_envelope,
        background=args.background,
        nonempty=args.nonempty,
    )


def cmd_decode(args) -> int:
    import numpy as np
    from PIL import Image

    from . import parse

    text = _read_text(args.text)
    height, width = _size(args.size)
    via = None if args.via is None else _size(args.via)
    table = None
    if args.class_table is not None:
        with open(args.class_table, encoding="utf-8") as fh:  # as the scripts read it: line.strip()
            table = [line.strip() for line in fh]
    _plain_kernels(len(text) <= _PLAIN_CHARS)
    result = parse(text, grid=_grid(args.grid), mode=args.mode, format=args.format,
                   envelope=not args.no_envelope, background=args.background, class_table=table)
    for rep in result.repairs:
        print(f"repair: line {rep.line}, column {rep.column}: {rep.kind}: {rep.message}", file=sys.stderr)
    if args.ids:
        ids = result.grid.render((height, width), align=args.align, via=via)
        Image.fromarray(ids.astype(np.uint8 if len(result.grid.labels) <= 256 else np.int32)).save(args.output)
        for i, lab in enumerate(result.grid.labels):
            print(f"{i}\t{lab}")
    else:
        mask = result.grid.mask((height, width), align=args.align, via=via)
        Image.fromarray(mask.astype(np.uint8) * 255).save(args.output)
    return 0


def _records_of(path: str, text: str):
    """``(where, answer)`` for each record of a JSONL file or a JSON array (LLaVA) of records."""
    import json

    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            yield f"{path}: line {exc.lineno}", exc
            return
        for i, rec in enumerate(items):
            yield f"{path}: record {i}", rec
        return
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield f"{path}:{n}", json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"{path}:{n}", exc


def _validate_records(path: str, text: str, args) -> int:
    from . import MaskcodecError, parse
    from .datasets.writers import answer_of

    good = bad = 0
    for where, rec in _records_of(path, text):
        try:
            if isinstance(rec, Exception):
                raise MaskcodecError(f"not JSON: {rec}")
            answer = answer_of(rec)[2]
            g = parse(answer, grid=_grid(args.grid), mode="strict", format=args.format,
                      envelope=not args.no_envelope, background=args.background).grid
        except (MaskcodecError, KeyError, StopIteration, TypeError, AttributeError) as exc:
            bad += 1
            reason = exc if isinstance(exc, MaskcodecError) else f"not a conversation record ({exc!r})"
            print(f"invalid: {where}: {reason}", file=sys.stderr)
            continue
        good += 1
        if args.verbose:
            print(f"valid: {where}: {g.rows}x{g.cols} grid, labels {list(g.labels)}")
    print(f"{good} valid, {bad} invalid record(s) in {path}")
    return 1 if bad or not good else 0


def cmd_validate(args) -> int:
    from . import ParseError, parse

    text = _read_text(args.text)
    _plain_kernels(len(text) <= _PLAIN_CHARS)
    if args.text.startswith("@") and (args.records or args.text.endswith((".jsonl", ".json"))):
        return _validate_records(args.text[1:], text, args)
    try:
        result = parse(text, grid=_grid(args.grid), mode="strict", format=args.format,
                       envelope=not args.no_envelope, background=args.background)
    except ParseError as exc:
        print(f"invalid: {exc}", file=sys.stderr)
        return 1
    g = result.grid
    print(f"valid: {g.rows}x{g.cols} grid, labels {list(g.labels)}")
    return 0


# COCO category names by id (1..90; "" marks the ten ids COCO leaves unused).
_COCO_NAMES = ("," + ",".join((
    "person,bicycle,car,motorcycle,airplane,bus,train,truck,boat,traffic light,fire hydrant,,stop sign",
    "parking meter,bench,bird,cat,dog,horse,sheep,cow,elephant,bear,zebra,giraffe,,backpack,umbrella,,",
    "handbag,tie,suitcase,frisbee,skis,snowboard,sports ball,kite,baseball bat,baseball glove",
    "skateboard,surfboard,tennis racket,bottle,,wine glass,cup,fork,knife,spoon,bowl,banana,apple",
    "sandwich,orange,broccoli,carrot,hot dog,pizza,donut,cake,chair,couch,potted plant,bed,,dining table",
    ",,toilet,,tv,laptop,mouse,remote,keyboard,cell phone,microwave,oven,toaster,sink,refrigerator,",
    "book,clock,vase,scissors,teddy bear,hair drier,toothbrush",
))).split(",")


def cmd_demo(args) -> int:
    """Encode a bundled real COCO mask, print the text, decode it back, print IoU and length."""
    import json
    from importlib import resources

    import numpy as np
    from pycocotools import mask as mask_utils

    from . import decode_mask, encode_mask

    data = resources.files("maskcodec").joinpath("data/coco_sample.json").read_text()
    anns = json.loads(data)
    if not 0 <= args.index < len(anns):
        from .cli import CLIError

        raise CLIError(f"--index {args.index} is out of range: the bundled masks are 0 to {len(anns) - 1}")
    ann = anns[args.index]
    mask = mask_utils.decode(ann["segmentation"]).astype(bool)
    h, w = mask.shape
    cat = ann["category_id"]
    name = _COCO_NAMES[cat] if 0 < cat < len(_COCO_NAMES) and _COCO_NAMES[cat] else f"class {cat}"
    label = args.label if args.label is not None else name
    text = encode_mask(mask, label, grid=args.grid, method=args.method)
    back = decode_mask(text, size=(h, w))
    inter = np.logical_and(mask, back).sum()
    union = np.logical_or(mask, back).sum()
    iou = inter / union if union else 1.0
    print(f"COCO val2014 image {ann['image_id']}, category {cat} ({name}): "
          f"{w}x{h} mask, {int(mask.sum())} foreground pixels")
    print(f"answer ({args.grid}x{args.grid}, {args.method}):")
    print(text)
    print(f"characters: {len(text)}")
    print(f"IoU of the decoded mask against the original: {iou:.4f}")
    return 0


def cmd_warmup(args) -> int:
    """Compile every kernel the common entry points use into numba's on-disk cache."""
    import time

    import numpy as np

    from . import coco, decode_mask, decode_masks, encode_mask, encode_masks, parse, quantize, render

    t0 = time.perf_counter()
    from . import _kernels

    if _kernels.JIT_DISABLED:
        print("warmup: the kernels run as plain Python here (MASKCODEC_JIT=0 or NUMBA_DISABLE_JIT=1); "
              "nothing to compile")
        return 0
    t_import = time.perf_counter() - t0
    m = np.zeros((24, 20), dtype=np.uint8)
    m[3:15, 4:12] = 1
    # the layouts masks arrive in: C-ordered bool and uint8, Fortran-ordered uint8 (pycocotools)
    for mask in (m.astype(bool), m, np.asfortranarray(m)):
        text = encode_mask(mask, "dog", grid=4)
        for method in ("area", "coverage"):
            encode_mask(mask, "dog", grid=4, method=method)
        encode_mask(mask, "dog", grid=4, nonempty=True)
        encode_mask(mask * 2, {2: "cat"}, grid=4)
        encode_masks([mask], "dog", grid=4)
        encode_masks(mask[None], "dog", grid=4)
        quantize(mask, grid=4, method="area")
    for fmt in ("irle", "full"):
        parse(encode_mask(m, "dog", grid=4, format=fmt), format=fmt, grid=4)
    for mode in ("strict", "repair"):
        decode_mask(text, size=(7, 9), mode=mode)
        parse(text, mode=mode)
        decode_masks([text], size=(7, 9), mode=mode)
        decode_masks([text], size=[(7, 9)], mode=mode)
    for dtype in (np.uint8, np.int64, bool):
        render(m.astype(dtype), (30, 31))
    rle = coco.mask_to_rle(m)
    coco.rle_to_mask(rle)
    coco.rle_to_grid(rle, grid=4, method="area")
    coco.text_to_rle(text, size=(24, 20))
    print(f"warmup: numba loaded in {t_import:.2f} s, kernels compiled or loaded in "
          f"{time.perf_counter() - t0 - t_import:.2f} s; cached next to maskcodec/_kernels.py "
          "(or in NUMBA_CACHE_DIR)")
    return 0


def _common_text_options(p):
    p.add_argument("--format", choices=("rrle", "irle", "full"), default="rrle")
    p.add_argument("--no-envelope", action="store_true", help="the text has no <seg>...</seg>")
    p.add_argument("--background", default="others", help="background label (default: others)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode a mask PNG as answer text")
    p.add_argument("mask", help="mask PNG (binary, or a label map with --labels)")
    p.add_argument("--grid", type=int, nargs="+", metavar="N", default=None,
                   help="grid size: N, or ROWS COLS (default 16)")
    p.add_argument("--label", help=f"foreground label of a binary mask (default: {DEFAULT_LABEL!r})")
    p.add_argument("--labels", metavar="NAMES.txt", help="class names of a label map, one per line")
    p.add_argument("--method", choices=("nearest", "area", "coverage"), default="nearest")
    p.add_argument("--nonempty", action="store_true", help="never lose a small object entirely")
    _common_text_options(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="decode answer text to a mask PNG")
    p.add_argument("text", help="the text, '-' for stdin, or @FILE")
    p.add_argument("--size", required=True, metavar="WIDTHxHEIGHT")
    p.add_argument("--grid", type=int, nargs="+", metavar="N", default=None)
    p.add_argument("--mode", choices=("strict", "repair", "text4seg"), default="repair")
    p.add_argument("--ids", action="store_true", help="write label ids (and print the id table) instead of 0/255")
    p.add_argument("--align", choices=("corner", "center", "torch"), default="corner",
                   help="rendering: corner (default), center, or torch's exact index arithmetic")
    p.add_argument("--via", metavar="WIDTHxHEIGHT", default=None,
                   help="render in two steps through this size (336x336: the open-vocabulary script)")
    p.add_argument("--class-table", metavar="FILE", default=None,
                   help="--mode text4seg: the semantic class file; ids are its line indices")
    p.add_argument("-o", "--output", required=True, help="output PNG")
    _common_text_options(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("validate", help="check answer text strictly (exit 0, or 1 with a positioned message)")
    p.add_argument("text", help="the text, '-' for stdin, or @FILE; @FILE.jsonl / @FILE.json (an array) "
                   "checks every conversation record's answer")
    p.add_argument("--grid", type=int, nargs="+", metavar="N", default=None)
    p.add_argument("--records", action="store_true",
                   help="read @FILE as conversation records whatever its extension")
    p.add_argument("-v", "--verbose", action="store_true", help="with records: print each valid one too")
    _common_text_options(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("demo", help="encode and decode a bundled real COCO mask")
    p.add_argument("--index", type=int, default=3, help="which bundled mask (0-23, default 3)")
    p.add_argument("--grid", type=int, default=16)
    p.add_argument("--label", default=None, help="foreground label (default: the COCO category name)")
    p.add_argument("--method", choices=("nearest", "area", "coverage"), default="nearest")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("warmup", help="compile the numba kernels into the on-disk cache (run once after installing)")
    p.set_defaults(func=cmd_warmup)
