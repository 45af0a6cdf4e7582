"""Issue 12's friction list, one regression test each: training handoff, adapters, CLI traps.

Training frameworks (LLaVA JSON arrays, LLaMA-Factory dataset_info.json, ms-swift 3,
Hugging Face datasets with structured columns, COCO results lists, summary counts, the
fine-tune README's commands), conventions (supervision, pycocotools area/toBbox/stacks,
encode_mask inputs) and the command-line traps.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from datasets_fixtures import build_coco, build_refer
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

import maskcodec as mc
from maskcodec.cli import main
from maskcodec.datasets import ArrayTarget, Sample, convert, read_coco

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return build_coco(tmp_path_factory.mktemp("coco"))


def _samples(n=4):
    return [Sample(f"s{i}", f"img{i}.jpg", "cat", ArrayTarget(np.eye(8, dtype=bool))) for i in range(n)]


# ============================================================================ training handoff


def test_json_output_is_one_array_llava_can_json_load(tmp_path):
    out = tmp_path / "train.json"
    convert(_samples(), out, to="llava", grid=4, stream=io.StringIO())
    with open(out) as fh:
        data = json.load(fh)  # LLaVA-1.5's train.py: json.load(open(path)), "Extra data" on JSONL
    assert isinstance(data, list) and len(data) == 4 and data[0]["conversations"][0]["from"] == "human"
    lines = tmp_path / "train.jsonl"
    convert(_samples(), lines, to="llava", grid=4, stream=io.StringIO())
    assert [json.loads(x) for x in lines.read_text().splitlines()] == data
    forced = tmp_path / "forced.json"
    convert(_samples(), forced, to="llava", grid=4, layout="jsonl", stream=io.StringIO())
    assert forced.read_text() == lines.read_text()
    empty = tmp_path / "empty.json"
    convert([], empty, stream=io.StringIO())
    assert json.loads(empty.read_text()) == []
    with pytest.raises(mc.InputError, match="layout"):
        convert(_samples(), tmp_path / "x.json", layout="csv")


def test_cli_json_array_and_resume_then_array(tmp_path, coco, capsys):
    path, _ = coco
    out = tmp_path / "llava.json"
    assert main(["convert", str(path), "--to", "llava", "--grid", "8", "-o", str(out), "--quiet"]) == 0
    assert len(json.loads(out.read_text())) == len(read_coco(path))
    assert not (tmp_path / "dataset_info.json").exists()  # only for LLaMA-Factory's formats by default


@pytest.mark.parametrize("fmt", ["sharegpt", "ms-swift"])
def test_llama_factory_dataset_info_beside_the_output(tmp_path, fmt):
    info_path = tmp_path / "dataset_info.json"
    info_path.write_text(json.dumps({"mine": {"file_name": "mine.json"}}))
    convert(_samples(), tmp_path / "seg_train.jsonl", to=fmt, grid=4, stream=io.StringIO())
    info = json.loads(info_path.read_text())
    assert info["mine"] == {"file_name": "mine.json"}  # other entries kept
    entry = info["seg_train"]
    assert entry["file_name"] == "seg_train.jsonl" and entry["formatting"] == "sharegpt"
    rec = json.loads((tmp_path / "seg_train.jsonl").read_text().splitlines()[0])
    cols, tags = entry["columns"], entry["tags"]
    assert set(rec) >= {cols["messages"], cols["images"]}
    roles = [m[tags["role_tag"]] for m in rec[cols["messages"]]]
    assert roles == [tags["user_tag"], tags["assistant_tag"]]
    assert all(tags["content_tag"] in m for m in rec[cols["messages"]])


def test_dataset_info_for_llava_on_request_and_refused_for_swift2(tmp_path):
    convert(_samples(), tmp_path / "l.json", to="llava", grid=4, dataset_info=True, stream=io.StringIO())
    entry = json.loads((tmp_path / "dataset_info.json").read_text())["l"]
    rec = json.loads((tmp_path / "l.json").read_text())[0]
    assert rec[entry["columns"]["messages"]][0][entry["tags"]["role_tag"]] == entry["tags"]["user_tag"]
    with pytest.raises(mc.InputError, match="LLaMA-Factory"):
        convert(_samples(), tmp_path / "s.jsonl", to="swift", dataset_info=True, stream=io.StringIO())
    assert not (tmp_path / "s.jsonl").exists()
    (tmp_path / "dataset_info.json").write_text("{broken")
    with pytest.raises(mc.InputError, match="dataset_info.json: not valid JSON"):
        convert(_samples(), tmp_path / "t.jsonl", to="sharegpt", stream=io.StringIO())


def test_ms_swift_records_and_launch_snippet():
    from maskcodec.datasets import make_record

    rec = make_record("ms-swift", id="1", image="a.jpg", question="Q", answer="A")
    assert rec["messages"] == [{"role": "user", "content": "<image>Q"}, {"role": "assistant", "content": "A"}]
    assert rec["images"] == ["a.jpg"]
    doc = (ROOT / "docs" / "datasets.md").read_text()
    assert "swift sft" in doc and "--to ms-swift" in doc and "llamafactory-cli train" in doc


def test_hf_datasets_structured_columns_save_to_disk(tmp_path, coco, capsys):
    datasets = pytest.importorskip("datasets")
    from maskcodec.datasets import ConvertOptions
    from maskcodec.datasets.scale import hf_convert, to_hf_dataset

    m = np.zeros((8, 8), bool)
    m[2:6, 2:6] = True
    ds = datasets.Dataset.from_dict({"mask": [m.tolist(), m.tolist()], "label": ["cat", "dog"],
                                     "image": ["a.jpg", "b.jpg"], "id": ["1", "2"]})
    out = hf_convert(ds, options=ConvertOptions(to="llava", grid=4), structured=True)
    assert out.column_names == ["id", "messages", "images", "tokens", "error"]
    row = out[0]
    assert row["messages"][0] == {"role": "user", "content": "<image>" + row["messages"][0]["content"][7:]}
    assert row["messages"][1]["role"] == "assistant" and "<seg>" in row["messages"][1]["content"]
    assert row["images"] == ["a.jpg"] and row["error"] == ""
    out.save_to_disk(str(tmp_path / "hf"))
    assert datasets.load_from_disk(str(tmp_path / "hf"))[1]["messages"] == out[1]["messages"]
    # From a convert output, with the images embedded (datasets.Image) for push_to_hub.
    img_dir = tmp_path / "imgs"
    img_dir.mkdir()
    for i in range(2):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(img_dir / f"img{i}.jpg")
    convert(_samples(2), tmp_path / "c.jsonl", to="sharegpt", grid=4, stream=io.StringIO())
    emb = to_hf_dataset(tmp_path / "c.jsonl", image_root=str(img_dir), embed_images=True)
    assert isinstance(emb.features["images"].feature, datasets.Image) and emb[0]["images"][0].size == (8, 8)
    # The command line: --hf-dataset DIR.
    path, _ = coco
    target = tmp_path / "hfcli"
    assert main(["convert", str(path), "--to", "hf-messages", "--grid", "4", "-o", str(tmp_path / "h.jsonl"),
                 "--quiet", "--hf-dataset", str(target)]) == 0
    loaded = datasets.load_from_disk(str(target))
    assert len(loaded) == len(read_coco(path)) and loaded.column_names == ["id", "messages", "images"]
    assert "saved a Hugging Face dataset" in capsys.readouterr().err


def test_convert_accepts_a_coco_results_list(tmp_path, coco, capsys):
    path, data = coco
    results = []
    for a in data["annotations"]:
        segm = a["segmentation"]
        if isinstance(segm, dict) and isinstance(segm["counts"], str):
            results.append({"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": segm,
                            "score": 0.9})
    polygon = next(a for a in data["annotations"] if isinstance(a["segmentation"], list))
    results.append({"image_id": 1, "category_id": 1, "segmentation": polygon["segmentation"], "score": 0.5})
    res_path = tmp_path / "results.json"
    res_path.write_text(json.dumps(results))
    out = tmp_path / "r.jsonl"
    rc = main(["convert", str(res_path), "--to", "llava", "--grid", "8", "-o", str(out), "--quiet",
               "--image-name", "COCO_val2014_{image_id:012d}.jpg"])
    err = capsys.readouterr().err
    assert rc == 0, err
    recs = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(recs) == len(results) - 1
    assert recs[0]["image"] == f"COCO_val2014_{results[0]['image_id']:012d}.jpg"
    want = mc.encode_mask(mc.coco.rle_to_mask(results[0]["segmentation"]), "x", grid=8)
    assert mc.parse(recs[0]["conversations"][1]["value"], mode="strict").grid.foreground.tolist() == \
        mc.parse(want, mode="strict").grid.foreground.tolist()
    assert "only RLE results" in err and "skipped 1 samples in all: 1 while reading the source, 0 while encoding" in err


def test_summary_counts_read_clearly(tmp_path):
    from maskcodec.datasets import ConvertSummary, Problem

    s = ConvertSummary("o.jsonl", samples=3, skipped=0, source_problems=2)
    assert "skipped 2 samples in all: 2 while reading the source, 0 while encoding" in s.to_text()
    assert "skipped 0 samples" not in s.to_text()
    assert "skipped no samples" in ConvertSummary("o.jsonl", samples=3).to_text()
    s = ConvertSummary("o.jsonl", samples=3, skipped=1, source_problems=0, problems=[Problem("p", "r", "s")])
    assert "skipped 1 samples in all: 0 while reading the source, 1 while encoding" in s.to_text()


def _bash_commands(md: Path) -> list[str]:
    out = []
    for block in re.findall(r"```bash\n(.*?)```", md.read_text(encoding="utf-8"), flags=re.DOTALL):
        for cmd in block.replace("\\\n", " ").splitlines():
            cmd = cmd.split("  #")[0].strip()
            if cmd:
                out.append(cmd)
    return out


@pytest.fixture
def finetune_modules():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("peft")
    example = str(ROOT / "examples" / "finetune")
    names = ("common", "train", "evaluate", "gpu_check")
    saved = {n: sys.modules.pop(n) for n in names if n in sys.modules}
    sys.path.insert(0, example)
    try:
        import evaluate
        import gpu_check
        import train

        yield {"train.py": train, "evaluate.py": evaluate, "gpu_check.py": gpu_check}
    finally:
        sys.path.remove(example)
        for n in names:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def test_every_finetune_readme_command_runs(tmp_path, coco, finetune_modules, capsys, monkeypatch):
    """maskcodec commands run on a small REFER folder; the scripts' options go through their parsers."""
    commands = _bash_commands(ROOT / "examples" / "finetune" / "README.md")
    path, data = coco
    build_refer(tmp_path / "data" / "refer", data)
    monkeypatch.chdir(tmp_path)
    ran = {"maskcodec": 0, "scripts": 0, "pip": 0}
    for cmd in commands:
        argv = shlex.split(cmd)
        if argv[0] == "pip":
            ran["pip"] += 1
            continue
        if argv[0] == "maskcodec":
            assert main(argv[1:]) == 0, (cmd, capsys.readouterr().err)
            out = Path(argv[argv.index("-o") + 1])
            recs = [json.loads(x) for x in out.read_text().splitlines()]
            assert recs and recs[0]["messages"][0]["content"][0]["image"].startswith("train2014/")
            ran["maskcodec"] += 1
            continue
        assert argv[0] == "python", cmd
        script = finetune_modules[Path(argv[1]).name]
        if script.__name__ == "gpu_check":
            assert script.main(argv[2:]) == 0  # "skipped" without CUDA, the check itself with it
        else:
            script.parser().parse_args(argv[2:])  # SystemExit on an unknown option
        ran["scripts"] += 1
    assert ran["maskcodec"] == 2 and ran["scripts"] >= 5 and ran["pip"] == 2


