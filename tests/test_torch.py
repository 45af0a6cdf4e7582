"""maskcodec.torch against the numpy core, sample by sample, on the CPU."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import maskcodec as mc  # noqa: E402
import maskcodec.torch as mct  # noqa: E402

# Sizes chosen so that cells straddle pixels (fractional overlaps), plus exact divisions.
SHAPES = [(7, 5), (13, 29), (24, 24), (37, 16), (64, 48), (128, 100)]
GRIDS = [4, (3, 5), 8, (16, 24), 24]


def _blobs(rng, b, h, w, values=(1,), dtype=np.uint8):
    out = np.zeros((b, h, w), dtype=dtype)
    for i in range(b):
        for v in values:
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            y1, x1 = y0 + rng.integers(1, h + 1), x0 + rng.integers(1, w + 1)
            out[i, y0:y1, x0:x1] = v
        noise = rng.random((h, w)) < 0.05
        out[i][noise] = rng.choice(np.asarray(values, dtype=dtype), size=int(noise.sum()))
    return out


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("grid", GRIDS)
def test_quantize_binary_matches_core(shape, grid):
    rng = np.random.default_rng(hash((shape, str(grid))) % 2**32)
    batch = _blobs(rng, 5, *shape).astype(bool)
    batch[3] = False  # an empty mask
    batch[4] = False
    batch[4, shape[0] // 2, shape[1] // 2] = True  # a one-pixel mask (nonempty matters)
    t = torch.from_numpy(batch)
    for method in ("nearest", "area", "coverage"):
        for nonempty in (False, True):
            got = mct.quantize(t, grid=grid, method=method, nonempty=nonempty)
            assert got.dtype == torch.bool
            for i in range(batch.shape[0]):
                want = mc.quantize(batch[i], grid=grid, method=method, nonempty=nonempty)
                np.testing.assert_array_equal(got[i].numpy(), want, err_msg=f"{method} {nonempty} {i}")


@pytest.mark.parametrize("threshold", [0.25, 1 / 3, 0.5, 0.75, 1.0])
def test_coverage_thresholds_match_core(threshold):
    rng = np.random.default_rng(7)
    batch = _blobs(rng, 4, 29, 41)
    got = mct.quantize(torch.from_numpy(batch), grid=(6, 9), method="coverage", threshold=threshold)
    for i in range(4):
        want = mc.quantize(batch[i], grid=(6, 9), method="coverage", threshold=threshold)
        np.testing.assert_array_equal(got[i].numpy(), want)


def test_area_ties_go_to_background_like_core():
    # 4 px -> 2 cells per side with a half-covered cell: a real tie.
    m = np.zeros((1, 4, 4), dtype=np.uint8)
    m[0, :, :1] = 1
    m[0, :2, 1] = 1
    got = mct.quantize(torch.from_numpy(m), grid=2, method="area")[0].numpy()
    np.testing.assert_array_equal(got, mc.quantize(m[0], grid=2, method="area"))
    # 3 px -> 2 cells: pixel 1 is split half/half between the cells.
    m = np.zeros((1, 3, 3), dtype=np.int32)
    m[0, :, 1] = 1
    got = mct.quantize(torch.from_numpy(m), grid=2, method="area")[0].numpy()
    np.testing.assert_array_equal(got, mc.quantize(m[0], grid=2, method="area"))


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.int64])
@pytest.mark.parametrize("shape", [(13, 29), (64, 48), (30, 30)])
def test_quantize_label_maps_match_core(dtype, shape):
    rng = np.random.default_rng(int(np.dtype(dtype).itemsize) * 100 + shape[0])
    batch = _blobs(rng, 4, *shape, values=(3, 7, 200, 255), dtype=dtype)
    batch[2] = _blobs(rng, 1, *shape, values=(1,), dtype=dtype)[0]  # a binary sample in the batch
    t = torch.from_numpy(batch)
    for grid in ((5, 7), 8):
        for method in ("nearest", "area"):
            for nonempty in (False, True):
                got = mct.quantize(t, grid=grid, method=method, nonempty=nonempty)
                assert got.dtype == t.dtype
                for i in range(4):
                    want = mc.quantize(batch[i], grid=grid, method=method, nonempty=nonempty)
                    np.testing.assert_array_equal(got[i].numpy(), want, err_msg=f"{method} {nonempty}")


def test_quantize_nearest_pillow_drift_case():
    # 128 px -> 24 cells is where Pillow's accumulated position differs from the closed formula.
    m = torch.arange(128).repeat(128, 1)[None].to(torch.int64)
    got = mct.quantize(m, grid=24)[0, 0].tolist()
    assert got == mc.quantize(m[0].numpy(), grid=24)[0].tolist()
    assert got[4] == 23


@pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")  # pycocotools with numpy 2
def test_quantize_on_coco_masks():
    pycocotools = pytest.importorskip("pycocotools.mask")
    import json

    with open(os.path.join(os.path.dirname(__file__), "data", "coco_val2014_segm100.json")) as f:
        data = json.load(f)
    anns = data["annotations"] if isinstance(data, dict) else data
    by_size: dict[tuple[int, int], list[np.ndarray]] = {}
    for a in anns[:120]:
        seg = a["segmentation"]
        if isinstance(seg, dict) and isinstance(seg.get("counts"), list):
            seg = pycocotools.frPyObjects(seg, *seg["size"])
        m = pycocotools.decode(seg)
        by_size.setdefault(m.shape, []).append(m)
    checked = 0
    for shape, ms in by_size.items():
        batch = np.stack(ms)
        for method in ("nearest", "area"):
            got = mct.quantize(torch.from_numpy(batch), grid=16, method=method, nonempty=True)
            for i, m in enumerate(ms):
                want = mc.quantize(m, grid=16, method=method, nonempty=True)
                np.testing.assert_array_equal(got[i].numpy(), want)
                checked += 1
    assert checked >= 200


@pytest.mark.parametrize("align", ["corner", "center"])
def test_render_matches_core(align):
    rng = np.random.default_rng(3)
    grids = rng.integers(0, 4, size=(3, 5, 7)).astype(np.uint8)
    t = torch.from_numpy(grids)
    for size in [(5, 7), (1, 1), (17, 9), (100, 333), (480, 640)]:
        got = mct.render(t, size, align=align)
        assert got.shape == (3, *size) and got.dtype == t.dtype
        for i in range(3):
            np.testing.assert_array_equal(got[i].numpy(), mc.render(grids[i], size, align=align))
    sizes = [(10, 20), (33, 7), (5, 5)]
    per = mct.render(t.bool(), sizes, align=align)
    assert isinstance(per, list) and [tuple(p.shape) for p in per] == sizes
    for i, s in enumerate(sizes):
        np.testing.assert_array_equal(per[i].numpy(), mc.render(grids[i] != 0, s, align=align))


def test_render_quantize_round_trip_is_identity_on_divisible_sizes():
    rng = np.random.default_rng(5)
    grids = torch.from_numpy(rng.integers(0, 2, size=(4, 8, 8)).astype(bool))
    big = mct.render(grids, (64, 96))
    for method in ("nearest", "area"):
        assert torch.equal(mct.quantize(big, grid=8, method=method), grids)


@pytest.mark.parametrize(
    "bad, err, match",
    [
        (np.zeros((4, 4), dtype=bool), mc.InputError, r"x\[None\]"),
        (np.zeros((1, 2, 4, 4), dtype=bool), mc.InputError, "shape"),
        (np.zeros((0, 4, 4), dtype=bool), mc.InputError, "empty batch"),
        (np.zeros((2, 0, 4), dtype=bool), mc.InputError, "empty side"),
        (np.zeros((1, 4, 4), dtype=np.float32), mc.InputError, "threshold it first"),
        (np.full((1, 4, 4), -3, dtype=np.int32), mc.InputError, "negative value -3"),
    ],
)
def test_quantize_and_render_bad_input(bad, err, match):
    t = torch.from_numpy(bad)
    with pytest.raises(err, match=match):
        mct.quantize(t, grid=2)
    with pytest.raises(err, match=match):
        mct.render(t, (8, 8))


def test_bad_options():
    t = torch.zeros(1, 4, 4, dtype=torch.bool)
    with pytest.raises(TypeError, match="torch.Tensor"):
        mct.quantize(np.zeros((1, 4, 4), dtype=bool), grid=2)
    with pytest.raises(mc.InputError, match="unknown method"):
        mct.quantize(t, grid=2, method="bilinear")
    with pytest.raises(mc.InputError, match="coverage"):
        mct.quantize(torch.full((1, 4, 4), 3), grid=2, method="coverage")
    with pytest.raises(mc.InputError, match="threshold"):
        mct.quantize(t, grid=2, method="coverage", threshold=0.0)
    with pytest.raises(mc.InputError, match="out of range"):
        mct.quantize(t, grid=0)
    with pytest.raises(mc.InputError, match="2 sizes for a batch of 1"):
        mct.render(t, [(2, 2), (3, 3)])
    with pytest.raises(mc.InputError, match="align"):
        mct.render(t, (2, 2), align="edge")


@pytest.mark.skipif(not hasattr(torch, "device") or torch.device("meta") is None, reason="no meta device")
def test_device_mix_is_refused():
    a = torch.zeros(1, 4, 4, dtype=torch.bool)
    b = torch.zeros(1, 4, 4, dtype=torch.bool, device="meta")
    with pytest.raises(mc.InputError, match="different devices"):
        mct.intersection_union(a, b)


def test_iou_and_counts():
    p = torch.zeros(3, 4, 4, dtype=torch.bool)
    t = torch.zeros(3, 4, 4, dtype=torch.bool)
    p[0, :2] = True
    t[0, :1] = True
    t[1, 0, 0] = True
    inter, union = mct.intersection_union(p, t)
    assert inter.tolist() == [4, 0, 0] and union.tolist() == [8, 1, 0]
    assert mct.iou(p, t).tolist() == [0.5, 0.0, 1.0]
    assert mct.iou(p, t, empty=0.0).tolist()[2] == 0.0
    with pytest.raises(mc.InputError, match="shape"):
        mct.iou(p, t[:, :2])


class CharTokenizer:
    """Token id = code point; 0 is padding (a special token)."""

    pad_token_id = 0

    def batch_decode(self, seqs, skip_special_tokens=True):
        return ["".join(chr(i) for i in s if not (skip_special_tokens and i == 0)) for s in seqs]

    def encode(self, text):
        return [ord(c) for c in text]


def _padded(tok, texts, left=0):
    seqs = [tok.encode(t) for t in texts]
    n = max(map(len, seqs))
    return torch.tensor([[0] * left + s + [0] * (n - len(s)) for s in seqs])


def test_decode_token_ids_matches_core():
    tok = CharTokenizer()
    g1 = mc.LabelGrid([[0, 1, 1], [0, 0, 1]], ("others", "cat"))
    g2 = mc.LabelGrid([[1, 1, 1], [1, 2, 0]], ("others", "dog", "cat"))
    texts = ["Sure: " + g1.to_text(), g2.to_text(), "I cannot see it.", g1.to_text()[:-12]]
    ids = _padded(tok, texts, left=3)
    out = mct.decode_token_ids(ids, tok, size=(7, 11), prompt_length=3)
    assert out.texts == texts
    assert out.found.tolist() == [True, True, False, True]
    assert out.masks.shape == (4, 7, 11) and out.masks.dtype == torch.bool
    for i, t in enumerate(texts):
        np.testing.assert_array_equal(out.masks[i].numpy(), mc.decode_mask(t, size=(7, 11)))
    assert not out.masks[2].any()  # no block: documented all-background mask
    assert out.grids[1] == g2
    assert any(r.kind == "unterminated" for r in out.results[3].repairs)
    per = mct.decode_token_ids(ids, tok, size=[(2, 3), (4, 6), (1, 1), (5, 5)], prompt_length=[3, 3, 3, 3], grid=(2, 3))
    assert [tuple(m.shape) for m in per.masks] == [(2, 3), (4, 6), (1, 1), (5, 5)]
    np.testing.assert_array_equal(per.masks[0].numpy(), g1.mask())
    lists = mct.decode_token_ids([tok.encode(t) for t in texts[:2]], tok, size=(2, 3))
    assert lists.masks.shape == (2, 2, 3) and lists.found.tolist() == [True, True]
    np.testing.assert_array_equal(lists.masks[1].numpy(), g2.mask((2, 3)))
    with pytest.raises(mc.ParseError):
        mct.decode_token_ids(ids, tok, size=(2, 2), prompt_length=3, mode="strict")
    with pytest.raises(mc.InputError, match="empty batch"):
        mct.decode_token_ids([], tok, size=(2, 2))
    with pytest.raises(mc.InputError, match="prompt_length"):
        mct.decode_token_ids(ids, tok, size=(2, 2), prompt_length=[1, 2])
    with pytest.raises(mc.InputError, match="integers"):
        mct.decode_token_ids(ids.float(), tok, size=(2, 2))
    with pytest.raises(TypeError, match="decode"):
        mct.decode_token_ids(ids, object(), size=(2, 2))


TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['content'] is string %}{% set text = m['content'] %}"
    "{% else %}{% set text = m['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') %}"
    "{% endif %}"
    "{% if m['role'] == 'user' %}USER: {{ text }}\n{% else %}ASSISTANT:\n{{ text }}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:\n{% endif %}"
)


@pytest.fixture(scope="module")
def sp_tokenizer(tmp_path_factory):
    mistral_common = pytest.importorskip("mistral_common")
    transformers = pytest.importorskip("transformers")
    src = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")
    d = tmp_path_factory.mktemp("tok")
    shutil.copy(src, d / "tokenizer.model")
    tok = transformers.LlamaTokenizer.from_pretrained(str(d))
    tok.chat_template = TEMPLATE
    return tok


def test_collate_chat_masks_prompt(sp_tokenizer):
    tok = sp_tokenizer
    answers = [mc.LabelGrid([[0, 1], [1, 1]], ("others", "red circle")).to_text(), "<seg>others *2\n others *2\n</seg>"]
    examples = [
        {"messages": [{"role": "user", "content": "Segment the red circle."}, {"role": "assistant", "content": answers[0]}]},
        {
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Segment the blue square in this picture."}]},
                {"role": "assistant", "content": [{"type": "text", "text": answers[1]}]},
            ]
        },
    ]
    batch = mct.collate_chat(examples, tok)
    ids, att, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    assert ids.shape == att.shape == labels.shape and batch["answers"] == answers
    for i, ex in enumerate(examples):
        n = int(att[i].sum())
        assert att[i, :n].all() and not att[i, n:].any()  # right padding
        assert (labels[i, n:] == -100).all()
        supervised = labels[i][labels[i] != -100]
        text = tok.decode(supervised.tolist())
        assert text.startswith(answers[i]) and text.endswith(tok.eos_token)
        # The prompt alone is exactly the masked part.
        prompt = tok.apply_chat_template(ex["messages"][:1], tokenize=False, add_generation_prompt=True)
        n_prompt = len(tok(prompt, add_special_tokens=False)["input_ids"])
        assert (labels[i, :n_prompt] == -100).all() and (labels[i, n_prompt:n] != -100).all()
        assert tok.decode(ids[i, :n].tolist()).replace(" ", "") == tok.apply_chat_template(
            ex["messages"], tokenize=False
        ).replace(" ", "")
    gen = mct.collate_chat(examples, tok, for_generation=True)
    assert "labels" not in gen
    assert gen["attention_mask"][:, -1].all()  # left padding: every prompt ends at the last column
    assert tok.decode(gen["input_ids"][0][gen["attention_mask"][0].bool()].tolist()).endswith("ASSISTANT:\n")
    with pytest.raises(mc.InputError, match="max_length"):
        mct.collate_chat(examples, tok, max_length=10)
    with pytest.raises(mc.InputError, match="assistant"):
        mct.collate_chat([{"messages": examples[0]["messages"][:1]}], tok)
    with pytest.raises(mc.InputError, match="empty batch"):
        mct.collate_chat([], tok)
    with pytest.raises(mc.InputError, match="processor"):
        mct.collate_chat([{**examples[0], "images": [object()]}], tok)


def test_import_maskcodec_does_not_import_torch():
    code = "import sys, maskcodec; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_gpu_check_script_runs_its_comparisons_on_cpu():
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "finetune", "gpu_check.py")
    out = subprocess.run([sys.executable, script, "--device", "cpu", "--batches", "1"], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all checks passed" in out.stdout and "FAIL" not in out.stdout


def test_decode_token_ids_renders_on_the_device_like_the_core(monkeypatch):
    # The accelerator branch (grids moved, then rendered by torch) run on the CPU.
    torch = pytest.importorskip("torch")
    import maskcodec.torch as mct

    texts = [mc.LabelGrid(np.eye(4, dtype=int), ("others", "x")).to_text(), "nothing", "<seg>x *4\n x *4\n"]
    longest = max(map(len, texts))
    ids = torch.tensor([[ord(c) for c in t] + [0] * (longest - len(t)) for t in texts])

    class Chars:
        def batch_decode(self, seqs, skip_special_tokens=True):
            return ["".join(chr(c) for c in s if c) for s in seqs]

    want = mct.decode_token_ids(ids, Chars(), size=(9, 7), grid=4).masks
    monkeypatch.setattr(mct, "_render_on", lambda device: True)
    got = mct.decode_token_ids(ids, Chars(), size=(9, 7), grid=4)
    assert got.masks.dtype == torch.bool and torch.equal(got.masks, want)
    for m, t in zip(got.masks, texts):
        assert np.array_equal(m.numpy(), mc.decode_mask(t, size=(9, 7), grid=4))
