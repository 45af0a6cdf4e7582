"""Constrained decoding with real tokenizers and a tiny random causal LM.

The tokenizers are the real ones shipped in the ``mistral-common`` wheel: the
32k SentencePiece model (``tokenizer.model.v1``, loaded through
``transformers.LlamaTokenizer``) and a 131k tekken vocabulary (tiktoken-style
byte-level BPE, loaded with :func:`maskcodec._vocab.load_tekken`).  The model
is a randomly initialised ``LlamaForCausalLM`` (hidden size 32, one layer)
built locally; sampling is the Gumbel-max trick over the processed scores, so
every sequence differs.
"""

from __future__ import annotations

import functools
import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import examples, label_sets

import maskcodec as mc

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")
pytest.importorskip("tiktoken")
mistral_common = pytest.importorskip("mistral_common")

from maskcodec._vocab import Vocab, load_tekken, token_bytes, vocab_of
from maskcodec.hf import SegLogitsProcessor, TokenAutomaton, _Trie

DATA = Path(mistral_common.__file__).parent / "data"


# ============================================================================ fixtures


@functools.lru_cache(maxsize=1)
def sp_tokenizer(tmp=Path("/tmp") / "maskcodec-test-sp"):
    tmp.mkdir(exist_ok=True)
    shutil.copy(DATA / "tokenizer.model.v1", tmp / "tokenizer.model")
    return transformers.LlamaTokenizer.from_pretrained(str(tmp))


@functools.lru_cache(maxsize=1)
def tekken():
    return load_tekken(next(iter(sorted(DATA.glob("tekken_*.json")))))


def decode(tok, ids):
    if hasattr(tok, "n_vocab"):
        return tok.decode([i for i in ids if i >= 1000])
    return tok.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)


def vocab_size(tok):
    return tok.n_vocab if hasattr(tok, "n_vocab") else len(tok)


@functools.lru_cache(maxsize=2)
def tiny_model(n_vocab):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=n_vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=2048,
    )
    return transformers.LlamaForCausalLM(cfg).eval()


class Gumbel(transformers.LogitsProcessor):
    """Sampling as argmax(scores + Gumbel noise), cheaper than multinomial over 131k logits.

    One table of Gumbel noise per generation, rolled by a random offset at each step: fresh
    noise for every token at the cost of one copy.
    """

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.table = None

    def __call__(self, input_ids, scores):
        if self.table is None or self.table.shape != scores.shape:
            self.table = -torch.empty_like(scores).exponential_(generator=self.gen).log_()
        shift = int(torch.randint(scores.shape[1], (1,), generator=self.gen))
        return scores + self.table.roll(shift, dims=1)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Two shared CPU cores: torch's own thread pool only adds contention here.
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def generate(tok, processors, *, batch, max_new_tokens, seed, prompt=(1, 1, 1)):
    model = tiny_model(vocab_size(tok))
    inp = torch.tensor([list(prompt)] * batch)
    eos = vocab_of(tok).eos_ids[0]
    with torch.no_grad():
        out = model.generate(
            inp, attention_mask=torch.ones_like(inp), logits_processor=[Gumbel(seed), *processors],
            max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0, eos_token_id=eos,
        )
    return [decode(tok, row) for row in out[:, inp.shape[1]:].tolist()]


TOKENIZERS = {"sentencepiece": sp_tokenizer, "tekken": tekken}


# ============================================================================ vocabularies as bytes


SAMPLE = "<seg>others *16\n others *1| white horse *15\n</seg> caf\u00e9 \u2615 \U0001d538 \u732b"


def test_sentencepiece_bytes_match_decoding():
    import sentencepiece as spm

    tok = sp_tokenizer()
    hf = vocab_of(tok)
    raw = vocab_of(spm.SentencePieceProcessor(model_file=str(DATA / "tokenizer.model.v1")))
    assert hf.pieces == raw.pieces and hf.kind == "sentencepiece" and hf.eos_ids == (2,)
    ids = tok.encode(SAMPLE, add_special_tokens=False)
    # The byte-fallback pieces of U+2615 and U+1D538 are single bytes that join into UTF-8.
    assert any(len(hf.pieces[i]) == 1 and hf.pieces[i][0] >= 0x80 for i in ids)
    joined = b"".join(hf.pieces[i] for i in ids)
    # The decoder drops the space of a leading "\u2581" of the whole text, nothing else.
    assert joined.decode("utf-8").lstrip(" ") == tok.decode(ids) == SAMPLE
    assert token_bytes(tok)[:3] == [None, None, None]


