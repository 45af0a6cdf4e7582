"""The convert pipeline: formats, templates, seeds, workers, atomic output, resume, CLI, round trip."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from datasets_fixtures import build_coco, build_grefcoco, build_semantic

import maskcodec as mc
from maskcodec.cli import main
from maskcodec.datasets import (
    FORMATS,
    ArrayTarget,
    Sample,
    Templates,
    answer_of,
    convert,
    load_templates,
    read_coco,
    read_grefcoco,
    read_semantic,
)
from maskcodec.metrics import IoUAccumulator, oracle


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    return build_coco(root)


def _lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", FORMATS)
def test_formats_parse_back(tmp_path, coco, fmt):
    path, _ = coco
    src = read_coco(path, image_root="coco")
    out = tmp_path / f"{fmt}.jsonl"
    summary = convert(src, out, to=fmt, grid=16)
    recs = _lines(out)
    assert summary.samples == len(recs) == len(src) and summary.skipped == 0
    for rec, s in zip(recs, src):
        image, question, answer = answer_of(rec)
        assert image == s.image and s.label in question and rec["id"] == s.id
        g = mc.parse(answer).grid
        np.testing.assert_array_equal(g.foreground, mc.quantize(s.target.load(), grid=16))
    first = recs[0]
    if fmt == "llava":
        assert first["conversations"][0]["from"] == "human"
        assert first["conversations"][0]["value"].startswith("<image>\n")
        assert first["conversations"][1]["from"] == "gpt"
    elif fmt in ("sharegpt", "ms-swift"):
        assert first["messages"][0]["content"].startswith("<image>") and first["images"] == [first_image(src)]
    elif fmt == "swift":
        assert first["query"].startswith(f"<img>{first_image(src)}</img>") and "<seg>" in first["response"]
    else:
        assert first["messages"][0]["content"][0] == {"type": "image", "image": first_image(src)}
        assert first["messages"][1]["content"][0]["type"] == "text"


def first_image(src):
    return src[0].image


def test_round_trip_oracle_iou(tmp_path, coco):
    """convert -> parse the answers back -> render -> IoU equals quantize-render IoU (the oracle)."""
    path, _ = coco
    src = read_coco(path)
    out = tmp_path / "rt.jsonl"
    convert(src, out, to="hf-messages", grid=16, workers=1)
    acc = IoUAccumulator()
    masks = []
    for rec, s in zip(_lines(out), src):
        mask = s.target.load()
        masks.append(mask)
        decoded = mc.decode_mask(answer_of(rec)[2], size=mask.shape, mode="strict")
        acc.add(decoded, mask)
    direct = oracle(masks, grid=16)
    assert acc.ciou == direct.ciou and acc.giou == direct.giou and acc.count == len(src)


def test_grefcoco_no_target_round_trip(tmp_path, coco):
    _, data = coco
    build_grefcoco(tmp_path, data)
    src = read_grefcoco(tmp_path)
    out = tmp_path / "g.jsonl"
    convert(src, out, to="llava", grid=24)
    acc = IoUAccumulator()
    for rec, s in zip(_lines(out), src):
        mask = s.target.load()
        acc.add(mc.decode_mask(answer_of(rec)[2], size=mask.shape), mask)
    assert acc.empty_targets == 2
    assert acc.giou == pytest.approx(oracle([s.target.load() for s in src], grid=24).giou)


def test_workers_and_seed_reproducible(tmp_path, coco):
    path, _ = coco
    src = read_coco(path)
    a, b, c, d = (tmp_path / f"{k}.jsonl" for k in "abcd")
    convert(src, a, to="sharegpt", seed=7, chunk_size=4)
    convert(src, b, to="sharegpt", seed=7, chunk_size=4, workers=2)
    convert(src, c, to="sharegpt", seed=7, chunk_size=9)
    convert(src, d, to="sharegpt", seed=8, chunk_size=4)
    assert a.read_bytes() == b.read_bytes() == c.read_bytes()
    assert a.read_bytes() != d.read_bytes()
    questions = {r["messages"][0]["content"].split(src[0].label)[0] for r in _lines(a)}
    assert len(questions) > 1  # templates vary across samples


def test_templates_file(tmp_path, coco):
    path, _ = coco
    tfile = tmp_path / "t.json"
    tfile.write_text(json.dumps({"referring": {"questions": ["Find {label} {please}."]}}))
    with pytest.raises(mc.InputError, match="please"):
        load_templates(tfile)
    tfile.write_text(
        json.dumps({"referring": {"questions": ["Find {label}!"], "answers": ["OK {label}:\n{seg}"]}})
    )
    out = tmp_path / "t.jsonl"
    convert(read_coco(path), out, to="swift", templates=str(tfile))
    rec = _lines(out)[0]
    label = read_coco(path)[0].label
    assert rec["query"].endswith(f"Find {label}!") and rec["response"].startswith(f"OK {label}:\n<seg>")
    with pytest.raises(mc.InputError, match="exactly once"):
        Templates(referring_answers=("no seg here {label}",))
    with pytest.raises(mc.InputError, match="never names"):
        Templates(semantic_questions=("Segment everything.",))
    with pytest.raises(mc.InputError, match="unknown key"):
        load_templates({"refering": {}})
    t = Templates(referring_questions=("Q {label}",), referring_answers=("{seg}",))
    q, a = t.render("referring", ["a {seg} b"], "S", seed=0, key="k")
    assert (q, a) == ("Q a {seg} b", "S")  # a label cannot inject the answer text


def test_semantic_conversion(tmp_path, coco):
    _, data = coco
    label_dir, names, inst_dir, truth = build_semantic(tmp_path, data)
    out = tmp_path / "sem.jsonl"
    summary = convert(read_semantic(label_dir, names, instance_dir=inst_dir), out, to="llava", grid=32)
    assert summary.samples == len(truth)
    for rec in _lines(out):
        q, a = rec["conversations"][0]["value"], rec["conversations"][1]["value"]
        g = mc.parse(a).grid
        assert g.shape == (32, 32)
        asked = [n for n in g.labels[1:]]
        assert all(n in q for n in asked)  # every label in the grid was asked for
        assert any(n.endswith(" 1") for n in asked)


def _bad_sample():
    return Sample("bad", "x.jpg", None, ArrayTarget(np.zeros((4, 4), np.uint8), ((1, "cat"),)), "semantic")


def test_bad_samples_skipped_or_fatal(tmp_path):
    good = [Sample(f"s{i}", "x.jpg", "cat", ArrayTarget(np.eye(4, dtype=bool))) for i in range(3)]
    samples = good[:2] + [_bad_sample()] + good[2:]
    err = io.StringIO()
    summary = convert(samples, tmp_path / "o.jsonl", stream=err)
    assert (summary.samples, summary.skipped) == (3, 1)
    assert "bad" in err.getvalue() and "no labelled class" in str(summary.problems[0])
    assert "skipped 1" in summary.to_text()
    with pytest.raises(mc.MaskcodecError, match="no labelled class"):
        convert(samples, tmp_path / "p.jsonl", on_error="raise", stream=io.StringIO())
    assert not (tmp_path / "p.jsonl").exists()
    with pytest.raises(mc.MaskcodecError, match="no labelled class"):
        convert(
            samples * 3, tmp_path / "q.jsonl", on_error="raise", workers=2, chunk_size=2, stream=io.StringIO()
        )


class _Stop(Exception):
    pass


def test_interrupt_leaves_no_output_and_resume_completes(tmp_path, coco):
    path, _ = coco
    src = read_coco(path)
    whole = tmp_path / "whole.jsonl"
    convert(src, whole, chunk_size=3)
    out = tmp_path / "out.jsonl"

    def stop_after(done):
        if done >= 9:
            raise _Stop

    with pytest.raises(_Stop):
        convert(src, out, chunk_size=3, _after_chunk=stop_after)
    assert not out.exists()
    partial = tmp_path / "out.jsonl.partial"
    assert partial.exists() and len(partial.read_text().splitlines()) == 9
    # a torn line, as if the process died inside a write
    with open(partial, "ab") as fh:
        fh.write(b'{"id": "torn", "conv')
    with pytest.raises(mc.InputError, match="cannot resume"):
        convert(src, out, chunk_size=3, resume=True, seed=1)
    summary = convert(src, out, chunk_size=3, resume=True)
    assert summary.resumed_from == 9 and summary.samples == len(src)
    assert out.read_bytes() == whole.read_bytes()
    assert not partial.exists() and not (tmp_path / "out.jsonl.partial.json").exists()
    with pytest.raises(mc.InputError, match="already complete"):
        convert(src, out, resume=True)


def test_summary_statistics(tmp_path, coco):
    path, _ = coco
    src = read_coco(path)
    summary = convert(src, tmp_path / "s.jsonl", grid=16)
    t = summary.tokens
    assert sum(summary.token_counts.values()) == len(src)
    assert t["median"] >= 80 and t["max"] >= t["p95"] >= t["median"]  # an empty 16x16 body alone is 80
    assert t["mean"] == pytest.approx(t["total"] / len(src))


def test_progress_bar(tmp_path):
    samples = [Sample(f"s{i}", "x.jpg", "cat", ArrayTarget(np.eye(4, dtype=bool))) for i in range(5)]
    err = io.StringIO()
    convert(samples, tmp_path / "o.jsonl", progress=True, stream=err, chunk_size=2)
    assert "5/5" in err.getvalue() and "100%" in err.getvalue() and "<00:00" in err.getvalue()  # tqdm: ETA
    quiet = io.StringIO()
    convert(samples, tmp_path / "o.jsonl", stream=quiet)  # not a terminal: no bar
    assert quiet.getvalue() == ""


def test_cli_formats_agree_and_parser_stays_light():
    import subprocess
    import sys

    from maskcodec import _cli_data

    assert _cli_data.FORMATS == FORMATS
    code = "import sys, maskcodec.cli as c; c.build_parser(); print('maskcodec.datasets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_convert(tmp_path, coco, capsys):
    path, _ = coco
    out = tmp_path / "cli.jsonl"
    rc = main(
        [
            "convert",
            str(path),
            "--to",
            "llava",
            "--grid",
            "16",
            "-o",
            str(out),
            "--workers",
            "2",
            "--chunk-size",
            "4",
            "--seed",
            "3",
            "--image-root",
            "coco/val2014",
        ]
    )
    assert rc == 0
    err = capsys.readouterr().err
    assert f"wrote {len(read_coco(path))} samples" in err and "skipped no samples" in err
    rec = _lines(out)[0]
    assert rec["image"].startswith("coco/val2014/")
    rc = main(["convert", str(tmp_path / "missing.json"), "--to", "llava", "-o", str(out)])
    assert rc == 1 and "missing.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["convert", str(path), "--to", "alpaca", "-o", str(out)])
    assert "invalid choice: 'alpaca'" in capsys.readouterr().err
    assert main(["convert", str(path), "--to", "llava", "--grid", "4", "4", "4", "-o", str(out)]) == 1
    assert "--grid takes N or ROWS COLS" in capsys.readouterr().err


def test_workers_with_threads_running_use_spawn(tmp_path, coco, monkeypatch):
    """With another thread alive the pool is spawned, not forked; the output is the same."""
    import multiprocessing
    import threading

    path, _ = coco
    src = read_coco(path)
    ref = tmp_path / "ref.jsonl"
    convert(src, ref, chunk_size=5, stream=io.StringIO())
    used = []
    real = multiprocessing.get_context

    def spy(method=None):
        used.append(method)
        return real(method)

    monkeypatch.setattr(multiprocessing, "get_context", spy)
    stop = threading.Event()
    t = threading.Thread(target=stop.wait)
    t.start()
    try:
        out = tmp_path / "spawn.jsonl"
        convert(src, out, chunk_size=5, workers=2, stream=io.StringIO())
    finally:
        stop.set()
        t.join()
    assert used == ["spawn"]
    assert out.read_bytes() == ref.read_bytes()
    used.clear()
    convert(src, out, chunk_size=5, workers=2, stream=io.StringIO())
    assert used == ["fork"]  # no other thread: fork
    assert out.read_bytes() == ref.read_bytes()


def test_cli_convert_semantic(tmp_path, coco, capsys):
    _, data = coco
    label_dir, names, inst_dir, truth = build_semantic(tmp_path, data)
    out = tmp_path / "sem.jsonl"
    rc = main(
        [
            "convert",
            str(label_dir),
            "--names",
            str(names),
            "--instances",
            str(inst_dir),
            "--to",
            "swift",
            "--grid",
            "32",
            "-o",
            str(out),
            "--image-root",
            "ade/images",
            "--quiet",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    recs = _lines(out)
    assert len(recs) == len(truth) and recs[0]["query"].startswith("<img>ade/images/")
    # with 1-based names every class id shifts by one name: the labels differ
    out2 = tmp_path / "sem2.jsonl"
    assert (
        main(
            [
                "convert",
                str(label_dir),
                "--names",
                str(names),
                "--names-start",
                "1",
                "--to",
                "swift",
                "-o",
                str(out2),
                "--quiet",
                "--ignore-index",
                "-1",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "no name in the class-name file" in err  # 255 is a class now, and unnamed: reported


def test_bench_convert_smoke():
    """benchmarks/bench_convert.py runs once on a few samples; 1 and 2 workers write the same file."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_convert.py"
    spec = importlib.util.spec_from_file_location("bench_convert", path)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_convert"] = bench
    spec.loader.exec_module(bench)
    samples = bench.make_samples(800)  # more than the 734 shared masks: replication wraps around
    assert samples[734].target == samples[0].target and samples[734].id != samples[0].id
    one = bench.run(samples, 1, "llava", 16, 128)
    two = bench.run(samples, 2, "llava", 16, 128)
    assert one[1:3] == two[1:3] and one[1] > 0 and two[3] > 0  # same size and digest; CPU measured


