"""Check maskcodec.torch on a GPU against the numpy core, sample by sample.

    python examples/finetune/gpu_check.py            # cuda:0
    python examples/finetune/gpu_check.py --device cuda:1 --batches 20

Runs quantize (nearest / area / coverage, binary masks and label maps,
nonempty on and off), render (corner / center, one size and per-sample sizes),
decode_token_ids and iou on the device and compares each sample with the numpy
core.  Prints one line per check and exits 1 on any mismatch.  Without CUDA it
prints why and exits 0 (nothing to check).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--batches", type=int, default=8, help="random batches per check")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("skipped: PyTorch is not installed")
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("skipped: CUDA is not available")
        return 0
    import maskcodec as mc
    import maskcodec.torch as mct

    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(dev)
    print(f"device: {name}, torch {torch.__version__}")
    rng = np.random.default_rng(args.seed)
    failures = 0

    def check(label: str, ok: bool, n: int, seconds: float) -> None:
        nonlocal failures
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {label:<46} {n:6d} samples  {seconds * 1e3:8.1f} ms on device")

    def batch(b, h, w, values):
        m = np.zeros((b, h, w), dtype=np.int64)
        for i in range(b):
            for v in values:
                y0, x0 = rng.integers(0, h), rng.integers(0, w)
                m[i, y0 : y0 + rng.integers(1, h + 1), x0 : x0 + rng.integers(1, w + 1)] = v
        return m

    for method in ("nearest", "area", "coverage"):
        for nonempty in (False, True):
            for kind in ("binary", "labels"):
                if kind == "labels" and method == "coverage":
                    continue
                ok, n, spent = True, 0, 0.0
                for _ in range(args.batches):
                    h, w = int(rng.integers(5, 700)), int(rng.integers(5, 700))
                    grid = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
                    values = (1,) if kind == "binary" else (3, 7, 255)
                    m = batch(int(rng.integers(1, 9)), h, w, values)
                    arr = m.astype(bool) if kind == "binary" else m.astype(np.uint8)
                    t = torch.from_numpy(arr).to(dev)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    t0 = time.perf_counter()
                    got = mct.quantize(t, grid=grid, method=method, nonempty=nonempty)
                    if dev.type == "cuda":
                        torch.cuda.synchronize(dev)
                    spent += time.perf_counter() - t0
                    got = got.cpu().numpy()
                    for i in range(arr.shape[0]):
                        want = mc.quantize(arr[i], grid=grid, method=method, nonempty=nonempty)
                        ok &= bool(np.array_equal(got[i], want))
                        n += 1
                check(f"quantize {method} {kind} nonempty={nonempty}", ok, n, spent)

    for align in ("corner", "center"):
        ok, n, spent = True, 0, 0.0
        for _ in range(args.batches):
            grids = rng.integers(0, 4, size=(int(rng.integers(1, 9)), int(rng.integers(1, 33)), int(rng.integers(1, 33))))
            size = (int(rng.integers(1, 900)), int(rng.integers(1, 900)))
            t = torch.from_numpy(grids.astype(np.uint8)).to(dev)
            t0 = time.perf_counter()
            got = mct.render(t, size, align=align)
            per = mct.render(t, [size[::-1]] * grids.shape[0], align=align)
            spent += time.perf_counter() - t0
            for i in range(grids.shape[0]):
                ok &= bool(np.array_equal(got[i].cpu().numpy(), mc.render(grids[i].astype(np.uint8), size, align=align)))
                ok &= bool(np.array_equal(per[i].cpu().numpy(), mc.render(grids[i].astype(np.uint8), size[::-1], align=align)))
                n += 1
        check(f"render {align}", ok, n, spent)

    class Chars:
        pad_token_id = 0

        def batch_decode(self, seqs, skip_special_tokens=True):
            return ["".join(chr(c) for c in s if c) for s in seqs]

    texts = []
    for _ in range(16):
        g = mc.LabelGrid(rng.integers(0, 2, size=(8, 8)), ("others", "thing"))
        texts.append(g.to_text())
    texts.append("no mask here")
    longest = max(map(len, texts))
    ids = torch.tensor([[ord(c) for c in t] + [0] * (longest - len(t)) for t in texts], device=dev)
    t0 = time.perf_counter()
    dec = mct.decode_token_ids(ids, Chars(), size=(37, 53))
    spent = time.perf_counter() - t0
    ok = dec.masks.device.type == dev.type and dec.found.tolist() == [True] * 16 + [False]
    for i, t in enumerate(texts):
        ok &= bool(np.array_equal(dec.masks[i].cpu().numpy(), mc.decode_mask(t, size=(37, 53))))
    check("decode_token_ids", ok, len(texts), spent)

    a = torch.from_numpy(batch(6, 50, 70, (1,)).astype(bool)).to(dev)
    b = torch.from_numpy(batch(6, 50, 70, (1,)).astype(bool)).to(dev)
    inter, union = mct.intersection_union(a, b)
    an, bn = a.cpu().numpy(), b.cpu().numpy()
    ok = inter.tolist() == [int((x & y).sum()) for x, y in zip(an, bn)]
    ok &= union.tolist() == [int((x | y).sum()) for x, y in zip(an, bn)]
    check("intersection_union", ok, 6, 0.0)
    print("all checks passed" if not failures else f"{failures} check(s) FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
