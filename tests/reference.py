"""Slow, obviously-correct references for every maskcodec kernel and public transform.

Each function here is written for clarity, not speed: plain loops, exact
fractions, ``itertools.groupby`` and Pillow itself.  The property tests compare
maskcodec against them; ``REFERENCES`` (at the bottom) is the one table that says
which reference checks which public function or kernel, and which test file
does the comparison.

Nothing here imports maskcodec, so a bug in the package cannot leak into its
own oracle.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
from PIL import Image

BACKGROUND = "others"


# --------------------------------------------------------------------------- quantize


def pil_nearest(mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Text4Seg's quantizer: ``Image.fromarray(mask).resize((cols, rows), Image.NEAREST)``.

    Values that do not fit uint8 go through Pillow's 32-bit integer mode ("I"),
    which resizes with the same NEAREST sampling.
    """
    mask = np.asarray(mask)
    if mask.dtype == np.bool_ or (mask.size and int(mask.max()) <= 255 and int(mask.min()) >= 0):
        img = Image.fromarray(np.ascontiguousarray(mask.astype(np.uint8)))
    else:
        img = Image.fromarray(np.ascontiguousarray(mask.astype(np.int32)))  # mode "I"
    out = np.asarray(img.resize((cols, rows), Image.NEAREST))
    return out.astype(mask.dtype)


def _overlap(a0: Fraction, a1: Fraction, b0: int, b1: int) -> Fraction:
    """Length of the intersection of [a0, a1) and [b0, b1)."""
    return max(Fraction(0), min(a1, Fraction(b1)) - max(a0, Fraction(b0)))


def cell_areas(mask: np.ndarray, rows: int, cols: int) -> list[list[dict[int, Fraction]]]:
    """For every cell, the exact area (in pixels, as a Fraction) each value covers.

    Cell ``(r, c)`` spans ``[r*H/rows, (r+1)*H/rows) x [c*W/cols, (c+1)*W/cols)``;
    a pixel ``(i, j)`` spans ``[i, i+1) x [j, j+1)``.
    """
    h, w = mask.shape
    out = []
    for r in range(rows):
        y0, y1 = Fraction(r * h, rows), Fraction((r + 1) * h, rows)
        line = []
        for c in range(cols):
            x0, x1 = Fraction(c * w, cols), Fraction((c + 1) * w, cols)
            areas: dict[int, Fraction] = {}
            for i in range(h):
                wy = _overlap(y0, y1, i, i + 1)
                if not wy:
                    continue
                for j in range(w):
                    wx = _overlap(x0, x1, j, j + 1)
                    if not wx:
                        continue
                    v = int(mask[i, j])
                    areas[v] = areas.get(v, Fraction(0)) + wy * wx
            line.append(areas)
        out.append(line)
    return out


