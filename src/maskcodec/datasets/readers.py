"""Readers for segmentation datasets in their published layouts.

Every reader returns a :class:`Source`: a list of :class:`Sample` (no pixels
loaded yet) plus the :class:`Problem` list of what was skipped and why.
``on_error="raise"`` makes the first problem fatal instead (a
:class:`DatasetError` naming the file); nothing is ever dropped silently.

Layouts
-------
COCO instances
    ``instances_*.json`` with ``images``, ``annotations`` (polygons, RLE,
    ``iscrowd``) and ``categories``.
REFER (refCOCO, refCOCO+, refCOCOg)
    ``<root>/<dataset>/refs(<split_by>).p`` (a pickled list of refs, each with
    ``ref_id``, ``ann_id``, ``image_id``, ``split`` and ``sentences``) and
    ``<root>/<dataset>/instances.json`` (COCO images, annotations,
    categories).  Every sentence is a sample.
gRefCOCO
    ``<root>/grefcoco/grefs(unc).json`` (a JSON list of refs whose ``ann_id``
    is a list; ``[-1]`` or ``no_target: true`` marks a no-target expression)
    and ``instances.json``.  The targets of one expression are merged; a
    no-target sample has an all-background grid.
Semantic label folders (ADE20K, COCO-Stuff, PASCAL VOC / Context)
    A folder of single-band PNGs (class id per pixel, 255 ignored) and a
    class-name file; optionally a folder of instance-id PNGs with the same
    file names.
"""

from __future__ import annotations

import json
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._errors import LabelError
from ..grid import MAX_PIXELS
from .._labels import safe_label
from ._sample import CocoMapTarget, CocoTarget, DatasetError, PngTarget, Problem, Sample

__all__ = [
    "Source",
    "check_images",
    "open_source",
    "read_coco",
    "read_grefcoco",
    "read_names",
    "read_refer",
    "read_semantic",
]

OnError = Literal["skip", "raise"]