def test_tekken_bytes_match_encoding():
    enc = tekken()
    v = vocab_of(enc)
    assert v.size == 131072 and v.eos_ids == (2,) and v.pieces[:1000] == (None,) * 1000
    ids = enc.encode(SAMPLE)
    assert b"".join(v.pieces[i] for i in ids) == SAMPLE.encode("utf-8")
    assert enc.decode(ids) == SAMPLE


def test_tokenizers_tokenizer_and_byte_level_pieces():
    tokenizers = pytest.importorskip("tokenizers")
    tok = sp_tokenizer().backend_tokenizer
    assert vocab_of(tok).pieces[3:] == vocab_of(sp_tokenizer()).pieces[3:]
    # A byte-level BPE (GPT-2 style): each byte spelled as one printable character.
    bl = tokenizers.Tokenizer(tokenizers.models.BPE(
        vocab={"\u0120": 0, "a": 1, "\u0120a": 2, "\u010a": 3, "|": 4, "\u00c3": 5, "\u00a9": 6}, merges=[("\u0120", "a")],
    ))
    bl.decoder = tokenizers.decoders.ByteLevel()
    v = vocab_of(bl)
    assert v.kind == "byte-level"
    assert v.pieces == (b" ", b"a", b" a", b"\n", b"|", b"\xc3", b"\xa9")
    with pytest.raises(TypeError, match="unsupported tokenizer"):
        vocab_of(object())


# ============================================================================ masks == stepping


def _brute(auto, state):
    return {i for i, p in enumerate(auto.vocab.pieces) if p and auto.walk_bytes(state, p) is not None}


@pytest.mark.parametrize("name", list(TOKENIZERS))
@pytest.mark.parametrize("labels", [("white horse", "caf\u00e9 \u2615"), None])
def test_masks_equal_token_by_token_stepping(name, labels):
    """The cached trie walk allows exactly the tokens whose bytes the automaton accepts."""
    v = vocab_of(TOKENIZERS[name]())
    auto = TokenAutomaton(v, 3, 16, labels, max_label_len=10, trie=_Trie(v))
    prefixes = [p.encode("utf-8") for p in [
        "", "<se", "<seg>", "<seg>oth", "<seg>others", "<seg>others ", "<seg>others *", "<seg>others *1",
        "<seg>others *1|", "<seg>others *1| ", "<seg>others *16\n", "<seg>others *16\n ",
        "<seg>caf\u00e9 \u2615 *16\n others *16\n others *15", "<seg>others *16\n others *16\n others *16\n</se",
    ]]
    if labels is None:  # white space inside, a tag in progress, the length limit, half a character
        prefixes += [p.encode("utf-8") for p in ["<seg>a\u3000", "<seg>a <se", "<seg>abcdefghi"]] + [b"<seg>ab\xe2\x98"]
    checked = 0
    for prefix in prefixes:
        state = auto.walk_bytes(auto.start(), prefix)
        if state is None:
            assert labels is not None  # a prefix outside the fixed label set
            continue
        assert set(auto.allowed_ids(state).tolist()) == _brute(auto, state), prefix
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_tokens_spanning_several_symbols_are_allowed(name):
    """Tokens such as ' *' (the space and the star), ' others' (the row's space and a label)
    or '</' cross grammar symbols; digits come one per token in both vocabularies."""
    v = vocab_of(TOKENIZERS[name]())
    auto = TokenAutomaton(v, 2, 16, ["dog"], trie=_Trie(v))

    def allowed(prefix):
        return {v.pieces[i] for i in auto.allowed_ids(auto.walk_bytes(auto.start(), prefix))}

    assert b" *" in allowed(b"<seg>dog")
    assert {b" others", b" dog"} <= allowed(b"<seg>dog *16\n")
    assert {b" others", b" dog"} <= allowed(b"<seg>dog *1|")
    assert b"</" in allowed(b"<seg>dog *16\n dog *16\n")
    assert allowed(b"<seg>dog *16") == {b"\n"}
    assert {p for p in allowed(b"<seg>dog *1") if not p.isdigit()} == {b"|"}
    assert not any(b"*" in p for p in allowed(b"<seg>dog *"))


# ============================================================================ generation


