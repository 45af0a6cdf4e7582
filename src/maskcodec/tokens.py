"""Token accounting: exact counts with real tokenizers, an estimate without one, and a grid planner.

What a text costs
-----------------
The tokenizers measured here (LLaMA-style SentencePiece with 32k pieces and
tiktoken-style byte-level BPE: Mistral's tekken with 131k tokens) cut
Text4Seg text along the same lines, so one cost model serves both families:

==========================  =======================================================
piece of text               tokens
==========================  =======================================================
a label (``others``, ...)   its own cost, written after a space (``"▁dog"`` / ``" dog"``)
``" *"``                    1
each digit of a count       1 (both families split digits)
``"| "`` between runs       1 (``"|"``; the space belongs to the next label)
``"\\n "`` / final ``"\\n"``  1 (the space belongs to the next label)
``<seg>`` ... ``</seg>``    3 + 3 (``"<"``, ``"seg"``, ``">"`` and ``"</"``, ``"seg"``, ``">"``)
==========================  =======================================================

So an empty 16x16 R-RLE body is 16 rows of ``others *16`` at 4 tokens plus
1 for the newline, 80 tokens, and a 16x16 full-descriptor body of ``others``
is 256 x 2 = 512 tokens.

The cost of a label is the one number a tokenizer is needed for.
:func:`estimate_tokens` takes it from ``label_tokens`` when given (see
:func:`label_tokens`, which measures it once per label with a real
tokenizer); otherwise it guesses it from the characters by the family rule
below.  The rule was fitted on the 225 distinct words of the COCO and ADE20K
class names; it is right for common short words and rough for rare ones.

===================  ==========================  ==========================
label piece          ``"sentencepiece"``         ``"bpe"``
===================  ==========================  ==========================
ASCII word, n chars  1 if n <= 6, else           1 if n <= 8, else
                     1 + ceil((n - 6) / 3)       1 + ceil((n - 8) / 4)
each digit           1                           1
other ASCII char     1                           1
non-ASCII char       2                           1
===================  ==========================  ==========================
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ._errors import InputError
from ._labels import check_label
from .grid import LabelGrid, render
from .quantize import Method, as_grid, quantize
from .text import Format, format_code

__all__ = [
    "FAMILIES",
    "GridPlan",
    "count_tokens",
    "estimate_tokens",
    "guess_label_tokens",
    "label_tokens",
    "load_tokenizer",
    "plan_grid",
]

Family = Literal["sentencepiece", "bpe"]

#: Tokenizer families the estimator knows.
FAMILIES: tuple[str, ...] = ("sentencepiece", "bpe")

# Per family: words up to `short` letters cost 1, every further `step` letters 1 more;
# a non-ASCII character costs `wide`.  Fitted on the COCO + ADE20K class-name words
# (mean absolute error 0.32 tokens per word for the 32k SentencePiece vocabulary,
# 0.25 for tekken's 131k BPE vocabulary).
_RULES = {"sentencepiece": (6, 3, 2), "bpe": (8, 4, 1)}
# "<seg>" and "</seg>" are three tokens each in both families.
_ENVELOPE_TOKENS = 6
_PIECE_RE = re.compile(r"[A-Za-z]+|[^\sA-Za-z]")

_ACCEPTED = (
    "a Hugging Face tokenizer (transformers or tokenizers.Tokenizer), a "
    "sentencepiece.SentencePieceProcessor, a tiktoken Encoding, a mistral-common "
    "tokenizer, or a callable text -> token ids"
)


# --------------------------------------------------------------------------- exact counts


def _module(obj: object) -> str:
    return type(obj).__module__.split(".")[0]


def _mistral_inner(tok: object) -> object:
    """Unwrap ``MistralTokenizer`` -> its raw tokenizer (which has ``encode(s, bos, eos)``)."""
    inner = getattr(getattr(tok, "instruct_tokenizer", None), "tokenizer", None)
    return inner if inner is not None else tok


def _encoder(tokenizer: object) -> Callable[[str], Sequence[int]]:
    """A function text -> token ids (no special tokens added) for any supported tokenizer."""
    mod = _module(tokenizer)
    if mod == "mistral_common":
        raw = _mistral_inner(tokenizer)
        return lambda s: raw.encode(s, bos=False, eos=False)
    if mod == "tiktoken" or hasattr(tokenizer, "encode_ordinary"):
        # Special-token strings inside a label count as plain text.
        return tokenizer.encode_ordinary
    if mod == "sentencepiece" or hasattr(tokenizer, "EncodeAsIds"):
        return lambda s: tokenizer.encode(s, out_type=int, add_bos=False, add_eos=False)
    if mod == "transformers" or hasattr(tokenizer, "convert_tokens_to_ids"):
        return lambda s: tokenizer.encode(s, add_special_tokens=False)
    if mod == "tokenizers" or (hasattr(tokenizer, "encode") and hasattr(tokenizer, "get_vocab_size")):
        return lambda s: tokenizer.encode(s, add_special_tokens=False).ids
    if callable(tokenizer) and not isinstance(tokenizer, type):
        return tokenizer  # type: ignore[return-value]
    raise TypeError(f"count_tokens needs {_ACCEPTED}; got {type(tokenizer).__name__}")


def count_tokens(text: str, tokenizer: object) -> int:
    """Number of tokens ``tokenizer`` cuts ``text`` into, without special tokens.

    The tokenizer is recognised by what it is, without importing any
    tokenizer library:

    * ``transformers`` tokenizers: ``encode(text, add_special_tokens=False)``;
    * ``tokenizers.Tokenizer``: ``encode(text, add_special_tokens=False).ids``;
    * ``sentencepiece.SentencePieceProcessor``: ``encode(text)`` without BOS/EOS;
    * a tiktoken ``Encoding``: ``encode_ordinary(text)`` (special-token
      strings count as plain text);
    * mistral-common tokenizers (``Tekkenizer``, ``SentencePieceTokenizer``,
      ``MistralTokenizer``): ``encode(text, bos=False, eos=False)``;
    * any other callable: ``tokenizer(text)`` returning the token ids (or an int).

    Examples
    --------
    >>> count_tokens("others *16\\n", lambda s: s.split())
    2
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    ids = _encoder(tokenizer)(text)
    if isinstance(ids, (int, np.integer)) and not isinstance(ids, bool):
        return int(ids)
    ids = getattr(ids, "input_ids", ids)  # a BatchEncoding from a callable HF tokenizer
    try:
        return len(ids)
    except TypeError:
        raise TypeError(
            f"the tokenizer returned {type(ids).__name__}, not a sequence of token ids; "
            f"count_tokens needs {_ACCEPTED}"
        ) from None