@dataclass
class Source:
    """Samples of one dataset (in a fixed order) and the problems met reading it."""

    name: str
    samples: list[Sample]
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.samples)

    def __iter__(self) -> Iterator[Sample]:
        return iter(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


class _Report:
    def __init__(self, on_error: str) -> None:
        if on_error not in ("skip", "raise"):
            raise DatasetError("<options>", f"on_error must be 'skip' or 'raise', got {on_error!r}")
        self.on_error = on_error
        self.problems: list[Problem] = []

    def __call__(self, path, reason: str, sample: str | None = None) -> None:
        if self.on_error == "raise":
            raise DatasetError(str(path), reason if sample is None else f"sample {sample}: {reason}")
        self.problems.append(Problem(str(path), reason, sample))


#: The largest JSON or pickle file a reader opens (COCO's train annotations are 450 MB).
MAX_FILE_BYTES = 2 << 30


def _check_size(path) -> None:
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise DatasetError(str(path), "file not found") from None
    except OSError as exc:
        raise DatasetError(str(path), f"cannot read: {exc.strerror or exc}") from None
    if size > MAX_FILE_BYTES:
        raise DatasetError(str(path), f"{size} bytes, more than MAX_FILE_BYTES={MAX_FILE_BYTES}; refused")


def _load_json(path) -> object:
    _check_size(path)
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise DatasetError(str(path), "file not found") from None
    except IsADirectoryError:
        raise DatasetError(str(path), "is a folder, not a JSON file") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit int
        raise DatasetError(str(path), f"not valid JSON: {str(exc)[:200]}") from None


class _NoGlobals(pickle.Unpickler):
    """An unpickler that refuses every global: lists, dicts, strings and numbers only.

    REFER's ``refs(...).p`` holds nothing else, and any global (``os.system``,
    ``builtins.eval``, a class to rebuild) is how a crafted pickle runs code.
    """

    def find_class(self, module, name):
        raise pickle.UnpicklingError(
            f"the pickle names the global {module}.{name}; REFER refs hold only lists, dicts, "
            "strings and numbers, so it is refused (nothing in the file was run)"
        )


def _load_refs(path) -> object:
    """Read a REFER pickle with :class:`_NoGlobals`; every failure is a :class:`DatasetError`."""
    _check_size(path)
    try:
        with open(path, "rb") as fh:
            return _NoGlobals(fh, encoding="latin1").load()
    except FileNotFoundError:
        raise DatasetError(str(path), "file not found") from None
    except IsADirectoryError:
        raise DatasetError(str(path), "is a folder, not a pickle") from None
    except Exception as exc:  # noqa: BLE001 - a corrupt pickle can raise almost anything
        raise DatasetError(str(path), f"cannot unpickle: {type(exc).__name__}: {str(exc)[:200]}") from None


def _coco_tables(path, data) -> tuple[dict, dict, dict]:
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise DatasetError(
            str(path), f"not a COCO instances file: need 'images', 'annotations' and 'categories', got {keys}"
        )
    tables = []
    for key in ("images", "annotations", "categories"):
        items = data[key]
        if not isinstance(items, list):
            raise DatasetError(str(path), f"{key!r} must be a list, got {type(items).__name__}")
        table = {}
        for i, item in enumerate(items):
            if not isinstance(item, dict) or _key(item.get("id")) is None:
                raise DatasetError(str(path), f"{key}[{i}] is not an object with an int or str 'id'")
            why = _bad_image(item) if key == "images" else None
            if key == "categories":
                why = _bad_name(item.get("name"))
            if why:
                raise DatasetError(str(path), f"{key}[{i}] (id {item['id']!r}) {why}")
            table[item["id"]] = item
        tables.append(table)
    images, anns, cats = tables
    return images, anns, {i: c["name"] for i, c in cats.items()}


def _bad_name(name) -> str | None:
    if not isinstance(name, str):
        return "has no str 'name'"
    try:
        safe_label(name)
    except LabelError:
        return f"has a name {name[:40]!r} with nothing usable as a label"
    return None


def _bad_image(image: dict) -> str | None:
    h, w = image.get("height"), image.get("width")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in (h, w)):
        return f"needs positive int 'height' and 'width', got {str(h)[:20]} and {str(w)[:20]}"
    if h * w > MAX_PIXELS:
        return f"is {h}x{w}, more than MAX_PIXELS={MAX_PIXELS} pixels"
    if not isinstance(image.get("file_name"), str):
        return "has no str 'file_name'"
    return None


def _image_path(image_root: str, file_name: str) -> str:
    return os.path.join(image_root, file_name) if image_root else file_name


def _check_ann(ann: dict, image: dict) -> str | None:
    """Why an annotation cannot be used, or None."""
    segm = ann.get("segmentation")
    if segm is None or (isinstance(segm, list) and not segm):
        return "annotation has no segmentation"
    if isinstance(segm, dict):
        size = segm.get("size")
        if list(size or []) != [image["height"], image["width"]]:
            return f"RLE size {size} differs from the image's {image['height']}x{image['width']}"
    return None


