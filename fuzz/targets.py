"""Fuzz targets: one function per entry point, each taking arbitrary ``str`` input.

The rule every target checks (tomli's, widened to every parser of the package):

* only maskcodec's own errors (:class:`maskcodec.MaskcodecError`) may escape
  a parser in strict mode; anything else is a bug;
* repair mode (and ``text4seg`` mode) never raises on text at all, and
  returns the grid or mask shape that was asked for;
* anything that parses must round-trip: writing the result and reading it
  back gives the same grid (instances, rings, mask).

A target raises :class:`Escaped` (with the original exception chained) when a
foreign exception escapes, and ``AssertionError`` when a rule is broken.
``run(name, text)`` is what both the hypothesis driver and atheris call.
Targets never write outside the temporary folder they make, and the CLI
target only passes relative paths.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import tempfile

import numpy as np

import maskcodec as mc
from maskcodec import boxes, coco, dialects, polygon


class Escaped(AssertionError):
    """A foreign exception escaped a public function."""


def _ours(fn, *args, **kwargs):
    """Call fn; return its result, or None when it raised a maskcodec error."""
    try:
        return fn(*args, **kwargs)
    except mc.MaskcodecError:
        return None


def _grid_of(text: str):
    """A small grid derived from the input, so shapes vary without hypothesis drawing them."""
    n = len(text)
    return None if n % 3 == 0 else (1 + n % 5, 1 + (n // 5) % 6)


# --------------------------------------------------------------------------- R-RLE, I-RLE, full


def rle(text: str) -> None:
    grid = _grid_of(text)
    for fmt in ("rrle", "irle", "full"):
        for envelope in (True, False):
            result = _ours(mc.parse, text, format=fmt, envelope=envelope, grid=grid)
            if result is not None:
                g = result.grid
                back = mc.parse(g.to_text(format=fmt), format=fmt, grid=g.shape).grid
                assert back.canonical() == g.canonical(), (fmt, text)
            r = mc.parse(text, mode="repair", format=fmt, envelope=envelope, grid=grid)
            if grid is not None:
                assert r.grid.shape == grid
            mc.parse(text, mode="text4seg", format=fmt, envelope=envelope, grid=grid)
    for r in mc.parse_all(text, mode="repair", grid=grid):
        assert grid is None or r.grid.shape == grid
    _ours(mc.parse_all, text)
    assert mc.decode_mask(text, size=(3, 5), grid=grid).shape == (3, 5)
    assert mc.decode_mask(text, size=(2, 2), mode="text4seg").shape == (2, 2)
    _ours(mc.decode_mask, text, size=(4, 4), mode="strict")


# --------------------------------------------------------------------------- dialects


def dialect(text: str) -> None:
    grid = _grid_of(text) or (4, 4)
    for d in dialects.DIALECTS:
        g = _ours(dialects.from_text, text, d, grid=grid)
        if g is not None:
            back = dialects.from_text(dialects.to_text(g, d), d, grid=g.shape)
            assert back.canonical() == g.canonical(), (d, text)
        r = dialects.parse(text, d, grid=grid, mode="repair")
        assert r.grid.shape == grid
        for target in ("rrle",) + dialects.DIALECTS:
            _ours(dialects.convert, text, d, target, grid=grid)


# --------------------------------------------------------------------------- boxes


def box(text: str) -> None:
    grid = _grid_of(text)
    for fmt in boxes.FORMATS:
        g = grid if fmt == "rrle" else (grid or (3, 3))
        inst = _ours(boxes.parse_boxes, text, format=fmt, grid=g, bins=10)
        if inst is not None:
            back = boxes.parse_boxes(boxes.to_text(inst, format=fmt), format=fmt, grid=g, bins=10)
            assert [i.box for i in back] == [i.box for i in inst]
            assert all(a.grid.canonical() == b.grid.canonical() for a, b in zip(back, inst))
        r = boxes.parse(text, format=fmt, grid=g, bins=10, mode="repair")
        assert all(0 <= v < 10 for i in r.instances for v in i.box)
        assert boxes.decode_boxes(text, (7, 9), format=fmt, grid=g, bins=10, mode="repair").shape == (7, 9)


# --------------------------------------------------------------------------- polygons


def poly(text: str) -> None:
    size = (6, 8)
    for fmt in polygon.FORMATS:
        rings = _ours(polygon.from_text, text, size, format=fmt)
        if rings is None:
            continue
        assert polygon.rasterize(rings, size).shape == size
        # written back, the text is a fixed point: read and written again, it does not change
        once = polygon.to_text(rings, size, format=fmt)
        twice = polygon.to_text(polygon.from_text(once, size, format=fmt), size, format=fmt)
        assert once == twice, (fmt, text)


# --------------------------------------------------------------------------- COCO RLE


def coco_rle(text: str) -> None:
    objs = [{"size": [2, 3], "counts": text}, {"size": [2, 3], "counts": text.encode("utf-8", "surrogatepass")}]
    with contextlib.suppress(ValueError, RecursionError):
        objs.append(json.loads(text))
    for obj in objs:
        if not isinstance(obj, dict):
            continue  # a non-dict argument is a TypeError by design (a wrong argument type)
        m = _ours(coco.rle_to_mask, obj)
        if m is not None:
            again = coco.rle_to_mask(coco.mask_to_rle(m))
            assert np.array_equal(again, m)
            assert coco.rle_to_grid(obj, grid=2).shape == (2, 2)
        _ours(coco.to_rle, obj.get("segmentation", obj), size=(4, 4))


# --------------------------------------------------------------------------- dataset readers


def dataset(text: str) -> None:
    from maskcodec.datasets import open_source, read_coco, read_refer

    raw = text.encode("utf-8", "surrogatepass")
    with tempfile.TemporaryDirectory() as tmp:
        inst = os.path.join(tmp, "instances.json")
        with open(inst, "wb") as fh:
            fh.write(raw)
        src = _ours(read_coco, inst)
        if src is not None:
            for sample in src.samples[:5]:
                _ours(sample.target.load)
        # the same bytes as a REFER pickle, and a pickle of whatever the JSON held
        folder = os.path.join(tmp, "refcoco")
        os.mkdir(folder)
        os.replace(inst, os.path.join(folder, "instances.json"))
        for payload in (raw, _pickled(text)):
            with open(os.path.join(folder, "refs(unc).p"), "wb") as fh:
                fh.write(payload)
            _ours(read_refer, tmp)
            _ours(open_source, tmp)


def _pickled(text: str) -> bytes:
    try:
        return pickle.dumps(json.loads(text))
    except (ValueError, RecursionError):
        return pickle.dumps([text])


# --------------------------------------------------------------------------- command line


def cli(text: str) -> None:
    """argv made from the input (split on NUL or blanks), after one of a few subcommands."""
    from PIL import Image

    from maskcodec.cli import main

    words = [w for w in text.replace("\x00", " ").split(" ") if w]
    # only relative paths: nothing the target writes leaves its temporary folder
    words = [w.replace("/", "_").replace("\\", "_") for w in words]
    # Codec subcommands only (others may load tokenizers or models): each template's slots take
    # the next words, so values reach the handlers; leftover words go on the end half the time.
    # A slot is (default,): it takes the next word, or its valid default when the words run out.
    templates = (
        ["decode", ("x",), "--size", ("4x4",), "-o", "out.png"],
        ["decode", "@in.txt", "--size", ("4x4",), "--grid", ("2",), "--mode", ("repair",), "-o", "o.png"],
        ["validate", ("x",), "--grid", ("2",)],
        ["validate", "@in.txt", "--format", ("rrle",), "--background", ("others",)],
        ["encode", "m.png", "--label", ("dog",), "--grid", ("2",), "--method", ("area",)],
        ["encode", "m.png", "--labels", "in.txt"],
    )
    template = templates[len(text) % len(templates)]
    rest = iter(words)
    argv = [next(rest, slot[0]) if isinstance(slot, tuple) else slot for slot in template]
    if len(text) % 2:
        argv += list(rest)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        try:
            Image.fromarray(np.eye(4, dtype=np.uint8) * 255).save("m.png")
            with open("in.txt", "w", encoding="utf-8", errors="surrogatepass") as fh:
                fh.write(text)
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    status = main(argv)
                except SystemExit as exc:  # argparse: bad usage (2) or --help / --version (0)
                    status = exc.code
            assert status in (0, 1, 2, None), status
        finally:
            os.chdir(cwd)


TARGETS = {
    "rle": rle,
    "dialect": dialect,
    "box": box,
    "poly": poly,
    "coco_rle": coco_rle,
    "dataset": dataset,
    "cli": cli,
}


def run(name: str, text: str) -> None:
    """Run one target on ``text``; a foreign exception becomes :class:`Escaped`."""
    try:
        TARGETS[name](text)
    except AssertionError:
        raise
    except mc.MaskcodecError as exc:  # in a place where the rule says nothing may be raised
        raise Escaped(f"{name}: {type(exc).__name__} where nothing may be raised: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
        raise Escaped(f"{name}: {type(exc).__name__} escaped: {exc}") from exc