def _load_tekken_tiktoken(data: dict, path: str):
    """A tiktoken ``Encoding`` from a tekken JSON (base64 token bytes + a split pattern)."""
    try:
        import tiktoken
    except ImportError:
        raise InputError(
            f"{path}: a tekken tokenizer needs mistral-common or tiktoken: pip install tiktoken"
        ) from None
    try:
        config = data["config"]
        n_regular = int(config["default_vocab_size"]) - int(config["default_num_special_tokens"])
        ranks = {base64.b64decode(v["token_bytes"]): int(v["rank"]) for v in data["vocab"][:n_regular]}
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: a malformed tekken tokenizer ({type(exc).__name__}: {exc})") from None
    if len(ranks) != n_regular:
        raise InputError(f"{path}: the tekken vocabulary has duplicate or missing tokens")
    name = os.path.basename(path).removesuffix(".json")
    # Special tokens occupy ids below the regular ones and are never produced from text.
    return tiktoken.Encoding(name=name, pat_str=config["pattern"], mergeable_ranks=ranks, special_tokens={})


def _is_tekken(data: object) -> bool:
    return (
        isinstance(data, dict)
        and isinstance(data.get("config"), dict)
        and "pattern" in data["config"]
        and isinstance(data.get("vocab"), list)
    )