def read_coco(
    path,
    /,
    *,
    group: Literal["object", "category", "image"] = "object",
    image_root: str = "",
    crowd: bool = True,
    instances: bool = False,
    on_error: OnError = "skip",
    _data=None,
) -> Source:
    """Read a COCO instances JSON file.

    Parameters
    ----------
    path : str or path
        ``instances_*.json``.
    group : {"object", "category"}
        ``"object"``: one sample per object, labelled with its category name.
        ``"category"``: one sample per (image, category), the union of all its
        objects (several annotations merged).  ``"image"``: one multi-class
        sample per image, every object painted into one label map (larger
        objects first, so small ones stay visible).
    image_root : str
        Prefix for image paths in the output (e.g. ``"coco/train2014"``).
    crowd : bool
        Keep ``iscrowd`` annotations (they are RLE with uncompressed counts).
    instances : bool
        With ``group="image"``: label each object ``"<category> <k>"``
        (``person 1``, ``person 2``, numbered per category in annotation order)
        instead of merging the objects of a category.
    on_error : {"skip", "raise"}
        What to do with an unusable annotation.
    """
    if group not in ("object", "category", "image"):
        raise DatasetError(str(path), f"group must be 'object', 'category' or 'image', got {group!r}")
    report = _Report(on_error)
    images, anns, cats = _coco_tables(path, _load_json(path) if _data is None else _data)
    buckets: dict[tuple, list[dict]] = {}
    for ann in anns.values():
        image = images.get(ann.get("image_id"))
        sid = f"ann{ann.get('id')}"
        if image is None:
            report(path, f"annotation refers to image {ann.get('image_id')!r}, which is not in 'images'", sid)
            continue
        if ann.get("category_id") not in cats:
            report(path, f"unknown category_id {ann.get('category_id')!r}", sid)
            continue
        if ann.get("iscrowd") and not crowd:
            continue  # asked for: crowd regions are left out
        why = _check_ann(ann, image)
        if why:
            report(path, why, sid)
            continue
        if group == "image":
            key = (ann["image_id"],)
        elif group == "category":
            key = (ann["image_id"], ann["category_id"])
        else:
            key = (ann["id"],)
        buckets.setdefault(key, []).append(ann)
    samples = []
    if group == "image":
        for (image_id,), group_anns in buckets.items():
            image = images[image_id]
            names, seen = [], {}
            for a in group_anns:
                name = safe_label(cats[a["category_id"]])
                if instances:
                    seen[name] = seen.get(name, 0) + 1
                    name = f"{name} {seen[name]}"
                names.append(name)
            samples.append(
                Sample(
                    id=f"img{image_id}",
                    image=_image_path(image_root, image["file_name"]),
                    label=None,
                    target=CocoMapTarget(
                        tuple(a["segmentation"] for a in group_anns),
                        tuple(names),
                        (int(image["height"]), int(image["width"])),
                        str(path),
                    ),
                    task="semantic",
                    meta={"image_id": image_id, "ann_ids": [a["id"] for a in group_anns]},
                )
            )
        return Source(f"coco:{os.fspath(path)}", samples, report.problems)
    for key, group_anns in buckets.items():
        first = group_anns[0]
        image = images[first["image_id"]]
        name = cats[first["category_id"]]
        sid = f"img{key[0]}_cat{key[1]}" if group == "category" else f"ann{key[0]}"
        samples.append(
            Sample(
                id=sid,
                image=_image_path(image_root, image["file_name"]),
                label=safe_label(name),
                target=CocoTarget(
                    tuple(a["segmentation"] for a in group_anns),
                    (int(image["height"]), int(image["width"])),
                    str(path),
                ),
                task="referring",
                meta={
                    "image_id": first["image_id"],
                    "category_id": first["category_id"],
                    "ann_ids": [a["id"] for a in group_anns],
                },
            )
        )
    return Source(f"coco:{os.fspath(path)}", samples, report.problems)


