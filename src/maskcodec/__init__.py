"""maskcodec: segmentation masks <-> Text4Seg text, exactly, fast and safely.

Public API (everything else lives in ``_``-prefixed modules or submodules)::

    quantize(mask, grid=16, method="nearest")        mask -> (rows, cols) grid
    encode_mask(mask, labels, grid=16, ...)          mask -> answer text
    decode_mask(text, size=(h, w), mode="repair")    answer text -> bool mask
    encode_masks(masks, labels, threads=1)           many masks -> texts, one kernel call per chunk
    decode_masks(texts, size=..., threads=1)         many answers -> (n, h, w) masks or a list
    LabelGrid(ids, labels)                           a decoded grid, .render(), .to_text()
    to_text(grid) / from_text(text)                  multi-class text <-> LabelGrid
    parse(text, mode=...) / parse_all(text)          ParseResult with repairs and position

Submodules, imported on first use (``import maskcodec.coco`` or ``maskcodec.coco``)::

    coco      COCO RLE dicts and polygons <-> grids, masks and text (pycocotools-exact)
"""

from ._batch import decode_masks, encode_masks
from ._errors import InputError, LabelError, MaskcodecError, ParseError
from ._labels import check_label, is_safe_label, safe_label
from ._parser import ParseResult, Repair, decode_mask, from_text, parse, parse_all
from .codec import Codec
from .grid import MAX_PIXELS, LabelGrid, render
from .quantize import MAX_GRID_SIDE, quantize
from .text import encode_grid, encode_mask, to_text

__version__ = "0.1.0"

__all__ = [
    "Codec",
    "InputError",
    "LabelError",
    "LabelGrid",
    "MAX_GRID_SIDE",
    "MAX_PIXELS",
    "MaskcodecError",
    "ParseError",
    "ParseResult",
    "Repair",
    "__version__",
    "check_label",
    "decode_mask",
    "decode_masks",
    "encode_grid",
    "encode_mask",
    "encode_masks",
    "from_text",
    "is_safe_label",
    "parse",
    "parse_all",
    "quantize",
    "render",
    "safe_label",
    "to_text",
]

# Submodules with optional or heavier dependencies load on first attribute access,
# so ``import maskcodec`` stays cheap.
_LAZY_SUBMODULES = frozenset({"coco"})


def __getattr__(name: str):
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