def load_tokenizer(path: str | os.PathLike, *, use_mistral_common: bool | None = None) -> object:
    """Load a tokenizer from a local file or folder, for :func:`count_tokens`.

    * a SentencePiece model (``*.model``, ``tokenizer.model.v1``, ...):
      ``sentencepiece.SentencePieceProcessor``;
    * a tekken JSON (``tekken_*.json``: base64 token bytes and a split
      pattern): mistral-common's ``Tekkenizer`` when installed (or when
      ``use_mistral_common=True``), otherwise a tiktoken ``Encoding`` built
      from the file (``use_mistral_common=False`` forces this);
    * a Hugging Face ``tokenizer.json``: ``tokenizers.Tokenizer``;
    * a folder: ``transformers.AutoTokenizer`` (local files only), or the
      ``tokenizer.json`` / ``tokenizer.model`` inside it.

    Raises
    ------
    InputError
        The file is missing, of an unknown kind, or needs a package that is
        not installed (the message names it).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            for name in ("tokenizer.json", "tokenizer.model"):
                if os.path.exists(os.path.join(path, name)):
                    return load_tokenizer(os.path.join(path, name))
            raise InputError(f"{path}: a tokenizer folder needs transformers (or a tokenizer.json in it)")
        return AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not os.path.exists(path):
        raise InputError(f"{path}: no such tokenizer file")
    with open(path, "rb") as fh:
        head = fh.read(64)
    if head.lstrip()[:1] == b"{":
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not a readable tokenizer JSON ({exc})") from None
        if _is_tekken(data):
            if use_mistral_common is not False:
                try:
                    from mistral_common.tokens.tokenizers.tekken import Tekkenizer
                except ImportError:
                    if use_mistral_common:
                        raise InputError(
                            f"{path}: use_mistral_common=True but mistral-common is not installed"
                        ) from None
                else:
                    return Tekkenizer.from_file(path)
            return _load_tekken_tiktoken(data, path)
        if isinstance(data, dict) and "model" in data:
            try:
                from tokenizers import Tokenizer
            except ImportError:
                raise InputError(f"{path}: a tokenizer.json needs the tokenizers package") from None
            return Tokenizer.from_file(path)
        raise InputError(f"{path}: a JSON file that is neither a tekken nor a Hugging Face tokenizer")
    try:
        import sentencepiece
    except ImportError:
        raise InputError(f"{path}: a SentencePiece model needs the sentencepiece package") from None
    try:
        return sentencepiece.SentencePieceProcessor(model_file=path)
    except (RuntimeError, OSError) as exc:
        raise InputError(
            f"{path}: not a SentencePiece model, a tekken JSON or a tokenizer.json ({exc})"
        ) from None


def label_tokens(labels: Iterable[str], tokenizer: object) -> dict[str, int]:
    """Measure what each label costs inside a run, once, with a real tokenizer.

    The cost is the difference between the token counts of ``"x *1| LABEL
    *1\\n"`` and ``"x *1| *1\\n"``: the label as it appears after ``"| "`` or
    at the start of a row.  Pass the result as ``label_tokens=`` to
    :func:`estimate_tokens` or :func:`plan_grid` to estimate many grids fast.

    Examples
    --------
    >>> label_tokens(["others", "white horse"], lambda s: s.split())
    {'others': 1, 'white horse': 2}
    """
    base = count_tokens("x *1| *1\n", tokenizer)
    out: dict[str, int] = {}
    for lab in labels:
        check_label(lab)
        if lab not in out:
            out[lab] = max(0, count_tokens(f"x *1| {lab} *1\n", tokenizer) - base)
    return out


# --------------------------------------------------------------------------- estimate


def _family(family: str) -> tuple[int, int, int]:
    try:
        return _RULES[family]
    except (KeyError, TypeError):
        raise InputError(
            f"unknown tokenizer family {family!r}; choose one of {', '.join(FAMILIES)}"
        ) from None


def guess_label_tokens(label: str, family: Family = "sentencepiece") -> int:
    """Guess what ``label`` costs from its characters, by the family rule (module docs).

    Examples
    --------
    >>> guess_label_tokens("others"), guess_label_tokens("white horse")
    (1, 2)
    >>> guess_label_tokens("person 12"), guess_label_tokens("refrigerator", "bpe")
    (3, 2)
    """
    short, step, wide = _family(family)
    total = 0
    for piece in _PIECE_RE.findall(label):
        n = len(piece)
        if piece.isascii() and piece.isalpha():
            total += 1 if n <= short else 1 + -(-(n - short) // step)
        else:
            total += 1 if piece.isascii() else wide
    return max(total, 1)


def _run_structure(ids: np.ndarray, fmt: int):
    """(label id of each run, length of each run) in writing order."""
    if fmt == 0:  # rrle: runs restart at each row
        rows, cols = ids.shape
        change = np.ones(ids.shape, dtype=bool)
        change[:, 1:] = ids[:, 1:] != ids[:, :-1]
        flat = change.ravel()
    else:
        flat_ids = ids.ravel()
        flat = np.ones(flat_ids.size, dtype=bool)
        flat[1:] = flat_ids[1:] != flat_ids[:-1]
    starts = np.flatnonzero(flat)
    lengths = np.diff(np.append(starts, ids.size))
    return ids.ravel()[starts], lengths


def _digits(n: np.ndarray) -> int:
    """Total decimal digits of the counts (a count is at most 1024 * 1024: 7 digits)."""
    return int(n.size + sum(np.count_nonzero(n >= 10**k) for k in range(1, 8)))


def _estimate_ids(ids: np.ndarray, costs: np.ndarray, fmt: int, envelope: bool) -> int:
    """Estimated tokens of the text of ``ids`` given each label id's cost."""
    extra = _ENVELOPE_TOKENS if envelope else 0
    if fmt == 2:  # full: every cell's label, then "|" or the final "\n"
        per_label = np.bincount(ids.ravel(), minlength=costs.size)
        return int(per_label @ costs) + ids.size + extra
    run_ids, lengths = _run_structure(ids, fmt)
    body = int(costs[run_ids].sum()) + run_ids.size + _digits(lengths)  # label, " *", digits
    # Separators: R-RLE has (runs - rows) "|" and rows "\n"; I-RLE (runs - 1) "|" and one "\n".
    return body + run_ids.size + extra


