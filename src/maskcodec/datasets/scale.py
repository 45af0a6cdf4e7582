"""Converting datasets too big for one machine: Hugging Face ``datasets`` and Ray Data.

Both engines call one picklable, stateless function on batches of rows:
:class:`BatchConverter`.  A row holds a mask (a COCO RLE dict
``{"size": [h, w], "counts": ...}``, COCO polygons with ``height``/``width``
columns, or a 2-D array / PIL image), a label, an image path and an id.  The
output columns are ``id``, ``record`` (the JSONL line without its newline, in
the chosen format), ``tokens`` (estimated tokens of the ``<seg>`` text) and
``error`` (empty, or why the row could not be converted: bad rows are kept and
named, never dropped).

``datasets`` and ``ray`` are imported only inside :func:`hf_convert` and
:func:`ray_convert`; :class:`BatchConverter` itself needs neither.

Thread and process safety: the codec functions keep no mutable global state
(their caches are ``functools.lru_cache`` tables that are never written after
they are built, and the numba kernels release the GIL and write only into
arrays allocated for the call), so one converter may be called from several
threads or pickled to other processes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .._errors import MaskcodecError
from ._sample import ArrayTarget, CocoTarget, Sample
from .pipeline import ConvertOptions, _record, _token_counter

__all__ = ["BatchConverter", "hf_convert", "messages_of", "ray_convert", "to_hf_dataset"]

OUTPUT_COLUMNS = ("id", "record", "tokens", "error")
#: The columns with ``structured=True``: chat ``messages`` and an ``images`` list, as TRL,
#: LLaMA-Factory and ms-swift read them from a Hub dataset.
STRUCTURED_COLUMNS = ("id", "messages", "images", "tokens", "error")


def messages_of(record: Mapping) -> tuple[list[dict], list[str]]:
    """``(messages, images)`` of a record in any output format: ``[{"role", "content"}]`` with
    ``"<image>"`` opening the user turn, and the image paths.

    >>> from maskcodec.datasets import make_record
    >>> messages_of(make_record("llava", id="1", image="a.jpg", question="Q", answer="A"))
    ([{'role': 'user', 'content': '<image>Q'}, {'role': 'assistant', 'content': 'A'}], ['a.jpg'])
    """
    from .writers import answer_of

    image, question, answer = answer_of(dict(record))
    msgs = [{"role": "user", "content": "<image>" + question}, {"role": "assistant", "content": answer}]
    return msgs, [image] if image else []


@dataclass(frozen=True)
class BatchConverter:
    """``batch (column -> values) -> {"id", "record", "tokens", "error"}``; picklable.

    Parameters
    ----------
    options : ConvertOptions
        Output format, grid, method, seed, templates.
    mask, label, image, id : str
        Column names.  The id column is optional: without it the row's label
        and image make the id (the template choice needs a stable key).
    height, width : str
        Columns with the image size, needed only for polygon masks.
    structured : bool
        Output ``id``, ``messages``, ``images``, ``tokens``, ``error`` (see
        :func:`messages_of`) instead of a JSON ``record`` string.

    Examples
    --------
    >>> import numpy as np
    >>> conv = BatchConverter(ConvertOptions(to="swift", grid=2))
    >>> m = np.zeros((4, 4), bool); m[:2] = True
    >>> out = conv({"mask": [m], "label": ["sky"], "image": ["a.jpg"], "id": ["0"]})
    >>> out["error"]
    ['']
    >>> print(json.loads(out["record"][0])["response"].split("\\n", 1)[1])
    <seg>sky *2
     others *2
    </seg>
    """

    options: ConvertOptions = field(default_factory=ConvertOptions)
    mask: str = "mask"
    label: str = "label"
    image: str = "image"
    id: str = "id"
    height: str = "height"
    width: str = "width"
    structured: bool = False

    def sample(self, row: Mapping) -> Sample:
        """The :class:`Sample` of one row."""
        m = row[self.mask]
        key = str(row[self.id]) if self.id in row else f"{row.get(self.image, '')}#{row[self.label]}"
        if isinstance(m, Mapping) and "counts" in m:
            size = tuple(int(v) for v in m["size"])
            target = CocoTarget((dict(m),), size)
        elif (
            isinstance(m, (list, tuple))
            and m
            and isinstance(m[0], (list, tuple, np.ndarray))
            and np.asarray(m[0]).ndim == 1
            and self.height in row
        ):
            size = (int(row[self.height]), int(row[self.width]))
            target = CocoTarget((tuple(list(map(float, p)) for p in m),), size)
        else:
            arr = np.asarray(m)
            if arr.dtype == object:  # Arrow hands nested lists back as arrays of arrays
                arr = np.stack([np.asarray(r) for r in arr])
            target = ArrayTarget(arr)
        return Sample(key, str(row.get(self.image, "")), str(row[self.label]), target)

    def __call__(self, batch: Mapping) -> dict:
        columns = list(batch)
        n = len(batch[self.label])
        _, count = _token_counter(self.options.format)
        out = {c: [] for c in (STRUCTURED_COLUMNS if self.structured else OUTPUT_COLUMNS)}
        for i in range(n):
            row = {c: _plain(batch[c][i]) for c in columns}
            key = str(row[self.id]) if self.id in row else str(i)
            try:
                s = self.sample(row)
                rec, seg = _record(s, self.options)
            except (MaskcodecError, TypeError, ValueError, KeyError) as exc:
                out["id"].append(key)
                if self.structured:
                    out["messages"].append([])
                    out["images"].append([])
                else:
                    out["record"].append("")
                out["tokens"].append(0)
                out["error"].append(f"{type(exc).__name__}: {exc}")
                continue
            out["id"].append(s.id)
            if self.structured:
                msgs, images = messages_of(rec)
                out["messages"].append(msgs)
                out["images"].append(images)
            else:
                out["record"].append(json.dumps(rec, ensure_ascii=False))
            out["tokens"].append(int(count(seg)))
            out["error"].append("")
        return out


def _plain(value):
    """Arrow/numpy scalars and 0-d arrays -> Python values; dicts and arrays pass through."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    return value


