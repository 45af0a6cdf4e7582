"""Scores for segmentation answers: IoU, cIoU/gIoU, mIoU, boxes from masks and REC accuracy.

Definitions
-----------
For one sample with boolean prediction ``P`` and target ``T`` (same shape),
``I = |P & T|`` and ``U = |P | T|``.

* **IoU** is ``I / U``.  When ``U == 0`` (both masks empty) the value is set by
  the *no-target policy* (below).
* **cIoU** (cumulative IoU) over a split is ``sum(I) / sum(U)``.
* **gIoU** (generalised IoU) is the mean of the per-sample IoU.
* **mIoU** of label maps: per class ``c``, the intersections and unions of
  ``pred == c`` and ``target == c`` are summed over all images (pixels whose
  target is ``ignore_index`` are dropped), IoU per class is their ratio, and
  the mean is taken over the classes that occur (union > 0), with or without
  the background class 0.

No-target policy
----------------
gRefCOCO has samples whose target is empty.  What an empty prediction scores
there is a choice, and this module makes it explicit with ``no_target``:

``"one"`` (the default, what Text4Seg and GRES count)
    empty target and empty prediction is IoU 1.0;
``"zero"``
    it is IoU 0.0;
``"skip"``
    the sample is left out of gIoU (it still adds nothing to cIoU).

An empty target with a non-empty prediction is IoU 0 under every policy.
cIoU over a split whose every union is zero follows the same policy
(``"skip"`` gives ``nan``).

Boxes
-----
Two conventions for the box of a mask whose foreground spans columns
``x0..x1`` and rows ``y0..y1`` (inclusive):

``"text4seg"``
    ``(x0, y0, x1, y1)``: xyxy with *inclusive* maximum indices, and area
    ``(x2 - x1) * (y2 - y1)`` as the Text4Seg REC evaluation computes it (a
    one-pixel-wide box has area 0).
``"coco"``
    ``(x0, y0, x1 - x0 + 1, y1 - y0 + 1)``: xywh with the maximum exclusive,
    what ``pycocotools.mask.toBbox`` returns; area ``w * h``.

REC Acc@0.5 counts a sample correct when the box IoU is *greater than* 0.5;
an empty predicted mask (no box) scores 0.

Policies
--------
Each accumulator takes ``policy="exact"`` (the default: the definitions
above, exact integers) or ``policy="text4seg"``, which reproduces one script of
the Text4Seg reference code (mc-lan/Text4Seg, ``llava/eval/``) to the bit:

* :class:`IoUAccumulator`: ``eval_refer_seg.py`` (float32 sums per image and
  over the split, ``I / (U + 1e-5)`` per sample for gIoU);
* :class:`RECAccuracy`: ``eval_refer_comprehen.py`` (float32 box IoU, and a
  sample whose target is empty is a miss, not skipped);
* :class:`MeanIoU`: ``eval_semantic_seg.py`` (``intersectionAndUnionGPU`` with
  ``ignore_index=0``, float32 sums, the mean over all ``K`` classes).

All accumulators are plain picklable objects with ``merge`` (combine the
states of several processes) and ``state()`` / ``from_state()`` (a JSON-safe
dict), so a split can be scored in shards and combined: pixel counts are
Python ints (exact), and gIoU keeps the per-sample values and sums them with
``math.fsum``, so a merged result equals the single-process one bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._errors import InputError

__all__ = [
    "IoUAccumulator",
    "MeanIoU",
    "OracleReport",
    "RECAccuracy",
    "box_area",
    "box_from_mask",
    "box_iou",
    "evaluate",
    "intersection_union",
    "iou",
    "oracle",
]

NoTarget = Literal["one", "zero", "skip"]
Policy = Literal["exact", "text4seg"]
_METRIC_POLICIES = ("exact", "text4seg")
Convention = Literal["text4seg", "coco"]
_POLICIES = ("one", "zero", "skip")
_CONVENTIONS = ("text4seg", "coco")


def _policy(no_target: str) -> str:
    if no_target not in _POLICIES:
        raise InputError(f"unknown no_target policy {no_target!r}; choose one of {', '.join(_POLICIES)}")
    return no_target


def _metric_policy(policy: str) -> str:
    if policy not in _METRIC_POLICIES:
        raise InputError(f"unknown policy {policy!r}; choose one of {', '.join(_METRIC_POLICIES)}")
    return policy


_F32 = np.float32


def _t4s_refer(pairs, groups) -> tuple[float, float]:
    """cIoU and gIoU exactly as ``eval_refer_seg.py`` computes them (float32 torch/numpy arithmetic).

    Per image folder: ``intersection += I_i``, ``union += U_i`` and ``acc_iou += I_i / (U_i + 1e-5)``
    (plus 1.0 where ``U_i == 0``), all float32; then ``acc_iou / num``; over images the
    ``AverageMeter`` sums ``intersection``, ``union`` and ``acc_iou * num`` in float32.  cIoU is
    ``sum_I / (sum_U + 1e-10)``, gIoU ``sum_acc / count``.  Images are taken in order of first
    appearance; counts are exact in float32 below 2**24 pixels per sample.
    """
    order: dict = {}
    for k, g in enumerate(groups):
        order.setdefault(g, []).append(k)
    sum_i = sum_u = sum_acc = None
    count = 0
    for members in order.values():
        inter = union = acc = None
        for k in members:
            i, u = _F32(pairs[k][0]), _F32(pairs[k][1])
            inter = i if inter is None else _F32(inter + i)
            union = u if union is None else _F32(union + u)
            term = _F32(i / _F32(u + _F32(1e-5)))
            acc = term if acc is None else _F32(acc + term)
            if pairs[k][1] == 0:
                acc = _F32(acc + _F32(1.0))
        num = len(members)
        acc = _F32(acc / _F32(num))
        sum_i = inter if sum_i is None else _F32(sum_i + inter)
        sum_u = union if sum_u is None else _F32(sum_u + union)
        scaled = _F32(acc * _F32(num))
        sum_acc = scaled if sum_acc is None else _F32(sum_acc + scaled)
        count += num
    if sum_i is None:
        return math.nan, math.nan
    ciou = _F32(sum_i / _F32(sum_u + _F32(1e-10)))
    return float(ciou), float(_F32(sum_acc / _F32(count)))


def _hashable(key):
    """An image key back from JSON: lists (tuples once) become tuples again."""
    return tuple(_hashable(k) for k in key) if isinstance(key, list) else key


def _convention(convention: str) -> str:
    if convention not in _CONVENTIONS:
        raise InputError(f"unknown box convention {convention!r}; choose one of {', '.join(_CONVENTIONS)}")
    return convention


def _as_bool(mask, name: str) -> np.ndarray:
    if hasattr(mask, "getbands") and hasattr(mask, "mode"):  # PIL image
        mask = np.asarray(mask)
    if not isinstance(mask, np.ndarray):
        raise TypeError(f"{name} must be a numpy array or a PIL image, got {type(mask).__name__}")
    if mask.ndim != 2:
        raise InputError(f"{name} must be 2-D (height, width), got shape {mask.shape}")
    if mask.dtype.kind not in "biu":
        hint = " (threshold it first, e.g. mask > 0.5)" if mask.dtype.kind == "f" else ""
        raise InputError(f"{name} must be bool or integer, got dtype {mask.dtype}{hint}")
    return mask if mask.dtype == np.bool_ else mask != 0


def intersection_union(pred, target, /) -> tuple[int, int]:
    """Return ``(|pred & target|, |pred | target|)`` of two 2-D masks of one shape.

    Any non-zero value is foreground.

    Examples
    --------
    >>> import numpy as np
    >>> intersection_union(np.array([[1, 1, 0]]), np.array([[0, 1, 1]]))
    (1, 3)
    """
    p = _as_bool(pred, "pred")
    t = _as_bool(target, "target")
    if p.shape != t.shape:
        raise InputError(f"pred has shape {p.shape} but target has shape {t.shape}; score at one size")
    inter = int(np.count_nonzero(p & t))
    union = int(np.count_nonzero(p)) + int(np.count_nonzero(t)) - inter
    return inter, union


def _ratio(inter: int, union: int, no_target: str) -> float | None:
    if union:
        return inter / union
    return {"one": 1.0, "zero": 0.0, "skip": None}[no_target]


def iou(pred, target, /, *, no_target: NoTarget = "one") -> float:
    """IoU of two masks; when both are empty the value follows ``no_target``.

    Parameters
    ----------
    pred, target : ndarray (H, W), bool or integer
        Any non-zero value is foreground.
    no_target : {"one", "zero", "skip"}
        Value when both masks are empty: 1.0, 0.0, or ``nan`` for "skip".

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((4, 4), bool); a[:2] = True
    >>> b = np.zeros((4, 4), bool); b[1:3] = True
    >>> iou(a, b)
    0.3333333333333333
    >>> e = np.zeros((4, 4), bool)
    >>> iou(e, e), iou(e, e, no_target="zero")
    (1.0, 0.0)
    """
    value = _ratio(*intersection_union(pred, target), _policy(no_target))
    return math.nan if value is None else value


class IoUAccumulator:
    """Accumulate cIoU and gIoU over a split of binary masks.

    Parameters
    ----------
    no_target : {"one", "zero", "skip"}
        What a sample with empty target and empty prediction counts as (see the
        module documentation); ``"one"`` is what Text4Seg reports.
    policy : {"exact", "text4seg"}
        ``"exact"`` (default): exact integer sums, gIoU as the correctly rounded
        mean.  ``"text4seg"``: cIoU and gIoU exactly as ``eval_refer_seg.py``
        computes them: per sample ``I / (U + 1e-5)`` (1.0 when ``U == 0``), sums
        in float32 per image (pass ``image=`` to :meth:`add`; a sample without
        one is its own image) and over the split.  Needs ``no_target="one"``.

    Examples
    --------
    >>> import numpy as np
    >>> acc = IoUAccumulator()
    >>> a = np.zeros((2, 2), bool); a[0] = True
    >>> acc.add(a, a)
    1.0
    >>> acc.add(a, np.ones((2, 2), bool))
    0.5
    >>> acc.ciou, acc.giou, acc.count
    (0.6666666666666666, 0.75, 2)
    >>> other = IoUAccumulator(); _ = other.add(np.zeros((2, 2), bool), np.zeros((2, 2), bool))
    >>> acc.merge(other).giou   # the empty/empty sample counts 1.0
    0.8333333333333334
    """

    __slots__ = (
        "_groups",
        "_ious",
        "_no_target",
        "_pairs",
        "_policy",
        "count",
        "empty_correct",
        "empty_targets",
        "intersection",
        "skipped",
        "union",
    )

    def __init__(self, *, no_target: NoTarget = "one", policy: Policy = "exact") -> None:
        self._no_target = _policy(no_target)
        self._policy = _metric_policy(policy)
        if self._policy == "text4seg" and self._no_target != "one":
            raise InputError("policy='text4seg' counts an empty target and prediction as 1.0: use no_target='one'")
        self._pairs: list[tuple[int, int]] = []  # text4seg policy: (I, U) per sample
        self._groups: list = []  # ... and its image
        self.intersection = 0  # sum of I over samples
        self.union = 0  # sum of U over samples
        self._ious: list[float] = []  # per-sample IoU of the samples counted in gIoU
        self.count = 0  # samples added
        self.skipped = 0  # samples left out of gIoU by no_target="skip"
        self.empty_targets = 0  # samples whose target was empty
        self.empty_correct = 0  # ... and whose prediction was empty too

    @property
    def no_target(self) -> str:
        return self._no_target

    @property
    def policy(self) -> str:
        return self._policy

    def add(self, pred, target, /, *, image=None) -> float:
        """Score one sample and add it; returns its IoU (``nan`` when skipped).

        ``image`` (any hashable, e.g. the image id) groups the sentences of one
        image, as the ``text4seg`` policy's script does; the exact policy ignores it.
        """
        inter, union = intersection_union(pred, target)
        t = _as_bool(target, "target")
        return self.add_counts(inter, union, target_empty=not t.any(), image=image)

    def add_counts(self, intersection: int, union: int, *, target_empty: bool | None = None, image=None) -> float:
        """Add one sample given its intersection and union pixel counts."""
        inter, uni = int(intersection), int(union)
        if inter < 0 or uni < inter:
            raise InputError(f"need 0 <= intersection <= union, got {inter} and {uni}")
        if self._policy == "text4seg":
            self._pairs.append((inter, uni))
            self._groups.append(("sample", self.count) if image is None else ("image", image))
        self.intersection += inter
        self.union += uni
        self.count += 1
        if target_empty if target_empty is not None else uni == 0:
            self.empty_targets += 1
            self.empty_correct += uni == 0  # nothing predicted where nothing is
        value = _ratio(inter, uni, self._no_target)
        if value is None:
            self.skipped += 1
            return math.nan
        self._ious.append(value)
        return value

    @property
    def ious(self) -> tuple[float, ...]:
        """Per-sample IoU of every sample counted in gIoU, in order of addition."""
        return tuple(self._ious)

    @property
    def ciou(self) -> float:
        """``sum(I) / sum(U)``; with no union at all, the no-target policy decides."""
        if self.count == 0:
            return math.nan
        if self._policy == "text4seg":
            return _t4s_refer(self._pairs, self._groups)[0]
        value = _ratio(self.intersection, self.union, self._no_target)
        return math.nan if value is None else value

    @property
    def giou(self) -> float:
        """Mean per-sample IoU (``nan`` when no sample counts)."""
        if self._policy == "text4seg":
            return _t4s_refer(self._pairs, self._groups)[1]
        return math.fsum(self._ious) / len(self._ious) if self._ious else math.nan

    @property
    def n_acc(self) -> float:
        """No-target accuracy (gRefCOCO's N-acc): the share of empty-target samples predicted empty."""
        return self.empty_correct / self.empty_targets if self.empty_targets else math.nan

    def merge(self, *others: IoUAccumulator) -> IoUAccumulator:
        """A new accumulator holding this one's samples followed by the others'."""
        out = IoUAccumulator(no_target=self._no_target, policy=self._policy)
        for acc in (self, *others):
            if not isinstance(acc, IoUAccumulator):
                raise TypeError(f"can only merge IoUAccumulator, got {type(acc).__name__}")
            if (acc._no_target, acc._policy) != (self._no_target, self._policy):
                raise InputError(
                    f"cannot merge accumulators with no_target/policy {self._no_target!r}/{self._policy!r} "
                    f"and {acc._no_target!r}/{acc._policy!r}"
                )
            base = out.count
            out._pairs.extend(acc._pairs)
            # samples without an image stay their own image after the merge
            out._groups.extend(("sample", base + g[1]) if g[0] == "sample" else g for g in acc._groups)
            out.intersection += acc.intersection
            out.union += acc.union
            out._ious.extend(acc._ious)
            out.count += acc.count
            out.skipped += acc.skipped
            out.empty_targets += acc.empty_targets
            out.empty_correct += acc.empty_correct
        return out

    __add__ = merge

    def state(self) -> dict:
        """A JSON-safe dict of the whole state (see :meth:`from_state`)."""
        return {
            "no_target": self._no_target,
            "policy": self._policy,
            "pairs": [list(p) for p in self._pairs],
            "groups": [list(g) for g in self._groups],
            "intersection": self.intersection,
            "union": self.union,
            "ious": list(self._ious),
            "count": self.count,
            "skipped": self.skipped,
            "empty_targets": self.empty_targets,
            "empty_correct": self.empty_correct,
        }

    @classmethod
    def from_state(cls, state: dict) -> IoUAccumulator:
        out = cls(no_target=state["no_target"], policy=state.get("policy", "exact"))
        out._pairs = [(int(i), int(u)) for i, u in state.get("pairs", [])]
        out._groups = [(g[0], _hashable(g[1])) for g in state.get("groups", [])]
        out.intersection = int(state["intersection"])
        out.union = int(state["union"])
        out._ious = [float(v) for v in state["ious"]]
        out.count = int(state["count"])
        out.skipped = int(state["skipped"])
        out.empty_targets = int(state["empty_targets"])
        out.empty_correct = int(state.get("empty_correct", 0))
        return out

    def __getstate__(self):
        return self.state()

    def __setstate__(self, state):
        other = IoUAccumulator.from_state(state)
        for name in self.__slots__:
            setattr(self, name, getattr(other, name))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IoUAccumulator) and self.state() == other.state()

    def summary(self) -> dict:
        """``{"ciou", "giou", "n_acc", "count", "skipped", "empty_targets"}``."""
        return {
            "ciou": self.ciou,
            "giou": self.giou,
            "count": self.count,
            "skipped": self.skipped,
            "n_acc": self.n_acc,
            "empty_targets": self.empty_targets,
        }

    def __repr__(self) -> str:
        return (
            f"IoUAccumulator(no_target={self._no_target!r}, policy={self._policy!r}) "
            f"<count={self.count}, ciou={self.ciou:.4f}, giou={self.giou:.4f}>"
        )


