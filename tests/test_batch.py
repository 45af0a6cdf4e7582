"""encode_masks / decode_masks, the kernels behind them, and decode_mask's fast path."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import maskcodec as mc
import reference as ref
from conftest import coco_masks
from strategies import arbitrary_text, examples, safe_labels, small_masks, valid_then_mutated

# ============================================================================ encode


@given(
    masks=st.lists(small_masks(max_side=20), min_size=1, max_size=6),
    labels=st.lists(safe_labels.filter(lambda s: s != "others"), min_size=1, max_size=3),
    grid=st.integers(1, 9),
    fmt=st.sampled_from(["rrle", "irle", "full"]),
    envelope=st.booleans(),
    threads=st.sampled_from([1, 3]),
)
@settings(max_examples=examples(150))
def test_encode_masks_equal_encode_mask(masks, labels, grid, fmt, envelope, threads):
    per = [labels[i % len(labels)] for i in range(len(masks))]
    opts = dict(grid=grid, format=fmt, envelope=envelope)
    want = [mc.encode_mask(m, lab, **opts) for m, lab in zip(masks, per)]
    assert mc.encode_masks(masks, per, threads=threads, **opts) == want
    assert mc.encode_masks(masks, per[0], threads=threads, **opts) == [
        mc.encode_mask(m, per[0], **opts) for m in masks
    ]
    # a stack of masks of one size (one kernel call per chunk), any layout
    stack = np.stack([np.resize(m, masks[0].shape) for m in masks])
    want = [mc.encode_mask(m, lab, **opts) for m, lab in zip(stack, per)]
    assert mc.encode_masks(stack, per, threads=threads, **opts) == want
    assert mc.encode_masks(np.asfortranarray(stack), per, **opts) == want
    assert mc.encode_masks(stack[:, ::-1, ::2], per, **opts) == [
        mc.encode_mask(m, lab, **opts) for m, lab in zip(stack[:, ::-1, ::2], per)
    ]


@pytest.mark.slow_without_jit
def test_encode_masks_coco(coco):
    masks = coco_masks()
    labels = [f"category {a['category_id']}" for a, _ in coco]
    want = [mc.encode_mask(m, lab) for m, lab in zip(masks, labels)]
    assert mc.encode_masks(masks, labels) == want
    assert mc.encode_masks(masks, labels, threads=2) == want
    assert mc.encode_masks(masks, labels, threads=None, grid=(24, 9), format="irle") == [
        mc.encode_mask(m, lab, grid=(24, 9), format="irle") for m, lab in zip(masks, labels)
    ]


def test_encode_masks_other_options_go_mask_by_mask():
    rng = np.random.default_rng(0)
    maps = [rng.integers(0, 3, size=(9, 7)) for _ in range(4)]
    names = {1: "cat", 2: "dog"}
    for method in ("nearest", "area"):
        want = [mc.encode_mask(m, names, grid=3, method=method) for m in maps]
        assert mc.encode_masks(maps, names, grid=3, method=method, threads=2) == want
        assert mc.encode_masks(np.stack(maps), [names] * 4, grid=3, method=method) == want
    binary = [m == 1 for m in maps]
    for kw in (dict(method="coverage", threshold=0.3), dict(nonempty=True), dict(method="area")):
        assert mc.encode_masks(binary, "cat", grid=4, **kw) == [mc.encode_mask(m, "cat", grid=4, **kw) for m in binary]


def test_encode_masks_errors():
    m = np.zeros((4, 4), bool)
    assert mc.encode_masks([], "dog") == [] and mc.encode_masks(np.zeros((0, 3, 3), bool), "dog") == []
    with pytest.raises(TypeError, match="list of masks"):
        mc.encode_masks(m.tolist().__iter__(), "dog")
    with pytest.raises(mc.InputError, match="must be 3-D"):
        mc.encode_masks(m, "dog")
    with pytest.raises(mc.InputError, match="got 1 labels for 2 masks"):
        mc.encode_masks([m, m], ["dog"])
    with pytest.raises(TypeError, match="labels must be"):
        mc.encode_masks([m], 3)
    with pytest.raises(mc.InputError, match=r"masks\[1\] must be 2-D"):
        mc.encode_masks([m, np.zeros(3)], "dog")
    with pytest.raises(mc.InputError, match="float"):
        mc.encode_masks(np.zeros((2, 3, 3)), "dog")
    with pytest.raises(mc.LabelError, match="equals the background"):
        mc.encode_masks([m], "others")
    with pytest.raises(mc.LabelError):
        mc.encode_masks([m, m], ["dog", "a|b"])
    with pytest.raises(mc.InputError, match="threads must be >= 1"):
        mc.encode_masks([m], "dog", threads=0)
    with pytest.raises(TypeError, match="threads must be an int"):
        mc.encode_masks([m], "dog", threads=True)
    with pytest.raises(mc.InputError) as info:  # per-mask path: the error says which mask
        mc.encode_masks([np.zeros((3, 3), int), np.full((3, 3), 5)], {1: "cat"}, grid=3)
    assert "no name" in str(info.value)
    if hasattr(info.value, "__notes__"):
        assert info.value.__notes__ == ["(in masks[1])"]


# ============================================================================ decode

_MODES = st.sampled_from(["repair", "strict", "text4seg"])


def _one(text, size, **kw):
    """decode_mask, or the exception type it raises."""
    try:
        return mc.decode_mask(text, size=size, **kw)
    except mc.ParseError:
        return mc.ParseError


@given(
    items=st.lists(valid_then_mutated("rrle", max_side=9), min_size=1, max_size=5),
    extra=st.lists(arbitrary_text, max_size=2),
    mode=_MODES,
    given_grid=st.booleans(),
    size=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    align=st.sampled_from(["corner", "center"]),
    threads=st.sampled_from([1, 2]),
)
@settings(max_examples=examples(200))
def test_decode_masks_equal_decode_mask(items, extra, mode, given_grid, size, align, threads):
    texts = [t for _, valid, bad in items for t in (valid, bad)] + extra
    grid = items[0][0].shape if given_grid else None
    kw = dict(grid=grid, mode=mode, align=align)
    want = [_one(t, size, **kw) for t in texts]
    sizes = [(size[0] + i % 3, size[1] + i % 2) for i in range(len(texts))]
    want_each = [_one(t, s, **kw) for t, s in zip(texts, sizes)]
    if any(w is mc.ParseError for w in want):
        with pytest.raises(mc.ParseError):
            mc.decode_masks(texts, size=size, threads=threads, **kw)
        return
    got = mc.decode_masks(texts, size=size, threads=threads, **kw)
    assert got.shape == (len(texts), *size) and got.dtype == np.bool_
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    for g, w in zip(mc.decode_masks(texts, size=sizes, threads=threads, **kw), want_each):
        assert g.dtype == np.bool_
        np.testing.assert_array_equal(g, w)


@pytest.mark.slow_without_jit
def test_decode_masks_coco():
    masks = coco_masks()[:200]
    texts = mc.encode_masks(masks, "white horse")
    sizes = [m.shape for m in masks]
    got = mc.decode_masks(texts, size=sizes, threads=2)
    for g, t, s in zip(got, texts, sizes):
        np.testing.assert_array_equal(g, mc.decode_mask(t, size=s))
    one = mc.decode_masks(texts, size=(123, 77), grid=16, mode="strict")
    for g, t in zip(one, texts):
        np.testing.assert_array_equal(g, mc.decode_mask(t, size=(123, 77)))


def test_decode_masks_options_and_errors():
    texts = ["<seg>others *1| Dog *1\n</seg>", "<seg>dog *1| others *1\n</seg>"]
    kw = dict(grid=(1, 2), labels=["dog"])
    np.testing.assert_array_equal(mc.decode_masks(texts, size=(1, 2), **kw), [[[0, 1]], [[1, 0]]])
    assert mc.decode_masks([], size=(3, 3)).shape == (0, 3, 3) and mc.decode_masks([], size=[]) == []
    irle = mc.to_text(mc.LabelGrid([[0, 1]], ["others", "x"]), format="irle")
    np.testing.assert_array_equal(mc.decode_masks([irle], size=(1, 2), grid=(1, 2), format="irle")[0], [[0, 1]])
    for kw in (dict(align="torch"), dict(via=(5, 3)), dict(align="torch", via=(40, 41), mode="text4seg")):
        want = [mc.decode_mask(t, size=(9, 6), **kw) for t in texts]
        np.testing.assert_array_equal(mc.decode_masks(texts, size=(9, 6), **kw), want)
    buf = np.ones((2, 9, 6), dtype=bool)
    got = mc.decode_masks(texts, size=(9, 6), out=buf, threads=2)
    assert got is buf
    np.testing.assert_array_equal(buf, [mc.decode_mask(t, size=(9, 6)) for t in texts])
    for bad in (np.ones((2, 9, 6), dtype=np.uint8), np.ones((3, 9, 6), dtype=bool), np.ones((2, 6, 9), bool).transpose(0, 2, 1)):
        with pytest.raises(mc.InputError, match="out must be"):
            mc.decode_masks(texts, size=(9, 6), out=bad)
    with pytest.raises(TypeError, match="out must be a numpy array"):
        mc.decode_masks(texts, size=(9, 6), out=[[0]])
    with pytest.raises(mc.InputError, match="one size"):
        mc.decode_masks(texts, size=[(9, 6), (9, 6)], out=buf)
    with pytest.raises(TypeError, match="sequence of str"):
        mc.decode_masks("<seg>x *1\n</seg>", size=(1, 1))
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        mc.decode_masks(["", b""], size=(1, 1))
    with pytest.raises(mc.InputError, match="got 1 sizes for 2 texts"):
        mc.decode_masks(texts, size=[(1, 2)])
    with pytest.raises(TypeError, match="size must be"):
        mc.decode_masks(texts, size="1x2")
    with pytest.raises(mc.InputError, match="positive"):
        mc.decode_masks(texts, size=[(1, 2), (0, 2)])
    with pytest.raises(mc.ParseError) as info:
        mc.decode_masks(["<seg>x *1\n</seg>", "<seg>x *2\n</seg>"], size=(2, 2), grid=1, mode="strict")
    if hasattr(info.value, "__notes__"):
        assert info.value.__notes__ == ["(in texts[1])"]


# ============================================================================ decode_mask's fast path


@pytest.mark.parametrize("text", [
    "<seg>Others *2\n dog *2\n</seg>",  # issue 9: the fast path read "Others" as foreground
    "<seg>OTHERS *1| dog *1\n dog *2\n</seg>",
    "<seg>dog *1| oThErS *1\n others *2\n</seg>",
    "<seg>otherſ *2\n dog *2\n</seg>",  # ſ (long s) casefolds to s: only the Python parser knows
    "<seg>caf\u00e9 *2\n dog *2\n</seg>",
    "<seg>a\u2028b *2\n dog *2\n</seg>",  # unsafe non-ASCII label
    "<seg>a\x7fb *2\n dog *2\n</seg>",
    "<seg>a\tb *2\n dog *2\n</seg>",
    "<seg>x\ud800 *2\n dog *2\n</seg>",  # a lone surrogate
])
@pytest.mark.parametrize("mode", ["repair", "strict"])
def test_decode_mask_fast_path_agrees_with_parse(text, mode):
    try:
        want = mc.parse(text, mode=mode, grid=2).grid.mask((3, 5))
    except (mc.ParseError, UnicodeEncodeError) as exc:
        with pytest.raises(type(exc)):
            mc.decode_mask(text, size=(3, 5), grid=2, mode=mode)
        return
    np.testing.assert_array_equal(mc.decode_mask(text, size=(3, 5), grid=2, mode=mode), want)
    np.testing.assert_array_equal(mc.decode_masks([text], size=(3, 5), grid=2, mode=mode)[0], want)


def test_decode_mask_folds_background_like_repair_parser():
    # A non-ASCII background: folding is left to the Python parser.
    text = "<seg>ÖTHERS *2\n dog *2\n</seg>"
    want = mc.parse(text, mode="repair", background="öthers").grid.mask((2, 2))
    np.testing.assert_array_equal(mc.decode_mask(text, size=(2, 2), background="öthers"), want)
    assert want.tolist() == [[False, False], [True, True]]


@given(text=arbitrary_text | valid_then_mutated("rrle").map(lambda t: t[2]), mode=st.sampled_from(["repair", "strict"]),
       grid=st.none() | st.integers(1, 6), size=st.tuples(st.integers(1, 30), st.integers(1, 30)))
@settings(max_examples=examples(300))
@example(text="<seg>Others *2\n dog *2\n</seg>", mode="repair", grid=2, size=(2, 2))
def test_decode_mask_equals_parse_then_render(text, mode, grid, size):
    try:
        want = mc.parse(text, mode=mode, grid=grid).grid.mask(size)
    except mc.ParseError:
        with pytest.raises(mc.ParseError):
            mc.decode_mask(text, size=size, grid=grid, mode=mode)
        return
    np.testing.assert_array_equal(mc.decode_mask(text, size=size, grid=grid, mode=mode), want)


# ============================================================================ kernels


@given(n_out=st.integers(1, 300), n_in=st.integers(1, 70), align=st.sampled_from(["corner", "center"]))
@settings(max_examples=examples(300))
@example(n_out=1, n_in=1, align="center")
@example(n_out=3, n_in=7, align="corner")
def test_bounds_match_reference(n_out, n_in, align):
    from maskcodec.grid import _bounds

    assert _bounds(n_out, n_in, align).tolist() == ref.cell_bounds(n_out, n_in, align)


def test_render_large_and_any_dtype():
    rng = np.random.default_rng(1)
    for dtype in (np.uint8, np.int64, np.int32, np.bool_):
        ids = rng.integers(0, 2 if dtype is np.bool_ else 300, size=(5, 7)).astype(dtype)
        for size in ((700, 333), (3, 1), (1, 900)):
            for align in ("corner", "center"):
                np.testing.assert_array_equal(mc.render(ids, size, align=align), ref.upsample(ids, *size, align))


def test_threads_leave_no_thread_behind():
    import threading

    before = threading.active_count()
    texts = mc.encode_masks(np.zeros((8, 5, 5), bool), "dog", threads=3)
    mc.decode_masks(texts, size=(5, 5), threads=3)
    assert threading.active_count() == before


def test_encode_masks_refuse_a_label_map_with_one_label_like_encode_mask(tmp_path):
    from PIL import Image

    binary = np.zeros((6, 6), np.uint8)
    binary[1:4, 2:5] = 255
    label_map = binary.copy()
    label_map[4:, :3] = 7
    with pytest.raises(mc.InputError) as want:
        mc.encode_mask(label_map, "dog", grid=6)
    for masks in ([binary, label_map], np.stack([binary, label_map])):
        with pytest.raises(type(want.value)) as got:
            mc.encode_masks(masks, "dog", grid=6)
        assert str(got.value) == str(want.value)
        if hasattr(got.value, "__notes__"):
            assert got.value.__notes__ == ["(in masks[1])"]
    # what encode_mask accepts besides arrays, here in a list: a path, an RGB copy of a grey mask
    path = tmp_path / "m.png"
    Image.fromarray(binary).save(path)
    rgb = np.repeat(binary[:, :, None], 3, axis=2)
    assert mc.encode_masks([path, rgb, binary], "dog", grid=3) == [mc.encode_mask(binary, "dog", grid=3)] * 3


def test_decode_masks_refuses_a_batch_over_max_pixels_before_allocating():
    texts = ["<seg>others *1\n</seg>"] * 5
    # each mask fits, the batch does not: refused with the count, not a numpy MemoryError
    with pytest.raises(mc.InputError, match="batch of 5 masks holds 5000000000 pixels"):
        mc.decode_masks(texts, size=(40000, 25000), grid=1)
    with pytest.raises(mc.InputError, match="max_pixels=100"):
        mc.decode_masks(texts[:2], size=[(10, 6), (10, 5)], grid=1, max_pixels=100)
    assert mc.decode_masks(texts[:2], size=[(10, 5), (10, 5)], grid=1, max_pixels=100)[1].shape == (10, 5)
    assert mc.decode_masks(texts, size=(4, 5), grid=1, max_pixels=100).shape == (5, 4, 5)
