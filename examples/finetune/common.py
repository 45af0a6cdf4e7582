"""Code shared by train.py and evaluate.py: data, models, the loss, generation and scoring.

The ``--tiny`` mode and a real run go through exactly these functions; only
where the model, processor and JSONL come from differs.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageDraw

import maskcodec as mc
import maskcodec.torch as mct
from maskcodec.datasets.writers import answer_of

# ---------------------------------------------------------------- data
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['content'] is string %}{% set parts = [{'type': 'text', 'text': m['content']}] %}"
    "{% else %}{% set parts = m['content'] %}{% endif %}"
    "{% if m['role'] == 'user' %}USER: "
    "{% for p in parts %}{% if p['type'] == 'image' %}<image>\n{% else %}{{ p['text'] }}{% endif %}{% endfor %}\n"
    "{% else %}ASSISTANT:\n{% for p in parts %}{{ p['text'] }}{% endfor %}{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:\n{% endif %}"
)


@dataclass
class Record:
    """One sample: the image, the question, the answer text and optionally a full-size target mask."""

    id: str
    image: str
    question: str
    answer: str
    mask: str | None = None
    extra: dict = field(default_factory=dict)


def _resolve(path: str, root: str) -> str:
    return path if not path or os.path.isabs(path) else os.path.join(root, path)


def read_records(path: str, image_root: str | None = None, limit: int | None = None) -> list[Record]:
    """Read JSONL in any layout ``maskcodec convert`` writes (LLaVA, ShareGPT, swift, HF messages).

    Relative image (and optional ``"mask"`` PNG) paths are resolved against
    ``image_root`` (default: the JSONL's folder).
    """
    root = image_root if image_root is not None else os.path.dirname(os.path.abspath(path))
    out: list[Record] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            image, question, answer = answer_of(rec)
            if not image:
                raise SystemExit(f"{path}:{n}: the record names no image")
            mask = rec.get("mask")
            out.append(
                Record(str(rec.get("id", n)), _resolve(image, root), question.strip(), answer,
                       _resolve(mask, root) if mask else None)
            )
            if limit is not None and len(out) >= limit:
                break
    return out


def messages_of(rec: Record, *, with_answer: bool = True) -> list[dict]:
    """Hugging Face chat messages with an image part (what processors' chat templates expect)."""
    msgs = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": rec.question}]}]
    if with_answer:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": rec.answer}]})
    return msgs


class ChatDataset(torch.utils.data.Dataset):
    def __init__(self, records: list[Record]):
        self.records = records

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        rec = self.records[i]
        with Image.open(rec.image) as im:
            image = im.convert("RGB")
        return {"messages": messages_of(rec), "images": [image], "record": rec}


def make_collate(processor, *, for_generation: bool = False, max_length: int | None = None):
    def collate(examples):
        batch = mct.collate_chat(examples, processor, for_generation=for_generation, max_length=max_length)
        batch["records"] = [e["record"] for e in examples]
        batch["image_sizes_hw"] = [e["images"][0].size[::-1] for e in examples]
        return batch

    return collate


# ---------------------------------------------------------------- synthetic data
COLOURS = {
    "red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 220),
    "yellow": (230, 210, 40), "white": (245, 245, 245), "purple": (150, 60, 190),
}
SHAPES = ("circle", "square", "triangle")


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill) -> None:
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=fill)