class MeanIoU:
    """Accumulate per-class intersections and unions of label maps; report mIoU.

    Parameters
    ----------
    num_classes : int
        Class ids are ``0 .. num_classes - 1``; id 0 is the background.
    ignore_index : int or None
        Target pixels with this value are left out (255 in ADE20K, VOC, COCO-Stuff).
    background : bool
        Whether class 0 takes part in the mean.
    policy : {"exact", "text4seg"}
        ``"exact"`` (default): as above, with ``ignore_index`` and ``background``.
        ``"text4seg"``: exactly ``eval_semantic_seg.py``, which calls
        ``intersectionAndUnionGPU(pred, target, K, ignore_index=0)`` per image:
        the prediction is set to 0 wherever the target is 0, values outside
        ``0 .. K - 1`` are not counted (so target pixels of 255 leave the
        target's counts but stay in the prediction's), per-class counts are
        summed over images in float32, and mIoU is the float32 mean of
        ``I / (U + 1e-10)`` over *all* ``K`` classes, absent ones counting 0.
        ``ignore_index`` and ``background`` are not used.

    Notes
    -----
    A prediction id outside ``0 .. num_classes - 1`` (other than on ignored
    pixels) is an error.  Classes with no pixel in prediction or target over
    the whole split (union 0) are left out of the mean.

    Examples
    --------
    >>> import numpy as np
    >>> m = MeanIoU(3)
    >>> m.add(np.array([[0, 1, 2, 2]]), np.array([[0, 1, 1, 255]]))
    >>> m.per_class().round(3).tolist()
    [1.0, 0.5, 0.0]
    >>> round(m.miou, 4), round(MeanIoU.from_state({**m.state(), "background": False}).miou, 4)
    (0.5, 0.25)
    """

    def __init__(
        self,
        num_classes: int,
        *,
        ignore_index: int | None = 255,
        background: bool = True,
        policy: Policy = "exact",
    ) -> None:
        if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
            raise InputError(f"num_classes must be a positive int, got {num_classes!r}")
        self.num_classes = int(num_classes)
        self.ignore_index = None if ignore_index is None else int(ignore_index)
        self.background = bool(background)
        self.policy = _metric_policy(policy)
        self.intersection = np.zeros(self.num_classes, dtype=np.int64)
        self.union = np.zeros(self.num_classes, dtype=np.int64)
        self.images = 0
        # text4seg policy: per image (intersection, union) as float32, in order (the sums are float32)
        self._rows: list[tuple[np.ndarray, np.ndarray]] = []

    def _add_text4seg(self, p: np.ndarray, t: np.ndarray) -> None:
        n = self.num_classes
        p = np.where(t == 0, 0, p).astype(np.int64).ravel()  # output[target == ignore_index] = ignore_index
        t = t.astype(np.int64).ravel()
        both = p[p == t]
        # torch.histc(x, bins=K, min=0, max=K-1) on integers: one bin per class, others not counted
        counts = [np.bincount(v[(v >= 0) & (v < n)], minlength=n) for v in (both, p, t)]
        inter, area_p, area_t = (c.astype(np.float32) for c in counts)
        union = (area_p + area_t - inter).astype(np.float32)
        self.intersection += counts[0]
        self.union += counts[1] + counts[2] - counts[0]
        self._rows.append((inter, union))
        self.images += 1

    def add(self, pred, target, /) -> None:
        """Add one image's prediction and target label maps (same shape)."""
        p = np.asarray(pred)
        t = np.asarray(target)
        if p.ndim != 2 or p.shape != t.shape:
            raise InputError(f"pred and target must be 2-D of one shape, got {p.shape} and {t.shape}")
        for arr, name in ((p, "pred"), (t, "target")):
            if arr.dtype.kind not in "biu":
                raise InputError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
        if self.policy == "text4seg":
            self._add_text4seg(p, t)
            return
        keep = np.ones(t.shape, dtype=bool) if self.ignore_index is None else t != self.ignore_index
        p = p[keep].astype(np.int64)
        t = t[keep].astype(np.int64)
        n = self.num_classes
        for arr, name in ((p, "pred"), (t, "target")):
            if arr.size and (arr.min() < 0 or arr.max() >= n):
                bad = arr[(arr < 0) | (arr >= n)][0]
                raise InputError(f"{name} has class id {int(bad)} outside 0..{n - 1}")
        confusion = np.bincount(t * n + p, minlength=n * n).reshape(n, n)
        inter = np.diag(confusion)
        self.intersection += inter
        self.union += confusion.sum(0) + confusion.sum(1) - inter
        self.images += 1

    def _t4s_sums(self) -> tuple[np.ndarray, np.ndarray]:
        # AverageMeter(Summary.SUM).update(x): sum += x, in float32, image after image
        si = np.zeros(self.num_classes, dtype=np.float32)
        su = np.zeros(self.num_classes, dtype=np.float32)
        for inter, union in self._rows:
            si = si + inter
            su = su + union
        return si, su

    def per_class(self) -> np.ndarray:
        """IoU of each class (``nan`` where the class never occurred; text4seg policy: 0, in float32)."""
        if self.policy == "text4seg":
            si, su = self._t4s_sums()
            return si / (su + np.float32(1e-10))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.union > 0, self.intersection / np.maximum(self.union, 1), np.nan)

    @property
    def miou(self) -> float:
        if self.policy == "text4seg":
            return float(np.mean(self.per_class())) if self.images else math.nan
        values = self.per_class()
        if not self.background:
            values = values[1:]
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else math.nan

    def merge(self, *others: MeanIoU) -> MeanIoU:
        out = MeanIoU(
            self.num_classes, ignore_index=self.ignore_index, background=self.background, policy=self.policy
        )
        for m in (self, *others):
            if not isinstance(m, MeanIoU):
                raise TypeError(f"can only merge MeanIoU, got {type(m).__name__}")
            if (m.num_classes, m.ignore_index, m.policy) != (self.num_classes, self.ignore_index, self.policy):
                raise InputError("cannot merge MeanIoU with different num_classes, ignore_index or policy")
            out._rows.extend(m._rows)
            out.intersection += m.intersection
            out.union += m.union
            out.images += m.images
        return out

    __add__ = merge

    def state(self) -> dict:
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "background": self.background,
            "policy": self.policy,
            "intersection": self.intersection.tolist(),
            "union": self.union.tolist(),
            "images": self.images,
            "rows": [[i.tolist(), u.tolist()] for i, u in self._rows],
        }

    @classmethod
    def from_state(cls, state: dict) -> MeanIoU:
        out = cls(
            state["num_classes"],
            ignore_index=state["ignore_index"],
            background=state["background"],
            policy=state.get("policy", "exact"),
        )
        out._rows = [(np.asarray(i, np.float32), np.asarray(u, np.float32)) for i, u in state.get("rows", [])]
        out.intersection[:] = state["intersection"]
        out.union[:] = state["union"]
        out.images = int(state["images"])
        return out

    def __repr__(self) -> str:
        return (
            f"MeanIoU({self.num_classes}, ignore_index={self.ignore_index}, background={self.background}, "
            f"policy={self.policy!r})"
        )


