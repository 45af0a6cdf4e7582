"""Subcommand ``stats``: what each grid / format / method costs in tokens and buys in oracle IoU."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict

# COCO "area" buckets, in mask pixels: small < 32^2 <= medium < 96^2 <= large.
_BUCKETS = (("small", 0, 32 * 32), ("medium", 32 * 32, 96 * 96), ("large", 96 * 96, float("inf")))


def _Progress(total: int, enabled: bool, label: str = "stats"):
    from ._progress import Progress

    return Progress(total, enabled, label)


def _fail(message: str):
    from .cli import CLIError

    raise CLIError(message)


def _read_json(path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        _fail(f"{path}: cannot read: {exc.strerror or exc}")
    except (ValueError, UnicodeDecodeError) as exc:
        _fail(f"{path}: not valid JSON ({exc})")


def _coco_items(path: str, data, fixed_label: str | None):
    """[(segmentation, size or None, label, where)] from a COCO results list or instances dict."""
    from . import safe_label
    from ._cli_codec import _COCO_NAMES

    if isinstance(data, dict) and "annotations" in data:
        anns = data["annotations"]
        sizes = {img.get("id"): (img.get("height"), img.get("width")) for img in data.get("images") or []}
        names = {c.get("id"): c.get("name") for c in data.get("categories") or []}
    elif isinstance(data, list):
        anns, sizes, names = data, {}, {}
    else:
        _fail(f"{path}: a COCO JSON must be a results list or an instances dict with 'annotations'")
    if not isinstance(anns, list):
        _fail(f"{path}: 'annotations' must be a list")
    items = []
    for i, ann in enumerate(anns):
        where = f"{path}: annotation {i}"
        if not isinstance(ann, dict) or "segmentation" not in ann:
            _fail(f"{where} has no 'segmentation'")
        size = sizes.get(ann.get("image_id"))
        if size is not None and None in size:
            size = None
        if fixed_label is not None:
            label = fixed_label
        else:
            cat = ann.get("category_id")
            name = names.get(cat)
            if name is None and isinstance(cat, int) and 0 < cat < len(_COCO_NAMES):
                name = _COCO_NAMES[cat] or None
            label = safe_label(name) if name else "object"
        items.append((ann["segmentation"], size, label, where))
    return items


def _png_mask(path: str):
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            if len(img.getbands()) != 1:
                _fail(f"{path}: a mask image needs one channel (mode 1, L, P, I or I;16); "
                      f"got mode {img.mode}")
            arr = np.asarray(img)
    except OSError as exc:
        if isinstance(exc, UnidentifiedImageError):
            _fail(f"{path}: not a readable image (PNG mask or COCO JSON expected)")
        _fail(f"{path}: cannot read: {exc.strerror or exc}")
    return arr != 0


def _sources(paths: list[str], fixed_label: str | None):
    """(list of loaders, a note on the labels); each loader returns (mask, label)."""
    from .coco import rle_to_mask

    loaders = []
    coco = png = False
    for path in paths:
        if path.lower().endswith(".json"):
            coco = True
            for segm, size, label, where in _coco_items(path, _read_json(path), fixed_label):
                def load(segm=segm, size=size, label=label, where=where):
                    from ._errors import MaskcodecError

                    try:
                        return rle_to_mask(segm, size=size), label
                    except (MaskcodecError, TypeError) as exc:
                        _fail(f"{where}: {exc}")
                loaders.append(load)
        else:
            if not os.path.exists(path):
                _fail(f"{path}: no such file")
            png = True
            label = fixed_label or "object"
            loaders.append(lambda path=path, label=label: (_png_mask(path), label))
    if fixed_label is not None:
        note = f"label {fixed_label!r} for every mask"
    elif coco:
        note = "labels: COCO category names" + (" (PNG masks: 'object')" if png else "")
    else:
        note = "label 'object' for every mask (set one with --label)"
    return loaders, note


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def _table(title: str, rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    def line(r: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([title, line(header), *(line(r) for r in rows)])


def cmd_stats(args) -> int:
    import numpy as np

    from . import check_label
    from .metrics import IoUAccumulator
    from .quantize import as_grid
    from .text import format_code
    from .tokens import _binary_ids, _Counter, _oracle_counts, load_tokenizer

    check_label(args.background)
    if args.label is not None:
        check_label(args.label)
    grids = [as_grid(g, "--grid") for g in args.grid]
    if args.budget is not None and args.budget < 1:
        _fail(f"--budget must be a positive number of tokens, got {args.budget}")
    if not 0.0 <= args.quantile <= 1.0:
        _fail(f"--quantile must be in [0, 1], got {args.quantile}")
    formats = list(dict.fromkeys(args.format))
    methods = list(dict.fromkeys(args.method))
    if args.plot:
        try:
            import matplotlib
        except ImportError:
            _fail("--plot needs matplotlib: pip install 'maskcodec[plot]'")
        matplotlib.use("Agg")
    if args.tokenizer:
        tok = load_tokenizer(args.tokenizer)
        counter = _Counter(tok)
        how = f"tokens counted with {os.path.basename(args.tokenizer)} ({type(tok).__module__.split('.')[0]})"
    else:
        counter = _Counter(None, args.family)
        how = (f"tokens ESTIMATED for the {args.family} family (no --tokenizer given; "
               "labels' costs guessed from their characters)")
    loaders, label_note = _sources(args.masks, args.label)
    if not loaders:
        _fail("no masks found in the inputs")
    envelope = not args.no_envelope
    all_formats = list(dict.fromkeys([*formats, "full"]))
    codes = {f: format_code(f) for f in all_formats}

    tokens: dict[tuple, list[int]] = defaultdict(list)
    iou: dict[tuple, list[tuple[int, int]]] = defaultdict(list)
    lost: dict[tuple, list[bool]] = defaultdict(list)
    areas: list[int] = []
    show = args.progress if args.progress is not None else (len(loaders) >= 200 and sys.stderr.isatty())
    bar = _Progress(len(loaders), bool(show))
    try:
        for load in loaders:
            mask, label = load()
            pair = (args.background, label)
            area = int(np.count_nonzero(mask))
            areas.append(area)
            for g in grids:
                for m in methods:
                    ids = _binary_ids(mask, g, m)
                    iou[g, m].append(_oracle_counts(mask, ids))
                    lost[g, m].append(area > 0 and not ids.any())
                    for f in all_formats:
                        tokens[g, m, f].append(counter.count(ids, pair, codes[f], envelope))
            bar.step()
    finally:
        bar.close()

    areas_a = np.array(areas)
    subsets = [("all", np.ones(areas_a.size, dtype=bool))]
    for name, lo, hi in _BUCKETS:
        sel = (areas_a >= lo) & (areas_a < hi)
        if sel.any() and not sel.all():
            subsets.append((name, sel))
    src = args.masks[0] if len(args.masks) == 1 else f"{len(args.masks)} inputs"
    print(f"maskcodec stats: {len(loaders)} masks from {src}")
    print(how)
    print(f"{label_note}; background {args.background!r}; "
          f"envelope <seg>...</seg>: {'yes' if envelope else 'no'}")
    print("columns: tokens per answer (median, mean, p90, max); "
          "vs full = 1 - mean / mean of full descriptors;")
    print("oracle (quantize, render back): cIoU = sum I / sum U, mIoU = mean per-mask IoU, "
          "lost = non-empty masks with an empty grid")
    header = ["subset", "masks", "median", "mean", "p90", "max", "vs full", "cIoU", "mIoU", "lost"]
    points = []
    for g in grids:
        for f in formats:
            empty = counter.count(np.zeros(g, dtype=np.uint8), (args.background, "x"), codes[f], envelope)
            for m in methods:
                t = np.array(tokens[g, m, f])
                full = np.array(tokens[g, m, "full"])
                inter_union = np.array(iou[g, m], dtype=np.int64).reshape(-1, 2)
                gone = np.array(lost[g, m])
                rows = []
                for name, sel in subsets:
                    acc = IoUAccumulator()
                    for i_, u_, a_ in zip(inter_union[sel, 0], inter_union[sel, 1], areas_a[sel]):
                        acc.add_counts(i_, u_, target_empty=a_ == 0)
                    ts = t[sel]
                    nonempty = int(np.count_nonzero(areas_a[sel]))
                    rows.append([
                        name, str(int(sel.sum())), _fmt(float(np.median(ts))), f"{ts.mean():.1f}",
                        _fmt(float(np.percentile(ts, 90))), str(int(ts.max())),
                        f"{100 * (1 - ts.mean() / full[sel].mean()):.1f}%",
                        f"{acc.ciou:.4f}", f"{acc.giou:.4f}",
                        f"{100 * np.count_nonzero(gone[sel]) / nonempty:.1f}%" if nonempty else "-",
                    ])
                    if name == "all":
                        points.append((g, f, m, float(ts.mean()), acc.ciou, acc.giou))
                title = (f"\ngrid {g[0]}x{g[1]}, format {f}, method {m} "
                         f"(empty grid: {empty} tokens; full descriptors: "
                         f"median {_fmt(float(np.median(full)))}, mean {full.mean():.1f})")
                print(_table(title, rows, header))
    if args.budget is not None:
        _print_budget(args, grids, formats, methods, tokens, points)
    if args.plot:
        _plot(points, args.plot, how)
        print(f"\nplot written to {args.plot}")
    return 0


def _print_budget(args, grids, formats, methods, tokens, points) -> None:
    """The largest --grid candidate whose token count (at --quantile) fits --budget, per format/method."""
    import numpy as np

    share = f"{100 * args.quantile:g}% of the masks"
    print(f"\nbudget {args.budget} tokens for {share} (largest --grid candidate that fits):")
    quality = {(g, f, m): (ciou, miou) for g, f, m, _, ciou, miou in points}
    by_cells = sorted(grids, key=lambda rc: (rc[0] * rc[1], rc[0]))
    for f in formats:
        for m in methods:
            need = {g: int(np.quantile(tokens[g, m, f], args.quantile, method="higher")) for g in by_cells}
            fits = [g for g in by_cells if need[g] <= args.budget]
            if fits:
                g = fits[-1]
                ciou, miou = quality[g, f, m]
                print(f"  {f}, {m}: {g[0]}x{g[1]} ({need[g]} tokens; "
                      f"oracle cIoU {ciou:.4f}, mIoU {miou:.4f})")
            else:
                g = min(by_cells, key=lambda rc: need[rc])
                print(f"  {f}, {m}: no candidate fits (the cheapest, {g[0]}x{g[1]}, needs {need[g]} tokens)")


def _plot(points, out: str, how: str) -> None:
    import matplotlib.pyplot as plt

    from ._plots import label_points, plain_log_x

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[tuple[str, str], list] = defaultdict(list)
    for g, f, m, mean_tokens, ciou, miou in points:
        series[f, m].append((mean_tokens, miou, ciou, g))
    for (f, m), pts in series.items():
        pts.sort()
        xs = [p[0] for p in pts]
        (line,) = ax.plot(xs, [p[1] for p in pts], marker="o", label=f"{f}, {m}: mean IoU")
        ax.plot(xs, [p[2] for p in pts], marker="x", linestyle="--", color=line.get_color(),
                label=f"{f}, {m}: cIoU")
        label_points(ax, [(x, y, f"{g[0]}x{g[1]}") for x, y, _, g in pts])
    plain_log_x(ax)
    ax.set_title("tokens vs oracle IoU, one point per grid", fontsize=10)
    ax.set_xlabel("mean tokens per answer" + ("" if "counted" in how else " (estimated)"))
    ax.set_ylabel("oracle IoU (quantize, render back)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        fig.savefig(out, dpi=120)
    except OSError as exc:
        _fail(f"{out}: cannot write the plot: {exc.strerror or exc}")
    finally:
        plt.close(fig)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats",
        help="tokens and oracle IoU of each grid / format / method on a set of masks",
        description=(
            "Read PNG masks (non-zero is foreground) or COCO JSON files (results lists or instances "
            "files) and print, for each grid, format and method, the answer length in tokens and the "
            "oracle quality (quantize, render back, IoU against the mask)."
        ),
    )
    p.add_argument("masks", nargs="+", metavar="MASKS", help="PNG masks and/or COCO JSON files")
    p.add_argument("--tokenizer", metavar="FILE",
                   help="count exactly with this tokenizer: a SentencePiece .model, a tekken .json, "
                        "a tokenizer.json, or a Hugging Face folder (default: estimate)")
    p.add_argument("--family", choices=("sentencepiece", "bpe"), default="sentencepiece",
                   help="tokenizer family of the estimate without --tokenizer (default sentencepiece)")
    p.add_argument("--grid", type=int, nargs="+", default=[16], metavar="N", help="grid sides (default 16)")
    p.add_argument("--format", nargs="+", choices=("rrle", "irle", "full"), default=["rrle"],
                   help="answer formats, one table each (default rrle; full descriptors are always "
                        "counted for the 'vs full' column)")
    p.add_argument("--method", nargs="+", choices=("nearest", "area", "coverage"), default=["nearest"],
                   help="quantization methods, one table each (default nearest)")
    p.add_argument("--label", metavar="NAME",
                   help="foreground label of every mask (default: COCO category names, else 'object')")
    p.add_argument("--background", default="others", help="background label (default: others)")
    p.add_argument("--no-envelope", action="store_true", help="count the body without <seg>...</seg>")
    p.add_argument("--plot", metavar="OUT.png", help="plot tokens against oracle IoU (needs matplotlib)")
    p.add_argument("--budget", type=int, metavar="TOKENS",
                   help="also name the largest --grid candidate whose answers fit this many tokens")
    p.add_argument("--quantile", type=float, default=1.0, metavar="Q",
                   help="with --budget: the share of masks that must fit (default 1.0: all)")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="always show a progress bar on stderr (default: on a terminal, 200+ masks)")
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_stats)
