"""maskcodec.torch on a device against the numpy core: batched quantize, render, decode_token_ids.

Run from the repository root (any device torch has; CPU works too, as a smoke test)::

    .venv/bin/python benchmarks/bench_torch.py --device cuda            # writes benchmarks/results_torch.json
    .venv/bin/python benchmarks/bench_torch.py --device cpu --batch 16 --out ''

The batch is the shared COCO masks (pycocotools-decoded), each pasted into a
``--size`` canvas (cropped where larger), repeated to ``--batch`` masks.  For
every operation the device result is first compared, sample by sample, with
the numpy core (:func:`maskcodec.quantize`, :func:`maskcodec.render`,
:func:`maskcodec.decode_masks`); a mismatch aborts the run.  Then each is timed
as the best of ``--repeat`` runs of the whole batch (after one warm-up run;
CUDA is synchronised before and after), and reported per mask, beside a
device copy of the same masks (``masks.clone()``, the memory floor there) and
the numpy core's time for the same batch on the CPU.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "coco_val2014_segm100.json"
LABEL = "white horse"


def load_batch(n: int, size: tuple[int, int]) -> np.ndarray:
    """``(n, height, width)`` bool: the COCO masks pasted at the top left of a canvas, cycled."""
    from maskcodec.coco import rle_to_mask

    anns = json.loads(DATA.read_text())
    h, w = size
    out = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        m = rle_to_mask(anns[i % len(anns)]["segmentation"])
        a, b = min(h, m.shape[0]), min(w, m.shape[1])
        out[i, :a, :b] = m[:a, :b]
    return out


class CharTokenizer:
    """A tokenizer whose ids are code points (0 is padding): decoding is exact and cheap."""

    pad_token_id = 0

    def batch_decode(self, seqs, skip_special_tokens=True):
        return ["".join(map(chr, (c for c in s if c))) for s in seqs]


def _timer(device):
    import torch

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def best(fn, repeat: int) -> float:
        fn()  # warm-up: kernels, caches, allocator
        sync()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
        return min(times)

    return best


def run(device: str = "cuda", batch: int = 256, size=(480, 640), grid: int = 16, repeat: int = 5) -> dict:
    """Check, then time; returns the results (per-mask microseconds) as a dict."""
    import torch

    import maskcodec as mc
    import maskcodec.torch as mct

    dev = torch.device(device)
    best = _timer(dev)
    masks = load_batch(batch, tuple(size))
    t = torch.from_numpy(masks).to(dev)
    rows = {}
    failures = []

    def record(key: str, what: str, device_s: float, core_s: float | None = None) -> None:
        rows[key] = {
            "what": what,
            "device_us_per_mask": device_s / batch * 1e6,
            "core_us_per_mask": None if core_s is None else core_s / batch * 1e6,
        }

    record("copy", "masks.clone() on the device (memory floor)", best(lambda: t.clone(), repeat),
           best(lambda: masks.copy(), repeat))
    counts = masks.reshape(batch, -1)
    record("count_nonzero", "per-mask count_nonzero (device: one reduction)",
           best(lambda: t.reshape(batch, -1).sum(dim=1), repeat),
           best(lambda: [np.count_nonzero(m) for m in counts], repeat))

    for method in ("nearest", "area", "coverage"):
        got = mct.quantize(t, grid=grid, method=method).cpu().numpy()
        want = np.stack([mc.quantize(m, grid=grid, method=method) for m in masks])
        if not np.array_equal(got, want):
            failures.append(f"quantize {method}")
        record(f"quantize_{method}", f"quantize(method={method!r}) to {grid}x{grid}",
               best(lambda: mct.quantize(t, grid=grid, method=method), repeat),
               best(lambda: [mc.quantize(m, grid=grid, method=method) for m in masks], repeat))

    grids = np.stack([mc.quantize(m, grid=grid) for m in masks])
    g = torch.from_numpy(grids).to(dev)
    got = mct.render(g, tuple(size)).cpu().numpy()
    if not np.array_equal(got, np.stack([mc.render(x, tuple(size)) for x in grids])):
        failures.append("render")
    record("render", f"render {grid}x{grid} -> {size[0]}x{size[1]}",
           best(lambda: mct.render(g, tuple(size)), repeat),
           best(lambda: [mc.render(x, tuple(size)) for x in grids], repeat))

    texts = mc.encode_masks(masks, LABEL, grid=grid)
    longest = max(map(len, texts))
    ids = torch.tensor([[ord(c) for c in s] + [0] * (longest - len(s)) for s in texts], device=dev)
    tok = CharTokenizer()
    dec = mct.decode_token_ids(ids, tok, size=tuple(size), grid=grid)
    want = mc.decode_masks(texts, size=tuple(size), grid=grid)
    if dec.masks.device.type != dev.type or not np.array_equal(dec.masks.cpu().numpy(), want):
        failures.append("decode_token_ids")
    record("decode_token_ids", f"decode_token_ids: ids -> text -> parse -> {size[0]}x{size[1]} masks",
           best(lambda: mct.decode_token_ids(ids, tok, size=tuple(size), grid=grid), repeat),
           best(lambda: mc.decode_masks(tok.batch_decode(ids.tolist()), size=tuple(size), grid=grid), repeat))
    record("decode_masks", "numpy core: decode_masks(texts) alone (threads=1)", 0.0,
           best(lambda: mc.decode_masks(texts, size=tuple(size), grid=grid), repeat))
    if failures:
        raise SystemExit(f"device results differ from the numpy core: {', '.join(failures)}")
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"
    return {
        "device": name,
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "batch": batch,
        "size": list(size),
        "grid": grid,
        "rows": rows,
    }


def format_table(result: dict) -> str:
    lines = [
        f"{result['batch']} masks of {result['size'][0]}x{result['size'][1]}, grid {result['grid']}; "
        f"device {result['device']} (torch {result['torch']}); microseconds per mask",
        f"{'operation':<70} {'device':>9} {'numpy core':>11}",
    ]
    for row in result["rows"].values():
        dev = "" if not row["device_us_per_mask"] else f"{row['device_us_per_mask']:9.2f}"
        core = "" if row["core_us_per_mask"] is None else f"{row['core_us_per_mask']:11.2f}"
        lines.append(f"{row['what']:<70} {dev:>9} {core:>11}")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("H", "W"))
    p.add_argument("--grid", type=int, default=16)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results_torch.json"))
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("skipped: PyTorch is not installed")
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("skipped: CUDA is not available")
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = run(args.device, args.batch, tuple(args.size), args.grid, args.repeat)
    print(format_table(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