def box_from_mask(mask, /, *, convention: Convention = "text4seg") -> tuple[int, int, int, int] | None:
    """The bounding box of a mask's foreground, or None for an empty mask.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((5, 6), bool); m[1:3, 2:5] = True
    >>> box_from_mask(m)
    (2, 1, 4, 2)
    >>> box_from_mask(m, convention="coco")
    (2, 1, 3, 2)
    >>> box_from_mask(np.zeros((2, 2), bool)) is None
    True
    """
    conv = _convention(convention)
    m = _as_bool(mask, "mask")
    cols = np.flatnonzero(m.any(axis=0))
    if cols.size == 0:
        return None
    rows = np.flatnonzero(m.any(axis=1))
    x0, x1, y0, y1 = int(cols[0]), int(cols[-1]), int(rows[0]), int(rows[-1])
    if conv == "text4seg":
        return (x0, y0, x1, y1)
    return (x0, y0, x1 - x0 + 1, y1 - y0 + 1)


def _xyxy(box, conv: str) -> tuple[float, float, float, float]:
    if len(box) != 4:
        raise InputError(f"a box has 4 numbers, got {box!r}")
    a, b, c, d = (float(v) for v in box)
    if conv == "coco":
        if c < 0 or d < 0:
            raise InputError(f"a COCO box (x, y, w, h) needs w, h >= 0, got {tuple(box)!r}")
        return a, b, a + c, b + d
    if c < a or d < b:
        raise InputError(f"a box (x1, y1, x2, y2) needs x2 >= x1 and y2 >= y1, got {tuple(box)!r}")
    return a, b, c, d