def make_synthetic(out_dir: str, *, n_train: int, n_val: int, image_size: int = 32, grid: int = 8,
                   max_objects: int = 2, method: str = "area", fmt: str = "rrle", seed: int = 0) -> tuple[str, str]:
    """Coloured shapes on plain backgrounds, "segment the red circle"; LLaVA JSONL with a ``mask`` PNG.

    Returns the paths of ``train.jsonl`` and ``val.jsonl``.
    """
    rng = random.Random(seed)
    os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)
    paths = []
    for split, n in (("train", n_train), ("val", n_val)):
        path = os.path.join(out_dir, f"{split}.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for i in range(n):
                sid = f"{split}{i:06d}"
                bg = tuple(rng.randrange(0, 90) for _ in range(3))
                img = Image.new("RGB", (image_size, image_size), bg)
                draw = ImageDraw.Draw(img)
                objs = rng.sample([(c, s) for c in COLOURS for s in SHAPES], rng.randint(1, max_objects))
                masks = []
                for colour, shape in objs:
                    r = rng.uniform(0.15, 0.3) * image_size
                    cx, cy = rng.uniform(r, image_size - r), rng.uniform(r, image_size - r)
                    _draw(draw, shape, cx, cy, r, COLOURS[colour])
                    layer = Image.new("L", (image_size, image_size), 0)
                    _draw(ImageDraw.Draw(layer), shape, cx, cy, r, 255)
                    m = np.asarray(layer) > 0
                    for prev in masks:  # later shapes occlude earlier ones
                        prev &= ~m
                    masks.append(m)
                visible = [j for j, m in enumerate(masks) if m.sum() >= 4]  # never ask for a hidden shape
                k = rng.choice(visible) if visible else len(objs) - 1
                name = f"{objs[k][0]} {objs[k][1]}"
                target = masks[k]
                img.save(os.path.join(out_dir, "images", f"{sid}.png"))
                Image.fromarray(target.astype(np.uint8) * 255).save(os.path.join(out_dir, "images", f"{sid}_mask.png"))
                answer = mc.encode_mask(target, name, grid=grid, method=method, format=fmt, nonempty=True)
                rec = {"id": sid, "image": f"images/{sid}.png", "mask": f"images/{sid}_mask.png",
                       "conversations": [{"from": "human", "value": f"<image>\nPlease segment the {name}."},
                                         {"from": "gpt", "value": answer}]}
                f.write(json.dumps(rec) + "\n")
        paths.append(path)
    return paths[0], paths[1]


# ---------------------------------------------------------------- models
def tiny_tokenizer_dir(out_dir: str, texts: list[str] | None = None) -> str:
    """A folder holding the real SentencePiece model shipped in the mistral-common wheel.

    With ``texts``, the vocabulary is pruned to what those texts need: every
    piece that is a substring of a text line survives (so every BPE merge that
    builds the pieces of these texts is still there), with the 256 byte-fallback
    pieces and the control tokens.  Texts therefore tokenize into the same
    pieces as with the full 32k vocabulary (checked below), with far fewer ids:
    the model's embedding and output layer shrink accordingly.
    """
    import shutil

    import mistral_common

    src = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tokenizer.model.v1")
    os.makedirs(out_dir, exist_ok=True)
    dst = os.path.join(out_dir, "tokenizer.model")
    if texts is None:
        shutil.copy(src, dst)
        return out_dir
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    with open(src, "rb") as f:
        proto.ParseFromString(f.read())
    lines = {line.replace(" ", "\u2581") for t in texts for line in t.split("\n")}
    corpus = "\x00".join(sorted(lines | {"\u2581" + line for line in lines}))
    keep = [p for p in proto.pieces if p.type != 1 or p.piece in corpus]  # type 1: normal piece
    del proto.pieces[:]
    proto.pieces.extend(keep)
    with open(dst, "wb") as f:
        f.write(proto.SerializeToString())
    return out_dir


def _same_pieces(full, pruned, texts: list[str]) -> None:
    for t in texts:
        a = full.convert_ids_to_tokens(full(t, add_special_tokens=False)["input_ids"])
        b = pruned.convert_ids_to_tokens(pruned(t, add_special_tokens=False)["input_ids"])
        if a != b:
            raise RuntimeError(f"vocabulary pruning changed the tokenization of {t!r}: {a} -> {b}")


def task_texts(records: list[Record] | None = None, cells: int = 64) -> list[str]:
    """Every string the tiny task can produce: the synthetic names, counts, separators and templates."""
    names = [f"{c} {s}" for c in COLOURS for s in SHAPES]
    texts = ["USER: ", "ASSISTANT:", "<seg>", "</seg>", " *", "| "]
    texts += [f"Please segment the {n}." for n in names]
    for label in ["others", *names]:
        texts += [f"<seg>{label} *{k}| {label} *{k}\n {label} *{k}| others *1\n</seg>" for k in range(1, cells + 1)]
    for r in records or ():
        texts += [r.question, r.answer]
    return texts


def build_tiny(work_dir: str, *, image_size: int = 32, patch: int = 4, hidden: int = 64, layers: int = 2,
               heads: int = 4, vision_hidden: int = 64, vision_layers: int = 2, seed: int = 0,
               prune_for: list[str] | None = None):
    """A randomly initialised LLaVA-style model (CLIP vision tower + Llama LM) and its processor.

    The tokenizer is LLaMA's 32k SentencePiece model from the mistral-common
    wheel (pruned to what ``prune_for`` texts need when given), plus an
    ``<image>`` token; one image token per ``patch`` x ``patch`` patch, so a
    32 px image at patch 4 is 64 tokens, one per cell of an 8 x 8 grid.
    """
    from transformers import (CLIPVisionConfig, LlamaConfig, LlamaTokenizer, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    try:
        from transformers import CLIPImageProcessorPil as ImageProcessor
    except ImportError:  # older transformers
        from transformers import CLIPImageProcessor as ImageProcessor

    tok = LlamaTokenizer.from_pretrained(tiny_tokenizer_dir(os.path.join(work_dir, "sp")))
    if prune_for is not None:
        pruned = LlamaTokenizer.from_pretrained(tiny_tokenizer_dir(os.path.join(work_dir, "sp-pruned"), prune_for))
        _same_pieces(tok, pruned, prune_for)
        tok = pruned
    tok.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tok.pad_token = tok.unk_token
    image_proc = ImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_proc, tokenizer=tok, patch_size=patch,
                               vision_feature_select_strategy="default", chat_template=TINY_CHAT_TEMPLATE,
                               num_additional_image_tokens=1)
    image_token = tok.convert_tokens_to_ids("<image>")
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=vision_hidden, intermediate_size=2 * vision_hidden,
                                       num_hidden_layers=vision_layers, num_attention_heads=heads,
                                       image_size=image_size, patch_size=patch, projection_dim=vision_hidden),
        text_config=LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden,
                                num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                                max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
                                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                tie_word_embeddings=True),
        image_token_index=image_token,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    return model, processor