def _costs(labels: Sequence[str], family: str, given: Mapping[str, int] | None) -> np.ndarray:
    return np.array(
        [given[lab] if given is not None and lab in given else guess_label_tokens(lab, family)  # type: ignore
         for lab in labels],
        dtype=np.int64,
    )


def estimate_tokens(
    grid: LabelGrid,
    /,
    *,
    family: Family = "sentencepiece",
    format: Format = "rrle",
    envelope: bool = True,
    label_tokens: Mapping[str, int] | None = None,
) -> int:
    """Estimate the tokens of ``to_text(grid, format=format, envelope=envelope)`` without a tokenizer.

    Parameters
    ----------
    grid : LabelGrid
        The grid to be written.
    family : {"sentencepiece", "bpe"}
        LLaMA-style SentencePiece (32k pieces) or tiktoken-style byte-level BPE
        (tekken, Qwen); only the guess of a label's cost depends on it.
    format, envelope
        As for :func:`maskcodec.to_text`.
    label_tokens : mapping, optional
        The exact cost of some labels (from :func:`label_tokens`); the others
        are guessed from their characters (module documentation).

    Notes
    -----
    The structure (``" *"``, digits, separators, envelope) is counted
    exactly; the whole error comes from label costs.  On the 734 shared COCO
    masks with COCO class names the estimate is within 3% of the exact count
    for both families (``docs/tokens.md`` has the measured errors).

    Examples
    --------
    >>> import numpy as np
    >>> empty = LabelGrid(np.zeros((16, 16), np.uint8), ["others", "dog"])
    >>> estimate_tokens(empty, envelope=False), estimate_tokens(empty, format="full", envelope=False)
    (80, 512)
    >>> estimate_tokens(LabelGrid([[0, 1, 1]], ["others", "white horse"]), envelope=False)
    9
    """
    if not isinstance(grid, LabelGrid):
        raise TypeError(f"estimate_tokens expects a LabelGrid, got {type(grid).__name__}")
    return _estimate_ids(grid.ids, _costs(grid.labels, family, label_tokens), format_code(format),
                         bool(envelope))