GRIDS = [(8, 100), (16, 170), (24, 240)]  # (side, max_new_tokens)


@pytest.mark.slow_without_jit
@pytest.mark.parametrize("name", list(TOKENIZERS))
@pytest.mark.parametrize("fixed", [True, False], ids=["fixed-labels", "free-labels"])
def test_every_constrained_answer_parses(name, fixed):
    """50 sampled sequences per grid, 8x8, 16x16 and 24x24: all parse strictly with rows x cols cells."""
    tok = TOKENIZERS[name]()
    labels = ["white horse", "caf\u00e9 \u2615"] if fixed else None
    for side, budget in GRIDS:
        proc = SegLogitsProcessor(tok, side, side, labels=labels, force_seg=True, max_new_tokens=budget, max_label_len=12)
        texts = generate(tok, [proc], batch=50, max_new_tokens=budget, seed=side)
        assert len(set(texts)) == 50  # sampling: every sequence differs
        for text in texts:
            res = mc.parse(text, grid=(side, side), mode="strict", labels=labels)
            assert res.grid.shape == (side, side) and res.start == 0 and res.end == len(text)
            if fixed:
                assert set(res.grid.labels) <= {"others", *labels}


@pytest.mark.slow_without_jit
def test_without_the_processor_nothing_parses():
    """The same model and sampling, no processor, the answer opened in the prompt: 0 of 50 parse."""
    tok = sp_tokenizer()
    prompt = tok.encode("Answer: <seg>", add_special_tokens=False)
    texts = generate(tok, [], batch=50, max_new_tokens=120, seed=8, prompt=prompt)
    parsed = 0
    for text in texts:
        try:
            mc.parse("<seg>" + text, grid=(8, 8), mode="strict")
            parsed += 1
        except mc.ParseError:
            pass
    assert parsed == 0
    # ... while the processor makes all of them parse, from the same prompt.
    proc = SegLogitsProcessor(tok, 8, 8, labels=["dog"], max_new_tokens=120)
    texts = generate(tok, [proc], batch=50, max_new_tokens=120, seed=8, prompt=prompt)
    for text in texts:
        assert mc.parse(text, grid=(8, 8), labels=["dog"]).grid.shape == (8, 8)


def test_free_text_then_answer_other_formats_and_beams():
    """Free text until <seg> (forced by the budget at the latest); I-RLE and full; beam search."""
    tok = sp_tokenizer()
    proc = SegLogitsProcessor(tok, 4, 4, labels=["dog"], max_new_tokens=60)
    for text in generate(tok, [proc], batch=8, max_new_tokens=60, seed=1):
        res = mc.parse(text, grid=(4, 4), labels=["dog"])
        assert res.end == len(text)  # nothing after </seg>
    for fmt in ("irle", "full"):
        proc = SegLogitsProcessor(tok, 3, 5, labels=None, format=fmt, force_seg=True, max_new_tokens=90, max_label_len=6)
        for text in generate(tok, [proc], batch=8, max_new_tokens=90, seed=2):
            assert mc.parse(text, grid=(3, 5), format=fmt).grid.shape == (3, 5)
    proc = SegLogitsProcessor(tok, 4, 4, labels=["dog"], canonical=True, force_seg=True, max_new_tokens=70)
    model = tiny_model(len(tok))
    inp = torch.tensor([[1, 1, 1]] * 2)
    out = model.generate(inp, attention_mask=torch.ones_like(inp), logits_processor=[proc], num_beams=3,
                         num_return_sequences=3, max_new_tokens=70, do_sample=False, pad_token_id=0, eos_token_id=2)
    for row in out[:, 3:].tolist():
        text = decode(tok, row)
        res = mc.parse(text, grid=(4, 4), labels=["dog"])
        for line in text[5:-7].split("\n "):
            names = [run.rsplit(" *", 1)[0] for run in line.split("| ")]
            assert all(a != b for a, b in itertools.pairwise(names))  # canonical
        assert res.grid.shape == (4, 4)


# ============================================================================ errors at construction


class ToySP:
    """A tiny SentencePiece-shaped tokenizer missing whatever ``drop`` names."""

    def __init__(self, drop=""):
        chars = [c for c in "<seg>/| *\n0123456789aothersdx" if c not in drop]
        self.pieces = ["<unk>", "<s>", "</s>"] + list(dict.fromkeys(chars))

    def get_piece_size(self):
        return len(self.pieces)

    def id_to_piece(self, i):
        return self.pieces[i].replace(" ", "\u2581").replace("\n", "<0x0A>")

    def is_byte(self, i):
        return self.pieces[i] == "\n"

    def is_control(self, i):
        return i in (1, 2)

    def is_unknown(self, i):
        return i == 0

    def eos_id(self):
        return 2