def hf_convert(
    dataset,
    /,
    *,
    options: ConvertOptions | None = None,
    num_proc: int | None = None,
    batch_size: int = 256,
    structured: bool = False,
    **columns,
):
    """Convert a ``datasets.Dataset`` with ``Dataset.map(batched=True, num_proc=...)``.

    Returns a dataset with the columns ``id``, ``record``, ``tokens``,
    ``error`` (the input columns are dropped).  Write it with e.g.
    ``ds.filter(lambda r: not r["error"])`` and one ``record`` per line.
    With ``structured=True`` the columns are ``id``, ``messages`` (a list of
    ``{"role", "content"}``), ``images`` (a list of paths), ``tokens`` and
    ``error``: ready for ``save_to_disk`` / ``push_to_hub`` (see
    :func:`to_hf_dataset` to embed the images).  ``columns`` renames the input
    columns (``mask=``, ``label=``, ...; see :class:`BatchConverter`).
    """
    fn = BatchConverter(options or ConvertOptions(), structured=structured, **columns)
    return dataset.map(
        fn,
        batched=True,
        batch_size=batch_size,
        num_proc=num_proc,
        remove_columns=list(dataset.column_names),
        desc="maskcodec convert",
    )


def ray_convert(
    dataset,
    /,
    *,
    options: ConvertOptions | None = None,
    batch_size: int = 256,
    concurrency: int | None = None,
    **columns,
):
    """Convert a ``ray.data.Dataset`` with ``map_batches``; returns the lazy output dataset.

    Each batch arrives as a dict of numpy arrays (``batch_format="numpy"``) and
    leaves as the four output columns.  ``concurrency`` caps the parallel tasks.
    """
    fn = BatchConverter(options or ConvertOptions(), **columns)
    kw = {} if concurrency is None else {"concurrency": concurrency}
    return dataset.map_batches(fn, batch_size=batch_size, batch_format="numpy", **kw)


def _read_records(records):
    """Records from a path (JSONL or a JSON array) or an iterable of dicts."""
    import os

    if isinstance(records, (str, os.PathLike)):
        with open(records, encoding="utf-8") as fh:
            text = fh.read()
        if text.lstrip().startswith("["):
            return json.loads(text)
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return list(records)


def to_hf_dataset(records, /, *, image_root: str = "", embed_images: bool = False):
    """A ``datasets.Dataset`` of conversation records with structured columns.

    Columns: ``id``, ``messages`` (``[{"role", "content"}]``, ``"<image>"`` in
    the user turn) and ``images`` (a list of paths under ``image_root``; with
    ``embed_images=True`` cast to ``datasets.Image`` so that ``save_to_disk`` /
    ``push_to_hub`` carry the image bytes).  ``records`` is a file written by
    ``maskcodec convert`` (JSONL or a JSON array) or an iterable of records in
    any of its formats.
    """
    import os

    import datasets

    rows = {"id": [], "messages": [], "images": []}
    for i, rec in enumerate(_read_records(records)):
        msgs, images = messages_of(rec)
        rows["id"].append(str(rec.get("id", i)))
        rows["messages"].append(msgs)
        rows["images"].append([os.path.join(image_root, p) if image_root else p for p in images])
    features = datasets.Features({
        "id": datasets.Value("string"),
        "messages": [{"role": datasets.Value("string"), "content": datasets.Value("string")}],
        "images": [datasets.Image() if embed_images else datasets.Value("string")],
    })
    return datasets.Dataset.from_dict(rows, features=features)
