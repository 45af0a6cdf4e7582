"""The encode / decode / validate / demo subcommands, called through maskcodec.cli.main."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import maskcodec as mc
import reference as ref
from maskcodec import _cli_codec
from maskcodec.cli import main

TEXT_4x4 = "<seg>others *4\n others *1| dog *2| others *1\n others *1| dog *2| others *1\n others *4\n</seg>"


@pytest.fixture
def mask_png(tmp_path):
    m = np.zeros((40, 40), dtype=np.uint8)
    m[10:30, 10:30] = 255
    path = tmp_path / "mask.png"
    Image.fromarray(m).save(path)
    return path, m


def _run(capsys, argv):
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


def test_encode_binary_png(capsys, mask_png):
    path, m = mask_png
    rc, out, err = _run(capsys, ["encode", str(path), "--grid", "4", "--label", "dog"])
    assert rc == 0 and err == ""
    assert out == TEXT_4x4 + "\n"
    assert out.rstrip("\n") == ref.text4seg_encode(m, "dog", 4, 4)


def test_encode_options(capsys, mask_png):
    path, m = mask_png
    rc, out, _ = _run(capsys, ["encode", str(path), "--grid", "2", "4", "--label", "white horse", "--format", "irle",
                               "--no-envelope", "--method", "area", "--background", "bg"])
    assert rc == 0
    g = mc.encode_grid(m, "white horse", grid=(2, 4), method="area", background="bg")
    assert out == mc.to_text(g, format="irle", envelope=False)


def test_encode_label_map_with_names_file(capsys, tmp_path):
    m = np.array([[0, 1, 1, 2], [0, 0, 2, 2]], dtype=np.uint8)
    Image.fromarray(m).save(tmp_path / "map.png")
    (tmp_path / "names.txt").write_text("# classes\nbackground\ncat, kitty\ndog\n", encoding="utf-8")
    rc, out, _ = _run(capsys, ["encode", str(tmp_path / "map.png"), "--grid", "2", "4", "--labels", str(tmp_path / "names.txt")])
    assert rc == 0
    assert out == "<seg>background *1| cat *2| dog *1\n background *2| dog *2\n</seg>\n"
    (tmp_path / "ids.txt").write_text("1: cat\n2 dog\n", encoding="utf-8")
    rc, out, _ = _run(capsys, ["encode", str(tmp_path / "map.png"), "--grid", "2", "4", "--labels", str(tmp_path / "ids.txt")])
    assert rc == 0 and out == "<seg>others *1| cat *2| dog *1\n others *2| dog *2\n</seg>\n"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--label", "dog", "--labels", "names.txt"], "give one of --label (binary mask) or --labels FILE"),
        (["--label", "a|b"], "label 'a|b' contains '|'"),
        (["--label", "dog", "--grid", "0"], "out of range"),
    ],
)
def test_encode_errors(capsys, mask_png, extra, message):
    path, _ = mask_png
    rc, out, err = _run(capsys, ["encode", str(path), *extra])
    assert rc == 1 and out == ""
    assert err.startswith("maskcodec encode: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_encode_rejects_rgb_and_missing_files(capsys, tmp_path):
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "rgb.png")  # channels differ
    rc, _, err = _run(capsys, ["encode", str(tmp_path / "rgb.png"), "--label", "x"])
    assert rc == 1 and "channels that differ" in err and "mode RGB" in err
    rc, _, err = _run(capsys, ["encode", str(tmp_path / "nope.png"), "--label", "x"])
    assert rc == 1 and "nope.png" in err and "Traceback" not in err


def test_decode_to_png(capsys, tmp_path):
    out_png = tmp_path / "out.png"
    rc, out, err = _run(capsys, ["decode", TEXT_4x4, "--size", "8x6", "-o", str(out_png)])
    assert rc == 0 and err == ""
    got = np.asarray(Image.open(out_png))
    assert got.shape == (6, 8)
    g = mc.from_text(TEXT_4x4)
    np.testing.assert_array_equal(got, ref.upsample(g.ids, 6, 8).astype(bool).astype(np.uint8) * 255)


def test_decode_stdin_repairs_and_ids(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("<seg>others *1| dog *1\n cat *3\n</seg>"))
    out_png = tmp_path / "ids.png"
    rc, out, err = _run(capsys, ["decode", "-", "--size", "3x2", "--grid", "2", "3", "--ids", "-o", str(out_png)])
    assert rc == 0
    assert out == "0\tothers\n1\tdog\n2\tcat\n"
    assert err == "repair: line 1, column 6: short_row: row 1 has 2 of 3 cells; padded with its last label\n"
    assert np.asarray(Image.open(out_png)).tolist() == [[0, 1, 1], [2, 2, 2]]


def test_decode_from_file_and_modes(capsys, tmp_path):
    (tmp_path / "answer.txt").write_text("Here: <seg>dog *2\nothers *2\n</seg>", encoding="utf-8")
    rc, _, err = _run(capsys, ["decode", f"@{tmp_path / 'answer.txt'}", "--size", "2x2", "--mode", "text4seg",
                               "--grid", "2", "-o", str(tmp_path / "t.png")])
    assert rc == 0
    assert not np.asarray(Image.open(tmp_path / "t.png")).any()  # the reference fails: all background
    rc, _, err = _run(capsys, ["decode", f"@{tmp_path / 'answer.txt'}", "--size", "2x2", "--mode", "strict",
                               "-o", str(tmp_path / "s.png")])
    assert rc == 1 and err == "maskcodec decode: error: line 2, column 1: expected ' ' (next row) or '</seg>', found 'o'\n"


def test_decode_as_the_reference_scripts_save_it(capsys, tmp_path):
    # 16x16 at 5x82 (WIDTHxHEIGHT): torch's float32 index path moves output row 41 to grid row 7.
    ids = np.zeros((16, 16), np.uint8)
    ids[8:] = 1
    text = mc.LabelGrid(ids, ("others", "dog")).to_text()
    for align, row41 in (("corner", 255), ("torch", 0)):
        out_png = tmp_path / f"{align}.png"
        rc, _, _ = _run(capsys, ["decode", text, "--size", "5x82", "--mode", "text4seg", "--grid", "16",
                                 "--align", align, "-o", str(out_png)])
        assert rc == 0 and np.asarray(Image.open(out_png))[41].tolist() == [row41] * 5
    # The semantic class file numbers the labels; two steps through 336x336.
    (tmp_path / "classes.txt").write_text("dog\nothers\ncat\n", encoding="utf-8")
    rc, out, _ = _run(capsys, ["decode", "<seg>others *1| dog *1\n cat *2\n</seg>", "--size", "4x4", "--grid", "2",
                               "--mode", "text4seg", "--class-table", str(tmp_path / "classes.txt"), "--ids",
                               "--via", "336x336", "-o", str(tmp_path / "sem.png")])
    assert rc == 0 and out == "0\tdog\n1\tothers\n2\tcat\n"
    assert np.asarray(Image.open(tmp_path / "sem.png")).tolist() == [[1, 1, 0, 0]] * 2 + [[2, 2, 2, 2]] * 2
    rc, _, err = _run(capsys, ["decode", text, "--size", "4x4", "--class-table", str(tmp_path / "classes.txt"),
                               "-o", str(tmp_path / "x.png")])
    assert rc == 1 and "mode='text4seg'" in err


@pytest.mark.parametrize("size", ["8", "8x", "0x4", "axb", "4x4x4", "-3x4"])
def test_decode_bad_size(capsys, tmp_path, size):
    rc, out, err = _run(capsys, ["decode", TEXT_4x4, f"--size={size}", "-o", str(tmp_path / "x.png")])
    assert rc == 1 and out == ""
    assert err == f"maskcodec decode: error: --size must be WIDTHxHEIGHT with positive integers, got {size!r}\n"


def test_validate(capsys, monkeypatch):
    rc, out, err = _run(capsys, ["validate", TEXT_4x4])
    assert (rc, out, err) == (0, "valid: 4x4 grid, labels ['others', 'dog']\n", "")
    rc, out, err = _run(capsys, ["validate", TEXT_4x4, "--grid", "5"])
    assert rc == 1 and out == ""
    assert err == "invalid: line 1, column 15: row 1 has 4 cells, expected 5\n"
    monkeypatch.setattr("sys.stdin", io.StringIO("<seg>others *1|dog *1\n</seg>"))
    rc, out, err = _run(capsys, ["validate", "-"])
    assert rc == 1 and err == "invalid: line 1, column 16: expected '| ' between runs, found '|' then 'd'\n"
    rc, out, err = _run(capsys, ["validate", "others| dog| dog| dog\n", "--format", "full", "--no-envelope"])
    assert rc == 0 and out == "valid: 2x2 grid, labels ['others', 'dog']\n"


def test_validate_pinned_grid_error(capsys):
    rc, _, err = _run(capsys, ["validate", TEXT_4x4, "--grid", "3", "4"])
    assert rc == 1 and err == "invalid: line 4, column 2: more than 3 rows\n"


def test_demo(capsys):
    rc, out, err = _run(capsys, ["demo", "--index", "0", "--grid", "16"])
    assert rc == 0 and err == ""
    text = out.split("\n", 2)[2].split("\ncharacters:")[0]
    assert text.startswith("<seg>") and text.endswith("</seg>")
    g = mc.from_text(text, grid=16)
    assert g.rows == 16
    assert f"characters: {len(text)}" in out
    iou = float(out.rsplit(": ", 1)[1])
    assert 0.0 <= iou <= 1.0


def test_usage_errors_exit_2(capsys):
    for argv in (["decode", TEXT_4x4], ["frobnicate"], [], ["encode"]):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == 2
    capsys.readouterr()


def test_cli_coco_names_match_the_reference_table():
    for cat in range(1, 91):
        assert _cli_codec._COCO_NAMES[cat] == ref.COCO_CATEGORIES.get(cat, ""), cat


def test_python_dash_m(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "maskcodec", "validate", "-"], input=TEXT_4x4, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0 and proc.stdout.startswith("valid: 4x4 grid")


def _in_own_process(args, env_jit=None):
    """Run the command line as a process of its own; (stdout, whether numba got imported)."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; from maskcodec.cli import main; sys.argv = ['maskcodec', *sys.argv[1:]]; rc = main(); "
        "sys.stderr.write('NUMBA=%s' % ('numba' in sys.modules)); sys.exit(rc)"
    )
    env = {k: v for k, v in os.environ.items() if k != "MASKCODEC_JIT"}
    if env_jit is not None:
        env["MASKCODEC_JIT"] = env_jit
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=True)
    return proc.stdout, proc.stderr.endswith("NUMBA=True")


