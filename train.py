"""
train.py — pretrain a GPT on English, or continue a (grown) one on Korean.

Place in the story: step 1 pretrains the English base model from scratch;
after scale.py has grown it, `--init-from=upscaled` continues pretraining on the
second language while every evaluation prints the loss on English *and* Korean,
so forgetting and learning are visible side by side. Weights that the grown
checkpoint marks as frozen stay bit-identical (weight decay included).

    python train.py                          # pretrain on data/english -> out/base/ckpt.pt
    python train.py --init-from=upscaled     # continue out/upscaled.pt on korean -> out/continued/
    python train.py --init-from=resume --out-dir=out/base   # continue where a run stopped
    torchrun --standalone --nproc_per_node=2 train.py       # the same on 2 processes (DDP)

Follows nanoGPT's train.py (AdamW, warm-up + cosine, gradient accumulation,
DDP), with argparse instead of globals, exact resume and atomic checkpoints.
"""

import argparse
import hashlib
import json
import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from data.common import DATA_DIR, get_tokenizer, load_meta
from data.loader import draw_rows, make_batch, open_split, parse_replay, seen_tokens
from evaluate import estimate_loss
from checkpoint import (UPSCALED_CKPT, load_checkpoint, make_checkpoint, model_from_checkpoint,
                        remove_stale_tmp, save_checkpoint)
from model import GPT, GPTConfig
from cli import UserError, parse_flags, parser, run_cli, typed_flags

# Continued pretraining (--init-from=upscaled or a checkpoint path) uses these instead of the
# pretraining defaults: a new language, both languages evaluated, and a gentler learning rate
# (at 1e-3 full continued pretraining nearly erased English in our calibration runs).
CONTINUE_DEFAULTS = dict(dataset="korean", eval_datasets="english,korean", out_dir="out/continued",
                         max_iters=600, learning_rate=3e-4, warmup_iters=50)
PRETRAIN_DEFAULTS = dict(dataset="english", eval_datasets=None, out_dir="out/base",
                         max_iters=2000, learning_rate=1e-3, warmup_iters=100)
ARCH_FLAGS = ("n_layer", "n_head", "n_embd", "block_size", "bias")


def build_parser():
    p = parser("train.py", "Pretrain or continue pretraining a GPT.")
    io = p.add_argument_group("what to train")
    io.add_argument("--init-from", default="scratch",
                    help="scratch | resume (the checkpoint in --out-dir) | upscaled (scale.py's output, "
                         f"{UPSCALED_CKPT}) | a checkpoint path")
    io.add_argument("--out-dir", help="where ckpt.pt and log.jsonl go (default: out/base; out/continued when continuing)")
    io.add_argument("--dataset", help="training data, a folder under data/ (default: english; korean when continuing)")
    io.add_argument("--eval-datasets", help="comma-separated datasets evaluated at every eval "
                                            "(default: the training dataset; english,korean when continuing)")
    io.add_argument("--data-dir", default=DATA_DIR, help="folder holding the prepared datasets")
    io.add_argument("--replay", default="", help="mix other datasets into each batch, e.g. english:0.05 "
                                                 "(each sequence comes from english with probability 0.05)")
    io.add_argument("--unfreeze", action="store_true", help="train every weight, even those the checkpoint marks frozen")
    m = p.add_argument_group("model (for --init-from=scratch)")
    m.add_argument("--n-layer", type=int, default=4, help="transformer blocks")
    m.add_argument("--n-head", type=int, default=4, help="attention heads per block")
    m.add_argument("--n-embd", type=int, default=128, help="width of the residual stream")
    m.add_argument("--block-size", type=int, default=128, help="context length in tokens")
    m.add_argument("--dropout", type=float, default=0.0, help="dropout probability (may also be set when continuing)")
    m.add_argument("--bias", action=argparse.BooleanOptionalAction, default=True, help="biases in Linear and LayerNorm")
    o = p.add_argument_group("optimisation")
    o.add_argument("--batch-size", type=int, default=16, help="sequences per micro-batch (per process)")
    o.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step, over all processes")
    o.add_argument("--max-iters", type=int, help="optimizer steps (default: 2000; 600 when continuing)")
    o.add_argument("--learning-rate", type=float, help="peak learning rate (default: 1e-3; 3e-4 when continuing)")
    o.add_argument("--min-lr", type=float, help="final learning rate of the cosine (default: learning rate / 10)")
    o.add_argument("--warmup-iters", type=int, help="linear warm-up steps (default: 100; 50 when continuing)")
    o.add_argument("--lr-decay-iters", type=int, help="steps of the cosine decay (default: --max-iters)")
    o.add_argument("--weight-decay", type=float, default=0.1, help="AdamW decay, on 2-D weights only")
    o.add_argument("--beta1", type=float, default=0.9, help="AdamW's first-moment decay")
    o.add_argument("--beta2", type=float, default=0.99, help="AdamW's second-moment decay")
    o.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0 = off)")
    e = p.add_argument_group("evaluation and output")
    e.add_argument("--eval-interval", type=int, default=200, help="evaluate and save a checkpoint every N steps")
    e.add_argument("--eval-iters", type=int, default=20, help="batches per dataset per evaluation")
    e.add_argument("--sample-tokens", type=int, default=300, help="tokens sampled and printed at the end (0 = none)")
    s = p.add_argument_group("system")
    s.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu) | cpu | cuda | cuda:1 | mps")
    s.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="autocast precision; auto = bfloat16 on cuda and cpu when supported, else float32")
    s.add_argument("--compile", action="store_true", help="torch.compile the model (faster after a slow first step)")
    s.add_argument("--seed", type=int, default=1337, help="seeds the initialisation, the data order and dropout")
    return p


