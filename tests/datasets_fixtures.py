"""Tiny datasets in their real published layouts, built from the shared COCO masks.

* COCO instances JSON (compressed RLE, one polygon object, one crowd object with
  uncompressed counts, an object in two annotations-worth of parts),
* REFER: ``refcoco/refs(unc).p`` (a protocol-2 pickle like the published ones)
  and ``refcoco/instances.json``,
* gRefCOCO: ``grefcoco/grefs(unc).json`` with multi-target and no-target refs,
* semantic label PNGs + class-name file with synonyms, 255 ignore, and
  instance-id PNGs.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

DATA = Path(__file__).parent / "data" / "coco_val2014_segm100.json"

# Names for the category ids that occur most in the shared file; others get "class <id>".
NAMES = {1: "person", 62: "chair", 47: "cup", 44: "bottle", 51: "bowl", 3: "car", 18: "dog", 17: "cat"}


def shared_annotations(limit: int | None = None) -> list[dict]:
    anns = json.loads(DATA.read_text())
    return anns if limit is None else anns[:limit]


def decode(segm, size=None) -> np.ndarray:
    if isinstance(segm, list) and segm and isinstance(segm[0], list):
        rles = mask_utils.frPyObjects(segm, *size)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    if isinstance(segm, dict) and isinstance(segm["counts"], list):
        segm = mask_utils.frPyObjects(segm, *segm["size"])
    return mask_utils.decode(segm).astype(bool)


def uncompressed_counts(mask: np.ndarray) -> list[int]:
    """Column-major run lengths starting with background (COCO's uncompressed RLE)."""
    flat = mask.T.ravel().astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return ([0] + runs) if flat[0] else runs


def build_coco(root: Path, n_images: int = 6) -> tuple[Path, dict]:
    """instances.json with the shared masks of the first ``n_images`` images plus special objects."""
    anns = shared_annotations()
    image_ids = list(dict.fromkeys(a["image_id"] for a in anns))[:n_images]
    images, annotations = [], []
    for iid in image_ids:
        mine = [a for a in anns if a["image_id"] == iid]
        h, w = mine[0]["segmentation"]["size"]
        images.append({"id": iid, "file_name": f"COCO_val2014_{iid:012d}.jpg", "height": h, "width": w})
        for a in mine:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": iid,
                    "category_id": a["category_id"],
                    "segmentation": a["segmentation"],
                    "iscrowd": 0,
                }
            )
    first = images[0]
    h, w = first["height"], first["width"]
    # a polygon object (two parts: a triangle and a square) and a crowd object (uncompressed RLE)
    annotations.append(
        {
            "id": 9001,
            "image_id": first["id"],
            "category_id": 18,
            "iscrowd": 0,
            "segmentation": [
                [10.0, 10.0, 60.0, 12.0, 30.0, 70.0],
                [100.0, 100.0, 140.0, 100.0, 140.0, 140.0, 100.0, 140.0],
            ],
        }
    )
    crowd = np.zeros((h, w), bool)
    crowd[200:260, 300:420] = True
    annotations.append(
        {
            "id": 9002,
            "image_id": first["id"],
            "category_id": 1,
            "iscrowd": 1,
            "segmentation": {"size": [h, w], "counts": uncompressed_counts(crowd)},
        }
    )
    cats = sorted({a["category_id"] for a in annotations})
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": c, "name": NAMES.get(c, f"class {c}")} for c in cats],
    }
    path = root / "instances_val2014.json"
    path.write_text(json.dumps(data))
    return path, data


def build_refer(root: Path, coco: dict, dataset: str = "refcoco") -> Path:
    """``<root>/<dataset>/refs(unc).p`` + ``instances.json``: one ref per annotation, 1-3 sentences."""
    folder = root / dataset
    folder.mkdir(parents=True)
    (folder / "instances.json").write_text(json.dumps(coco))
    refs = []
    words = ["left", "right", "front", "big", "small"]
    for k, a in enumerate(a for a in coco["annotations"] if not a["iscrowd"]):
        name = NAMES.get(a["category_id"], f"class {a['category_id']}")
        sents = []
        for j in range(1 + k % 3):
            raw = f"The {words[(k + j) % 5].upper()} {name}" + (" | near *me" if j == 2 else "")
            sent = raw.lower()
            sents.append({"tokens": sent.split(), "raw": raw, "sent_id": 100 * k + j, "sent": sent})
        refs.append(
            {
                "sent_ids": [s["sent_id"] for s in sents],
                "file_name": f"COCO_train2014_{a['image_id']:012d}_{a['id']}.jpg",
                "ann_id": a["id"],
                "ref_id": k,
                "image_id": a["image_id"],
                "split": ["train", "val", "testA"][k % 3],
                "sentences": sents,
                "category_id": a["category_id"],
            }
        )
    with open(folder / "refs(unc).p", "wb") as fh:
        pickle.dump(refs, fh, protocol=2)
    return folder