def box_area(box, /, *, convention: Convention = "text4seg") -> float:
    """Area of a box: ``(x2 - x1) * (y2 - y1)`` for "text4seg", ``w * h`` for "coco".

    Examples
    --------
    >>> box_area((2, 1, 4, 2)), box_area((2, 1, 3, 2), convention="coco")
    (2.0, 6.0)
    """
    x1, y1, x2, y2 = _xyxy(box, _convention(convention))
    return (x2 - x1) * (y2 - y1)


def box_iou(a, b, /, *, convention: Convention = "text4seg") -> float:
    """IoU of two boxes in one convention; 0.0 when the union has no area.

    Examples
    --------
    >>> box_iou((0, 0, 2, 2), (1, 1, 3, 3))
    0.14285714285714285
    >>> box_iou((0, 0, 2, 2), (1, 1, 2, 2), convention="coco")
    0.14285714285714285
    """
    conv = _convention(convention)
    ax1, ay1, ax2, ay2 = _xyxy(a, conv)
    bx1, by1, bx2, by2 = _xyxy(b, conv)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


def _t4s_box_iou(pb, tb) -> np.float32:
    """``box_iou(masks_to_boxes(pred), masks_to_boxes(gt))`` of eval_refer_comprehen.py, in float32."""
    empty = (_F32(1e8), _F32(1e8), _F32(0), _F32(0))  # masks_to_boxes of an all-zero mask
    a = empty if pb is None else tuple(_F32(v) for v in pb)
    b = empty if tb is None else tuple(_F32(v) for v in tb)
    area_a = _F32((a[2] - a[0]) * (a[3] - a[1]))
    area_b = _F32((b[2] - b[0]) * (b[3] - b[1]))
    w = max(_F32(min(a[2], b[2]) - max(a[0], b[0])), _F32(0))
    h = max(_F32(min(a[3], b[3]) - max(a[1], b[1])), _F32(0))
    inter = _F32(w * h)
    union = _F32(_F32(area_a + area_b) - inter)
    with np.errstate(invalid="ignore", divide="ignore"):
        return _F32(inter / union)  # 0 / 0 is nan, which is not > 0.5


