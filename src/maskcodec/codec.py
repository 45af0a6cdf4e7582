"""A codec configuration that persists: :class:`Codec`.

The functions (:func:`~maskcodec.encode_mask`, :func:`~maskcodec.decode_mask`,
:func:`~maskcodec.parse`) are the primitives.  A :class:`Codec` only bundles
their options so that a dataset, a training run and an evaluation can share
one configuration, store it (``get_config``), restore it (``from_config``) and
ship it to worker processes (it pickles).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._errors import InputError
from ._labels import check_label
from ._parser import _MODES, ParseResult, decode_mask, parse
from .grid import LabelGrid
from .quantize import _METHODS, as_grid
from .text import FORMATS, encode_grid, encode_mask, to_text

__all__ = ["Codec"]

_CODEC_ID = "maskcodec.text4seg"


_FIELDS = ("grid", "method", "format", "background", "envelope", "threshold", "nonempty", "mode")


class Codec:
    """One text-format configuration: how masks become text and text becomes masks.

    The defaults are the Text4Seg pipeline (16x16, Pillow NEAREST, R-RLE,
    ``others``, ``<seg>`` envelope); ``mode`` is how :meth:`decode` and
    :meth:`parse` read text (``"repair"`` for model output).

    Examples
    --------
    >>> import numpy as np
    >>> codec = Codec(grid=4)
    >>> m = np.zeros((8, 8), dtype=bool); m[2:6, 2:6] = True
    >>> text = codec.encode(m, "dog")
    >>> bool((codec.decode(text, (8, 8)) == m).all())
    True
    >>> Codec.from_config(codec.get_config()) == codec
    True
    >>> codec
    Codec(grid=(4, 4), method='nearest', format='rrle', background='others', envelope=True, threshold=0.5, nonempty=False, mode='repair')
    """

    # Written by hand rather than as a dataclass: importing dataclasses costs
    # about 15 ms, a sixth of the import budget of the whole package.
    __slots__ = _FIELDS

    def __init__(
        self,
        grid: int | tuple[int, int] = (16, 16),
        method: str = "nearest",
        format: str = "rrle",
        background: str = "others",
        envelope: bool = True,
        threshold: float = 0.5,
        nonempty: bool = False,
        mode: str = "repair",
    ) -> None:
        if method not in _METHODS:
            raise InputError(f"unknown method {method!r}; choose one of {', '.join(_METHODS)}")
        if format not in FORMATS:
            raise InputError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
        if mode not in _MODES:
            raise InputError(f"unknown mode {mode!r}; choose one of {', '.join(_MODES)}")
        check_label(background)
        if not (isinstance(threshold, (int, float)) and 0.0 < threshold <= 1.0):
            raise InputError(f"threshold must be in (0, 1], got {threshold!r}")
        values = (as_grid(grid), method, format, background, bool(envelope), threshold, bool(nonempty), mode)
        for name, value in zip(_FIELDS, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"Codec is immutable; use Codec(**{{**codec.get_config(), {name!r}: ...}})")

    def _key(self) -> tuple:
        return tuple(getattr(self, name) for name in _FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Codec):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in _FIELDS)
        return f"Codec({inner})"

    def __reduce__(self):
        return (Codec, self._key())

    # ------------------------------------------------------------------ encode
    def _quant_options(self) -> dict[str, Any]:
        return dict(
            grid=self.grid,
            method=self.method,
            background=self.background,
            threshold=self.threshold,
            nonempty=self.nonempty,
        )

    def encode(self, mask, labels) -> str:
        """Mask (binary with a str label, or label map with names) -> text."""
        return encode_mask(mask, labels, format=self.format, envelope=self.envelope, **self._quant_options())

    def encode_grid(self, mask, labels) -> LabelGrid:
        """Mask -> :class:`LabelGrid` with this configuration's quantization."""
        return encode_grid(mask, labels, **self._quant_options())

    def to_text(self, grid: LabelGrid) -> str:
        """Write a grid in this configuration's format."""
        return to_text(grid, format=self.format, envelope=self.envelope)

    # ------------------------------------------------------------------ decode
    def parse(self, text: str, /, **options) -> ParseResult:
        """Parse text with this configuration (options override, e.g. ``labels=``)."""
        kw = dict(grid=self.grid, mode=self.mode, format=self.format, envelope=self.envelope,
                  background=self.background)
        kw.update(options)
        return parse(text, **kw)

    def decode(self, text: str, size, /, **options) -> np.ndarray:
        """Text -> boolean foreground mask of ``size = (height, width)``."""
        kw = dict(grid=self.grid, mode=self.mode, format=self.format, envelope=self.envelope,
                  background=self.background)
        kw.update(options)
        return decode_mask(text, size=size, **kw)

    # ------------------------------------------------------------------ config
    def get_config(self) -> dict[str, Any]:
        """A JSON-serialisable dict that :meth:`from_config` turns back into an equal codec."""
        config = {name: getattr(self, name) for name in _FIELDS}
        config["grid"] = list(self.grid)
        return {"id": _CODEC_ID, **config}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Codec:
        """Build a codec from :meth:`get_config` output."""
        config = dict(config)
        ident = config.pop("id", _CODEC_ID)
        if ident != _CODEC_ID:
            raise InputError(f"config id {ident!r} is not {_CODEC_ID!r}")
        known = set(_FIELDS)
        unknown = set(config) - known
        if unknown:
            raise InputError(f"unknown codec option(s) {sorted(unknown)}; known: {sorted(known)}")
        if "grid" in config and isinstance(config["grid"], list):
            config["grid"] = tuple(config["grid"])
        return cls(**config)
