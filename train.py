"""
train.py — pretrain a GPT on English, or continue a (grown) one on Korean.

Place in the story: step 1 pretrains the English base model from scratch;
after scale.py has grown it, `--init-from=upscaled` continues pretraining on the
second language while every evaluation prints the loss on English *and* Korean,
so forgetting and learning are visible side by side. Weights that the grown
checkpoint marks as frozen stay bit-identical (weight decay included).

    python train.py                          # pretrain on data/english -> out/base/ckpt.pt
    python train.py --init-from=upscaled     # continue out/upscaled.pt on korean -> out/continued-upscaled/
    python train.py --init-from=resume --out-dir=out/base   # continue where a run stopped
    torchrun --standalone --nproc_per_node=2 train.py       # the same on 2 processes (DDP)

Follows nanoGPT's train.py (AdamW, warm-up + cosine, gradient accumulation,
DDP), with argparse instead of globals, exact resume and atomic checkpoints.
"""

import argparse
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass

import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

from data.common import DATA_DIR, load_meta
from data.tokenizers import get_tokenizer, tokenizer_label
from data.loader import draw_rows, make_batch, open_split, parse_replay, seen_tokens
from evaluate import estimate_loss
from checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from model_scale import new_model
from optim import apply_freezing, lr_at, make_optimizer, optimizer_step
from plumbing.cli import UserError, available_memory, catch_ctrl_c, check_number, parse_flags, parser, run_cli, typed_flags
from plumbing.rundir import (PRETRAIN_OUT_DIR, UPSCALED_CKPT, claim_out_dir, continue_out_dir, init_path, start_log,
                             take_saved_settings)
from plumbing.system import any_process, leave_process_group, processes, same_weights_everywhere, set_up_system

# Continued pretraining (--init-from=upscaled or a checkpoint path) uses these instead of the
# pretraining defaults: a new language, both languages evaluated, and a gentler learning rate
# (at 1e-3 full continued pretraining nearly erased English in our calibration runs).
CONTINUE_DEFAULTS = dict(dataset="korean", eval_datasets="english,korean",
                         max_iters=600, learning_rate=3e-4, warmup_iters=50)
PRETRAIN_DEFAULTS = dict(dataset="english", eval_datasets=None, out_dir=PRETRAIN_OUT_DIR,
                         max_iters=2000, learning_rate=1e-3, warmup_iters=100)
ARCH_FLAGS = ("n_layer", "n_head", "n_embd", "block_size", "bias")


