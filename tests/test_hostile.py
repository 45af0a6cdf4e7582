"""Hostile input (issue 11): every case of the probe, as a regression test.

Nothing here looks at a clock.  Time that grew faster than the input came from
work repeated per repair, per row or per label, so the tests pin what made it
linear (repairs capped per kind, rows past the grid not read) and run the
probe's own input sizes, which took 6 to 20 s or more before and now a
fraction of a second.  Memory is checked with ``tracemalloc``, which sees
numpy's allocations: peaks stay near input plus output.
"""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import maskcodec as mc
from maskcodec import boxes, coco, dialects, polygon
from maskcodec._parser import MAX_REPAIRS_PER_KIND
from reference import text4seg_decode

MB = 1 << 20


def _peak(fn):
    """(result, peak bytes traced while fn ran)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _capped(repairs):
    kinds = [r.kind for r in repairs]
    return all(kinds.count(k) <= MAX_REPAIRS_PER_KIND + 1 for k in set(kinds))


# ----------------------------------------------------------------------------- time: repair mode


def test_irle_repair_of_star_one_repeated():
    text = "<seg>" + "* 1" * 700_000 + "\n</seg>"  # the probe's 2e6 characters (over 20 s before)
    r = mc.parse(text, mode="repair", format="irle", grid=16)
    assert r.grid.shape == (16, 16) and r.grid.labels == ("others",)
    assert _capped(r.repairs)
    cut = [x for x in r.repairs if x.message.endswith("not listed")]
    assert cut and cut[0].kind == "bad_run" and cut[0].message.startswith(f"{700_000 - MAX_REPAIRS_PER_KIND} more")


def test_rrle_repair_of_labels_full_of_separators():
    # 256 rows, each one label of 4 KB with "|" at every other character
    row = "a|" * 2048 + " *16"
    text = "<seg>" + "\n ".join([row] * 256) + "\n</seg>"
    r, peak = _peak(lambda: mc.parse(text, mode="repair", grid=(256, 16)))
    assert r.grid.shape == (256, 16)
    assert _capped(r.repairs)
    assert peak < 30 * len(text)  # 170 bytes per byte of input before the cap


def test_repair_records_past_the_cap_are_counted_not_listed():
    text = "<seg>" + "|".join(["dog *1"] * 500) + "\n</seg>"
    r = mc.parse(text, mode="repair", grid=(1, 16))
    bad = [x for x in r.repairs if x.kind == "bad_separator"]
    assert len(bad) == MAX_REPAIRS_PER_KIND + 1
    assert bad[-1].message == f"{499 - MAX_REPAIRS_PER_KIND} more 'bad_separator' repairs from here on not listed"
    assert (bad[-1].line, bad[-1].column) == (1, 5 + 7 * (MAX_REPAIRS_PER_KIND + 1))  # the 101st '|'
    assert (r.grid.ids == 1).all()


def test_rows_past_the_grid_are_counted_not_read():
    rows = ["others *8| dog *8"] * 16 + ["garbage | *"] * 100_000
    r = mc.parse("<seg>" + "\n ".join(rows) + "\n</seg>", mode="repair", grid=16)
    assert [x.kind for x in r.repairs] == ["extra_rows"]
    assert r.repairs[0].message == "100000 row(s) beyond 16 dropped"
    assert (r.repairs[0].line, r.repairs[0].column) == (17, 1)
    assert r.grid == mc.from_text("<seg>" + "\n ".join(rows[:16]) + "\n</seg>")


def test_dialect_repair_with_alternating_headers():
    lines = []
    for i in range(40_000):  # 80,000 header lines: over 20 s before
        lines += [f"{dialects.alias(i + 1)}=label {i}", ".=others" if i % 2 else ".=sky"]
    text = "<seg>" + "\n".join(lines) + "\n.\n" + "a\n" * 15 + "</seg>"
    r = dialects.parse(text, "arle", grid=16, mode="repair")
    assert r.grid.labels[0] == "others" and len(r.grid.labels) == 40_001
    assert r.grid.ids[0].tolist() == [0] * 16 and (r.grid.ids[1:] == 1).all()


def test_dialect_repair_of_many_broken_rows():
    row = " *1| ".join(["a"] * 300) + " *1|*"
    text = "<seg>" + "\n ".join([row] * 1024) + "\n</seg>"
    r = dialects.parse(text, "crle", grid=1024, mode="repair")
    assert r.grid.shape == (1024, 1024)
    assert (r.grid.ids[:, :300] == 1).all() and (r.grid.ids[:, 300:] == 0).all()
    assert _capped(r.repairs)


@pytest.mark.parametrize("header", ["a=", "a=*", "*", "a=|", ".=", ".=\ud800"])
def test_dialect_repair_never_raises_on_headers(header):
    for dialect in ("arle", "spans"):
        r = dialects.parse(f"<seg>{header}\n.\n</seg>", dialect, grid=2, mode="repair")
        assert r.grid.shape == (2, 2)


# ----------------------------------------------------------------------------- time and memory: boxes


@pytest.mark.slow_without_jit
def test_boxes_full_image_instances():
    text = "<seg>" + "".join(f"<box>0 0 99 99</box>{'dog' if i % 2 else 'cat'} *1\n" for i in range(3000)) + "</seg>"
    out = boxes.decode_boxes(text, (1000, 1000))  # 10 s before: each instance painted in full
    assert out.shape == (1000, 1000) and out.labels == ("others", "cat", "dog")
    assert (out.ids == 2).all()  # the last instance wins


@pytest.mark.slow_without_jit
def test_boxes_with_many_distinct_labels():
    n = 20_000  # 7.6 s before: a list.index per label
    text = "<seg>" + "".join(f"<box>{i % 100} 0 {i % 100} 0</box>obj {i} *1\n" for i in range(n)) + "</seg>"
    out = boxes.decode_boxes(text, (100, 100))
    assert len(out.labels) == n + 1
    # the last instance of each column bin wins
    assert out.labels[out.ids[0, 7]] == f"obj {n - 100 + 7}"


# ----------------------------------------------------------------------------- memory


def test_parse_all_of_empty_blocks_shares_one_grid():
    text = "<seg></seg>" * 5000
    results, peak = _peak(lambda: mc.parse_all(text, mode="repair", grid=1024))
    assert len(results) == 5000 and all(r.grid.shape == (1024, 1024) for r in results)
    assert peak < 64 * MB  # 2.7 GB before: a megabyte per block
    assert results[0].grid.ids is results[-1].grid.ids and not results[0].grid.ids.flags.writeable


@pytest.mark.slow_without_jit
def test_polygon_zig_zag_memory():
    n = 100_000
    text = json.dumps([[round(i / n, 6), float(i % 2)] for i in range(n)])
    mask, peak = _peak(lambda: polygon.decode_polygons(text, (1000, 1000)))
    assert mask.shape == (1000, 1000)
    assert peak < 100 * MB  # 2.3 GB before (one index entry per edge/row crossing)
    # every other thin triangle: alternate columns filled in the middle row
    assert mask[500].sum() == pytest.approx(500, abs=5)


def test_text4seg_mode_with_a_huge_label():
    label = "x" * (10 * MB)
    text = f"<seg>{label} *1048576\n</seg>"
    r, peak = _peak(lambda: mc.parse(text, mode="text4seg", grid=1024))  # MemoryError before
    assert r.grid.labels == (label,) and r.grid.shape == (1024, 1024) and not r.repairs
    assert peak < 12 * len(label)  # a few copies of the label by str.split, a reference per cell
    # a label full of "|" splits into cells, as in the reference
    for text in ("<seg>a|b *3\n others *3\n others *3\n</seg>", "<seg>a|b|c *2\n d|e *3\n f *4\n</seg>",
                 "<seg>a| b *2| others *1\n x|y|z|w *3\n</seg>"):
        r = mc.parse(text, mode="text4seg", grid=3)
        ids, names = text4seg_decode(text, 3, 3)
        assert r.grid.ids.tolist() == ids
        assert r.grid.labels == tuple(names) if names else [x.kind for x in r.repairs] == ["reference_error"]


@pytest.mark.parametrize("size", [(100_000, 100_000), (2**40, 2**40), (1, 2**31)])
def test_oversized_size_is_an_input_error(size):
    text = mc.encode_mask(np.ones((4, 4), bool), "dog", grid=2)
    for call in (
        lambda: mc.decode_mask(text, size=size),
        lambda: mc.decode_mask(text, size=size, mode="strict"),
        lambda: mc.decode_mask("no block", size=size),
        lambda: mc.render(np.zeros((2, 2), np.uint8), size),
        lambda: mc.from_text(text).mask(size),
        lambda: dialects.decode_mask("<seg>others\n others\n</seg>", size=size, grid=2),
        lambda: polygon.decode_polygons("[]", size),
        lambda: boxes.decode_boxes("<seg></seg>", size),
        lambda: coco.rle_to_mask({"size": list(size), "counts": [size[0] * size[1]]}),
    ):
        with pytest.raises(mc.InputError, match="max_pixels|MAX_PIXELS"):
            call()


def test_max_pixels_can_be_raised_or_lowered():
    text = "<seg>dog *1\n</seg>"
    assert mc.decode_mask(text, size=(3, 3), max_pixels=9).all()
    with pytest.raises(mc.InputError, match="9 pixels, more than max_pixels=8"):
        mc.decode_mask(text, size=(3, 3), max_pixels=8)
    assert mc.MAX_PIXELS == 2**30


# ----------------------------------------------------------------------------- only our errors


SURROGATE = "\ud800"


def test_lone_surrogates_are_unsafe_labels():
    assert not mc.is_safe_label(f"a{SURROGATE}b")
    assert mc.safe_label(f"a{SURROGATE}b") == "a b"
    with pytest.raises(mc.LabelError, match="lone surrogate"):
        mc.encode_mask(np.ones((2, 2), bool), f"dog{SURROGATE}")


@pytest.mark.parametrize("where", ["label", "background-like", "free text"])
def test_lone_surrogate_in_every_parser(where):
    text = {
        "label": f"<seg>{SURROGATE} *1\n</seg>",
        "background-like": f"<seg>others *1| do{SURROGATE}g *1\n</seg>",
        "free text": f"{SURROGATE}<seg>others *1\n</seg>{SURROGATE}",
    }[where]
    strict_ok = where == "free text"
    for call in (
        lambda: mc.parse(text),
        lambda: mc.parse(text, format="irle"),
        lambda: mc.parse(text, format="full"),
        lambda: dialects.parse(text, "crle", grid=1),
        lambda: dialects.convert(text, "rrle", "crle"),
        lambda: boxes.parse_boxes(text.replace("<seg>", "<seg><box>0 0 1 1</box>")),
    ):
        try:
            call()
        except mc.MaskcodecError as err:
            assert not strict_ok or "column" in str(err)
    # repair mode and decode_mask never raise, and clean the label
    for fmt in ("rrle", "irle", "full"):
        r = mc.parse(text, mode="repair", format=fmt)
        assert all(mc.is_safe_label(lab) for lab in r.grid.labels)
    assert mc.decode_mask(text, size=(2, 2)).shape == (2, 2)
    assert dialects.parse(text, "crle", grid=1, mode="repair").grid.shape == (1, 1)
    assert boxes.parse(text, mode="repair").found
    mc.parse(text, mode="text4seg")


def test_huge_integers_in_polygon_json():
    for digits in (400, 5000):
        big = "1" + "0" * digits
        for text in (f"[[{big}, 0], [0, 0], [0, 1]]", f"[[0.5, 0.5], [0, {big}], [0, 1]]", f"[{big}]"):
            with pytest.raises(mc.ParseError):
                polygon.from_text(text, (4, 4))
    with pytest.raises(mc.ParseError):
        polygon.from_text("[" * 100_000 + "]" * 100_000, (4, 4))


def test_huge_integers_in_coco_rle():
    with pytest.raises(mc.InputError, match="MAX_PIXELS"):
        coco.rle_to_mask({"size": [10**400, 1], "counts": [1]})
    with pytest.raises(mc.InputError, match="list of ints"):
        coco.rle_to_mask({"size": [2, 2], "counts": [10**400]})
    with pytest.raises(mc.InputError):
        coco.rle_to_mask({"size": [2, 2], "counts": [2**63 + 5, 1]})
    with pytest.raises(mc.InputError, match="negative"):
        coco.rle_to_mask({"size": [1, 2], "counts": np.array([2**64 - 1, 3], dtype=np.uint64)})


def test_repair_never_raises_on_the_probe_texts():
    texts = ["", "*", "|", "<seg>", "</seg>", "<seg>*", "<seg>| *", "<seg> *0\n", "<seg>a *" + "9" * 5000,
             "<seg>\r\r\n", f"<seg>{SURROGATE}", "<seg><box>", "<seg><box>1 2 3 4</box>", "<seg>" + "\n" * 5000]
    for text in texts:
        for fmt in ("rrle", "irle", "full"):
            assert mc.parse(text, mode="repair", format=fmt).grid.ids.ndim == 2
            mc.parse(text, mode="text4seg", format=fmt)
        for dialect in dialects.DIALECTS:
            assert dialects.parse(text, dialect, grid=4, mode="repair").grid.shape == (4, 4)
        for fmt in boxes.FORMATS:
            assert boxes.decode_boxes(text, (8, 8), format=fmt, mode="repair").shape == (8, 8)


# ----------------------------------------------------------------------------- command line (found by fuzz/)


def test_cli_sizes_with_non_ascii_digits_are_usage_errors(tmp_path, capsys):
    from maskcodec.cli import main

    for size in ("²x3", "٣x4", "4x٤"):
        assert main(["decode", "<seg>dog *1\n</seg>", "--size", size, "-o", str(tmp_path / "o.png")]) == 1
        assert "--size must be WIDTHxHEIGHT" in capsys.readouterr().err


def test_cli_files_that_are_not_utf8(tmp_path, capsys):
    from PIL import Image

    from maskcodec.cli import main

    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"<seg>dog *1\n\xed\xa0\x80</seg>")  # a UTF-8-encoded lone surrogate
    assert main(["validate", f"@{bad}"]) == 1
    assert "bad.txt: not UTF-8 text (byte b'\\xed' at offset 12)" in capsys.readouterr().err
    assert main(["decode", f"@{bad}", "--size", "2x2", "-o", str(tmp_path / "o.png")]) == 1
    Image.fromarray(np.eye(4, dtype=np.uint8) * 255).save(tmp_path / "m.png")
    bad.write_bytes(b"background\n\xffcat\n")
    assert main(["encode", str(tmp_path / "m.png"), "--labels", str(bad)]) == 1
    assert "not UTF-8" in capsys.readouterr().err


def test_encode_mask_path_refuses_a_decompression_bomb_from_the_header(tmp_path, monkeypatch):
    from PIL import Image

    import maskcodec.grid

    p = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 30), np.uint8)).save(p)
    monkeypatch.setattr(maskcodec.grid, "MAX_PIXELS", 1000)  # 40x30 = 1200 pixels is "too big" here
    with pytest.raises(mc.InputError, match=r"big.png: the image is 30x40, more than MAX_PIXELS=1000"):
        mc.encode_mask(str(p), "dog")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(mc.InputError, match="bad.png: cannot read the image"):
        mc.encode_mask(str(bad), "dog")
