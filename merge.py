"""
merge.py — merge language models that share an ancestor: linear, task arithmetic, TIES, DARE, layerwise.

Place in the story: "Grow Up and Merge" continues one (upscaled) English model
on each target language separately, then merges the language models into one
multilingual model. Every method here is the same recipe with different steps,
as in mergekit: take task vectors against the common ancestor, optionally
sparsify them (TIES: keep the largest; DARE: drop at random and rescale),
optionally elect a sign per coordinate and average only the agreeing models,
then add the result back to the ancestor. The steps are short functions a
student can read next to the papers (Ilharco et al. 2022; Yadav et al. 2023;
Yu et al. 2023); `merge_state_dicts` takes and returns plain state dicts.
"layerwise" is the one built for languages: each layer (the embeddings, every
block, the head) mixes the task vectors with weights of its own, so a layer
that holds Korean can come from the Korean model and one that holds German from
the German one; layer swapping (Bandarkar et al. 2024) is its 0/1 case, and
AdaMerging (Yang et al. 2024) learns such weights from data. `--tune` chooses
any method's settings on held-out batches (tune.py).

    python merge.py --method=ties --base=out/upscaled.pt \\
        --models=out/korean/ckpt.pt,out/german/ckpt.pt --out=out/merged.pt
"""

import argparse
import math

import torch

from checkpoint import (check_compatible, check_finite, descends_from, load_checkpoint, make_checkpoint, save_checkpoint,
                        tensors_to_merge, tie_head)
from data.common import DATA_DIR
from tune import tune_settings

from plumbing.cli import UserError, check_number, parse_flags, parser, run_cli, writable_file

# method: (sparsify, consensus). sparsify: None | "magnitude" (TIES' trim) | "random" (DARE);
# consensus: elect a sign per coordinate and average only the models that agree with it.
METHODS = {
    "linear": (None, False),           # weighted average of the models
    "task_arithmetic": (None, False),  # theta_base + lambda * sum_i w_i tau_i
    "ties": ("magnitude", True),       # trim, elect sign, disjoint mean
    "dare": ("random", False),         # drop and rescale, then task arithmetic
    "dare_ties": ("random", True),     # drop and rescale, then TIES' sign election
    "layerwise": (None, False),        # task arithmetic with weights of its own for every layer (layer_weights)
}

# ----------------------------------------------------------------------------
# the steps, one tensor (or one coordinate) at a time


CHUNK = 1 << 20  # entries merged at a time: float64 temporaries of 8 MB each


def task_vector(theta, theta_base):
    """tau = theta - theta_base, in float64 so that theta_base + tau gives theta back exactly."""
    return theta.double() - theta_base.double()


def magnitude(tau):
    """|tau| in float32: one precision for ranking entries, wherever a threshold is computed or applied."""
    return tau.abs().float().flatten()


def parts(numel):
    """Slices of CHUNK entries covering a flat tensor of numel entries."""
    return [slice(start, start + CHUNK) for start in range(0, numel, CHUNK)]


def magnitudes(theta, theta_base):
    """magnitude(task_vector(theta, theta_base)), flat, computed a piece at a time: the float64 task
    vector of a whole GPT-2 embedding would take 300 MB."""
    theta, theta_base = theta.reshape(-1), theta_base.reshape(-1)
    return torch.cat([magnitude(task_vector(theta[p], theta_base[p])) for p in parts(theta.numel())])


def kth_largest(pieces, k):
    """(t, ties): keeping the k largest of all entries in `pieces` (float32 magnitudes, in order)
    means keeping every entry > t and the first `ties` entries == t. k counts, not fractions.
    For a whole model, pieces is a function returning them one tensor at a time: the model is then
    read twice rather than held in memory.

    A radix select, 5x faster than kthvalue on a whole model: read as integers, the bits of floats
    >= 0 sort like the floats, so counting entries by their top 16 bits finds the bucket that holds
    the threshold, and kthvalue only has to search that one bucket."""
    read = pieces if callable(pieces) else lambda: pieces
    at_or_below = sum(torch.bincount(bucket(m), minlength=1 << 15) for m in read()).cumsum(0)  # per bucket b
    n = int(at_or_below[-1])
    if k >= n:
        return float("-inf"), 0
    if k <= 0:
        return float("inf"), 0
    j = n - k + 1  # the k-th largest is the j-th smallest
    b = int(torch.searchsorted(at_or_below, j))  # the first bucket that reaches j entries
    below = int(at_or_below[b - 1]) if b > 0 else 0
    in_bucket = torch.cat([m[bucket(m) == b] for m in read()])
    t = in_bucket.kthvalue(j - below).values.item()
    above = n - int(at_or_below[b]) + int((in_bucket > t).sum())
    return t, k - above


