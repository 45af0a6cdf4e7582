"""Score a file of model answers against targets under the Text4Seg policies and maskcodec's.

This is the engine of :func:`maskcodec.metrics.evaluate` and ``maskcodec eval``.  Two pipelines
run side by side on every sample:

``text4seg``
    the reference: ``mode="text4seg"`` decoding, ``align="torch"`` rendering, and the
    ``policy="text4seg"`` accumulators (``eval_refer_seg.py``, ``eval_refer_comprehen.py``,
    ``eval_semantic_seg.py``); only for the formats the reference decodes (rrle, irle, full);
``maskcodec``
    repair decoding (the strict decoder for boxes and polygons, whose failures are recorded
    and score an empty prediction), ``align="corner"`` rendering and the exact accumulators.

Answer records are JSON objects, one per line.  The answer text is the first of the keys
``answer``, ``text``, ``output``, ``prediction``, ``response`` that holds a string.  The target
is, in this order: the record's ``mask`` (a PNG path), its ``segmentation`` (COCO RLE or
polygons, with ``height``/``width`` or the RLE's ``size``), or the record with the same ``id``
in a separate target file, which holds a ``mask`` or a ``segmentation`` too, or is a record of
the converted dataset (``maskcodec convert``), whose answer text is decoded strictly at the size
of its image.  Paths are relative to ``image_root`` (default: the folder of the file naming them).
With a class table (semantic segmentation) a target is a label-map PNG of class indices.
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
#: Formats the Text4Seg reference decodes (both pipelines run).
REFERENCE_FORMATS = ("rrle", "irle", "full")
#: Every format of the family maskcodec decodes (the maskcodec pipeline only, beyond the first three).
FORMATS = (*REFERENCE_FORMATS, "crle", "arle", "spans", "boxes", "polygon", "polygon-loc")
#: The intermediate size of the open-vocabulary script's two-step upsampling.
OPEN_VOCABULARY_VIA = (336, 336)


class RecordError(InputError):
    """One record that cannot be scored; carries its ``line`` number (1-based) in its file."""

    def __init__(self, message: str, line: int, path: str = "") -> None:
        where = f"{path}:{line}" if path else f"line {line}"
        super().__init__(f"{where}: {message}")
        self.line = line
        self.reason = message


@dataclass
class _Side:
    """The accumulators of one pipeline: binary (cIoU, gIoU, REC, 2-class mIoU) or semantic (mIoU)."""

    policy: str
    num_classes: int | None = None
    iou: IoUAccumulator = field(init=False)
    rec: RECAccuracy = field(init=False)
    miou: MeanIoU = field(init=False)

    def __post_init__(self) -> None:
        self.iou = IoUAccumulator(policy=self.policy)
        self.rec = RECAccuracy(policy=self.policy)
        if self.num_classes is None:
            self.miou = MeanIoU(2, ignore_index=None, policy=self.policy)
        else:
            self.miou = MeanIoU(self.num_classes, policy=self.policy)

    def add(self, pred: np.ndarray, target: np.ndarray, image) -> None:
        if self.num_classes is not None:
            self.miou.add(pred, target)
            return
        self.iou.add(pred, target, image=image)
        if self.policy == "text4seg" or target.any():  # exact REC is defined only with a target
            self.rec.add(pred, target)
        self.miou.add(pred.astype(np.uint8), target.astype(np.uint8))

    def summary(self) -> dict:
        if self.num_classes is not None:
            return {"miou": self.miou.miou, "samples": self.miou.images, "classes": self.num_classes}
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


def _png(path: str, semantic: bool) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode not in ("1", "L", "P", "I", "I;16"):
            raise InputError(f"{path}: a mask PNG needs one channel, got mode {im.mode}")
        arr = np.asarray(im)
    return arr if semantic else arr != 0


def _declared_size(rec: dict):
    if "height" in rec and "width" in rec:
        h, w = rec["height"], rec["width"]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (h, w)):
            raise InputError(f"height and width must be positive ints, got {h!r} and {w!r}")
        return int(h), int(w)
    return None


def _target_of(rec: dict, root: str, grid, fmt: str, semantic: bool):
    """The target a record names (bool mask, or class ids when ``semantic``), or None when it names none."""
    size = _declared_size(rec)
    if isinstance(rec.get("mask"), str):
        path = _resolve(rec["mask"], root)
        if not os.path.exists(path):
            raise InputError(f"target mask {path!r} does not exist")
        mask = _png(path, semantic)
        if size is not None and mask.shape != size:
            raise InputError(f"target mask {path!r} is {mask.shape[0]}x{mask.shape[1]} (HxW), the record says {size}")
        return mask
    if semantic:
        return None  # label maps come as PNGs only
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
    if fmt not in REFERENCE_FORMATS:
        raise InputError(f"a converted record as target is decoded as R-RLE/I-RLE/full, not {fmt!r}; give a mask")
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


def _progress(items, enabled: bool):
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
    return tqdm(items, desc="maskcodec eval", unit="answer")


def _class_index(table: list[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(table)}  # a repeated name keeps its last index


def _maskcodec_side(text: str, size, grid, fmt: str, table, row: dict) -> np.ndarray:
    """maskcodec's prediction: repair decoding (strict for boxes/polygons), corner rendering."""
    from ._errors import ParseError
    from ._parser import parse

    if fmt in REFERENCE_FORMATS:
        if table is not None:
            index = _class_index(table)
            res = parse(text, grid=grid, mode="repair", format=fmt, labels=[n for n in table if n != "others"])
            lut = np.array([index.get(name, index.get("others", 0)) for name in res.grid.labels], dtype=np.int64)
            pred = lut[res.grid.render(size)]
        else:
            res = parse(text, grid=grid, mode="repair", format=fmt)
            pred = res.grid.mask(size)
        row.update(found=res.found, complete=res.complete, repairs=[r.kind for r in res.repairs])
        row["grid"] = list(res.grid.shape)
        return pred
    if fmt in ("crle", "arle", "spans"):
        from . import dialects

        res = dialects.parse(text, fmt, grid=grid or 16, mode="repair")
        row.update(found=res.found, complete=res.complete, repairs=[r.kind for r in res.repairs])
        return res.grid.mask(size)
    try:
        if fmt == "boxes":
            from . import boxes

            pred = boxes.decode_boxes(text, size, grid=grid).mask()
        else:
            from . import polygon

            pred = polygon.decode_polygons(text, size, format="json" if fmt == "polygon" else "loc")
        row.update(found=True, complete=True, repairs=[])
        return pred
    except ParseError as exc:
        # The model's answer does not parse: an empty prediction, recorded (not a skipped record).
        row.update(found="<" in text, complete=False, repairs=[], parse_error=str(exc))
        return np.zeros(size, dtype=bool)


