"""Geometry of the SAM prompts: known squares in non-square images land on the right SAM pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

import maskcodec as mc
from maskcodec import refine


def _square_grid():
    # 300 x 600 image, 3 x 6 grid: every cell is a 100 x 100 px square; the object is cell (1, 2),
    # i.e. image pixels y in [100, 200), x in [200, 300).
    g = np.zeros((3, 6), dtype=bool)
    g[1, 2] = True
    return g


def test_sam_input_size_matches_resize_longest_side():
    # ResizeLongestSide: scale = 1024 / max(h, w); int(side * scale + 0.5).
    for (h, w), want in {
        (300, 600): (512, 1024),
        (600, 300): (1024, 512),
        (480, 640): (768, 1024),
        (427, 640): (683, 1024),  # 683.2 rounds down
        (1, 1000): (1, 1024),
        (1024, 1024): (1024, 1024),
        (333, 500): (682, 1024),  # 681.98 rounds up
    }.items():
        assert refine.sam_input_size((h, w)) == want
        scale = 1024.0 / max(h, w)
        assert want == (int(h * scale + 0.5), int(w * scale + 0.5))


def test_square_lands_on_the_right_sam_pixels_landscape():
    logits = refine.mask_logits(_square_grid(), (300, 600))
    assert logits.shape == (256, 256) and logits.dtype == np.float32
    # The square spans 1024-frame rows [100*512/300, 200*512/300) = [170.7, 341.3) and columns
    # [200*1024/600, 300*1024/600) = [341.3, 512): low-res pixels whose centre 4i+2 falls inside
    # are rows 43..84 and columns 85..127.  Rows >= 128 are padding (the image is 512 high).
    want = np.zeros((256, 256), dtype=bool)
    want[43:85, 85:128] = True
    np.testing.assert_array_equal(logits > 0, want)
    assert np.allclose(np.abs(logits), math.log(999))


def test_square_lands_on_the_right_sam_pixels_portrait():
    g = _square_grid().T  # 6 x 3 grid on a 600 x 300 image: object at y [200, 300), x [100, 200)
    logits = refine.mask_logits(g, (600, 300))
    want = np.zeros((256, 256), dtype=bool)
    want[85:128, 43:85] = True
    np.testing.assert_array_equal(logits > 0, want)


def test_sam2_frame_is_the_whole_image_stretched():
    logits = refine.mask_logits(_square_grid(), (300, 600), frame="sam2")
    # SAM 2 squashes the image to 1024 x 1024: rows [341.3, 682.7) -> 85..170, columns [2*1024/6, 3*1024/6).
    want = np.zeros((256, 256), dtype=bool)
    want[85:171, 85:128] = True
    np.testing.assert_array_equal(logits > 0, want)
    # Equivalently: the grid rendered straight to 256 x 256 with centre alignment.
    np.testing.assert_array_equal(logits > 0, mc.render(_square_grid(), (256, 256), align="center"))


def test_points_and_box_are_in_image_pixels_and_hit_the_logits():
    for size in [(300, 600), (600, 300), (480, 640), (97, 1000)]:
        h, w = size
        rng = np.random.default_rng(h * w)
        g = np.zeros((16, 16), dtype=bool)
        g[4:11, 3:9] = True
        g[rng.integers(0, 16, 5), rng.integers(0, 16, 5)] = True
        p = refine.sam_prompts(g, size, positive=4, negative=5)
        assert p.point_coords.shape == (9, 2) and p.point_labels.tolist() == [1] * 4 + [0] * 5
        rendered = mc.render(g, size)
        for (x, y), lab in zip(p.point_coords, p.point_labels):
            assert 0 <= x < w and 0 <= y < h
            assert bool(rendered[int(y), int(x)]) == bool(lab)
            # The same point in SAM's 256 frame lies on a logit of the same sign.
            fx, fy = refine.to_sam_frame([x, y], size) / 4
            assert (p.mask_logits[int(fy), int(fx)] > 0) == bool(lab)
        ys, xs = np.nonzero(g)
        x0, y0, x1, y1 = p.box
        assert x0 == xs.min() * w / 16 and x1 == (xs.max() + 1) * w / 16
        assert y0 == ys.min() * h / 16 and y1 == (ys.max() + 1) * h / 16


def test_first_positive_is_the_deepest_cell_and_points_are_distinct():
    g = np.zeros((9, 9), dtype=bool)
    g[1:8, 1:8] = True  # a 7x7 block: the deepest cell is its centre (4, 4)
    p = refine.sam_prompts(g, (90, 90), positive=3, negative=4, margin=1.5)
    assert p.point_coords[0].tolist() == [45.0, 45.0]
    pos = {tuple(c) for c, lab in zip(p.point_coords.tolist(), p.point_labels) if lab == 1}
    neg = [tuple(c) for c, lab in zip(p.point_coords.tolist(), p.point_labels) if lab == 0]
    assert len(pos) == 3 and len(set(neg)) == 4
    for x, y in neg:  # within margin of the object: the 1-cell ring around it
        r, c = int(y // 10), int(x // 10)
        assert not g[r, c] and (r in (0, 8) or c in (0, 8))


def test_deterministic_and_label_selection():
    lg = mc.LabelGrid([[0, 1, 1, 0], [2, 2, 0, 0]], ("others", "cat", "dog"))
    a = refine.sam_prompts(lg, (50, 80), label="dog")
    b = refine.sam_prompts(lg, (50, 80), label="dog")
    np.testing.assert_array_equal(a.point_coords, b.point_coords)
    np.testing.assert_array_equal(a.mask_logits, b.mask_logits)
    assert a.box.tolist() == [0.0, 25.0, 40.0, 50.0]
    assert refine.sam_prompts(lg, (50, 80)).box.tolist() == [0.0, 0.0, 60.0, 50.0]


def test_counts_are_fixed_even_with_few_cells():
    g = np.zeros((4, 4), dtype=bool)
    g[0, 0] = True
    p = refine.sam_prompts(g, (40, 40), positive=5, negative=2)
    assert p.point_labels.tolist() == [1] * 5 + [0] * 2
    assert {tuple(c) for c in p.point_coords[:5].tolist()} == {(5.0, 5.0)}
    full = refine.sam_prompts(np.ones((4, 4), dtype=bool), (40, 40), positive=2, negative=3)
    assert full.point_labels.tolist() == [1, 1]  # no background cell: no negatives


def test_empty_grid_is_documented_empty():
    p = refine.sam_prompts(np.zeros((16, 16), dtype=bool), (100, 200), positive=3, negative=2)
    assert p.empty and p.box is None
    assert p.point_labels.tolist() == [0, 0]
    assert (p.mask_logits < 0).all()
    assert not refine.sam_prompts(_square_grid(), (300, 600)).empty


def test_fallback_distance_transform_equals_scipy_or_brute_force(monkeypatch):
    rng = np.random.default_rng(0)
    targets = rng.random((23, 31)) < 0.1
    got = refine._edt_to(targets, targets.shape)
    ty, tx = np.nonzero(targets)
    yy, xx = np.indices(targets.shape)
    brute = np.sqrt(((yy[..., None] - ty) ** 2 + (xx[..., None] - tx) ** 2).min(axis=-1))
    np.testing.assert_allclose(got, brute)
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    np.testing.assert_allclose(refine._edt_to(targets, targets.shape), brute)
    assert np.isinf(refine._edt_to(np.zeros((3, 3), bool), (3, 3))).all()


@pytest.mark.parametrize(
    "call, err, match",
    [
        (lambda: refine.mask_logits(np.zeros((2, 2)), (10, 10)), mc.InputError, "dtype"),
        (lambda: refine.mask_logits(np.zeros(4, bool), (10, 10)), mc.InputError, "2-D"),
        (lambda: refine.mask_logits(np.zeros((2, 2), bool), (10, 10), frame="sam3"), mc.InputError, "frame"),
        (lambda: refine.mask_logits(np.zeros((2, 2), bool), (0, 10)), mc.InputError, "positive"),
        (lambda: refine.sam_prompts(np.zeros((2, 2), bool), (10, 10), positive=-1), mc.InputError, "positive"),
        (lambda: refine.sam_prompts(np.zeros((2, 2), bool), (10, 10), margin=0), mc.InputError, "margin"),
        (lambda: refine.sam_prompts(np.zeros((2, 2), bool), (10, 10), label="cat"), mc.InputError, "LabelGrid"),
        (lambda: refine.to_sam_frame([1, 2, 3], (10, 10)), mc.InputError, r"\(x, y\)"),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_refine_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, maskcodec.refine; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def _sam_image_processor():
    transformers = pytest.importorskip("transformers")
    cls = getattr(transformers, "SamImageProcessorPil", None) or transformers.SamImageProcessor
    return cls()


@pytest.mark.parametrize("size", [(300, 600), (600, 300), (427, 640), (97, 1000)])
def test_hf_sam_processor_agrees_with_our_geometry(size):
    """Hugging Face's own SAM preprocessing puts our points where to_sam_frame says, at the resized size."""
    pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from PIL import Image

    proc = transformers.SamProcessor(image_processor=_sam_image_processor())
    h, w = size
    g = np.zeros((8, 8), dtype=bool)
    g[2:6, 1:4] = True
    p = refine.sam_prompts(g, size, positive=2, negative=2)
    enc = proc(Image.new("RGB", (w, h)), input_points=[[p.point_coords.tolist()]],
               input_labels=[[p.point_labels.tolist()]], input_boxes=[[p.box.tolist()]], return_tensors="pt")
    assert tuple(enc["reshaped_input_sizes"][0].tolist()) == refine.sam_input_size(size)
    assert tuple(enc["pixel_values"].shape[-2:]) == (1024, 1024)
    np.testing.assert_allclose(enc["input_points"][0, 0].numpy(), refine.to_sam_frame(p.point_coords, size), rtol=1e-5)
    box = enc["input_boxes"][0, 0].numpy().reshape(2, 2)
    np.testing.assert_allclose(box, refine.to_sam_frame(p.box.reshape(2, 2), size), rtol=1e-5)
    # Every positive point lands on a positive mask logit in the 256 frame.
    for (x, y), lab in zip(enc["input_points"][0, 0].numpy() / 4, p.point_labels):
        assert (p.mask_logits[int(y), int(x)] > 0) == bool(lab)