def build_parser():
    p = parser("train.py", "Pretrain or continue pretraining a GPT.")
    io = p.add_argument_group("what to train")
    io.add_argument("--init-from", default="scratch",
                    help="scratch | resume (the checkpoint in --out-dir) | upscaled (scale.py's output, "
                         f"{UPSCALED_CKPT}) | a checkpoint path")
    io.add_argument("--out-dir", help="where ckpt.pt and log.jsonl go (default: out/base; when continuing X, out/continued-X, "
                                          "e.g. out/continued-upscaled)")
    io.add_argument("--dataset", help="training data, a folder under data/ (default: english; korean when continuing)")
    io.add_argument("--eval-datasets", help="comma-separated datasets evaluated at every eval "
                                            "(default: the training dataset; english,korean when continuing)")
    io.add_argument("--data-dir", default=DATA_DIR, help="folder holding the prepared datasets")
    io.add_argument("--tokenizer", help="for a --init-from checkpoint that does not say: bytes, gpt2, or "
                                        "nanoGPT's data/<dataset>/meta.pkl")
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
    o.add_argument("--grad-accum", type=int, help="micro-batches per optimizer step, over all processes "
                                                  "(default: one per process)")
    o.add_argument("--max-iters", type=int, help="optimizer steps (default: 2000; 600 when continuing)")
    o.add_argument("--learning-rate", type=float, help="peak learning rate (default: 1e-3; 3e-4 when continuing)")
    o.add_argument("--min-lr", type=float, help="final learning rate of the cosine (default: learning rate / 10)")
    o.add_argument("--warmup-iters", type=int, help="linear warm-up steps (default: 100; 50 when continuing)")
    o.add_argument("--lr-decay-iters", type=int, help="steps of the cosine decay (default: --max-iters)")
    o.add_argument("--new-lr-mult", type=float, default=1.0,
                   help="learning rate of the weights a growth added next to a frozen base (depth's new blocks, "
                        "ffn's neurons, SCALE's stream), as a multiple of --learning-rate")
    o.add_argument("--weight-decay", type=float, default=0.1, help="AdamW decay, on 2-D weights only")
    o.add_argument("--beta1", type=float, default=0.9, help="AdamW's first-moment decay")
    o.add_argument("--beta2", type=float, default=0.99, help="AdamW's second-moment decay")
    o.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0 = off)")
    e = p.add_argument_group("evaluation and output")
    e.add_argument("--eval-interval", type=int, default=200, help="evaluate and save a checkpoint every N steps")
    e.add_argument("--eval-iters", type=int, default=20, help="batches per dataset per evaluation")
    e.add_argument("--overwrite", action="store_true",
                   help="replace a run with other settings that already lives in --out-dir")
    e.add_argument("--sample-tokens", type=int, default=300, help="tokens sampled and printed at the end (0 = none)")
    s = p.add_argument_group("system")
    s.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu) | cpu | cuda | cuda:1 | mps")
    s.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="autocast precision; auto = bfloat16 on cuda and cpu when supported, else float32")
    s.add_argument("--threads", default="auto",
                   help="CPU threads: auto (the cores not busy with other work, checked at start-up) or a number")
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


def schedule(it, args):
    """The learning rate of step it under this run's flags."""
    return lr_at(it, args.learning_rate, args.min_lr, args.warmup_iters, args.lr_decay_iters)


# ----------------------------------------------------------------------------
# the run


def check_settings(args):
    """Every number in range, before anything is read or written."""
    check_number("learning_rate", args.learning_rate, 0, low_open=True)
    for name in ("batch_size", "grad_accum", "eval_interval", "eval_iters", "n_layer", "n_head", "n_embd", "block_size"):
        check_number(name, getattr(args, name), 1)
    for name in ("max_iters", "warmup_iters", "lr_decay_iters", "weight_decay", "grad_clip", "min_lr", "sample_tokens"):
        check_number(name, getattr(args, name), 0)
    check_number("dropout", args.dropout, 0, 0.99)
    check_number("new_lr_mult", args.new_lr_mult, 0, low_open=True)
    check_number("beta1", args.beta1, 0, 0.9999)
    check_number("beta2", args.beta2, 0, 0.9999)


def check_fits(margs, batch_size):
    """Refuse, before anything is allocated, a model or batch this machine cannot hold (one line, not a
    crash minutes later): the estimate of model.training_bytes against the memory still free."""
    with torch.device("meta"):  # shapes only, no memory
        need = new_model(margs).training_bytes(batch_size)
    have = available_memory()
    if have is not None and need > have:
        raise UserError(f"block size {margs['block_size']:,}, batch {batch_size}, {margs['n_layer']} layers of width "
                        f"{margs['n_embd']} need about {need / 2**30:,.1f} GiB; {have / 2**30:.1f} GiB are free: make them smaller")


def build_model(args, explicit, ckpt, path):
    """The model to train and its tokenizer: new from the flags, or from the checkpoint."""
    if ckpt is None:
        tokenizer = load_meta(args.dataset, args.data_dir)["tokenizer"]
        if args.n_embd % args.n_head:
            raise UserError(f"--n-embd={args.n_embd} is not divisible by --n-head={args.n_head}")
        margs = dict(block_size=args.block_size, vocab_size=get_tokenizer(tokenizer).n_vocab, n_layer=args.n_layer,
                     n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout, bias=args.bias)
        check_fits(margs, args.batch_size)
        return new_model(margs), tokenizer
    margs = dict(ckpt["model_args"])
    for flag in set(ARCH_FLAGS) & explicit:
        if getattr(args, flag) != margs[flag]:
            raise UserError(f"--{flag.replace('_', '-')} cannot change when starting from {path} (it has {margs[flag]})")
    for flag in ARCH_FLAGS:
        setattr(args, flag, margs[flag])
    margs["dropout"] = args.dropout if "dropout" in explicit else margs["dropout"]
    check_fits(margs, args.batch_size)
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