@pytest.mark.slow_without_jit
def test_small_commands_skip_numba_in_their_own_process(tmp_path, mask_png):
    path, _ = mask_png
    out, numba = _in_own_process(["encode", str(path), "--grid", "4", "--label", "dog"])
    assert out == TEXT_4x4 + "\n" and not numba
    out, numba = _in_own_process(["encode", str(path), "--grid", "4", "--label", "dog"], env_jit="1")
    assert out == TEXT_4x4 + "\n" and numba
    out, numba = _in_own_process(["encode", str(path), "--grid", "4", "--label", "dog", "--method", "area"])
    assert out == mc.encode_mask(np.asarray(Image.open(path)), "dog", grid=4, method="area") + "\n" and numba
    png = tmp_path / "back.png"
    _, numba = _in_own_process(["decode", TEXT_4x4, "--size", "40x40", "-o", str(png)])
    assert not numba and (np.asarray(Image.open(png)) == mc.decode_mask(TEXT_4x4, size=(40, 40)) * 255).all()
    out, numba = _in_own_process(["validate", TEXT_4x4])
    assert out.startswith("valid: 4x4") and not numba


def test_in_process_calls_keep_the_jit(capsys, mask_png):
    path, _ = mask_png
    assert _cli_codec.WHOLE_PROCESS is False
    assert _run(capsys, ["encode", str(path), "--grid", "4", "--label", "dog"])[1] == TEXT_4x4 + "\n"
    import os

    assert os.environ.get("MASKCODEC_JIT") != "0"


def test_warmup_compiles_or_says_why_not(capsys):
    rc, out, err = _run(capsys, ["warmup"])
    assert rc == 0 and err == ""
    assert out.startswith("warmup: numba loaded in") or "nothing to compile" in out
