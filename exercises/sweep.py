"""
exercises/sweep.py — the runs behind exercises 8, 9 and 10: each writes a JSON file and a plot.

    python exercises/sweep.py replay   # 4 Korean runs from out/base/ckpt.pt, English replay 0 .. 30%  (~1.5 min)
    python exercises/sweep.py ties     # 9 TIES merges of the experiment's Korean and German models (~45 s)
    python exercises/sweep.py factor   # 1x, 2x, 3x HyperCloned base, each continued on Korean         (~2.5 min)

Results go to out/exercises/{replay,ties,factor}.json and .png.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import merge  # noqa: E402
import scale  # noqa: E402
import train  # noqa: E402
from data.common import DATA_DIR  # noqa: E402
from evaluate import evaluate_checkpoints  # noqa: E402
from checkpoint import load_checkpoint, model_from_checkpoint  # noqa: E402
from lab.readings import at_rate, rates_of_merges  # noqa: E402
from plumbing.cli import UserError, check_number, parse_flags, parser, run_cli  # noqa: E402

EXP = "out/experiment"


def korean_run(init, out_dir, args, extra=()):
    """Continue init on Korean for --iters steps; return its log."""
    train.main([f"--init-from={init}", f"--out-dir={out_dir}", f"--max-iters={args.iters}", f"--data-dir={args.data_dir}",
                f"--eval-interval={max(1, args.iters // 5)}", f"--eval-iters={args.eval_iters}", "--sample-tokens=0",
                "--dataset=korean", "--eval-datasets=english,korean", *extra])
    return [json.loads(line) for line in open(os.path.join(out_dir, "log.jsonl"))]


def sweep_replay(args, plt):
    points = {}
    for frac in (0.0, 0.02, 0.1, 0.3):
        log = korean_run(args.base, f"{args.out}/replay-{frac}", args, [f"--replay=english:{frac}"] if frac else [])
        points[f"replay {frac:.0%}"] = (log[-1]["loss"]["english"] - log[0]["loss"]["english"],
                                        log[-1]["loss"]["korean"])
    fig, ax = plt.subplots(figsize=(5, 4))
    for name, (forget, ko) in points.items():
        ax.scatter(forget, ko)
        ax.annotate(name, (forget, ko), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="English forgetting (loss rise)", ylabel="Korean loss after", title="English replay")
    return {"points": points}, fig


def experiment_models(exp):
    """The 2x HyperClone's Korean and German models (seed 0) at the rate the experiment chose for its merges
    (results.json's merge_rates): the pair the report's hyper merges start from."""
    path = os.path.join(exp, "results.json")
    if not os.path.exists(path):
        raise UserError(f"{path} not found: run python experiment.py first, or pass --ko and --de")
    r = json.load(open(path))
    lr = rates_of_merges(r)["hyper"]
    return (f"{exp}/korean/{at_rate('hyperclone', lr, r['settings'])}/ckpt.pt",
            f"{exp}/{at_rate('german/hyper', lr, r['settings'])}/ckpt.pt")


def sweep_ties(args, plt):
    if not (args.ko and args.de):
        ko, de = experiment_models(args.experiment)
        args.ko, args.de = args.ko or ko, args.de or de
    args.ancestor = args.ancestor or f"{args.experiment}/grown/hyperclone.pt"
    results, paths = [], []
    for density in (0.2, 0.5, 0.8):
        for lam in (0.5, 1.0, 1.5):
            path = f"{args.out}/ties-{density}-{lam}.pt"
            merge.main(["--method=ties", f"--base={args.ancestor}", f"--models={args.ko},{args.de}",
                        f"--density={density}", f"--lambda={lam}", f"--out={path}"])
            results.append({"density": density, "lambda": lam})
            paths.append(path)
    losses = evaluate_checkpoints(paths, ["korean", "german"], args.data_dir, eval_iters=args.eval_iters)
    for r, path in zip(results, paths):
        r.update(losses[path])
    fig, ax = plt.subplots(figsize=(5, 4))
    grid = [[(r["korean"] + r["german"]) / 2 for r in results[i:i + 3]] for i in range(0, 9, 3)]
    im = ax.imshow(grid, cmap="viridis_r")
    ax.set(xticks=range(3), xticklabels=["0.5", "1.0", "1.5"], yticks=range(3), yticklabels=["0.2", "0.5", "0.8"],
           xlabel="λ", ylabel="density", title="TIES: mean Korean + German loss")
    fig.colorbar(im)
    return results, fig


def sweep_factor(args, plt):
    runs, flops = {}, {}
    for n in (1, 2, 3):
        init = args.base
        if n > 1:
            init = f"{args.out}/x{n}.pt"
            scale.main(["--method=hyperclone", f"--factor={n}", f"--in={args.base}", f"--out={init}"])
        runs[f"{n}x"] = korean_run(init, f"{args.out}/factor-{n}", args)
        flops[f"{n}x"] = model_from_checkpoint(load_checkpoint(init)).flops_per_token()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, log in runs.items():
        tokens = [e["tokens"] for e in log]
        axes[0].plot(tokens, [e["loss"]["korean"] for e in log], label=name)
        axes[1].plot([t * flops[name] for t in tokens], [e["loss"]["korean"] for e in log], label=name)
    axes[0].set(xlabel="Korean tokens", ylabel="Korean loss")
    axes[1].set(xlabel="training FLOPs", xscale="log")
    axes[0].legend()
    return runs, fig


def main():
    p = parser("exercises/sweep.py", "Sweeps for exercises 8-10.")
    p.add_argument("which", choices=["replay", "ties", "factor"])
    p.add_argument("--base", default="out/base/ckpt.pt", help="the English base (python train.py writes it)")
    p.add_argument("--experiment", default=EXP, help="ties: the experiment whose 2x HyperClone models are merged "
                                                      "(out/experiment-class after --preset=class)")
    p.add_argument("--ancestor", help="ties: the common ancestor (default: EXPERIMENT/grown/hyperclone.pt)")
    p.add_argument("--ko", help="ties: the Korean model (default: EXPERIMENT's at the rate its merges used)")
    p.add_argument("--de", help="ties: the German model (default: EXPERIMENT's at the rate its merges used)")
    p.add_argument("--iters", type=int, default=150, help="steps of each Korean run")
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--data-dir", default=DATA_DIR)
    p.add_argument("--out", default="out/exercises", help="where runs, JSON and plots go")
    args = parse_flags(p)
    check_number("iters", args.iters, 1)
    check_number("eval_iters", args.eval_iters, 1)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    os.makedirs(args.out, exist_ok=True)
    result, fig = {"replay": sweep_replay, "ties": sweep_ties, "factor": sweep_factor}[args.which](args, plt)
    with open(f"{args.out}/{args.which}.json", "w") as f:
        json.dump(result, f, indent=1)
    fig.tight_layout()
    fig.savefig(f"{args.out}/{args.which}.png", dpi=110)
    print(f"wrote {args.out}/{args.which}.json and .png")


if __name__ == "__main__":
    run_cli(main)