def test_cli_check_images(tmp_path, coco, capsys):
    path, data = coco
    out = tmp_path / "c.jsonl"
    present = data["images"][0]["file_name"]
    (tmp_path / present).write_bytes(b"")
    assert main(["convert", str(path), "--to", "llava", "-o", str(out), "--check-images", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "image file not found" in err and "while reading the source" in err
    assert {r["image"] for r in _lines(out)} == {present}
    assert (
        main(
            [
                "convert",
                str(path),
                "--to",
                "llava",
                "-o",
                str(out),
                "--check-images",
                str(tmp_path),
                "--fatal",
            ]
        )
        == 1
    )
    assert "image file not found" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["rrle", "irle", "full"])
def test_summary_token_count_equals_tokens_estimate(coco, fmt):
    """The text-based count of the summary equals maskcodec.tokens.estimate_tokens of the grid."""
    from maskcodec.datasets import ConvertOptions
    from maskcodec.datasets.pipeline import _token_counter, encode_target
    from maskcodec.tokens import estimate_tokens

    path, _ = coco
    _, count = _token_counter(fmt)
    for grid in (7, 16, (12, 30)):
        opts = ConvertOptions(grid=grid, format=fmt)
        for s in read_coco(path):
            g, _ = encode_target(s, opts)
            assert count(mc.to_text(g, format=fmt)) == estimate_tokens(g, format=fmt)
    ids = np.array([[0, 1, 2, 2], [3, 3, 0, 1]])
    g = mc.LabelGrid(ids, ["others", "person 1", "person 12", "fire hydrant"])  # digits inside labels
    assert count(mc.to_text(g, format=fmt)) == estimate_tokens(g, format=fmt)


def test_interrupt_and_resume_with_workers(tmp_path, coco):
    path, _ = coco
    src = read_coco(path)
    assert len(src) > 20
    whole = tmp_path / "whole.jsonl"
    convert(src, whole, chunk_size=4, stream=io.StringIO())
    out = tmp_path / "w.jsonl"

    def stop_after(done):
        if done >= 12:
            raise _Stop

    with pytest.raises(_Stop):
        convert(src, out, chunk_size=4, workers=2, _after_chunk=stop_after, stream=io.StringIO())
    assert not out.exists()
    summary = convert(src, out, chunk_size=4, workers=2, resume=True, stream=io.StringIO())
    assert summary.resumed_from == 12 and out.read_bytes() == whole.read_bytes()


def test_cli_coco_image_group_with_instance_labels(tmp_path, coco, capsys):
    path, data = coco
    out = tmp_path / "img.jsonl"
    args = ["convert", str(path), "--to", "llava", "--group", "image", "--instance-labels", "--grid", "32"]
    assert main([*args, "-o", str(out), "--quiet"]) == 0
    recs = _lines(out)
    assert len(recs) == len(data["images"])
    labels = {lab for r in recs for lab in mc.parse(r["conversations"][1]["value"]).grid.labels}
    assert "person 1" in labels and "person 2" in labels