# ----------------------------------------------------------------------------
# the run, in named steps: settings, system, state, step, evaluate and save, finish


@dataclass
class Run:
    """Everything that changes as training goes, and what a checkpoint of it holds."""
    model: object      # what the loop calls: maybe compiled, maybe DDP-wrapped
    raw_model: object  # what is saved: never a wrapper, so no "_orig_mod." prefixes
    optimizer: object
    tokenizer: str
    frozen: dict
    partial: list      # partly frozen tensors: (parameter, mask, frozen values)
    sources: list
    eval_splits: dict
    seen: object
    data_gen: object   # draws the training batches
    start: dict        # the checkpoint the run started from ({} for scratch)
    iter_num: int = 0
    tokens_seen: int = 0
    elapsed_before: float = 0.0  # seconds spent in earlier sessions of this run (resumes)


def settle_settings(argv, world):
    """Flags, the starting checkpoint, and the settings a resume takes from it, all checked."""
    args, explicit = parse_args(argv)
    path = init_path(args)
    ckpt = load_checkpoint(path, tokenizer=args.tokenizer) if path else None
    resumed = args.init_from == "resume"
    overridden = take_saved_settings(args, explicit, ckpt, path) if resumed else []
    if resumed and "threads" not in explicit and ckpt.get("threads"):
        args.threads = str(ckpt["threads"])  # the thread count can change float sums: resume exactly as it ran
    if args.out_dir is None and args.init_from not in ("scratch", "resume"):
        args.out_dir = continue_out_dir(args.init_from)
    fill_defaults(args)
    if args.grad_accum is None:
        args.grad_accum = world  # one micro-batch per process by default
    check_settings(args)
    if args.grad_accum % world != 0:
        raise UserError(f"--grad-accum={args.grad_accum} must be a multiple of the {world} processes")
    return args, explicit, ckpt, path, overridden


def build_run(args, explicit, ckpt, path, system):
    """The model, its frozen weights, optimizer and data: new, or restored exactly from a checkpoint."""
    model, tokenizer = build_model(args, explicit, ckpt, path)
    frozen = {} if args.unfreeze or ckpt is None else ckpt.get("frozen", {})
    model.to(system.device)
    partial = apply_freezing(model, frozen)
    optimizer = make_optimizer(model, args.learning_rate, args.weight_decay, (args.beta1, args.beta2),
                               system.device_type, (ckpt or {}).get("added", []), args.new_lr_mult)
    sources, eval_splits = open_datasets(args, tokenizer)
    seen = seen_tokens(sources, model.config.vocab_size, (ckpt or {}).get("seen_tokens"))
    run = Run(model, model, optimizer, tokenizer, frozen, partial, sources, eval_splits, seen,
              torch.Generator().manual_seed(args.seed), ckpt or {})
    if args.init_from == "resume":
        optimizer.load_state_dict(ckpt["optimizer"])
        run.iter_num, run.tokens_seen = ckpt["iter_num"], ckpt["tokens_seen"]
        run.elapsed_before = ckpt.get("elapsed_s", 0.0)
        run.data_gen.set_state(ckpt["rng"]["data"])
        if system.world == 1:
            torch.set_rng_state(ckpt["rng"]["torch"])
        else:  # only the first process's dropout stream is saved; the others restart theirs
            torch.manual_seed(args.seed + system.rank + 1_000_003 * run.iter_num)
    if args.compile:
        run.model = torch.compile(run.model)
    if system.ddp:
        run.model = DDP(run.model, device_ids=[int(os.environ["LOCAL_RANK"])] if system.device_type == "cuda" else None)
    return run


