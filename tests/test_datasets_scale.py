"""Scale-out: pickling and threads, Hugging Face datasets map(num_proc=2), Ray Data on a local cluster."""

from __future__ import annotations

import io
import json
import pickle
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from datasets_fixtures import build_coco

import maskcodec as mc
from maskcodec.datasets import ConvertOptions, Templates, convert, convert_sample, read_coco
from maskcodec.datasets.scale import BatchConverter, hf_convert, ray_convert
from maskcodec.metrics import IoUAccumulator


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return build_coco(tmp_path_factory.mktemp("coco"))


def _rows(data):
    images = {im["id"]: im for im in data["images"]}
    names = {c["id"]: c["name"] for c in data["categories"]}
    rows = []
    for a in data["annotations"]:
        im = images[a["image_id"]]
        rows.append(
            {
                "id": f"ann{a['id']}",
                "mask": a["segmentation"],
                "label": names[a["category_id"]],
                "image": im["file_name"],
                "height": im["height"],
                "width": im["width"],
            }
        )
    return rows


def _expected_lines(coco, tmp_path, opts):
    path, _ = coco
    out = tmp_path / "ref.jsonl"
    convert(read_coco(path), out, to=opts.to, grid=opts.grid, seed=opts.seed, stream=io.StringIO())
    return out.read_text().splitlines()


def test_pickling_round_trips(coco):
    path, _ = coco
    src = read_coco(path)
    opts = ConvertOptions(to="hf-messages", grid=(12, 20), seed=5, templates=Templates())
    for obj in (
        opts,
        Templates(),
        BatchConverter(opts),
        src[0],
        src[len(src) - 1],
        mc.LabelGrid([[0, 1]], ["others", "a"]),
    ):
        assert pickle.loads(pickle.dumps(obj)) == obj
    s = pickle.loads(pickle.dumps(src[0]))
    assert convert_sample(s, opts) == convert_sample(src[0], opts)
    acc = IoUAccumulator()
    acc.add(np.eye(3, dtype=bool), np.ones((3, 3), bool))
    assert pickle.loads(pickle.dumps(acc)) == acc
    # the public codec functions themselves pickle by reference
    for fn in (mc.encode_mask, mc.decode_mask, mc.quantize, convert_sample, BatchConverter.__call__):
        assert pickle.loads(pickle.dumps(fn)) is fn


def test_thread_safe(coco):
    path, _ = coco
    src = read_coco(path).samples * 4
    opts = ConvertOptions(grid=24, method="area")
    sequential = [convert_sample(s, opts) for s in src]
    with ThreadPoolExecutor(4) as ex:
        threaded = list(ex.map(lambda s: convert_sample(s, opts), src))
    assert threaded == sequential


def test_batch_converter_reports_bad_rows(coco):
    _, data = coco
    rows = _rows(data)[:3]
    rows[1] = dict(rows[1], mask={"size": [2, 2], "counts": "zz"})
    conv = BatchConverter(ConvertOptions())
    batch = {k: [r[k] for r in rows] for k in rows[0]}
    out = conv(batch)
    assert out["error"][0] == "" and out["error"][2] == ""
    assert "InputError" in out["error"][1] and out["record"][1] == "" and out["id"][1] == rows[1]["id"]


def test_hf_datasets_map_num_proc(coco, tmp_path):
    datasets = pytest.importorskip("datasets")
    _, data = coco
    rows = _rows(data)
    # Arrow wants one type per column: RLE dicts and polygon lists go in separate datasets
    rle_rows = [r for r in rows if isinstance(r["mask"], dict) and isinstance(r["mask"]["counts"], str)]
    opts = ConvertOptions(to="llava", grid=16, seed=2)
    ds = datasets.Dataset.from_list(rle_rows)
    out = hf_convert(ds, options=opts, num_proc=2, batch_size=4)
    assert out.column_names == ["id", "record", "tokens", "error"]
    assert all(e == "" for e in out["error"]) and len(out) == len(rle_rows)
    expected = {json.loads(x)["id"]: x for x in _expected_lines(coco, tmp_path, opts)}
    assert out["record"] == [expected[i] for i in out["id"]]
    poly = [r for r in rows if isinstance(r["mask"], list)]
    pds = datasets.Dataset.from_list(poly)
    pout = hf_convert(pds, options=opts, num_proc=None)
    assert pout["record"] == [expected[i] for i in pout["id"]]


@pytest.mark.slow
def test_ray_data_map_batches_local_cluster(coco, tmp_path):
    ray = pytest.importorskip("ray")
    _, data = coco
    rows = [r for r in _rows(data) if isinstance(r["mask"], dict) and isinstance(r["mask"]["counts"], str)]
    opts = ConvertOptions(to="sharegpt", grid=16, seed=4)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items(rows, override_num_blocks=4)
        out = ray_convert(ds, options=opts, batch_size=5, concurrency=2).take_all()
    finally:
        ray.shutdown()
    expected = {json.loads(x)["id"]: x for x in _expected_lines(coco, tmp_path, opts)}
    assert len(out) == len(rows)
    assert all(r["error"] == "" for r in out)
    assert {r["id"]: r["record"] for r in out} == {r["id"]: expected[r["id"]] for r in rows}
