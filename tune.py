"""
tune.py — choose a merge's settings on batches that its evaluation never reads.

Place in the story: every method of merge.py has knobs (the scale lambda, the
density of TIES and DARE, the layer weights of layerwise). Compared at one
default setting, "the methods differ" says as much about the setting as about
the method. Here each method's settings are chosen on held-out validation
batches (evaluate.held_out_rows: windows that
share no token with evaluate.py's), so the loss reported afterwards is not the
loss that chose. Two scores: the mean loss over the languages, or (--tune-by=kept)
the least fraction of a specialist's gain the merge keeps over the languages: on
the mean loss one specialist alone can win, since the languages' losses span
different ranges. `python merge.py --tune=korean,german ...` uses it.

    grid methods: try every setting of GRIDS[method], keep the lowest
    layerwise:    start from plain averaging, then change one layer's weights at a
                  time (coordinate search) while the loss goes down
"""

import itertools

from tqdm import tqdm

from checkpoint import model_from_checkpoint, tie_head
from data.loader import open_split
from evaluate import estimate_loss, held_out_rows
from plumbing.cli import UserError, check_number

# a handful of values per knob, the same for every merge. lambda = 1 with normalised weights is the average of
# the task vectors, lambda = n_models their sum; density is the fraction of each task vector TIES / DARE keep.
LAMBDAS = [0.5, 1.0, 1.5, 2.0]
DENSITIES = [0.2, 0.5, 0.8]
GRIDS = {
    "linear": {},  # the average of the models: nothing to tune
    "task_arithmetic": {"lam": LAMBDAS},
    "ties": {"lam": LAMBDAS, "density": DENSITIES},
    "dare": {"lam": LAMBDAS, "density": DENSITIES},
    "dare_ties": {"lam": LAMBDAS, "density": DENSITIES},
}
SWEEPS = 2  # layerwise: passes over the layers at most


def grid(method):
    """Every setting of GRIDS[method], as dicts of merge_state_dicts' keyword arguments."""
    knobs = GRIDS[method]
    return [dict(zip(knobs, values)) for values in itertools.product(*knobs.values())]


def layer_choices(n_models):
    """The weights one layer may take: the plain average, and each model's weights alone or at 3/4 of the
    layer (with two models: model 1's share 0, 1/4, 1/2, 3/4 or 1). All-ones-but-one-zero lists are layer
    swapping's choice."""
    mean = [1.0 / n_models] * n_models
    leaning = [[(1 - a) * m + a * (i == j) for j, m in enumerate(mean)] for i in range(n_models) for a in (0.5, 1.0)]
    return [mean] + leaning


def losses_of(model, state, splits, rows, batch_size):
    """{dataset: loss} of `model` holding the weights `state`, on the held-out batches."""
    model.load_state_dict(state)
    return estimate_loss(model, splits, batch_size, 0, rows=rows)


def kept(losses, own, other):
    """How much of a specialist's gain on its language a merge keeps: 0 at the other models' loss there
    (`other`), 1 at the specialist's own (`own`); the scale of the report's kept fractions."""
    return (other - losses) / (other - own)


def objective(by, specialists):
    """score(losses) -> a number to make small. by="mean": the mean loss over the datasets. by="kept": minus
    the least kept fraction over the datasets, specialists[d] = (own, other) losses on dataset d: a merge
    must keep every language, and one model alone (which keeps all of one and none of another) scores 0."""
    if by == "mean":
        return lambda losses: sum(losses.values()) / len(losses)
    return lambda losses: -min(kept(losses[d], *specialists[d]) for d in losses)


def tune_grid(method, merge_with, score):
    """(the setting of GRIDS[method] with the lowest score, [(setting, score)] every one tried)."""
    tried = [(setting, score(merge_with(**setting))) for setting in tqdm(grid(method), desc=f"tuning {method}")]
    return min(tried, key=lambda t: t[1])[0], tried


