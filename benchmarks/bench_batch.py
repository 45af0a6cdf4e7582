"""Batched encode and decode against a plain copy of the same data, and their scaling with threads.

Run from the repository root::

    .venv/bin/python benchmarks/bench_batch.py                  # 1,000 masks, threads 1 and 2
    .venv/bin/python benchmarks/bench_batch.py --masks 200 --threads 1 2 4 --out /tmp/b.json

The masks are the shared COCO masks (decoded by maskcodec.coco, so pycocotools
is not needed), cycled to ``--masks``: as a list of masks of their own sizes,
and pasted into one ``(n, 480, 640)`` stack.  Every batched result is first
checked against the one-mask functions (``encode_mask``/``decode_mask``) on
every mask.  Each measurement is the best of ``--repeat`` runs over the whole
batch, divided by the number of masks; the floor it is compared with moves
the same bytes: a copy of each input mask for encoding, a copy of the output
masks for decoding (each copy a fresh allocation, as the results are).
Threads speed-ups are wall-clock ratios in the same process; they need idle
cores (the load average is recorded).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "coco_val2014_segm100.json"
LABEL = "white horse"
CANVAS = (480, 640)


def load(n: int):
    """(list of masks of their own sizes, (n, 480, 640) stack), both cycled from the 734 masks."""
    from maskcodec.coco import rle_to_mask

    anns = json.loads(DATA.read_text())
    base = [rle_to_mask(a["segmentation"]) for a in anns]
    masks = [base[i % len(base)] for i in range(n)]
    stack = np.zeros((n, *CANVAS), dtype=bool)
    for i, m in enumerate(masks):
        a, b = min(CANVAS[0], m.shape[0]), min(CANVAS[1], m.shape[1])
        stack[i, :a, :b] = m[:a, :b]
    return masks, stack


def best(fn, repeat: int) -> float:
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(n: int = 1000, threads=(1, 2), repeat: int = 5) -> dict:
    import maskcodec as mc

    masks, stack = load(n)
    sizes = [m.shape for m in masks]
    texts = [mc.encode_mask(m, LABEL) for m in masks]
    # correctness first
    assert mc.encode_masks(masks, LABEL, threads=max(threads)) == texts
    assert mc.encode_masks(stack, LABEL, threads=max(threads)) == [mc.encode_mask(m, LABEL) for m in stack]
    out = mc.decode_masks(texts, size=sizes, threads=max(threads))
    assert all(np.array_equal(o, mc.decode_mask(t, size=s)) for o, t, s in zip(out, texts, sizes))
    one = mc.decode_masks(texts, size=CANVAS, threads=max(threads))
    assert all(np.array_equal(o, mc.decode_mask(t, size=CANVAS)) for o, t in zip(one, texts))
    flat = np.concatenate([o.ravel() for o in out])
    reuse = np.zeros_like(one)  # touched once: no page faults when decoded into again
    assert mc.decode_masks(texts, size=CANVAS, out=reuse) is reuse and np.array_equal(reuse, one)
    spare = np.zeros_like(one)

    us = {}

    def time_it(key, fn):
        us[key] = best(fn, repeat) / n * 1e6

    time_it("copy_masks", lambda: [m.copy(order="K") for m in masks])
    time_it("copy_stack", lambda: stack.copy())
    time_it("copy_output", lambda: flat.copy())
    time_it("copy_output_stack", lambda: one.copy())
    time_it("copy_into_touched", lambda: np.copyto(spare, one))
    time_it("encode_mask_loop", lambda: [mc.encode_mask(m, LABEL) for m in masks])
    time_it("decode_mask_loop", lambda: [mc.decode_mask(t, size=s) for t, s in zip(texts, sizes)])
    time_it("parse_loop", lambda: [mc.parse(t, mode="repair", grid=16) for t in texts])
    for k in threads:
        time_it(f"encode_masks_list_t{k}", lambda: mc.encode_masks(masks, LABEL, threads=k))
        time_it(f"encode_masks_stack_t{k}", lambda: mc.encode_masks(stack, LABEL, threads=k))
        time_it(f"decode_masks_list_t{k}", lambda: mc.decode_masks(texts, size=sizes, threads=k))
        time_it(f"decode_masks_stack_t{k}", lambda: mc.decode_masks(texts, size=CANVAS, threads=k))
        time_it(f"decode_masks_out_t{k}", lambda: mc.decode_masks(texts, size=CANVAS, threads=k, out=reuse))
    lo, hi = min(threads), max(threads)
    ratios = {
        "encode_masks (list) / copy of the masks": us[f"encode_masks_list_t{lo}"] / us["copy_masks"],
        "encode_masks (stack) / copy of the stack": us[f"encode_masks_stack_t{lo}"] / us["copy_stack"],
        "decode_masks (sizes) / copy of the output": us[f"decode_masks_list_t{lo}"] / us["copy_output"],
        "decode_masks (one size) / copy of the output": us[f"decode_masks_stack_t{lo}"] / us["copy_output_stack"],
        "decode_masks (out=, reused) / copy into a touched buffer":
            us[f"decode_masks_out_t{lo}"] / us["copy_into_touched"],
        "decode_mask loop / copy of the output": us["decode_mask_loop"] / us["copy_output"],
        "parse loop / copy of the output": us["parse_loop"] / us["copy_output"],
    }
    if hi != lo:
        for key in ("encode_masks_list", "encode_masks_stack", "decode_masks_list", "decode_masks_stack",
                    "decode_masks_out"):
            ratios[f"{key}: threads={hi} speed-up over threads={lo}"] = us[f"{key}_t{lo}"] / us[f"{key}_t{hi}"]
    return {
        "masks": n,
        "threads": list(threads),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load": list(os.getloadavg()),
        "python": sys.version.split()[0],
        "us_per_mask": us,
        "ratios": ratios,
    }


def format_table(result: dict) -> str:
    lines = [
        f"{result['masks']} masks; {result['cpu']}, {result['cpus']} CPUs "
        f"({result['affinity']} usable), load {[round(v, 2) for v in result['load']]}",
        f"{'measurement':<56} {'us/mask':>9}",
    ]
    lines += [f"{k:<56} {v:9.2f}" for k, v in result["us_per_mask"].items()]
    lines.append("")
    lines += [f"{k:<60} {v:7.2f}" for k, v in result["ratios"].items()]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--masks", type=int, default=1000)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results_batch.json"))
    args = p.parse_args(argv)
    result = run(args.masks, tuple(args.threads), args.repeat)
    print(format_table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
