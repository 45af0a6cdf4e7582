"""Worst-case throughput and memory of every parser on adversarial input.

Run from the repository root::

    .venv/bin/python benchmarks/bench_hostile.py                   # every case; writes results_hostile.json
    .venv/bin/python benchmarks/bench_hostile.py --case irle_star1 # one case
    .venv/bin/python benchmarks/bench_hostile.py --scale 0.25      # smaller inputs (a quick look)
    git archive v0.1.0 src | tar -x -C /tmp/old                    # measure an older tree:
    .venv/bin/python benchmarks/bench_hostile.py --src /tmp/old/src --out before.json

Each case builds one adversarial input (long labels full of separators,
millions of rows, runs or cells, alternating dialect headers, huge counts,
``'* 1'`` repeated, thousands of empty blocks at grid 1024, box instances,
polygon zig-zags, long COCO RLE strings) and runs one parser on it in a child
process, so that

* a case that takes too long is killed at ``--timeout`` seconds (reported as
  ``> timeout``: its MB/s is then an upper bound);
* a case that allocates too much fails inside its own address-space limit
  (``--memory`` GiB, ``RLIMIT_AS``) instead of taking the machine down;
* peak memory is measured cleanly: the child resets the kernel's peak-RSS
  counter (``/proc/self/clear_refs``) after building the input and warming
  the JIT on a small input, and reports ``VmHWM`` minus the RSS before the call.

Reported per case: input size (MB of UTF-8), time of the call, MB/s, the extra
peak memory and that memory per MB of input.  The goals (issue 11) are at
least 5 MB/s and at most 30 MB of memory per MB of input, on every case;
cases whose *output* is large by request (a 1000x1000 mask) state it, and
their memory is compared with input plus output.  These are benchmark
figures: no test asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results_hostile.json"


# --------------------------------------------------------------------------- cases
# Each builder takes the scale and returns (text, call, output_bytes): call(text) runs the parser.


def _rrle_separator_labels(scale):
    import maskcodec as mc

    # 256 rows whose one label is 8 KB of "a|": every other character a run separator.
    width = int(8192 * scale)
    row = "a|" * (width // 2) + " *16"
    text = "<seg>" + "\n ".join([row] * 256) + "\n</seg>"
    return text, lambda t: mc.parse(t, mode="repair", grid=(256, 16)), 256 * 16


def _irle_star1(scale):
    import maskcodec as mc

    text = "<seg>" + "* 1" * int(700_000 * scale) + "\n</seg>"
    return text, lambda t: mc.parse(t, mode="repair", format="irle", grid=16), 256


def _rrle_repair_rows(scale):
    import maskcodec as mc

    # A million rows for a 16x16 grid: 16 are kept, the rest are extra.
    text = "<seg>" + "\n ".join(["others *8| dog *8"] * int(150_000 * scale)) + "\n</seg>"
    return text, lambda t: mc.parse(t, mode="repair", grid=16), 256


def _rrle_repair_runs(scale):
    import maskcodec as mc

    # One row of a million runs, every one a bad separator ("|" without the blank).
    text = "<seg>" + "|".join(["a *1", "b *1"] * int(250_000 * scale)) + "\n</seg>"
    return text, lambda t: mc.parse(t, mode="repair", grid=16), 256


def _rrle_strict_runs(scale):
    import maskcodec as mc

    # A 1024x1024 grid of one-cell runs with two labels (valid): the well-formed worst case.
    rows = max(1, int(256 * scale))
    row = "| ".join(["a *1", "b *1"] * 512)
    text = "<seg>" + "\n ".join([row] * rows) + "\n</seg>"
    return text, lambda t: mc.parse(t, mode="strict", grid=(rows, 1024)), rows * 1024


def _rrle_repair_bad_counts(scale):
    import maskcodec as mc

    # Huge counts everywhere: 2,000-digit counts, clamped.
    count = "9" * 2000
    text = "<seg>" + "\n ".join([f"dog *{count}"] * int(1000 * scale)) + "\n</seg>"
    return text, lambda t: mc.parse(t, mode="repair", grid=1024), 1024 * 1024


def _full_repair_cells(scale):
    import maskcodec as mc

    # Full descriptors: more than a million cells of distinct unsafe labels.
    n = int(150_000 * scale)
    text = "<seg>" + "| ".join(f"l{i}<seg" for i in range(n)) + "\n</seg>"
    return text, lambda t: mc.parse(t, mode="repair", format="full", grid=1024), 1024 * 1024


def _text4seg_long_label(scale):
    import maskcodec as mc

    # One 2 MB label repeated over a 1024x1024 grid by the reference decoder.
    label = "x" * int(2_000_000 * scale)
    text = f"<seg>{label} *1048576\n</seg>"
    return text, lambda t: mc.parse(t, mode="text4seg", grid=1024), 1024 * 1024


def _parse_all_empty(scale):
    import maskcodec as mc

    # Empty blocks at grid 1024: each result is a 1024x1024 all-background grid.
    text = "<seg></seg>" * int(500 * scale)
    return text, lambda t: mc.parse_all(t, mode="repair", grid=1024), int(500 * scale) * 1024 * 1024


def _dialect_alt_headers(scale):
    from maskcodec import dialects

    n = int(20_000 * scale)
    lines = []
    for i in range(n):
        lines.append(f"{dialects.alias(i + 1)}=label {i}")
        lines.append(".=others")
    text = "<seg>" + "\n".join(lines) + "\n.\n</seg>"
    return text, lambda t: dialects.parse(t, "arle", grid=16, mode="repair"), 256


def _dialect_bad_rows(scale):
    from maskcodec import dialects

    # 1024 rows, each broken at its end after a long run of valid cells.
    row = " *1| ".join(["a"] * int(600 * scale)) + " *1|*"
    text = "<seg>" + "\n ".join([row] * 1024) + "\n</seg>"
    return text, lambda t: dialects.parse(t, "crle", grid=1024, mode="repair"), 1024 * 1024


def _boxes_full(scale):
    from maskcodec import boxes

    n = int(3000 * scale)
    text = "<seg>" + "".join("<box>0 0 99 99</box>dog *1\n" for _ in range(n)) + "</seg>"
    return text, lambda t: boxes.decode_boxes(t, (1000, 1000)), 1000 * 1000


def _boxes_labels(scale):
    from maskcodec import boxes

    n = int(20_000 * scale)
    text = "<seg>" + "".join(f"<box>{i % 99} 0 {i % 99} 0</box>obj {i} *1\n" for i in range(n)) + "</seg>"
    return text, lambda t: boxes.decode_boxes(t, (1000, 1000)), 1000 * 1000


def _polygon_zigzag(scale):
    from maskcodec import polygon

    n = int(100_000 * scale)
    pts = [[round(i / n, 6), float(i % 2)] for i in range(n)]
    text = json.dumps(pts)
    return text, lambda t: polygon.decode_polygons(t, (1000, 1000)), 1000 * 1000


def _polygon_loc(scale):
    from maskcodec import polygon

    n = int(100_000 * scale)
    text = "".join(f"<loc_{(i * 7) % 1000}><loc_{999 * (i % 2)}>" for i in range(n))
    return text, lambda t: polygon.decode_polygons(t, (1000, 1000), format="loc"), 1000 * 1000


def _coco_rle_string(scale):
    import numpy as np

    from maskcodec import coco

    # Vertical stripes one pixel wide: one count per pixel column run.
    h, w = 1000, int(2000 * scale)
    m = np.zeros((h, w), dtype=np.uint8)
    m[:, ::2] = 1
    m[::2, :] ^= 1
    rle = coco.mask_to_rle(m)
    return rle["counts"], lambda t: coco.rle_to_mask({"size": [h, w], "counts": t}), h * w


CASES = {
    "rrle_separator_labels": (_rrle_separator_labels, "R-RLE repair: 256 labels of 8 KB of 'a|'"),
    "irle_star1": (_irle_star1, "I-RLE repair: '* 1' repeated"),
    "rrle_repair_rows": (_rrle_repair_rows, "R-RLE repair: 150k rows for a 16x16 grid"),
    "rrle_repair_runs": (_rrle_repair_runs, "R-RLE repair: one row of 500k runs, bad separators"),
    "rrle_strict_runs": (_rrle_strict_runs, "R-RLE strict: 256x1024 one-cell runs (valid)"),
    "rrle_repair_bad_counts": (_rrle_repair_bad_counts, "R-RLE repair: 1000 rows with 2000-digit counts"),
    "full_repair_cells": (_full_repair_cells, "full repair: 150k distinct unsafe labels"),
    "text4seg_long_label": (_text4seg_long_label, "text4seg: a 2 MB label over 1024x1024"),
    "parse_all_empty": (_parse_all_empty, "parse_all repair: 500 empty blocks at grid 1024"),
    "dialect_alt_headers": (_dialect_alt_headers, "arle repair: 40k header lines, label/background"),
    "dialect_bad_rows": (_dialect_bad_rows, "crle repair: 1024 long rows, each broken at its end"),
    "boxes_full": (_boxes_full, "boxes: 3000 full-image instances at 1000x1000"),
    "boxes_labels": (_boxes_labels, "boxes: 20k distinct labels at 1000x1000"),
    "polygon_zigzag": (_polygon_zigzag, "polygon JSON: 100k zig-zag points at 1000x1000"),
    "polygon_loc": (_polygon_loc, "polygon loc: 100k zig-zag points at 1000x1000"),
    "coco_rle_string": (_coco_rle_string, "COCO compressed RLE: 1000x2000 checkerboard"),
}


# --------------------------------------------------------------------------- child


def _status(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _child(name: str, scale: float) -> dict:
    build, _ = CASES[name]
    small, call_small, _ = build(min(scale, 0.01))
    try:  # warm the JIT and every import on a small input of the same shape
        call_small(small)
    except Exception:  # noqa: BLE001 - the timed call reports what it raises
        pass
    text, call, out_cells = build(scale)
    size = len(text) if isinstance(text, bytes) else len(text.encode("utf-8", "surrogatepass"))
    import gc

    gc.collect()
    rss0 = _status("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    t0 = time.perf_counter()
    error = None
    try:
        result = call(text)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        result = None
        error = f"{type(exc).__name__}: {str(exc)[:120]}"
    seconds = time.perf_counter() - t0
    peak = max(_status("VmHWM") - rss0, 0)
    del result
    return {"input_bytes": size, "seconds": seconds, "peak_bytes": peak, "output_cells": out_cells, "error": error}


# --------------------------------------------------------------------------- parent


def _run(name: str, scale: float, timeout: float, memory_gib: float, src: str) -> dict:
    def limit():
        cap = int(memory_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    cmd = [sys.executable, __file__, "--child", name, "--scale", str(scale)]
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 60, preexec_fn=limit, env=env)
    except subprocess.TimeoutExpired:
        return {"timeout": True, "seconds": time.perf_counter() - t0}
    if proc.returncode != 0:
        return {"error": f"child exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
    row = json.loads(proc.stdout.strip().splitlines()[-1])
    if row["seconds"] > timeout:
        row["timeout"] = True
    return row


def _child_with_alarm(name: str, scale: float, timeout: float) -> None:
    import signal

    def stop(signum, frame):
        raise TimeoutError

    signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, timeout + 30)  # the parent also waits, with a margin
    print(json.dumps(_child(name, scale)))


def _fmt(row: dict) -> tuple[str, ...]:
    """(input MB, seconds, MB/s, peak MB, peak per MB of input, peak per MB of input + output, note)."""
    mb = row.get("input_bytes", 0) / 1e6
    if row.get("timeout"):
        rate = f"< {mb / row['seconds']:.2f}" if mb else "?"
        return f"{mb:.2f}" if mb else "?", f"> {row['seconds']:.0f}", rate, "", "", "", "killed at the time limit"
    if "input_bytes" not in row:
        return "?", "", "", "", "", "", row.get("error", "")
    mbs = mb / row["seconds"] if row["seconds"] > 0 else float("inf")
    peak = row["peak_bytes"] / 1e6
    both = mb + row["output_cells"] / 1e6
    return (f"{mb:.2f}", f"{row['seconds']:.3f}", f"{mbs:.1f}", f"{peak:.0f}", f"{peak / mb:.1f}",
            f"{peak / both:.1f}", row.get("error") or "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="run only these cases")
    ap.add_argument("--scale", type=float, default=1.0, help="input size factor (default 1)")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it is killed")
    ap.add_argument("--memory", type=float, default=6.0, help="address-space limit per case, GiB")
    ap.add_argument("--out", default=str(RESULTS), help="where to write the JSON results ('' for nowhere)")
    ap.add_argument("--src", default=str(ROOT / "src"),
                    help="the maskcodec source tree to measure (e.g. an older commit's, from git archive)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child_with_alarm(args.child, args.scale, args.timeout)
        return 0
    names = args.case or list(CASES)
    results = {}
    print("| case | input MB | s | MB/s | peak MB | per MB in | per MB in+out | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name in names:
        row = _run(name, args.scale, args.timeout, args.memory, args.src)
        results[name] = row
        print(f"| {name} | " + " | ".join(_fmt(row)) + " |", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"scale": args.scale, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