def _box_of(x, conv: str, name: str):
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return box_from_mask(x, convention=conv)
    if hasattr(x, "getbands"):
        return box_from_mask(np.asarray(x), convention=conv)
    if x is None:
        return None
    if isinstance(x, (Sequence, np.ndarray)) and len(x) == 4:
        return tuple(x)
    raise InputError(f"{name} must be a 2-D mask, a box of 4 numbers, or None; got {x!r}")


class RECAccuracy:
    """Referring-expression comprehension accuracy: box IoU > ``threshold``.

    ``add(pred, target)`` takes masks (their boxes are derived with
    :func:`box_from_mask`) or boxes of 4 numbers in ``convention``, in any mix.
    A prediction without a box (empty mask, or None) scores 0.

    REC is defined only where there is a target object.  A sample whose target
    has no box (an empty mask: a gRefCOCO no-target expression, or an object
    lost in quantization) is counted in ``skipped`` and left out of the
    accuracy with ``no_target="skip"`` (the default), or raises with
    ``no_target="raise"``.

    ``policy="text4seg"`` reproduces ``eval_refer_comprehen.py``: every sample
    counts (``ALL_samples``), a sample with an empty target is a miss, and the
    box IoU is computed in float32 from torch's ``masks_to_boxes`` boxes (an
    empty mask is the box ``(1e8, 1e8, 0, 0)``) with torchvision's
    ``box_area``; it needs the ``"text4seg"`` convention and ``no_target="skip"``.

    Examples
    --------
    >>> import numpy as np
    >>> acc = RECAccuracy()
    >>> t = np.zeros((8, 8), bool); t[2:6, 2:6] = True
    >>> acc.add(t, t), acc.add(np.zeros((8, 8), bool), t), acc.add((2, 2, 5, 6), t)
    (True, False, True)
    >>> acc.accuracy
    0.6666666666666666
    >>> acc.add(t, np.zeros((8, 8), bool)), acc.skipped, acc.count
    (False, 1, 3)
    """

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        convention: Convention = "text4seg",
        no_target: Literal["skip", "raise"] = "skip",
        policy: Policy = "exact",
    ) -> None:
        if not 0.0 <= float(threshold) < 1.0:
            raise InputError(f"threshold must be in [0, 1), got {threshold!r}")
        if no_target not in ("skip", "raise"):
            raise InputError(f"RECAccuracy no_target must be 'skip' or 'raise', got {no_target!r}")
        self.policy = _metric_policy(policy)
        if self.policy == "text4seg" and (convention != "text4seg" or no_target != "skip"):
            raise InputError("policy='text4seg' scores empty targets as misses with text4seg boxes: "
                             "keep convention='text4seg' and no_target='skip'")
        self.threshold = float(threshold)
        self.convention = _convention(convention)
        self.no_target = no_target
        self.correct = 0
        self.count = 0
        self.skipped = 0

    def add(self, pred, target, /) -> bool:
        """Score one sample; returns whether it is correct (False when skipped)."""
        pb = _box_of(pred, self.convention, "pred")
        tb = _box_of(target, self.convention, "target")
        if self.policy == "text4seg":
            hit = bool(_t4s_box_iou(pb, tb) > _F32(self.threshold))
            self.count += 1
            self.correct += int(hit)
            return hit
        if tb is None:
            if self.no_target == "raise":
                raise InputError("the target has no box (empty mask); REC needs a target object")
            self.skipped += 1
            return False
        hit = pb is not None and box_iou(pb, tb, convention=self.convention) > self.threshold
        self.count += 1
        self.correct += int(hit)
        return hit

    @property
    def accuracy(self) -> float:
        return self.correct / self.count if self.count else math.nan

    def merge(self, *others: RECAccuracy) -> RECAccuracy:
        out = RECAccuracy(
            threshold=self.threshold, convention=self.convention, no_target=self.no_target, policy=self.policy
        )
        for acc in (self, *others):
            if not isinstance(acc, RECAccuracy):
                raise TypeError(f"can only merge RECAccuracy, got {type(acc).__name__}")
            if (acc.threshold, acc.convention, acc.policy) != (self.threshold, self.convention, self.policy):
                raise InputError("cannot merge RECAccuracy with different threshold, convention or policy")
            out.correct += acc.correct
            out.count += acc.count
            out.skipped += acc.skipped
        return out

    __add__ = merge

    def state(self) -> dict:
        return {
            "threshold": self.threshold,
            "convention": self.convention,
            "no_target": self.no_target,
            "policy": self.policy,
            "correct": self.correct,
            "count": self.count,
            "skipped": self.skipped,
        }

    @classmethod
    def from_state(cls, state: dict) -> RECAccuracy:
        out = cls(
            threshold=state["threshold"],
            convention=state["convention"],
            no_target=state.get("no_target", "skip"),
            policy=state.get("policy", "exact"),
        )
        out.correct, out.count = int(state["correct"]), int(state["count"])
        out.skipped = int(state.get("skipped", 0))
        return out

    def __repr__(self) -> str:
        return (
            f"RECAccuracy(threshold={self.threshold}, convention={self.convention!r}, "
            f"no_target={self.no_target!r}, policy={self.policy!r})"
        )


