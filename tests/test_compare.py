"""``maskcodec compare``: the numbers it prints are the numbers of the codecs, and its summary maths."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import COCO_FILE, coco_annotations, coco_masks

import maskcodec as mc
from maskcodec import _cli_compare as C
from maskcodec._cli_codec import _COCO_NAMES
from maskcodec.cli import main
from maskcodec.metrics import intersection_union

ROOT = Path(__file__).resolve().parents[1]


def _tokenizer_files():
    mistral_common = pytest.importorskip("mistral_common")
    pytest.importorskip("sentencepiece")
    data = os.path.join(os.path.dirname(mistral_common.__file__), "data")
    return os.path.join(data, "tokenizer.model.v1"), os.path.join(data, "tekken_240911.json")


def _raw(**configs):
    return {"masks": 4, "areas": [0, 100, 2000, 20000], "configs": configs}


def _cfg(tokens, inter, union, lost, family="rrle"):
    return {"codec": family, "family": family, "grid": 16, "method": "nearest", "vertices": 0, "bins": 100,
            "tokens": {"t": tokens}, "inter": inter, "union": union, "lost": lost}


def test_summary_maths():
    s = C.summarize(_raw(a=_cfg([10, 20, 30, 40], [0, 50, 100, 900], [0, 100, 200, 1000],
                                [False, True, False, False])))
    all_ = s["a"]["subsets"]["all"]
    assert all_["tokens"]["t"] == {"median": 25.0, "mean": 25.0, "p90": 37.0}
    assert all_["ciou"] == pytest.approx(1050 / 1300)
    assert all_["miou"] == pytest.approx((1 + 0.5 + 0.5 + 0.9) / 4)  # empty target, empty answer: IoU 1
    assert all_["lost"] == pytest.approx(1 / 3)  # of the three non-empty masks
    sizes = s["a"]["subsets"]
    assert sizes["small"]["masks"] == 2 and sizes["medium"]["masks"] == 1 and sizes["large"]["masks"] == 1
    assert sizes["large"]["ciou"] == pytest.approx(0.9)


def test_pareto_front():
    s = C.summarize(_raw(
        cheap=_cfg([10] * 4, [1, 1, 1, 1], [2, 2, 2, 2], [False] * 4),
        dominated=_cfg([20] * 4, [1, 1, 1, 1], [4, 4, 4, 4], [False] * 4),
        good=_cfg([30] * 4, [2, 2, 2, 2], [2, 2, 2, 2], [False] * 4),
    ))
    assert C.pareto(s, "t") == ["cheap", "good"]
    md = C.markdown(s, ["t"], subsets=("all",))
    assert "| **cheap** | 10 | 10.0 | 10.0 | 0.500 | 0.500 | 0.0% |" in md
    assert "| dominated |" in md


def test_configs_and_rough_tokens():
    names = [c.name for c in C.configs(grids=[16], box_grids=[8], vertices=[8])]
    assert names[0] == "rrle 16x16 nearest" and "boxes-spans 8x8 nearest bins=100" in names
    assert "polygon-loc 8v" in names and len(names) == len(C.CODECS)
    with pytest.raises(mc.InputError, match="unknown codec"):
        C.configs(["png"])
    assert C.rough_tokens("<seg>others *16\n</seg>") == ["<", "seg", ">", "others", "*", "1", "6", "\n", "<", "/",
                                                       "seg", ">"]


def test_compare_measures_what_the_codecs_write():
    pairs = [(m.astype(bool), _COCO_NAMES[a["category_id"]]) for a, m in zip(coco_annotations(), coco_masks())][:8]
    cfgs = C.configs(grids=[16], box_grids=[8], vertices=[8])
    raw = C.compare(pairs, cfgs, {"chars": len})
    r = raw["configs"]
    for i, (m, lab) in enumerate(pairs):
        text = mc.encode_mask(m, lab, grid=16)
        assert r["rrle 16x16 nearest"]["tokens"]["chars"][i] == len(text)
        i_, u_ = intersection_union(mc.decode_mask(text, size=m.shape), m)
        assert (r["rrle 16x16 nearest"]["inter"][i], r["rrle 16x16 nearest"]["union"][i]) == (i_, u_)
        # dialects describe the same grid: same quality, never more characters than R-RLE
        for d in ("crle", "arle", "spans"):
            assert r[f"{d} 16x16 nearest"]["inter"][i] == i_
            assert r[f"{d} 16x16 nearest"]["tokens"]["chars"][i] < len(text)
    for name in ("boxes 8x8 nearest bins=100", "polygon-json 8v", "polygon-loc 8v"):
        assert not any(r[name]["lost"])  # boxes (nonempty cells) and polygons never lose a mask


@pytest.mark.slow_without_jit
def test_command_line_with_real_tokenizers(tmp_path, capsys):
    sp, tk = _tokenizer_files()
    out = tmp_path / "r.json"
    plot = tmp_path / "p.png"
    argv = ["compare", str(COCO_FILE), "--limit", "10", "--tokenizer", sp, "--tokenizer", tk, "--grid", "16",
            "--box-grid", "8", "--vertices", "8", "--by-size", "--json", str(out), "--no-progress"]
    if importlib.util.find_spec("matplotlib") is not None:
        argv += ["--plot", str(plot)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "maskcodec compare: 10 masks; labels: COCO category names" in text
    assert "tokens counted with tokenizer.model.v1, tekken_240911.json" in text
    assert "### small" in text and "### large" in text
    doc = json.loads(out.read_text())
    assert doc["masks"] == 10 and doc["tokenizers"] == ["tokenizer.model.v1", "tekken_240911.json"]
    from maskcodec.tokens import count_tokens, load_tokenizer

    tok = load_tokenizer(sp)
    a, m = coco_annotations()[0], coco_masks()[0]
    first = count_tokens(mc.encode_mask(m.astype(bool), _COCO_NAMES[a["category_id"]], grid=16), tok)
    rrle = doc["summary"]["rrle 16x16 nearest"]["subsets"]["all"]
    assert rrle["masks"] == 10 and rrle["tokens"]["tokenizer.model.v1"]["median"] > 0
    assert doc["summary"]["crle 16x16 nearest"]["subsets"]["all"]["ciou"] == rrle["ciou"]
    assert first > 0
    if "--plot" in argv:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_png_and_errors(tmp_path, capsys):
    from PIL import Image

    m = np.zeros((40, 60), np.uint8)
    m[5:30, 10:50] = 255
    png = tmp_path / "m.png"
    Image.fromarray(m).save(png)
    assert main(["compare", str(png), "--codec", "rrle", "crle", "polygon-json", "--grid", "8", "--vertices", "4",
                 "--label", "box"]) == 0
    out = capsys.readouterr().out
    assert "tokens ROUGHLY estimated" in out and "| polygon-json 4v |" in out.replace("**", "")
    assert "label 'box' for every mask" in out
    assert main(["compare", str(png), "--codec", "rrle", "spans", "--grid", "8", "--budget", "10", "1000"]) == 0
    out = capsys.readouterr().out
    assert "#### best cIoU within a budget: all" in out and "| 10 | - |" in out
    assert "| 1000 | 0.889 (rrle 8x8 nearest, 79) | 0.889 (spans 8x8 nearest, 23) |" in out
    assert main(["compare", str(png), "--grid", "0"]) == 1
    assert "--grid values must be at least 1, got 0" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "missing.png")]) == 1
    assert "no such file" in capsys.readouterr().err


def test_benchmark_script_smoke(tmp_path):
    spec = importlib.util.spec_from_file_location("rate_quality", ROOT / "benchmarks" / "rate_quality.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rate_quality"] = mod
    spec.loader.exec_module(mod)
    doc = mod.run(limit=3, tokenizers=[], grids=[8], box_grids=[4], vertices=[4])
    assert doc["masks"] == 3 and "rrle 8x8 nearest" in doc["summary"]
    md = mod.render_markdown(doc)
    assert md.startswith("# Rate and quality") and "| rrle 8x8 nearest |" in md.replace("**", "")


def test_budget_table():
    s = C.summarize(_raw(
        a=_cfg([10] * 4, [1, 1, 1, 1], [2, 2, 2, 2], [False] * 4, family="rrle"),
        b=_cfg([30] * 4, [2, 2, 2, 2], [2, 2, 2, 2], [False] * 4, family="rrle"),
        c=_cfg([20] * 4, [3, 3, 3, 3], [4, 4, 4, 4], [False] * 4, family="polygon"),
    ))
    table = C.budget_table(s, "t", [5, 20, 40], subsets=("all",))
    assert "| 5 | - | - |" in table
    assert "| 20 | 0.500 (a, 10) | 0.750 (c, 20) |" in table
    assert "| 40 | 1.000 (b, 30) | 0.750 (c, 20) |" in table