def parse_args(argv=None):
    """Parse flags; also return which flags the user typed (resume keeps the rest from the checkpoint)."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parse_flags(parser, argv)
    return args, typed_flags(parser, argv)


def fill_defaults(args):
    continuing = args.init_from not in ("scratch", "resume")
    for key, value in (CONTINUE_DEFAULTS if continuing else PRETRAIN_DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.eval_datasets = args.eval_datasets or args.dataset
    args.min_lr = args.learning_rate / 10 if args.min_lr is None else args.min_lr
    args.lr_decay_iters = args.lr_decay_iters or args.max_iters


def autodetect_device():
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested, device_type):
    if requested != "auto":
        return requested
    if device_type == "cuda" and torch.cuda.is_bf16_supported():
        return "bfloat16"
    if device_type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return "bfloat16"
    return "float32"


# ----------------------------------------------------------------------------
# optimisation


def lr_at(it, args):
    """Linear warm-up, then cosine decay to min_lr at lr_decay_iters (nanoGPT's schedule)."""
    if it < args.warmup_iters:
        return args.learning_rate * (it + 1) / (args.warmup_iters + 1)
    if it > args.lr_decay_iters:
        return args.min_lr
    ratio = (it - args.warmup_iters) / max(1, args.lr_decay_iters - args.warmup_iters)
    return args.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (args.learning_rate - args.min_lr)


def apply_freezing(model, frozen):
    """Freeze what a grown checkpoint marks frozen; return the partly frozen tensors.

    frozen maps parameter names to True (the whole tensor) or a bool mask
    (True = frozen entry). A wholly frozen tensor gets requires_grad=False: no
    gradient, no optimizer state, no work. A partly frozen one (the embedding
    rows of tokens the base model never saw stay trainable) keeps training, and
    `hold_frozen` zeroes its frozen entries' gradients and puts their values
    back after every step, because AdamW's decoupled weight decay would
    otherwise still move them.
    """
    params = dict(model.named_parameters())
    partial = []
    for name, mask in frozen.items():
        if name not in params:
            raise UserError(f"the checkpoint freezes '{name}', which the model does not have")
        p = params[name]
        if mask is True or bool(mask.all()):
            p.requires_grad_(False)
        elif mask.shape != p.shape:
            raise UserError(f"frozen mask for '{name}' has shape {tuple(mask.shape)}, the weight {tuple(p.shape)}")
        elif mask.any():
            mask = mask.to(p.device)
            partial.append((p, mask, p.detach()[mask].clone()))
    return partial


def hold_frozen(partial, after_step):
    for p, mask, values in partial:
        if after_step:
            p.data[mask] = values
        elif p.grad is not None:
            p.grad[mask] = 0


def optimizer_step(model, optimizer, batches, partial, grad_clip, ctx):
    """One AdamW step on the micro-batches [(x, y), ...]; returns their mean loss.

    Gradients are accumulated over the micro-batches (under DDP, all-reduced
    once, after the last one), frozen entries held, the norm clipped.
    """
    loss_sum = 0.0
    for micro, (x, y) in enumerate(batches):
        if isinstance(model, DDP):
            model.require_backward_grad_sync = micro == len(batches) - 1
        with ctx:
            _, loss = model(x, y)
        (loss / len(batches)).backward()
        loss_sum += loss.item()
    hold_frozen(partial, after_step=False)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], grad_clip)
    optimizer.step()
    hold_frozen(partial, after_step=True)
    optimizer.zero_grad(set_to_none=True)
    return loss_sum / len(batches)


