"""Concurrency (issue 11): threads, processes racing on an empty numba cache, convert killed and resumed."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import maskcodec as mc
from maskcodec import boxes, coco, dialects, polygon

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow_without_jit  # about kernels running at once: meaningless without the JIT


def _work(seed: int) -> str:
    """Encode and decode a few masks every way; a digest of everything produced."""
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    for k in range(6):
        m = np.zeros((int(rng.integers(20, 90)), int(rng.integers(20, 90))), bool)
        y, x = rng.integers(0, 15, 2)
        m[y : y + int(rng.integers(3, 40)), x : x + int(rng.integers(3, 40))] = True
        for grid in (4, 16, 24):
            text = mc.encode_mask(m, "dog", grid=grid, method=("nearest", "area", "coverage")[k % 3])
            h.update(text.encode())
            h.update(mc.decode_mask(text, size=m.shape).tobytes())
            h.update(mc.decode_mask(text[: len(text) // 2], size=m.shape).tobytes())  # repair
            g = mc.from_text(text)
            h.update(dialects.to_text(g, "arle").encode())
            h.update(mc.parse(text, mode="text4seg", grid=grid).grid.ids.tobytes())
        rle = coco.mask_to_rle(m)
        h.update(rle["counts"] if isinstance(rle["counts"], bytes) else rle["counts"].encode())
        h.update(coco.rle_to_grid(rle, grid=8, method="area").tobytes())
        h.update(polygon.decode_polygons(polygon.encode_polygons(m), m.shape).tobytes())
        h.update(boxes.decode_boxes(boxes.encode_boxes(m, "dog", grid=4), m.shape).ids.tobytes())
    return h.hexdigest()


def test_eight_threads_give_the_one_thread_output():
    seeds = list(range(32))
    alone = [_work(s) for s in seeds]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(_work, seeds))
    assert together == alone


_CHILD = """
import sys, time
sys.path.insert(0, {tests!r})
t = float(sys.argv[1])
while time.time() < t:  # start together
    time.sleep(0.001)
from test_concurrency import _work
print(_work(7), _work(8))
"""


def test_four_processes_on_an_empty_numba_cache(tmp_path):
    """All four compile every kernel at once and write the same cache files: none crashes or differs.

    numba writes each cache entry to a temporary file and renames it into place, so a reader sees
    an old whole file or a new whole file; the index is keyed by this file's source stamp.
    """
    cache = tmp_path / "numba-cache"
    cache.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT / "src")}
    env.pop("NUMBA_DISABLE_JIT", None)
    code = _CHILD.format(tests=str(ROOT / "tests"))
    start = time.time() + 3
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(start)], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
        assert "Traceback" not in err and "NumbaWarning" not in err, err[-2000:]
    assert len({out for out, _ in outs}) == 1
    assert outs[0][0].split() == [_work(7), _work(8)]
    assert any(cache.rglob("*.nbi")) and any(cache.rglob("*.nbc"))
    # and a fifth process loads what they wrote
    again = subprocess.run([sys.executable, "-c", code, "0"], env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stdout == outs[0][0], again.stderr[-2000:]


def _big_coco(path: Path, n: int) -> None:
    """``n`` annotations over n/10 small images, each a random rectangle as uncompressed RLE."""
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(n // 10):
        images.append({"id": i, "file_name": f"img{i}.jpg", "height": 24, "width": 32})
    for k in range(n):
        m = np.zeros((24, 32), np.uint8)
        y, x = rng.integers(0, 20, 2)
        m[y : y + int(rng.integers(1, 12)), x : x + int(rng.integers(1, 16))] = 1
        rle = coco.mask_to_rle(m)
        anns.append({"id": k + 1, "image_id": k // 10, "category_id": 1 + k % 3, "iscrowd": 0,
                     "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()
                                      if isinstance(rle["counts"], bytes) else rle["counts"]}})
    cats = [{"id": 1, "name": "dog"}, {"id": 2, "name": "cat"}, {"id": 3, "name": "white horse"}]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))


@pytest.mark.slow
def test_convert_killed_mid_run_and_resumed_is_byte_identical(tmp_path):
    n = 50_000
    src = tmp_path / "instances.json"
    _big_coco(src, n)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    args = [sys.executable, "-m", "maskcodec", "convert", str(src), "--to", "llava", "--quiet", "--chunk-size", "500"]
    whole = tmp_path / "whole.jsonl"
    subprocess.run([*args, "-o", str(whole)], env=env, check=True, capture_output=True, timeout=900)
    cut = tmp_path / "cut.jsonl"
    state = Path(str(cut) + ".partial.json")
    proc = subprocess.Popen([*args, "-o", str(cut)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = 0
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:  # kill it somewhere in the middle
        try:
            done = json.loads(state.read_text())["done"]
        except (OSError, ValueError, KeyError):
            done = 0
        if done >= n // 3:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and 0 < done < n, done
    assert not cut.exists()
    resumed = subprocess.run([*args, "-o", str(cut), "--resume"], env=env, capture_output=True, text=True,
                             timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert cut.read_bytes() == whole.read_bytes()
    assert len(whole.read_bytes().splitlines()) == n