def checkpoint_of(run, args, system, rng_state, elapsed):
    """Everything a resume needs, as of the start of the current step (rng_state is from then)."""
    resumed = args.init_from == "resume"
    history = run.start.get("history", []) + ([] if resumed else
                                              [{"stage": "train", "init_from": args.init_from, "dataset": args.dataset}])
    return make_checkpoint(run.raw_model.state_dict(), asdict(run.raw_model.config), run.tokenizer, history,
                           parents=[run.start] if run.start else [],
                           optimizer=run.optimizer.state_dict(), iter_num=run.iter_num, tokens_seen=run.tokens_seen,
                           elapsed_s=round(elapsed, 2), config=vars(args).copy(), frozen=run.frozen,
                           seen_tokens=run.seen, rng={"data": rng_state[0], "torch": rng_state[1]},
                           threads=system.threads, added=run.start.get("added", []))  # float sums depend on it: part of what made these weights


def train_step(run, args, system):
    """One optimizer step at this step's learning rate, on this process's share of the batch."""
    lr = schedule(run.iter_num, args)
    for group in run.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_mult", 1.0)
    local_accum = args.grad_accum // system.world  # micro-batches per step on this process
    rows = draw_rows(run.data_gen, run.sources, args.grad_accum * args.batch_size, args.block_size)
    rows = rows[system.rank * local_accum * args.batch_size:(system.rank + 1) * local_accum * args.batch_size]
    datas = [data for data, _ in run.sources]
    batches = [make_batch(rows[m * args.batch_size:(m + 1) * args.batch_size], datas, args.block_size, system.device)
               for m in range(local_accum)]
    return optimizer_step(run.model, run.optimizer, batches, run.partial, args.grad_clip, system.ctx)


def evaluate_and_log(run, args, system, log_path, elapsed):
    losses = estimate_loss(run.raw_model, run.eval_splits, args.batch_size, args.eval_iters, system.device, system.ctx)
    with open(log_path, "a") as f:
        f.write(json.dumps({"iter": run.iter_num, "tokens": run.tokens_seen, "lr": schedule(run.iter_num, args),
                            "elapsed_s": round(elapsed, 2), "loss": losses}) + "\n")
    return losses


def finish(run, args, system, stopped, last_eval, trained, seconds, ckpt_path):
    """Say how the run ended; check DDP's processes agree; let the model write a little."""
    if system.master and stopped:
        print(f"interrupted: saved step {run.iter_num} to {ckpt_path}; continue with "
              f"python train.py --init-from=resume --out-dir={args.out_dir}")
    elif system.master and trained == 0 and args.init_from == "resume":
        print(f"nothing to do: {ckpt_path} has finished its {run.iter_num} steps; raise --max-iters to train further")
    elif system.master:
        losses = ", ".join(f"{k} {v:.4f}" for k, v in (last_eval or {}).items())
        print(f"done: {run.iter_num} steps, {trained:,} tokens in {seconds:.0f}s ({trained / max(seconds, 1e-9):,.0f} "
              f"tokens/s); loss {losses}; saved {ckpt_path}")
    if system.ddp:
        same, fingerprint = same_weights_everywhere(run.raw_model, system.world)
        if system.master:
            print(f"weights {'identical' if same else 'DIFFER'} on all {system.world} processes ({fingerprint})")
        run.model = run.raw_model  # DDP's wrapper goes first: it holds the process group's threads
        leave_process_group()
    if system.master and args.sample_tokens > 0 and not stopped and trained > 0:
        from sample import sample_text
        print("sample:\n" + sample_text(run.raw_model, run.tokenizer, "\n", args.sample_tokens, device=system.device))


def announce(run, args, system, overridden):
    """The start-up lines: what is trained, how big, where, on what."""
    if overridden:
        print("resuming with the saved settings, except: " + ", ".join(f"{k}={getattr(args, k)}" for k in overridden))
    n_total, n_train = run.raw_model.num_params(), run.raw_model.num_params(trainable_only=True)
    print(f"model: {n_total:,} parameters, {n_train:,} trainable ({n_total - n_train:,} frozen"
          f"{f', {len(run.partial)} tensors partly' if run.partial else ''}); tokenizer {tokenizer_label(run.tokenizer)}")
    print(f"device {system.device}, {system.dtype}, {system.world} process(es), {system.threads_why}; {args.grad_accum * args.batch_size * args.block_size:,} tokens per "
          f"step; training on {args.dataset}{' + ' + args.replay if args.replay else ''} from step {run.iter_num}")