def read_coco_results(
    path,
    /,
    *,
    image_root: str = "",
    image_name: str = "{image_id:012d}.jpg",
    names: dict | None = None,
    on_error: OnError = "skip",
    _data=None,
) -> Source:
    """Read a COCO *results* list (what a detector writes for ``COCOeval``): one sample per result.

    A results list names no image files and no category names: the image path is
    ``image_name.format(image_id=...)`` under ``image_root``, and the label is the
    COCO category name of ``category_id`` (or ``names[category_id]``, or
    ``"class <id>"``).  Polygons need the image size, which a results list does
    not hold: only RLE results (with their ``size``) can be converted.  The
    ``score`` is kept in the sample's ``meta``.
    """
    from .._cli_codec import _COCO_NAMES

    data = _load_json(path) if _data is None else _data
    if not isinstance(data, list):
        raise DatasetError(str(path), "a COCO results file holds a JSON list of results")
    report = _Report(on_error)
    samples = []
    for i, res in enumerate(data):
        sid = f"res{i}"
        if not isinstance(res, dict) or not {"image_id", "category_id", "segmentation"} <= set(res):
            report(path, "a result needs image_id, category_id and segmentation", sid)
            continue
        segm, cat = res["segmentation"], res["category_id"]
        if not isinstance(segm, dict) or "size" not in segm or "counts" not in segm:
            report(path, "only RLE results (with a size) can be converted: a results list has no image sizes", sid)
            continue
        size = segm["size"]
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            report(path, f"RLE size must be [height, width], got {size!r}", sid)
            continue
        name = (names or {}).get(cat)
        if name is None and isinstance(cat, int) and 0 < cat < len(_COCO_NAMES) and _COCO_NAMES[cat]:
            name = _COCO_NAMES[cat]
        try:
            file_name = image_name.format(image_id=res["image_id"])
        except (KeyError, IndexError, ValueError) as exc:
            raise DatasetError(str(path), f"image_name {image_name!r} does not format: {exc}") from None
        samples.append(
            Sample(
                id=sid,
                image=_image_path(image_root, file_name),
                label=safe_label(name or f"class {cat}"),
                target=CocoTarget((segm,), (int(size[0]), int(size[1])), str(path)),
                task="referring",
                meta={"image_id": res["image_id"], "category_id": cat, "score": res.get("score")},
            )
        )
    return Source(f"coco-results:{os.fspath(path)}", samples, report.problems)


def _key(value):
    """An id from a file as a dict key: ints and strings only (a list or dict would not hash)."""
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def _sentence_label(sent: dict) -> str | None:
    text = sent.get("sent")
    if not isinstance(text, str):
        tokens = sent.get("tokens")
        ok = isinstance(tokens, list) and all(isinstance(t, str) for t in tokens)
        text = (" ".join(tokens) if ok else "") or sent.get("raw")
    if not isinstance(text, str):
        return None
    try:
        return safe_label(text.lower())
    except LabelError:  # nothing left once made safe (an empty sentence)
        return None


def _refer_samples(refs, images, anns, report, where, image_root, split, grefs):
    samples = []
    for i, ref in enumerate(refs):
        if not isinstance(ref, dict):
            report(where, f"ref #{i} is a {type(ref).__name__}, not a dict", f"ref#{i}")
            continue
        if split is not None and ref.get("split") != split:
            continue
        rid = ref.get("ref_id")
        image = images.get(_key(ref.get("image_id")))
        if image is None:
            report(
                where,
                f"ref {rid} refers to image {ref.get('image_id')!r}, not in instances.json",
                f"ref{rid}",
            )
            continue
        ann_ids = ref.get("ann_id")
        ann_ids = list(ann_ids) if isinstance(ann_ids, (list, tuple)) else [ann_ids]
        no_target = bool(ref.get("no_target")) or ann_ids in ([-1], [])
        segms = []
        bad = None
        if not no_target:
            for aid in ann_ids:
                ann = anns.get(_key(aid))
                if ann is None:
                    bad = f"ref {rid} refers to annotation {aid!r}, not in instances.json"
                    break
                bad = _check_ann(ann, image)
                if bad:
                    bad = f"annotation {aid}: {bad}"
                    break
                segms.append(ann["segmentation"])
        if bad:
            report(where, bad, f"ref{rid}")
            continue
        target = CocoTarget(tuple(segms), (int(image["height"]), int(image["width"])), where)
        sentences = ref.get("sentences")
        if not isinstance(sentences, list):
            report(where, f"ref {rid} has no list of sentences", f"ref{rid}")
            continue
        for k, sent in enumerate(sentences):
            if not isinstance(sent, dict):
                report(where, f"ref {rid} sentence #{k} is not a dict", f"ref{rid}_sent#{k}")
                continue
            sent_id = sent.get("sent_id", k)
            label = _sentence_label(sent)
            if label is None:
                report(where, f"ref {rid} sentence {sent_id} has no usable text", f"ref{rid}_sent{sent_id}")
                continue
            samples.append(
                Sample(
                    id=f"ref{rid}_sent{sent_id}",
                    image=_image_path(image_root, image["file_name"]),
                    label=label,
                    target=target,
                    task="referring",
                    meta={
                        "ref_id": rid,
                        "sent_id": sent_id,
                        "image_id": ref.get("image_id"),
                        "split": ref.get("split"),
                        "raw": sent.get("raw"),
                        "ann_ids": ann_ids,
                        **({"no_target": no_target} if grefs else {}),
                    },
                )
            )
    return samples