@dataclass(frozen=True)
class OracleReport:
    """What a codec configuration costs on a set of masks, scored at full resolution.

    ``iou`` holds cIoU/gIoU, ``rec`` Acc@0.5 of mask-derived boxes (samples
    with an empty target are left out of REC), ``vanished`` counts non-empty
    masks whose grid came out empty.
    """

    config: dict
    iou: IoUAccumulator
    rec: RECAccuracy
    vanished: int

    @property
    def ciou(self) -> float:
        return self.iou.ciou

    @property
    def giou(self) -> float:
        return self.iou.giou

    @property
    def acc50(self) -> float:
        return self.rec.accuracy

    @property
    def count(self) -> int:
        return self.iou.count

    def merge(self, *others: OracleReport) -> OracleReport:
        for o in others:
            if o.config != self.config:
                raise InputError(f"cannot merge oracle reports of {self.config} and {o.config}")
        return OracleReport(
            self.config,
            self.iou.merge(*(o.iou for o in others)),
            self.rec.merge(*(o.rec for o in others)),
            self.vanished + sum(o.vanished for o in others),
        )

    def summary(self) -> dict:
        return {
            **self.config,
            "count": self.count,
            "ciou": self.ciou,
            "giou": self.giou,
            "acc50": self.acc50,
            "vanished": self.vanished,
        }


