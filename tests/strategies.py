"""Every hypothesis strategy the test suite uses, in one place."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import maskcodec as mc

# Labels a user might really write, plus ones chosen to sit next to the grammar's edges.
_NAMED_LABELS = [
    "dog",
    "white horse",
    "man in red shirt on the left",
    "person 2",
    "Others",
    "others dog",
    "traffic light",
    "猫",
    "café au lait",
    "Ελληνικά",
    "🐕 dog",
    "a<b",
    "seg>",
    "<seg",
    "/seg>",
    "x\ty",
    "two  spaces",
    "3",
    "007",
    "a-b_c.d",
    "x,y",
    "quote's \"q\"",
    "a:b;c",
    "\u00e9\u0301",
]

#: Any character except surrogates; the filter keeps the safe labels.
_label_chars = st.characters(blacklist_categories=("Cs",))

#: Labels that are safe to write: random Unicode (filtered) or hand-picked awkward ones.
safe_labels = st.one_of(
    st.sampled_from(_NAMED_LABELS),
    st.text(_label_chars, min_size=1, max_size=12).filter(mc.is_safe_label),
    st.text(st.sampled_from("ab <>/seg\t.-é猫"), min_size=1, max_size=10).filter(mc.is_safe_label),
)

#: Arbitrary strings, for label checks and safe_label.
any_strings = st.one_of(
    st.text(_label_chars, max_size=20),
    st.lists(st.sampled_from(list("ab |*\n\r\t <>/seg") + ["<seg>", "</seg>", "\x00", "\u2028", "\x85", "\xa0"]), max_size=20).map(
        "".join
    ),
)


@st.composite
def label_sets(draw, max_labels: int = 5, background=None):
    """A tuple of distinct safe labels, the background first."""
    bg = background if background is not None else draw(st.one_of(st.just("others"), safe_labels))
    fg = draw(st.lists(safe_labels.filter(lambda s: s != bg), max_size=max_labels - 1, unique=True))
    return (bg, *fg)


@st.composite
def label_grids(draw, max_rows: int = 12, max_cols: int = 12, max_labels: int = 5, background=None):
    """A random :class:`maskcodec.LabelGrid` (not necessarily canonical: unused labels allowed)."""
    labels = draw(label_sets(max_labels, background))
    rows = draw(st.integers(1, max_rows))
    cols = draw(st.integers(1, max_cols))
    # Runs of equal ids are what RLE compresses, so favour them: draw a few ids and repeat each.
    ids = draw(
        hnp.arrays(np.int64, (rows, cols), elements=st.integers(0, len(labels) - 1))
        | st.builds(
            lambda seed, p: _blocky(seed, rows, cols, len(labels), p),
            st.integers(0, 2**32 - 1),
            st.floats(0.0, 0.5),
        )
    )
    return mc.LabelGrid(ids, labels)


def _blocky(seed: int, rows: int, cols: int, k: int, p_change: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flat = np.empty(rows * cols, dtype=np.int64)
    v = int(rng.integers(k))
    for i in range(flat.size):
        if rng.random() < p_change:
            v = int(rng.integers(k))
        flat[i] = v
    return flat.reshape(rows, cols)


@st.composite
def small_masks(draw, max_side: int = 12, max_value: int = 1, dtype=None):
    """A small 2-D mask: bool, or integer ids 0..max_value (blob-like or random)."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    if dtype is None:
        dtype = draw(st.sampled_from([np.bool_, np.uint8, np.int32, np.uint16])) if max_value == 1 else np.int64
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    kind = draw(st.sampled_from(["random", "blob", "sparse"]))
    if kind == "random":
        m = rng.integers(0, max_value + 1, size=(h, w))
    elif kind == "blob":
        m = np.zeros((h, w), dtype=np.int64)
        for _ in range(int(rng.integers(1, 4))):
            y0, x0 = int(rng.integers(h)), int(rng.integers(w))
            y1, x1 = int(rng.integers(y0, h)) + 1, int(rng.integers(x0, w)) + 1
            m[y0:y1, x0:x1] = int(rng.integers(1, max_value + 1))
    else:
        m = np.zeros((h, w), dtype=np.int64)
        for _ in range(int(rng.integers(1, 3))):
            m[int(rng.integers(h)), int(rng.integers(w))] = int(rng.integers(1, max_value + 1))
    if dtype is np.bool_:
        return m.astype(bool)
    return m.astype(dtype)


grid_sides = st.integers(1, 64)
big_sides = st.integers(1, 2048)

# ----------------------------------------------------------------------- text

_GRAMMAR_BITS = ["|", "| ", "\n", "\n ", " ", " *", "*", "0", "1", "9", "<seg>", "</seg>", "\r", "others", "x"]

#: Arbitrary text, and text made of the grammar's own pieces (far likelier to get deep into the parser).
arbitrary_text = st.one_of(
    st.text(max_size=80),
    st.lists(st.sampled_from(_GRAMMAR_BITS + ["dog", "2", "16", "99999999999"]), max_size=40).map("".join),
    st.lists(st.sampled_from(_GRAMMAR_BITS), max_size=30).map(lambda parts: "<seg>" + "".join(parts)),
)


@st.composite
def mutated(draw, text: str):
    """``text`` after a few random edits: deletions, insertions of structural pieces, truncation."""
    n_ops = draw(st.integers(1, 4))
    for _ in range(n_ops):
        op = draw(st.sampled_from(["delete", "insert", "truncate", "replace_count"]))
        if not text:
            break
        i = draw(st.integers(0, len(text)))
        if op == "delete":
            j = draw(st.integers(i, min(len(text), i + 5)))
            text = text[:i] + text[j:]
        elif op == "insert":
            piece = draw(st.sampled_from(["|", "\n", "\n ", " ", "*", "0", "7", "42", "99999999999", "| ", "\r"]))
            text = text[:i] + piece + text[i:]
        elif op == "truncate":
            text = text[:i]
        else:
            k = text.find("*", i)
            if k >= 0:
                digits = draw(st.sampled_from(["0", "00", "99999999999", "-1", "+2", " 3", "1_0", "x"]))
                end = k + 1
                while end < len(text) and text[end].isdigit():
                    end += 1
                text = text[: k + 1] + digits + text[end:]
    return text


@st.composite
def valid_then_mutated(draw, fmt: str = "rrle", max_side: int = 8):
    """(grid, valid text, mutated text) for a random grid."""
    g = draw(label_grids(max_side, max_side, 4, background="others"))
    text = mc.to_text(g, format=fmt)
    return g, text, draw(mutated(text))


def examples(n: int) -> int:
    """``n`` hypothesis examples, a quarter of them (at least 10) when the JIT is off."""
    import os

    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return max(10, n // 4)
    # MASKCODEC_TEST_SCALE=20 searches twenty times longer (a fuzzing session, not CI).
    return n * int(os.environ.get("MASKCODEC_TEST_SCALE", "1"))