def _text4seg_side(text: str, size, grid, fmt: str, table, row: dict) -> np.ndarray:
    """The reference's prediction: text4seg decoding and torch rendering (two steps for semantic data)."""
    from ._parser import parse
    from .grid import render

    res = parse(text, grid=grid, mode="text4seg", format=fmt, class_table=table)
    row["reference_error"] = next((r.message for r in res.repairs), None)
    if table is not None:
        return render(res.grid.ids, size, align="torch", via=OPEN_VOCABULARY_VIA).astype(np.int64)
    return render(res.grid.ids, size, align="torch", dtype=bool)


def run(
    answers,
    targets=None,
    *,
    grid=None,
    format: str = "rrle",
    class_table=None,
    image_root: str | None = None,
    samples_path: str | None = None,
    summary_path: str | None = None,
    progress: bool = False,
    fatal: bool = False,
) -> dict:
    """See :func:`maskcodec.metrics.evaluate`."""
    from .quantize import as_grid

    if format not in FORMATS:
        raise InputError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    fixed_grid = None if grid is None else as_grid(grid)
    table = None
    if class_table is not None:
        if isinstance(class_table, (str, os.PathLike)):
            with open(class_table, encoding="utf-8") as fh:  # the scripts: labels.append(line.strip())
                table = [line.strip() for line in fh]
        else:
            table = list(class_table)
        if not table or not all(isinstance(n, str) for n in table):
            raise InputError("class_table must be a non-empty list of class names (or a class file)")
        if format not in REFERENCE_FORMATS:
            raise InputError(f"semantic evaluation (class_table) decodes rrle, irle or full, not {format!r}")
    reference = format in REFERENCE_FORMATS
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
                continue  # an answer that needs this id is reported as having no target
            by_id[str(rec.get("id", n))] = (n, rec)

    k = None if table is None else len(table)
    sides = {"maskcodec": _Side("exact", k)}
    if reference:
        sides["text4seg"] = _Side("text4seg", k)
    errors: list[dict] = []
    parse_failures = 0
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
                    target = _target_of(rec, root, fixed_grid, format, table is not None)
                    if target is None:
                        if rid not in by_id:
                            what = "a 'mask' label-map PNG" if table is not None else "a 'mask' or 'segmentation'"
                            raise InputError(f"no target for id {rid!r}: the record has no {what}"
                                             + (" and the target file has no such id" if targets is not None else ""))
                        tline, trec = by_id[rid]
                        try:
                            target = _target_of(trec, target_root, fixed_grid, format, table is not None)
                        except MaskcodecError as exc:
                            raise InputError(f"target record at line {tline}: {exc}") from None
                        if target is None:
                            raise InputError(f"target record at line {tline} names no mask, segmentation or answer")
                except OSError as exc:
                    raise InputError(f"cannot read {exc.filename or ''}: {exc.strerror or exc}") from None
                except MaskcodecError as exc:
                    raise RecordError(str(exc), line, answers_path) from None
            except RecordError as exc:
                if fatal:
                    raise
                errors.append({"line": exc.line, "error": exc.reason})
                if out is not None:
                    out.write(json.dumps({"line": exc.line, "id": rec.get("id") if isinstance(rec, dict) else None,
                                          "error": exc.reason}) + "\n")
                continue
            size = target.shape
            image = rec.get("image_id", rec.get("image", rid))
            image = image if isinstance(image, (str, int)) else rid
            row: dict = {"line": line, "id": rid, "size": list(size)}
            pred_mc = _maskcodec_side(text, size, fixed_grid, format, table, row)
            parse_failures += "parse_error" in row
            sides["maskcodec"].add(pred_mc, target, image)
            if reference:
                # Without grid=, the reference side uses the grid repair mode found (the scripts
                # take it from the checkpoint's name).
                g = fixed_grid or tuple(row.get("grid", (16, 16)))
                pred_ref = _text4seg_side(text, size, g, format, table, row)
                sides["text4seg"].add(pred_ref, target, image)
            if table is None:
                row["empty_target"] = not target.any()
                row["iou"] = _exact_iou(pred_mc, target)
                if reference:
                    i, u = intersection_union(pred_ref, target)
                    row["iou_text4seg"] = float(np.float32(i) / (np.float32(u) + np.float32(1e-5))) + (u == 0)
            if out is not None:
                out.write(json.dumps(row) + "\n")
    finally:
        if out is not None:
            out.close()
    summary = {
        "answers": answers_path or None,
        "format": format,
        "grid": None if fixed_grid is None else list(fixed_grid),
        "semantic": table is not None,
        "scored": sides["maskcodec"].miou.images,
        "skipped": len(errors),
        "parse_failures": parse_failures,
        "errors": errors,
        "text4seg": sides["text4seg"].summary() if reference else None,
        "maskcodec": sides["maskcodec"].summary(),
    }
    if summary_path:
        with open(summary_path, "w", encoding="utf-8") as fh:
            json.dump(json_safe(summary), fh, indent=1)
    return summary


def _exact_iou(pred: np.ndarray, target: np.ndarray) -> float:
    i, u = intersection_union(pred, target)
    return i / u if u else 1.0


def json_safe(value):
    """``nan`` as null, recursively (JSON has no nan)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value
