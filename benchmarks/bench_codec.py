"""Codec speed on the 734 shared COCO masks: the Text4Seg reference pipeline, pycocotools, maskcodec.

Run from the repository root::

    .venv/bin/python benchmarks/bench_codec.py              # all masks, writes benchmarks/results.json
    .venv/bin/python benchmarks/bench_codec.py --masks 100 --out /tmp/r.json

Everything runs in one process.  The masks are decoded with pycocotools first
(Fortran-ordered uint8 arrays, as users hold them) and every implementation
sees the same mask.  Before timing, every implementation's output is checked
against the others on every mask (a mismatch aborts the run), and each
maskcodec function is called once so numba has compiled or loaded its
kernels; those first-call times are reported separately, together with a
from-scratch compile measured in a child process with an empty numba cache.

Timing: for each mask and each implementation, the best of ``--repeat``
rounds of ``--number`` back-to-back calls (divided by ``--number``), with the
garbage collector off; implementations are interleaved mask by mask so a
noisy neighbour slows them alike.  The table shows the median over masks in
microseconds; ratios are ratios of those medians.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "coco_val2014_segm100.json"
LABEL = "white horse"
GRID = 16


# --------------------------------------------------------------------------- the reference pipeline


def reference_encode(mask: np.ndarray, label: str = LABEL, rows: int = GRID, cols: int = GRID) -> str:
    """Text4Seg's data pipeline, as plain Python: PIL NEAREST resize, then an R-RLE writer.

    Each cell becomes its label string, then each row is scanned for runs of
    equal labels, written ``f"{label} *{count}"`` and joined by ``"| "``; rows
    are joined by ``"\\n "`` and the body ends with ``"\\n"``, inside ``<seg>``.
    """
    from PIL import Image

    small = np.array(Image.fromarray(mask.astype(np.uint8)).resize((cols, rows), Image.NEAREST))
    names = [[label if v else "others" for v in row] for row in small.tolist()]
    lines = []
    for row in names:
        runs = []
        current, count = row[0], 1
        for name in row[1:]:
            if name == current:
                count += 1
            else:
                runs.append(f"{current} *{count}")
                current, count = name, 1
        runs.append(f"{current} *{count}")
        lines.append("| ".join(runs))
    return "<seg>" + "\n ".join(lines) + "\n" + "</seg>"


def reference_decode(text: str, size: tuple[int, int], rows: int = GRID, cols: int = GRID) -> np.ndarray:
    """Text4Seg's evaluation decoder, as plain Python, and its nearest upsampling.

    The ``<seg>`` body is split into rows on ``"\\n "``, runs on ``"| "`` and
    label/count on ``" *"``; ``others`` is 0 and every other label foreground
    (when ``others`` is missing, the first label is the background);
    the flat list is padded with its last value or cut to ``rows * cols``;
    any error gives an all-background grid.  The grid is then upsampled by
    ``dst * in // out`` (what ``torch.nn.functional.interpolate`` does on a
    float64 tensor) with numpy fancy indexing, columns first on the small
    boolean grid (about 8x faster than indexing the int grid in one step, so
    the reference is not handicapped).
    """
    grid = reference_decode_grid(text, rows, cols)
    h, w = size
    ys = np.arange(h) * rows // h
    xs = np.arange(w) * cols // w
    return (grid != 0)[:, xs][ys]


def reference_decode_grid(text: str, rows: int = GRID, cols: int = GRID) -> np.ndarray:
    """The text -> ``rows x cols`` id grid half of :func:`reference_decode`."""
    want = rows * cols
    try:
        body = text.split("<seg>")[1].split("</seg>")[0].strip("\n")
        cells: list[str] = []
        for line in body.split("\n "):
            for run in line.split("| "):
                name, count = run.split(" *")
                cells.extend([name] * int(count))
        # The reference splits once more on "|" (for multi-label answers) and strips.
        names = [s.strip() for s in "|".join(cells).split("|")]
        order = list(dict.fromkeys(names))
        if "others" in order:  # background first; without it the first label is background
            order.remove("others")
            order.insert(0, "others")
        ids = {name: i for i, name in enumerate(order)}
        flat = [ids[name] for name in names]
    except Exception:
        flat = [0] * want
    if len(flat) < want:
        flat += [flat[-1]] * (want - len(flat))
    return np.array(flat[:want]).reshape(rows, cols)


# --------------------------------------------------------------------------- cases and implementations


@dataclass
class Case:
    """One mask as every implementation needs it."""

    rle: dict  # the annotation's compressed RLE, as in the JSON file (str counts)
    mask: np.ndarray  # pycocotools.mask.decode(rle): (h, w) uint8, Fortran order
    text: str  # its answer text at GRID x GRID, written by the reference pipeline
    mask_c: np.ndarray  # the same mask, C order
    out: np.ndarray | None = None  # what decoding gives back: an (h, w) C-ordered bool mask

    def __post_init__(self) -> None:
        if self.out is None:
            self.out = np.ascontiguousarray(self.mask, dtype=bool)

    @property
    def size(self) -> tuple[int, int]:
        return self.mask.shape  # type: ignore[return-value]


def load_cases(limit: int | None = None) -> list[Case]:
    """The shared masks, decoded by pycocotools; maskcodec is not called here (its
    first calls are timed separately)."""
    from pycocotools import mask as mask_utils

    anns = json.loads(DATA.read_text())[:limit]
    cases = []
    with warnings.catch_warnings():  # pycocotools' own numpy 2 deprecation warning
        warnings.simplefilter("ignore", DeprecationWarning)
        for ann in anns:
            mask = mask_utils.decode(ann["segmentation"])
            cases.append(Case(ann["segmentation"], mask, reference_encode(mask), np.ascontiguousarray(mask)))
    return cases


@dataclass(frozen=True)
class Impl:
    key: str
    group: str
    description: str
    fn: Callable[[Case], object]


def implementations() -> list[Impl]:
    """Every timed implementation; imports are done here so timing never includes them."""
    import maskcodec as mc
    from maskcodec import coco
    from pycocotools import mask as mask_utils

    def pyc_encode(c: Case):
        return mask_utils.encode(c.mask)  # already Fortran uint8, as pycocotools needs

    def ref_decode_then_pycocotools(c: Case):
        return mask_utils.encode(np.asfortranarray(reference_decode(c.text, c.size).astype(np.uint8)))

    def pycocotools_then_encode_mask(c: Case):
        return mc.encode_mask(mask_utils.decode(c.rle), LABEL, grid=GRID)

    return [
        Impl("ref_encode", "encode", "reference: PIL NEAREST + Python R-RLE", lambda c: reference_encode(c.mask)),
        Impl("mc_encode", "encode", "maskcodec.encode_mask", lambda c: mc.encode_mask(c.mask, LABEL, grid=GRID)),
        Impl("ref_encode_c", "encode", "reference, on a C-ordered mask", lambda c: reference_encode(c.mask_c)),
        Impl("mc_encode_c", "encode", "maskcodec.encode_mask, on a C-ordered mask",
             lambda c: mc.encode_mask(c.mask_c, LABEL, grid=GRID)),
        Impl("ref_decode", "decode", "reference: split decoder + numpy upsample",
             lambda c: reference_decode(c.text, c.size)),
        Impl("ref_decode_grid", "decode", "reference: split decoder only (text -> 16x16)",
             lambda c: reference_decode_grid(c.text)),
        Impl("mc_from_text", "decode", "maskcodec.parse (repair, grid=16; text -> 16x16)",
             lambda c: mc.parse(c.text, grid=GRID).grid),
        Impl("mc_decode", "decode", "maskcodec.decode_mask (repair, grid=16)",
             lambda c: mc.decode_mask(c.text, size=c.size, grid=GRID)),
        Impl("mc_decode_strict", "decode", "maskcodec.decode_mask (strict, grid=16)",
             lambda c: mc.decode_mask(c.text, size=c.size, grid=GRID, mode="strict")),
        Impl("pyc_encode", "pycocotools", "pycocotools.mask.encode (mask -> RLE)", pyc_encode),
        Impl("mc_mask_to_rle", "pycocotools", "maskcodec.coco.mask_to_rle", lambda c: coco.mask_to_rle(c.mask)),
        Impl("pyc_decode", "pycocotools", "pycocotools.mask.decode (RLE -> mask)", lambda c: mask_utils.decode(c.rle)),
        Impl("mc_rle_to_mask", "pycocotools", "maskcodec.coco.rle_to_mask", lambda c: coco.rle_to_mask(c.rle)),
        Impl("pyc_then_encode", "coco", "RLE -> text: pycocotools.decode + encode_mask", pycocotools_then_encode_mask),
        Impl("mc_encode_annotation", "coco", "RLE -> text: maskcodec.coco.encode_annotation",
             lambda c: coco.encode_annotation(c.rle, LABEL, grid=GRID)),
        Impl("ref_decode_then_pyc", "coco", "text -> RLE: reference decode + pycocotools.encode",
             ref_decode_then_pycocotools),
        Impl("mc_text_to_rle", "coco", "text -> RLE: maskcodec.coco.text_to_rle",
             lambda c: coco.text_to_rle(c.text, size=c.size, grid=GRID)),
        Impl("count_nonzero", "quantize", "np.count_nonzero(mask)", lambda c: np.count_nonzero(c.mask)),
        Impl("mc_area", "quantize", "maskcodec.quantize(method='area')",
             lambda c: mc.quantize(c.mask, grid=GRID, method="area")),
        Impl("mc_coverage", "quantize", "maskcodec.quantize(method='coverage')",
             lambda c: mc.quantize(c.mask, grid=GRID, method="coverage")),
        Impl("mc_rle_area", "quantize", "maskcodec.coco.rle_to_grid(method='area') from RLE",
             lambda c: coco.rle_to_grid(c.rle, grid=GRID, method="area")),
        Impl("copy", "copy", "mask.copy(order='K') (plain memory copy)", lambda c: c.mask.copy(order="K")),
        Impl("copy_out", "copy", "copy of a bool mask of decode's output size", lambda c: c.out.copy()),
    ]


#: (numerator, denominator, what the ratio means, target) for the summary.
RATIOS = [
    ("ref_encode", "mc_encode", "encode speed-up over the reference", ">= 30"),
    ("ref_encode_c", "mc_encode_c", "encode speed-up, C-ordered masks", ""),
    ("ref_decode", "mc_decode", "decode speed-up over the reference", ">= 5"),
    ("ref_decode_grid", "mc_from_text", "text -> grid speed-up (no upsampling)", ""),
    ("mc_area", "count_nonzero", "area quantize / count_nonzero", "<= 1.5"),
    ("mc_coverage", "count_nonzero", "coverage quantize / count_nonzero", "<= 1.5"),
    ("pyc_encode", "mc_mask_to_rle", "pycocotools.encode / coco.mask_to_rle", ""),
    ("pyc_decode", "mc_rle_to_mask", "pycocotools.decode / coco.rle_to_mask", ""),
    ("pyc_then_encode", "mc_encode_annotation", "(pycocotools.decode + encode_mask) / coco.encode_annotation", ""),
    ("ref_decode_then_pyc", "mc_text_to_rle", "(reference decode + pycocotools.encode) / coco.text_to_rle", ""),
    ("mc_encode", "copy", "encode_mask / mask.copy()", ""),
    ("mc_decode", "copy_out", "decode_mask / a copy of its output", "<= 1.5"),
    ("mc_from_text", "copy_out", "parse / a copy of decode's output", "<= 0.5"),
]


def _rle_bytes(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode() if isinstance(counts, str) else counts}


def check_case(case: Case, impls: dict[str, Impl]) -> list[str]:
    """Names of the checks where implementations disagree on ``case`` (empty when all agree)."""
    from maskcodec import coco

    out = {k: impl.fn(case) for k, impl in impls.items()}
    bad = []
    texts = ("ref_encode", "mc_encode", "ref_encode_c", "mc_encode_c", "mc_encode_annotation", "pyc_then_encode")
    if len({out[k] for k in texts} | {case.text}) != 1:
        bad.append("encode text")
    if not np.array_equal(out["ref_decode_grid"] != 0, out["mc_from_text"].foreground):
        bad.append("text -> grid")
    fg = case.mask.astype(bool)
    reference_mask = out["ref_decode"]
    for key in ("mc_decode", "mc_decode_strict"):
        if not np.array_equal(out[key], reference_mask):
            bad.append(key)
    if not (out["ref_decode_then_pyc"] == out["mc_text_to_rle"]):
        bad.append("text -> RLE")
    rle = _rle_bytes(case.rle)
    if not (out["pyc_encode"] == out["mc_mask_to_rle"] == rle):
        bad.append("mask -> RLE")
    if not (np.array_equal(out["pyc_decode"], fg) and np.array_equal(out["mc_rle_to_mask"], fg)):
        bad.append("RLE -> mask")
    if out["count_nonzero"] != int(fg.sum()):
        bad.append("count_nonzero")
    if not np.array_equal(out["mc_area"], out["mc_rle_area"]):
        bad.append("area from RLE")
    if not np.array_equal(out["mc_coverage"], coco.rle_to_grid(case.rle, grid=GRID, method="coverage")):
        bad.append("coverage")
    if not np.array_equal(out["copy"], case.mask):
        bad.append("copy")
    if not np.array_equal(out["copy_out"], fg):
        bad.append("copy_out")
    return bad


def check_all(cases: list[Case], impls: list[Impl]) -> None:
    table = {i.key: i for i in impls}
    failures = [(k, bad) for k, c in enumerate(cases) if (bad := check_case(c, table))]
    if failures:
        raise SystemExit(f"implementations disagree on {len(failures)} masks, e.g. mask {failures[0][0]}: {failures[0][1]}")


# --------------------------------------------------------------------------- timing


def first_calls(case: Case) -> dict[str, float]:
    """Seconds taken by the first call of each maskcodec entry point in this process
    (numba compiles its kernels or loads them from the on-disk cache here)."""
    import importlib

    t0 = time.perf_counter()
    importlib.import_module("numba")  # 0 when something imported it already
    times = {"import numba": time.perf_counter() - t0}
    import maskcodec as mc
    from maskcodec import coco

    calls = {
        "encode_mask": lambda: mc.encode_mask(case.mask, LABEL, grid=GRID),
        "decode_mask": lambda: mc.decode_mask(case.text, size=case.size, grid=GRID),
        "quantize area": lambda: mc.quantize(case.mask, grid=GRID, method="area"),
        "coco.encode_annotation": lambda: coco.encode_annotation(case.rle, LABEL, grid=GRID),
        "coco.rle_to_grid area": lambda: coco.rle_to_grid(case.rle, grid=GRID, method="area"),
        "coco.mask_to_rle": lambda: coco.mask_to_rle(case.mask),
        "coco.text_to_rle": lambda: coco.text_to_rle(case.text, size=case.size, grid=GRID),
        "coco.rle_to_mask": lambda: coco.rle_to_mask(case.rle),
    }
    for name, fn in calls.items():
        t0 = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - t0
    return times


_COMPILE_SCRIPT = """
import json, sys, time
sys.path.insert(0, {bench_dir!r})
import bench_codec as b
case = b.load_cases(1)[0]
t0 = time.perf_counter()
times = b.first_calls(case)
times["total"] = time.perf_counter() - t0
print(json.dumps(times))
"""


def compile_from_scratch() -> dict[str, float]:
    """First-call times in a child process whose numba cache directory is empty."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        env.pop("NUMBA_DISABLE_JIT", None)
        script = _COMPILE_SCRIPT.format(bench_dir=str(Path(__file__).resolve().parent))
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_all(cases: list[Case], impls: list[Impl], repeat: int, number: int) -> dict[str, np.ndarray]:
    """Per-mask seconds per call: best of ``repeat`` rounds of ``number`` calls."""
    timer = time.perf_counter
    per = {i.key: np.empty(len(cases)) for i in impls}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for k, case in enumerate(cases):
            for impl in impls:
                fn = impl.fn
                best = float("inf")
                for _ in range(repeat):
                    t0 = timer()
                    for _ in range(number):
                        fn(case)
                    best = min(best, timer() - t0)
                per[impl.key][k] = best / number
    finally:
        if enabled:
            gc.enable()
    return per


