"""Deterministic SAM prompts from a coarse grid.

Text4Seg refines its coarse mask with SAM using the grid as mask logits plus
random foreground and background points; the logits are stretched over SAM's
*padded* square frame, so for a non-square image they do not line up with the
image, and the random points make results vary between runs.  This module
computes the same kinds of prompt deterministically and in the right frame,
as numpy arrays, with no SAM (or torch) dependency.

Coordinate conventions
----------------------
Points and boxes are returned in **original image pixels**, ``(x, y)`` order,
continuous coordinates (pixel ``j`` spans ``[j, j + 1)``, so its centre is
``j + 0.5``).  This is what all three predictors take:

* ``segment_anything.SamPredictor.predict(point_coords=, point_labels=, box=,
  mask_input=logits[None])``: it applies ``ResizeLongestSide(1024)`` to the
  points and box itself.
* ``sam2.sam2_image_predictor.SAM2ImagePredictor.predict(...,
  normalize_coords=True)``: it divides by ``(w, h)`` and scales to 1024.
* Hugging Face ``SamProcessor(images, input_points=[[points]],
  input_labels=[[labels]], input_boxes=[[box]])``: it rescales like SAM.
  Pass the logits as ``input_masks`` to ``SamModel`` with shape ``(1, 1, 256, 256)``.

Mask logits are a ``(256, 256)`` float32 array in the predictor's low-resolution
frame, which differs between the models:

``frame="sam"`` (SAM and Hugging Face ``SamModel``)
    The image is resized so its longest side is 1024 (``new = int(side *
    1024 / longest + 0.5)``), padded at the bottom and right to 1024 x 1024,
    and the low-resolution frame is that square at a quarter of the size.
    Low-resolution pixel ``i`` (centre at ``4 * i + 2`` in the 1024 frame)
    reads grid row ``(4 * i + 2) * rows // new_h``; pixels whose centre falls
    in the padding get the background logit.
``frame="sam2"``
    SAM 2 resizes the image to 1024 x 1024 without keeping the aspect ratio
    and without padding, so the frame covers the whole image: pixel ``i``
    reads row ``(4 * i + 2) * rows // 1024``.

Points are chosen on the grid's cells (a point is a cell centre) by a fixed
rule, so the same grid always gives the same prompts: positives by
farthest-point sampling weighted by the exact Euclidean distance to the
background (the first is the deepest interior cell, each next one maximises
depth times distance to the points already chosen), negatives by
farthest-point sampling among the background cells within ``margin`` cells of
the object.  Ties go to the first cell in row-major order.  When there are
fewer candidate cells than points asked for, points repeat, so the counts are
always exactly ``positive`` and ``negative``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._errors import InputError
from .grid import LabelGrid, as_size

__all__ = [
    "SAM_LONGEST_SIDE",
    "SAM_MASK_SIDE",
    "SamPrompts",
    "mask_logits",
    "sam_input_size",
    "sam_prompts",
    "to_sam_frame",
]

#: Side of the square SAM (and SAM 2) resize their input to.
SAM_LONGEST_SIDE = 1024
#: Side of the low-resolution mask frame (mask prompts and low-res outputs).
SAM_MASK_SIDE = 256
#: Text4Seg's logit for a foreground cell: ``log(0.999 / 0.001)``.
DEFAULT_LOGIT = math.log(999.0)

Frame = Literal["sam", "sam2"]


def sam_input_size(image_size, *, longest: int = SAM_LONGEST_SIDE) -> tuple[int, int]:
    """``(new_h, new_w)`` of the image after SAM's ``ResizeLongestSide``.

    Examples
    --------
    >>> sam_input_size((300, 600))
    (512, 1024)
    >>> sam_input_size((480, 640))
    (768, 1024)
    """
    h, w = as_size(image_size, "image_size")
    scale = longest * 1.0 / max(h, w)
    return int(h * scale + 0.5), int(w * scale + 0.5)


def to_sam_frame(points, image_size, *, frame: Frame = "sam") -> np.ndarray:
    """Map ``(..., 2)`` ``(x, y)`` image coordinates to the 1024 input frame.

    Only needed for the low-level entry points that take transformed
    coordinates (``SamPredictor.predict_torch``); divide by 4 for the 256 frame.
    """
    h, w = as_size(image_size, "image_size")
    pts = np.asarray(points, dtype=np.float64)
    if pts.shape[-1:] != (2,):
        raise InputError(f"points must have shape (..., 2) in (x, y) order, got {pts.shape}")
    _check_frame(frame)
    if frame == "sam":
        nh, nw = sam_input_size((h, w))
    else:
        nh = nw = SAM_LONGEST_SIDE
    return pts * np.array([nw / w, nh / h])


def _check_frame(frame: str) -> None:
    if frame not in ("sam", "sam2"):
        raise InputError(f"unknown frame {frame!r}; choose 'sam' (SAM, HF SamModel) or 'sam2'")


def _foreground(grid, label: str | None) -> np.ndarray:
    if isinstance(grid, LabelGrid):
        return grid.mask(label=label)
    if label is not None:
        raise InputError("label= needs a LabelGrid")
    arr = np.asarray(grid)
    if arr.ndim != 2 or arr.size == 0:
        raise InputError(f"grid must be a non-empty 2-D array or a LabelGrid, got shape {arr.shape}")
    if arr.dtype.kind not in "biu":
        raise InputError(f"grid must be bool or integer ids, got dtype {arr.dtype}")
    return arr != 0


def mask_logits(
    grid,
    /,
    image_size,
    *,
    frame: Frame = "sam",
    logit: float = DEFAULT_LOGIT,
    label: str | None = None,
) -> np.ndarray:
    """The grid as a ``(256, 256)`` float32 mask prompt in SAM's low-resolution frame.

    Foreground cells get ``+logit``, background and padding ``-logit``.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.array([[0, 1]])                   # right half of the image
    >>> m = mask_logits(g, (100, 200))          # resized to 512 x 1024, padded
    >>> bool(m[0, 127] < 0), bool(m[0, 128] > 0), bool(m[127, 255] > 0), bool(m[128, 255] < 0)
    (True, True, True, True)
    """
    fg = _foreground(grid, label)
    h, w = as_size(image_size, "image_size")
    _check_frame(frame)
    rows, cols = fg.shape
    if frame == "sam":
        nh, nw = sam_input_size((h, w))
    else:
        nh = nw = SAM_LONGEST_SIDE
    centre = 4 * np.arange(SAM_MASK_SIDE, dtype=np.int64) + 2  # low-res pixel centres in the 1024 frame
    ry, rx = centre < nh, centre < nw
    yi = np.where(ry, centre * rows // nh, 0)
    xi = np.where(rx, centre * cols // nw, 0)
    inside = fg[np.ix_(yi, xi)] & ry[:, None] & rx[None, :]
    return np.where(inside, np.float32(logit), np.float32(-logit)).astype(np.float32)


def _edt_to(targets: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Exact Euclidean distance (in cells) from every cell to the nearest ``True`` of ``targets``.

    ``inf`` everywhere when ``targets`` is empty.
    """
    if not targets.any():
        return np.full(shape, np.inf)
    try:  # fast path when SciPy is present; the fallback below gives the same numbers
        from scipy.ndimage import distance_transform_edt
    except ImportError:
        distance_transform_edt = None
    if distance_transform_edt is not None:
        return distance_transform_edt(~targets)
    ty, tx = np.nonzero(targets)
    yy, xx = np.indices(shape)
    cy, cx = yy.ravel(), xx.ravel()
    out = np.empty(cy.size)
    step = max(1, (1 << 22) // max(1, ty.size))  # bound the pairwise block to ~4M entries
    for s in range(0, cy.size, step):
        d2 = (cy[s : s + step, None] - ty[None, :]) ** 2 + (cx[s : s + step, None] - tx[None, :]) ** 2
        out[s : s + step] = np.sqrt(d2.min(axis=1))
    return out.reshape(shape)


def _farthest(candidates: np.ndarray, weight: np.ndarray, k: int) -> list[tuple[int, int]]:
    """Pick ``k`` cells of ``candidates``: the first maximises ``weight``, each next one
    ``weight * distance to the nearest cell picked`` (deep and spread out)."""
    cy, cx = np.nonzero(candidates)  # row-major order, so argmax ties go to the first cell
    if cy.size == 0 or k == 0:
        return []
    base = weight[cy, cx].astype(np.float64)
    score = base.copy()
    nearest = np.full(cy.size, np.inf)
    picked: list[int] = []
    for _ in range(min(k, cy.size)):
        j = int(np.argmax(score))
        picked.append(j)
        d = np.sqrt((cy - cy[j]) ** 2 + (cx - cx[j]) ** 2)
        nearest = d if len(picked) == 1 else np.minimum(nearest, d)
        with np.errstate(invalid="ignore"):  # inf * 0 where a weight is inf; np.where drops it
            score = np.where(np.isinf(base), nearest, base * nearest)
        score[picked] = -1.0
    cells = [(int(cy[j]), int(cx[j])) for j in picked]
    return [cells[i % len(cells)] for i in range(k)]


@dataclass(frozen=True)
class SamPrompts:
    """Prompts for one object (see the module documentation for the conventions).

    Attributes
    ----------
    point_coords : ndarray, shape (n, 2), float64
        ``(x, y)`` image coordinates: the positive points, then the negative ones.
    point_labels : ndarray, shape (n,), int64
        1 for positive, 0 for negative points.
    box : ndarray, shape (4,), float64, or None
        ``(x0, y0, x1, y1)``: the outer edges of the foreground cells in image
        coordinates; None when the grid is empty.
    mask_logits : ndarray, shape (256, 256), float32
        The grid in the ``frame`` of the intended predictor.
    image_size : (int, int)
        ``(height, width)`` of the image.
    frame : {"sam", "sam2"}
    """

    point_coords: np.ndarray
    point_labels: np.ndarray
    box: np.ndarray | None
    mask_logits: np.ndarray
    image_size: tuple[int, int]
    frame: str

    @property
    def empty(self) -> bool:
        """True when the grid has no foreground: skip SAM and keep the empty mask (as Text4Seg does)."""
        return self.box is None


def sam_prompts(
    grid,
    /,
    image_size,
    *,
    positive: int = 3,
    negative: int = 3,
    margin: float = 2.0,
    frame: Frame = "sam",
    logit: float = DEFAULT_LOGIT,
    label: str | None = None,
) -> SamPrompts:
    """Deterministic box, points and mask logits for SAM from a coarse grid.

    Parameters
    ----------
    grid : LabelGrid or 2-D array
        The coarse answer; non-zero (or ``label`` of a LabelGrid) is the object.
    image_size : (int, int)
        ``(height, width)`` of the image SAM sees; the grid covers all of it.
    positive, negative : int
        Number of points of each kind (exactly these counts; points repeat when
        there are fewer candidate cells; no negatives when no cell is background).
    margin : float
        Negatives come from background cells within this many cells (Euclidean,
        centre to centre) of the object, or from all background cells when none is.
    frame : {"sam", "sam2"}
        Frame of ``mask_logits`` (``"sam"`` also for Hugging Face ``SamModel``).
    logit : float
        Magnitude of the mask logits (Text4Seg: ``log(999)``, about 6.9).
    label : str, optional
        With a LabelGrid: which label is the object (default: any foreground).

    Returns
    -------
    SamPrompts
        ``.empty`` is True (no box, only negative points) when the grid has no
        foreground.

    Examples
    --------
    >>> import numpy as np
    >>> g = np.zeros((4, 8), dtype=bool); g[1:3, 2:4] = True
    >>> p = sam_prompts(g, (200, 400), positive=2, negative=2)
    >>> p.box.tolist()
    [100.0, 50.0, 200.0, 150.0]
    >>> p.point_coords.tolist(), p.point_labels.tolist()
    ([[125.0, 75.0], [175.0, 125.0], [75.0, 25.0], [275.0, 125.0]], [1, 1, 0, 0])
    """
    fg = _foreground(grid, label)
    h, w = as_size(image_size, "image_size")
    _check_frame(frame)
    for name, v in (("positive", positive), ("negative", negative)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 0:
            raise InputError(f"{name} must be an int >= 0, got {v!r}")
    if not (isinstance(margin, (int, float)) and margin > 0):
        raise InputError(f"margin must be > 0, got {margin!r}")
    rows, cols = fg.shape
    bg = ~fg
    # Distance to the background, with the image border *not* counted as background:
    # an object cut by the border is still deepest where it is widest.
    depth = _edt_to(bg, fg.shape)
    pos = _farthest(fg, depth, int(positive)) if fg.any() else []
    near = bg & (_edt_to(fg, fg.shape) <= margin)
    pool = near if near.any() else bg
    # Negatives: spread out (weight inf: plain farthest-point); the first pick is the first cell.
    neg = _farthest(pool, np.full(fg.shape, np.inf), int(negative)) if pool.any() else []
    cells = pos + neg
    sy, sx = h / rows, w / cols
    coords = np.array([[(c + 0.5) * sx, (r + 0.5) * sy] for r, c in cells], dtype=np.float64).reshape(-1, 2)
    labels = np.array([1] * len(pos) + [0] * len(neg), dtype=np.int64)
    box = None
    if fg.any():
        ys, xs = np.nonzero(fg)
        box = np.array(
            [xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy], dtype=np.float64
        )
    logits = mask_logits(fg, (h, w), frame=frame, logit=logit)
    return SamPrompts(coords, labels, box, logits, (h, w), frame)