def oracle(
    masks: Iterable,
    /,
    *,
    grid: int | tuple[int, int] = 16,
    method: str = "nearest",
    nonempty: bool = False,
    align: str = "corner",
    no_target: NoTarget = "one",
) -> OracleReport:
    """Score the best answer a codec configuration allows: quantize, render back, compare.

    Each binary mask is quantized to ``grid`` with ``method``, rendered back to
    its own size with ``align`` (the Text4Seg decoder is ``"corner"``) and
    scored against itself.  This is the ceiling on what a model answering in
    that configuration can reach.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((32, 32), bool); m[4:20, 8:24] = True
    >>> r = oracle([m], grid=16)
    >>> r.ciou, r.acc50, r.vanished
    (1.0, 1.0, 0)
    >>> tiny = np.zeros((32, 32), bool); tiny[0, 0] = True
    >>> oracle([tiny], grid=4).vanished, oracle([tiny], grid=4, nonempty=True).giou
    (1, 0.015625)
    """
    from .grid import render
    from .quantize import quantize

    config = {
        "grid": grid if isinstance(grid, int) else tuple(grid),
        "method": method,
        "nonempty": bool(nonempty),
        "align": align,
    }
    acc = IoUAccumulator(no_target=no_target)
    rec = RECAccuracy()
    vanished = 0
    for mask in masks:
        m = _as_bool(mask, "mask")
        q = quantize(m, grid=grid, method=method, nonempty=nonempty)
        back = render(q, m.shape, align=align)
        acc.add(back, m)
        if m.any():
            rec.add(back, m)
            vanished += int(not q.any())
    return OracleReport(config, acc, rec, vanished)