def machine_info() -> dict:
    from importlib.metadata import version

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": version("numba"),
        "pillow": version("pillow"),
        "pycocotools": version("pycocotools"),
        "maskcodec": version("maskcodec"),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def summarize(per: dict[str, np.ndarray], impls: list[Impl]) -> tuple[dict, dict]:
    medians = {i.key: float(np.median(per[i.key]) * 1e6) for i in impls}
    ratios = {
        f"{num}/{den}": {"value": medians[num] / medians[den], "meaning": meaning, "target": target}
        for num, den, meaning, target in RATIOS
        if num in medians and den in medians
    }
    return medians, ratios


def format_table(medians: dict, ratios: dict, impls: list[Impl], per: dict[str, np.ndarray]) -> str:
    lines = [f"{'implementation':<58} {'median us':>10} {'p90 us':>9}"]
    group = None
    for impl in impls:
        if impl.group != group:
            group = impl.group
            lines.append(f"-- {group}")
        p90 = float(np.percentile(per[impl.key], 90) * 1e6)
        lines.append(f"{impl.description:<58} {medians[impl.key]:>10.2f} {p90:>9.2f}")
    lines.append("")
    lines.append(f"{'ratio of medians':<66} {'value':>8}  target")
    for r in ratios.values():
        lines.append(f"{r['meaning']:<66} {r['value']:>8.2f}  {r['target']}")
    return "\n".join(lines)


