"""What a reader yields: a :class:`Sample` (image path, label(s), a lazily loaded target).

A sample carries no pixels.  Its ``target`` says where the mask comes from
(COCO segmentations, a label PNG, or an array already in memory) and is loaded
in the worker that encodes it, so samples are small, picklable and cheap to
send to other processes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from .._errors import MaskcodecError

__all__ = ["ArrayTarget", "CocoMapTarget", "CocoTarget", "DatasetError", "PngTarget", "Problem", "Sample"]

Task = Literal["referring", "semantic"]


class DatasetError(MaskcodecError):
    """A dataset file is missing, unreadable or inconsistent; the message names the path."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self):  # keep (path, reason) across process boundaries
        return (DatasetError, (self.path, self.reason))


@dataclass(frozen=True)
class Problem:
    """A sample or file that could not be used: where, and why."""

    path: str
    reason: str
    sample: str | None = None

    def __str__(self) -> str:
        where = f" (sample {self.sample})" if self.sample else ""
        return f"{self.path}{where}: {self.reason}"


@dataclass(frozen=True)
class CocoTarget:
    """The union of COCO segmentations (RLE dicts or polygon lists) on a ``size`` image.

    No segmentation at all (a gRefCOCO no-target sample) is an all-background mask.
    """

    segmentations: tuple
    size: tuple[int, int]
    source: str = ""

    def grid(self, *, grid, method: str, nonempty: bool) -> np.ndarray:
        """The quantized foreground (0/1) without decoding the full mask."""
        from ..coco import rle_to_grid

        # One segmentation (the common case) goes straight to rle_to_grid, which reads RLE dicts and
        # polygon lists itself: re-encoding it first cost a third of the conversion time.
        segm = self.segmentations[0] if len(self.segmentations) == 1 else self._rles()
        return rle_to_grid(segm, grid=grid, method=method, size=self.size, nonempty=nonempty)

    def _rles(self) -> list:
        from ..coco import to_rle

        return [to_rle(s, size=self.size) for s in self.segmentations]

    def load(self) -> np.ndarray:
        """The full-resolution boolean mask."""
        from ..coco import rle_to_mask

        rles = self._rles()
        if not rles:
            return np.zeros(self.size, dtype=bool)
        return rle_to_mask(rles, size=self.size).astype(bool)


@dataclass(frozen=True)
class CocoMapTarget:
    """Several COCO segmentations painted into one label map, one name per segmentation.

    Larger objects are painted first so that a small object on top of a large
    one keeps its pixels; equal names share an id.
    """

    segmentations: tuple
    names: tuple[str, ...]
    size: tuple[int, int]
    source: str = ""

    def load(self) -> tuple[np.ndarray, dict[int, str]]:
        """``(label map, {id: name})`` with id 0 the background."""
        from ..coco import rle_to_mask, to_rle

        masks = [rle_to_mask(to_rle(s, size=self.size)).astype(bool) for s in self.segmentations]
        labels = np.zeros(self.size, dtype=np.int32)
        for k in sorted(range(len(masks)), key=lambda j: -int(np.count_nonzero(masks[j]))):
            labels[masks[k]] = k + 1
        return labels, {k + 1: name for k, name in enumerate(self.names)}


@dataclass(frozen=True)
class PngTarget:
    """A semantic label PNG (class id per pixel), optionally with an instance-id PNG.

    ``names`` maps class ids to names; ``background_ids`` and ``ignore_index``
    become the background; with ``instance_path`` every (class, instance) pair
    present becomes its own label ``"<name> <k>"``, k = 1, 2, ... per class in
    increasing instance id.
    """

    path: str
    names: tuple[tuple[int, str], ...]
    ignore_index: int | None = 255
    background_ids: tuple[int, ...] = (0,)
    instance_path: str | None = None

    def load(self) -> tuple[np.ndarray, dict[int, str]]:
        """``(label map, {id: name})`` with id 0 the background."""
        labels = _read_png(self.path)
        names = dict(self.names)
        bg = np.isin(
            labels, [*self.background_ids] + ([] if self.ignore_index is None else [self.ignore_index])
        )
        present = np.unique(labels[~bg])
        unknown = [int(v) for v in present if int(v) not in names]
        if unknown:
            raise DatasetError(
                self.path,
                f"class id(s) {unknown[:10]} have no name in the class-name file (it names {len(names)} ids)",
            )
        if self.instance_path is None:
            out = np.where(bg, 0, labels.astype(np.int64) + 1)  # shift so 0 stays free for background
            table = {int(v) + 1: names[int(v)] for v in present}
            return out, table
        inst = _read_png(self.instance_path)
        if inst.shape != labels.shape:
            raise DatasetError(
                self.instance_path,
                f"instance PNG is {inst.shape[1]}x{inst.shape[0]} but the label PNG "
                f"{self.path} is {labels.shape[1]}x{labels.shape[0]}",
            )
        key = labels.astype(np.int64) * (int(inst.max()) + 1) + inst.astype(np.int64)
        key[bg] = -1
        pairs = np.unique(key[key >= 0])
        stride = int(inst.max()) + 1
        out = np.zeros(labels.shape, dtype=np.int64)
        table: dict[int, str] = {}
        per_class: dict[int, int] = {}
        for new_id, k in enumerate(pairs.tolist(), 1):
            cls, ins = divmod(k, stride)
            per_class[cls] = per_class.get(cls, 0) + 1
            table[new_id] = f"{names[cls]} {per_class[cls]}" if ins else names[cls]
            out[key == k] = new_id
        return out, table


@dataclass(frozen=True)
class ArrayTarget:
    """A mask already in memory: binary (``labels`` ignored) or a label map with ``{id: name}``."""

    mask: np.ndarray
    names: tuple[tuple[int, str], ...] = ()

    def load(self):
        if self.names:
            return self.mask, dict(self.names)
        return np.asarray(self.mask).astype(bool)


def _read_png(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    from ..grid import MAX_PIXELS

    try:
        with Image.open(path) as img:
            w, h = img.size  # known from the header: check before decoding any pixel
            if w * h > MAX_PIXELS:
                raise DatasetError(path, f"the image is {w}x{h}, more than MAX_PIXELS={MAX_PIXELS} pixels")
            img.load()
            if len(img.getbands()) != 1:
                raise DatasetError(
                    path, f"a label PNG needs one band (mode L, P, I or I;16), got mode {img.mode}"
                )
            return np.asarray(img)
    except DatasetError:
        raise
    except FileNotFoundError:
        raise DatasetError(path, "file not found") from None
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError,
            EOFError, MemoryError) as exc:
        raise DatasetError(path, f"cannot read the image: {type(exc).__name__}: {str(exc)[:200]}") from None


@dataclass(frozen=True)
class Sample:
    """One training example before encoding.

    Attributes
    ----------
    id : str
        Stable identifier (unique within a source); seeds the template choice.
    image : str
        Image path as it should appear in the output.
    label : str or None
        Foreground label of a binary target (a class name or a referring
        sentence, made safe); None for a semantic (multi-class) target.
    target : CocoTarget, CocoMapTarget, PngTarget or ArrayTarget
        Where the mask comes from.
    task : {"referring", "semantic"}
        Chooses the question templates.
    meta : dict
        Extra fields copied from the source (split, ids, raw sentence).
    """

    id: str
    image: str
    label: str | None
    target: CocoTarget | CocoMapTarget | PngTarget | ArrayTarget
    task: Task = "referring"
    meta: Mapping = field(default_factory=dict)
