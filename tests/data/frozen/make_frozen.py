"""Write the frozen answer texts of the 734 shared COCO masks, once.

Run from the repository root: ``python tests/data/frozen/make_frozen.py``.  It refuses to
overwrite a file that exists: frozen texts are never regenerated.  A change to any of them
is a change of the text format and needs a format version bump, not a new run of this script.

Each ``*.jsonl.gz`` file (gzip, no timestamp) holds one JSON object per line, in the order of
``tests/data/coco_val2014_segm100.json``: ``{"id": index, "image_id", "category_id", "text"}``.
The label is the COCO category name, the background ``others``, quantization Pillow NEAREST.
Every text is checked against the plain-Python reference encoder before it is written.
"""

from __future__ import annotations

import gzip
import json
import sys
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent.parent
sys.path.insert(0, str(TESTS))

import numpy as np  # noqa: E402
from pycocotools import mask as mask_utils  # noqa: E402

import maskcodec as mc  # noqa: E402
import reference as ref  # noqa: E402

#: file name -> (grid, format, which annotations: every ``step``-th one)
FILES = {
    "rrle_16.jsonl.gz": (16, "rrle", 1),
    "rrle_24.jsonl.gz": (24, "rrle", 1),
    "irle_16.jsonl.gz": (16, "irle", 7),
    "full_16.jsonl.gz": (16, "full", 7),
}


def main() -> int:
    existing = [name for name in FILES if (HERE / name).exists()]
    if existing:
        print(f"refusing to overwrite frozen file(s): {', '.join(existing)}", file=sys.stderr)
        return 1
    anns = json.loads((TESTS / "data" / "coco_val2014_segm100.json").read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        masks = [mask_utils.decode(a["segmentation"]) for a in anns]
    for name, (grid, fmt, step) in FILES.items():
        lines = []
        for i in range(0, len(anns), step):
            a, m = anns[i], masks[i]
            label = ref.COCO_CATEGORIES[a["category_id"]]
            text = mc.encode_mask(m, label, grid=grid, format=fmt)
            q = ref.pil_nearest(m != 0, grid, grid).astype(np.int64)
            assert text == ref.WRITERS[fmt](q, ("others", label)), (name, i)
            record = {"id": i, "image_id": a["image_id"], "category_id": a["category_id"], "text": text}
            lines.append(json.dumps(record, ensure_ascii=False))
        data = ("\n".join(lines) + "\n").encode("utf-8")
        with open(HERE / name, "xb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as fh:
            fh.write(data)
        print(f"wrote {name}: {len(lines)} texts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