def format_markdown(result: dict) -> str:
    """The tables of a results.json dict as Markdown (for docs/benchmarks.md)."""
    med, p90, desc = result["median_us"], result["p90_us"], result["descriptions"]
    lines = ["| implementation | median us | p90 us |", "|---|---:|---:|"]
    lines += [f"| {desc[k]} | {med[k]:.2f} | {p90[k]:.2f} |" for k in med]
    lines += ["", "| ratio of medians | value | target |", "|---|---:|---|"]
    lines += [f"| {r['meaning']} | {r['value']:.2f} | {r['target']} |" for r in result["ratios"].values()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--masks", type=int, default=None, help="use only the first N masks (default: all 734)")
    ap.add_argument("--repeat", type=int, default=5, help="rounds per mask and implementation (best is kept)")
    ap.add_argument("--number", type=int, default=3, help="calls per round")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results.json")), help="JSON results file ('' for none)")
    ap.add_argument("--no-compile", action="store_true", help="skip the from-scratch compile measurement")
    ap.add_argument("--markdown", metavar="RESULTS_JSON", help="print the tables of a results file as Markdown and exit")
    args = ap.parse_args(argv)
    if args.markdown:
        print(format_markdown(json.loads(Path(args.markdown).read_text())))
        return 0
    # pycocotools.mask.decode warns on every call under numpy 2; keep the output readable
    # (the warning machinery's cost stays in its timing, as users pay it too).
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="pycocotools")

    info = machine_info()
    cases = load_cases(args.masks)
    first = first_calls(cases[0])  # before anything else runs a maskcodec kernel
    scratch = None if args.no_compile else compile_from_scratch()
    impls = implementations()
    check_all(cases, impls)
    for impl in impls:  # one more warm-up round outside the timed loop
        impl.fn(cases[0])
    t0 = time.perf_counter()
    per = time_all(cases, impls, args.repeat, args.number)
    elapsed = time.perf_counter() - t0
    info["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    medians, ratios = summarize(per, impls)

    print(f"{len(cases)} masks, grid {GRID}x{GRID}, best of {args.repeat} x {args.number} calls per mask; "
          f"{elapsed:.1f} s of timing on {info['cpu']} ({info['cpus']} CPUs, load {info['loadavg_start']})")
    print("first calls in this process (s; numba cache as found): "
          + ", ".join(f"{k} {v:.3f}" for k, v in first.items()))
    if scratch:
        print("first calls with an empty numba cache (s, child process): "
              + ", ".join(f"{k} {v:.3f}" for k, v in scratch.items()))
    print()
    print(format_table(medians, ratios, impls, per))
    if args.out:
        result = {
            "machine": info,
            "settings": {"masks": len(cases), "grid": GRID, "label": LABEL, "repeat": args.repeat, "number": args.number},
            "first_call_s": first,
            "compile_from_scratch_s": scratch,
            "median_us": medians,
            "p90_us": {i.key: float(np.percentile(per[i.key], 90) * 1e6) for i in impls},
            "descriptions": {i.key: i.description for i in impls},
            "ratios": ratios,
        }
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