def bucket(mags):
    """The top 16 bits of each float32 >= 0, read as an integer: 0 .. 2^15 - 1, ordered like the floats."""
    assert mags.dtype == torch.float32, "rank magnitude(tau), which is float32"
    return mags.contiguous().view(torch.int32) >> 16


def trim(tau, t, ties):
    """TIES step 1: zero every entry of tau but those above the threshold t (and `ties` entries equal
    to it, first ones first). Returns (trimmed tau, ties used)."""
    mag = magnitude(tau)
    keep = mag > t
    tied = (mag == t).nonzero().flatten()[:ties]
    keep[tied] = True
    return torch.where(keep.view_as(tau), tau, torch.zeros_like(tau)), len(tied)


def n_kept(numel, density):
    """How many entries a density keeps: density * numel, rounded half up."""
    return int(density * numel + 0.5)


def dare_mask(numel, density, gen):
    """DARE's random choice: keep each entry with probability `density`. Drawn for a whole tensor at
    once, so merging it in pieces does not change which entries survive."""
    return torch.rand(numel, generator=gen, dtype=torch.float64) < density


def drop_and_rescale(tau, density, keep):
    """DARE: drop the entries outside `keep` (each with probability p = 1 - density), scale the
    survivors by 1 / (1 - p), so the expected task vector is unchanged."""
    return torch.where(keep.view_as(tau), tau / density, torch.zeros_like(tau))


def elect_sign(taus):
    """TIES step 2: the sign of the summed mass sum_i tau_i per coordinate (not a vote count).
    Where the mass sums to exactly zero we take + (as mergekit does)."""
    mass = torch.stack(taus).sum(dim=0)
    return torch.where(mass >= 0, 1.0, -1.0).to(mass.dtype)


def disjoint_mean(taus, weights, sign, normalize=True):
    """TIES step 3: average each coordinate over the models whose tau agrees with the elected sign
    (weights w_i count after the election; zero entries never agree). No model agrees -> 0."""
    agree = [(tau.sign() == sign).to(tau.dtype) for tau in taus]
    total = sum(w * a * tau for w, a, tau in zip(weights, agree, taus))
    if not normalize:
        return total
    mass = sum(w * a for w, a in zip(weights, agree))
    return torch.where(mass > 0, total / mass.clamp(min=1e-300), torch.zeros_like(total))


def weighted_sum(taus, weights, normalize=True):
    """Task arithmetic's combination: sum_i w_i tau_i, divided by sum_i w_i if normalize."""
    total = sum(w * tau for w, tau in zip(weights, taus))
    return total / sum(weights) if normalize else total


def layer_of(name):
    """The layer a tensor belongs to, for layerwise weights: 0 the embeddings (wte, wpe), 1 + i block i,
    -1 everything after the last block (ln_f, the head, SCALE's second head and Route's gate)."""
    parts_ = name.split(".")
    if parts_[:2] == ["transformer", "h"]:
        return 1 + int(parts_[2])
    return 0 if parts_[0] == "transformer" and parts_[1] in ("wte", "wpe", "wte_u", "wpe_u") else -1


# ----------------------------------------------------------------------------
# whole models