def main(argv=None):
    _, rank, world = processes()
    args, explicit, ckpt, path, overridden = settle_settings(argv, world)
    resumed = args.init_from == "resume"
    if rank == 0:
        claim_out_dir(args, explicit, resumed, load_checkpoint)
    system = set_up_system(args)
    run = build_run(args, explicit, ckpt, path, system)
    ckpt_path, log_path = os.path.join(args.out_dir, "ckpt.pt"), os.path.join(args.out_dir, "log.jsonl")
    tokens_per_iter = args.grad_accum * args.batch_size * args.block_size
    if system.master:
        announce(run, args, system, overridden)
    stop = catch_ctrl_c()  # from here on, Ctrl-C saves and stops after the current step
    if system.master:
        start_log(log_path, resumed, run.iter_num)
    start_iter, tokens_at_start = run.iter_num, run.tokens_seen
    t_start = t_last = time.time()
    elapsed = lambda: run.elapsed_before + time.time() - t_start  # noqa: E731 (across resumes)
    last_eval, tok_s, diverged = None, 0.0, False
    quiet = not system.master or os.environ.get("TQDM_DISABLE") == "1"  # tqdm's own switch (experiment.py's logs)
    bar = tqdm(total=args.max_iters, initial=run.iter_num, disable=quiet, dynamic_ncols=True, unit="step")
    while True:
        rng_at_step_start = (run.data_gen.get_state(), torch.get_rng_state())  # what a resume needs
        done = run.iter_num >= args.max_iters or stop["requested"]
        eval_due = run.iter_num % args.eval_interval == 0 or run.iter_num == args.max_iters
        if system.master and eval_due and (run.iter_num > start_iter or not resumed):
            last_eval = evaluate_and_log(run, args, system, log_path, elapsed())
            bar.write(f"step {run.iter_num}: " + " | ".join(f"{k} {v:.4f}" for k, v in last_eval.items()))
            if done and not all(math.isfinite(v) for v in last_eval.values()):  # the last step broke the weights
                diverged = True
                break
            if run.iter_num > 0 and not done:
                save_checkpoint(checkpoint_of(run, args, system, rng_at_step_start, elapsed()), ckpt_path)
        if done:
            break
        loss = train_step(run, args, system)
        diverged = not math.isfinite(loss)
        if system.ddp:
            stop["requested"], diverged = any_process(system.device, stop["requested"], diverged)
        if diverged:
            break
        run.iter_num += 1
        run.tokens_seen += tokens_per_iter
        now = time.time()
        tok_s = tokens_per_iter / (now - t_last) if tok_s == 0 else 0.9 * tok_s + 0.1 * tokens_per_iter / (now - t_last)
        t_last = now
        bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tok_s:,.0f}", refresh=False)
        bar.update(1)
    bar.close()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C raises KeyboardInterrupt again
    if diverged:
        if system.ddp:
            run.model = run.raw_model
            leave_process_group()
        kept = f"the last good checkpoint is {ckpt_path}" if os.path.isfile(ckpt_path) else "nothing was saved"
        raise UserError(f"the training loss stopped being finite at step {run.iter_num + 1} (learning rate "
                        f"{schedule(run.iter_num, args):.3g}); {kept}: lower --learning-rate, or keep --grad-clip on")
    trained = run.tokens_seen - tokens_at_start
    if system.master and (trained > 0 or not resumed):
        save_checkpoint(checkpoint_of(run, args, system, rng_at_step_start, elapsed()), ckpt_path)
    finish(run, args, system, stop["requested"], last_eval, trained, time.time() - t_start, ckpt_path)


if __name__ == "__main__":
    run_cli(main)