def load_pretrained(name: str, *, dtype: torch.dtype, device: str):
    """Any ``AutoModelForImageTextToText`` with its ``AutoProcessor`` (a chat template is required)."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(name)
    if getattr(processor, "chat_template", None) is None and getattr(processor.tokenizer, "chat_template", None) is None:
        raise SystemExit(f"{name} has no chat template; pick an instruct/chat checkpoint")
    model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype).to(device)
    return model, processor


def count_parameters(model) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


# ---------------------------------------------------------------- loss
_MODEL_KEYS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "image_sizes", "pixel_attention_mask")


def model_inputs(batch: dict, device) -> dict:
    return {k: v.to(device) for k, v in batch.items() if k in _MODEL_KEYS and isinstance(v, torch.Tensor)}


def answer_loss(model, batch: dict, device) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the supervised (answer) tokens.

    The language-model head runs only on the positions that predict an answer
    token, so the ``(batch, length, vocab)`` logits tensor is never built: with a
    150k vocabulary that saves gigabytes at 2k-token sequences.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    labels = batch["labels"].to(device)
    out = base.model(**model_inputs(batch, device), use_cache=False)
    hidden = out.last_hidden_state[:, :-1]
    target = labels[:, 1:]
    keep = target != -100
    logits = base.get_output_embeddings()(hidden[keep]).float()
    n = int(keep.sum())
    return torch.nn.functional.cross_entropy(logits, target[keep]), n


# ---------------------------------------------------------------- generation and scoring
def make_logits_processor(tokenizer, grid: tuple[int, int], labels, fmt: str, max_new_tokens: int | None = None):
    """maskcodec's constrained-decoding processor (forcing the answer to start with ``<seg>``),
    or None when ``maskcodec.hf`` is not available."""
    try:
        from maskcodec.hf import SegLogitsProcessor
    except ImportError:
        return None
    return SegLogitsProcessor(tokenizer, grid[0], grid[1], labels, format=fmt, force_seg=True,
                              max_new_tokens=max_new_tokens, eos_token_id=tokenizer.eos_token_id)


def load_target(rec: Record, size_hw: tuple[int, int], grid, fmt: str) -> np.ndarray:
    """The full-size target: the record's mask PNG, else its answer decoded at the image size."""
    if rec.mask:
        with Image.open(rec.mask) as im:
            m = np.asarray(im.convert("L")) > 0
        if m.shape != tuple(size_hw):
            raise SystemExit(f"{rec.mask}: mask is {m.shape}, image is {tuple(size_hw)}")
        return m
    return mc.decode_mask(rec.answer, size=size_hw, grid=grid, mode="strict", format=fmt)