def test_prompts_drive_a_tiny_hf_sam_model():
    """Shapes and dtypes are what transformers' SamModel accepts (random weights, no download)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from PIL import Image

    t = transformers
    cfg = t.SamConfig(
        vision_config=t.SamVisionConfig(hidden_size=32, output_channels=32, num_hidden_layers=1, num_attention_heads=2,
                                        mlp_dim=64, global_attn_indexes=[0], window_size=4, num_pos_feats=16),
        prompt_encoder_config=t.SamPromptEncoderConfig(hidden_size=32, mask_input_channels=4),
        mask_decoder_config=t.SamMaskDecoderConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                                   mlp_dim=64, iou_head_hidden_dim=32),
    )
    torch.manual_seed(0)
    model = t.SamModel(cfg).eval()
    proc = t.SamProcessor(image_processor=_sam_image_processor())
    image = Image.new("RGB", (60, 30))
    p = refine.sam_prompts(mc.LabelGrid([[0, 1], [1, 1]], ("others", "x")), (30, 60))
    inputs = proc(image, input_points=[[p.point_coords.tolist()]], input_labels=[[p.point_labels.tolist()]],
                  input_boxes=[[p.box.tolist()]], return_tensors="pt")
    inputs["input_masks"] = torch.from_numpy(p.mask_logits)[None, None]
    with torch.no_grad():
        out = model(**inputs, multimask_output=False)
    masks = proc.image_processor.post_process_masks(out.pred_masks, inputs["original_sizes"], inputs["reshaped_input_sizes"])
    assert tuple(masks[0].shape[-2:]) == (30, 60)