# --------------------------------------------------------------------------- oracle and planner


class _Counter:
    """Token counts of grids, exact (with a tokenizer) or estimated (by family)."""

    def __init__(self, tokenizer: object = None, family: str = "sentencepiece",
                 label_tokens: Mapping[str, int] | None = None) -> None:
        self.tokenizer = tokenizer
        self.family = family
        self.given = label_tokens
        _family(family)
        if tokenizer is not None:
            self._encode = _encoder(tokenizer)
        self._cost_cache: dict[tuple[str, ...], np.ndarray] = {}

    @property
    def exact(self) -> bool:
        return self.tokenizer is not None

    def count(self, ids: np.ndarray, labels: tuple[str, ...], fmt: int, envelope: bool) -> int:
        if self.tokenizer is not None:
            from .text import _write

            return len(self._encode(_write(ids, labels, fmt, envelope)))
        costs = self._cost_cache.get(labels)
        if costs is None:
            costs = self._cost_cache[labels] = _costs(labels, self.family, self.given)
        return _estimate_ids(ids, costs, fmt, envelope)


def _binary_ids(mask: np.ndarray, grid: tuple[int, int], method: str) -> np.ndarray:
    q = quantize(mask, grid=grid, method=method)
    return (q if q.dtype == np.bool_ else q != 0).view(np.uint8)


def _oracle_counts(mask: np.ndarray, ids: np.ndarray) -> tuple[int, int]:
    """Intersection and union of the rendered grid and the mask (both bool)."""
    back = render(ids, mask.shape).view(np.bool_)
    inter = int(np.count_nonzero(back & mask))
    union = int(np.count_nonzero(back)) + int(np.count_nonzero(mask)) - inter
    return inter, union


def _as_binary(mask: object, i: int) -> np.ndarray:
    from .quantize import as_mask

    m = as_mask(mask, f"masks[{i}]")
    return m if m.dtype == np.bool_ else m != 0


@dataclass(frozen=True)
class GridPlan:
    """The answer of :func:`plan_grid`.

    Attributes
    ----------
    grid : (int, int) or None
        The largest candidate grid (most cells) whose token count fits the
        budget, or None when none fits.
    tokens : int or None
        Its token count at the requested quantile over the masks.
    ciou, miou : float or None
        Oracle quality at that grid: quantize, render back at the mask's size,
        compare with the mask; ``sum(I) / sum(U)`` and the mean per-mask IoU
        (an empty mask whose grid is empty counts 1.0).
    lost : float or None
        Share of non-empty masks whose grid is empty.
    budget, quantile
        As given to :func:`plan_grid`.
    exact : bool
        True when the counts came from a tokenizer, False when estimated.
    candidates : tuple of ((int, int), int)
        Every candidate grid, smallest first, with its token count at the quantile.
    """

    grid: tuple[int, int] | None
    tokens: int | None
    ciou: float | None
    miou: float | None
    lost: float | None
    budget: int
    quantile: float
    exact: bool
    candidates: tuple[tuple[tuple[int, int], int], ...] = field(repr=False)


def _candidates(grids) -> list[tuple[int, int]]:
    if isinstance(grids, (int, np.integer)) and not isinstance(grids, bool):
        if grids < 1:
            raise InputError(f"grids must be >= 1 (meaning 1..N), got {grids}")
        cands = [(g, g) for g in range(1, int(grids) + 1)]
    elif isinstance(grids, Iterable) and not isinstance(grids, str):
        cands = [as_grid(g, "grids item") for g in grids]
        if not cands:
            raise InputError("grids is empty; give candidate grids or N for 1..N")
    else:
        raise TypeError(f"grids must be an int N (1..N) or a sequence of grids, got {grids!r}")
    return sorted(set(cands), key=lambda rc: (rc[0] * rc[1], rc[0]))


