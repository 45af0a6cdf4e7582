"""Token accounting: exact counts with real tokenizers, the estimator, the planner and ``maskcodec stats``.

The real tokenizers are the files shipped in the ``mistral-common`` wheel:
``tokenizer.model.v1`` (LLaMA-style SentencePiece, 32k pieces) and
``tekken_240911.json`` (tiktoken-style byte-level BPE, 131k tokens).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from conftest import COCO_FILE, coco_annotations, coco_masks
from PIL import Image

import maskcodec as mc
from maskcodec import tokens as T
from maskcodec._cli_codec import _COCO_NAMES
from maskcodec.cli import main

sentencepiece = pytest.importorskip("sentencepiece")
tiktoken = pytest.importorskip("tiktoken")
mistral_common = pytest.importorskip("mistral_common")

DATA = os.path.join(os.path.dirname(mistral_common.__file__), "data")
SP_FILE = os.path.join(DATA, "tokenizer.model.v1")
TEKKEN_FILE = os.path.join(DATA, "tekken_240911.json")

SAMPLES = [
    "others *16\n others *16\n",
    "<seg>others *3| fire hydrant *12| others *1\n</seg>",
    "others| others| teddy bear| others\n",
    "a <s> and <|endoftext|> and [INST] stay plain text",
    "étiquette 日本語 ☃ *7",
]


@pytest.fixture(scope="module")
def sp():
    return T.load_tokenizer(SP_FILE)


@pytest.fixture(scope="module")
def tekken():
    return T.load_tokenizer(TEKKEN_FILE)  # mistral-common's Tekkenizer


@pytest.fixture(scope="module")
def tekken_tiktoken():
    return T.load_tokenizer(TEKKEN_FILE, use_mistral_common=False)


@pytest.fixture(scope="module")
def names():
    return [_COCO_NAMES[a["category_id"]] for a in coco_annotations()]


# --------------------------------------------------------------------------- count_tokens


def test_sentencepiece_counts_without_bos_eos(sp):
    assert type(sp).__module__.startswith("sentencepiece")
    # "▁others", "▁*", "1", "6", "<0x0A>" per row: digits split, newline by byte fallback.
    assert T.count_tokens("others *16\n others *16\n", sp) == 10
    with_bos = sentencepiece.SentencePieceProcessor(model_file=SP_FILE, add_bos=True, add_eos=True)
    for s in SAMPLES:
        assert T.count_tokens(s, with_bos) == T.count_tokens(s, sp) == len(sp.encode(s))


def test_tekken_loaders_agree(tekken, tekken_tiktoken):
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    assert isinstance(tekken, Tekkenizer)
    assert isinstance(tekken_tiktoken, tiktoken.Encoding)
    for s in SAMPLES:
        n = T.count_tokens(s, tekken)
        assert n == len(tekken.encode(s, bos=False, eos=False))
        assert T.count_tokens(s, tekken_tiktoken) == n
        assert tekken.decode(tekken.encode(s, bos=False, eos=False)) == s
    assert T.count_tokens("others *16\n others *16\n", tekken) == 10


def test_mistral_common_sentencepiece_and_wrapper(sp):
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer
    from mistral_common.tokens.tokenizers.sentencepiece import SentencePieceTokenizer

    raw = SentencePieceTokenizer(SP_FILE)
    wrapped = MistralTokenizer.from_file(SP_FILE)
    for s in SAMPLES:
        assert T.count_tokens(s, raw) == T.count_tokens(s, wrapped) == T.count_tokens(s, sp)


def _word_level(tmp_path=None):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, processors

    vocab = {"[UNK]": 0, "[CLS]": 1, "others": 2, "*": 3, "|": 4, "dog": 5, "16": 6}
    tok = tokenizers.Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()  # \w+ or [^\w\s]+
    # A post-processor that adds [CLS]: count_tokens must not count it.
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[("[CLS]", 1)])
    return tok


def test_hf_tokenizers_and_transformers():
    tok = _word_level()
    assert len(tok.encode("others *16| dog *16").ids) == 8  # with [CLS]
    assert T.count_tokens("others *16| dog *16", tok) == 7
    transformers = pytest.importorskip("transformers")
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]")
    assert fast("others *16")["input_ids"][0] == 1
    assert T.count_tokens("others *16| dog *16", fast) == 7


def test_load_tokenizer_json_and_folder(tmp_path):
    tok = _word_level()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    loaded = T.load_tokenizer(path)
    assert type(loaded).__module__.startswith("tokenizers")
    assert T.count_tokens("others *16| dog *16", loaded) == 7
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "hf"
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    auto = T.load_tokenizer(folder)
    assert type(auto).__module__.startswith("transformers")
    assert T.count_tokens("others *16| dog *16", auto) == 7


def test_plain_callables():
    assert T.count_tokens("a b c", str.split) == 3
    assert T.count_tokens("abcd", len) == 4  # a callable may return the count itself
    with pytest.raises(TypeError, match="not a sequence of token ids"):
        T.count_tokens("abc", lambda s: 3.5)


def test_unsupported_tokenizer_is_a_typeerror():
    with pytest.raises(TypeError, match=r"sentencepiece\.SentencePieceProcessor, a tiktoken Encoding"):
        T.count_tokens("abc", object())
    with pytest.raises(TypeError, match="text must be a str"):
        T.count_tokens(b"abc", str.split)


def test_load_tokenizer_errors(tmp_path):
    with pytest.raises(mc.InputError, match="nope.model: no such tokenizer file"):
        T.load_tokenizer(tmp_path / "nope.model")
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"\x00\x01 not a model")
    with pytest.raises(mc.InputError, match="junk.model: not a SentencePiece model"):
        T.load_tokenizer(junk)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(mc.InputError, match="other.json: a JSON file that is neither"):
        T.load_tokenizer(other)
    broken = tmp_path / "broken.json"
    broken.write_text('{"config": ')
    with pytest.raises(mc.InputError, match="broken.json: not a readable tokenizer JSON"):
        T.load_tokenizer(broken)


def test_label_tokens_real(sp, tekken):
    # Measured by hand: "▁fire ▁hy dr ant" and " fire hyd rant"; "▁t ed dy ▁bear" and " ted dy bear".
    assert T.label_tokens(["others", "fire hydrant", "teddy bear"], sp) == {
        "others": 1, "fire hydrant": 4, "teddy bear": 4}
    assert T.label_tokens(["others", "fire hydrant", "teddy bear"], tekken) == {
        "others": 1, "fire hydrant": 3, "teddy bear": 3}
    with pytest.raises(mc.LabelError):
        T.label_tokens(["a|b"], sp)


# --------------------------------------------------------------------------- estimator


def test_estimator_structure_small():
    empty = mc.LabelGrid(np.zeros((16, 16), np.uint8), ["others", "dog"])
    assert T.estimate_tokens(empty, envelope=False) == 80
    assert T.estimate_tokens(empty) == 86
    assert T.estimate_tokens(empty, format="full", envelope=False) == 512
    assert T.estimate_tokens(empty, format="irle", envelope=False) == 6  # others *256\n
    g = mc.LabelGrid([[0, 1, 1], [1, 1, 1]], ["others", "dog"])
    # rrle: "others *1| dog *2\n dog *3\n" = 3 + 1 + 3 + 1 + 3 + 1
    assert T.estimate_tokens(g, envelope=False) == 12
    # irle: "others *1| dog *5\n" ; full: 6 cells of 1 token + 6 separators
    assert T.estimate_tokens(g, format="irle", envelope=False) == 8
    assert T.estimate_tokens(g, format="full", envelope=False) == 12
    assert T.estimate_tokens(g, envelope=False, label_tokens={"dog": 5}) == 20
    with pytest.raises(mc.InputError, match="unknown tokenizer family 'gpt'"):
        T.estimate_tokens(g, family="gpt")
    with pytest.raises(TypeError, match="expects a LabelGrid"):
        T.estimate_tokens(np.zeros((2, 2)))


def test_guess_label_tokens_rule():
    assert T.guess_label_tokens("person") == 1
    assert T.guess_label_tokens("refrigerator") == 3  # 1 + ceil(6 / 3)
    assert T.guess_label_tokens("refrigerator", "bpe") == 2  # 1 + ceil(4 / 4)
    assert T.guess_label_tokens("person 12") == 3  # digits one each
    assert T.guess_label_tokens("日本", "sentencepiece") == 4
    assert T.guess_label_tokens("日本", "bpe") == 2


def test_estimator_matches_real_tokenizers_on_random_grids(sp, tekken):
    rng = np.random.default_rng(0)
    labels = ["others", "dog", "white horse", "person 2"]
    for fam, tok in (("sentencepiece", sp), ("bpe", tekken)):
        costs = T.label_tokens(labels, tok)
        for _ in range(30):
            rows, cols = rng.integers(1, 40, size=2)
            ids = rng.integers(0, len(labels), size=(rows, cols)) * (rng.random((rows, cols)) < 0.7)
            g = mc.LabelGrid(ids, labels)
            for fmt in ("rrle", "irle", "full"):
                exact = T.count_tokens(g.to_text(format=fmt), tok)
                est = T.estimate_tokens(g, family=fam, format=fmt, label_tokens=costs)
                # The structure is counted exactly; the only slack is a label glued to "<seg>".
                assert abs(est - exact) <= 2, (fam, fmt, g.to_text(format=fmt))


@pytest.mark.parametrize("grid", [16, 32])
def test_estimator_within_3_percent_on_coco(grid, sp, tekken, names):
    masks = coco_masks()
    for fam, tok in (("sentencepiece", sp), ("bpe", tekken)):
        measured = T.label_tokens({*names, "others"}, tok)
        guessed, given = [], []
        for m, name in zip(masks, names):
            g = mc.encode_grid(m, name, grid=grid)
            exact = T.count_tokens(g.to_text(envelope=False), tok)
            guessed.append(T.estimate_tokens(g, family=fam, envelope=False) / exact - 1)
            given.append(T.estimate_tokens(g, family=fam, envelope=False, label_tokens=measured) / exact - 1)
        guessed, given = np.abs(guessed), np.abs(given)
        # Label costs guessed from characters: 0.3-0.5% on average (docs/tokens.md has the table).
        assert guessed.mean() <= 0.03, (fam, guessed.mean())
        # Label costs measured once per label: every single mask within 3% (at most 1.6% measured).
        assert given.max() <= 0.03, (fam, given.max())
        if fam == "sentencepiece":
            assert given.max() == 0.0


# --------------------------------------------------------------------------- planner


def _square():
    m = np.zeros((64, 64), bool)
    m[8:40, 16:48] = True
    return m


def test_plan_grid_known_answers():
    m = _square()
    plan = T.plan_grid([m], 80, labels="dog", grids=[4, 8, 16], envelope=False)
    assert (plan.grid, plan.tokens, plan.ciou, plan.miou, plan.lost) == ((8, 8), 64, 1.0, 1.0, 0.0)
    assert plan.candidates == (((4, 4), 32), ((8, 8), 64), ((16, 16), 136))
    # 4x4 samples pixels 8, 24, 40, 56: rows 0:32 x cols 16:48 come back; IoU 768 / 1280.
    plan = T.plan_grid([m], 63, labels="dog", grids=[16, 8, 4], envelope=False)
    assert (plan.grid, plan.tokens, plan.ciou) == ((4, 4), 32, 0.6)
    plan = T.plan_grid([m], 38, labels="dog", grids=[16, 8, 4])  # the envelope adds 6
    assert (plan.grid, plan.tokens) == ((4, 4), 38)
    none = T.plan_grid([m], 20, labels="dog", grids=[4, 8])
    assert (none.grid, none.tokens, none.ciou) == (None, None, None)
    assert T.plan_grid([m], 64, labels="dog", grids=8, envelope=False).grid == (8, 8)
    assert len(T.plan_grid([m], 64, labels="dog", grids=8, envelope=False).candidates) == 8


def test_plan_grid_quantile_and_lost():
    empty = np.zeros((64, 64), bool)
    tiny = np.zeros((64, 64), bool)
    tiny[0, 0] = True  # never sampled at 8x8 (pixel 4) or 4x4 (pixel 8)
    masks = [empty, empty, _square()]
    # 8x8 costs 32, 32, 64: every mask fits 40 only at 4x4, the median fits at 8x8.
    assert T.plan_grid(masks, 40, labels="dog", grids=[4, 8], envelope=False).grid == (4, 4)
    assert T.plan_grid(masks, 40, labels="dog", grids=[4, 8], envelope=False, quantile=0.5).grid == (8, 8)
    plan = T.plan_grid([tiny, _square()], 100, labels="dog", grids=[8], envelope=False)
    assert plan.lost == 0.5
    assert plan.miou == pytest.approx(0.5)
    assert plan.ciou == pytest.approx(1024 / 1025)


def test_plan_grid_exact_tokenizer_and_labels(sp):
    m = _square()
    plan = T.plan_grid([m, m], 200, labels=["dog", "fire hydrant"], grids=[4, 8, 16], tokenizer=sp)
    assert plan.exact and plan.grid == (16, 16)
    text = mc.encode_mask(m, "fire hydrant", grid=16)
    assert plan.tokens == T.count_tokens(text, sp)


def test_plan_grid_errors():
    m = _square()
    with pytest.raises(mc.InputError, match="budget must be a positive int"):
        T.plan_grid([m], 0)
    with pytest.raises(mc.InputError, match="quantile must be in"):
        T.plan_grid([m], 10, quantile=1.5)
    with pytest.raises(mc.InputError, match="got 2 labels for 1 masks"):
        T.plan_grid([m], 10, labels=["a", "b"])
    with pytest.raises(mc.InputError, match="at least one mask"):
        T.plan_grid([], 10)
    with pytest.raises(mc.InputError, match="grids is empty"):
        T.plan_grid([m], 10, grids=[])
    with pytest.raises(TypeError, match="grids must be"):
        T.plan_grid([m], 10, grids="16")
    with pytest.raises(mc.LabelError):
        T.plan_grid([m], 10, labels="a*b")


# --------------------------------------------------------------------------- CLI


def _png(path, mask):
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)
    return str(path)


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _row(out: str, title: str, subset: str = "all") -> list[str]:
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(title))
    for ln in lines[start + 2:]:
        if not ln.strip():
            break
        if ln.split()[0] == subset:
            return ln.split()
    raise AssertionError(f"no row {subset!r} under {title!r}")


def test_cli_png_estimate_and_progress(tmp_path, capsys):
    half = np.zeros((40, 40), bool)
    half[:, :20] = True
    a = _png(tmp_path / "half.png", half)
    b = _png(tmp_path / "empty.png", np.zeros((40, 40), bool))
    code, out, err = _run(capsys, ["stats", a, b, "--grid", "8", "4", "--label", "dog",
                                   "--no-envelope", "--progress"])
    assert code == 0, err
    assert "ESTIMATED for the sentencepiece family" in out
    assert "label 'dog' for every mask" in out
    # 8x8: "dog *4| others *4\n" is 8 tokens a row (64), the empty grid 4 a row (32).
    row = _row(out, "grid 8x8, format rrle, method nearest")
    assert row == ["all", "2", "48", "48.0", "60.8", "64", f"{100 * (1 - 48 / 128):.1f}%",
                   "1.0000", "1.0000", "0.0%"]
    assert "(empty grid: 32 tokens; full descriptors: median 128, mean 128.0)" in out
    assert _row(out, "grid 4x4, format rrle")[2:6] == ["24", "24.0", "30.4", "32"]
    assert "2/2 [" in err
    code, out, err = _run(capsys, ["stats", a, b, "--grid", "8", "4", "--no-envelope", "--budget", "40"])
    assert "  rrle, nearest: 4x4 (32 tokens; oracle cIoU 1.0000, mIoU 1.0000)" in out.splitlines()
    code, out, err = _run(capsys, ["stats", a, b, "--grid", "8", "4", "--no-envelope", "--budget", "20",
                                   "--quantile", "0.5"])
    assert "budget 20 tokens for 50% of the masks" in out
    assert "  rrle, nearest: no candidate fits (the cheapest, 4x4, needs 32 tokens)" in out.splitlines()
    code, out, err = _run(capsys, ["stats", a, "--family", "bpe", "--label", "refrigerator", "--grid", "4"])
    assert "ESTIMATED for the bpe family" in out
    # 4x4 of the half mask: "refrigerator *2| others *2\n" is 2 + 2 + 1 + 1 + 2 + 1 a row (+ 6 envelope).
    assert _row(out, "grid 4x4, format rrle")[2] == "42"
    code, out, err = _run(capsys, ["stats", a, "--budget", "10", "--quantile", "2"])
    assert code == 1 and "--quantile must be in [0, 1], got 2.0" in err


def test_cli_exact_coco_results_and_instances(tmp_path, capsys, sp):
    anns = coco_annotations()[:3]
    results = tmp_path / "results.json"
    results.write_text(json.dumps(anns))
    poly = {"images": [{"id": 7, "height": 32, "width": 48}],
            "categories": [{"id": 5, "name": "fire hydrant"}],
            "annotations": [{"image_id": 7, "category_id": 5,
                             "segmentation": [[8, 8, 40, 8, 40, 24, 8, 24]]}]}
    instances = tmp_path / "instances.json"
    instances.write_text(json.dumps(poly))
    code, out, err = _run(capsys, ["stats", str(results), str(instances), "--tokenizer", SP_FILE,
                                   "--format", "rrle", "full", "--method", "nearest", "area",
                                   "--grid", "16"])
    assert code == 0, err
    assert "4 masks from 2 inputs" in out and "counted with tokenizer.model.v1 (sentencepiece)" in out
    assert "labels: COCO category names" in out
    names = [_COCO_NAMES[a["category_id"]] for a in anns] + ["fire hydrant"]
    masks = [mc.coco.rle_to_mask(a["segmentation"]) for a in anns]
    masks.append(mc.coco.rle_to_mask(poly["annotations"][0]["segmentation"], size=(32, 48)))
    for method in ("nearest", "area"):
        counts = [T.count_tokens(mc.encode_mask(m, n, grid=16, method=method), sp)
                  for m, n in zip(masks, names)]
        row = _row(out, f"grid 16x16, format rrle, method {method}")
        assert row[1:6] == ["4", f"{np.median(counts):g}", f"{np.mean(counts):.1f}",
                            f"{np.percentile(counts, 90):.1f}".removesuffix(".0"), str(max(counts))]
    assert _row(out, "grid 16x16, format full, method area")[6] == "0.0%"


@pytest.mark.slow_without_jit
def test_cli_reproduces_issue_numbers(capsys, monkeypatch):
    """734 COCO masks, 16x16, class names, body without <seg>: R-RLE 88 median, mean ~102, full 512."""
    root = COCO_FILE.parents[2]
    monkeypatch.chdir(root)
    page = (root / "docs" / "tokens.md").read_text(encoding="utf-8")
    for tok_file in (SP_FILE, TEKKEN_FILE):
        argv = ["stats", "tests/data/coco_val2014_segm100.json", "--tokenizer", tok_file, "--no-envelope",
                "--format", "rrle", "irle", "full"]
        code, out, err = _run(capsys, argv)
        assert code == 0, err
        if tok_file == SP_FILE:  # the table on docs/tokens.md is this output, verbatim
            shown = " ".join(["$ maskcodec", *argv[:3], os.path.basename(tok_file), *argv[4:]])
            assert f"{shown}\n{out}```" in page
        row = _row(out, "grid 16x16, format rrle, method nearest")
        assert row[1:3] == ["734", "88"]
        assert 101 <= float(row[3]) <= 102.5
        assert 79.5 <= float(row[6].rstrip("%")) <= 81
        assert "(empty grid: 80 tokens; full descriptors: median 512," in out
        assert _row(out, "grid 16x16, format full, method nearest")[2] == "512"
        large = _row(out, "grid 16x16, format rrle, method nearest", "large")
        assert 71 <= float(large[6].rstrip("%")) <= 74


def test_cli_plot(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    m = np.zeros((30, 30), bool)
    m[5:20, 5:25] = True
    out_png = tmp_path / "plot.png"
    code, out, err = _run(capsys, ["stats", _png(tmp_path / "m.png", m), "--grid", "4", "8",
                                   "--format", "rrle", "irle", "--plot", str(out_png)])
    assert code == 0, err
    with Image.open(out_png) as img:
        assert img.format == "PNG" and img.size[0] > 100


def test_cli_plot_without_matplotlib(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    m = _png(tmp_path / "m.png", np.ones((8, 8), bool))
    code, out, err = _run(capsys, ["stats", m, "--plot", str(tmp_path / "p.png")])
    assert code == 1
    assert err == "maskcodec stats: error: --plot needs matplotlib: pip install 'maskcodec[plot]'\n"


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("fake.png", b"this is not an image", "not a readable image"),
        ("missing.png", None, "no such file"),
        ("bad.json", b"[{", "not valid JSON"),
        ("dict.json", b'{"a": 1}', "a COCO JSON must be a results list"),
        ("poly.json", b'[{"segmentation": [[0, 0, 4, 0, 4, 4]]}]', "annotation 0"),
    ],
)
def test_cli_bad_input_is_one_line_with_the_path(tmp_path, capsys, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, out, err = _run(capsys, ["stats", str(path)])
    assert code == 1
    assert err.count("\n") == 1 and str(path) in err and message in err, err


def test_cli_rgb_png_and_bad_tokenizer(tmp_path, capsys):
    rgb = tmp_path / "rgb.png"
    Image.new("RGB", (4, 4)).save(rgb)
    code, _, err = _run(capsys, ["stats", str(rgb)])
    assert code == 1 and "needs one channel" in err and str(rgb) in err
    m = _png(tmp_path / "m.png", np.ones((8, 8), bool))
    code, _, err = _run(capsys, ["stats", m, "--tokenizer", str(tmp_path / "none.model")])
    assert code == 1 and "none.model: no such tokenizer file" in err