def test_construction_errors():
    tok = sp_tokenizer()
    with pytest.raises(mc.LabelError):
        SegLogitsProcessor(tok, 8, 8, labels=["a|b"])
    with pytest.raises(mc.InputError, match="max_new_tokens"):
        SegLogitsProcessor(tok, 24, 24, labels=["dog"], max_new_tokens=100)
    with pytest.raises(mc.InputError, match="format"):
        SegLogitsProcessor(tok, 8, 8, format="rle")
    with pytest.raises(mc.InputError, match=r"cannot write '\|'"):
        SegLogitsProcessor(ToySP(drop="|"), 4, 4, prefix="any")
    with pytest.raises(mc.InputError, match="cannot write 'x'"):
        SegLogitsProcessor(ToySP(drop="x"), 4, 4, labels=["x"], prefix="any")
    # The default prefix, the convert templates, needs their letters too.
    with pytest.raises(mc.InputError, match="cannot write ',', ':', 'H'"):
        SegLogitsProcessor(ToySP(), 4, 4, labels=["dx"])
    # The toy vocabulary is otherwise complete: it works.
    proc = SegLogitsProcessor(ToySP(), 2, 2, labels=["dx"], force_seg=True, max_new_tokens=40)
    assert proc.eos == 2
    with pytest.raises(mc.InputError):
        SegLogitsProcessor(tok, 0, 8)


def test_processor_drives_a_toy_vocabulary_to_the_end():
    """Token by token with random scores, the 1-character toy vocabulary reaches a parseable answer."""
    toy = ToySP()
    proc = SegLogitsProcessor(toy, 3, 4, labels=["dx"], max_new_tokens=80, prefix="any")
    rng = np.random.default_rng(0)
    ids = torch.tensor([[1]])
    text = ""
    for _ in range(80):
        scores = torch.tensor(rng.normal(size=(1, toy.get_piece_size())), dtype=torch.float32)
        tid = int(proc(ids, scores).argmax())
        ids = torch.cat([ids, torch.tensor([[tid]])], dim=1)
        if tid == 2:
            break
        text += toy.pieces[tid]
    assert tid == 2
    assert mc.parse(text, grid=(3, 4), labels=["dx"]).grid.shape == (3, 4)


