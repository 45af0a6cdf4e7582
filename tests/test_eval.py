"""maskcodec.metrics.evaluate and ``maskcodec eval``: inputs, both pipelines, per-record errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import maskcodec as mc
from maskcodec import coco
from maskcodec.cli import main
from maskcodec.metrics import IoUAccumulator, RECAccuracy, evaluate


def _write(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")


@pytest.fixture
def split(tmp_path):
    """Three images' targets as PNG, COCO RLE and a converted record, and model answers for them."""
    rng = np.random.default_rng(0)
    masks = []
    for k, (h, w) in enumerate(((30, 40), (64, 48), (82, 5))):
        m = np.zeros((h, w), bool)
        m[h // 4 : 3 * h // 4, w // 5 : w // 2 + 1] = True
        masks.append(m)
        Image.fromarray(m.astype(np.uint8) * 255).save(tmp_path / f"m{k}.png")
    Image.new("RGB", (5, 82)).save(tmp_path / "img2.jpg")
    answers = [mc.encode_mask(m, "the dog") for m in masks]
    noisy = answers[1].replace("\n ", "\n", 1)  # the reference's decoder fails on this; repair does not
    targets = [
        {"id": "t2", "image": "img2.jpg",
         "conversations": [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": answers[2]}]},
    ]
    rle = coco.mask_to_rle(masks[1])
    rle = {"size": rle["size"], "counts": rle["counts"].decode() if isinstance(rle["counts"], bytes) else rle["counts"]}
    rows = [
        {"id": "t0", "answer": answers[0], "mask": "m0.png", "image_id": 1},
        {"id": "t1", "text": noisy, "segmentation": rle, "image_id": 2},
        {"id": "t2", "output": answers[2]},
    ]
    _write(tmp_path / "answers.jsonl", rows)
    _write(tmp_path / "targets.jsonl", targets)
    return tmp_path, masks, answers, noisy


def test_both_pipelines_against_accumulators(split):
    tmp, masks, answers, noisy = split
    out = evaluate(tmp / "answers.jsonl", tmp / "targets.jsonl", grid=16, samples_path=str(tmp / "s.jsonl"),
                   summary_path=str(tmp / "sum.json"))
    assert out["scored"] == 3 and out["skipped"] == 0 and out["errors"] == []
    texts = [answers[0], noisy, answers[2]]
    # The converted record's target is its own answer decoded at its image's size.
    masks = [masks[0], masks[1], mc.decode_mask(answers[2], size=(82, 5), grid=16, mode="strict")]
    ref, exact = IoUAccumulator(policy="text4seg"), IoUAccumulator()
    rref, rexact = RECAccuracy(policy="text4seg"), RECAccuracy()
    for k, (t, m) in enumerate(zip(texts, masks)):
        p_ref = mc.decode_mask(t, size=m.shape, grid=16, mode="text4seg", align="torch")
        p_mc = mc.decode_mask(t, size=m.shape, grid=16)
        ref.add(p_ref, m, image=(1, 2, "t2")[k])
        exact.add(p_mc, m)
        rref.add(p_ref, m)
        rexact.add(p_mc, m)
    assert out["text4seg"]["ciou"] == ref.ciou and out["text4seg"]["giou"] == ref.giou
    assert out["maskcodec"]["ciou"] == exact.ciou and out["maskcodec"]["giou"] == exact.giou
    assert out["text4seg"]["acc50"] == rref.accuracy and out["maskcodec"]["acc50"] == rexact.accuracy
    # The noisy answer: all background for the reference, repaired by maskcodec.
    rows = [json.loads(line) for line in open(tmp / "s.jsonl")]
    assert [r["id"] for r in rows] == ["t0", "t1", "t2"]
    assert rows[1]["iou_text4seg"] == 0.0 and rows[1]["iou"] > 0.5 and rows[1]["repairs"] == ["bad_separator"]
    assert "does not split" in rows[1]["reference_error"] and rows[0]["reference_error"] is None
    # 82 x 5: torch's float32 index path; the text4seg side renders with it.
    assert rows[2]["size"] == [82, 5]
    summary = json.load(open(tmp / "sum.json"))
    assert summary["scored"] == 3 and summary["maskcodec"]["miou"] == pytest.approx(out["maskcodec"]["miou"])
    assert out["text4seg"]["ciou"] < out["maskcodec"]["ciou"]


def test_bad_records_are_reported_with_line_numbers_and_skipped(split, tmp_path):
    tmp, masks, answers, _ = split
    small = np.zeros((10, 10), np.uint8)
    Image.fromarray(small).save(tmp / "small.png")
    Image.new("RGB", (4, 4)).save(tmp / "rgb.png")
    rows = [
        {"id": "ok", "answer": answers[0], "mask": "m0.png"},
        {"id": "gone", "answer": answers[0], "mask": "nope.png"},
        {"id": "size", "answer": answers[0], "mask": "small.png", "height": 30, "width": 40},
        "{not json",
        {"id": "notext", "mask": "m0.png"},
        {"id": "orphan", "answer": answers[0]},
        {"id": "rgb", "answer": answers[0], "mask": "rgb.png"},
        {"id": "segm", "answer": answers[0], "segmentation": [[0, 0, 4, 0, 4, 4]]},
        [1, 2],
    ]
    _write(tmp / "bad.jsonl", rows)
    out = evaluate(tmp / "bad.jsonl", grid=16)
    assert out["scored"] == 1 and out["skipped"] == 8
    lines = {e["line"]: e["error"] for e in out["errors"]}
    assert sorted(lines) == [2, 3, 4, 5, 6, 7, 8, 9]
    assert "does not exist" in lines[2]
    assert "is 10x10 (HxW), the record says (30, 40)" in lines[3]
    assert "not valid JSON" in lines[4]
    assert "no answer text" in lines[5]
    assert "no target for id 'orphan'" in lines[6]
    assert "needs one channel, got mode RGB" in lines[7]
    assert "needs 'height' and 'width'" in lines[8]
    assert "JSON object" in lines[9]
    with pytest.raises(mc.InputError, match=r"bad.jsonl:2: target mask .* does not exist"):
        evaluate(tmp / "bad.jsonl", grid=16, fatal=True)


def test_records_as_objects_and_the_other_formats(split):
    tmp, masks, _, _ = split
    for fmt in ("irle", "full"):
        text = mc.encode_mask(masks[0], "x", format=fmt)
        out = evaluate([{"id": 1, "answer": text, "mask": str(tmp / "m0.png")}], grid=16, format=fmt)
        assert out["scored"] == 1 and out["maskcodec"]["giou"] == mc.metrics.iou(
            mc.decode_mask(text, size=masks[0].shape, grid=16, format=fmt), masks[0])
    with pytest.raises(mc.InputError, match="unknown format 'bogus'"):
        evaluate([], format="bogus")


def test_the_format_family_is_scored_by_the_maskcodec_pipeline(split):
    from maskcodec import boxes, dialects, polygon

    tmp, masks, _, _ = split
    m = masks[0]
    target = {"mask": str(tmp / "m0.png")}
    grid = mc.LabelGrid(mc.quantize(m, grid=16).astype(np.uint8), ("others", "dog"))
    texts = {
        "crle": dialects.to_text(grid, "crle"),
        "arle": dialects.to_text(grid, "arle"),
        "spans": dialects.to_text(grid, "spans"),
        "boxes": boxes.encode_boxes([m], ["dog"]),
        "polygon": polygon.encode_polygons(m),
        "polygon-loc": polygon.encode_polygons(m, format="loc"),
    }
    for fmt, text in texts.items():
        out = evaluate([{"id": 1, "answer": text, **target}, {"id": 2, "answer": "no mask here", **target}],
                       grid=16 if fmt in ("crle", "arle", "spans") else None, format=fmt)
        assert out["text4seg"] is None and out["scored"] == 2 and out["skipped"] == 0, fmt
        # the first answer is close (IoU > 0.6), the second scores an empty prediction (IoU 0)
        assert 0.3 < out["maskcodec"]["giou"] <= 0.5, fmt
        strict = fmt in ("boxes", "polygon", "polygon-loc")
        assert out["parse_failures"] == (1 if strict else 0), fmt
    # The table says the reference has no decoder for it.
    from maskcodec._cli_eval import table

    crle = evaluate([{"id": 1, "answer": texts["crle"], **target}], grid=16, format="crle")
    assert "the reference has no decoder for 'crle'" in table(crle)


def test_semantic_evaluation_with_a_class_table(tmp_path):
    torch = pytest.importorskip("torch")
    import reference as ref
    import text4seg_scripts as scripts

    table = ["dog", "cat", "others", "sky", "cat"]  # "others" is not first; "cat" repeats
    (tmp_path / "classes.txt").write_text("\n".join(table) + "\n")
    rng = np.random.default_rng(3)
    rows, pairs = [], []
    for k in range(6):
        h, w = int(rng.integers(20, 500)), int(rng.integers(3, 400))
        ids = rng.integers(0, 4, size=(16, 16))
        names = ("others", "dog", "cat", "sky")
        text = mc.LabelGrid(ids.astype(np.uint8), names).to_text()
        if k == 5:
            text = text.replace("\n ", "\n", 1)  # the reference fails: all class 0 ("dog")
        gt = rng.integers(0, 5, size=(h, w)).astype(np.uint8)
        gt[rng.random((h, w)) < 0.1] = 255
        Image.fromarray(gt).save(tmp_path / f"gt{k}.png")
        rows.append({"id": k, "answer": text, "mask": f"gt{k}.png"})
        # The reference pipeline: decode with the class file, upsample 16 -> 336 -> (h, w) on float64.
        flat, _ = ref.text4seg_decode(text, 16, 16, classes=table)
        grid = torch.tensor(flat, dtype=torch.float64)[None, None]
        mid = torch.nn.functional.interpolate(grid, size=(336, 336), mode="nearest")
        pred = torch.nn.functional.interpolate(mid, size=(h, w), mode="nearest")[0, 0].numpy().astype(np.uint8)
        pairs.append((pred, gt))
    _write(tmp_path / "sem.jsonl", rows)
    out = evaluate(tmp_path / "sem.jsonl", grid=16, class_table=tmp_path / "classes.txt")
    assert out["semantic"] and out["scored"] == 6 and out["text4seg"]["classes"] == 5
    assert out["text4seg"]["miou"] == float(scripts.eval_semantic_seg(pairs, len(table)))
    assert 0.0 < out["maskcodec"]["miou"] <= 1.0
    assert main(["eval", str(tmp_path / "sem.jsonl"), "--grid", "16", "--class-table", str(tmp_path / "classes.txt"),
                 "--no-progress"]) == 0
    with pytest.raises(mc.InputError, match="decodes rrle, irle or full"):
        evaluate(tmp_path / "sem.jsonl", class_table=table, format="crle")


def test_cli(split, capsys):
    tmp, _, _, _ = split
    rc = main(["eval", str(tmp / "answers.jsonl"), "--targets", str(tmp / "targets.jsonl"), "--grid", "16",
               "--no-progress", "--samples", str(tmp / "cli.jsonl")])
    out = capsys.readouterr().out
    assert rc == 0 and "text4seg" in out and "maskcodec" in out and "Acc@0.5" in out and "scored 3, skipped 0" in out
    assert len(open(tmp / "cli.jsonl").read().splitlines()) == 3
    rc = main(["eval", str(tmp / "answers.jsonl"), "--grid", "16", "--no-progress", "--json"])
    res = capsys.readouterr()
    assert rc == 0 and json.loads(res.out)["skipped"] == 1 and "skipped line 3: no target for id 't2'" in res.err
    rc = main(["eval", str(tmp / "answers.jsonl"), "--grid", "16", "--no-progress", "--fatal"])
    assert rc == 1 and "answers.jsonl:3: no target for id 't2'" in capsys.readouterr().err
