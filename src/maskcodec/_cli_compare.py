"""Subcommand ``compare``: tokens against oracle quality for every codec maskcodec writes.

For each mask, each *configuration* (a codec and its parameters) writes the
answer text, the text is counted with each tokenizer, and the mask the
configuration can give back at best (its oracle) is scored against the
original at full resolution.  Codecs:

* ``rrle``, ``irle``, ``full``: the Text4Seg formats, per grid and method;
* ``crle``, ``arle``, ``spans``: the compact dialects (:mod:`maskcodec.dialects`),
  same grids, so the same quality as R-RLE;
* ``boxes``, ``boxes-crle``, ``boxes-spans``: box-wise descriptors
  (:mod:`maskcodec.boxes`) with an R-RLE, ``crle`` or ``spans`` body, per inner grid;
* ``polygon-json``, ``polygon-loc``: polygon text (:mod:`maskcodec.polygon`),
  per vertex budget.

The grid codecs are scored from the grid (they are lossless by construction,
which the test suite checks); boxes and polygons are scored from their text
parsed back, since their text quantizes.  :func:`compare` is the library entry
point that ``benchmarks/rate_quality.py`` uses too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

GRID_CODECS = ("rrle", "irle", "full")
DIALECT_CODECS = ("crle", "arle", "spans")
BOX_CODECS = ("boxes", "boxes-crle", "boxes-spans")
CODECS = (*GRID_CODECS, *DIALECT_CODECS, *BOX_CODECS, "polygon-json", "polygon-loc")
# COCO "area" buckets, in mask pixels: small < 32^2 <= medium < 96^2 <= large.
SIZES = (("small", 0, 32 * 32), ("medium", 32 * 32, 96 * 96), ("large", 96 * 96, float("inf")))

# A rough tokenizer for runs without --tokenizer: both measured families split digits,
# keep a short word whole and cut punctuation into single pieces.  Only for a first look.
_ROUGH = re.compile(r"\d|[^\W\d_]{1,6}|\n|[^\w\s]| ")


def rough_tokens(text: str) -> list[str]:
    """Pieces of a rough, tokenizer-free token estimate (see ``docs/compare.md``)."""
    return [t for t in _ROUGH.findall(text) if t != " "]


@dataclass(frozen=True)
class Config:
    """One codec with its parameters; ``name`` is what tables and the JSON results show."""

    codec: str
    grid: int = 16
    method: str = "nearest"
    vertices: int = 0
    bins: int = 100

    @property
    def name(self) -> str:
        if self.codec in BOX_CODECS:
            return f"{self.codec} {self.grid}x{self.grid} {self.method} bins={self.bins}"
        if self.codec.startswith("polygon"):
            return f"{self.codec} {self.vertices}v"
        return f"{self.codec} {self.grid}x{self.grid} {self.method}"

    @property
    def family(self) -> str:
        return self.codec.split("-")[0] if self.codec.startswith("polygon") else self.codec


def configs(
    codecs: Sequence[str] = CODECS,
    *,
    grids: Sequence[int] = (16, 32),
    methods: Sequence[str] = ("nearest",),
    box_grids: Sequence[int] = (8, 16),
    vertices: Sequence[int] = (8, 16, 32),
    bins: int = 100,
) -> list[Config]:
    """Every configuration to measure, in a stable order."""
    out = []
    for c in codecs:
        if c not in CODECS:
            from ._errors import InputError

            raise InputError(f"unknown codec {c!r}; choose from {', '.join(CODECS)}")
        if c in GRID_CODECS or c in DIALECT_CODECS:
            out += [Config(c, g, m) for g in grids for m in methods]
        elif c in BOX_CODECS:
            out += [Config(c, g, m, bins=bins) for g in box_grids for m in methods]
        else:
            out += [Config(c, vertices=v) for v in vertices]
    return out


@dataclass
class _Series:
    tokens: dict[str, list[int]] = field(default_factory=dict)
    inter: list[int] = field(default_factory=list)
    union: list[int] = field(default_factory=list)
    lost: list[bool] = field(default_factory=list)


def _grid_text(cfg: Config, mask: np.ndarray, label: str, background: str):
    """(text, predicted mask) for a grid codec or dialect."""
    from . import dialects
    from .grid import render
    from .text import encode_grid, to_text

    g = encode_grid(mask, label, grid=cfg.grid, method=cfg.method, background=background)
    fmt = cfg.codec
    text = to_text(g, format=fmt) if fmt in GRID_CODECS else dialects.to_text(g, fmt)
    return text, render(g.ids != 0, mask.shape)


def _box_text(cfg: Config, mask, label, background):
    from . import boxes

    fmt = cfg.codec.split("-")[1] if "-" in cfg.codec else "rrle"
    text = boxes.encode_boxes(mask, label, bins=cfg.bins, grid=cfg.grid, method=cfg.method,
                              background=background, format=fmt)
    back = boxes.decode_boxes(text, mask.shape, bins=cfg.bins, background=background, format=fmt,
                              grid=None if fmt == "rrle" else cfg.grid)
    return text, back.mask()


def _polygon_texts(cfgs: list[Config], mask):
    """Polygon configurations share the traced rings of one budget across both text forms."""
    from . import polygon

    out = {}
    rings_by_budget = {}
    for cfg in cfgs:
        rings = rings_by_budget.get(cfg.vertices)
        if rings is None:
            rings = rings_by_budget[cfg.vertices] = polygon.mask_to_polygons(mask, max_vertices=cfg.vertices)
        fmt = cfg.codec.split("-", 1)[1]
        text = polygon.to_text(rings, mask.shape, format=fmt)
        out[cfg] = (text, polygon.decode_polygons(text, mask.shape, format=fmt))
    return out


def compare(
    items,
    cfgs: Sequence[Config],
    counters: dict[str, Callable[[str], int]],
    *,
    background: str = "others",
    progress: Callable[[], None] | None = None,
) -> dict:
    """Measure ``cfgs`` on ``items`` (an iterable of ``(mask, label)``).

    ``counters`` maps a tokenizer name to a function counting a text's
    tokens.  Returns ``{"masks": n, "areas": [...], "configs": {name: {...}}}``
    with per-mask tokens (per tokenizer), intersections, unions and losses.
    """
    from .metrics import intersection_union

    series = {cfg: _Series({t: [] for t in counters}) for cfg in cfgs}
    areas: list[int] = []
    poly_cfgs = [c for c in cfgs if c.codec.startswith("polygon")]
    for mask, label in items:
        mask = np.asarray(mask) != 0
        area = int(np.count_nonzero(mask))
        areas.append(area)
        results = _polygon_texts(poly_cfgs, mask) if poly_cfgs else {}
        for cfg in cfgs:
            if cfg in results:
                text, pred = results[cfg]
            elif cfg.codec in BOX_CODECS:
                text, pred = _box_text(cfg, mask, label, background)
            else:
                text, pred = _grid_text(cfg, mask, label, background)
            s = series[cfg]
            for name, count in counters.items():
                s.tokens[name].append(count(text))
            i, u = intersection_union(pred, mask)
            s.inter.append(i)
            s.union.append(u)
            s.lost.append(area > 0 and not pred.any())
        if progress is not None:
            progress()
    return {
        "masks": len(areas),
        "areas": areas,
        "configs": {cfg.name: {"codec": cfg.codec, "family": cfg.family, "grid": cfg.grid,
                               "method": cfg.method, "vertices": cfg.vertices, "bins": cfg.bins,
                               "tokens": s.tokens, "inter": s.inter, "union": s.union, "lost": s.lost}
                    for cfg, s in series.items()},
    }


def summarize(raw: dict) -> dict:
    """Median / mean / p90 tokens, cIoU, mean IoU and share lost, overall and by object size."""
    areas = np.array(raw["areas"], dtype=np.int64)
    subsets = [("all", np.ones(areas.size, dtype=bool))]
    subsets += [(name, (areas >= lo) & (areas < hi)) for name, lo, hi in SIZES]
    out = {}
    for name, r in raw["configs"].items():
        inter = np.array(r["inter"], dtype=np.float64)
        union = np.array(r["union"], dtype=np.float64)
        lost = np.array(r["lost"], dtype=bool)
        # A mask with an empty target and an empty answer is a perfect answer (IoU 1).
        iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
        row = {k: r[k] for k in ("codec", "family", "grid", "method", "vertices", "bins")}
        row["subsets"] = {}
        for sname, sel in subsets:
            if not sel.any():
                continue
            toks = {}
            for t, v in r["tokens"].items():
                v = np.array(v)[sel]
                toks[t] = {"median": float(np.median(v)), "mean": float(v.mean()),
                           "p90": float(np.percentile(v, 90))}
            nonempty = sel & (areas > 0)
            row["subsets"][sname] = {
                "masks": int(sel.sum()),
                "tokens": toks,
                "ciou": float(inter[sel].sum() / union[sel].sum()) if union[sel].sum() else 1.0,
                "miou": float(iou[sel].mean()),
                "lost": float(lost[nonempty].mean()) if nonempty.any() else 0.0,
            }
        out[name] = row
    return out


def pareto(summary: dict, tokenizer: str, subset: str = "all") -> list[str]:
    """Configurations no other beats on both mean tokens and cIoU, cheapest first."""
    pts = sorted((r["subsets"][subset]["tokens"][tokenizer]["mean"], -r["subsets"][subset]["ciou"], n)
                 for n, r in summary.items() if subset in r["subsets"])
    front, best = [], -1.0
    for tok, neg_ciou, name in pts:
        if -neg_ciou > best:
            front.append(name)
            best = -neg_ciou
    return front


def budget_table(summary: dict, tokenizer: str, budgets: Sequence[float],
                 subsets=("all", "small", "medium", "large")) -> str:
    """Markdown: per token budget and subset, the best cIoU each codec family reaches within it.

    A configuration fits a budget when its mean token count on the subset is
    at most the budget.  Cells read ``cIoU (configuration, mean tokens)``.
    """
    families = list(dict.fromkeys(r["family"] for r in summary.values()))
    lines = []
    for sub in subsets:
        if not any(sub in r["subsets"] for r in summary.values()):
            continue
        lines += [f"#### best cIoU within a budget: {sub}", "",
                  "| mean tokens <= | " + " | ".join(families) + " |",
                  "|---:|" + "---|" * len(families)]
        for b in budgets:
            cells = []
            for fam in families:
                fits = [(r["subsets"][sub]["ciou"], -r["subsets"][sub]["tokens"][tokenizer]["mean"], name)
                        for name, r in summary.items()
                        if r["family"] == fam and sub in r["subsets"]
                        and r["subsets"][sub]["tokens"][tokenizer]["mean"] <= b]
                if fits:
                    ciou, neg, name = max(fits)
                    cells.append(f"{ciou:.3f} ({name}, {-neg:.0f})")
                else:
                    cells.append("-")
            lines.append(f"| {b:g} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def markdown(summary: dict, tokenizers: Sequence[str], *, subsets=("all", "small", "medium", "large")) -> str:
    """The summary as markdown tables: one per subset, one row per configuration."""
    lines = []
    for sub in subsets:
        rows = [(n, r["subsets"][sub]) for n, r in summary.items() if sub in r["subsets"]]
        if not rows:
            continue
        masks = rows[0][1]["masks"]
        lines += [f"### {sub} ({masks} masks)", ""]
        head = ["configuration"]
        for t in tokenizers:
            head += [f"{t} median", "mean", "p90"]
        head += ["cIoU", "mIoU", "lost"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" + "---:|" * (len(head) - 1))
        front = set(pareto(summary, tokenizers[0], sub))
        for name, s in rows:
            cells = [f"**{name}**" if name in front else name]
            for t in tokenizers:
                k = s["tokens"][t]
                cells += [f"{k['median']:g}", f"{k['mean']:.1f}", f"{k['p90']:.1f}"]
            cells += [f"{s['ciou']:.3f}", f"{s['miou']:.3f}", f"{100 * s['lost']:.1f}%"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(summary: dict, tokenizer: str, out: str, subset: str = "all") -> None:
    """Mean tokens (log scale) against cIoU, one series per codec family, the Pareto front dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ._plots import label_points, plain_log_x

    fig, ax = plt.subplots(figsize=(9, 5.5))
    series: dict[str, list] = {}
    for name, r in summary.items():
        s = r["subsets"].get(subset)
        if s is not None:  # one line per codec and quantizer, through its grids or budgets
            key = r["codec"] if r["family"] == "polygon" else f"{r['codec']} {r['method']}"
            series.setdefault(key, []).append((s["tokens"][tokenizer]["mean"], s["ciou"], name))
    colors = plt.get_cmap("tab20").colors
    codecs = list(dict.fromkeys(key.split(" ")[0] for key in series))
    styles = {"nearest": "-", "area": "--", "coverage": ":"}
    for key, pts in series.items():
        pts.sort()
        codec, _, method = key.partition(" ")
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=4, label=key,
                color=colors[codecs.index(codec) % len(colors)], linestyle=styles.get(method, "-"))
    front = pareto(summary, tokenizer, subset)
    fx = [summary[n]["subsets"][subset]["tokens"][tokenizer]["mean"] for n in front]
    fy = [summary[n]["subsets"][subset]["ciou"] for n in front]
    ax.plot(fx, fy, linestyle=(0, (1, 1)), color="black", linewidth=1.5, label="Pareto front")
    # The points of the front carry their configuration: grid (or vertices) and method.
    label_points(ax, [(x, y, n.split(" ", 1)[1] if " " in n else n) for x, y, n in zip(fx, fy, front)],
                 fontsize=7)
    plain_log_x(ax)
    ax.set_xlabel(f"mean tokens per answer ({tokenizer})")
    ax.set_ylabel(f"oracle cIoU ({subset} masks)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# =========================================================================== command line


def _counters(paths: Sequence[str]) -> dict[str, Callable[[str], int]]:
    from .tokens import count_tokens, load_tokenizer

    if not paths:
        return {"rough": lambda s: len(rough_tokens(s))}
    out = {}
    for p in paths:
        tok = load_tokenizer(p)
        out[os.path.basename(p)] = lambda s, tok=tok: count_tokens(s, tok)
    return out


def cmd_compare(args) -> int:
    from . import check_label
    from ._cli_stats import _Progress, _sources
    from .cli import CLIError

    check_label(args.background)
    if args.label is not None:
        check_label(args.label)
    for opt, vals, lo in (("--grid", args.grid, 1), ("--box-grid", args.box_grid, 1),
                          ("--vertices", args.vertices, 3)):
        bad = [v for v in vals if v < lo]
        if bad:
            raise CLIError(f"{opt} values must be at least {lo}, got {bad[0]}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CLIError("--plot needs matplotlib: pip install matplotlib") from None
    cfgs = configs(list(dict.fromkeys(args.codec)), grids=args.grid, methods=list(dict.fromkeys(args.method)),
                   box_grids=args.box_grid, vertices=args.vertices, bins=args.bins)
    counters = _counters(args.tokenizer or [])
    loaders, note = _sources(args.masks, args.label)
    if args.limit is not None:
        loaders = loaders[: args.limit]
    if not loaders:
        raise CLIError("no masks found in the inputs")
    show = args.progress if args.progress is not None else (len(loaders) >= 200 and sys.stderr.isatty())
    bar = _Progress(len(loaders), bool(show), "compare")
    try:
        raw = compare((load() for load in loaders), cfgs, counters, background=args.background,
                      progress=bar.step)
    finally:
        bar.close()
    summary = summarize(raw)
    names = list(counters)
    print(f"maskcodec compare: {raw['masks']} masks; {note}")
    if args.tokenizer:
        print("tokens counted with " + ", ".join(names))
    else:
        print("tokens ROUGHLY estimated (no --tokenizer): digits, short words and punctuation one each")
    print("tokens per answer (median, mean, p90); oracle cIoU = sum I / sum U, mIoU = mean per-mask IoU, "
          "lost = non-empty masks that come back empty; bold = on the Pareto front (first tokenizer)")
    print()
    subsets = ("all", "small", "medium", "large") if args.by_size else ("all",)
    print(markdown(summary, names, subsets=subsets))
    if args.budget:
        print(budget_table(summary, names[0], args.budget, subsets=subsets))
    if args.json:
        options = {k: v for k, v in vars(args).items() if k not in ("func", "json", "plot", "progress")}
        doc = {"options": options, "masks": raw["masks"],
               "tokenizers": names, "summary": summary}
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
        print(f"results written to {args.json}")
    if args.plot:
        plot(summary, names[0], args.plot)
        print(f"plot written to {args.plot}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="tokens vs oracle quality for every codec (R-RLE, dialects, boxes, polygons)",
        description=(
            "Read PNG masks or COCO JSON files and print, for every codec, grid or budget, the answer "
            "length in tokens (median, mean, p90) and the best quality the codec allows (oracle cIoU, "
            "mean IoU, share of masks lost), overall and with --by-size per COCO object size."
        ),
    )
    p.add_argument("masks", nargs="+", metavar="MASKS", help="PNG masks and/or COCO JSON files")
    p.add_argument("--tokenizer", action="append", metavar="FILE",
                   help="count with this tokenizer (a SentencePiece .model, tekken .json, tokenizer.json "
                        "or Hugging Face folder); repeat for several (default: a rough estimate)")
    p.add_argument("--codec", nargs="+", choices=CODECS, default=list(CODECS), help="codecs (default: all)")
    p.add_argument("--grid", type=int, nargs="+", default=[16, 32], metavar="N",
                   help="grid sides of the grid codecs and dialects (default 16 32)")
    p.add_argument("--method", nargs="+", choices=("nearest", "area", "coverage"), default=["nearest"],
                   help="quantization methods (default nearest)")
    p.add_argument("--box-grid", type=int, nargs="+", default=[8, 16], metavar="N",
                   help="grid sides inside each box (default 8 16)")
    p.add_argument("--bins", type=int, default=100, help="box coordinate bins (default 100)")
    p.add_argument("--vertices", type=int, nargs="+", default=[8, 16, 32], metavar="N",
                   help="polygon vertex budgets (default 8 16 32)")
    p.add_argument("--label", metavar="NAME",
                   help="foreground label of every mask (default: COCO category names, else 'object')")
    p.add_argument("--background", default="others", help="background label (default: others)")
    p.add_argument("--by-size", action="store_true", help="also tables for small / medium / large objects")
    p.add_argument("--budget", type=float, nargs="+", metavar="TOKENS",
                   help="also tabulate, per budget, the best cIoU of each codec family whose mean "
                        "token count (first tokenizer) fits it")
    p.add_argument("--limit", type=int, metavar="N", help="only the first N masks")
    p.add_argument("--json", metavar="OUT.json", help="write the summary as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="Pareto plot of mean tokens vs cIoU (needs matplotlib)")
    prog = p.add_mutually_exclusive_group()
    prog.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="always show a progress bar on stderr (default: on a terminal, 200+ masks)")
    prog.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(func=cmd_compare)
