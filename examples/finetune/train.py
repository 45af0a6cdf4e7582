"""LoRA fine-tune of a Hugging Face image-text-to-text model on Text4Seg answers.

Real run (one GPU)::

    python examples/finetune/train.py --model Qwen/Qwen2-VL-2B-Instruct \\
        --train data/refcoco_train.jsonl --val data/refcoco_val.jsonl --image-root data/coco \\
        --grid 16 --output-dir runs/qwen2vl-2b

No download, no GPU (a tiny random LLaVA-style model on synthetic shapes)::

    python examples/finetune/train.py --tiny --output-dir runs/tiny

See README.md in this folder for every option, memory needs and run times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


LORA_TARGET = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    src = p.add_argument_group("model and data")
    src.add_argument("--model", default="Qwen/Qwen2-VL-2B-Instruct",
                     help="any AutoModelForImageTextToText checkpoint with a chat template")
    src.add_argument("--tiny", action="store_true",
                     help="random tiny LLaVA-style model + synthetic shapes; no download, CPU is fine")
    src.add_argument("--train", help="training JSONL (LLaVA, ShareGPT, swift or HF-messages layout)")
    src.add_argument("--val", help="validation JSONL, scored at the end when --eval-samples > 0")
    src.add_argument("--image-root", help="folder that relative image paths start from (default: the JSONL's)")
    src.add_argument("--grid", type=int, nargs="+", default=[16], help="rows [cols] of the answers")
    src.add_argument("--format", default="rrle", choices=["rrle", "irle", "full"])
    src.add_argument("--max-length", type=int, default=None, help="refuse samples longer than this many tokens")
    tr = p.add_argument_group("training")
    tr.add_argument("--output-dir", required=True)
    tr.add_argument("--full", action=argparse.BooleanOptionalAction, default=None,
                    help="train all weights instead of LoRA (default: on for --tiny, whose model is random)")
    tr.add_argument("--lora", dest="full", action="store_false", default=None, help="same as --no-full")
    tr.add_argument("--lora-r", type=int, default=16)
    tr.add_argument("--lora-alpha", type=int, default=32)
    tr.add_argument("--lora-dropout", type=float, default=0.05)
    tr.add_argument("--lora-target", default=LORA_TARGET, help="regex of module names that get LoRA adapters")
    tr.add_argument("--epochs", type=float, default=1.0)
    tr.add_argument("--max-steps", type=int, default=None, help="overrides --epochs")
    tr.add_argument("--batch-size", type=int, default=4)
    tr.add_argument("--grad-accum", type=int, default=4)
    tr.add_argument("--lr", type=float, default=2e-4)
    tr.add_argument("--warmup", type=int, default=20, help="warm-up steps")
    tr.add_argument("--weight-decay", type=float, default=0.0)
    tr.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                    help="bfloat16 weights (default: on with CUDA)")
    tr.add_argument("--gradient-checkpointing", action=argparse.BooleanOptionalAction, default=None,
                    help="default: on with CUDA")
    tr.add_argument("--max-minutes", type=float, default=None,
                    help="stop training after this much wall time (then save and evaluate as usual)")
    tr.add_argument("--save-every", type=int, default=500, help="checkpoint every N optimizer steps (0: end only)")
    tr.add_argument("--log-every", type=int, default=10)
    tr.add_argument("--eval-samples", type=int, default=64, help="val samples generated at the end (0: none)")
    tr.add_argument("--compare-unconstrained", action=argparse.BooleanOptionalAction, default=True,
                    help="also generate without the logits processor in the final evaluation")
    tr.add_argument("--max-new-tokens", type=int, default=None, help="default: 4 tokens per cell + 32")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    tr.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: 1 for --tiny on a CPU, where more threads on a busy "
                         "machine made steps up to 50x slower here; else torch's default)")
    ti = p.add_argument_group("--tiny options")
    ti.add_argument("--tiny-train", type=int, default=512, help="synthetic training samples")
    ti.add_argument("--tiny-val", type=int, default=64, help="synthetic validation samples")
    ti.add_argument("--tiny-hidden", type=int, default=64)
    ti.add_argument("--tiny-layers", type=int, default=2)
    ti.add_argument("--tiny-image-size", type=int, default=32)
    ti.add_argument("--tiny-vocab", choices=["pruned", "full"], default="pruned",
                    help="pruned: keep only the SentencePiece pieces the task's texts need (same tokenization, "
                         "a ~100x smaller output layer); full: all 32k")
    ti.add_argument("--tiny-objects", type=int, default=2, help="shapes per image (1..N)")
    return p


def grid_of(args) -> tuple[int, int]:
    if len(args.grid) not in (1, 2):
        raise SystemExit("--grid takes ROWS or ROWS COLS")
    return (args.grid[0], args.grid[-1])


def setup(args):
    """Model, processor, train and val records (the only place --tiny differs from a real run)."""
    grid = grid_of(args)
    if args.tiny:
        data = os.path.join(args.output_dir, "data")
        if not os.path.exists(os.path.join(data, "val.jsonl")):
            common.make_synthetic(data, n_train=args.tiny_train, n_val=args.tiny_val,
                                  image_size=args.tiny_image_size, grid=grid[0], fmt=args.format,
                                  max_objects=args.tiny_objects, seed=args.seed)
        args.train = args.train or os.path.join(data, "train.jsonl")
        args.val = args.val or os.path.join(data, "val.jsonl")
        prune = None
        if args.tiny_vocab == "pruned":
            prune = common.task_texts(common.read_records(args.train, args.image_root), grid[0] * grid[1])
        model, processor = common.build_tiny(args.output_dir, image_size=args.tiny_image_size,
                                             patch=args.tiny_image_size // grid[0], hidden=args.tiny_hidden,
                                             layers=args.tiny_layers, seed=args.seed, prune_for=prune)
        base_dir = os.path.join(args.output_dir, "base")
        model.save_pretrained(base_dir)  # LoRA adapters of a tiny run resolve against this
        processor.save_pretrained(base_dir)
        model_name = base_dir
    else:
        if not args.train:
            raise SystemExit("--train is required (or use --tiny)")
        dtype = torch.bfloat16 if args.bf16 else torch.float32
        model, processor = common.load_pretrained(args.model, dtype=dtype, device="cpu")
        model_name = args.model
    if args.bf16:
        model = model.to(torch.bfloat16)
    model = model.to(args.device)
    train = common.read_records(args.train, args.image_root)
    val = common.read_records(args.val, args.image_root) if args.val else []
    return model, processor, train, val, model_name


def wrap_lora(model, args):
    from peft import LoraConfig, get_peft_model

    cfg = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                     target_modules=args.lora_target, task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    if args.gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def save(model, processor, path: str, run: dict) -> None:
    model.save_pretrained(path)
    processor.save_pretrained(path)
    with open(os.path.join(path, "maskcodec_run.json"), "w") as f:
        json.dump(run, f, indent=1)


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.threads is None and args.tiny and args.device == "cpu":
        args.threads = 1
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if args.bf16 is None:
        args.bf16 = cuda
    if args.gradient_checkpointing is None:
        args.gradient_checkpointing = cuda
    if args.full is None:
        args.full = args.tiny  # a random model has nothing to adapt: train it all
    os.makedirs(args.output_dir, exist_ok=True)
    torch.manual_seed(args.seed)
    grid = grid_of(args)
    model, processor, train, val, model_name = setup(args)
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if not args.full:
        model = wrap_lora(model, args)
    total, trainable = common.count_parameters(model)
    print(f"model {model_name}: {total / 1e6:.2f}M parameters, {trainable / 1e6:.2f}M trainable; "
          f"{len(train)} train / {len(val)} val samples; grid {grid[0]}x{grid[1]} {args.format}", flush=True)
    loader = torch.utils.data.DataLoader(
        common.ChatDataset(train), batch_size=args.batch_size, shuffle=True,
        collate_fn=common.make_collate(processor, max_length=args.max_length),
        generator=torch.Generator().manual_seed(args.seed),
    )
    per_epoch = max(1, len(loader) // args.grad_accum)
    steps = args.max_steps or max(1, int(args.epochs * per_epoch))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    run = {"model": model_name, "tiny": args.tiny, "lora": not args.full, "grid": list(grid),
           "format": args.format, "steps": steps, "args": vars(args)}
    log_path = os.path.join(args.output_dir, "metrics.jsonl")
    log = open(log_path, "a", encoding="utf-8")
    step, micro, t0, tokens = 0, 0, time.time(), 0
    window: list[float] = []
    model.train()
    it = iter(loader)
    while step < steps:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        if "pixel_values" in batch and args.bf16:
            batch["pixel_values"] = batch["pixel_values"].to(torch.bfloat16)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and args.bf16):
            loss, n = common.answer_loss(model, batch, args.device)
        (loss / args.grad_accum).backward()
        window.append(loss.item())
        tokens += n
        micro += 1
        if micro % args.grad_accum:
            continue
        lr = common.cosine_lr(step, steps, args.warmup, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        if step % args.log_every == 0 or step == steps or step == 1:
            rec = {"step": step, "loss": sum(window) / len(window), "lr": lr, "answer_tokens": tokens,
                   "seconds": round(time.time() - t0, 2)}
            if cuda:
                rec["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            log.write(json.dumps(rec) + "\n")
            log.flush()
            print(json.dumps(rec), flush=True)
            window = []
        if args.max_minutes is not None and time.time() - t0 > 60 * args.max_minutes and step < steps:
            print(f"--max-minutes reached at step {step} of {steps}", flush=True)
            run["stopped_at_step"] = step
            break
        if args.save_every and step % args.save_every == 0 and step < steps:
            save(model, processor, os.path.join(args.output_dir, f"checkpoint-{step}"), run)
    final = os.path.join(args.output_dir, "final")
    save(model, processor, final, run)
    print(f"saved {final}", flush=True)
    if val and args.eval_samples:
        import evaluate

        evaluate.run_eval(model, processor, train, val[: args.eval_samples], grid=grid, fmt=args.format,
                          out_dir=args.output_dir, device=args.device, max_new_tokens=args.max_new_tokens,
                          labels=None, compare_unconstrained=args.compare_unconstrained)
    log.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