def read_refer(
    root,
    /,
    dataset: str = "refcoco",
    *,
    split_by: str = "unc",
    split: str | None = None,
    image_root: str = "",
    on_error: OnError = "skip",
) -> Source:
    """Read refCOCO / refCOCO+ / refCOCOg in the REFER layout; every sentence is a sample.

    Parameters
    ----------
    root : str or path
        The folder holding ``<dataset>/refs(<split_by>).p`` and
        ``<dataset>/instances.json`` (or that dataset folder itself).
    dataset : str
        ``"refcoco"``, ``"refcoco+"`` or ``"refcocog"``.
    split_by : str
        ``"unc"``, ``"google"`` or ``"umd"`` (the name inside ``refs(...).p``).
    split : str, optional
        Keep only refs of this split (``"train"``, ``"val"``, ``"testA"``...).

    Notes
    -----
    ``refs(...).p`` is a Python pickle, as REFER publishes it.  It is read
    with an unpickler that refuses every global, so a crafted file cannot run
    code: it is a :class:`DatasetError` instead.  Each ref is a dict with
    ``ref_id``, ``ann_id`` (the COCO annotation), ``image_id``, ``category_id``,
    ``split`` (``"train"``, ``"val"``, ``"testA"``, ``"testB"``, ``"test"``),
    ``file_name`` and ``sentences``: a list of dicts with ``sent`` (the
    expression; ``raw`` and ``tokens`` are read if ``sent`` is missing) and
    ``sent_id``.  Python 2 byte strings are read as latin-1.
    """
    report = _Report(on_error)
    folder = os.path.join(root, dataset)
    if not os.path.isdir(folder):
        folder = os.fspath(root)
    refs_path = os.path.join(folder, f"refs({split_by}).p")
    inst_path = os.path.join(folder, "instances.json")
    refs = _load_refs(refs_path)
    if not isinstance(refs, list):
        raise DatasetError(refs_path, f"expected a list of refs, got {type(refs).__name__}")
    images, anns, _ = _coco_tables(inst_path, _load_json(inst_path))
    samples = _refer_samples(refs, images, anns, report, refs_path, image_root, split, grefs=False)
    return Source(f"refer:{dataset}({split_by})", samples, report.problems)


def read_grefcoco(
    root,
    /,
    *,
    split_by: str = "unc",
    split: str | None = None,
    image_root: str = "",
    on_error: OnError = "skip",
) -> Source:
    """Read gRefCOCO: ``grefs(<split_by>).json`` plus ``instances.json``.

    An expression with several targets is one sample whose mask is their
    union; a no-target expression (``ann_id == [-1]`` or ``no_target``) is a
    sample with an empty mask, written as an all-background grid.
    """
    report = _Report(on_error)
    folder = os.path.join(root, "grefcoco")
    if not os.path.isdir(folder):
        folder = os.fspath(root)
    refs_path = os.path.join(folder, f"grefs({split_by}).json")
    inst_path = os.path.join(folder, "instances.json")
    refs = _load_json(refs_path)
    if not isinstance(refs, list):
        raise DatasetError(refs_path, f"expected a JSON list of refs, got {type(refs).__name__}")
    images, anns, _ = _coco_tables(inst_path, _load_json(inst_path))
    samples = _refer_samples(refs, images, anns, report, refs_path, image_root, split, grefs=True)
    return Source(f"grefcoco({split_by})", samples, report.problems)