def tune_layers(n_layers, n_models, merge_with, score):
    """(layerwise settings {layer_weights, lam}, [(setting, score)] every one tried): from the plain average
    at lambda 1, each layer in turn, then lambda, takes the choice with the lowest score, until a sweep
    changes nothing (at most SWEEPS sweeps). It starts at linear averaging, so on the held-out batches it
    ends at or below it."""
    best = {"layer_weights": [layer_choices(n_models)[0]] * n_layers, "lam": 1.0}
    tried = [(best, score(merge_with(**best)))]
    best_score = tried[0][1]
    bar = tqdm(desc="tuning layerwise", total=SWEEPS * (n_layers * (len(layer_choices(n_models)) - 1) + 3))
    for _ in range(SWEEPS):
        before = best
        for layer in range(n_layers + 1):  # the last "layer" is lambda
            if layer < n_layers:
                options = [dict(best, layer_weights=best["layer_weights"][:layer] + [w] +
                                best["layer_weights"][layer + 1:]) for w in layer_choices(n_models)]
            else:
                options = [dict(best, lam=lam) for lam in LAMBDAS]
            for setting in options:
                if any(setting == seen for seen, _ in tried):  # each setting is scored once
                    continue
                tried.append((setting, score(merge_with(**setting))))
                bar.update()
                if tried[-1][1] < best_score:
                    best, best_score = setting, tried[-1][1]
        if best == before:
            break
    bar.close()
    return best, tried


def tune(method, merge_with, model, splits, rows, batch_size, n_models, by="mean", specialists=None):
    """(the chosen settings of `method`, [(setting, score)] every one tried: objective(by, specialists)).

    merge_with(**setting) returns the merged state dict `model` loads; splits {dataset: tokens} and rows
    {dataset: held-out batches} are what the score reads."""
    goal = objective(by, specialists)
    score = lambda state: goal(losses_of(model, state, splits, rows, batch_size))  # noqa: E731
    if method == "layerwise":
        return tune_layers(model.config.n_layer + 2, n_models, merge_with, score)
    return tune_grid(method, merge_with, score)


# ----------------------------------------------------------------------------
# merge.py --tune


def tune_settings(args, base, ckpts, names, settings, merge_state_dicts):
    """merge.py --tune: (`settings` with the method's knobs chosen on held-out batches of the --tune datasets,
    [(knobs, score)] every setting tried); merge_state_dicts is merge.py's, passed in (merge.py imports this)."""
    datasets = [d for d in args.tune.split(",") if d]
    check_number("tune_iters", args.tune_iters, 1)
    check_number("batch_size", args.batch_size, 1)
    check_number("eval_iters", args.eval_iters, 1)
    if args.tune_by == "kept" and len(datasets) != len(ckpts):
        raise UserError(f"--tune-by=kept needs one --tune dataset per model, in --models' order ({len(ckpts)} "
                        f"models, {len(datasets)} datasets)")
    model = model_from_checkpoint(base, args.base)
    block = model.config.block_size
    splits = {d: open_split(args.data_dir, d, "val", base["tokenizer"], block) for d in datasets}
    try:
        rows = {d: held_out_rows(data, args.batch_size, args.tune_iters, block, args.eval_iters)
                for d, data in splits.items()}
    except ValueError as e:
        raise UserError(f"--tune: {e}; lower --tune-iters or --batch-size")
    models = [c["model"] for c in ckpts]
    specialists = specialist_losses(args, ckpts, datasets, splits, rows) if args.tune_by == "kept" else None

    def merge_with(**knobs):
        merged = merge_state_dicts(base["model"], models, args.method, names=names, **dict(settings, **knobs))
        return tie_head(merged, base["model_args"])
    chosen, tried = tune(args.method, merge_with, model, splits, rows, args.batch_size, len(ckpts), args.tune_by,
                         specialists)
    score = "mean loss" if args.tune_by == "mean" else "minus the least kept fraction"
    print(f"tuned on {args.tune_iters} held-out batches of {', '.join(datasets)} (none of evaluate.py's "
          f"{args.eval_iters} batches of {args.batch_size}); {score} of the best settings tried:")
    for knobs, loss in sorted(tried, key=lambda t: t[1])[:5]:
        print(f"  {loss:.4f}  {knobs}")
    return dict(settings, **chosen), [[knobs, round(loss, 6)] for knobs, loss in tried]


def specialist_losses(args, ckpts, datasets, splits, rows):
    """--tune-by=kept: {dataset: (its model's loss, the other models' mean loss)} on the held-out batches,
    the ends of the kept-fraction scale; --tune names one dataset per model, in --models' order."""
    losses = [losses_of(model_from_checkpoint(c), c["model"], splits, rows, args.batch_size) for c in ckpts]
    out = {}
    for i, d in enumerate(datasets):
        other = sum(losses[j][d] for j in range(len(ckpts)) if j != i) / (len(ckpts) - 1)
        if other - losses[i][d] <= 0:
            raise UserError(f"--tune-by=kept: the model for {d} ({args.models.split(',')[i]}) is no better on {d} "
                            "than the others, so there is no gain to keep; check --tune's order, or use --tune-by=mean")
        out[d] = (losses[i][d], other)
    return out
