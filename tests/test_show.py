"""maskcodec.show: pixels of the overlay, legend and panel; the show command; the gallery."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import maskcodec as mc
from maskcodec.cli import main
from maskcodec.datasets import make_record
from maskcodec.show import _ALPHA, _NEUTRAL, _PANEL_W, PALETTE, gallery, render_sample, show_record


def _blend(colour, under):
    a = _ALPHA / 255
    return np.array([c * a + u * (1 - a) for c, u in zip(colour, under)])


def _two_label_text():
    ids = np.zeros((4, 4), np.uint8)
    ids[0, 0] = 1
    ids[3, 3] = 2
    return mc.to_text(mc.LabelGrid(ids, ["others", "cat", "dog"]))


def test_overlay_colours_and_grid_lines():
    img = np.asarray(render_sample(None, _two_label_text(), size=(80, 120)))
    assert img.shape[1:] == (120 + _PANEL_W, 3) and img.shape[0] >= 80  # the text panel may be taller
    assert (img[80:, :120] == 255).all()  # below the picture: white
    # cell (0, 0) is "cat" -> first palette colour; cell (3, 3) "dog" -> second; others untouched
    assert np.abs(img[10, 15] - _blend(PALETTE[0], _NEUTRAL)).max() <= 1
    assert np.abs(img[70, 105] - _blend(PALETTE[1], _NEUTRAL)).max() <= 1
    assert (img[30, 45] == _NEUTRAL).all()
    # a cell line at x = 120 // 4 = 30 is lighter than the background next to it
    assert img[45, 30].sum() > img[45, 33].sum()
    # the legend swatches in the panel carry the label colours
    panel = img[:, 120:]
    for colour in PALETTE[:2]:
        assert (panel == colour).all(axis=2).sum() > 50


def test_image_background_and_reference_mask(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    path = tmp_path / "img.png"
    Image.fromarray(pixels).save(path)
    m = np.zeros((40, 40), bool)
    m[:20, :20] = True
    text = mc.encode_mask(m, "thing", grid=4)
    out = np.asarray(render_sample(str(path), text, question="Q?"))
    # background cells show the image unchanged (away from cell lines)
    assert (out[25:29, 25:29] == pixels[25:29, 25:29]).all()
    blended = _blend(PALETTE[0], pixels[5, 5].astype(float))
    assert np.abs(out[5, 5] - blended).max() <= 1
    ref = np.zeros((40, 40), bool)
    ref[30:, 30:] = True  # reference mask where the grid is background: darkened pixels
    dark = np.asarray(render_sample(str(path), text, mask=ref))
    assert (dark[35, 35].astype(int) <= pixels[35, 35].astype(int)).all()
    assert np.abs(dark[35, 35] - (pixels[35, 35] * 0.35).astype(np.uint8)).max() <= 1
    with pytest.raises(ValueError, match="shape"):
        render_sample(str(path), text, mask=np.zeros((3, 3), bool))


def test_repaired_answer_is_still_drawn():
    full = mc.encode_mask(np.eye(8, dtype=bool), "line", grid=8)
    cut = full[: len(full) // 2]
    img = render_sample(None, "Here:\n" + cut, size=(64, 64))
    assert img.size[0] == 64 + _PANEL_W
    with pytest.raises(TypeError, match="size"):
        render_sample(None, full)


def test_show_record_and_cli(tmp_path, capsys):
    m = np.zeros((30, 50), bool)
    m[5:25, 10:40] = True
    seg = mc.encode_mask(m, "sofa", grid=16)
    recs = [
        make_record(fmt, id=str(i), image="missing.jpg", question="Segment sofa.", answer="Sure:\n" + seg)
        for i, fmt in enumerate(("llava", "sharegpt", "swift", "hf-messages"))
    ]
    sizes = {show_record(r).size for r in recs}
    assert sizes == {(16 * 32 + _PANEL_W, 16 * 32)}  # missing image: 32 px per cell
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    out = tmp_path / "o.png"
    assert main(["show", f"@{jsonl}", "--line", "3", "-o", str(out), "--size", "50x30"]) == 0
    assert Image.open(out).size[0] == 50 + _PANEL_W
    assert main(["show", json.dumps(recs[0]), "-o", str(out)]) == 0
    img = tmp_path / "img.png"
    Image.fromarray(np.full((30, 50, 3), 90, np.uint8)).save(img)
    assert main(["show", str(img), "--answer", seg, "-o", str(out)]) == 0
    assert np.asarray(Image.open(out))[2, 2].tolist() == [90, 90, 90]
    capsys.readouterr()
    assert main(["show", "nothere.jpg", "--answer", seg, "-o", str(out)]) == 1
    assert "--size" in capsys.readouterr().err
    assert main(["show", "{not json", "-o", str(out)]) == 1
    assert "not a JSON record" in capsys.readouterr().err
    assert main(["show", f"@{jsonl}", "--line", "9", "-o", str(out)]) == 1


def test_gallery(tmp_path):
    paths = gallery(tmp_path, indices=(3, 21))
    assert len(paths) == 3 and paths[-1].endswith("show_scene_139.png")
    for p in paths:
        with Image.open(p) as im:
            assert im.mode == "RGB" and im.size[0] > _PANEL_W
