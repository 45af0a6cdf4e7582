"""Conversion throughput: the shared COCO masks replicated to >= 100k samples, 1 vs N workers.

Each sample is one compressed-RLE COCO mask with its category name; the whole
pipeline runs (RLE -> 16x16 grid from the runs, R-RLE text, a seeded template,
a LLaVA record, JSON, the atomic temporary file and its state after each chunk).

    .venv/bin/python benchmarks/bench_convert.py                 # 100k samples, 1 and 2 workers
    .venv/bin/python benchmarks/bench_convert.py --samples 5000  # quick
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

from maskcodec.datasets import CocoTarget, Sample, convert

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "coco_val2014_segm100.json"


def make_samples(n: int) -> list[Sample]:
    anns = json.loads(DATA.read_text())
    base = [
        (a["segmentation"], tuple(a["segmentation"]["size"]), f"category {a['category_id']}", a["image_id"])
        for a in anns
    ]
    out = []
    for i in range(n):
        segm, size, label, image_id = base[i % len(base)]
        out.append(Sample(f"s{i}", f"COCO_val2014_{image_id:012d}.jpg", label, CocoTarget((segm,), size)))
    return out


def _cpu() -> float:
    t = os.times()  # children: worker processes, counted once they are joined
    return t.user + t.system + t.children_user + t.children_system


def run(samples, workers: int, to: str, grid: int, chunk: int) -> tuple[float, int, str, float]:
    """(wall seconds, output bytes, output digest, CPU seconds of this process and its workers)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "out.jsonl")
        c0 = _cpu()
        t0 = time.perf_counter()
        summary = convert(
            samples, out, to=to, grid=grid, workers=workers, chunk_size=chunk, stream=io.StringIO()
        )
        dt = time.perf_counter() - t0
        cpu = _cpu() - c0
        size = os.path.getsize(out)
        with open(out, "rb") as fh:
            digest = __import__("hashlib").sha256(fh.read()).hexdigest()[:12]
    assert summary.samples == len(samples)
    return dt, size, digest, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--to", default="llava")
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--chunk-size", type=int, default=512)
    args = ap.parse_args()

    t0 = time.perf_counter()
    run(make_samples(64), 1, args.to, args.grid, 64)  # compile (or load) the kernels once
    print(f"warm-up (JIT compile or cache load): {time.perf_counter() - t0:.2f} s")
    samples = make_samples(args.samples)
    print(
        f"{len(samples)} samples ({len(samples) / 734:.0f} x the 734 shared COCO masks), "
        f"--to {args.to}, grid {args.grid}, {os.cpu_count()} CPUs"
    )
    base = None
    digests = set()
    for w in args.workers:
        dt, size, digest, cpu = run(samples, w, args.to, args.grid, args.chunk_size)
        digests.add(digest)
        rate = len(samples) / dt
        base = base or rate
        print(
            f"workers={w}: {dt:7.2f} s  {rate:9.0f} masks/s  x{rate / base:.2f}  "
            f"CPU {cpu:6.2f} s ({1e6 * cpu / len(samples):.0f} us/mask)  "
            f"({size / 1e6:.1f} MB, sha256 {digest})"
        )
    print("outputs identical across worker counts:", len(digests) == 1)
    print(f"load average now: {os.getloadavg()[0]:.1f} (wall-clock speed-ups need an idle machine)")


if __name__ == "__main__":
    main()
