"""Per-token cost of maskcodec.hf.SegLogitsProcessor on real 32k and 131k vocabularies.

Run: ``python benchmarks/bench_logits.py [--grid 16] [--sequences 20] [--smoke]``

For each vocabulary (the SentencePiece ``tokenizer.model.v1`` through
``transformers.LlamaTokenizer``, and a 131k tekken vocabulary through
``maskcodec._vocab.load_tekken``; both ship in the ``mistral-common`` wheel)
and label mode (a fixed label, any safe label) it reports:

* build: reading the vocabulary into bytes, the trie, and the automaton (once per tokenizer);
* cold: mean processor time per token over the first sequence (every state's mask is new),
  and that sequence's total ("first seq": the lazily built masks, the real one-time cost);
* warm: mean and median processor time per token over later sequences (masks cached);
* naive: the obvious baseline, stepping every token's bytes through the same automaton at each
  step (mean over 10 steps), and its ratio to the warm mean.

The "model" is a stream of random scores (argmax picks the token), so the
numbers are the processor's alone; one sequence per call (batch 1), torch on
one thread.  Random scores make long labels and many states: a real model
visits fewer.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def tokenizers():
    import mistral_common
    import transformers

    from maskcodec._vocab import load_tekken

    data = Path(mistral_common.__file__).parent / "data"
    tmp = Path(tempfile.mkdtemp())
    shutil.copy(data / "tokenizer.model.v1", tmp / "tokenizer.model")
    yield "sentencepiece-32k", transformers.LlamaTokenizer.from_pretrained(str(tmp))
    yield "tekken-131k", load_tekken(min(data.glob("tekken_*.json")))


def run_sequence(proc, vocab, rng, budget):
    import torch

    ids = torch.tensor([[1]])
    times = []
    for _ in range(budget):
        scores = torch.from_numpy(rng.standard_normal((1, vocab), dtype="float32"))
        t = time.perf_counter()
        out = proc(ids, scores)
        times.append(time.perf_counter() - t)
        tid = int(out.argmax())
        ids = torch.cat([ids, torch.tensor([[tid]])], dim=1)
        if tid == proc.eos:
            break
    return times


def naive_ms(auto, rng, steps):
    """The baseline: every token's bytes stepped through the automaton at every step (ms per step)."""
    pieces = auto.vocab.pieces
    state = auto.start()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        ok = [i for i, p in enumerate(pieces) if p and auto.walk_bytes(state, p) is not None]
        times.append(time.perf_counter() - t)
        state = auto.walk_bytes(state, pieces[int(rng.choice(ok))])
        if state[0] == 6:
            break
    return 1e3 * statistics.mean(times)


def main(argv=None):
    import numpy as np
    import torch

    from maskcodec import hf

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", type=int, default=16)
    ap.add_argument("--sequences", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="tiny run (CI smoke test)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    grid, nseq = (4, 2) if args.smoke else (args.grid, args.sequences)
    budget = max(60, 25 * grid)
    print(f"grid {grid}x{grid}, R-RLE, max_new_tokens={budget}, {nseq} sequences per row; times per generated token")
    print(f"{'vocabulary':<18} {'labels':<12} {'vocab+trie':>10} {'automaton':>10} {'cold':>9} {'warm mean':>10} {'warm p50':>9} {'first seq':>9} {'tokens':>7} {'naive':>9} {'naive/warm':>10}")
    for name, tok in tokenizers():
        t = time.perf_counter()
        vocab, _ = hf._vocab_and_trie(tok)  # cached for the processors below
        t_vocab = time.perf_counter() - t
        for mode, labels in (("fixed", ["white horse"]), ("any safe", None)):
            t = time.perf_counter()
            proc = hf.SegLogitsProcessor(tok, grid, grid, labels=labels, force_seg=True, max_new_tokens=budget,
                                         max_label_len=24)
            t_build = time.perf_counter() - t
            rng = np.random.default_rng(0)
            cold = run_sequence(proc, vocab.size, rng, budget)
            warm = []
            for _ in range(nseq - 1):
                warm += run_sequence(proc, vocab.size, rng, budget)
            warm = warm or cold
            naive = naive_ms(proc.auto, rng, 3 if args.smoke else 10)
            print(f"{name:<18} {mode:<12} {t_vocab:>9.2f}s {t_build:>9.2f}s {1e3 * statistics.mean(cold):>7.2f}ms "
                  f"{1e3 * statistics.mean(warm):>8.3f}ms {1e3 * statistics.median(warm):>7.3f}ms {sum(cold):>8.2f}s "
                  f"{len(cold) + len(warm):>7} {naive:>7.1f}ms {naive / (1e3 * statistics.mean(warm)):>9.0f}x")


if __name__ == "__main__":
    main()
