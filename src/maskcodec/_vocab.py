"""Tokenizer vocabularies as byte strings, whatever the tokenizer library.

:func:`token_bytes` turns a tokenizer into one ``bytes`` per token id: the
exact bytes the token adds to the decoded text (``None`` for special and
control tokens, which never stand for text).  Supported, by duck typing, with
no import of any of these libraries:

* Hugging Face ``transformers`` tokenizers (slow or fast) and raw
  ``tokenizers.Tokenizer`` objects, SentencePiece style (``▁`` for a space,
  ``<0xNN>`` byte-fallback pieces) or byte-level BPE (GPT-2/Qwen style, each
  byte spelled as one printable character);
* ``sentencepiece.SentencePieceProcessor``;
* ``tiktoken.Encoding`` (including the Mistral tekken vocabulary through
  :func:`load_tekken`).

SentencePiece decoders drop the space of a ``▁`` that opens the *whole*
decoded text; inside a generated continuation a ``▁`` is always a space, which
is what this module reports.
"""

from __future__ import annotations

import base64
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Vocab", "load_tekken", "token_bytes", "vocab_of"]

_BYTE_PIECE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
_EOS_NAMES = ("</s>", "<|endoftext|>", "<|im_end|>", "<|eot_id|>", "<|end_of_text|>", "<eos>")


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """The inverse of GPT-2's bytes -> printable characters table."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = list(keep)
    n = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(keep, chars)}


@dataclass(frozen=True)
class Vocab:
    """A vocabulary as bytes: ``pieces[i]`` is token ``i``'s text (None: special)."""

    pieces: tuple[bytes | None, ...]
    eos_ids: tuple[int, ...]
    kind: str  # "sentencepiece", "byte-level" or "tiktoken"

    @property
    def size(self) -> int:
        return len(self.pieces)


def _sp_piece(piece: str, byte_fallback: bool) -> bytes:
    m = _BYTE_PIECE.match(piece) if byte_fallback else None
    if m:
        return bytes([int(m.group(1), 16)])
    return piece.replace("\u2581", " ").encode("utf-8")


def _bl_piece(piece: str) -> bytes:
    table = _byte_decoder()
    try:
        return bytes(table[c] for c in piece)
    except KeyError:  # an added token written as plain text
        return piece.encode("utf-8")


def _decoder_kind(spec: dict | None, pieces: list[str | None]) -> str:
    """'byte-level' or 'sentencepiece', from a tokenizers JSON decoder spec, else the pieces."""
    text = json.dumps(spec) if spec else ""
    if "ByteLevel" in text:
        return "byte-level"
    if "ByteFallback" in text or "Metaspace" in text or "\u2581" in text:
        return "sentencepiece"
    sample = [p for p in pieces[:5000] if p]
    if any("\u2581" in p for p in sample):
        return "sentencepiece"
    if any(("\u0120" in p or "\u010a" in p) for p in sample):
        return "byte-level"
    return "sentencepiece"


def _from_tokenizers(pieces, specials, added_plain, spec, eos) -> Vocab:
    kind = _decoder_kind(spec, pieces)
    byte_fallback = kind == "sentencepiece"
    out: list[bytes | None] = []
    for i, p in enumerate(pieces):
        if p is None or i in specials:
            out.append(None)
        elif i in added_plain:
            out.append(p.encode("utf-8"))
        elif kind == "byte-level":
            out.append(_bl_piece(p))
        else:
            out.append(_sp_piece(p, byte_fallback))
    return Vocab(tuple(out), eos, kind)