def make_optimizer(model, args, device_type):
    """AdamW over trainable tensors only; weight decay on 2-D weights (matrices, embeddings) only."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": args.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(args.beta1, args.beta2),
                             fused=device_type == "cuda")


def weights_fingerprint(model):
    h = hashlib.sha256()
    for _, p in sorted(model.state_dict().items()):
        h.update(p.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------
# the run


def init_path(args):
    """The checkpoint --init-from names, or None for scratch."""
    if args.init_from == "scratch":
        return None
    if args.init_from == "resume":
        return os.path.join(args.out_dir or PRETRAIN_DEFAULTS["out_dir"], "ckpt.pt")
    if args.init_from == "upscaled":
        if not os.path.isfile(UPSCALED_CKPT):
            raise UserError(f"no upscaled checkpoint at {UPSCALED_CKPT}: run python scale.py first, or pass a checkpoint path")
        return UPSCALED_CKPT
    return args.init_from


def take_saved_settings(args, explicit, ckpt, path):
    """Resume continues the run as it was configured, except for flags typed now (which are printed)."""
    if not ckpt.get("config"):
        raise UserError(f"{path} holds no training settings to resume from")
    for key, value in ckpt["config"].items():
        if key not in explicit and key != "init_from":
            setattr(args, key, value)
    args.out_dir = os.path.dirname(path)  # keep writing where the run lives
    return sorted(explicit - {"init_from", "out_dir"})


def build_model(args, explicit, ckpt, path):
    """The model to train and its tokenizer: new from the flags, or from the checkpoint."""
    if ckpt is None:
        tokenizer = load_meta(args.dataset, args.data_dir)["tokenizer"]
        config = GPTConfig(block_size=args.block_size, vocab_size=get_tokenizer(tokenizer).n_vocab,
                           n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                           dropout=args.dropout, bias=args.bias)
        return GPT(config), tokenizer
    margs = dict(ckpt["model_args"])
    for flag in set(ARCH_FLAGS) & explicit:
        if getattr(args, flag) != margs[flag]:
            raise UserError(f"--{flag.replace('_', '-')} cannot change when starting from {path} (it has {margs[flag]})")
    for flag in ARCH_FLAGS:
        setattr(args, flag, margs[flag])
    margs["dropout"] = args.dropout if "dropout" in explicit else margs["dropout"]
    return model_from_checkpoint(dict(ckpt, model_args=margs), path), ckpt["tokenizer"]


def open_datasets(args, tokenizer):
    """Training sources [(data, probability)] (the dataset plus any replay) and the eval splits."""
    replay = parse_replay(args.replay)
    main_data = open_split(args.data_dir, args.dataset, "train", tokenizer, args.block_size)
    sources = [(main_data, 1 - sum(f for _, f in replay))]
    sources += [(open_split(args.data_dir, name, "train", tokenizer, args.block_size), f) for name, f in replay]
    eval_splits = {"train": main_data}
    for name in filter(None, args.eval_datasets.split(",")):
        eval_splits[name] = open_split(args.data_dir, name, "val", tokenizer, args.block_size)
    return sources, eval_splits


def catch_ctrl_c():
    """The first Ctrl-C asks the loop to save and stop after the current step; a second one quits."""
    stop = {"requested": False}

    def on_sigint(signum, frame):
        if stop["requested"]:
            print("\ninterrupted twice: quitting without saving (the last checkpoint is intact)")
            raise SystemExit(130)
        stop["requested"] = True
    signal.signal(signal.SIGINT, on_sigint)
    return stop


def main(argv=None):
    args, explicit = parse_args(argv)
    ddp = int(os.environ.get("RANK", -1)) != -1  # started by torchrun?
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if ddp else (0, 1)
    master = rank == 0  # the process that evaluates, logs and saves
    path = init_path(args)
    ckpt = load_checkpoint(path) if path else None
    resumed = args.init_from == "resume"
    if resumed:
        overridden = take_saved_settings(args, explicit, ckpt, path)
        if master and overridden:
            print("resuming with the saved settings, except: " + ", ".join(f"{k}={getattr(args, k)}" for k in overridden))
    fill_defaults(args)
    if args.grad_accum % world != 0:
        raise UserError(f"--grad-accum={args.grad_accum} must be a multiple of the {world} processes")

    # device, precision, processes
    device = autodetect_device() if args.device == "auto" else args.device
    if ddp:
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            device = f"cuda:{int(os.environ['LOCAL_RANK'])}"
            torch.cuda.set_device(device)
    device_type = device.split(":")[0]
    dtype = pick_dtype(args.dtype, device_type)
    ctx = torch.autocast(device_type, dtype=torch.bfloat16) if dtype == "bfloat16" else nullcontext()
    torch.manual_seed(args.seed + rank)

    # model, frozen weights, optimizer, data
    model, tokenizer = build_model(args, explicit, ckpt, path)
    frozen = {} if args.unfreeze or ckpt is None else ckpt.get("frozen", {})
    model.to(device)
    partial = apply_freezing(model, frozen)
    optimizer = make_optimizer(model, args, device_type)
    data_gen = torch.Generator().manual_seed(args.seed)  # draws the training batches
    sources, eval_splits = open_datasets(args, tokenizer)
    iter_num, tokens_seen = 0, 0
    if resumed:
        optimizer.load_state_dict(ckpt["optimizer"])
        iter_num, tokens_seen = ckpt["iter_num"], ckpt["tokens_seen"]
        data_gen.set_state(ckpt["rng"]["data"])
        if world == 1:
            torch.set_rng_state(ckpt["rng"]["torch"])
        else:  # only the first process's dropout stream is saved; the others restart theirs
            torch.manual_seed(args.seed + rank + 1_000_003 * iter_num)
    start_iter = iter_num
    seen = seen_tokens(sources, model.config.vocab_size, (ckpt or {}).get("seen_tokens"))
    raw_model = model  # what we save: never the compiled or DDP wrapper, so no "_orig_mod." prefixes
    if args.compile:
        model = torch.compile(model)
    if ddp:
        model = DDP(model, device_ids=[int(os.environ["LOCAL_RANK"])] if device_type == "cuda" else None)

    local_accum = args.grad_accum // world  # micro-batches per step on this process
    tokens_per_iter = args.grad_accum * args.batch_size * args.block_size
    ckpt_path, log_path = os.path.join(args.out_dir, "ckpt.pt"), os.path.join(args.out_dir, "log.jsonl")
    if master:
        n_total, n_train = raw_model.num_params(), raw_model.num_params(trainable_only=True)
        print(f"model: {n_total:,} parameters, {n_train:,} trainable ({n_total - n_train:,} frozen"
              f"{f', {len(partial)} tensors partly' if partial else ''}); tokenizer {tokenizer}")
        print(f"device {device}, {dtype}, {world} process(es); {tokens_per_iter:,} tokens per step; training on "
              f"{args.dataset}{' + ' + args.replay if args.replay else ''} from step {iter_num}")
        os.makedirs(args.out_dir, exist_ok=True)
        old_log = [line for line in open(log_path)] if os.path.exists(log_path) and resumed else []
        with open(log_path, "w") as f:  # a new run starts a new log; a resumed one drops lines past its step
            f.writelines(line for line in old_log if json.loads(line)["iter"] <= iter_num)

    def snapshot():  # everything a resume needs, as of the start of the current step
        return {"model": raw_model.state_dict(), "model_args": asdict(raw_model.config), "tokenizer": tokenizer,
                "optimizer": optimizer.state_dict(), "iter_num": iter_num, "tokens_seen": tokens_seen,
                "config": vars(args).copy(), "frozen": frozen, "seen_tokens": seen,
                "rng": {"data": rng_at_step_start[0], "torch": rng_at_step_start[1]},
                "history": (ckpt or {}).get("history", []) + ([] if resumed else
                            [{"stage": "train", "init_from": args.init_from, "dataset": args.dataset}])}

    stop = catch_ctrl_c()
    t_start, t_last, tokens_at_start = time.time(), time.time(), tokens_seen
    last_eval, tok_s = None, 0.0
    bar = tqdm(total=args.max_iters, initial=iter_num, disable=not master, dynamic_ncols=True, unit="step")
    while True:
        rng_at_step_start = (data_gen.get_state(), torch.get_rng_state())  # what a resume needs
        done = iter_num >= args.max_iters or stop["requested"]
        eval_due = iter_num % args.eval_interval == 0 or iter_num == args.max_iters
        if master and eval_due and (iter_num > start_iter or not resumed):
            last_eval = estimate_loss(raw_model, eval_splits, args.batch_size, args.eval_iters, device, ctx)
            bar.write(f"step {iter_num}: " + " | ".join(f"{k} {v:.4f}" for k, v in last_eval.items()))
            with open(log_path, "a") as f:
                f.write(json.dumps({"iter": iter_num, "tokens": tokens_seen, "lr": lr_at(iter_num, args),
                                    "elapsed_s": round(time.time() - t_start, 2), "loss": last_eval}) + "\n")
            if iter_num > 0 and not done:
                save_checkpoint(snapshot(), ckpt_path)
        if done:
            break

        # one optimizer step: local_accum micro-batches, gradients averaged over all processes
        lr = lr_at(iter_num, args)
        for group in optimizer.param_groups:
            group["lr"] = lr
        rows = draw_rows(data_gen, sources, args.grad_accum * args.batch_size, args.block_size)
        rows = rows[rank * local_accum * args.batch_size:(rank + 1) * local_accum * args.batch_size]
        datas = [data for data, _ in sources]
        batches = [make_batch(rows[m * args.batch_size:(m + 1) * args.batch_size], datas, args.block_size, device)
                   for m in range(local_accum)]
        loss = optimizer_step(model, optimizer, batches, partial, args.grad_clip, ctx)
        iter_num += 1
        tokens_seen += tokens_per_iter
        if ddp:  # every process must agree to stop at the same step
            flag = torch.tensor([float(stop["requested"])], device=device)
            dist.all_reduce(flag)
            stop["requested"] = flag.item() > 0
        now = time.time()
        tok_s = tokens_per_iter / (now - t_last) if tok_s == 0 else 0.9 * tok_s + 0.1 * tokens_per_iter / (now - t_last)
        t_last = now
        bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
        bar.update(1)
    bar.close()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises KeyboardInterrupt again

    elapsed, trained = time.time() - t_start, tokens_seen - tokens_at_start
    if master:
        save_checkpoint(snapshot(), ckpt_path)
        if stop["requested"]:
            print(f"interrupted: saved step {iter_num} to {ckpt_path}; continue with "
                  f"python train.py --init-from=resume --out-dir={args.out_dir}")
        else:
            losses = ", ".join(f"{k} {v:.4f}" for k, v in (last_eval or {}).items())
            print(f"done: {iter_num} steps, {trained:,} tokens in {elapsed:.0f}s ({trained / max(elapsed, 1e-9):,.0f} "
                  f"tokens/s); loss {losses}; saved {ckpt_path}")
    if ddp:
        fingerprints = [None] * world
        dist.all_gather_object(fingerprints, weights_fingerprint(raw_model))
        if master:
            same = len(set(fingerprints)) == 1
            print(f"weights {'identical' if same else 'DIFFER'} on all {world} processes ({fingerprints[0]})")
        dist.destroy_process_group()
    if master and args.sample_tokens > 0 and not stop["requested"]:
        from sample import sample_text
        print("sample:\n" + sample_text(raw_model, tokenizer, "\n", args.sample_tokens, device=device))


if __name__ == "__main__":
    run_cli(main)
