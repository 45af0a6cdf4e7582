"""Score a file of model answers against targets under the Text4Seg policies and maskcodec's.

This is the engine of :func:`maskcodec.metrics.evaluate` and ``maskcodec eval``.  Two pipelines
run side by side on every sample:

``text4seg``
    the reference: ``mode="text4seg"`` decoding, ``align="torch"`` rendering, and the
    ``policy="text4seg"`` accumulators (``eval_refer_seg.py``, ``eval_refer_comprehen.py``,
    ``eval_semantic_seg.py`` with K = 2 for binary targets);
``maskcodec``
    repair decoding, ``align="corner"`` rendering and the exact accumulators.

Answer records are JSON objects, one per line.  The answer text is the first of the keys
``answer``, ``text``, ``output``, ``prediction``, ``response`` that holds a string.  The target
is, in this order: the record's ``mask`` (a PNG path), its ``segmentation`` (COCO RLE or
polygons, with ``height``/``width`` or the RLE's ``size``), or the record with the same ``id``
in a separate target file, which holds a ``mask`` or a ``segmentation`` too, or is a record of
the converted dataset (``maskcodec convert``), whose answer text is decoded strictly at the size
of its image.  Paths are relative to ``image_root`` (default: the folder of the file naming them).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ._errors import InputError, MaskcodecError
from .metrics import IoUAccumulator, MeanIoU, RECAccuracy, intersection_union

ANSWER_KEYS = ("answer", "text", "output", "prediction", "response")
_FORMATS = ("rrle", "irle", "full")


class RecordError(InputError):
    """One record that cannot be scored; carries its ``line`` number (1-based) in its file."""

    def __init__(self, message: str, line: int, path: str = "") -> None:
        where = f"{path}:{line}" if path else f"line {line}"
        super().__init__(f"{where}: {message}")
        self.line = line
        self.reason = message


@dataclass
class _Side:
    """The accumulators of one pipeline."""

    policy: str
    iou: IoUAccumulator = field(init=False)
    rec: RECAccuracy = field(init=False)
    miou: MeanIoU = field(init=False)

    def __post_init__(self) -> None:
        self.iou = IoUAccumulator(policy=self.policy)
        self.rec = RECAccuracy(policy=self.policy)
        self.miou = MeanIoU(2, ignore_index=None, policy=self.policy)

    def add(self, pred: np.ndarray, target: np.ndarray, image) -> float:
        value = self.iou.add(pred, target, image=image)
        if self.policy == "text4seg" or target.any():  # exact REC is defined only with a target
            self.rec.add(pred, target)
        self.miou.add(pred.astype(np.uint8), target.astype(np.uint8))
        return value

    def summary(self) -> dict:
        return {
            "ciou": self.iou.ciou,
            "giou": self.iou.giou,
            "n_acc": self.iou.n_acc,
            "acc50": self.rec.accuracy,
            "miou": self.miou.miou,
            "samples": self.iou.count,
            "rec_samples": self.rec.count,
            "empty_targets": self.iou.empty_targets,
        }


def _read_jsonl(path: str) -> Iterable[tuple[int, object]]:
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, RecordError(f"not valid JSON ({exc.msg} at column {exc.colno})", n, path)


def _resolve(path: str, root: str) -> str:
    return path if os.path.isabs(path) else os.path.join(root, path)


def _png(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode not in ("1", "L", "P", "I", "I;16"):
            raise InputError(f"{path}: a mask PNG needs one channel, got mode {im.mode}")
        return np.asarray(im) != 0


def _declared_size(rec: dict):
    if "height" in rec and "width" in rec:
        h, w = rec["height"], rec["width"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
            raise InputError(f"height and width must be positive ints, got {h!r} and {w!r}")
        return int(h), int(w)
    return None


def _target_of(rec: dict, root: str, grid, fmt: str):
    """The boolean target mask a record names, or None when it names none."""
    size = _declared_size(rec)
    if isinstance(rec.get("mask"), str):
        path = _resolve(rec["mask"], root)
        if not os.path.exists(path):
            raise InputError(f"target mask {path!r} does not exist")
        mask = _png(path)
        if size is not None and mask.shape != size:
            raise InputError(f"target mask {path!r} is {mask.shape[0]}x{mask.shape[1]} (HxW), the record says {size}")
        return mask
    if "segmentation" in rec:
        from . import coco

        segm = rec["segmentation"]
        if size is None and isinstance(segm, dict) and "size" in segm:
            size = tuple(segm["size"])
        if size is None:
            raise InputError("a 'segmentation' target needs 'height' and 'width' (or an RLE 'size')")
        return coco.rle_to_mask(coco.to_rle(segm, size=size)).astype(bool)
    try:
        from .datasets.writers import answer_of

        image, _, answer = answer_of(rec)
    except (MaskcodecError, StopIteration, KeyError, TypeError, AttributeError):
        return None
    from PIL import Image

    from ._parser import decode_mask

    if size is None:
        path = _resolve(image, root)
        if not image or not os.path.exists(path):
            raise InputError(f"the target record's image {path!r} does not exist (its size is needed)")
        with Image.open(path) as im:
            size = im.size[::-1]
    return decode_mask(answer, size=size, grid=grid, mode="strict", format=fmt)


def _answer_of(rec: dict) -> str:
    for key in ANSWER_KEYS:
        if isinstance(rec.get(key), str):
            return rec[key]
    raise InputError(f"no answer text: expected a string under one of {', '.join(ANSWER_KEYS)}")


def _progress(items, enabled: bool, total=None):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: count on stderr instead
        import sys

        def counted():
            for i, item in enumerate(items, 1):
                if i % 100 == 0:
                    print(f"maskcodec eval: {i} records", file=sys.stderr, flush=True)
                yield item

        return counted()
    return tqdm(items, total=total, desc="maskcodec eval", unit="answer")


def run(
    answers,
    targets=None,
    *,
    grid=None,
    format: str = "rrle",
    image_root: str | None = None,
    samples_path: str | None = None,
    summary_path: str | None = None,
    progress: bool = False,
    fatal: bool = False,
) -> dict:
    """See :func:`maskcodec.metrics.evaluate`."""
    from ._parser import parse
    from .grid import render
    from .quantize import as_grid

    if format not in _FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(_FORMATS)}")
    fixed_grid = None if grid is None else as_grid(grid)
    if isinstance(answers, (str, os.PathLike)):
        answers_path = os.fspath(answers)
        records = _read_jsonl(answers_path)
        root = image_root if image_root is not None else os.path.dirname(os.path.abspath(answers_path))
    else:
        answers_path = ""
        records = enumerate(answers, 1)
        root = image_root if image_root is not None else os.getcwd()
    by_id: dict = {}
    target_root = root
    if targets is not None:
        tpath = os.fspath(targets)
        target_root = image_root if image_root is not None else os.path.dirname(os.path.abspath(tpath))
        for n, rec in _read_jsonl(tpath):
            if isinstance(rec, RecordError) or not isinstance(rec, dict):
                err = rec if isinstance(rec, RecordError) else RecordError("a target record is a JSON object", n, tpath)
                if fatal:
                    raise err
                continue  # reported when an answer asks for this id
            by_id[str(rec.get("id", n))] = (n, rec)

    sides = {"text4seg": _Side("text4seg"), "maskcodec": _Side("exact")}
    errors: list[dict] = []
    out = open(samples_path, "w", encoding="utf-8") if samples_path else None
    try:
        for line, rec in _progress(records, progress):
            try:
                if isinstance(rec, RecordError):
                    raise rec
                if not isinstance(rec, dict):
                    raise RecordError("a record is a JSON object", line, answers_path)
                rid = str(rec.get("id", line))
                try:
                    text = _answer_of(rec)
                    target = _target_of(rec, root, fixed_grid, format)
                    if target is None:
                        if rid not in by_id:
                            raise InputError(f"no target for id {rid!r}: the record has no 'mask' or 'segmentation'"
                                             + (" and the target file has no such id" if targets is not None else ""))
                        tline, trec = by_id[rid]
                        try:
                            target = _target_of(trec, target_root, fixed_grid, format)
                        except MaskcodecError as exc:
                            raise InputError(f"target record at line {tline}: {exc}") from None
                        if target is None:
                            raise InputError(f"target record at line {tline} names no mask, segmentation or answer")
                except OSError as exc:
                    raise InputError(f"cannot read {exc.filename or ''}: {exc.strerror or exc}") from None
                except MaskcodecError as exc:
                    raise RecordError(str(exc), line, answers_path) from None
                size = target.shape
                image = rec.get("image_id", rec.get("image", rid))
                image = image if isinstance(image, (str, int)) else rid
                rep = parse(text, grid=fixed_grid, mode="repair", format=format)
                # Without grid=, the reference side uses the grid repair mode found (the scripts
                # take it from the checkpoint's name).
                t4s = parse(text, grid=fixed_grid or rep.grid.shape, mode="text4seg", format=format)
                pred_ref = render(t4s.grid.ids, size, align="torch", dtype=bool)
                pred_mc = rep.grid.mask(size)
                sides["text4seg"].add(pred_ref, target, image)
                iou_mc = sides["maskcodec"].add(pred_mc, target, image)
                i_ref, u_ref = intersection_union(pred_ref, target)
                iou_ref = float(np.float32(i_ref) / (np.float32(u_ref) + np.float32(1e-5))) + (u_ref == 0)
                row = {
                    "line": line,
                    "id": rid,
                    "size": list(size),
                    "found": rep.found,
                    "complete": rep.complete,
                    "repairs": [r.kind for r in rep.repairs],
                    "reference_error": next((r.message for r in t4s.repairs), None),
                    "iou": iou_mc,
                    "iou_text4seg": iou_ref,
                    "empty_target": not target.any(),
                }
            except RecordError as exc:
                if fatal:
                    raise
                errors.append({"line": exc.line, "error": exc.reason})
                if out is not None:
                    out.write(json.dumps({"line": exc.line, "error": exc.reason}) + "\n")
                continue
            if out is not None:
                out.write(json.dumps(row) + "\n")
    finally:
        if out is not None:
            out.close()
    scored = sides["maskcodec"].iou.count
    summary = {
        "answers": answers_path or None,
        "format": format,
        "grid": None if fixed_grid is None else list(fixed_grid),
        "scored": scored,
        "skipped": len(errors),
        "errors": errors,
        "text4seg": sides["text4seg"].summary(),
        "maskcodec": sides["maskcodec"].summary(),
    }
    if summary_path:
        with open(summary_path, "w", encoding="utf-8") as fh:
            json.dump(_json_safe(summary), fh, indent=1)
    return summary


def _json_safe(value):
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value