@dataclass
class Scores:
    """cIoU / gIoU / REC Acc@0.5 of one kind of prediction, and the strict parse rate."""

    name: str
    acc: object = None
    rec: object = None
    parsed: int = 0
    checked: int = 0
    n: int = 0

    def __post_init__(self):
        from maskcodec.metrics import IoUAccumulator, RECAccuracy

        self.acc = IoUAccumulator()
        self.rec = RECAccuracy()

    def add(self, pred: np.ndarray, target: np.ndarray, strict_ok: bool | None = None) -> None:
        self.acc.add(pred, target)
        if target.any():  # REC needs a target box; no-target samples count only in cIoU/gIoU
            self.rec.add(pred, target)
        self.n += 1
        if strict_ok is not None:
            self.checked += 1
            self.parsed += int(bool(strict_ok))

    def summary(self) -> dict:
        return {"ciou": self.acc.ciou, "giou": self.acc.giou, "rec_acc50": self.rec.accuracy,
                "strict_parse_rate": self.parsed / self.checked if self.checked else None, "n": self.n}


def sample_iou(pred: np.ndarray, target: np.ndarray) -> float:
    from maskcodec.metrics import iou

    return iou(pred, target)


def strict_ok(text: str, grid, fmt: str) -> bool:
    try:
        mc.parse(text, grid=grid, mode="strict", format=fmt)
    except mc.MaskcodecError:
        return False
    return True


@torch.no_grad()
def generate_and_score(model, processor, records: list[Record], *, grid, fmt: str, labels=None,
                       constrained: bool = True, batch_size: int = 8, max_new_tokens: int = 512,
                       device="cpu", sam=None, log=print) -> dict:
    """Greedy generation, decoding with repair, scoring on the coarse grid (and after SAM when given)."""
    model.eval()
    tok = getattr(processor, "tokenizer", processor)
    procs = []
    lp = make_logits_processor(tok, grid, labels, fmt, max_new_tokens) if constrained else None
    if constrained and lp is None:
        log("maskcodec.hf is not available: generating without the logits processor")
    if lp is not None:
        from transformers import LogitsProcessorList

        procs = LogitsProcessorList([lp])
    collate = make_collate(processor, for_generation=True)
    coarse, refined = Scores("coarse"), Scores("sam") if sam is not None else None
    samples = []
    t0 = time.time()
    for s in range(0, len(records), batch_size):
        exs = [ChatDataset(records)[i] for i in range(s, min(len(records), s + batch_size))]
        batch = collate(exs)
        inputs = model_inputs(batch, device)
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(next(model.parameters()).dtype)
        kwargs = {"logits_processor": procs} if procs else {}
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **kwargs)
        decoded = mct.decode_token_ids(out, tok, size=batch["image_sizes_hw"], grid=grid,
                                       prompt_length=inputs["input_ids"].shape[1], format=fmt)
        for i, rec in enumerate(batch["records"]):
            size = tuple(batch["image_sizes_hw"][i])
            pred = decoded.masks[i].cpu().numpy()
            target = load_target(rec, size, grid, fmt)
            ok = strict_ok(decoded.texts[i], grid, fmt)
            coarse.add(pred, target, ok)
            row = {"id": rec.id, "text": decoded.texts[i], "strict": ok, "found": bool(decoded.found[i]),
                   "iou": float(sample_iou(pred, target))}
            if sam is not None:
                refined_mask = sam(exs[i]["images"][0], decoded.results[i].grid)
                refined.add(refined_mask, target, ok)
            samples.append(row)
    result = {"coarse": coarse.summary(), "seconds": time.time() - t0, "constrained": lp is not None}
    if refined is not None:
        result["sam"] = refined.summary()
    result["samples"] = samples
    return result