def vocab_of(tokenizer) -> Vocab:
    """Read any supported tokenizer into a :class:`Vocab` (see the module docstring)."""
    # tiktoken.Encoding
    if hasattr(tokenizer, "decode_single_token_bytes") and hasattr(tokenizer, "n_vocab"):
        special = dict(getattr(tokenizer, "_special_tokens", {}) or {})
        special_ids = set(special.values())
        pieces = []
        for i in range(tokenizer.n_vocab):
            if i in special_ids:
                pieces.append(None)
                continue
            try:
                pieces.append(tokenizer.decode_single_token_bytes(i))
            except KeyError:
                pieces.append(None)
        eos = tuple(special[n] for n in _EOS_NAMES if n in special)
        return Vocab(tuple(pieces), eos, "tiktoken")
    # sentencepiece.SentencePieceProcessor
    if hasattr(tokenizer, "id_to_piece") and hasattr(tokenizer, "is_byte"):
        pieces = []
        for i in range(tokenizer.get_piece_size()):
            if tokenizer.is_control(i) or tokenizer.is_unknown(i):
                pieces.append(None)
            elif tokenizer.is_byte(i):
                pieces.append(_sp_piece(tokenizer.id_to_piece(i), True))
            else:
                pieces.append(tokenizer.id_to_piece(i).replace("\u2581", " ").encode("utf-8"))
        eos_id = tokenizer.eos_id()
        return Vocab(tuple(pieces), (eos_id,) if eos_id >= 0 else (), "sentencepiece")
    # transformers tokenizers
    if hasattr(tokenizer, "convert_ids_to_tokens"):
        n = len(tokenizer)
        pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
        specials = set(getattr(tokenizer, "all_special_ids", ()) or ())
        added_plain = set()
        for i, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
            if getattr(tok, "special", True):
                specials.add(int(i))
            else:
                added_plain.add(int(i))
        if getattr(tokenizer, "unk_token_id", None) is not None:
            specials.add(tokenizer.unk_token_id)
        spec = None
        backend = getattr(tokenizer, "backend_tokenizer", None)
        if backend is not None:
            spec = json.loads(backend.to_str()).get("decoder")
        elif hasattr(tokenizer, "sp_model"):
            spec = {"type": "ByteFallback"}
        eos = (tokenizer.eos_token_id,) if getattr(tokenizer, "eos_token_id", None) is not None else ()
        return _from_tokenizers(pieces, specials, added_plain, spec, eos)
    # tokenizers.Tokenizer
    if hasattr(tokenizer, "id_to_token") and hasattr(tokenizer, "get_vocab_size"):
        n = tokenizer.get_vocab_size(with_added_tokens=True)
        pieces = [tokenizer.id_to_token(i) for i in range(n)]
        spec = json.loads(tokenizer.to_str())
        specials, added_plain = set(), set()
        for tok in spec.get("added_tokens", []):
            (specials if tok.get("special") else added_plain).add(tok["id"])
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        eos = tuple(vocab[n] for n in _EOS_NAMES if n in vocab)
        return _from_tokenizers(pieces, specials, added_plain, spec.get("decoder"), eos)
    raise TypeError(
        "unsupported tokenizer: expected a transformers tokenizer, a tokenizers.Tokenizer, a "
        f"sentencepiece.SentencePieceProcessor or a tiktoken.Encoding, got {type(tokenizer).__name__}"
    )


def token_bytes(tokenizer) -> list[bytes | None]:
    """One ``bytes`` per token id (None for special tokens).

    Examples
    --------
    >>> class Toy:  # anything shaped like sentencepiece.SentencePieceProcessor
    ...     pieces = ["<unk>", "<0x0A>", "\u2581cat", "s"]
    ...     def get_piece_size(self): return 4
    ...     def id_to_piece(self, i): return self.pieces[i]
    ...     def is_byte(self, i): return i == 1
    ...     def is_control(self, i): return False
    ...     def is_unknown(self, i): return i == 0
    ...     def eos_id(self): return -1
    >>> token_bytes(Toy())
    [None, b'\\n', b' cat', b's']
    """
    return list(vocab_of(tokenizer).pieces)


def load_tekken(path: str | Path, *, num_special: int | None = None):
    """Load a Mistral ``tekken_*.json`` vocabulary as a ``tiktoken.Encoding``.

    Token ids match Mistral's: ids below ``num_special`` (1000 by default, from
    the file's config) are special tokens (``<unk>`` 0, ``<s>`` 1, ``</s>`` 2,
    the rest ``<SPECIAL_i>``); ordinary token ``rank`` has id ``rank + num_special``,
    up to the file's default vocabulary size.
    """
    import tiktoken

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    config = data["config"]
    n_special = int(num_special if num_special is not None else config.get("default_num_special_tokens", 1000))
    vocab_size = int(config.get("default_vocab_size", len(data["vocab"]) + n_special))
    inner = vocab_size - n_special
    ranks = {base64.b64decode(t["token_bytes"]): t["rank"] + n_special for t in data["vocab"][:inner]}
    names = {0: "<unk>", 1: "<s>", 2: "</s>"}
    special = {}
    for entry in data.get("special_tokens", []):
        names[int(entry["rank"])] = entry["token_str"]
    for i in range(n_special):
        special[names.get(i, f"<SPECIAL_{i}>")] = i
    return tiktoken.Encoding(
        name=f"tekken-{Path(path).stem}",
        pat_str=config["pattern"],
        mergeable_ranks=ranks,
        special_tokens=special,
        explicit_n_vocab=vocab_size,
    )
