"""Start-up costs: what ``import maskcodec`` adds to ``import numpy``, and one cold CLI encode.

Run from the repository root::

    .venv/bin/python benchmarks/bench_import.py                 # writes benchmarks/results_import.json
    .venv/bin/python benchmarks/bench_import.py --importtime    # also the slowest imports (-X importtime)

Import time: each run is a fresh interpreter that times ``import numpy`` and
then ``import maskcodec`` with ``time.perf_counter``; the median over runs is
reported, and each run also records whether numba, PIL or pycocotools got
imported (none should be).

Cold CLI: the wall time of a whole ``maskcodec encode MASK.png --grid 16
--label "white horse"`` process (interpreter start, imports, numba loading its
kernels from the on-disk cache, encoding, printing), on the first shared COCO
mask.  One untimed run first fills numba's cache; the median of the timed runs
is reported, with the CPU time (user + sys) the process used, which a busy
machine inflates less than the wall time; every run's output is checked
against ``encode_mask``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "coco_val2014_segm100.json"
LABEL = "white horse"

_IMPORT_SCRIPT = """
import sys, time
t0 = time.perf_counter()
import numpy
t1 = time.perf_counter()
import maskcodec
t2 = time.perf_counter()
print(t1 - t0, t2 - t1, *(m in sys.modules for m in ("numba", "PIL", "pycocotools")))
"""


def _env() -> dict:
    env = dict(os.environ)
    env.pop("NUMBA_DISABLE_JIT", None)
    return env


def import_times(runs: int = 9) -> dict:
    """Median seconds of ``import numpy`` and of ``import maskcodec`` after it, in fresh interpreters."""
    numpy_s, extra_s, heavy = [], [], set()
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _IMPORT_SCRIPT], capture_output=True, text=True,
                             check=True, env=_env()).stdout.split()
        numpy_s.append(float(out[0]))
        extra_s.append(float(out[1]))
        for name, flag in zip(("numba", "PIL", "pycocotools"), out[2:]):
            if flag == "True":
                heavy.add(name)
    return {
        "runs": runs,
        "import_numpy_s": statistics.median(numpy_s),
        "import_maskcodec_over_numpy_s": statistics.median(extra_s),
        "import_maskcodec_over_numpy_all_s": extra_s,
        "heavy_modules_imported": sorted(heavy),
    }


def slowest_imports(top: int = 12) -> list[tuple[float, str]]:
    """The ``top`` largest cumulative times (s) that ``-X importtime`` reports for ``import maskcodec``
    after numpy."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import numpy; import maskcodec"],
                         capture_output=True, text=True, check=True, env=_env()).stderr
    rows = []
    seen_numpy = False
    for line in err.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = [p.strip() for p in line[len("import time:"):].split("|")]
        if not parts[1].isdigit():
            continue
        name = parts[2]
        if name.strip() == "numpy":
            seen_numpy = True
            continue
        if seen_numpy:
            rows.append((int(parts[1]) / 1e6, name))
    return sorted(rows, reverse=True)[:top]


def _cli_command() -> list[str]:
    script = Path(sys.executable).parent / "maskcodec"
    return [str(script)] if script.exists() else [sys.executable, "-m", "maskcodec"]


def cli_times(runs: int = 7) -> dict:
    """Wall seconds of whole ``maskcodec encode`` processes, numba's cache warmed by one untimed run."""
    import numpy as np
    from PIL import Image
    from pycocotools import mask as mask_utils

    import maskcodec as mc

    ann = json.loads(DATA.read_text())[0]
    mask = mask_utils.decode(ann["segmentation"])
    expected = mc.encode_mask(mask, LABEL, grid=16)
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "mask.png"
        Image.fromarray(np.ascontiguousarray(mask)).save(png)
        cmd = [*_cli_command(), "encode", str(png), "--grid", "16", "--label", LABEL]
        walls, cpus = [], []
        for k in range(runs + 1):
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=_env()).stdout
            wall = time.perf_counter() - t0
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if out.rstrip("\n") != expected:
                raise SystemExit(f"maskcodec encode printed {out!r}, expected {expected!r}")
            if k:  # the first run warms numba's cache
                walls.append(wall)
                cpus.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
    python_only = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, env=_env())
        python_only.append(time.perf_counter() - t0)
    return {
        "runs": runs,
        "command": f"maskcodec encode MASK.png --grid 16 --label '{LABEL}'",
        "cli_encode_wall_s": statistics.median(walls),
        "cli_encode_wall_min_s": min(walls),
        "cli_encode_cpu_s": statistics.median(cpus),
        "cli_encode_wall_all_s": walls,
        "python_startup_wall_s": statistics.median(python_only),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9, help="fresh processes per measurement")
    ap.add_argument("--importtime", action="store_true", help="also list the slowest imports")
    ap.add_argument("--out", default=str(Path(__file__).with_name("results_import.json")),
                    help="JSON results file ('' for none)")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_codec import machine_info

    info = machine_info()
    imp = import_times(args.runs)
    cli = cli_times(args.runs)
    print(f"import numpy                       {imp['import_numpy_s'] * 1e3:8.1f} ms (median of {args.runs})")
    print(f"import maskcodec, after numpy      {imp['import_maskcodec_over_numpy_s'] * 1e3:8.1f} ms   target < 100 ms")
    print(f"heavy modules imported by it       {', '.join(imp['heavy_modules_imported']) or 'none'}")
    print(f"python -c pass (process wall)      {cli['python_startup_wall_s'] * 1e3:8.1f} ms")
    print(f"cold `maskcodec encode MASK.png --grid 16 --label '{LABEL}'`: median {cli['cli_encode_wall_s']:.3f} s, "
          f"min {cli['cli_encode_wall_min_s']:.3f} s (process wall, warm numba cache)   target < 0.8 s")
    print(f"  CPU time of that process (user + sys, median) {cli['cli_encode_cpu_s']:.3f} s: "
          "on a busy machine the wall time also counts waiting for a core")
    info["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    result = {"machine": info, "import": imp, "cli": cli}
    if args.importtime:
        result["slowest_imports_s"] = slowest_imports()
        print("\nslowest imports under maskcodec (cumulative, -X importtime):")
        for sec, name in result["slowest_imports_s"]:
            print(f"  {sec * 1e3:8.1f} ms  {name}")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
