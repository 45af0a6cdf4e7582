"""examples/finetune --tiny end to end: train a random LLaVA-style model on synthetic shapes, evaluate.

Runs the same train.py / evaluate.py code path as a real fine-tune, with the real
32k SentencePiece tokenizer from the mistral-common wheel; a few CPU minutes.
"""

from __future__ import annotations

import json
import math
import os
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("mistral_common")
pytest.importorskip("sentencepiece")

EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "finetune")

pytestmark = pytest.mark.slow_without_jit


_NAMES = ("common", "train", "evaluate")  # the example's modules import each other by these names


@pytest.fixture(scope="module")
def example():
    """The example's modules, imported from examples/finetune without clobbering same-named modules."""
    import torch

    saved = {n: sys.modules.pop(n) for n in _NAMES if n in sys.modules}
    threads = torch.get_num_threads()  # train.py/evaluate.py set it; give it back afterwards
    sys.path.insert(0, EXAMPLE)
    try:
        import common
        import evaluate
        import train

        yield common, train, evaluate
    finally:
        sys.path.remove(EXAMPLE)
        torch.set_num_threads(threads)
        for n in _NAMES:
            sys.modules.pop(n, None)
        sys.modules.update(saved)


def _losses(path):
    with open(path) as f:
        return [json.loads(line)["loss"] for line in f]


def test_tiny_train_and_evaluate(example, tmp_path):
    pytest.importorskip("maskcodec.hf")
    _, train, evaluate = example
    out = str(tmp_path / "run")
    rc = train.main([
        "--tiny", "--output-dir", out, "--grid", "8", "--tiny-train", "192", "--tiny-val", "8",
        "--max-steps", "70", "--batch-size", "8", "--grad-accum", "1", "--lr", "3e-3", "--warmup", "10",
        "--log-every", "5", "--save-every", "0", "--eval-samples", "8", "--max-new-tokens", "160",
        "--device", "cpu",
    ])
    assert rc == 0
    losses = _losses(os.path.join(out, "metrics.jsonl"))
    # A random model starts near ln(vocabulary size) (~6.2 for the pruned vocabulary); it must fall
    # well below that.
    with open(os.path.join(out, "final", "config.json")) as f:
        vocab = json.load(f)["text_config"]["vocab_size"]
    assert 300 < vocab < 2000  # the 32k SentencePiece model, pruned to the task's pieces
    assert abs(losses[0] - math.log(vocab)) < 1.0
    assert min(losses[-3:]) < 0.4 * losses[0], losses
    with open(os.path.join(out, "eval.json")) as f:
        report = json.load(f)
    con, free = report["constrained"], report["unconstrained"]
    assert con["constrained"] is True and free["constrained"] is False
    assert con["coarse"]["n"] == free["coarse"]["n"] == 8
    # The logits processor makes every answer parse strictly with exactly 8x8 cells.
    assert con["coarse"]["strict_parse_rate"] == 1.0
    assert free["coarse"]["strict_parse_rate"] <= con["coarse"]["strict_parse_rate"]
    for res in (con, free):
        for key in ("ciou", "giou", "rec_acc50"):
            assert 0.0 <= res["coarse"][key] <= 1.0
    base = report["baselines"]
    assert base["all_background"]["ciou"] == 0.0 and base["all_background"]["rec_acc50"] == 0.0
    assert base["best_fixed_blob"]["ciou"] > 0.0
    assert "cIoU" in report["table"]
    # maskcodec.metrics.evaluate rescored the same answers from the written files: same coarse numbers.
    ev = con["maskcodec_eval"]
    assert ev["scored"] == 8 and ev["skipped"] == 0
    assert ev["maskcodec"]["ciou"] == con["coarse"]["ciou"] and ev["maskcodec"]["giou"] == con["coarse"]["giou"]
    assert 0.0 <= ev["text4seg"]["ciou"] <= 1.0
    with open(os.path.join(out, "eval_samples_constrained.jsonl")) as f:
        samples = [json.loads(line) for line in f]
    import maskcodec as mc

    for s in samples:
        assert s["strict"] and s["found"]
        assert mc.parse(s["text"], grid=8, mode="strict").grid.shape == (8, 8)

    # evaluate.py reloads the saved checkpoint from disk and gets the same answers.
    again = str(tmp_path / "again")
    assert evaluate.main(["--checkpoint", os.path.join(out, "final"), "--limit", "4", "--output-dir", again,
                          "--max-new-tokens", "160", "--device", "cpu", "--threads", "1"]) == 0
    with open(os.path.join(again, "eval_samples_constrained.jsonl")) as f:
        reloaded = [json.loads(line) for line in f]
    assert [s["text"] for s in reloaded] == [s["text"] for s in samples[:4]]


