"""Rate-quality benchmark: tokens against oracle quality for every codec, on the shared COCO masks.

Run from the repository root::

    .venv/bin/python benchmarks/rate_quality.py            # writes the two results files below
    .venv/bin/python benchmarks/rate_quality.py --plot docs/rate_quality.png

It measures every configuration of ``maskcodec compare`` (R-RLE, I-RLE, full
descriptors and the three compact dialects at 16x16, 32x32 and 64x64 with the
nearest and area quantizers; box-wise descriptors with 8x8 and 16x16 inner
grids and three body formats; polygons with 8, 16 and 32 vertices as JSON and
as loc tokens) on the 734 COCO val2014 instance masks of ``tests/data``,
labelled with their category names, and counts tokens with the two real
tokenizers of the ``mistral-common`` wheel
(SentencePiece ``tokenizer.model.v1`` and tekken ``tekken_240911.json``).

Results go to ``benchmarks/rate_quality_results.json`` (every number) and
``benchmarks/rate_quality_results.md`` (the tables), so a later change can be
compared against them.  The same numbers come from::

    maskcodec compare tests/data/coco_val2014_segm100.json --by-size \\
        --tokenizer .../tokenizer.model.v1 --tokenizer .../tekken_240911.json \\
        --method nearest area --codec ... (see CONFIG below)

Nothing here is timed: the quantities are deterministic.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COCO_FILE = ROOT / "tests" / "data" / "coco_val2014_segm100.json"
OUT_JSON = ROOT / "benchmarks" / "rate_quality_results.json"
OUT_MD = ROOT / "benchmarks" / "rate_quality_results.md"
BUDGETS = (25, 50, 100, 200, 400)

CONFIG = {"grids": [16, 32, 64], "methods": ["nearest", "area"], "box_grids": [8, 16], "vertices": [8, 16, 32],
          "bins": 100}


def default_tokenizers() -> list[str]:
    """The two tokenizer files shipped in the mistral-common wheel (empty when it is not installed)."""
    try:
        import mistral_common
    except ImportError:
        return []
    data = os.path.join(os.path.dirname(mistral_common.__file__), "data")
    return [os.path.join(data, "tokenizer.model.v1"), os.path.join(data, "tekken_240911.json")]


def load_pairs(limit: int | None = None) -> list[tuple]:
    """(mask, category name) for the shared COCO masks, in file order."""
    from pycocotools import mask as mask_utils

    from maskcodec._cli_codec import _COCO_NAMES

    anns = json.loads(COCO_FILE.read_text())[:limit]
    with warnings.catch_warnings():  # pycocotools' own numpy 2 deprecation
        warnings.simplefilter("ignore", DeprecationWarning)
        return [(mask_utils.decode(a["segmentation"]).astype(bool), _COCO_NAMES[a["category_id"]])
                for a in anns]


def run(*, limit: int | None = None, tokenizers: list[str] | None = None, grids=None, methods=None,
        box_grids=None, vertices=None, bins: int | None = None) -> dict:
    """Measure every configuration; returns the document written to the JSON results file."""
    from maskcodec import _cli_compare as C

    cfg = dict(CONFIG)
    for key, val in (("grids", grids), ("methods", methods), ("box_grids", box_grids), ("vertices", vertices),
                     ("bins", bins)):
        if val is not None:
            cfg[key] = val
    paths = default_tokenizers() if tokenizers is None else tokenizers
    counters = C._counters(paths)
    configs = C.configs(grids=cfg["grids"], methods=cfg["methods"], box_grids=cfg["box_grids"],
                        vertices=cfg["vertices"], bins=cfg["bins"])
    raw = C.compare(load_pairs(limit), configs, counters)
    return {
        "command": "python benchmarks/rate_quality.py" + ("" if limit is None else f" --limit {limit}"),
        "data": str(COCO_FILE.relative_to(ROOT)),
        "labels": "COCO category names",
        "config": cfg,
        "tokenizers": list(counters),
        "masks": raw["masks"],
        "summary": C.summarize(raw),
        "dialect_savings_16x16": dialect_savings(limit=limit, tokenizers=paths),
    }


def label_regimes(limit: int | None = None, grid: int = 16) -> dict[str, list]:
    """Grids in three label regimes: COCO category names, a long referring-style label, and
    per-image semantic maps (every instance of an image, one label per category)."""
    from collections import defaultdict

    import maskcodec as mc

    anns = json.loads(COCO_FILE.read_text())[:limit]
    pairs = load_pairs(limit)
    category = [mc.encode_grid(m, lab, grid=grid) for m, lab in pairs]
    referring = [mc.encode_grid(m, f"the {lab} on the left of the picture", grid=grid) for m, lab in pairs]
    by_image: dict = defaultdict(list)
    for ann, (m, lab) in zip(anns, pairs):
        by_image[ann["image_id"]].append((ann["category_id"], m, lab))
    semantic = []
    for items in by_image.values():
        ids = np.zeros(items[0][1].shape, dtype=np.int64)
        for cat, m, _ in items:
            ids[m] = cat
        semantic.append(mc.encode_grid(ids, {cat: lab for cat, _, lab in items}, grid=grid))
    return {"category": category, "referring": referring, "semantic": semantic}


def dialect_savings(*, limit: int | None = None, tokenizers: list[str] | None = None, grid: int = 16) -> dict:
    """Mean and median tokens of R-RLE and each dialect per label regime, and the saving of the mean."""
    from maskcodec import _cli_compare as C
    from maskcodec import dialects
    from maskcodec.text import to_text

    counters = C._counters(default_tokenizers() if tokenizers is None else tokenizers)
    out: dict = {}
    for regime, grids in label_regimes(limit, grid).items():
        row: dict = {"grids": len(grids)}
        for fmt in ("rrle", *dialects.DIALECTS):
            texts = [to_text(g) if fmt == "rrle" else dialects.to_text(g, fmt) for g in grids]
            row[fmt] = {}
            for name, count in counters.items():
                n = np.array([count(t) for t in texts])
                base = row["rrle"][name]["mean"] if fmt != "rrle" else n.mean()
                row[fmt][name] = {"median": float(np.median(n)), "mean": float(n.mean()),
                                  "saving": float(1 - n.mean() / base)}
        out[regime] = row
    return out


def savings_markdown(savings: dict, tokenizers: list[str]) -> str:
    lines = ["| labels | grids | format | " + " | ".join(f"{t} median | mean | fewer" for t in tokenizers) + " |",
             "|---|---:|---|" + "---:|---:|---:|" * len(tokenizers)]
    for regime, row in savings.items():
        for fmt, per in row.items():
            if fmt == "grids":
                continue
            cells = [f"{per[t]['median']:g} | {per[t]['mean']:.1f} | "
                     + ("" if fmt == "rrle" else f"{100 * per[t]['saving']:.0f}%") for t in tokenizers]
            lines.append(f"| {regime} | {row['grids']} | {fmt} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_markdown(doc: dict) -> str:
    from maskcodec import _cli_compare as C

    head = [
        "# Rate and quality",
        "",
        f"Made by `{doc['command']}` on {doc['masks']} masks of `{doc['data']}` ({doc['labels']}); "
        f"tokens counted with {', '.join(doc['tokenizers'])}.",
        "Tokens per answer (median, mean, p90); oracle cIoU = sum I / sum U, mIoU = mean per-mask IoU, "
        "lost = share of non-empty masks that come back empty.  Bold rows are on the Pareto front "
        f"(mean {doc['tokenizers'][0]} tokens against cIoU) of their table.",
        "",
        "",
    ]
    budgets = ["", "## At equal token budgets", "",
               "The best oracle cIoU each codec family reaches with a mean answer length (first tokenizer) "
               "within the budget; cells read `cIoU (configuration, mean tokens)`.", "",
               C.budget_table(doc["summary"], doc["tokenizers"][0], BUDGETS)]
    savings = ["", "## Dialect savings by label regime (16x16, nearest)", "",
               "`category`: one COCO category name per mask; `referring`: the same masks labelled "
               "`the <category> on the left of the picture`; `semantic`: one grid per image with every "
               "instance, one label per category.  `fewer` is 1 - mean / mean of R-RLE.", "",
               savings_markdown(doc["dialect_savings_16x16"], doc["tokenizers"])]
    return ("\n".join(head) + C.markdown(doc["summary"], doc["tokenizers"]) + "\n".join(budgets)
            + "\n".join(savings))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--limit", type=int, help="only the first N masks (the results files are not written)")
    p.add_argument("--plot", metavar="OUT.png", help="also draw the Pareto plot (needs matplotlib)")
    args = p.parse_args(argv)
    doc = run(limit=args.limit)
    md = render_markdown(doc)
    if args.limit is None:
        OUT_JSON.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
        OUT_MD.write_text(md, encoding="utf-8")
        print(f"wrote {OUT_JSON.relative_to(ROOT)} and {OUT_MD.relative_to(ROOT)}", file=sys.stderr)
    else:
        print(md)
    if args.plot:
        from maskcodec import _cli_compare as C

        C.plot(doc["summary"], doc["tokenizers"][0], args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
