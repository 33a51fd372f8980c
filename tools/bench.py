"""
bench.py — how fast does training run here, and what does a frozen base save?

Place in the story: a side tool. It times train.py's own optimizer step on
random tokens for named model configurations (nanoGPT's `tiny` and `small`,
and the default base grown by every method of scale.py, with its frozen base
and with nothing frozen) and prints tokens/s (median of timed steps after
warm-up), achieved GFLOP/s and MFU against this machine's own matmul peak
(measured in the same run), optimizer-state size and peak memory. Each
configuration runs in its own process, so peak memory is its own and one run
cannot slow the next; a grown model's frozen and all-trainable copies share
one process and train in turn, a few steps each, so that their ratio is not
the machine's drift (their peak memory is the pair's).

    python -m tools.bench                          # the grown-model comparison, frozen vs all in turn (≈1.5 min)
    python -m tools.bench --freeze-unseen          # the same with the rows of unseen bytes frozen too
    python -m tools.bench --configs=tiny,small --dtype=float32 [--compile]
    python -m tools.bench --sample                 # KV-cache sampling vs recomputing, 256 tokens on `small`
    python -m tools.bench --merge                  # TIES over three GPT-2-small-sized (124M) checkpoints
    python -m tools.bench --shared                 # idle vs one core busy, per thread setting (≈1 min)
    python -m tools.bench --nanogpt=../nanoGPT     # nanoGPT's `small` and ours, steps timed in turn (≈1.5 min)
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from dataclasses import asdict

import torch

import merge
import scale
from checkpoint import save_checkpoint
from model_scale import config_of, new_model
from optim import apply_freezing, make_optimizer, optimizer_step
from tools.vs_nanogpt import load_nanogpt, nanogpt_models
from plumbing.system import pick_dtype, set_threads
from plumbing.cli import UserError, check_number, parse_flags, parser, run_cli

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # where `python -m tools.bench` runs

BASE = dict(n_layer=4, n_head=4, n_embd=128, block_size=128, vocab_size=256)  # train.py's default model
CONFIGS = {  # name: (model_args, batch size, scale.grow options or None)
    "tiny": (dict(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=256), 12, None),
    "small": (dict(n_layer=6, n_head=6, n_embd=384, block_size=128, vocab_size=256), 16, None),
    "tiny-gpt2": (dict(n_layer=4, n_head=4, n_embd=128, block_size=64, vocab_size=50257), 12, None),
    "small-gpt2": (dict(n_layer=6, n_head=6, n_embd=384, block_size=128, vocab_size=50257), 16, None),
    "base": (BASE, 16, None),
}
CONFIGS |= {name: (BASE, 16, options) for name, options in scale.RECIPES.items()}  # every registered growth
GROWN = [name for name in scale.RECIPES if name in scale.FROZEN_BASE]


def build(name, frozen, train_unseen=True):
    """The model of a configuration and its frozen spec (empty unless frozen and grown); the embedding
    rows of bytes the base never saw train unless train_unseen is False (scale.py --freeze-unseen)."""
    margs, batch, options = CONFIGS[name]
    margs = asdict(config_of(margs))
    torch.manual_seed(0)
    if options is None:
        return new_model(margs), {}, batch
    base = new_model(margs)
    seen = torch.arange(margs["vocab_size"]) < 128  # an ASCII-English base
    ckpt = {"model": base.state_dict(), "model_args": margs}
    grown_args, sd, frozen_names = scale.grow(ckpt, **options)
    model = scale.build(grown_args, sd)
    return model, (scale.frozen_spec(model, frozen_names, seen, train_unseen) if frozen else {}), batch


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


def watch_anonymous_memory(every=0.02):
    """Peak anonymous memory (MB; Linux): RSS without the pages of memory-mapped files, which the
    kernel can drop at any time. merge.py maps its inputs, so RSS also counts what it read."""
    peak = {"mb": 0.0}

    def sample():
        while True:
            with open("/proc/self/status") as f:
                kb = next((int(line.split()[1]) for line in f if line.startswith("RssAnon:")), 0)
            peak["mb"] = max(peak["mb"], kb / 1024)
            time.sleep(every)
    if os.path.exists("/proc/self/status"):
        threading.Thread(target=sample, daemon=True).start()
    return peak


def matmul_peak(dtype, n=2048, reps=10):
    """GFLOP/s of one large matrix product on this machine: the ceiling MFU is measured against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    times = []
    for _ in range(3 + reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / sorted(times[3:])[reps // 2] / 1e9


def tensor_bytes(obj):
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    return 0


def autocast(dtype):
    return torch.autocast("cpu", dtype=torch.bfloat16) if dtype == "bfloat16" else nullcontext()


def setup(name, frozen, train_unseen=True):
    """A configuration's model with its freezing applied, and train.py's optimizer for it."""
    torch.manual_seed(0)
    model, spec, batch = build(name, frozen, train_unseen)
    partial = apply_freezing(model, spec)
    optimizer = make_optimizer(model, learning_rate=1e-3, weight_decay=0.1, betas=(0.9, 0.99))
    return model, optimizer, partial, batch


def measurements(name, model, optimizer, frozen, dtype, compile, tokens_per_s):
    return dict(config=name, frozen=frozen, dtype=dtype, compile=compile, tokens_per_s=tokens_per_s,
                params=model.num_params(), trainable=model.num_params(trainable_only=True),
                flops_per_token=model.flops_per_token(),
                optimizer_mb=tensor_bytes(optimizer.state_dict()["state"]) / 2**20, peak_mb=peak_mb())


def run_one(name, dtype, compile, steps, warmup):
    """Time `steps` optimizer steps after `warmup` ones; return the measurements."""
    model, optimizer, partial, batch = setup(name, False)
    fwd = torch.compile(model) if compile else model
    ctx = autocast(dtype)
    T, V = model.config.block_size, model.config.vocab_size
    times = []
    for i in range(warmup + steps):
        x, y = torch.randint(V, (batch, T)), torch.randint(V, (batch, T))
        t = time.perf_counter()
        optimizer_step(fwd, optimizer, [(x, y)], partial, 1.0, ctx)
        times.append(time.perf_counter() - t)
    median = sorted(times[warmup:])[steps // 2]
    return measurements(name, model, optimizer, False, dtype, compile, batch * T / median)


def time_sampling(tokens=256, reps=3, block_size=128):
    """Seconds to sample `tokens` from `small` with and without the KV cache, and whether they agree."""
    torch.manual_seed(0)
    model = new_model(dict(CONFIGS["small"][0], block_size=block_size)).eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    out, secs = {}, {}
    for use_cache in (True, False):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            out[use_cache] = model.generate(prompt, tokens, temperature=1.0, top_k=200, use_cache=use_cache,
                                            generator=torch.Generator().manual_seed(0))
            times.append(time.perf_counter() - t)
        secs[use_cache] = sorted(times)[reps // 2]
    return dict(cached_s=secs[True], recomputed_s=secs[False], identical=torch.equal(out[True], out[False]))


GPT2_SMALL = dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257)  # 124M parameters


def make_checkpoints(folder, model_args):
    """An 'ancestor' and three models that moved away from it, as merge.py inputs."""
    margs = asdict(config_of(model_args))
    torch.manual_seed(0)
    base = new_model(margs).state_dict()
    paths = []
    for i in range(4):
        sd = {k: v if i == 0 else v + 0.01 * torch.randn_like(v) for k, v in base.items()}
        sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied, as in GPT-2
        paths.append(os.path.join(folder, f"m{i}.pt"))
        save_checkpoint({"model": sd, "model_args": margs, "tokenizer": "gpt2"}, paths[-1])
        del sd
    return paths


def time_merge(trim_scope, model_args=GPT2_SMALL):
    """Wall time and peak memory of merge.py --method=ties on three checkpoints, in a fresh process."""
    with tempfile.TemporaryDirectory(dir="out" if os.path.isdir("out") else None) as d:
        base, *models = make_checkpoints(d, model_args)
        argv = ["--method=ties", f"--base={base}", f"--models={','.join(models)}", f"--trim-scope={trim_scope}",
                f"--out={os.path.join(d, 'merged.pt')}"]
        cmd = [sys.executable, "-m", "tools.bench", "--run-merge=" + json.dumps(argv)]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_DIR)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return json.loads(r.stdout.strip().splitlines()[-1])


def measure_alone(flags, env=None):
    """Run this module with --run... flags in a fresh process; return the JSON it prints."""
    out = subprocess.run([sys.executable, "-m", "tools.bench"] + flags, capture_output=True, text=True, cwd=REPO_DIR,
                         env=dict(os.environ, **(env or {})))
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


SHARED_SETTINGS = {  # label: (--threads, extra environment)
    "2 threads": ("2", {}),
    "1 thread": ("1", {}),
    "2 threads, passive wait": ("2", {"OMP_WAIT_POLICY": "PASSIVE"}),
    "auto (the default)": ("auto", {}),
}


def busy_loop():
    """Another program keeping one core busy (a browser tab, a compile): a Python loop that never sleeps."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def print_shared(args):
    """Training speed of the default model with the CPU idle and with one core busy, per thread setting."""
    print(f"tokens/s of `base` (train.py's default model), {args.dtype}, median of {args.steps} steps; "
          f"{os.cpu_count()} cores")
    print(f"{'threads':<26}{'idle':>10}{'one core busy':>16}")
    for label, (threads, env) in SHARED_SETTINGS.items():
        row = []
        for busy in (False, True):
            other = busy_loop() if busy else None
            try:
                time.sleep(0.5 if busy else 0)  # let the other program start spinning
                r = measure_alone(["--run=base", f"--dtype={args.dtype}", f"--steps={args.steps}",
                                   f"--warmup={args.warmup}", f"--threads={threads}"], env)
            finally:
                if other:
                    other.kill()
                    other.wait()
            row.append(r)
        print(f"{label:<26}"
              f"{row[0]['tokens_per_s']:>10,.0f}{row[1]['tokens_per_s']:>16,.0f}"
              + (f"   (auto chose {row[0]['threads']} idle, {row[1]['threads']} busy)" if threads == "auto" else ""))


def in_turn(runs, rounds, steps):
    """Train every model of runs {label: (model, optimizer, frozen spec, autocast, batch)} `steps` steps in
    turn, `rounds` times over, each round starting at another model, so that a machine whose speed drifts
    slows all of them alike; {label: median tokens/s}."""
    times = {k: [] for k in runs}
    for r in range(rounds):
        for k in list(runs)[r % len(runs):] + list(runs)[:r % len(runs)]:
            model, optimizer, partial, ctx, batch = runs[k]
            T, V = model.config.block_size, model.config.vocab_size
            for i in range(steps + 1):  # the first step of a turn warms the caches up and is not counted
                x, y = torch.randint(V, (batch, T)), torch.randint(V, (batch, T))
                t = time.perf_counter()
                optimizer_step(model, optimizer, [(x, y)], partial, 1.0, ctx)
                if i:
                    times[k].append(time.perf_counter() - t)
    return {k: runs[k][4] * runs[k][0].config.block_size / sorted(v)[len(v) // 2] for k, v in times.items()}


def nanogpt_side_by_side(folder, rounds=5, steps=6, config="small"):
    """nanoGPT's model and ours, the same weights, batches and training step (optimizer_step), timed in
    turn in one process; [(label, tokens/s)]."""
    margs = dict(CONFIGS[config][0], dropout=0.0, bias=True)
    runs = {k: (m, make_optimizer(m, 1e-3, 0.1, (0.9, 0.95)), [], ctx, CONFIGS[config][1])
            for k, (m, ctx) in nanogpt_models(load_nanogpt(folder), margs).items()}
    return list(in_turn(runs, rounds, steps).items())


def run_pair(name, dtype, compile, steps, rounds, train_unseen=True):
    """A grown model with its base frozen and the same model with everything trainable, trained in turn in
    one process (a drift of the machine's speed slows both alike); the measurements of each."""
    built = {frozen: setup(name, frozen, train_unseen) for frozen in (True, False)}
    runs = {frozen: (torch.compile(model) if compile else model, optimizer, partial, autocast(dtype), batch)
            for frozen, (model, optimizer, partial, batch) in built.items()}
    speed = in_turn(runs, rounds, steps)
    return [measurements(name, model, optimizer, frozen, dtype, compile, speed[frozen])
            for frozen, (model, optimizer, _, _) in built.items()]


def steps_per_turn(args):
    return -(-args.steps // args.rounds)  # --steps shared among the turns, rounded up


def print_training(args):
    names = args.configs.split(",")
    for n in names:
        if n not in CONFIGS:
            raise UserError(f"unknown configuration '{n}' (choose from {', '.join(CONFIGS)})")
    native = pick_dtype("auto", "cpu") == "bfloat16"  # without AVX-512 BF16/AMX a bfloat16 product is emulated:
    dtypes = ("float32", "bfloat16") if native or args.dtype == "bfloat16" else ("float32",)  # minutes, not seconds
    peak = {d: measure_alone([f"--run-peak={d}"])["gflops"] for d in dtypes}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.dtype}"
          f"{', compiled' if args.compile else ''}; median of {args.steps} steps after {args.warmup} warm-up; a grown "
          f"model frozen and all trainable in one process, in turn: {args.rounds} turns of "
          f"{steps_per_turn(args)} steps each, after one untimed step per turn"
          f"{'; unseen bytes frozen too' if args.freeze_unseen else ''}")
    bf16 = f"{peak['bfloat16']:.0f} GFLOP/s" if "bfloat16" in peak else "not measured (not native on this CPU)"
    print(f"matmul peak measured now: float32 {peak['float32']:.0f} GFLOP/s, bfloat16 {bf16} "
          f"\n(GFLOP/s = (6 x parameters + attention) FLOPs per token x tokens/s, nanoGPT's estimate; MFU = that over "
          f"the float32 peak, MFU* over the {args.dtype} peak; both overstate rows with a frozen base, "
          f"which skips weight gradients)")
    print(f"{'config':<24}{'params':>11}{'trainable':>11}{'tokens/s':>10}{'GFLOP/s':>9}{'MFU':>6}{'MFU*':>6}"
          f"{'optim MB':>10}{'peak MB':>9}  frozen vs all trainable")
    for name in names:
        flags = [f"--run={name}", f"--dtype={args.dtype}", f"--steps={args.steps}", f"--warmup={args.warmup}",
                 f"--rounds={args.rounds}"] + (["--compile"] if args.compile else []) \
            + (["--freeze-unseen"] if args.freeze_unseen else [])
        rows = measure_alone(flags + ["--pair"])["pair"] if CONFIGS[name][2] else [measure_alone(flags)]
        for r in rows:
            label = name + (" (frozen)" if r["frozen"] else " (all)" if len(rows) > 1 else "")
            ratio = f"{rows[0]['tokens_per_s'] / rows[1]['tokens_per_s']:.2f}x faster, " \
                    f"{rows[0]['optimizer_mb'] / max(rows[1]['optimizer_mb'], 1e-9):.2f}x optimizer memory" \
                if len(rows) > 1 and r["frozen"] else ""
            gflops = r["flops_per_token"] * r["tokens_per_s"] / 1e9
            print(f"{label:<24}{r['params']:>11,}{r['trainable']:>11,}{r['tokens_per_s']:>10,.0f}{gflops:>9.1f}"
                  f"{gflops / peak['float32']:>6.0%}{gflops / peak[args.dtype]:>6.0%}{r['optimizer_mb']:>10.1f}"
                  f"{r['peak_mb']:>9.0f}  {ratio}")


def main():
    p = parser("-m tools.bench", "Training throughput of named configurations.")
    p.add_argument("--configs", default=",".join(GROWN), help=f"comma-separated, from: {', '.join(CONFIGS)}")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"],
                   help="autocast precision; auto = train.py's: bfloat16 where this CPU does it natively, else float32")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--steps", type=int, default=15, help="timed steps (the median is reported)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--rounds", type=int, default=5, help="a grown model: how many turns its frozen and its "
                                                         "all-trainable copy take in turn (--steps split among them)")
    p.add_argument("--sample", action="store_true", help="instead: time sampling 256 tokens with and without "
                                                         "the KV cache")
    p.add_argument("--merge", action="store_true", help="instead: time merge.py TIES on three 124M checkpoints")
    p.add_argument("--shared", action="store_true", help="instead: the default model's speed with the CPU idle and "
                                                         "with one core busy, per thread setting")
    p.add_argument("--nanogpt", metavar="FOLDER", help="instead: nanoGPT's `small` (its model.py in FOLDER) and "
                                                        "ours, training steps timed in turn in one process")
    p.add_argument("--freeze-unseen", action="store_true", help="a grown model: freeze the embedding rows of "
                   "bytes the base never saw too (as scale.py --freeze-unseen), so no gradient enters the base")
    p.add_argument("--threads", default="auto", help="CPU threads of each measurement: auto or a number")
    p.add_argument("--run", help=argparse.SUPPRESS)  # internal: measure one configuration, print JSON
    p.add_argument("--pair", action="store_true", help=argparse.SUPPRESS)  # --run: frozen and all, in turn
    p.add_argument("--run-peak", help=argparse.SUPPRESS)
    p.add_argument("--run-merge", help=argparse.SUPPRESS)
    args = parse_flags(p)
    args.dtype = pick_dtype(args.dtype, "cpu")
    for flag, low in (("steps", 1), ("warmup", 0), ("rounds", 1)):
        check_number(flag, getattr(args, flag), low)
    threads_why = set_threads(args.threads)
    if args.run and args.pair:  # a grown model: frozen and all trainable, in turn
        r = run_pair(args.run, args.dtype, args.compile, steps_per_turn(args), args.rounds, not args.freeze_unseen)
        print(json.dumps({"pair": r}))
    elif args.run:
        r = run_one(args.run, args.dtype, args.compile, args.steps, args.warmup)
        print(json.dumps(dict(r, threads=torch.get_num_threads(), threads_why=threads_why)))
    elif args.run_peak:
        print(json.dumps({"gflops": matmul_peak(getattr(torch, args.run_peak))}))
    elif args.run_merge:
        anonymous, t = watch_anonymous_memory(), time.perf_counter()
        merge.main(json.loads(args.run_merge))
        print(json.dumps({"seconds": time.perf_counter() - t, "peak_mb": peak_mb(), "anon_mb": anonymous["mb"]}))
    elif args.shared:
        print_shared(args)
    elif args.nanogpt:
        rows = nanogpt_side_by_side(args.nanogpt)
        print(f"`small` (6 x 384, block 128, batch 16, biases), tokens/s, median of 30 steps, {torch.get_num_threads()} "
              f"threads, in turn in one process")
        for label, tok_s in rows:
            print(f"{label:<44}{tok_s:>8,.0f}   {tok_s / rows[0][1]:.2f}x nanoGPT")
    elif args.sample:
        for block in (128, 512):  # `small` has a 128-token context; recomputing costs more as it grows
            r = time_sampling(block_size=block)
            print(f"256 tokens from `small`{'' if block == 128 else f' with a {block}-token context'}: KV cache "
                  f"{r['cached_s']:.2f}s, recomputing the context {r['recomputed_s']:.2f}s: "
                  f"{r['recomputed_s'] / r['cached_s']:.1f}x faster; {'identical' if r['identical'] else 'DIFFERENT'} tokens")
    elif args.merge:
        for scope in ("tensor", "global"):
            r = time_merge(scope)
            print(f"merge.py --method=ties --trim-scope={scope}, three 124M checkpoints: {r['seconds']:.1f}s, "
                  f"peak memory {r['anon_mb'] / 1024:.2f} GiB (RSS with the mapped input files: "
                  f"{r['peak_mb'] / 1024:.2f} GiB)")
    else:
        print_training(args)


if __name__ == "__main__":
    run_cli(main)