def baselines(train: list[Record], val: list[Record], grid, fmt: str) -> dict:
    """All-background and the best fixed blob (chosen on train, scored on val), on the val targets.

    Fixed blobs: the per-cell foreground frequency of the training answers thresholded
    at 0.05..0.95, and every centred rectangle of the grid.
    """
    rows, cols = grid
    freq = np.zeros((rows, cols))
    for r in train:
        freq += mc.parse(r.answer, grid=grid, format=fmt).grid.foreground
    freq /= max(1, len(train))
    candidates = [freq >= t for t in np.arange(0.05, 1.0, 0.05)]
    for h in range(1, rows + 1):
        for w in range(1, cols + 1):
            c = np.zeros((rows, cols), bool)
            y0, x0 = (rows - h) // 2, (cols - w) // 2
            c[y0:y0 + h, x0:x0 + w] = True
            candidates.append(c)

    def targets(recs):
        out = []
        for r in recs:
            with Image.open(r.image) as im:
                size = im.size[::-1]
            out.append((size, load_target(r, size, grid, fmt)))
        return out

    def score(cand, loaded):
        s = Scores("blob")
        rendered: dict = {}
        for size, target in loaded:
            if size not in rendered:
                rendered[size] = mc.render(cand, size)
            s.add(rendered[size], target)
        return s.summary()

    sub = targets(train[: min(len(train), 300)])
    val_t = targets(val)
    best = max(candidates, key=lambda c: score(c, sub)["giou"])
    return {"all_background": score(np.zeros((rows, cols), bool), val_t), "best_fixed_blob": score(best, val_t),
            "best_fixed_blob_cells": int(best.sum())}


def sam_refiner(name: str, device: str):
    """A callable (image, LabelGrid) -> refined mask using Hugging Face ``SamModel`` and maskcodec.refine."""
    from transformers import SamModel, SamProcessor

    from maskcodec import refine

    model = SamModel.from_pretrained(name).to(device).eval()
    proc = SamProcessor.from_pretrained(name)

    @torch.no_grad()
    def run(image, grid):
        h, w = image.size[1], image.size[0]
        p = refine.sam_prompts(grid, (h, w), frame="sam")
        if p.empty:
            return np.zeros((h, w), dtype=bool)
        inputs = proc(image, input_points=[[p.point_coords.tolist()]], input_labels=[[p.point_labels.tolist()]],
                      input_boxes=[[p.box.tolist()]], return_tensors="pt").to(device)
        inputs["input_masks"] = torch.from_numpy(p.mask_logits)[None, None].to(device)
        out = model(**inputs, multimask_output=False)
        masks = proc.image_processor.post_process_masks(out.pred_masks.cpu(), inputs["original_sizes"].cpu(),
                                                        inputs["reshaped_input_sizes"].cpu())
        return masks[0][0, 0].numpy().astype(bool)

    return run


def cosine_lr(step: int, total: int, warmup: int, base: float) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