def merge_state_dicts(base, models, method="ties", weights=None, density=0.5, lam=1.0, normalize=True,
                      trim_scope="tensor", seed=0, names=None, layer_weights=None):
    """theta = theta_base + lam * combine(sparsify(tau_1), ..., sparsify(tau_n)), tensor by tensor.

    base and models are state dicts of one architecture; names (default: all of base's keys) lists
    the tensors to merge, each once (leave out tied aliases such as lm_head.weight). For "linear",
    the result is sum_i w_i theta_i / sum_i w_i whatever lam and normalize say. For "layerwise",
    layer_weights[l] are the weights of layer l (layer_of: the embeddings, each block, the head;
    n_layer + 2 lists of one weight per model) in place of `weights`.
    """
    sparsify, consensus = METHODS[method]
    weights = weights or [1.0] * len(models)
    if method == "linear":
        lam, normalize = 1.0, True
    names = list(base) if names is None else names
    # per tensor, or over the whole model, one threshold per model: [t, ties still to keep]
    thresholds = {}
    if sparsify == "magnitude" and trim_scope == "global":
        for i, sd in enumerate(models):
            model_magnitudes = lambda: (magnitudes(sd[n], base[n]) for n in names)
            thresholds[i] = list(kth_largest(model_magnitudes, n_kept(sum(base[n].numel() for n in names), density)))
    gen = torch.Generator().manual_seed(seed)
    merged = {}
    for name in names:
        flat_base, flats = base[name].reshape(-1), [sd[name].reshape(-1) for sd in models]
        if sparsify == "magnitude" and trim_scope == "tensor":
            thresholds = {i: list(kth_largest([magnitudes(f, flat_base)], n_kept(f.numel(), density)))
                          for i, f in enumerate(flats)}
        elif sparsify == "random":
            masks = [dare_mask(f.numel(), density, gen) for f in flats]
        if method == "layerwise" and layer_weights:  # without them: the same weights in every layer
            weights = layer_weights[layer_of(name)]
        pieces = []
        for part in parts(flat_base.numel()):  # in pieces: a 124M model merges in little memory
            taus = [task_vector(f[part], flat_base[part]) for f in flats]
            if sparsify == "magnitude":
                for i, tau in enumerate(taus):
                    taus[i], used = trim(tau, *thresholds[i])
                    thresholds[i][1] -= used  # ties at the threshold: the first ones (in order) are kept
            elif sparsify == "random":
                taus = [drop_and_rescale(tau, density, keep[part]) for tau, keep in zip(taus, masks)]
            if consensus:
                combined = disjoint_mean(taus, weights, elect_sign(taus), normalize)
            else:
                combined = weighted_sum(taus, weights, normalize)
            pieces.append((flat_base[part].double() + lam * combined).to(base[name].dtype))
        merged[name] = torch.cat(pieces).view(base[name].shape)
    return merged


def merge_steps(base, models, name, method="ties", weights=None, density=0.5, lam=1.0, normalize=True, seed=0,
                names=None, k=24, layer_weights=None):
    """Each step of one method on one tensor, as merge_state_dicts takes it (per-tensor trim; DARE's
    masks drawn in the same order), cut to its first k rows and columns for draw.draw_steps:
    [(row title, [(panel title, 2-D tensor)])]."""
    sparsify, consensus = METHODS[method]
    weights = layer_weights[layer_of(name)] if method == "layerwise" and layer_weights else weights or [1.0] * len(models)
    cut = lambda t: t.reshape(t.shape[0], -1)[:k, :k] if t.dim() > 1 else t[None, :k]  # noqa: E731
    theta = [sd[name] for sd in models]
    taus = [task_vector(t, base[name]) for t in theta]
    rows = [("weights", [("ancestor θ", cut(base[name]))] + [(f"model {i + 1} θ{i + 1}", cut(t))
                                                              for i, t in enumerate(theta)]),
            ("task vectors", [(f"τ{i + 1} = θ{i + 1} − ancestor", cut(t)) for i, t in enumerate(taus)])]
    if sparsify == "magnitude":
        kept = [trim(tau.flatten(), *kth_largest([magnitude(tau)], n_kept(tau.numel(), density)))[0].view_as(tau)
                for tau in taus]
        rows.append((f"trim (density {density:g})", [(f"τ{i + 1}: top {density:.0%} by |τ|", cut(t))
                                                       for i, t in enumerate(kept)]))
        taus = kept
    elif sparsify == "random":
        gen = torch.Generator().manual_seed(seed)
        for other in (names or [name])[:(names or [name]).index(name)]:  # the draws of the tensors before
            for _ in models:
                dare_mask(base[other].numel(), density, gen)
        masks = [dare_mask(t.numel(), density, gen).view_as(t) for t in taus]
        rows.append((f"DARE (keep {density:g})", [(f"τ{i + 1}: entries kept", cut(m)) for i, m in enumerate(masks)]))
        taus = [drop_and_rescale(t, density, m) for t, m in zip(taus, masks)]
        rows.append(("rescaled", [(f"τ{i + 1} kept, × 1/{density:g}", cut(t)) for i, t in enumerate(taus)]))
    if consensus:
        sign = elect_sign(taus)
        rows.append(("sign election", [("elected sign γ > 0", cut(sign > 0))] + [
            (f"τ{i + 1} disagrees with γ", cut((t != 0) & (t.sign() != sign))) for i, t in enumerate(taus)]))
        combined = disjoint_mean(taus, weights, sign, normalize)
    else:
        combined = weighted_sum(taus, weights, normalize if method != "linear" else True)
    lam = 1.0 if method == "linear" else lam
    merged = (base[name].double() + lam * combined).to(base[name].dtype)  # as merge_state_dicts adds it back
    rows.append(("combined", [(f"λ × combined τ (λ = {lam:g})", cut(lam * combined))]))
    rows[0][1].append(("merged θ", cut(merged)))  # the result beside its parents
    return rows


