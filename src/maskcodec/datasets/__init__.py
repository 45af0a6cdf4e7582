"""Datasets -> instruction-tuning data: readers, conversation writers, the convert pipeline.

Read a dataset in its published layout, then write conversation JSONL for a
trainer::

    from maskcodec.datasets import read_refer, convert
    src = read_refer("data/refer", "refcoco", split_by="unc", split="train", image_root="coco/train2014")
    summary = convert(src, "refcoco_train.jsonl", to="llava", grid=16, workers=4)
    print(summary.to_text())

Scale-out helpers for Hugging Face ``datasets`` and Ray Data live in
:mod:`maskcodec.datasets.scale` (those packages are imported only there).
"""

from ._sample import ArrayTarget, CocoMapTarget, CocoTarget, DatasetError, PngTarget, Problem, Sample
from .pipeline import ConvertOptions, ConvertSummary, convert, convert_sample, count_pieces
from .readers import (
    Source,
    check_images,
    open_source,
    read_coco,
    read_coco_results,
    read_grefcoco,
    read_names,
    read_refer,
    read_semantic,
)
from .templates import DEFAULT_TEMPLATES, Templates, load_templates
from .writers import FORMATS, answer_of, make_record

__all__ = [
    "DEFAULT_TEMPLATES",
    "FORMATS",
    "ArrayTarget",
    "CocoMapTarget",
    "CocoTarget",
    "ConvertOptions",
    "ConvertSummary",
    "DatasetError",
    "PngTarget",
    "Problem",
    "Sample",
    "Source",
    "Templates",
    "answer_of",
    "check_images",
    "convert",
    "convert_sample",
    "count_pieces",
    "load_templates",
    "make_record",
    "open_source",
    "read_coco",
    "read_coco_results",
    "read_grefcoco",
    "read_names",
    "read_refer",
    "read_semantic",
]
