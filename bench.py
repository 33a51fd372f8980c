"""
bench.py — how fast does training run here, and what does a frozen base save?

Place in the story: a side tool. It times train.py's own optimizer step on
random tokens for named model configurations (nanoGPT's `tiny` and `small`,
and the default base grown by every method of scale.py, with its frozen base
and with nothing frozen) and prints tokens/s (median of timed steps after
warm-up), optimizer-state size and peak memory. Each configuration runs in its
own process, so peak memory is its own and one run cannot slow the next.

    python bench.py                          # the grown-model comparison (≈3 min on 2 cores)
    python bench.py --configs=tiny,small --dtype=float32
"""

import argparse
import json
import resource
import subprocess
import sys
import time
from contextlib import nullcontext

import torch

import scale
import train
from model import GPT, GPTConfig, UserError, parse_flags, run_cli

BASE = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=256)  # train.py's default model
CONFIGS = {  # name: (model_args, batch size, scale.py flags or None)
    "tiny": (dict(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=256), 12, None),
    "small": (dict(n_layer=6, n_head=6, n_embd=384, block_size=128, vocab_size=256), 16, None),
    "tiny-gpt2": (dict(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=50257), 12, None),
    "small-gpt2": (dict(n_layer=6, n_head=6, n_embd=384, block_size=128, vocab_size=50257), 16, None),
    "base": (BASE, 16, None),
    "depth": (BASE, 16, ["--method=depth"]),
    "ffn": (BASE, 16, ["--method=ffn"]),
    "hyperclone": (BASE, 16, ["--method=hyperclone"]),
    "scale-preserve": (BASE, 16, ["--method=scale", "--variant=preserve"]),
    "scale-adapt": (BASE, 16, ["--method=scale", "--variant=adapt"]),
    "scale-route": (BASE, 16, ["--method=scale", "--variant=route"]),
}
GROWN = ["depth", "ffn", "scale-preserve", "scale-adapt", "scale-route"]


def build(name, frozen):
    """The model of a configuration and its frozen spec (empty unless frozen and grown)."""
    margs, batch, flags = CONFIGS[name]
    margs = dict(GPTConfig(**margs).__dict__)
    torch.manual_seed(0)
    if flags is None:
        return GPT(GPTConfig(**margs)), {}, batch
    base = GPT(GPTConfig(**margs))
    seen = torch.arange(margs["vocab_size"]) < 128  # an ASCII-English base
    ckpt = {"model": base.state_dict(), "model_args": margs}
    grown_args, sd, frozen_names = scale.grow(scale.build_parser().parse_args(flags), ckpt)
    model = scale.build(grown_args, sd)
    return model, (scale.frozen_spec(model, frozen_names, seen, True) if frozen else {}), batch


def tensor_bytes(obj):
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    return 0


def run_one(name, frozen, dtype, compile, steps, warmup):
    """Time `steps` optimizer steps after `warmup` ones; return the measurements."""
    torch.manual_seed(0)
    model, spec, batch = build(name, frozen)
    partial = train.apply_freezing(model, spec)
    args, _ = train.parse_args(["--weight-decay=0.1"])
    train.fill_defaults(args)
    optimizer = train.make_optimizer(model, args, "cpu")
    fwd = torch.compile(model) if compile else model
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else nullcontext()
    T, V = model.config.block_size, model.config.vocab_size
    times = []
    for i in range(warmup + steps):
        x, y = torch.randint(V, (batch, T)), torch.randint(V, (batch, T))
        t = time.perf_counter()
        train.optimizer_step(fwd, optimizer, [(x, y)], partial, 1.0, ctx)
        times.append(time.perf_counter() - t)
    median = sorted(times[warmup:])[steps // 2]
    return dict(config=name, frozen=frozen, dtype=dtype, compile=compile, tokens_per_s=batch * T / median,
                params=model.num_params(), trainable=model.num_params(trainable_only=True),
                optimizer_mb=tensor_bytes(optimizer.state_dict()["state"]) / 2**20,
                peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def in_subprocess(name, frozen, args):
    cmd = [sys.executable, __file__, f"--run={name}", f"--dtype={args.dtype}", f"--steps={args.steps}",
           f"--warmup={args.warmup}"] + (["--frozen"] if frozen else []) + (["--compile"] if args.compile else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(prog="bench.py", description="Training throughput of named configurations.",
                                allow_abbrev=False, exit_on_error=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--configs", default=",".join(GROWN), help=f"comma-separated, from: {', '.join(CONFIGS)}")
    p.add_argument("--dtype", default="bfloat16", choices=["float32", "bfloat16"], help="autocast precision")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--steps", type=int, default=15, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--run", help=argparse.SUPPRESS)  # internal: measure one configuration, print JSON
    p.add_argument("--frozen", action="store_true", help=argparse.SUPPRESS)
    args = parse_flags(p)
    if args.run:
        print(json.dumps(run_one(args.run, args.frozen, args.dtype, args.compile, args.steps, args.warmup)))
        return
    names = args.configs.split(",")
    for n in names:
        if n not in CONFIGS:
            raise UserError(f"unknown configuration '{n}' (choose from {', '.join(CONFIGS)})")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}"
          f"{', compiled' if args.compile else ''}; median of {args.steps} steps after {args.warmup} warm-up")
    print(f"{'config':<24}{'params':>11}{'trainable':>11}{'tokens/s':>10}{'optim MB':>10}{'peak MB':>9}"
          f"{'  frozen vs all trainable':>26}")
    for name in names:
        rows = [in_subprocess(name, frozen, args) for frozen in ([True, False] if CONFIGS[name][2] else [False])]
        for r in rows:
            label = name + (" (frozen)" if r["frozen"] else " (all)" if len(rows) > 1 else "")
            ratio = f"{rows[0]['tokens_per_s'] / rows[1]['tokens_per_s']:.2f}x faster, " \
                    f"{rows[0]['optimizer_mb'] / max(rows[1]['optimizer_mb'], 1e-9):.2f}x optimizer memory" \
                if len(rows) > 1 and r["frozen"] else ""
            print(f"{label:<24}{r['params']:>11,}{r['trainable']:>11,}{r['tokens_per_s']:>10,.0f}"
                  f"{r['optimizer_mb']:>10.1f}{r['peak_mb']:>9.0f}  {ratio}")


if __name__ == "__main__":
    run_cli(main)
