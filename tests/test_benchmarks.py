"""Smoke tests of benchmarks/: each benchmark function runs once and every implementation agrees.

Correctness only: no assertion here looks at a time.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import maskcodec as mc

pytestmark = [
    pytest.mark.slow_without_jit,
    # pycocotools' own numpy 2 deprecation, raised inside pycocotools.mask.decode
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
]

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def codec():
    return _load("bench_codec")


@pytest.fixture(scope="module")
def cases(codec):
    return codec.load_cases(6)


def test_every_implementation_agrees_on_real_masks(codec, cases):
    table = {impl.key: impl for impl in codec.implementations()}
    assert len(table) == len(codec.implementations())  # keys are unique
    for case in cases:
        assert codec.check_case(case, table) == []
        assert case.text == mc.encode_mask(case.mask, codec.LABEL, grid=codec.GRID)


def test_check_case_notices_a_wrong_implementation(codec, cases):
    impls = {impl.key: impl for impl in codec.implementations()}
    broken = codec.Impl("mc_encode", "encode", "broken", lambda c: c.text.replace("others", "other"))
    impls["mc_encode"] = broken
    assert "encode text" in codec.check_case(cases[0], impls)


def test_timing_loop_and_summary_cover_every_implementation(codec, cases):
    impls = codec.implementations()
    per = codec.time_all(cases[:2], impls, repeat=1, number=1)
    assert set(per) == {impl.key for impl in impls}
    assert all(v.shape == (2,) and np.isfinite(v).all() and (v > 0).all() for v in per.values())
    medians, ratios = codec.summarize(per, impls)
    assert len(ratios) == len(codec.RATIOS)
    assert all(math.isfinite(r["value"]) for r in ratios.values())
    table = codec.format_table(medians, ratios, impls, per)
    assert all(impl.description in table for impl in impls)
    result = {
        "median_us": medians,
        "p90_us": dict.fromkeys(medians, 1.0),
        "descriptions": {impl.key: impl.description for impl in impls},
        "ratios": ratios,
    }
    markdown = codec.format_markdown(result)
    assert markdown.count("\n") == len(impls) + len(ratios) + 4


@pytest.mark.parametrize(
    "text",
    [
        "<seg>others *16\n others *3| dog *10| others *3\n</seg>",  # short: padded with the last value
        "<seg>others *5| dog *11\n dog *16\n others *16\n",  # truncated, no </seg>
        "<seg>others *5| dog *11\nothers *16\n</seg>",  # newline without the space: all background
        "<seg>cat *8| dog *8\n dog *16\n</seg>",  # no 'others': the first label is background
        "<seg>others *4| a|b *4| others *8\n</seg>",  # '|' inside a label splits the cell
        "no answer",
    ],
)
def test_reference_decoder_is_text4seg_mode(codec, text):
    size = (37, 23)
    want = mc.decode_mask(text, size=size, grid=16, mode="text4seg")
    assert np.array_equal(codec.reference_decode(text, size), want)


def test_reference_encoder_matches_the_maskcodec_writer(codec):
    rng = np.random.default_rng(0)
    for h, w in [(16, 16), (31, 57), (480, 640)]:
        mask = rng.random((h, w)) < 0.3
        assert codec.reference_encode(mask) == mc.encode_mask(mask, codec.LABEL, grid=16)


def test_first_calls_report_every_entry_point(codec, cases):
    times = codec.first_calls(cases[0])
    assert {"import numba", "encode_mask", "decode_mask", "coco.encode_annotation"} <= set(times)
    assert all(t >= 0 for t in times.values())


def test_import_benchmark_sees_no_heavy_import_and_cli_output_is_right():
    bench = _load("bench_import")
    imp = bench.import_times(runs=1)
    assert imp["heavy_modules_imported"] == []
    cli = bench.cli_times(runs=1)  # raises SystemExit if the CLI printed anything but encode_mask's text
    assert len(cli["cli_encode_wall_all_s"]) == 1


def test_torch_benchmark_checks_against_the_core_on_cpu():
    pytest.importorskip("torch")
    bench = _load("bench_torch")
    result = bench.run("cpu", batch=3, size=(37, 45), grid=8, repeat=1)
    assert {"quantize_area", "render", "decode_token_ids"} <= set(result["rows"])
    assert result["batch"] == 3 and "decode_token_ids" in bench.format_table(result)


def test_batch_benchmark_checks_batched_against_one_by_one():
    bench = _load("bench_batch")
    result = bench.run(5, threads=(1, 2), repeat=1)
    assert all(v > 0 for v in result["us_per_mask"].values())
    assert "decode_masks_stack: threads=2 speed-up over threads=1" in bench.format_table(result)


def test_hostile_benchmark_runs_every_case_small(tmp_path, capsys):
    bench = _load("bench_hostile")
    for name, (build, _) in bench.CASES.items():  # every builder, called in this process
        text, call, cells = build(0.002)
        assert text and cells > 0
        call(text)
    out = tmp_path / "r.json"
    cases = ["irle_star1", "parse_all_empty", "boxes_full"]
    assert bench.main([*(f"--case={c}" for c in cases), "--scale", "0.01", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["results"]
    assert set(rows) == set(cases) and all(r["error"] is None and r["input_bytes"] > 0 for r in rows.values())
    assert "| irle_star1 |" in capsys.readouterr().out