def build_parser():
    p = parser("merge.py", "Merge models continued from a common ancestor.")
    p.add_argument("--method", default="ties", choices=list(METHODS), help="how to combine the task vectors")
    p.add_argument("--base", help="the common ancestor the models were continued from (task vectors are "
                                  "taken against it); optional for linear")
    p.add_argument("--models", required=True, help="comma-separated checkpoints to merge")
    p.add_argument("--weights", default="", help="comma-separated weight per model (default: 1 each)")
    p.add_argument("--density", type=float, default=0.5, help="ties / dare: fraction of each task vector kept")
    p.add_argument("--lambda", dest="lam", type=float, default=1.0, help="scale of the merged task vector")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=True,
                   help="divide by the summed weights (task arithmetic, dare) or agreeing weights (ties)")
    p.add_argument("--trim-scope", default="tensor", choices=["tensor", "global"],
                   help="ties: keep the top density per tensor (mergekit) or over the whole model (the TIES authors)")
    p.add_argument("--layer-weights", default="", help="layerwise: one weight per model for each layer, layers "
                   "separated by '/': the embeddings, each block, the head (n_layer + 2), like 1,0/0.5,0.5/.../0,1")
    p.add_argument("--seed", type=int, default=0, help="dare: seed of the random drop")
    p.add_argument("--tune", default="", help="comma-separated datasets (like korean,german): choose the method's "
                   "settings (tune.GRIDS) by the mean loss on held-out validation batches of these, then merge")
    p.add_argument("--tune-by", default="mean", choices=["mean", "kept"], help="--tune: the mean loss over the "
                   "datasets, or the least fraction of each model's gain on its own dataset the merge keeps "
                   "(--tune names each model's dataset, in --models' order)")
    p.add_argument("--tune-iters", type=int, default=8, help="--tune: held-out batches per dataset")
    p.add_argument("--data-dir", default=DATA_DIR, help="--tune: folder holding the prepared datasets")
    p.add_argument("--batch-size", type=int, default=16, help="--tune: sequences per batch, and the evaluation's "
                   "batch size whose windows the held-out batches avoid")
    p.add_argument("--eval-iters", type=int, default=20, help="--tune: the evaluation's batches per dataset "
                   "(evaluate.py's), whose windows the held-out batches avoid")
    p.add_argument("--out", default="out/merged.pt", help="where to write the merged checkpoint")
    p.add_argument("--draw", metavar="FILE.png", help="also draw each step of the merge on one tensor (--draw-tensor)")
    p.add_argument("--draw-tensor", default="transformer.h.0.mlp.c_fc.weight", help="the tensor --draw shows")
    p.add_argument("--allow-unrelated", action="store_true",
                   help="merge even models whose records say they were not continued from --base")
    return p


def parse_weights(text, n_models, normalize, flag="--weights"):
    """--weights as floats, one per model; with normalisation their sum must not be 0."""
    try:
        weights = [float(w) for w in text.split(",")] if text else [1.0] * n_models
    except ValueError:
        raise UserError(f"{flag}: {text} must be comma-separated numbers, one per model, like 0.5,0.5")
    if len(weights) != n_models:
        raise UserError(f"{flag} has {len(weights)} values for {n_models} models")
    if not all(math.isfinite(w) for w in weights):
        raise UserError(f"{flag}: {text} must be finite numbers")
    if normalize and abs(sum(weights)) < 1e-12:
        raise UserError(f"{flag}: {text} add up to 0, and normalising divides by their sum: use weights with a "
                        "non-zero sum, or --no-normalize")
    return weights