def test_pruned_vocabulary_tokenizes_like_the_full_one(example, tmp_path):
    common = example[0]
    from transformers import LlamaTokenizer

    texts = common.task_texts(cells=16)
    full = LlamaTokenizer.from_pretrained(common.tiny_tokenizer_dir(str(tmp_path / "full")))
    pruned = LlamaTokenizer.from_pretrained(common.tiny_tokenizer_dir(str(tmp_path / "pruned"), texts))
    assert len(full) == 32000 and len(pruned) < 1000
    common._same_pieces(full, pruned, texts + ["<seg>blue square *3| others *13\n</seg>"])
    with pytest.raises(RuntimeError, match="changed the tokenization"):
        common._same_pieces(full, pruned, ["Quantum chromodynamics"])


def test_tiny_lora_path(example, tmp_path):
    """The LoRA (peft) path used for real models: adapters train, save, reload and merge."""
    pytest.importorskip("maskcodec.hf")
    _, train, evaluate = example
    out = str(tmp_path / "lora")
    assert train.main([
        "--tiny", "--lora", "--output-dir", out, "--grid", "4", "--tiny-image-size", "16", "--tiny-train", "16",
        "--tiny-val", "2", "--max-steps", "2", "--batch-size", "4", "--grad-accum", "2", "--lora-r", "4",
        "--eval-samples", "0", "--save-every", "1", "--device", "cpu",
    ]) == 0
    final = os.path.join(out, "final")
    assert os.path.exists(os.path.join(final, "adapter_config.json"))
    assert os.path.isdir(os.path.join(out, "checkpoint-1"))
    with open(os.path.join(final, "maskcodec_run.json")) as f:
        run = json.load(f)
    assert run["lora"] is True and run["grid"] == [4, 4]
    assert evaluate.main(["--checkpoint", final, "--limit", "2", "--max-new-tokens", "64", "--device", "cpu", "--threads", "1"]) == 0
    with open(os.path.join(final, "eval.json")) as f:
        report = json.load(f)
    assert report["constrained"]["coarse"]["strict_parse_rate"] == 1.0
    assert report["constrained"]["coarse"]["n"] == 2

    # The real-run path (no --tiny): any local or hub checkpoint through AutoProcessor /
    # AutoModelForImageTextToText, LoRA by default, JSONL from disk.
    real = str(tmp_path / "real")
    assert train.main([
        "--model", os.path.join(out, "base"), "--train", os.path.join(out, "data", "train.jsonl"),
        "--val", os.path.join(out, "data", "val.jsonl"), "--grid", "4", "--output-dir", real,
        "--max-steps", "1", "--batch-size", "2", "--grad-accum", "1", "--eval-samples", "2",
        "--max-new-tokens", "64", "--device", "cpu", "--threads", "1", "--no-compare-unconstrained",
    ]) == 0
    with open(os.path.join(real, "final", "maskcodec_run.json")) as f:
        assert json.load(f)["lora"] is True
    with open(os.path.join(real, "eval.json")) as f:
        report = json.load(f)
    assert "unconstrained" not in report and report["constrained"]["coarse"]["strict_parse_rate"] == 1.0
