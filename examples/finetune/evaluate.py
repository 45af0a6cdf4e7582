"""Generate masks with a fine-tuned model and score them: cIoU, gIoU, REC Acc@0.5.

Predictions are scored on the coarse grid (rendered at the image size) and,
with ``--sam``, after refinement by Hugging Face ``SamModel`` prompted with
maskcodec.refine's deterministic box, points and mask logits, side by side::

    python examples/finetune/evaluate.py --checkpoint runs/qwen2vl-2b/final \\
        --val data/refcoco_val.jsonl --image-root data/coco --sam facebook/sam-vit-huge

The answers are also scored by ``maskcodec.metrics.evaluate`` (what ``maskcodec eval`` runs):
the generated texts go to ``eval_answers_<run>.jsonl`` and the targets to ``eval_targets.jsonl``,
and ``eval.json`` gets cIoU, gIoU, N-acc, Acc@0.5 and mIoU under the Text4Seg scripts' rules and
maskcodec's side by side (the same files can be rescored later with ``maskcodec eval``).

Generation goes through maskcodec's logits processor (``maskcodec.hf``) when
it is installed, so every answer parses; ``--compare-unconstrained`` also
generates without it and reports both.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def load_checkpoint(path: str, *, device: str, bf16: bool):
    """A full model folder, or a LoRA adapter folder whose base is named in maskcodec_run.json."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dtype = torch.bfloat16 if bf16 else torch.float32
    processor = AutoProcessor.from_pretrained(path)
    run = {}
    if os.path.exists(os.path.join(path, "maskcodec_run.json")):
        with open(os.path.join(path, "maskcodec_run.json")) as f:
            run = json.load(f)
    if os.path.exists(os.path.join(path, "adapter_config.json")):
        from peft import PeftModel

        with open(os.path.join(path, "adapter_config.json")) as f:
            base_name = json.load(f)["base_model_name_or_path"]
        base = AutoModelForImageTextToText.from_pretrained(run.get("model", base_name), dtype=dtype)
        model = PeftModel.from_pretrained(base, path).merge_and_unload()
    else:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype)
    return model.to(device).eval(), processor, run


def _table(rows: dict) -> str:
    head = f"{'predictions':<40} {'cIoU':>7} {'gIoU':>7} {'Acc@0.5':>8} {'strict parse':>13} {'n':>5}"
    lines = [head, "-" * len(head)]
    for name, s in rows.items():
        rate = s["strict_parse_rate"]
        parsed = "-" if rate is None else f"{100 * rate:.1f}%"
        lines.append(f"{name:<40} {100 * s['ciou']:7.2f} {100 * s['giou']:7.2f} {100 * s['rec_acc50']:8.2f} "
                     f"{parsed:>13} {s['n']:5d}")
    return "\n".join(lines)


def write_targets(val, path: str) -> None:
    """The targets for ``maskcodec eval``: each record's mask PNG, else its answer with its image."""
    from maskcodec.datasets.writers import make_record

    with open(path, "w", encoding="utf-8") as f:
        for rec in val:
            row = ({"id": rec.id, "mask": os.path.abspath(rec.mask)} if rec.mask else
                   make_record("llava", id=rec.id, image=os.path.abspath(rec.image), question=rec.question,
                               answer=rec.answer))
            f.write(json.dumps(row) + "\n")