def build_grefcoco(root: Path, coco: dict) -> tuple[Path, list[dict]]:
    """``<root>/grefcoco/grefs(unc).json``: multi-target refs (all objects of a category), no-target refs."""
    folder = root / "grefcoco"
    folder.mkdir(parents=True)
    (folder / "instances.json").write_text(json.dumps(coco))
    by_key: dict[tuple, list[int]] = {}
    for a in coco["annotations"]:
        if not a["iscrowd"]:
            by_key.setdefault((a["image_id"], a["category_id"]), []).append(a["id"])
    refs = []
    for k, ((iid, cid), ids) in enumerate(by_key.items()):
        name = NAMES.get(cid, f"class {cid}")
        refs.append(
            {
                "ref_id": k,
                "image_id": iid,
                "ann_id": ids,
                "category_id": [cid] * len(ids),
                "split": "val",
                "no_target": False,
                "file_name": f"COCO_train2014_{iid:012d}.jpg",
                "sent_ids": [k],
                "sentences": [
                    {"tokens": ["all", name], "raw": f"all {name}", "sent_id": k, "sent": f"all {name}"}
                ],
            }
        )
    iid = coco["images"][0]["id"]
    for j in range(2):
        k = len(refs)
        refs.append(
            {
                "ref_id": k,
                "image_id": iid,
                "ann_id": [-1],
                "category_id": [-1],
                "split": "val",
                "no_target": True,
                "file_name": f"COCO_train2014_{iid:012d}.jpg",
                "sent_ids": [k],
                "sentences": [
                    {"tokens": ["the", "zebra"], "raw": "the zebra", "sent_id": k, "sent": "the zebra"}
                ],
            }
        )
    (folder / "grefs(unc).json").write_text(json.dumps(refs))
    return folder, refs


def build_semantic(root: Path, coco: dict, n_images: int = 3) -> tuple[Path, Path, Path, dict]:
    """Label PNGs (class id per pixel, 255 border), a class-name file with synonyms, instance PNGs.

    Class ids: 0 background, then one id per category in the file order below.
    Returns (label_dir, names_file, instance_dir, {image stem: (label map, instance map)}).
    """
    label_dir, inst_dir = root / "labels", root / "instances"
    label_dir.mkdir()
    inst_dir.mkdir()
    cats = sorted({a["category_id"] for a in coco["annotations"]})
    class_of = {c: i + 1 for i, c in enumerate(cats)}
    names = root / "classes.txt"
    lines = ["background"] + [
        f"{NAMES.get(c, f'class {c}')}, {NAMES.get(c, f'class {c}')} synonym" for c in cats
    ]
    names.write_text("\n".join(lines) + "\n")
    truth = {}
    for im in coco["images"][:n_images]:
        h, w = im["height"], im["width"]
        lab = np.zeros((h, w), np.uint8)
        ins = np.zeros((h, w), np.uint8)
        anns = [a for a in coco["annotations"] if a["image_id"] == im["id"] and not a["iscrowd"]]
        for n, a in enumerate(anns, 1):
            m = decode(a["segmentation"], (h, w))
            lab[m] = class_of[a["category_id"]]
            ins[m] = n
        lab[:3, :] = 255  # ignore band
        ins[:3, :] = 0
        stem = Path(im["file_name"]).stem
        Image.fromarray(lab).save(label_dir / f"{stem}.png")
        Image.fromarray(ins).save(inst_dir / f"{stem}.png")
        truth[stem] = (lab, ins)
    return label_dir, names, inst_dir, truth