def read_names(path, /, *, first_id: int = 0) -> dict[int, str]:
    """Read a class-name file: ``{id: canonical name}``.

    One name per line (the ``i``-th name names id ``first_id + i``; ADE20K's
    150 names start at 1), or ``ID NAME`` / ``ID: NAME`` lines.
    ``name, other name`` lists synonyms; the first is kept.  Blank lines and
    ``#`` comments are skipped.  Names are made safe labels.

    Examples
    --------
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "names.txt")
    >>> _ = open(p, "w").write("background\\nperson, human\\ntv monitor, tv\\n")
    >>> read_names(p)
    {0: 'background', 1: 'person', 2: 'tv monitor'}
    """
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh]
    except FileNotFoundError:
        raise DatasetError(str(path), "class-name file not found") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(str(path), f"class-name file is not UTF-8: {exc}") from None
    content = [(n, ln) for n, ln in enumerate(lines, 1) if ln and not ln.startswith("#")]
    explicit = bool(content) and all(
        ln.split(None, 1)[0].rstrip(":").isdigit() and len(ln.split(None, 1)) == 2 for _, ln in content
    )
    names: dict[int, str] = {}
    for i, (lineno, ln) in enumerate(content):
        if explicit:
            key, name = ln.split(None, 1)
            idx = int(key.rstrip(":"))
        else:
            idx, name = first_id + i, ln
        canonical = name.split(",")[0].strip()
        if not canonical:
            raise DatasetError(str(path), f"line {lineno} has an empty class name")
        if idx in names:
            raise DatasetError(str(path), f"line {lineno} names id {idx} a second time")
        names[idx] = safe_label(canonical)
    if not names:
        raise DatasetError(str(path), "class-name file names no class")
    return names


_BACKGROUND_NAMES = ("background", "others", "other", "unlabeled", "unlabelled", "void")


def read_semantic(
    label_dir,
    /,
    names,
    *,
    image_dir: str = "",
    image_ext: str = ".jpg",
    instance_dir=None,
    ignore_index: int | None = 255,
    background_ids: Sequence[int] | None = None,
    first_id: int = 0,
    on_error: OnError = "skip",
) -> Source:
    """Read a folder of semantic label PNGs (one sample per image, multi-class).

    Parameters
    ----------
    label_dir : str or path
        Folder of single-band PNGs; each pixel holds a class id.
    names : str, path or mapping
        A class-name file (see :func:`read_names`) or ``{id: name}``.
    image_dir, image_ext : str
        The image path written for ``label_dir/x.png`` is ``image_dir/x<image_ext>``.
    instance_dir : str or path, optional
        Folder of instance-id PNGs with the same file names; each instance
        becomes its own label (``person 1``, ``person 2``).
    ignore_index : int or None
        Pixel value that becomes background (255 in these datasets).
    background_ids : sequence of int, optional
        Class ids that become background; by default the ids named
        ``background``, ``others``, ``unlabeled``... and id 0 when it has no name.
    first_id : int
        Id of the first name in a one-name-per-line file (see :func:`read_names`).
    """
    report = _Report(on_error)
    table = (
        read_names(names, first_id=first_id)
        if isinstance(names, (str, os.PathLike))
        else {int(k): safe_label(v) for k, v in dict(names).items()}
    )
    if background_ids is None:
        background_ids = [i for i, n in table.items() if n.lower() in _BACKGROUND_NAMES]
        if 0 not in table:
            background_ids.append(0)
    named = tuple(sorted((i, n) for i, n in table.items() if i not in set(background_ids)))
    try:
        files = sorted(f for f in os.listdir(label_dir) if f.lower().endswith(".png"))
    except FileNotFoundError:
        raise DatasetError(str(label_dir), "label folder not found") from None
    if not files:
        raise DatasetError(str(label_dir), "no .png label files in the folder")
    samples = []
    for f in files:
        stem = f[:-4]
        inst = None
        if instance_dir is not None:
            inst = os.path.join(instance_dir, f)
            if not os.path.isfile(inst):
                report(inst, "instance PNG not found", stem)
                continue
        samples.append(
            Sample(
                id=stem,
                image=_image_path(image_dir, stem + image_ext),
                label=None,
                target=PngTarget(
                    os.path.join(os.fspath(label_dir), f),
                    named,
                    ignore_index,
                    tuple(int(b) for b in background_ids),
                    inst,
                ),
                task="semantic",
                meta={},
            )
        )
    return Source(f"semantic:{os.fspath(label_dir)}", samples, report.problems)