def parse_layer_weights(text, n_layers, n_models, normalize):
    """--layer-weights as n_layers lists of n_models floats (n_layers: the model's n_layer + 2)."""
    if not text:
        raise UserError(f"--method=layerwise needs --layer-weights: {n_layers} layers (the embeddings, each block, "
                        f"the head) separated by '/', each {n_models} comma-separated weights, or --tune to choose them")
    layers = text.split("/")
    if len(layers) != n_layers:
        raise UserError(f"--layer-weights has {len(layers)} layers, these models have {n_layers} (the embeddings, "
                        f"{n_layers - 2} blocks, the head), separated by '/'")
    return [parse_weights(layer, n_models, normalize, "--layer-weights") for layer in layers]


def main(argv=None):
    args = parse_flags(build_parser(), argv)
    paths = [m for m in args.models.split(",") if m]
    if not paths:
        raise UserError("--models names no checkpoint: give them comma-separated, like --models=a.pt,b.pt")
    weights = parse_weights(args.weights, len(paths), args.normalize)
    if not 0 < args.density <= 1:
        raise UserError(f"--density={args.density} must be in (0, 1]")
    check_number("lambda", args.lam)
    if args.base is None and args.method != "linear":
        raise UserError(f"--method={args.method} needs --base, the common ancestor the models were continued from")
    writable_file(args.out, "--out")
    ckpts = [load_checkpoint(p, mmap=True) for p in paths]
    base_path = args.base or paths[0]
    base = load_checkpoint(base_path, mmap=True) if args.base else ckpts[0]
    check_compatible(base, ckpts, paths, base_path)
    for ckpt, path in zip(ckpts, paths):
        if args.base and not args.allow_unrelated and not descends_from(ckpt, base):
            raise UserError(f"{path} was not continued from {base_path} (its records name other ancestors): task "
                            "vectors against it would be meaningless; pass the right --base, or --allow-unrelated")
    names = tensors_to_merge(base["model_args"], base["model"])
    if args.draw:  # checked before the merge, which may take minutes
        if args.draw_tensor not in names:
            raise UserError(f"--draw-tensor={args.draw_tensor} is not a tensor of these models (for example "
                            f"{names[len(names) // 2]})")
        writable_file(args.draw, "--draw")
    settings = dict(weights=weights, density=args.density, lam=args.lam, normalize=args.normalize,
                    trim_scope=args.trim_scope, seed=args.seed, layer_weights=None)
    tuning = None
    if args.tune:
        settings, tuning = tune_settings(args, base, ckpts, names, settings, merge_state_dicts)
    elif args.method == "layerwise":
        settings["layer_weights"] = parse_layer_weights(args.layer_weights, base["model_args"]["n_layer"] + 2,
                                                        len(paths), args.normalize)
    print(f"{args.method}: {len(paths)} models, {len(names)} tensors, against {base_path}")
    merged = merge_state_dicts(base["model"], [c["model"] for c in ckpts], args.method, names=names, **settings)
    check_finite(merged, "the merged model")
    merged = tie_head(merged, base["model_args"])
    state = {n: merged[n] for n in base["model"]}  # the base's order; check_compatible proved the shapes
    seen = None
    for c in [base] + ckpts:
        if c.get("seen_tokens") is not None:
            seen = c["seen_tokens"].clone() if seen is None else seen | c["seen_tokens"]
    record = {"stage": "merge", "method": args.method, "base": args.base, "models": paths,
              **{("lambda" if k == "lam" else k): v for k, v in settings.items()}, "tuned_on": args.tune or None,
              "tuning": tuning}
    save_checkpoint(make_checkpoint(state, base["model_args"], base["tokenizer"], base.get("history", []) + [record],
                                    parents=[base] + ckpts, frozen=base.get("frozen", {}), seen_tokens=seen,
                                    merge=record), args.out)
    print(f"saved {args.out}; evaluate it with: python evaluate.py --ckpts={args.out}")
    if args.draw:
        draw_merge(args, base, ckpts, settings, names)


def draw_merge(args, base, ckpts, settings, names):
    """--draw: the merge's steps on one tensor, from the same functions that made the merge."""
    from draw import draw_steps  # matplotlib is imported only when a picture is asked for
    knobs = {k: v for k, v in settings.items() if k != "trim_scope"}
    rows = merge_steps(base["model"], [c["model"] for c in ckpts], args.draw_tensor, args.method, names=names,
                       **knobs)
    models = ", ".join(f"model {i + 1} = {path}" for i, path in enumerate(args.models.split(",")))
    draw_steps(rows, args.draw, f"python merge.py --method={args.method}: {args.draw_tensor}, its first rows and "
               f"columns\n{models}")
    print(f"drew {args.draw}")


if __name__ == "__main__":
    run_cli(main)