def evaluate(
    answers,
    /,
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
    """Score model answers against targets, under the Text4Seg policies and maskcodec's, side by side.

    Parameters
    ----------
    answers : str, os.PathLike or iterable of dict
        A JSONL file (or the records themselves): one object per answer, with
        the text under ``answer``, ``text``, ``output``, ``prediction`` or
        ``response``, an ``id``, and optionally its target (below).
    targets : str or os.PathLike, optional
        A JSONL of target records matched by ``id``: each holds a ``mask``
        (PNG path), a ``segmentation`` (COCO RLE or polygons, with ``height``
        and ``width``), or is a record of the converted dataset (``maskcodec
        convert``), whose answer is decoded strictly at its image's size.  An
        answer record's own ``mask`` / ``segmentation`` takes precedence.
    grid : int or (rows, cols), optional
        The grid the model answers in; when None, the grid repair mode infers.
    format : str
        ``"rrle"``, ``"irle"``, ``"full"`` (both pipelines), or another format
        of the family, scored by the maskcodec pipeline only (the reference has
        no decoder for them): the dialects ``"crle"``, ``"arle"``, ``"spans"``
        (repair mode), ``"boxes"``, ``"polygon"`` (JSON) and ``"polygon-loc"``
        (strict decoders: an answer that does not parse scores an empty
        prediction and is counted in ``parse_failures``).
    class_table : sequence of str or path, optional
        Semantic segmentation: the class file (one name per line, as the
        scripts read it with ``line.strip()``) or its names.  Targets are then
        label-map PNGs of class indices, the text4seg side decodes with
        ``class_table=`` and renders with ``align="torch", via=(336, 336)``
        (``model_semantic_seg.py``), and only ``miou`` is reported, over
        ``len(class_table)`` classes.
    image_root : str, optional
        Folder for relative paths (default: the folder of the file naming them).
    samples_path, summary_path : str, optional
        Where to write one JSON line per answer (parse outcome, repair kinds,
        the reference's failure, IoU under both pipelines, or the record's
        error) and the summary (JSON).
    progress : bool
        Show a progress bar (tqdm when installed).
    fatal : bool
        Raise on the first record that cannot be scored instead of skipping it.

    Returns
    -------
    dict
        ``scored``, ``skipped``, ``errors`` (``{"line", "error"}`` per skipped
        record: nothing unscorable is counted as zero), and per pipeline
        ``text4seg`` (``mode="text4seg"`` decoding, ``align="torch"``, the
        ``policy="text4seg"`` accumulators: ``eval_refer_seg.py``,
        ``eval_refer_comprehen.py``, ``eval_semantic_seg.py``) and
        ``maskcodec`` (repair decoding, exact metrics): ``ciou``, ``giou``,
        ``n_acc``, ``acc50``, ``miou`` (2 classes: background, foreground);
        ``text4seg`` is None for formats the reference cannot decode.

    Raises
    ------
    InputError
        With ``fatal=True``, for the first bad record, naming its line.
    """
    from ._evaluate import run

    return run(
        answers, targets, grid=grid, format=format, class_table=class_table, image_root=image_root,
        samples_path=samples_path,
        summary_path=summary_path, progress=progress, fatal=fatal,
    )
