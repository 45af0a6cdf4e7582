"""Readers on tiny datasets built in each real layout (tests/datasets_fixtures.py)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from datasets_fixtures import NAMES, build_coco, build_grefcoco, build_refer, build_semantic, decode

import maskcodec as mc
from maskcodec.datasets import (
    ConvertOptions,
    DatasetError,
    PngTarget,
    convert_sample,
    open_source,
    read_coco,
    read_grefcoco,
    read_names,
    read_refer,
    read_semantic,
)
from maskcodec.datasets.pipeline import encode_target


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    path, data = build_coco(root)
    return path, data


def _mask_of(data, ann_ids):
    anns = {a["id"]: a for a in data["annotations"]}
    images = {im["id"]: im for im in data["images"]}
    first = anns[ann_ids[0]]
    im = images[first["image_id"]]
    out = np.zeros((im["height"], im["width"]), bool)
    for i in ann_ids:
        out |= decode(anns[i]["segmentation"], (im["height"], im["width"]))
    return out


def test_coco_objects_match_pycocotools(coco):
    path, data = coco
    src = read_coco(path, image_root="coco/val2014")
    assert len(src) == len(data["annotations"]) and not src.problems
    opts = ConvertOptions(grid=16)
    for s in src:
        want = mc.quantize(_mask_of(data, s.meta["ann_ids"]), grid=16)
        g, names = encode_target(s, opts)
        assert names == [s.label] and s.label == NAMES.get(
            s.meta["category_id"], f"class {s.meta['category_id']}"
        )
        np.testing.assert_array_equal(g.ids, want.astype(np.uint8))
        assert s.image.startswith("coco/val2014/COCO_val2014_")
        np.testing.assert_array_equal(s.target.load(), _mask_of(data, s.meta["ann_ids"]))
    kinds = {a["id"]: a for a in data["annotations"]}
    assert any(isinstance(kinds[s.meta["ann_ids"][0]]["segmentation"], list) for s in src)  # polygons
    assert read_coco(path, crowd=False).samples.__len__() == len(data["annotations"]) - 1


def test_coco_category_group_merges_annotations(coco):
    path, data = coco
    src = read_coco(path, group="category")
    pairs = {(a["image_id"], a["category_id"]) for a in data["annotations"]}
    assert len(src) == len(pairs)
    merged = [s for s in src if len(s.meta["ann_ids"]) > 1]
    assert merged, "the fixture must hold an image with two objects of one category"
    for s in merged:
        union = _mask_of(data, s.meta["ann_ids"])
        np.testing.assert_array_equal(s.target.load(), union)
        np.testing.assert_array_equal(
            encode_target(s, ConvertOptions(grid=24))[0].ids, mc.quantize(union, grid=24).astype(np.uint8)
        )


def test_coco_problems_are_reported_with_path(tmp_path, coco):
    _, data = coco
    bad = json.loads(json.dumps(data))
    bad["annotations"][0]["segmentation"]["size"] = [1, 1]
    bad["annotations"][1]["image_id"] = 424242
    bad["annotations"][2]["category_id"] = 999
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    src = read_coco(p)
    assert len(src) == len(data["annotations"]) - 3
    reasons = " ".join(str(x) for x in src.problems)
    assert all(str(x).startswith(str(p)) for x in src.problems)
    assert "RLE size" in reasons and "424242" in reasons and "999" in reasons
    with pytest.raises(DatasetError, match="RLE size") as info:
        read_coco(p, on_error="raise")
    assert info.value.path == str(p)
    with pytest.raises(DatasetError, match="file not found"):
        read_coco(tmp_path / "missing.json")
    (tmp_path / "torn.json").write_text(json.dumps(data)[:500])
    with pytest.raises(DatasetError, match="not valid JSON"):
        read_coco(tmp_path / "torn.json")
    (tmp_path / "other.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="not a COCO instances file"):
        read_coco(tmp_path / "other.json")


def test_refer_every_sentence_is_a_sample(tmp_path, coco):
    _, data = coco
    folder = build_refer(tmp_path, data)
    with open(folder / "refs(unc).p", "rb") as fh:
        refs = pickle.load(fh)
    src = read_refer(tmp_path, "refcoco", split_by="unc")
    assert len(src) == sum(len(r["sentences"]) for r in refs)
    ids = [s.id for s in src]
    assert len(set(ids)) == len(ids)
    for s in src:
        assert mc.is_safe_label(s.label) and s.label == s.label.lower()
        assert s.image == f"COCO_val2014_{s.meta['image_id']:012d}.jpg"  # from instances.json, not refs
    unsafe = [s for s in src if "near" in s.label]
    assert unsafe and all("|" not in s.label and "*" not in s.label for s in unsafe)
    val = read_refer(folder, "refcoco", split="val")  # the dataset folder itself works too
    assert {s.meta["split"] for s in val} == {"val"} and 0 < len(val) < len(src)
    s = val[0]
    ann_id = s.meta["ann_ids"][0]
    np.testing.assert_array_equal(s.target.load(), _mask_of(data, [ann_id]))


def test_refer_corrupt_and_missing(tmp_path, coco):
    _, data = coco
    folder = build_refer(tmp_path, data)
    with open(folder / "refs(unc).p", "rb") as fh:
        refs = pickle.load(fh)
    refs[0]["ann_id"] = 777777
    with open(folder / "refs(unc).p", "wb") as fh:
        pickle.dump(refs, fh, protocol=2)
    src = read_refer(tmp_path)
    assert len(src.problems) == 1 and "777777" in src.problems[0].reason
    assert src.problems[0].path.endswith("refs(unc).p")
    with pytest.raises(DatasetError, match="777777"):
        read_refer(tmp_path, on_error="raise")
    (folder / "refs(unc).p").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetError, match="cannot unpickle"):
        read_refer(tmp_path)
    with pytest.raises(DatasetError, match=r"refs\(google\).p: file not found"):
        read_refer(tmp_path, split_by="google")


def test_grefcoco_merges_targets_and_keeps_no_target(tmp_path, coco):
    _, data = coco
    _, refs = build_grefcoco(tmp_path, data)
    src = read_grefcoco(tmp_path)
    assert len(src) == len(refs)
    multi = [s for s in src if len(s.meta["ann_ids"]) > 1]
    assert multi
    for s in multi:
        np.testing.assert_array_equal(s.target.load(), _mask_of(data, s.meta["ann_ids"]))
    empty = [s for s in src if s.meta["no_target"]]
    assert len(empty) == 2
    opts = ConvertOptions(grid=24)
    for s in empty:
        assert not s.target.load().any()
        g, _ = encode_target(s, opts)
        assert g.is_empty() and g.shape == (24, 24)
        answer = convert_sample(s, opts)["conversations"][1]["value"]
        assert "<seg>others *24\n" in answer and "zebra" not in answer.split("<seg>")[1]
    assert open_source(tmp_path).name.startswith("grefcoco")


def test_read_names_formats(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("# ADE-style\nwall\nbuilding, edifice\n\nsky\n")
    assert read_names(p) == {0: "wall", 1: "building", 2: "sky"}
    p.write_text("0: background\n1 aeroplane\n15 person, people\n")
    assert read_names(p) == {0: "background", 1: "aeroplane", 15: "person"}
    p.write_text("wall\nbuilding, edifice\n")
    assert read_names(p, first_id=1) == {1: "wall", 2: "building"}  # ADE20K objectInfo150 style
    p.write_text("1 cat\n1 dog\n")
    with pytest.raises(DatasetError, match="second time"):
        read_names(p)
    p.write_text("\n# nothing\n")
    with pytest.raises(DatasetError, match="names no class"):
        read_names(p)
    with pytest.raises(DatasetError, match="not found"):
        read_names(tmp_path / "none.txt")


def test_semantic_folder(tmp_path, coco):
    _, data = coco
    label_dir, names, _, truth = build_semantic(tmp_path, data)
    table = read_names(names)
    src = read_semantic(label_dir, names, image_dir="images")
    assert len(src) == len(truth)
    for s in src:
        lab, _ = truth[s.id]
        g, asked = encode_target(s, ConvertOptions(grid=32))
        # reference: nearest sample of the label map, 255 and 0 -> others, names by id
        q = mc.quantize(lab, grid=32)
        expect = np.array([[table[v] if v not in (0, 255) else "others" for v in row] for row in q.tolist()])
        got = np.array(g.labels)[g.ids]
        np.testing.assert_array_equal(got, expect)
        assert "synonym" not in " ".join(g.labels)
        present = sorted(set(np.unique(lab).tolist()) - {0, 255})
        assert asked == [table[v] for v in present]
        assert s.image == f"images/{s.id}.jpg" and s.task == "semantic"
    opened = open_source(label_dir, names=str(names))
    assert [s.id for s in opened] == [s.id for s in src]


def test_semantic_instances(tmp_path, coco):
    _, data = coco
    label_dir, names, inst_dir, truth = build_semantic(tmp_path, data)
    table = read_names(names)
    src = read_semantic(label_dir, names, instance_dir=inst_dir)
    for s in src:
        lab, ins = truth[s.id]
        labels, names_of = s.target.load()
        # every (class, instance) pair gets its own id; names are "<class> <k>" by instance order
        for cls in set(np.unique(lab).tolist()) - {0, 255}:
            inst_ids = sorted(set(np.unique(ins[lab == cls]).tolist()))
            for k, iid in enumerate(inst_ids, 1):
                region = (lab == cls) & (ins == iid)
                ids = np.unique(labels[region])
                assert len(ids) == 1 and names_of[int(ids[0])] == f"{table[cls]} {k}"
    people = [n for s in src for n in s.target.load()[1].values() if n.startswith("person ")]
    assert "person 2" in people
    (inst_dir / f"{next(iter(truth))}.png").unlink()
    src2 = read_semantic(label_dir, names, instance_dir=inst_dir)
    assert len(src2) == len(src) - 1 and "instance PNG not found" in str(src2.problems[0])


def test_semantic_bad_files(tmp_path, coco):
    _, data = coco
    label_dir, names, _, truth = build_semantic(tmp_path, data)
    stem = next(iter(truth))
    (label_dir / f"{stem}.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    src = read_semantic(label_dir, names)
    bad = next(s for s in src if s.id == stem)
    with pytest.raises(DatasetError, match="cannot read") as info:
        encode_target(bad, ConvertOptions())
    assert info.value.path.endswith(f"{stem}.png")
    t = PngTarget(str(label_dir / "gone.png"), ((1, "cat"),))
    with pytest.raises(DatasetError, match="gone.png: file not found"):
        t.load()
    few = read_semantic(label_dir, {1: "person"})
    other = next(s for s in few if s.id != stem)
    with pytest.raises(DatasetError, match="no name in the class-name file"):
        encode_target(other, ConvertOptions())
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no .png"):
        read_semantic(tmp_path / "empty", names)
    with pytest.raises(DatasetError, match="label folder not found"):
        read_semantic(tmp_path / "nowhere", names)


def test_open_source_errors(tmp_path):
    with pytest.raises(DatasetError, match="no such file"):
        open_source(tmp_path / "nope")
    with pytest.raises(DatasetError, match="cannot tell"):
        open_source(tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset kind"):
        open_source(tmp_path, kind="voc")


def test_public_names_sorted_and_complete():
    from maskcodec import datasets, metrics

    for mod in (datasets, metrics):
        public = {
            n
            for n in dir(mod)
            if not n.startswith("_") and getattr(getattr(mod, n), "__module__", "").startswith(mod.__name__)
        }
        assert public <= set(mod.__all__), public - set(mod.__all__)
        assert all(hasattr(mod, n) for n in mod.__all__)
    import subprocess
    import sys

    # importing maskcodec stays light: no datasets, ray or pyarrow
    heavy = "('maskcodec.datasets', 'ray', 'pyarrow', 'datasets')"
    code = f"import sys, maskcodec; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_check_images(tmp_path, coco):
    from maskcodec.datasets import check_images

    path, data = coco
    src = read_coco(path, image_root="imgs")
    present = data["images"][0]["file_name"]
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / present).write_bytes(b"")
    kept = check_images(src, tmp_path)
    assert kept and all(s.image.endswith(present) for s in kept)
    missing = {p.path for p in kept.problems}
    assert len(kept.problems) == len(src) - len(kept)
    assert all(p.reason == "image file not found" and p.path.startswith(str(tmp_path)) for p in kept.problems)
    assert len(missing) == len(data["images"]) - 1  # one problem per sample, each naming its image
    with pytest.raises(DatasetError, match="image file not found"):
        check_images(src, tmp_path, on_error="raise")


@pytest.mark.parametrize("instances", [False, True])
def test_coco_image_group_label_map(coco, instances):
    from maskcodec.datasets import CocoMapTarget

    path, data = coco
    src = read_coco(path, group="image", instances=instances)
    assert len(src) == len(data["images"]) and all(s.task == "semantic" for s in src)
    anns = {a["id"]: a for a in data["annotations"]}
    for s in src:
        assert isinstance(s.target, CocoMapTarget)
        labels, table = s.target.load()
        masks = [_mask_of(data, [i]) for i in s.meta["ann_ids"]]
        # reference: paint larger objects first, each object's id is its position + 1
        ref = np.zeros(masks[0].shape, np.int32)
        for k in sorted(range(len(masks)), key=lambda j: -int(masks[j].sum())):
            ref[masks[k]] = k + 1
        np.testing.assert_array_equal(labels, ref)
        cats = [
            NAMES.get(anns[i]["category_id"], f"class {anns[i]['category_id']}") for i in s.meta["ann_ids"]
        ]
        if instances:
            counts = {}
            for k, c in enumerate(cats, 1):
                counts[c] = counts.get(c, 0) + 1
                assert table[k] == f"{c} {counts[c]}"
        else:
            assert [table[k] for k in range(1, len(cats) + 1)] == cats
        g, asked = encode_target(s, ConvertOptions(grid=32))
        expect = np.array(
            [[table[v] if v else "others" for v in row] for row in mc.quantize(ref, grid=32).tolist()]
        )
        np.testing.assert_array_equal(np.array(g.labels)[g.ids], expect)
        assert set(asked) == set(table.values())
    people = [n for s in src for n in s.target.load()[1].values()]
    assert ("person 2" in people) == instances