@pytest.mark.slow_without_jit
def test_benchmark_runs_as_a_smoke_test(capsys):
    import importlib.util

    path = Path(__file__).parent.parent / "benchmarks" / "bench_logits.py"
    spec = importlib.util.spec_from_file_location("bench_logits", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench.main(["--smoke"])
    out = capsys.readouterr().out
    assert out.count("ms") >= 8 and "tekken-131k" in out and "sentencepiece-32k" in out


# ============================================================================ the automaton on a byte vocabulary


#: Every single byte, plus tokens that cross grammar symbols.
_BYTE_VOCAB = Vocab(
    tuple([None, None, None] + [bytes([b]) for b in range(256)]
          + [b"| ", b" *", b"\n ", b"*1", b"6|", b"1\n", b"\n</seg>", b"<seg>", b" others", b"others *2| ",
             b"\xe2\x98", b"\x95 x", b"a <s", b"eg>", b"\t"]),
    (2,), "test",
)


@given(labels=st.one_of(st.none(), label_sets(max_labels=3, background="others").map(lambda t: t[1:])),
       fmt=st.sampled_from(["rrle", "irle", "full"]), rows=st.integers(1, 3), cols=st.integers(1, 4),
       canonical=st.booleans(), seed=st.integers(0, 2**32 - 1))
@settings(max_examples=examples(60))
def test_random_walks_end_in_answers_the_parser_accepts(labels, fmt, rows, cols, canonical, seed):
    """A random walk over allowed tokens never gets stuck, every mask equals byte-by-byte stepping,
    and the finished text parses strictly with exactly rows x cols cells."""
    canonical = canonical and labels is not None and fmt != "full"
    auto = TokenAutomaton(_BYTE_VOCAB, rows, cols, labels, format=fmt, canonical=canonical, max_label_len=5)
    rng = np.random.default_rng(seed)
    state, text = auto.start(), b""
    for _ in range(3000):
        if state[0] == 6:  # done
            break
        ids = auto.allowed_ids(state)
        assert ids.size, (text, state)
        assert set(ids.tolist()) == _brute(auto, state)
        # Prefer ending labels and counts now and then, so walks finish.
        tid = int(rng.choice(ids))
        text += _BYTE_VOCAB.pieces[tid]
        state = auto.walk_bytes(state, _BYTE_VOCAB.pieces[tid])
    else:
        return  # a very long label walk; nothing to check at the end
    res = mc.parse(text.decode("utf-8"), grid=(rows, cols), format=fmt, labels=labels)
    assert res.grid.shape == (rows, cols) and res.end == len(text.decode("utf-8"))
    if canonical:
        body = text.decode("utf-8")[5:-7]
        lines = body.split("\n ") if fmt == "rrle" else [body]
        for line in lines:
            names = [run.rsplit(" *", 1)[0] for run in line.split("| ")]
            assert all(a != b for a, b in itertools.pairwise(names))


def test_importing_hf_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, maskcodec.hf, maskcodec.grammar; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# ============================================================================ against a real engine


@pytest.mark.parametrize("name", list(TOKENIZERS))
@pytest.mark.parametrize("labels", [("white horse", "caf\u00e9 \u2615"), None], ids=["fixed", "any"])
def test_masks_equal_xgrammar_on_the_exported_gbnf(name, labels):
    """On random walks, the allowed tokens are exactly the ones xgrammar allows for the GBNF that
    maskcodec.grammar exports (same vocabulary bytes, no label-length limit): the processor and
    the grammar export agree with each other and with an independent engine."""
    xgr = pytest.importorskip("xgrammar")
    from maskcodec.grammar import export_grammar

    v = vocab_of(TOKENIZERS[name]())
    info = xgr.TokenizerInfo([p if p is not None else b"" for p in v.pieces], vocab_type=xgr.VocabType.RAW,
                             vocab_size=v.size, stop_token_ids=list(v.eos_ids))
    compiled = xgr.GrammarCompiler(info).compile_grammar(export_grammar(grid=(3, 5), labels=labels, prefix="none"))
    auto = TokenAutomaton(v, 3, 5, labels, trie=_Trie(v), max_label_len=None)
    rng = np.random.default_rng(0)
    steps = 0
    for _ in range(2):
        matcher = xgr.GrammarMatcher(compiled)
        bitmask = xgr.allocate_token_bitmask(1, v.size)
        state = auto.start()
        for _ in range(80 if labels is None else 150):
            matcher.fill_next_token_bitmask(bitmask)
            scores = torch.zeros(1, v.size)
            xgr.apply_token_bitmask_inplace(scores, bitmask)
            theirs = set(np.flatnonzero(np.isfinite(scores[0].numpy())).tolist())
            ours = set(v.eos_ids) if state[0] == 6 else set(auto.allowed_ids(state).tolist())
            assert ours == theirs, state
            steps += 1
            if state[0] == 6:
                break
            tid = int(rng.choice(sorted(ours)))
            assert matcher.accept_token(tid)
            state = auto.walk_bytes(state, v.pieces[tid])
    assert steps >= 100


def test_processor_follows_several_tokens_at_once_and_restarts():
    """Assisted generation appends several tokens per call; a new prompt starts afresh."""
    toy = ToySP()
    proc = SegLogitsProcessor(toy, 2, 3, labels=["dx"], force_seg=True, max_new_tokens=200)
    index = {p: i for i, p in enumerate(toy.pieces)}

    def allowed(ids):
        out = proc(torch.tensor([ids]), torch.zeros(1, toy.get_piece_size()))
        return {toy.pieces[i] for i in torch.nonzero(torch.isfinite(out[0])).flatten().tolist()}

    prompt = [1, 1]
    assert allowed(prompt) == {"<"}
    text = "<seg>dx *1"
    ids = prompt + [index[c] for c in text]  # ten tokens appended in one call
    assert allowed(ids) == {"|"}  # 1 of 3 cells: "12" would be too many, the row goes on
    assert allowed(ids + [index["|"], index[" "], index["d"]]) == {"x"}
    # A different prompt: a new generation, whatever the length.
    assert allowed([2] * 17) == {"<"}  # longer than before, but another prompt
    assert allowed([2, 1]) == {"<"}