def score_answers(samples, targets_path: str, answers_path: str, *, grid, fmt: str) -> dict:
    """Write the generated answers as JSONL and score them with maskcodec.metrics.evaluate."""
    from maskcodec.metrics import evaluate

    with open(answers_path, "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps({"id": s["id"], "text": s["text"]}) + "\n")
    return evaluate(answers_path, targets_path, grid=grid, format=fmt, fatal=True)


def run_eval(model, processor, train, val, *, grid, fmt, out_dir, device="cpu", max_new_tokens=None,
             labels=None, compare_unconstrained=False, sam=None, batch_size=8) -> dict:
    """Score ``val``; writes ``eval.json`` (+ per-sample ``eval_samples.jsonl``) to ``out_dir``."""
    if max_new_tokens is None:
        max_new_tokens = 4 * grid[0] * grid[1] + 32  # R-RLE needs far fewer; full descriptors ~3 per cell
    report: dict = {"grid": list(grid), "format": fmt, "n_val": len(val)}
    table: dict = {}
    runs = [("constrained", True)] + ([("unconstrained", False)] if compare_unconstrained else [])
    targets_path = os.path.join(out_dir, "eval_targets.jsonl")
    write_targets(val, targets_path)
    for name, constrained in runs:
        res = common.generate_and_score(model, processor, val, grid=grid, fmt=fmt, labels=labels,
                                        constrained=constrained, device=device, max_new_tokens=max_new_tokens,
                                        sam=sam, batch_size=batch_size)
        samples = res.pop("samples")
        res["maskcodec_eval"] = score_answers(samples, targets_path, os.path.join(out_dir, f"eval_answers_{name}.jsonl"),
                                              grid=grid, fmt=fmt)
        report[name] = res
        kind = "logits processor" if res["constrained"] else "free generation"
        table[f"coarse grid, {kind}"] = res["coarse"]
        if "sam" in res:
            table[f"SAM-refined, {kind}"] = res["sam"]
        with open(os.path.join(out_dir, f"eval_samples_{name}.jsonl"), "w", encoding="utf-8") as f:
            for s in samples:
                f.write(json.dumps(s) + "\n")
    if train:
        base = common.baselines(train, val, grid, fmt)
        report["baselines"] = base
        table["baseline: all background"] = base["all_background"]
        table[f"baseline: best fixed blob ({base['best_fixed_blob_cells']} cells)"] = base["best_fixed_blob"]
    report["table"] = _table(table)
    print(report["table"], flush=True)
    with open(os.path.join(out_dir, "eval.json"), "w") as f:
        json.dump(report, f, indent=1)
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a folder written by train.py (final/ or checkpoint-N/)")
    p.add_argument("--val", help="JSONL to score (default: the tiny run's val.jsonl)")
    p.add_argument("--train", help="training JSONL, for the fixed-blob baseline (optional)")
    p.add_argument("--image-root")
    p.add_argument("--limit", type=int, default=None, help="score the first N samples")
    p.add_argument("--grid", type=int, nargs="+", default=None, help="default: the training run's")
    p.add_argument("--format", default=None, choices=["rrle", "irle", "full"])
    p.add_argument("--labels", nargs="*", default=None,
                   help="allowed foreground labels for constrained decoding (default: free labels)")
    p.add_argument("--compare-unconstrained", action="store_true", help="also generate without the processor")
    p.add_argument("--sam", default=None, help="Hugging Face SamModel checkpoint to refine with (e.g. facebook/sam-vit-base)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None)
    p.add_argument("--output-dir", default=None, help="default: the checkpoint folder")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    bf16 = args.device.startswith("cuda") if args.bf16 is None else args.bf16
    model, processor, run = load_checkpoint(args.checkpoint, device=args.device, bf16=bf16)
    grid_arg = args.grid or run.get("grid") or [16]
    grid = (grid_arg[0], grid_arg[-1])
    fmt = args.format or run.get("format", "rrle")
    rargs = run.get("args", {})
    val_path = args.val or rargs.get("val")
    if not val_path:
        raise SystemExit("--val is required")
    image_root = args.image_root or rargs.get("image_root")
    val = common.read_records(val_path, image_root, limit=args.limit)
    train_path = args.train or rargs.get("train")
    train = common.read_records(train_path, image_root) if train_path and os.path.exists(train_path) else []
    sam = common.sam_refiner(args.sam, args.device) if args.sam else None
    out = args.output_dir or args.checkpoint
    os.makedirs(out, exist_ok=True)
    run_eval(model, processor, train, val, grid=grid, fmt=fmt, out_dir=out, device=args.device,
             max_new_tokens=args.max_new_tokens, labels=args.labels,
             compare_unconstrained=args.compare_unconstrained, sam=sam, batch_size=args.batch_size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
