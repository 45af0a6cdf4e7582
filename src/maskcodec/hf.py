"""Constrained decoding for Hugging Face ``transformers``: answers that always parse.

:class:`SegLogitsProcessor` is a ``transformers.LogitsProcessor``.  Before
``<seg>`` the model writes one of the answer sentences that ``maskcodec
convert`` trains (the default ``prefix="templates"``), any text
(``prefix="any"``) or nothing (``prefix="none"``, or ``force_seg=True``);
from ``<seg>`` on only tokens that keep the text a prefix of a well-formed answer
(exactly ``rows x cols`` cells, allowed labels, ``</seg>``) keep a finite
score, and after ``</seg>`` only end-of-sequence does.  Given
``max_new_tokens``, it also plans the end: once the shortest way to finish
needs every token left, it writes that way, so the answer is complete before
the budget runs out.

How it works
------------
The answer grammar of :mod:`maskcodec.grammar` runs as a byte-level automaton
(a label automaton or a trie of the allowed labels, the cells left in the row,
the count being written, the rows left).  A token is allowed in a state when
its bytes walk the automaton without dying.  The vocabulary is kept as a
sorted list of token byte strings, an implicit trie, so one state's mask costs
one walk that stops at the first impossible byte; masks are cached per state.
Inside a label the walk is shared across every state that differs only in
the counts (a label does not depend on them), so the large "any label" masks
are built once per label state.  ``torch`` and ``transformers`` are imported
only when :class:`SegLogitsProcessor` is first used.

Examples
--------
>>> from maskcodec.hf import SegLogitsProcessor  # doctest: +SKIP
>>> proc = SegLogitsProcessor(tokenizer, 16, 16, labels=["white horse"],
...                           force_seg=True, max_new_tokens=400)  # doctest: +SKIP
>>> out = model.generate(ids, logits_processor=[proc], max_new_tokens=400,
...                      do_sample=True)  # doctest: +SKIP
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from ._errors import InputError
from ._vocab import Vocab, vocab_of
from .grammar import (
    DEAD,
    LABEL_SLOT,
    SPACE,
    START,
    _labels_list,
    label_accepts,
    label_step,
    prefix_strings,
    resolve_prefix,
)
from .quantize import as_grid

__all__ = ["SegLogitsProcessor", "TokenAutomaton"]  # noqa: F822 (SegLogitsProcessor: module __getattr__)

OPEN = b"<seg>"
CLOSE = b"</seg>"

# Phases of the automaton state tuples.
P_OPEN, P_LAB, P_CNT, P_SEP, P_NL, P_CLOSE, P_DONE = range(7)
_FORMATS = ("rrle", "irle", "full")


def _utf8_len(lead: int) -> int:
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


# Valid second bytes of UTF-8 sequences whose range differs from 80-BF (no overlongs,
# no surrogates, nothing past U+10FFFF).
_SECOND = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}


def _any_label_step(lab, partial, b):
    """One byte of the "any safe label" automaton over UTF-8: (lab, partial) or None."""
    if partial:
        lo, hi = _SECOND.get(partial[0], (0x80, 0xBF)) if len(partial) == 1 else (0x80, 0xBF)
        if not lo <= b <= hi:
            return None
        partial += bytes([b])
        if len(partial) < _utf8_len(partial[0]):
            return lab, partial
        try:
            ch = partial.decode("utf-8")
        except UnicodeDecodeError:
            return None
        nxt = label_step(lab, ch)
        return None if nxt == DEAD else (nxt, b"")
    if b >= 0x80:
        return (lab, bytes([b])) if _utf8_len(b) else None
    nxt = label_step(lab, chr(b))
    return None if nxt == DEAD else (nxt, b"")


def _finish_any_label(lab, partial):
    """Shortest bytes that complete an any-label state without passing through white space."""
    frontier = [(b"", lab, partial)]
    for _ in range(5):
        nxt = []
        for out, lb, part in frontier:
            if not part and label_accepts(lb):
                return out
            for b in (range(0x80, 0xC0) if part else (0x61,)):
                st = _any_label_step(lb, part, b)
                if st is not None and (st[1] or st[0] != SPACE):
                    nxt.append((out + bytes([b]), st[0], st[1]))
        frontier = nxt
    return None


class _Trie:
    """A vocabulary as a trie over token bytes, flattened into lists.

    Node 0 is the root; ``kids[n]`` lists ``(byte, child)``; the tokens whose
    bytes end at node ``n`` are ``ids[here_lo[n]:here_hi[n]]`` (tokens are
    sorted by bytes, so each node's tokens are contiguous).
    """

    def __init__(self, vocab: Vocab):
        items = sorted((p, i) for i, p in enumerate(vocab.pieces) if p)
        self.toks = [p for p, _ in items]
        self.ids = np.array([i for _, i in items], dtype=np.int64)
        self.root = 0
        self.size = vocab.size
        self.max_len = max((len(p) for p in self.toks), default=0)
        kids: list[list[tuple[int, int]]] = [[]]
        here_lo, here_hi = [0], [0]
        stack = [0]
        prev = b""
        for idx, t in enumerate(self.toks):
            c, m = 0, min(len(t), len(prev))
            while c < m and t[c] == prev[c]:
                c += 1
            del stack[c + 1:]
            for d in range(c, len(t)):
                n = len(kids)
                kids.append([])
                here_lo.append(idx)
                here_hi.append(idx)
                kids[stack[d]].append((t[d], n))
                stack.append(n)
            here_hi[stack[len(t)]] = idx + 1
            prev = t
        self.kids = kids
        self.here_lo = here_lo
        self.here_hi = here_hi

    def here(self, node):
        """Index range (into ``toks``/``ids``) of the tokens that end exactly at ``node``."""
        return self.here_lo[node], self.here_hi[node]

    def children(self, node):
        return self.kids[node]

    def ranges_to_ids(self, los, his):
        """Token ids of the index ranges ``[lo, hi)``, concatenated."""
        if not los:
            return np.empty(0, dtype=np.int64)
        lo = np.asarray(los, dtype=np.int64)
        counts = np.asarray(his, dtype=np.int64) - lo
        total = int(counts.sum())
        offsets = np.repeat(lo - (np.cumsum(counts) - counts), counts)
        return self.ids[offsets + np.arange(total)]

    def longest_prefix(self, data: bytes) -> tuple[int, int]:
        """(token id, length) of the longest token that is a prefix of ``data``; (-1, 0) if none."""
        node = self.root
        best = (-1, 0)
        for d, b in enumerate(data):
            nxt = None
            for cb, child in self.children(node):
                if cb == b:
                    nxt = child
                    break
            if nxt is None:
                break
            node = nxt
            lo, k = self.here(node)
            if k > lo:
                best = (int(self.ids[lo]), d + 1)
        return best

    def greedy(self, data: bytes) -> list[int] | None:
        """Greedy longest-match tokenization of ``data`` (None when impossible)."""
        out = []
        pos = 0
        while pos < len(data):
            tid, n = self.longest_prefix(data[pos:])
            if n == 0:
                return None
            out.append(tid)
            pos += n
        return out


class Mask(NamedTuple):
    """Allowed tokens of one state: large label components (by key) plus explicit ids."""

    dense: tuple
    ids: np.ndarray
    key: tuple


class TokenAutomaton:
    """The answer grammar as a byte automaton with per-state token masks (torch-free).

    ``prefix`` is the policy for the text before ``<seg>`` (see
    :mod:`maskcodec.grammar`); this low-level class defaults to ``"none"``,
    :class:`SegLogitsProcessor` to ``"templates"``.

    States are tuples whose first item is the phase.  ``step(state, byte)``
    returns the next state or None; :meth:`allowed` returns the sorted token
    ids allowed in a state as a NumPy array.
    """

    def __init__(
        self,
        vocab: Vocab,
        rows: int,
        cols: int,
        labels: Iterable[str] | None = None,
        *,
        format: str = "rrle",
        background: str = "others",
        canonical: bool = False,
        envelope: bool = True,
        max_label_len: int | None = 64,
        trie: _Trie | None = None,
        prefix="none",
    ):
        if format not in _FORMATS:
            raise InputError(f"unknown format {format!r}; choose one of {', '.join(_FORMATS)}")
        self.vocab = vocab
        self.rows, self.cols = rows, cols
        self.format = format
        self.full = format == "full"
        self.names = _labels_list(labels, background)
        self.background = background
        if canonical and self.names is None:
            raise InputError("canonical=True needs a fixed label set (labels=...)")
        if canonical and self.full:
            raise InputError("canonical=True applies to run-length formats, not 'full'")
        self.canonical = canonical
        self.envelope = envelope
        if max_label_len is not None and max_label_len < 1:
            raise InputError(f"max_label_len must be >= 1 or None, got {max_label_len}")
        self.max_label_len = max_label_len if self.names is None else None
        self.trie = trie if trie is not None else _Trie(vocab)
        if self.format == "rrle":
            self.width, self.nrows = cols, rows
        else:
            self.width, self.nrows = rows * cols, 1
        self._build_label_trie()
        self._build_prefix(resolve_prefix(prefix, envelope))
        # A token spans at most this many row ends, so more rows left than that look alike.
        self.row_clip = 2 + max((t.count(b"\n") for t in self.trie.toks if b"\n\n" not in t), default=0)
        self._label_memo: dict = {}
        self._move_memo: dict = {}
        self._mask_cache: OrderedDict = OrderedDict()
        self._dense_cache: OrderedDict = OrderedDict()
        self._check_vocab()

    def __getstate__(self):
        state = self.__dict__.copy()
        for memo in ("_label_memo", "_move_memo"):
            state[memo] = {}
        state["_mask_cache"], state["_dense_cache"] = OrderedDict(), OrderedDict()
        state.pop("_free", None)
        return state

    # ------------------------------------------------------------------ labels

    def _build_label_trie(self):
        if self.names is None:
            return
        kids: list[dict[int, int]] = [{}]
        end: list[int] = [-1]
        for lid, name in enumerate(self.names):
            node = 0
            for b in name.encode("utf-8"):
                nxt = kids[node].get(b)
                if nxt is None:
                    nxt = len(kids)
                    kids[node][b] = nxt
                    kids.append({})
                    end.append(-1)
                node = nxt
            end[node] = lid
        self.lkids, self.lend = kids, end
        # Labels reachable below each node, for completing a label.
        below: list[set[int]] = [set() for _ in kids]
        for lid, name in enumerate(self.names):
            node = 0
            below[0].add(lid)
            for b in name.encode("utf-8"):
                node = kids[node][b]
                below[node].add(lid)
        self.lbelow = below

    def _lab_accepts(self, lab, prev):
        if lab < 0:
            return False
        if self.names is None:
            return label_accepts(lab)
        lid = self.lend[lab]
        return lid >= 0 and (not self.canonical or lid != prev)

    def _lab_step(self, lab, partial, b):
        """Continue a label by one byte: (lab, partial) or None."""
        if lab < 0:
            return None
        if self.names is not None:
            nxt = self.lkids[lab].get(b)
            return None if nxt is None else (nxt, b"")
        return _any_label_step(lab, partial, b)

    def _lab_cost(self, lab, partial):
        """Bytes still needed before the label is complete (any-label mode)."""
        # Optimistic for a partial character (a non-space one can always complete it), so
        # that label bytes + cost never decreases along a path: a token's last state decides.
        if partial:
            return _utf8_len(partial[0]) - len(partial)
        return 0 if label_accepts(lab) else 1

    # ------------------------------------------------------------------ prefix

    def _build_prefix(self, policy):
        """The text before ``<seg>`` as a small NFA whose items are
        ``(template, part, offset, label state, partial UTF-8)``, or ``("A", k)`` for any
        text without ``<seg>`` (``k`` bytes of it seen)."""
        self.prefix = policy if isinstance(policy, str) else "templates"
        self.pparts: list[tuple] = []
        if policy == "any":
            self._open0 = frozenset({("A", 0)})
            return
        if policy == "none":
            templates = [()]
        else:
            templates = []
            for parts in prefix_strings(policy):
                if self.names is not None and LABEL_SLOT in parts:
                    for name in self.names[1:]:  # {label} is a foreground name
                        t = tuple(name if p is LABEL_SLOT else p for p in parts)
                        templates.append(("".join(t),))
                else:
                    templates.append(parts)
        for parts in templates:
            merged: list = []
            for p in parts:
                if p is LABEL_SLOT:
                    merged.append(None)
                elif merged and isinstance(merged[-1], bytes):
                    merged[-1] += p.encode("utf-8")
                else:
                    merged.append(p.encode("utf-8"))
            if merged and isinstance(merged[-1], bytes):
                merged[-1] += OPEN
            else:
                merged.append(OPEN)
            if tuple(merged) not in self.pparts:
                self.pparts.append(tuple(merged))
        self._starts = frozenset((t, 0, 0, START, b"") for t in range(len(self.pparts)))
        # SentencePiece models write a word-start space before the first word ("\u2581Sure"),
        # so a template may open with one space.
        self._open0 = self._starts | ({("S",)} if policy != "none" else set())

    def _enter(self, t, j, b, out):
        """Byte ``b`` as the first of part ``j`` of template ``t``; True when it ends the prefix."""
        parts = self.pparts[t]
        part = parts[j]
        if part is None:
            nxt = _any_label_step(START, b"", b)
            if nxt is not None:
                out.add((t, j, 0, nxt[0], nxt[1]))
            return False
        if part[0] != b:
            return False
        if len(part) > 1:
            out.add((t, j, 1, START, b""))
            return False
        if j + 1 == len(parts):
            return True
        out.add((t, j + 1, 0, START, b""))
        return False

    def _open_step(self, items, b):
        out: set = set()
        for it in items:
            if it[0] == "S":
                if b == 0x20:
                    out |= self._starts
                continue
            if it[0] == "A":
                k = it[1]
                if b == OPEN[k]:
                    if k + 1 == len(OPEN):
                        return self.body_start()
                    out.add(("A", k + 1))
                else:
                    out.add(("A", 1 if b == 0x3C else 0))
                continue
            t, j, off, lab, partial = it
            parts = self.pparts[t]
            part = parts[j]
            if part is None:
                nxt = _any_label_step(lab, partial, b)
                if nxt is not None:
                    out.add((t, j, 0, nxt[0], nxt[1]))
                if not partial and label_accepts(lab) and self._enter(t, j + 1, b, out):
                    return self.body_start()
            elif part[off] == b:
                if off + 1 < len(part):
                    out.add((t, j, off + 1, START, b""))
                elif j + 1 == len(parts):
                    return self.body_start()
                else:
                    out.add((t, j + 1, 0, START, b""))
        return (P_OPEN, frozenset(out)) if out else None

    def _finish_open(self, items) -> bytes:
        """The shortest bytes from a prefix state through ``<seg>``."""
        best = None
        for it in items:
            if it[0] == "S":
                continue
            if it[0] == "A":
                tail = OPEN[it[1]:]
            else:
                t, j, off, lab, partial = it
                parts = self.pparts[t]
                if parts[j] is None:
                    head = _finish_any_label(lab, partial)
                    if head is None:
                        continue
                else:
                    head = parts[j][off:]
                tail = head + b"".join(b"a" if p is None else p for p in parts[j + 1:])
            if best is None or len(tail) < len(best):
                best = tail
        return best

    # ------------------------------------------------------------------ states

    def start(self):
        """The state before ``<seg>`` and its prefix (envelope) or at the body start."""
        if self.envelope:
            return (P_OPEN, self._open0)
        return self.body_start()

    def body_start(self):
        return self._lab_state(self.nrows, self.width, -1)

    def _lab_state(self, rows_left, k, prev):
        lab = 0 if self.names is not None else START
        # (phase, rows_left, k, lab, pend, prev, partial, lablen)
        return (P_LAB, rows_left, k, lab, -1, prev, b"", 0)

    def _after_body(self):
        return (P_CLOSE, 0) if self.envelope else (P_DONE,)

    def step(self, s, b):
        """The state after byte ``b``, or None."""
        ph = s[0]
        if ph == P_LAB:
            return self._step_lab(s, b)
        if ph == P_CNT:
            _, rl, k, v, prev = s
            if 0x30 <= b <= 0x39:
                if v == 0 and b == 0x30:
                    return None
                nv = v * 10 + (b - 0x30)
                if self.canonical and len(self.names) == 1 and not str(k).startswith(str(nv)):
                    return None  # one label: the run must fill the row
                return (P_CNT, rl, k, nv, prev) if nv <= k else None
            if v == 0:
                return None
            if b == 0x7C and v < k:  # "|"
                if self.canonical and len(self.names) == 1:
                    return None  # one label: a second run in the row would repeat it
                return (P_SEP, rl, k - v, prev)
            if b == 0x0A and v == k:
                if rl > 1:
                    return (P_NL, rl - 1)
                return self._after_body()
            return None
        if ph == P_SEP:
            if b != 0x20:
                return None
            _, rl, k, prev = s
            return self._lab_state(rl, k, prev)
        if ph == P_NL:
            return self._lab_state(s[1], self.width, -1) if b == 0x20 else None
        if ph == P_OPEN:
            return self._open_step(s[1], b)
        if ph == P_CLOSE:
            i = s[1]
            if b != CLOSE[i]:
                return None
            return (P_CLOSE, i + 1) if i + 1 < len(CLOSE) else (P_DONE,)
        return None

    def _exit(self, s, b, lid):
        """Leave the label phase of ``s`` on byte ``b`` (label ``lid`` just ended)."""
        _, rl, k = s[0], s[1], s[2]
        if not self.full:
            return (P_CNT, rl, k, 0, lid)
        if b == 0x7C and k > 1:
            return (P_SEP, rl, k - 1, -1)
        if b == 0x0A and k == 1:
            return self._after_body()
        return None

    def _label_move(self, lp, b):
        """One byte inside the label phase, independent of counts.

        ``lp = (lab, pend, prev, partial)``.  Returns ``("in", lp2, used)`` with
        ``used`` the label bytes this byte adds, ``("exit", lid)`` when the byte
        ends the label, or None.
        """
        lab, pend, prev, partial = lp
        if not self.full:
            if b == 0x2A:  # "*" after "label "
                return ("exit", pend) if pend >= 0 else None
            nxt = self._lab_step(lab, partial, b)
            if nxt is not None and self.canonical and not (self.lbelow[nxt[0]] - {prev}):
                nxt = None  # the only labels down this way repeat the previous run
            if b == 0x20 and not partial and self._lab_accepts(lab, prev):
                lid = self.lend[lab] if self.names is not None else 0
                return ("in", (nxt[0] if nxt else DEAD, lid, prev, b""), 1)
            if nxt is None:
                return None
            return ("in", (nxt[0], -1, prev, nxt[1]), 1)
        if b in (0x7C, 0x0A):
            if partial or not self._lab_accepts(lab, prev):
                return None
            return ("exit", self.lend[lab] if self.names is not None else 0)
        nxt = self._lab_step(lab, partial, b)
        if nxt is None:
            return None
        return ("in", (nxt[0], -1, prev, nxt[1]), 1)

    def _fits(self, lp, lablen):
        """Whether a label of ``lablen`` bytes in state ``lp`` can still end within the limit."""
        if self.max_label_len is None:
            return True
        lab, pend, _, partial = lp
        need = lablen + self._lab_cost(lab, partial) if lab >= 0 else 10**9
        if pend >= 0:
            need = min(need, lablen - 1)  # the space was the separator
        return need <= self.max_label_len

    def _step_lab(self, s, b):
        _, rl, k, lab, pend, prev, partial, lablen = s
        mv = self._label_move((lab, pend, prev, partial), b)
        if mv is None:
            return None
        if mv[0] == "exit":
            return self._exit(s, b, mv[1])
        lp = mv[1]
        if not self._fits(lp, lablen + 1):
            return None
        return (P_LAB, rl, k, lp[0], lp[1], lp[2], lp[3], lablen + 1)

    def walk_bytes(self, s, data: bytes):
        for b in data:
            s = self.step(s, b)
            if s is None:
                return None
        return s

    # ------------------------------------------------------------------ masks

    def _key(self, s):
        """States with the same future token masks share a key."""
        ph = s[0]
        if ph == P_LAB:
            room = 0
            if self.max_label_len is not None:
                room = min(self.max_label_len - s[7], self.trie.max_len + 2)
            return (ph, min(s[1], self.row_clip)) + s[2:7] + (room,)
        if ph in (P_CNT, P_SEP, P_NL):
            return (ph, min(s[1], self.row_clip)) + s[2:]
        return s

    def allowed(self, s) -> Mask:
        """The tokens allowed in state ``s`` (cached per state)."""
        key = self._key(s)
        hit = self._mask_cache.get(key)
        if hit is not None:
            self._mask_cache.move_to_end(key)
            return hit
        out: list = []
        self._walk(self.trie.root, s, out)
        dense = tuple(sorted({x[1] for x in out if isinstance(x, tuple)}, key=repr))
        arrays = [x for x in out if not isinstance(x, tuple)]
        ids = np.unique(np.concatenate(arrays)) if arrays else np.empty(0, dtype=np.int64)
        mask = Mask(dense, ids, key)
        self._mask_cache[key] = mask
        if len(self._mask_cache) > 20_000:
            self._mask_cache.popitem(last=False)
        return mask

    def allowed_ids(self, s) -> np.ndarray:
        """Sorted ids of the tokens allowed in state ``s``."""
        m = self.allowed(s)
        parts = [m.ids] + [np.flatnonzero(self.dense(k)) for k in m.dense]
        return np.unique(np.concatenate(parts))

    def dense(self, dkey) -> np.ndarray:
        """The boolean vocabulary mask of one large label component."""
        hit = self._dense_cache.get(dkey)
        if hit is not None:
            self._dense_cache.move_to_end(dkey)
            return hit
        node, lp, room = dkey
        pure_ids, pure_need, _ = self._label_subtree(node, lp)
        m = np.zeros(self.trie.size, dtype=bool)
        m[pure_ids if room is None else pure_ids[pure_need <= room]] = True
        self._dense_cache[dkey] = m
        if len(self._dense_cache) > 256:
            self._dense_cache.popitem(last=False)
        return m

    def _walk(self, node, s, out):
        trie = self.trie
        lo, k = trie.here(node)
        if k > lo:
            out.append(trie.ids[lo:k])
        for b, child in trie.children(node):
            s2 = self.step(s, b)
            if s2 is None:
                continue
            if s2[0] == P_LAB:
                self._walk_label(child, s2, out)
            else:
                self._walk(child, s2, out)

    def _walk_label(self, node, s, out):
        """Tokens below ``node`` entered in label state ``s``, using the count-free memo."""
        lab, pend, prev, partial, lablen = s[3:]
        lp = (lab, pend, prev, partial)
        pure_ids, pure_need, exits = self._label_subtree(node, lp)
        room = None
        if self.max_label_len is not None:
            room = self.max_label_len - lablen
            if pure_need.size and room >= pure_need.max():
                room = None
        if pure_ids.size > 1024:
            out.append(("D", (node, lp, room)))
        elif room is None:
            out.append(pure_ids)
        else:
            out.append(pure_ids[pure_need <= room])
        for child, b, lid, used in exits:
            if self.max_label_len is not None and lablen + used > self.max_label_len:
                continue
            s2 = self._exit(s, b, lid)
            if s2 is not None:
                self._walk(child, s2, out) if s2[0] != P_LAB else self._walk_label(child, s2, out)

    def _label_subtree(self, node, lp):
        """For tokens below ``node`` read from label state ``lp``: the ones that stay in the
        label (ids and the label bytes each needs) and the points where the label ends."""
        key = (node, lp)
        hit = self._label_memo.get(key)
        if hit is not None:
            return hit
        trie = self.trie
        kids, here_lo, here_hi = trie.kids, trie.here_lo, trie.here_hi
        los: list[int] = []
        his: list[int] = []
        needs: list[int] = []
        exits: list = []
        move = self._label_move
        memo = self._move_memo
        lab_cost = self._lab_cost
        any_label = self.names is None
        # Depth-first, iteratively: (node, label state, label bytes used in this token)
        stack = [(node, lp, 0)]
        while stack:
            nd, cur, used = stack.pop()
            lo, k = here_lo[nd], here_hi[nd]
            if k > lo:  # (the root holds no token: there are no empty ones)
                lab, pend, _, partial = cur
                need = used + lab_cost(lab, partial) if (lab >= 0 and any_label) else used
                if pend >= 0:
                    need = min(need, used - 1) if lab >= 0 else used - 1
                los.append(lo)
                his.append(k)
                needs.append(need)
            for b, child in kids[nd]:
                mk = (cur, b)
                mv = memo.get(mk, 0)
                if mv == 0:
                    mv = memo[mk] = move(cur, b)
                if mv is None:
                    continue
                if mv[0] == "exit":
                    exits.append((child, b, mv[1], used - 1 if not self.full else used))
                else:
                    stack.append((child, mv[1], used + 1))
        pure_ids = trie.ranges_to_ids(los, his)
        pure_need = np.repeat(np.asarray(needs, dtype=np.int64), np.asarray(his, dtype=np.int64) - np.asarray(los, dtype=np.int64)) if los else np.empty(0, dtype=np.int64)
        result = (pure_ids, pure_need, exits)
        self._label_memo[key] = result
        return result

    # ------------------------------------------------------------------ finishing

    def _finish_label(self, lab, pend, prev, partial):
        """Bytes that end the current label (any-label: the shortest way; fixed: a label)."""
        if self.names is not None:
            if pend >= 0:
                return b""
            best = None
            for lid in sorted(self.lbelow[lab]) if lab >= 0 else ():
                if self.canonical and lid == prev:
                    continue
                tail = self.names[lid].encode("utf-8")[self._depth(lab):]
                if best is None or len(tail) < len(best):
                    best = tail
            return best
        if pend >= 0:
            return b""
        # Shortest bytes to an accepting state that never pass through white space (so the
        # label-length bound, which counts a partial character as non-space, still holds).
        return _finish_any_label(lab, partial)

    def _depth(self, node):
        if not hasattr(self, "_ldepth"):
            depth = [0] * len(self.lkids)
            for n, kids in enumerate(self.lkids):
                for c in kids.values():
                    depth[c] = depth[n] + 1
            self._ldepth = depth
        return self._ldepth[node]

    def _fill_label(self, prev):
        """A label for the runs written to finish (differs from ``prev`` when canonical)."""
        if self.names is None:
            return self.background
        for lid, name in enumerate(self.names):
            if not (self.canonical and lid == prev):
                return name
        return None

    def finish(self, s) -> list[bytes] | None:
        """Pieces of the shortest planned way to finish the answer from ``s`` (None: none)."""
        ph = s[0]
        bg = self.background.encode("utf-8")
        pieces: list[bytes] = []
        if ph == P_OPEN:
            pieces.append(self._finish_open(s[1]))
            s = self.body_start()
            ph = P_LAB
        if ph in (P_CLOSE, P_DONE):
            return [CLOSE[s[1]:]] if ph == P_CLOSE else []
        if ph == P_NL:
            return pieces + self._rows_tail(s[1])
        rl = s[1]
        if self.full:
            if ph == P_LAB:
                _, rl, k, lab, pend, prev, partial, _ = s
                end = self._finish_label(lab, pend, prev, partial)
                if end is None:
                    return None
                pieces.append(end)
            else:  # P_SEP: s[2] cells are left to write, the next one included
                k = s[2]
                pieces.append(b" " + bg)
            pieces.extend([b"| " + bg] * (k - 1))
            pieces.append(b"\n")
            return pieces + self._rows_tail(0)
        if ph == P_LAB:
            _, rl, k, lab, pend, prev, partial, _ = s
            end = self._finish_label(lab, pend, prev, partial)
            if end is None:
                return None
            pieces.append(end + (b"*" if pend >= 0 and not end else b" *") + str(k).encode() + b"\n")
        elif ph == P_SEP:
            _, rl, k, prev = s
            fill = self._fill_label(prev).encode("utf-8")
            pieces.append(b" " + fill + b" *" + str(k).encode() + b"\n")
        elif ph == P_CNT:
            _, rl, k, v, prev = s
            if v == 0:
                pieces.append(str(k).encode() + b"\n")
            elif v == k:
                pieces.append(b"\n")
            elif str(k).startswith(str(v)):
                pieces.append(str(k)[len(str(v)):].encode() + b"\n")
            else:
                fill = self._fill_label(prev).encode("utf-8")
                pieces.append(b"| " + fill + b" *" + str(k - v).encode() + b"\n")
        return pieces + self._rows_tail(rl - 1)

    def _rows_tail(self, rows_after):
        fill = self._fill_label(-1).encode("utf-8")
        row = b" " + fill + b" *" + str(self.width).encode() + b"\n"
        return [row] * max(rows_after, 0) + ([CLOSE] if self.envelope else [])

    # ------------------------------------------------------------------ checks

    def _check_vocab(self):
        """Every character the grammar may need must be writable one character at a time."""
        need = set("<seg>/| *\n0123456789")
        if self.names is not None:
            for n in self.names:
                need.update(n)
        else:
            need.update("ax")
        need.update(self.background)
        for parts in self.pparts:
            for p in parts:
                if p is not None:
                    need.update(p.decode("utf-8"))
        if not self.envelope:
            need -= set("<seg>/") - set("".join(self.names or []) + self.background)
        missing = []
        for ch in sorted(need):
            data = ch.encode("utf-8")
            if self.trie.greedy(data) is None:
                missing.append(ch)
        if missing:
            raise InputError(
                "the tokenizer's vocabulary cannot write "
                + ", ".join(repr(c) for c in missing)
                + " as text, which the answer grammar needs"
            )

    # ------------------------------------------------------------------ free text

    def free_masks(self):
        """For free text that ends with ``k`` bytes of ``<seg>`` (k = 0..4): a boolean mask of
        the tokens allowed there (any token, unless it completes ``<seg>`` and then goes on
        with something the grammar forbids), and ``{token id: state}`` for the tokens that
        complete ``<seg>``."""
        if hasattr(self, "_free"):
            return self._free
        masks, entered = [], []
        pieces = self.vocab.pieces
        for k in range(len(OPEN)):
            m = np.zeros(self.trie.size, dtype=bool)
            into: dict[int, tuple] = {}
            head = OPEN[:k]
            for tid, p in enumerate(pieces):
                if not p:
                    continue
                if b"<" not in p and not (k and p[:1] in b"seg>"):
                    m[tid] = True
                    continue
                text = head + p
                i = text.find(OPEN)
                if i < 0:
                    m[tid] = True
                    continue
                st = self.walk_bytes(self.body_start(), text[i + len(OPEN):])
                if st is not None:
                    m[tid] = True
                    into[tid] = st
            masks.append(m)
            entered.append(into)
        self._free = (masks, entered)
        return self._free


def _open_suffix(text: bytes) -> int:
    """How many bytes at the end of ``text`` are a proper prefix of ``<seg>``."""
    for k in range(len(OPEN) - 1, 0, -1):
        if text.endswith(OPEN[:k]):
            return k
    return 0


# ============================================================================ the processor

_AUTOMATA: OrderedDict = OrderedDict()
_VOCABS: OrderedDict = OrderedDict()


def _vocab_and_trie(tokenizer):
    key = id(tokenizer)
    hit = _VOCABS.get(key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1], hit[2]
    vocab = vocab_of(tokenizer)
    trie = _Trie(vocab)
    _VOCABS[key] = (tokenizer, vocab, trie)
    if len(_VOCABS) > 4:
        _VOCABS.popitem(last=False)
    return vocab, trie


def automaton_for(tokenizer, rows, cols, labels=None, **options) -> TokenAutomaton:
    """A (cached) :class:`TokenAutomaton` for a tokenizer, grid and label set."""
    vocab, trie = _vocab_and_trie(tokenizer)
    names = None if labels is None else tuple(labels)
    # Keyed by the vocabulary object, which the cached automaton keeps alive (so its id
    # cannot be reused by another tokenizer's vocabulary while the entry exists).
    key = (id(vocab), rows, cols, names, tuple(sorted(options.items())))
    hit = _AUTOMATA.get(key)
    if hit is not None and hit.vocab is vocab:
        _AUTOMATA.move_to_end(key)
        return hit
    auto = TokenAutomaton(vocab, rows, cols, names, trie=trie, **options)
    _AUTOMATA[key] = auto
    if len(_AUTOMATA) > 16:
        _AUTOMATA.popitem(last=False)
    return auto


class _Seq:
    """Where one sequence is: free text (``free`` = bytes of ``<seg>`` seen), in the answer
    (``state``), following a plan to finish (``plan``), or past end-of-sequence."""

    __slots__ = ("ended", "free", "plan", "state")

    def __init__(self, free, state, plan=None, ended=False):
        self.free = free
        self.state = state
        self.plan = plan
        self.ended = ended


def _make_processor_class():
    import torch
    from transformers import LogitsProcessor

    class SegLogitsProcessor(LogitsProcessor):
        """A ``transformers.LogitsProcessor`` that makes every answer parse.

        Parameters
        ----------
        tokenizer
            A ``transformers`` tokenizer, ``tokenizers.Tokenizer``,
            ``sentencepiece.SentencePieceProcessor`` or ``tiktoken.Encoding``
            whose ids the model uses.
        rows, cols : int, optional
            The grid (``cols`` defaults to ``rows``); or give ``grid=``.
        labels : collection of str, optional
            The allowed foreground labels (the background is always allowed);
            None allows any safe label.
        format : {"rrle", "irle", "full"}
        background : str
        canonical : bool
            Adjacent runs must differ (fixed labels only).
        force_seg : bool
            Start the answer at once with ``<seg>`` (the same as ``prefix="none"``).
        max_new_tokens : int, optional
            The generation budget (pass the same to ``generate``).  When given,
            the processor finishes the answer in time, and a grid that cannot fit
            raises :class:`~maskcodec.InputError` here.
        max_label_len : int or None
            With free labels, the longest label in UTF-8 bytes (default 64).
        eos_token_id : int, optional
            The end-of-sequence token allowed after ``</seg>`` (default: the
            tokenizer's).
        grid : int or (rows, cols), optional
            The grid, as everywhere else in maskcodec (instead of ``rows, cols``).
        prefix : {"templates", "any", "none"} or Templates, optional
            What the model may write before ``<seg>``: exactly one of the answer
            templates that ``maskcodec convert`` trains (the default), any text
            without ``<seg>``, or nothing (the answer starts at once; what
            ``force_seg=True`` means).  See :mod:`maskcodec.grammar`.

        Notes
        -----
        The processor pickles (for ``multiprocessing``, Ray, vLLM-style
        workers): its caches are dropped and rebuilt on the other side.

        With ``prefix="any"``, before ``<seg>`` every token is allowed except
        end-of-sequence (and tokens that would complete ``<seg>`` and go on with
        something invalid); with the templates, the tokens that continue one.  Each
        batch row has its own state, looked up by its generated tokens, so
        sampling, batches and beam search all work.  The text to parse is
        ``tokenizer.decode(generated_ids, skip_special_tokens=True)``.
        """

        def __init__(
            self,
            tokenizer,
            rows: int | None = None,
            cols: int | None = None,
            labels: Iterable[str] | None = None,
            *,
            format: str = "rrle",
            background: str = "others",
            canonical: bool = False,
            force_seg: bool = False,
            max_new_tokens: int | None = None,
            max_label_len: int | None = 64,
            eos_token_id: int | None = None,
            grid: int | tuple[int, int] | None = None,
            prefix=None,
        ):
            rows, cols = _processor_grid(rows, cols, grid)
            policy = _processor_prefix(prefix, force_seg)
            self.prefix = policy
            self.auto = automaton_for(
                tokenizer, rows, cols, labels, format=format, background=background,
                canonical=canonical, max_label_len=max_label_len,
                prefix="none" if policy == "any" else policy,
            )
            vocab = self.auto.vocab
            if eos_token_id is None:
                if not vocab.eos_ids:
                    raise InputError("the tokenizer has no end-of-sequence token; pass eos_token_id")
                eos_token_id = vocab.eos_ids[0]
            if not 0 <= eos_token_id < vocab.size:
                raise InputError(f"eos_token_id {eos_token_id} is outside the vocabulary of {vocab.size}")
            self.eos = int(eos_token_id)
            # "any" text before <seg> is followed outside the automaton (free text, with the
            # masks of free_masks); the other policies are the automaton's own prefix states.
            self.force_seg = policy != "any"
            self.max_new_tokens = max_new_tokens
            self._cost_cache: dict[bytes, list[int] | None] = {}
            self._tensors: dict = {}
            # A token can raise the cost of finishing by at most about one run (see _margin).
            fill = self.auto._fill_label(-1).encode("utf-8")
            run = b"| " + fill + b" *" + str(self.auto.width).encode() + b"\n"
            self._margin = 6 + 2 * len(self._tokens(run) or ())
            start = self._initial()
            if max_new_tokens is not None:
                need = self._finish_cost(start)
                if need > max_new_tokens:
                    raise InputError(
                        f"a {rows}x{cols} {format} answer needs at least {need} tokens with this "
                        f"tokenizer (the shortest one, all background), more than max_new_tokens="
                        f"{max_new_tokens}"
                    )
            self.reset()

        # -------------------------------------------------------------- pickling

        def __getstate__(self):
            state = self.__dict__.copy()
            # Tensors on a device, sequence states and memo tables: rebuilt on demand.
            state["_tensors"] = {}
            state["_cost_cache"] = {}
            state["_seqs"] = {}
            state["_prompt"] = state["_prompt_len"] = state["_last_len"] = None
            return state

        # -------------------------------------------------------------- bookkeeping

        def reset(self):
            """Forget every sequence (done automatically when a new generation starts)."""
            self._prompt_len = None
            self._prompt = None
            self._last_len = None
            self._seqs: dict[tuple, _Seq] = {}

        def _initial(self):
            if self.force_seg:
                return _Seq(None, self.auto.start())
            return _Seq(0, None)

        def _tokens(self, data: bytes):
            hit = self._cost_cache.get(data, 0)
            if hit == 0:
                hit = self.auto.trie.greedy(data)
                self._cost_cache[data] = hit
            return hit

        def _plan(self, seq: _Seq) -> list[int]:
            """Token ids of the planned finish (then end-of-sequence)."""
            if seq.free is not None:
                pieces = [OPEN[seq.free:]] + self.auto.finish(self.auto.body_start())
            else:
                pieces = self.auto.finish(seq.state)
            ids: list[int] = []
            for p in pieces:
                if p:
                    ids.extend(self._tokens(p))
            return ids + [self.eos]

        def _finish_cost(self, seq: _Seq) -> int:
            if seq.free is not None:
                pieces = [OPEN[seq.free:]] + self.auto.finish(self.auto.body_start())
            else:
                pieces = self.auto.finish(seq.state)
            return sum(len(self._tokens(p)) for p in pieces if p) + 1

        def _advance(self, seq: _Seq, tid: int) -> _Seq:
            if seq.ended:
                return seq
            # Off the plan (another processor chose): drop it; the next step plans again.
            plan = seq.plan[1:] if seq.plan and seq.plan[0] == tid else None
            if tid == self.eos:
                return _Seq(None, (P_DONE,), None, True)
            piece = self.auto.vocab.pieces[tid] or b""
            if seq.free is not None:
                st = self.auto.free_masks()[1][seq.free].get(tid)
                if st is not None:
                    return _Seq(None, st, plan)
                return _Seq(_open_suffix(OPEN[: seq.free] + piece), None, plan)
            st = self.auto.walk_bytes(seq.state, piece)
            if st is None:
                raise RuntimeError(f"token {tid} ({piece!r}) does not continue the answer")
            return _Seq(None, st, plan)

        def _seq_for(self, gen: tuple) -> _Seq:
            seq = self._seqs.get(gen)
            if seq is not None:
                return seq
            # Walk back to the longest known prefix (usually the previous step's), then forward.
            n = len(gen) - 1
            while n > 0 and gen[:n] not in self._seqs:
                n -= 1
            seq = self._seqs.get(gen[:n]) if n > 0 else None
            if seq is None:
                seq, n = self._initial(), 0
                self._seqs[()] = seq
            for k in range(n, len(gen)):
                seq = self._advance(seq, gen[k])
                self._seqs[gen[: k + 1]] = seq
            return seq

        # -------------------------------------------------------------- masking

        def _ids_tensor(self, mask, device):
            t = self._tensors.get(("ids", mask.key, device))
            if t is None:
                t = torch.as_tensor(mask.ids, dtype=torch.long, device=device)
                self._tensors[("ids", mask.key, device)] = t
            return t

        def _blocked(self, dense, device):
            """Bool tensor: True for tokens outside every dense component."""
            key = ("dense", dense, device)
            t = self._tensors.get(key)
            if t is None:
                m = np.zeros(self.auto.trie.size, dtype=bool)
                for d in dense:
                    m |= self.auto.dense(d)
                t = torch.as_tensor(~m, device=device)
                self._tensors[key] = t
            return t

        def _free_blocked(self, k, device):
            key = ("free", k, device)
            t = self._tensors.get(key)
            if t is None:
                m = self.auto.free_masks()[0][k].copy()
                m[self.eos] = False
                t = torch.as_tensor(~m, device=device)
                self._tensors[key] = t
            return t

        def _only(self, row, tid):
            keep = row[tid].clone()
            row.fill_(-float("inf"))
            row[tid] = keep

        def __call__(self, input_ids, scores):
            length = input_ids.shape[1]
            # A new generation: the first call, a shorter input, or a different prompt. (Several
            # tokens at once, as in assisted generation, are fine: states follow the tokens.)
            if (
                self._last_len is None
                or length <= self._last_len
                or self._prompt.shape[0] != input_ids.shape[0]
                or not torch.equal(input_ids[:, : self._prompt_len], self._prompt)
            ):
                self.reset()
                self._prompt_len = length
                self._prompt = input_ids.clone()
            self._last_len = length
            generated = input_ids[:, self._prompt_len:].tolist()
            used = length - self._prompt_len
            live = set()
            vocab_n = scores.shape[1]
            if vocab_n < self.auto.trie.size:
                raise InputError(
                    f"the scores have {vocab_n} columns but the tokenizer has {self.auto.trie.size} tokens"
                )
            for i, gen in enumerate(generated):
                key = tuple(gen)
                seq = self._seq_for(key)
                live.add(key)
                row = scores[i, : self.auto.trie.size] if vocab_n > self.auto.trie.size else scores[i]
                if vocab_n > self.auto.trie.size:
                    scores[i, self.auto.trie.size:] = -float("inf")
                if seq.ended:
                    continue
                if seq.plan is None and self.max_new_tokens is not None:
                    left = self.max_new_tokens - used
                    if self._finish_cost(seq) + self._margin >= left:
                        seq.plan = self._plan(seq)
                if seq.plan is not None:
                    self._only(row, seq.plan[0])
                    continue
                if seq.free is not None:
                    row.masked_fill_(self._free_blocked(seq.free, row.device), -float("inf"))
                    continue
                if seq.state[0] == P_DONE:
                    self._only(row, self.eos)
                    continue
                mask = self.auto.allowed(seq.state)
                ids = self._ids_tensor(mask, row.device) if mask.ids.size else None
                if mask.dense:
                    keep = row[ids].clone() if ids is not None else None
                    row.masked_fill_(self._blocked(mask.dense, row.device), -float("inf"))
                    if ids is not None:
                        row[ids] = keep
                elif ids is not None:
                    keep = row[ids].clone()
                    row.fill_(-float("inf"))
                    row[ids] = keep
                else:
                    raise RuntimeError(f"no token can continue the answer in state {seq.state}")
            # Keep only the states the next step can extend.
            if len(self._seqs) > 4 * len(live) + 64:
                self._seqs = {k: v for k, v in self._seqs.items() if k in live}
            return scores

    # Pickled by reference as maskcodec.hf.SegLogitsProcessor (the module __getattr__ below
    # builds the same class on the other side), not as a local object of this function.
    SegLogitsProcessor.__module__ = __name__
    SegLogitsProcessor.__qualname__ = "SegLogitsProcessor"
    return SegLogitsProcessor


def _processor_grid(rows, cols, grid):
    if grid is not None:
        if rows is not None or cols is not None:
            raise TypeError("give the grid as grid=(rows, cols) or as rows, cols, not both")
        return as_grid(grid)
    if rows is None:
        raise TypeError("SegLogitsProcessor needs the grid: grid=16, grid=(rows, cols) or rows, cols")
    return as_grid((rows, rows if cols is None else cols))


def _processor_prefix(prefix, force_seg):
    if force_seg:
        if prefix not in (None, "none"):
            raise InputError(f"force_seg=True means prefix='none'; it contradicts prefix={prefix!r}")
        return "none"
    policy = resolve_prefix(prefix, True)
    return policy


def __getattr__(name):
    if name == "SegLogitsProcessor":
        cls = _make_processor_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
