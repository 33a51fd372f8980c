"""
evaluate.py — loss and perplexity of any checkpoints on any datasets, as one table.

Place in the story: the last step. "Merged vs each language model vs the base"
is one command, on the same fixed validation batches train.py evaluates on.

    python evaluate.py --ckpts=out/base/ckpt.pt,out/korean/ckpt.pt,out/merged.pt --datasets=english,korean,german
"""

import bisect
import math
from contextlib import nullcontext

import torch

from data.common import DATA_DIR
from checkpoint import load_checkpoint, model_from_checkpoint
from data.loader import draw_rows, make_batch, open_split
from plumbing.cli import UserError, check_number, parse_flags, parser, run_cli
from plumbing.system import autocast, pick_dtype, resolve_device, set_threads


EVAL_SEED = 1234  # the evaluation's batches: the same windows of a split at every call
TUNE_SEED = 4321  # the tuning's batches (held_out_rows): other windows, none overlapping the evaluation's


def eval_rows(data, batch_size, eval_iters, block_size):
    """[[(0, start) * batch_size] * eval_iters]: the windows estimate_loss reads, always the same ones."""
    gen = torch.Generator().manual_seed(EVAL_SEED)
    return [draw_rows(gen, [(data, 1.0)], batch_size, block_size) for _ in range(eval_iters)]


def held_out_rows(data, batch_size, n_batches, block_size, eval_iters):
    """n_batches batches of windows that share no token with the evaluation's (eval_rows with the same
    batch size and eval_iters): what a merge is tuned on, so a setting chosen on them is never judged
    on the batches that chose it. Drawn at random and redrawn while they overlap."""
    taken = sorted(start for batch in eval_rows(data, batch_size, eval_iters, block_size) for _, start in batch)
    span = block_size + 1  # a window's tokens: x and its shifted y
    if len(data) - span < 2 * span * (len(taken) + batch_size * n_batches):
        raise ValueError(f"the split has {len(data):,} tokens: too few to hold out {n_batches} batches of "
                         f"{batch_size} beside the evaluation's {eval_iters}")
    gen, free = torch.Generator().manual_seed(TUNE_SEED), []
    while len(free) < batch_size * n_batches:
        for _, start in draw_rows(gen, [(data, 1.0)], batch_size, block_size):
            i = bisect.bisect(taken, start)  # the evaluation's windows just before and after this one
            if all(abs(start - taken[j]) >= span for j in (i - 1, i) if 0 <= j < len(taken)):
                free.append((0, start))
    return [free[i:i + batch_size] for i in range(0, batch_size * n_batches, batch_size)]


@torch.no_grad()
def estimate_loss(model, splits, batch_size, eval_iters, device="cpu", ctx=nullcontext(), rows=None):
    """{split name: mean loss} over the same fixed batches of each split at every call
    (a fixed seed), so the points of a training curve are comparable; `rows` {split name:
    batches of windows} reads other batches (held_out_rows) instead."""
    model.eval()
    block_size = model.config.block_size
    out = {}
    for name, data in splits.items():
        batches = rows[name] if rows else eval_rows(data, batch_size, eval_iters, block_size)
        losses = []
        for batch in batches:
            x, y = make_batch(batch, [data], block_size, device)
            with ctx:
                losses.append(model(x, y)[1].item())
        out[name] = sum(losses) / len(losses)
    model.train()
    return out


def evaluate_checkpoints(paths, datasets, data_dir=DATA_DIR, batch_size=16, eval_iters=20, dtype="float32",
                         device="cpu", held_out=0):
    """{path: {dataset: mean validation loss}} for every checkpoint and dataset; with `held_out` > 0, on that
    many held-out batches instead (held_out_rows: none of the evaluation's), for choosing a setting."""
    ctx = autocast(device.split(":")[0], dtype)
    results = {}
    for path in paths:
        ckpt = load_checkpoint(path)
        model = model_from_checkpoint(ckpt, path).to(device)
        block = model.config.block_size
        splits = {name: open_split(data_dir, name, "val", ckpt["tokenizer"], block) for name in datasets}
        rows = {name: held_out_rows(data, batch_size, held_out, block, eval_iters)
                for name, data in splits.items()} if held_out else None
        results[path] = estimate_loss(model, splits, batch_size, eval_iters, device, ctx, rows)
    return results


def format_table(results, datasets):
    width = max(12, *(len(p) for p in results)) + 2
    lines = [f"{'checkpoint':<{width}}" + "".join(f"{d:>22}" for d in datasets),
             f"{'':<{width}}" + "".join(f"{'loss':>10}{'ppl':>12}" for _ in datasets)]
    for path, losses in results.items():
        lines.append(f"{path:<{width}}" + "".join(f"{losses[d]:>10.4f}{math.exp(losses[d]):>12,.2f}" for d in datasets))
    return "\n".join(lines)


def main(argv=None):
    p = parser("evaluate.py", "Validation loss of checkpoints on datasets.")
    p.add_argument("--ckpts", required=True, help="comma-separated checkpoints")
    p.add_argument("--datasets", default="english,korean", help="comma-separated prepared datasets")
    p.add_argument("--data-dir", default=DATA_DIR, help="folder holding the prepared datasets")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per batch (train.py's default)")
    p.add_argument("--eval-iters", type=int, default=20, help="batches per dataset (train.py's default)")
    p.add_argument("--dtype", default="float32", choices=["float32", "auto", "bfloat16"],
                   help="precision: auto is what train.py's --dtype=auto picks (bfloat16 autocast where the hardware "
                        "does it natively, the experiment's evaluation), else float32; expect differences in the "
                        "third decimal between the two")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:1 | mps | auto")
    p.add_argument("--threads", default="auto", help="CPU threads: auto (the cores not busy) or a number")
    args = parse_flags(p, argv)
    set_threads(args.threads)
    paths = [c for c in args.ckpts.split(",") if c]
    datasets = [d for d in args.datasets.split(",") if d]
    if not paths or not datasets:
        raise UserError("--ckpts and --datasets each need at least one name (comma-separated)")
    check_number("batch_size", args.batch_size, 1)
    check_number("eval_iters", args.eval_iters, 1)
    device = resolve_device(args.device)
    dtype = pick_dtype(args.dtype, device.split(":")[0])
    results = evaluate_checkpoints(paths, datasets, args.data_dir, args.batch_size, args.eval_iters, dtype, device)
    print(format_table(results, datasets))


if __name__ == "__main__":
    run_cli(main)