def area_majority(mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Each cell takes the value with the largest exact area; ties go to the lower value."""
    mask = np.asarray(mask)
    out = np.zeros((rows, cols), dtype=np.int64)
    for r, line in enumerate(cell_areas(mask, rows, cols)):
        for c, areas in enumerate(line):
            best = max(areas.values())
            out[r, c] = min(v for v, a in areas.items() if a == best)
    return out.astype(mask.dtype)


def coverage(mask: np.ndarray, rows: int, cols: int, threshold: Fraction) -> np.ndarray:
    """A cell is foreground when non-zero pixels cover at least ``threshold`` of its area."""
    mask = np.asarray(mask)
    h, w = mask.shape
    cell = Fraction(h, rows) * Fraction(w, cols)
    out = np.zeros((rows, cols), dtype=bool)
    for r, line in enumerate(cell_areas(mask != 0, rows, cols)):
        for c, areas in enumerate(line):
            out[r, c] = areas.get(1, Fraction(0)) / cell >= threshold
    return out


# --------------------------------------------------------------------------- writers


def _runs(values):
    return [(k, len(list(g))) for k, g in itertools.groupby(values)]


def write_rrle(ids, labels, envelope: bool = True) -> str:
    """Row-wise RLE: runs ``"label *n"`` joined by ``"| "``, rows by ``"\\n "``, then ``"\\n"``."""
    rows = ["| ".join(f"{labels[v]} *{n}" for v, n in _runs(list(row))) for row in np.asarray(ids).tolist()]
    body = "\n ".join(rows) + "\n"
    return f"<seg>{body}</seg>" if envelope else body


def write_irle(ids, labels, envelope: bool = True) -> str:
    """Image-wise RLE: one run list over the row-major cells."""
    flat = np.asarray(ids).ravel().tolist()
    body = "| ".join(f"{labels[v]} *{n}" for v, n in _runs(flat)) + "\n"
    return f"<seg>{body}</seg>" if envelope else body


def write_full(ids, labels, envelope: bool = True) -> str:
    """Full descriptors: every cell's label joined by ``"| "``, then ``"\\n"``."""
    body = "| ".join(labels[v] for v in np.asarray(ids).ravel().tolist()) + "\n"
    return f"<seg>{body}</seg>" if envelope else body


WRITERS = {"rrle": write_rrle, "irle": write_irle, "full": write_full}


def text4seg_encode(mask: np.ndarray, label: str, rows: int, cols: int) -> str:
    """The Text4Seg data pipeline for one binary mask: PIL NEAREST, then R-RLE in ``<seg>``."""
    grid = pil_nearest(np.asarray(mask) != 0, rows, cols)
    return write_rrle(grid.astype(np.int64), (BACKGROUND, label))


# --------------------------------------------------------------------------- text4seg decoder

#: The memory maskcodec assumes the reference has for its list of cells (8 bytes each): 256 GiB.
MEMORY_BYTES = 2**38


def text4seg_decode(
    text: str, rows: int, cols: int, fmt: str = "rrle", background: str = BACKGROUND, classes=None, cap=None
):
    """The Text4Seg evaluation decoder, line for line, as plain Python.

    Without ``classes`` it is the referring-segmentation script (ids by first
    appearance, the background moved to id 0); with ``classes`` (the class
    file's names in order, the background first) it is the semantic script:
    ``{name: index}``, unknown names read as 0.

    Returns ``(ids, names)``: ``ids`` a ``rows x cols`` list of lists and
    ``names`` the label of each id (None when decoding failed and the result
    is all background).  It expands every count, so only feed it counts that
    fit in memory, or pass ``cap=rows*cols``: a run of at least that many cells
    already covers every cell that survives the cut, and keeps its label's place
    in the order of first appearance, so capping changes nothing.
    """
    want = rows * cols
    try:
        # The scripts decode `tokenizer.batch_decode(...)[0].strip()` (or `response.strip()`).
        body = text.strip().split("<seg>")[1].split("</seg>")[0]
        stripped = body.strip("\n")
        cells: list[str] = []
        if fmt == "full":
            cells = stripped.split("| ")
        else:
            lines = stripped.split("\n ") if fmt == "rrle" else [stripped]
            total = 0
            for line in lines:
                for token in line.split("| "):
                    label, count = token.split(" *")
                    n = int(count)
                    if not -(2**63) <= n < 2**63:
                        raise OverflowError("cannot fit 'int' into an index-sized integer")
                    total += max(n, 0)
                    if total * 8 > MEMORY_BYTES:  # the list of cells would not fit: MemoryError
                        raise MemoryError
                    cells.extend([label] * (n if cap is None else min(n, cap)))
        sequence = [s.strip() for s in "|".join(cells).split("|")]
        if classes is not None:
            unique = list(classes)
            table = {name: i for i, name in enumerate(unique)}
            flat = [table.get(s, 0) for s in sequence]
        else:
            unique = list(dict.fromkeys(sequence))
            if background in unique:
                unique.remove(background)
                unique.insert(0, background)
            table = {name: i for i, name in enumerate(unique)}
            flat = [table[s] for s in sequence]
    except Exception:
        flat = [0] * want
        unique = None
    if len(flat) < want:
        flat = flat + [flat[-1]] * (want - len(flat))
    elif len(flat) > want:
        flat = flat[:want]
    return [flat[r * cols : (r + 1) * cols] for r in range(rows)], unique


# --------------------------------------------------------------------------- render


def upsample(ids, height: int, width: int, align: str = "corner") -> np.ndarray:
    """Nearest upsampling: ``torch.nn.functional.interpolate(mode="nearest")`` on float64
    reads cell ``dst * in // out``; the centre-aligned variant reads the cell holding
    the pixel centre, ``(2*dst + 1) * in // (2*out)``."""
    ids = np.asarray(ids)
    rows, cols = ids.shape
    out = np.zeros((height, width), dtype=ids.dtype)
    for y in range(height):
        for x in range(width):
            if align == "corner":
                r, c = y * rows // height, x * cols // width
            else:
                r, c = (2 * y + 1) * rows // (2 * height), (2 * x + 1) * cols // (2 * width)
            out[y, x] = ids[r, c]
    return out


def cell_bounds(n_out: int, n_in: int, align: str) -> list[int]:
    """For each cell ``c`` (and ``n_in``), the first output pixel whose source cell is ``>= c``."""
    src = [
        y * n_in // n_out if align == "corner" else (2 * y + 1) * n_in // (2 * n_out) for y in range(n_out)
    ]
    return [next((y for y in range(n_out) if src[y] >= c), n_out) for c in range(n_in + 1)]


def sampled_classes(mask, yi, xi) -> list:
    """The distinct non-zero values among the sampled cells ``mask[yi[r], xi[c]]``, in row-major
    order of first appearance (a str label is refused when there are two or more)."""
    seen = []
    for r in yi:
        for c in xi:
            v = mask[r, c]
            if v != 0 and v not in seen:
                seen.append(v)
    return seen


def torch_upsample(ids, height: int, width: int, via=None) -> np.ndarray:
    """What the Text4Seg scripts do: ``F.interpolate(grid.double(), size, mode="nearest")`` on CPU,
    through ``via`` first when given (the open-vocabulary script's 336x336).  Needs torch."""
    import torch

    x = torch.from_numpy(np.array(ids, dtype=np.float64))[None, None]
    for size in ([] if via is None else [tuple(via)]) + [(height, width)]:
        x = torch.nn.functional.interpolate(x, size=size, mode="nearest")
    return x[0, 0].numpy().astype(np.asarray(ids).dtype)


def text4seg_eval_scripts():
    """The arithmetic of eval_refer_seg.py, eval_refer_comprehen.py and eval_semantic_seg.py
    (``tests/text4seg_scripts.py``, torch and numpy as the scripts use them).  Needs torch."""
    import text4seg_scripts

    return text4seg_scripts


# --------------------------------------------------------------------------- polygons and boxes


def _inside(pts, x, y):
    """Even-odd ray casting to the right, one point at a time (obviously right, slow)."""
    inside = False
    n = len(pts)
    for i in range(n):
        (xa, ya), (xb, yb) = sorted([tuple(pts[i]), tuple(pts[(i + 1) % n])], key=lambda p: p[1])
        if ya <= y < yb:  # interpolated from the lower end, as the rasterizer does
            xc = xa + (y - ya) * (xb - xa) / (yb - ya)
            if xc < x:
                inside = not inside
    return inside


def rasterize_even_odd(rings, h: int, w: int) -> np.ndarray:
    """A pixel is inside when its centre is inside an odd number of rings."""
    out = np.zeros((h, w), bool)
    for r in range(h):
        for c in range(w):
            out[r, c] = sum(_inside(ring, c + 0.5, r + 0.5) for ring in rings) % 2 == 1
    return out


def paint_boxes(regions, grids, h: int, w: int) -> np.ndarray:
    """Each grid (ids already in the merged label space) upsampled onto its pixel region
    ``(top, left, bottom, right)`` in order, its non-zero cells overwriting what is there."""
    out = np.zeros((h, w), dtype=np.int64)
    for (t, l, b, r), ids in zip(regions, grids):
        ids = np.asarray(ids)
        if b <= t or r <= l:
            continue
        sub = upsample(ids, b - t, r - l)
        for y in range(b - t):
            for x in range(r - l):
                if sub[y, x] != 0:
                    out[t + y, l + x] = sub[y, x]
    return out


# --------------------------------------------------------------------------- the table

#: Each public function or kernel, the reference it must equal, and the test that checks it.
REFERENCES = {
    "quantize(method='nearest')": ("pil_nearest", "test_quantize.py::test_nearest_matches_pillow"),
    "_kernels.nearest_sample": ("pil_nearest", "test_quantize.py::test_nearest_matches_pillow"),
    "quantize(method='area')": ("area_majority", "test_quantize.py::test_area_matches_fractions"),
    "_kernels.area_binary": ("area_majority", "test_quantize.py::test_area_matches_fractions"),
    "_kernels.area_labels": ("area_majority", "test_quantize.py::test_area_label_map_matches_fractions"),
    "_kernels.dense_lut_u16 / apply_lut": (
        "area_majority",
        "test_quantize.py::test_area_label_map_matches_fractions",
    ),
    "quantize(method='coverage')": ("coverage", "test_quantize.py::test_coverage_matches_fractions"),
    "to_text(format='rrle')": ("write_rrle", "test_text.py::test_writers_match_groupby"),
    "to_text(format='irle')": ("write_irle", "test_text.py::test_writers_match_groupby"),
    "to_text(format='full')": ("write_full", "test_text.py::test_writers_match_groupby"),
    "_kernels.write_text": ("WRITERS", "test_text.py::test_writers_match_groupby"),
    "encode_mask (defaults)": ("text4seg_encode", "test_frozen.py::test_frozen_matches_reference_encoder"),
    "_kernels.encode_binary": ("text4seg_encode", "test_text.py::test_encode_mask_binary_equals_text4seg_pipeline"),
    "parse(mode='text4seg')": ("text4seg_decode", "test_parser.py::test_text4seg_mode_matches_reference"),
    "_kernels.parse_rrle (_parser._fast_rrle)": (
        "the hand-written strict parser",
        "test_parser.py::test_fast_rrle_agrees_with_strict_parser",
    ),
    "_kernels.sampled_classes (a str label on a label map)": (
        "sampled_classes",
        "test_handoff.py::test_sampled_classes_kernel_matches_reference",
    ),
    "render / LabelGrid.render": ("upsample", "test_grid.py::test_render_matches_reference"),
    "render(align='torch', via=)": ("torch_upsample", "test_torch_render.py::test_render_torch_matches_torch_on_random_grids"),
    "parse(mode='text4seg', class_table=)": (
        "text4seg_decode",
        "test_parser.py::test_text4seg_class_table_matches_the_semantic_script",
    ),
    "IoUAccumulator / RECAccuracy / MeanIoU (policy='text4seg')": (
        "text4seg_eval_scripts",
        "test_metrics_text4seg.py::test_ciou_giou_match_eval_refer_seg_to_the_bit",
    ),
    "_kernels.render / copy_row": ("upsample", "test_grid.py::test_render_matches_reference"),
    "_kernels.bounds": ("cell_bounds", "test_batch.py::test_bounds_match_reference"),
    "_kernels.decode_rrle / decode_rrle_batch (decode_mask, decode_masks)": (
        "the hand-written strict parser",
        "test_batch.py::test_decode_masks_equal_decode_mask",
    ),
    "_kernels.sample_binary / write_texts / encode_binary_batch (encode_masks)": (
        "text4seg_encode",
        "test_batch.py::test_encode_masks_equal_encode_mask",
    ),
    "_kernels.polygon_fill (polygon.rasterize)": (
        "rasterize_even_odd",
        "test_polygon.py::test_rasterize_matches_the_reference",
    ),
    "_kernels.paint_boxes (boxes.render_boxes)": ("paint_boxes", "test_boxes.py::test_render_boxes_matches_reference"),
}


# --------------------------------------------------------------------------- COCO names

#: COCO's 80 instance categories: category id -> name (ids have gaps, as in the annotations).
COCO_CATEGORIES = {
    1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 5: "airplane", 6: "bus", 7: "train",
    8: "truck", 9: "boat", 10: "traffic light", 11: "fire hydrant", 13: "stop sign",
    14: "parking meter", 15: "bench", 16: "bird", 17: "cat", 18: "dog", 19: "horse", 20: "sheep",
    21: "cow", 22: "elephant", 23: "bear", 24: "zebra", 25: "giraffe", 27: "backpack",
    28: "umbrella", 31: "handbag", 32: "tie", 33: "suitcase", 34: "frisbee", 35: "skis",
    36: "snowboard", 37: "sports ball", 38: "kite", 39: "baseball bat", 40: "baseball glove",
    41: "skateboard", 42: "surfboard", 43: "tennis racket", 44: "bottle", 46: "wine glass",
    47: "cup", 48: "fork", 49: "knife", 50: "spoon", 51: "bowl", 52: "banana", 53: "apple",
    54: "sandwich", 55: "orange", 56: "broccoli", 57: "carrot", 58: "hot dog", 59: "pizza",
    60: "donut", 61: "cake", 62: "chair", 63: "couch", 64: "potted plant", 65: "bed",
    67: "dining table", 70: "toilet", 72: "tv", 73: "laptop", 74: "mouse", 75: "remote",
    76: "keyboard", 77: "cell phone", 78: "microwave", 79: "oven", 80: "toaster", 81: "sink",
    82: "refrigerator", 84: "book", 85: "clock", 86: "vase", 87: "scissors", 88: "teddy bear",
    89: "hair drier", 90: "toothbrush",
}
