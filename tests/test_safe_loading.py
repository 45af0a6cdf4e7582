"""Hostile dataset files (issue 11): pickles that would run code, malformed JSON, oversized images.

Every failure is a :class:`DatasetError` that names the file; nothing in a file is ever run.
"""

from __future__ import annotations

import json
import os
import pickle

import numpy as np
import pytest
from datasets_fixtures import build_coco, build_refer
from PIL import Image

import maskcodec.grid
from maskcodec.datasets import DatasetError, open_source, read_coco, read_grefcoco, read_refer, read_semantic
from maskcodec.datasets import readers
from maskcodec.datasets._sample import _read_png


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return build_coco(tmp_path_factory.mktemp("coco"))


class _WritesAFile:
    """Unpickling this runs ``exec``, which writes ``path``: what a crafted refs(unc).p would do."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('pwned')",))


def test_a_pickle_that_would_write_a_file_is_refused(tmp_path, coco):
    folder = build_refer(tmp_path, coco[1])
    target = tmp_path / "written-by-the-pickle.txt"
    payload = pickle.dumps([{"ref_id": 0, "sentences": [], "x": _WritesAFile(target)}], protocol=2)
    # the payload is real: plain pickle runs it
    control = tmp_path / "control.txt"
    pickle.loads(pickle.dumps(_WritesAFile(control), protocol=2))
    assert control.read_text() == "pwned"
    (folder / "refs(unc).p").write_bytes(payload)
    with pytest.raises(DatasetError, match=r"refs\(unc\)\.p: cannot unpickle.*global (__builtin__|builtins)\.exec.*refused"):
        read_refer(tmp_path)
    with pytest.raises(DatasetError):
        open_source(tmp_path, kind="refer")
    assert not target.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_refer_pickles_load_in_every_protocol(tmp_path, coco, protocol):
    folder = build_refer(tmp_path, coco[1])
    with open(folder / "refs(unc).p", "rb") as fh:
        refs = pickle.load(fh)
    (folder / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=protocol))
    src = read_refer(tmp_path)
    assert len(src.samples) == sum(len(r["sentences"]) for r in refs) and not src.problems


def test_python2_byte_strings_are_latin1(tmp_path, coco):
    folder = build_refer(tmp_path, coco[1])
    with open(folder / "refs(unc).p", "rb") as fh:
        refs = pickle.load(fh)
    refs[0]["sentences"] = [{"sent": "caf\xe9 chair", "sent_id": 1}]
    # protocol 2 with a py2-style byte string (SHORT_BINSTRING), as Python 2 wrote str
    data = pickle.dumps(refs, protocol=2).replace(b"X\x0b\x00\x00\x00caf\xc3\xa9 chair", b"U\x0acaf\xe9 chair")
    (folder / "refs(unc).p").write_bytes(data)
    src = read_refer(tmp_path)
    assert src.samples[0].label == "caf\xe9 chair"


def test_refs_of_the_wrong_shape_are_reported_not_crashed(tmp_path, coco):
    folder = build_refer(tmp_path, coco[1])
    good = pickle.loads((folder / "refs(unc).p").read_bytes())
    bad = [1, "x", None, {"ref_id": 5, "image_id": [1, 2]}, {"ref_id": 6, "image_id": good[0]["image_id"],
           "ann_id": {"a": 1}}, {**good[0], "sentences": "not a list"}, {**good[0], "sentences": [3, {"tokens": [1]}]}]
    (folder / "refs(unc).p").write_bytes(pickle.dumps(bad + good[1:2]))
    src = read_refer(tmp_path)
    assert len(src.samples) == len(good[1]["sentences"])
    reasons = [p.reason for p in src.problems]
    assert reasons[:3] == ["ref #0 is a int, not a dict", "ref #1 is a str, not a dict", "ref #2 is a NoneType, not a dict"]
    assert len(reasons) == 8 and all(p.path.endswith("refs(unc).p") for p in src.problems)


@pytest.mark.parametrize(
    "content, match",
    [
        ("[" * 100_000 + "]" * 100_000, "not valid JSON"),
        ('{"images": [], "annotations": [], "categories": [{"id": 1' + "0" * 5000 + "}]}", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        ('{"images": 3, "annotations": [], "categories": []}', "'images' must be a list"),
        ('{"images": [7], "annotations": [], "categories": []}', r"images\[0\] is not an object"),
        ('{"images": [{"id": [1]}], "annotations": [], "categories": []}', r"images\[0\] is not an object"),
        ('{"images": [{"id": 1, "height": 0, "width": 3, "file_name": "a"}], "annotations": [], "categories": []}',
         r"images\[0\] \(id 1\) needs positive int 'height'"),
        ('{"images": [{"id": 1, "height": 100000, "width": 100000, "file_name": "a"}], "annotations": [], '
         '"categories": []}', "more than MAX_PIXELS"),
        ('{"images": [{"id": 1, "height": 2, "width": 2}], "annotations": [], "categories": []}', "no str 'file_name'"),
        ('{"images": [], "annotations": [], "categories": [{"id": 1, "name": 5}]}', "no str 'name'"),
        ('{"images": [], "annotations": [], "categories": [{"id": 1, "name": "|*"}]}', "nothing usable"),
    ],
)
def test_malformed_coco_json_is_a_dataset_error(tmp_path, content, match):
    path = tmp_path / "instances.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DatasetError, match=match) as err:
        read_coco(path)
    assert err.value.path == str(path)


def test_files_over_the_size_limit_are_refused_unread(tmp_path, coco, monkeypatch):
    monkeypatch.setattr(readers, "MAX_FILE_BYTES", 100)
    with pytest.raises(DatasetError, match="more than MAX_FILE_BYTES=100"):
        read_coco(coco[0])
    build_refer(tmp_path, coco[1])
    with pytest.raises(DatasetError, match=r"refs\(unc\)\.p: \d+ bytes, more than MAX_FILE_BYTES"):
        read_refer(tmp_path)
    with pytest.raises(DatasetError, match="file not found"):
        read_grefcoco(tmp_path)


def test_pngs_are_read_with_a_pixel_limit_and_clear_errors(tmp_path, monkeypatch):
    path = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 3, (30, 40), dtype=np.uint8)).save(path)
    assert _read_png(str(path)).shape == (30, 40)
    monkeypatch.setattr(maskcodec.grid, "MAX_PIXELS", 1000)
    with pytest.raises(DatasetError, match=r"a\.png: the image is 40x30, more than MAX_PIXELS=1000"):
        _read_png(str(path))
    monkeypatch.undo()
    cut = tmp_path / "cut.png"
    cut.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DatasetError, match="cut.png: cannot read the image"):
        _read_png(str(cut))
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (4, 4)).save(rgb)
    with pytest.raises(DatasetError, match="rgb.png: a label PNG needs one band"):
        _read_png(str(rgb))
    # through a reader: the sample's target names the file when it is loaded
    (tmp_path / "labels").mkdir()
    os.replace(cut, tmp_path / "labels" / "cut.png")
    names = tmp_path / "names.txt"
    names.write_text("background\ncat\n")
    src = read_semantic(tmp_path / "labels", names)
    with pytest.raises(DatasetError, match="cut.png"):
        src.samples[0].target.load()


def test_grefcoco_json_refs_of_the_wrong_shape(tmp_path, coco):
    folder = tmp_path / "grefcoco"
    folder.mkdir()
    (folder / "instances.json").write_text(json.dumps(coco[1]))
    (folder / "grefs(unc).json").write_text(json.dumps([[1], {"ref_id": 1, "ann_id": [[1]], "image_id": {}}]))
    src = read_grefcoco(tmp_path)
    assert not src.samples and len(src.problems) == 2