def open_source(
    src,
    /,
    *,
    kind: str | None = None,
    dataset: str = "refcoco",
    split_by: str = "unc",
    split: str | None = None,
    names=None,
    image_root: str = "",
    image_ext: str = ".jpg",
    instance_dir=None,
    group: str = "object",
    instances: bool = False,
    ignore_index: int | None = 255,
    first_id: int = 0,
    on_error: OnError = "skip",
    image_name: str = "{image_id:012d}.jpg",
) -> Source:
    """Open ``src`` with the reader its layout calls for (or the one ``kind`` names).

    ``kind`` is one of ``"coco"``, ``"refer"``, ``"grefcoco"``, ``"semantic"``;
    without it: a ``.json`` file is COCO, a folder holding ``refs(*).p`` (or
    ``<dataset>/refs(*).p``) is REFER, one holding ``grefs(*).json`` is
    gRefCOCO, and a folder of PNGs with ``names`` is semantic.  A ``.json``
    file holding a COCO *results* list (``[{"image_id", "category_id",
    "segmentation", "score"}, ...]``) is read by :func:`read_coco_results`.
    """
    src = os.fspath(src)
    if kind is None:
        kind = _detect(src, dataset, split_by, names)
    if kind == "coco":
        data = _load_json(src)
        if isinstance(data, list):
            return read_coco_results(src, image_root=image_root, image_name=image_name, on_error=on_error,
                                     _data=data)
        return read_coco(src, group=group, image_root=image_root, instances=instances, on_error=on_error,
                         _data=data)
    if kind == "refer":
        return read_refer(
            src, dataset, split_by=split_by, split=split, image_root=image_root, on_error=on_error
        )
    if kind == "grefcoco":
        return read_grefcoco(src, split_by=split_by, split=split, image_root=image_root, on_error=on_error)
    if kind == "semantic":
        if names is None:
            raise DatasetError(src, "a semantic label folder needs a class-name file (names=...)")
        return read_semantic(
            src,
            names,
            image_dir=image_root,
            image_ext=image_ext,
            instance_dir=instance_dir,
            ignore_index=ignore_index,
            first_id=first_id,
            on_error=on_error,
        )
    raise DatasetError(src, f"unknown dataset kind {kind!r}; choose coco, refer, grefcoco or semantic")


def check_images(source: Source, root="", /, *, on_error: OnError = "skip") -> Source:
    """Keep the samples whose image file exists (at ``root/<sample image>``); report the others.

    Each distinct image is looked up once.  A missing image is a :class:`Problem`
    naming the path (or, with ``on_error="raise"``, a :class:`DatasetError`).
    """
    report = _Report(on_error)
    report.problems = list(source.problems)
    seen: dict[str, bool] = {}
    kept = []
    for s in source.samples:
        path = os.path.join(os.fspath(root), s.image) if root else s.image
        if path not in seen:
            seen[path] = os.path.isfile(path)
        if seen[path]:
            kept.append(s)
        else:
            report(path, "image file not found", s.id)
    return Source(source.name, kept, report.problems)


def _detect(src: str, dataset: str, split_by: str, names) -> str:
    if os.path.isfile(src):
        if src.endswith(".json"):
            return "coco"
        raise DatasetError(src, "cannot tell the dataset layout of this file; pass kind=")
    if not os.path.isdir(src):
        raise DatasetError(src, "no such file or folder")
    for folder in (src, os.path.join(src, dataset), os.path.join(src, "grefcoco")):
        if os.path.isfile(os.path.join(folder, f"grefs({split_by}).json")):
            return "grefcoco"
        if os.path.isfile(os.path.join(folder, f"refs({split_by}).p")):
            return "refer"
    if names is not None and any(f.lower().endswith(".png") for f in os.listdir(src)):
        return "semantic"
    raise DatasetError(
        src,
        "cannot tell the dataset layout (no refs(*).p, grefs(*).json, or PNGs with a "
        "class-name file); pass kind=",
    )