def plan_grid(
    masks: Sequence,
    /,
    budget: int,
    *,
    labels: str | Sequence[str] = "object",
    grids=32,
    quantile: float = 1.0,
    tokenizer: object = None,
    family: Family = "sentencepiece",
    format: Format = "rrle",
    method: Method = "nearest",
    background: str = "others",
    envelope: bool = True,
    label_tokens: Mapping[str, int] | None = None,
) -> GridPlan:
    """The largest grid whose text fits ``budget`` tokens, and the oracle quality it buys.

    Parameters
    ----------
    masks : sequence of 2-D arrays
        Binary masks (non-zero is foreground), of any sizes.
    budget : int
        Most tokens the answer may take.
    labels : str or sequence of str
        The foreground label of every mask, or one per mask.
    grids : int or sequence
        Candidates: ``N`` for the square grids 1..N, or a list of ints /
        ``(rows, cols)`` pairs.  Candidates are ordered by cell count; the
        largest that fits wins even when a smaller one does not fit (token
        counts need not grow with the grid).
    quantile : float
        A grid fits when this quantile of the masks' token counts is within
        the budget: 1.0 (default) means every mask, 0.9 nine in ten
        (``numpy.quantile(..., method="higher")``).
    tokenizer : optional
        Count exactly with this tokenizer (anything :func:`count_tokens`
        takes); otherwise estimate with ``family`` and ``label_tokens``.
    format, method, background, envelope
        How the text is written (see :func:`maskcodec.encode_mask`).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((64, 64), bool); m[8:40, 16:48] = True
    >>> plan = plan_grid([m], 80, labels="dog", grids=[4, 8, 16], envelope=False)
    >>> plan.grid, plan.tokens, plan.ciou
    ((8, 8), 64, 1.0)
    """
    if not isinstance(budget, (int, np.integer)) or isinstance(budget, bool) or budget < 1:
        raise InputError(f"budget must be a positive int of tokens, got {budget!r}")
    if not (isinstance(quantile, (int, float)) and 0.0 <= quantile <= 1.0):
        raise InputError(f"quantile must be in [0, 1], got {quantile!r}")
    check_label(background)
    fmt = format_code(format)
    binary = [_as_binary(m, i) for i, m in enumerate(masks)]
    if not binary:
        raise InputError("plan_grid needs at least one mask")
    if isinstance(labels, str):
        names = [labels] * len(binary)
    else:
        names = list(labels)
        if len(names) != len(binary):
            raise InputError(f"got {len(names)} labels for {len(binary)} masks")
    for n in set(names):
        check_label(n)
    counter = _Counter(tokenizer, family, label_tokens)
    label_pairs = [(background, n) for n in names]
    table: list[tuple[tuple[int, int], int]] = []
    best: tuple[tuple[int, int], int] | None = None
    for rc in _candidates(grids):
        counts = np.array([
            counter.count(_binary_ids(m, rc, method), pair, fmt, envelope)
            for m, pair in zip(binary, label_pairs)
        ])
        tq = int(np.quantile(counts, quantile, method="higher"))
        table.append((rc, tq))
        if tq <= budget:
            best = (rc, tq)
    if best is None:
        return GridPlan(None, None, None, None, None, int(budget), float(quantile), counter.exact,
                        tuple(table))
    from .metrics import IoUAccumulator

    acc = IoUAccumulator()
    lost = nonempty = 0
    for m in binary:
        ids = _binary_ids(m, best[0], method)
        inter, union = _oracle_counts(m, ids)
        acc.add_counts(inter, union, target_empty=not m.any())
        if m.any():
            nonempty += 1
            lost += int(not ids.any())
    return GridPlan(best[0], best[1], acc.ciou, acc.giou, lost / nonempty if nonempty else 0.0,
                    int(budget), float(quantile), counter.exact, tuple(table))