# ============================================================================ conventions


def test_pycocotools_style_area_tobbox_and_stacks(coco):
    from conftest import coco_annotations
    from pycocotools import mask as cocomask

    from maskcodec import adapters

    rles = []
    for a in coco_annotations()[:150]:
        s = a["segmentation"]
        rles.append(s if isinstance(s, dict) and isinstance(s["counts"], str) else None)
    rles = [r for r in rles if r is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert adapters.area(rles).tolist() == cocomask.area(rles).tolist()
        assert adapters.area(rles[0]) == cocomask.area(rles[0]) and isinstance(adapters.area(rles[0]), np.uint32)
        np.testing.assert_array_equal(adapters.toBbox(rles), cocomask.toBbox(rles))
        np.testing.assert_array_equal(adapters.toBbox(rles[3]), cocomask.toBbox(rles[3]))
        same = [r for r in rles if r["size"] == rles[0]["size"]][:3]
        stack = cocomask.decode(same)
        assert stack.ndim == 3
        np.testing.assert_array_equal(adapters.decode(same), stack)
        ours = adapters.encode(stack)
        assert ours == cocomask.encode(stack)
        assert adapters.encode(np.ascontiguousarray(stack.astype(bool))) == ours  # C order, bool: fine too
        assert adapters.encode(stack[:, :, 0]) == cocomask.encode(np.asfortranarray(stack[:, :, 0]))
    empty = adapters.encode(np.zeros((3, 4, 1), np.uint8))
    assert adapters.toBbox(empty).tolist() == [[0, 0, 0, 0]] and adapters.area(empty).tolist() == [0]
    with pytest.raises(mc.InputError, match="different sizes"):
        adapters.decode([{"size": [2, 2], "counts": "4"}, {"size": [1, 4], "counts": "4"}])
    with pytest.raises(TypeError, match="numpy array"):
        adapters.encode([[0, 1]])


def test_supervision_detections_round_trip():
    sv = pytest.importorskip("supervision")
    from maskcodec import adapters

    text = "Sure:\n<seg>others *2| dog *2\n cat *4\n cat *1| others *3\n</seg>"
    det = adapters.to_detections(text, size=(6, 8))
    assert isinstance(det, sv.Detections) and len(det) == 2
    assert det.data["class_name"].tolist() == ["dog", "cat"] and det.class_id.tolist() == [1, 2]
    assert det.mask.shape == (2, 6, 8)
    np.testing.assert_array_equal(det.xyxy, sv.mask_to_xyxy(det.mask))
    g = mc.parse(text, mode="repair").grid
    np.testing.assert_array_equal(det.mask[1], g.render((6, 8)) == 2)
    back = adapters.from_detections(det, grid=(3, 4), text=False)
    assert back.labels[0] == "others" and set(back.labels) == {"others", "dog", "cat"}
    np.testing.assert_array_equal(np.array(back.labels)[back.ids], np.array(g.labels)[g.ids])
    merged = adapters.from_detections(det, grid=(3, 4), label="pet")
    assert mc.parse(merged, mode="strict").grid.labels == ("others", "pet")
    named = adapters.from_detections(sv.Detections(xyxy=det.xyxy, mask=det.mask, class_id=np.array([5, 7])),
                                     grid=4, class_names={5: "bird", 7: "tree"})
    assert set(mc.parse(named, mode="strict").grid.labels) == {"others", "bird", "tree"}
    with pytest.raises(mc.InputError, match="no name"):
        adapters.from_detections(sv.Detections(xyxy=det.xyxy, mask=det.mask, class_id=np.array([5, 8])),
                                 class_names={5: "bird"})
    with pytest.raises(mc.InputError, match="no masks"):
        adapters.from_detections(sv.Detections(xyxy=det.xyxy))
    empty = adapters.to_detections("<seg>others *4\n</seg>", size=(2, 2), grid=(1, 4))
    assert len(empty) == 0 and empty.mask.shape == (0, 2, 2)
    # small objects stay visible: the larger object is painted first
    big = np.zeros((2, 8, 8), bool)
    big[0] = True
    big[1, 3:5, 3:5] = True
    g2 = adapters.from_detections(sv.Detections(xyxy=sv.mask_to_xyxy(big), mask=big, class_id=np.array([0, 1]),
                                                data={"class_name": np.array(["sky", "sun"])}), grid=4, text=False)
    assert "sun" in g2.labels


def test_encode_mask_accepts_tensors_paths_and_equal_channel_rgb(tmp_path):
    m = np.zeros((20, 30), np.uint8)
    m[5:15, 8:20] = 1
    want = mc.encode_mask(m, "dog")
    torch = pytest.importorskip("torch")
    assert mc.encode_mask(torch.from_numpy(m), "dog") == want
    assert mc.encode_mask(torch.from_numpy(m).bool(), "dog", method="area") == mc.encode_mask(m, "dog", method="area")
    Image.fromarray(m * 255).save(tmp_path / "l.png")
    Image.fromarray(np.repeat(m[..., None] * 255, 3, axis=2)).save(tmp_path / "rgb.png")
    Image.fromarray(np.dstack([m * 255] * 3 + [np.full_like(m, 255)])).save(tmp_path / "rgba.png")
    for p in ("l.png", "rgb.png", "rgba.png"):
        assert mc.encode_mask(tmp_path / p, "dog") == want
        assert mc.encode_mask(str(tmp_path / p), "dog") == want
    assert mc.encode_mask(np.repeat(m[..., None], 3, axis=2), "dog") == want
    bad = np.repeat(m[..., None], 3, axis=2)
    bad[7, 9, 1] = 0
    with pytest.raises(mc.InputError, match=r"channels that differ \(at row 7, column 9"):
        mc.encode_mask(bad, "dog")
    with pytest.raises(mc.InputError, match="no such file"):
        mc.encode_mask(tmp_path / "nope.png", "dog")
    with pytest.raises(TypeError, match="np.asarray"):
        mc.encode_mask([[0, 1]], "dog")


def test_one_label_keyword_and_label_maps_refused_a_single_name():
    m = np.zeros((8, 8), np.uint8)
    m[2:6, 2:6] = 1
    assert mc.encode_mask(m, label="x", grid=4) == mc.encode_mask(m, "x", grid=4) == mc.encode_mask(m, labels="x", grid=4)
    assert mc.encode_grid(m, label="x", grid=4) == mc.encode_grid(m, "x", grid=4)
    with pytest.raises(TypeError, match="both labels and label"):
        mc.encode_mask(m, "x", label="y")
    with pytest.raises(TypeError, match="needs the label"):
        mc.encode_mask(m)
    label_map = m.copy()
    label_map[6:, 6:] = 2
    for kw in ({}, {"method": "area"}, {"nonempty": True}):
        with pytest.raises(mc.InputError, match=r"label map with values \[0, 1, 2\]"):
            mc.encode_mask(label_map, "sky", grid=8, **kw)
    assert "sky" in mc.encode_mask(label_map, {1: "sky", 2: "sun"}, grid=8)
    assert mc.encode_mask(m * 255, "x", grid=4) == mc.encode_mask(m, "x", grid=4)  # 0/255 is binary
    assert mc.encode_mask(m * 7, "x", grid=4) == mc.encode_mask(m, "x", grid=4)


@given(st.integers(1, 12), st.integers(1, 12), st.integers(1, 6), st.integers(1, 6), st.data())
def test_sampled_classes_kernel_matches_reference(h, w, rows, cols, data):
    import reference as ref

    from maskcodec import _kernels
    from maskcodec.quantize import nearest_index

    values = data.draw(st.lists(st.sampled_from([0, 0, 1, 2, 255]), min_size=h * w, max_size=h * w))
    m = np.array(values, dtype=np.uint8).reshape(h, w)
    yi, xi = nearest_index(h, rows), nearest_index(w, cols)
    out = np.zeros(2, np.uint8)
    n = _kernels.sampled_classes(m, yi, xi, out)
    want = ref.sampled_classes(m, yi, xi)
    assert n == min(len(want), 2) and out[:n].tolist() == want[:2]


def test_parse_warns_about_the_coming_default_mode():
    good = "<seg>others *1| dog *1\n</seg>"
    bad = "<seg>others *1| dog *1\n others *3\n</seg>"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert mc.parse(good).grid.labels == ("others", "dog")  # no warning for valid text
        mc.parse(bad, mode="repair", grid=(2, 2))
        with pytest.raises(mc.ParseError):
            mc.parse(bad, mode="strict")
    with pytest.warns(FutureWarning, match="default to mode='repair'"), pytest.raises(mc.ParseError):
        mc.parse(bad)


# ============================================================================ CLI traps


def _run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_design_card_command_encodes_with_the_default_label(tmp_path, capsys):
    from maskcodec._cli_codec import DEFAULT_LABEL

    m = np.zeros((32, 32), np.uint8)
    m[8:24, 8:24] = 255
    Image.fromarray(m).save(tmp_path / "mask.png")
    rc, out, err = _run(capsys, ["encode", str(tmp_path / "mask.png"), "--grid", "16"])
    assert rc == 0 and err == ""
    assert out == mc.encode_mask(m, DEFAULT_LABEL, grid=16) + "\n" and DEFAULT_LABEL == "object"
    assert "default: 'object'" in (ROOT / "docs" / "cli.md").read_text()
    lm = m.copy()
    lm[:4, :4] = 3
    Image.fromarray(lm).save(tmp_path / "map.png")
    rc, _, err = _run(capsys, ["encode", str(tmp_path / "map.png")])
    assert rc == 1 and "label map with values [0, 3, 255]" in err and "--labels NAMES.txt" in err


def test_file_argument_without_at_is_an_error_suggesting_at(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("answer.txt").write_text("<seg>others *2\n dog *2\n</seg>")
    for argv in (["decode", "answer.txt", "--size", "4x4", "-o", "m.png"], ["validate", "answer.txt"]):
        rc, _, err = _run(capsys, argv)
        assert rc == 1 and "write @answer.txt" in err
    assert not Path("m.png").exists()
    rc, _, _ = _run(capsys, ["decode", "@answer.txt", "--size", "4x4", "-o", "m.png"])
    assert rc == 0 and np.asarray(Image.open("m.png")).any()


def test_demo_index_out_of_range(capsys):
    rc, _, err = _run(capsys, ["demo", "--index", "99"])
    assert rc == 1 and "--index 99 is out of range: the bundled masks are 0 to 23" in err
    rc, _, err = _run(capsys, ["demo", "--index", "-1"])
    assert rc == 1 and "out of range" in err
    rc, out, _ = _run(capsys, ["demo", "--index", "23"])
    assert rc == 0 and "IoU" in out


def test_validate_jsonl_records_with_per_line_errors(tmp_path, capsys):
    convert(_samples(3), tmp_path / "train.jsonl", to="sharegpt", grid=4, stream=io.StringIO())
    rc, out, err = _run(capsys, ["validate", f"@{tmp_path / 'train.jsonl'}"])
    assert rc == 0 and "3 valid, 0 invalid" in out and err == ""
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    rec = json.loads(lines[1])
    rec["messages"][1]["content"] = rec["messages"][1]["content"].replace("\n</seg>", "\n others *5\n</seg>")
    lines[1] = json.dumps(rec)
    lines.insert(2, "not json")
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    rc, out, err = _run(capsys, ["validate", f"@{tmp_path / 'bad.jsonl'}"])
    assert rc == 1 and "2 valid, 2 invalid" in out
    assert re.search(r"bad\.jsonl:2: line \d+, column \d+: ", err) and "bad.jsonl:3: not JSON" in err
    convert(_samples(2), tmp_path / "arr.json", to="llava", grid=4, stream=io.StringIO())
    rc, out, _ = _run(capsys, ["validate", f"@{tmp_path / 'arr.json'}", "-v"])
    assert rc == 0 and "2 valid" in out and "record 1: 4x4 grid" in out
    (tmp_path / "x.txt").write_text(lines[0] + "\n")
    rc, out, _ = _run(capsys, ["validate", f"@{tmp_path / 'x.txt'}", "--records"])
    assert rc == 0 and "1 valid" in out
