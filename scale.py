"""
scale.py — grow a trained GPT deeper or wider without changing what it computes.

Place in the story: after train.py has pretrained an English base model, this
turns it into a bigger model whose logits are the base model's (exactly, for
the preserving methods), marks which weights stay frozen, and writes a
checkpoint that `train.py --init-from=upscaled` continues on Korean.

Methods (--method), each a few primitives applied to the base's state dict:
  depth       LLaMA Pro block expansion (Wu et al. 2024): copies of blocks whose output
              projections are zero, so each adds nothing; base frozen, new blocks train.
  solar       SOLAR depth up-scaling (Kim et al. 2023): two overlapping copies of the
              layer stack. Does NOT preserve: the contrast that shows why preservation matters.
  hyperclone  HyperCloning (Samragh et al. 2024), as "Grow Up and Merge" uses it: every
              coordinate, head and neuron n times, weights divided so the sum is unchanged.
  ffn         extra MLP neurons whose output weights start at zero; base frozen.
  scale       SCALE (Lee et al. 2025): a second residual stream beside the frozen base,
              every linear map in block form [[W, W12], [W21, W22]] with W12 = 0.
              --variant=preserve (W12 stays 0), adapt (W12 trains), route (a per-token gate
              between the base's head and the adapted head).
docs/growing.md gives each method's equations in this code's names, and its picture
(`--draw=FILE.png`): python scale.py --method=scale --variant=preserve --draw=grown.png
"""

import re
from dataclasses import asdict

import torch

from checkpoint import (check_finite, load_checkpoint, make_checkpoint,
                        model_from_checkpoint, save_checkpoint, tie_head, untie_head)
from model_scale import new_model
from plumbing.rundir import BASE_CKPT, UPSCALED_CKPT
from plumbing.cli import UserError, available_memory, check_number, parse_flags, parser, run_cli, writable_file

METHODS = ("depth", "solar", "hyperclone", "ffn", "scale")  # --method; grow() says what each does
# HyperCloning's symmetry-breaking noise, the default: without it both clones get identical gradients
# for ever and the 2x model stays a 1x model with a larger step (--noise=0 makes that clone, the lesson).
# 0.005 is a quarter of GPT-2's init scale; the function is kept to float32 rounding (the gap is printed).
SYMMETRY_NOISE = 0.005
# The registry of named growths: every one here is grown, continued, benchmarked and tested by
# experiment.py, lab/report.py, tools/bench.py and the tests, which read their lists from it. A new growth
# method that needs no new layer is a function below, a line in grow() and a line here.
RECIPES = {  # name: grow()'s options (scale.py's flags of the same names)
    "depth": dict(method="depth"),
    "solar": dict(method="solar"),
    "ffn": dict(method="ffn"),
    "hyperclone": dict(method="hyperclone", noise=SYMMETRY_NOISE),
    "hyperclone-noiseless": dict(method="hyperclone", noise=0),  # the lesson: it never leaves the 1x model
    "preserve": dict(method="scale", variant="preserve"),
    "adapt": dict(method="scale", variant="adapt"),
    "route": dict(method="scale", variant="route"),
}
FROZEN_BASE = {name for name, options in RECIPES.items()  # the recipes that keep the base frozen
               if options["method"] in ("depth", "ffn", "scale")}
BLOCK = re.compile(r"^transformer\.h\.(\d+)\.(.*)$")

# ----------------------------------------------------------------------------
# primitives on state dicts


def is_plain(margs):  # a GPT-2 model: no second stream, no extra neurons
    return not margs.get("n_embd_u") and not margs.get("n_inner_u")


def renumber_blocks(sd, order):
    """New block j is a copy of old block order[j]; everything outside the blocks is kept."""
    out = {k: v for k, v in sd.items() if not BLOCK.match(k)}
    for j, i in enumerate(order):
        for k, v in sd.items():
            m = BLOCK.match(k)
            if m and int(m.group(1)) == i:
                out[f"transformer.h.{j}.{m.group(2)}"] = v.clone()
    return out


def zero_block_outputs(sd, j):
    """Zero every projection block j writes into a residual stream (weights and biases):
    the block then adds exactly 0, whatever its other weights are."""
    for k in sd:
        if k.startswith(f"transformer.h.{j}.") and re.search(r"\.c_proj(_u|_12)?\.(weight|bias)$", k):
            sd[k] = torch.zeros_like(sd[k])


def clone_matrix(W, n_out, n_in):
    """HyperCloning's one primitive: W tiled n_out x n_in times, divided by n_in. On an
    input [x, x, ...] (n_in copies) it returns [W x, W x, ...] (n_out copies)."""
    return W.repeat(n_out, n_in) / n_in


def clone_qkv(W, n):
    """The fused q, k, v weight (or bias) cloned one third at a time, so the heads
    of q, k and v are copied together and each head keeps its size."""
    if W.dim() == 1:
        return torch.cat([b.repeat(n) for b in W.chunk(3)])
    return torch.cat([clone_matrix(w, n, n) for w in W.chunk(3)])


def break_symmetry(W, n, std, gen):
    """Add +N to one input copy's columns and -N to its twin's: on duplicated inputs
    the two cancel, so the function is unchanged but the clones can drift apart."""
    cols = W.shape[1] // n
    for i in range(0, n - 1, 2):
        N = torch.randn(W.shape[0], cols, generator=gen).to(W.dtype) * std  # same noise in any precision
        W[:, i * cols:(i + 1) * cols] += N
        W[:, (i + 1) * cols:(i + 2) * cols] -= N
    return W


def check_fits(margs):
    """Refuse, before allocating, a grown model this machine cannot hold: scale.py keeps the base,
    the grown model and float64 copies of both for the preservation check, about 24 bytes a parameter."""
    with torch.device("meta"):  # shapes only, no memory
        n = new_model(margs).num_params()
    need, have = 24 * n, available_memory()
    if have is not None and need > have:
        raise UserError(f"the grown model would have {n / 1e6:,.0f}M parameters and need about {need / 2**30:.1f} GiB "
                        f"of memory; {have / 2**30:.1f} GiB are available: grow by less")


def fresh_state(margs, seed):
    """GPT-2's initialisation for a model of this shape: where new weights come from."""
    check_fits(margs)
    torch.manual_seed(seed)
    return new_model(margs).state_dict()


# ----------------------------------------------------------------------------
# methods: each returns (model_args, state_dict, names of the frozen tensors)


def grow_depth(sd, margs, every, top):
    L = margs["n_layer"]
    if top:
        order = list(range(L)) + [L - 1] * top  # copies of the last block on top
    else:
        order = [i for b in range(L) for i in ([b, b] if (b + 1) % every == 0 else [b])]
    new_blocks = [j for j in range(len(order)) if j > 0 and order[j] == order[j - 1]] if not top else \
        list(range(L, L + top))
    out = renumber_blocks(sd, order)
    for j in new_blocks:
        zero_block_outputs(out, j)
    frozen = {k for k in out if not (BLOCK.match(k) and int(BLOCK.match(k).group(1)) in new_blocks)}
    return dict(margs, n_layer=len(order)), out, frozen


def grow_solar(sd, margs, overlap):
    L = margs["n_layer"]
    order = list(range(0, L - overlap)) + list(range(overlap, L))  # drop the top m of one copy, the bottom m of the other
    return dict(margs, n_layer=len(order)), renumber_blocks(sd, order), set()


def hyperclone(sd, margs, n, noise, seed):
    wide = dict(margs, n_embd=n * margs["n_embd"], n_head=n * margs["n_head"],
                n_inner=n * margs["n_inner"] if margs.get("n_inner") else 0, tie_weights=False)
    check_fits(wide)
    gen = torch.Generator().manual_seed(seed)
    if "lm_head.weight" not in sd:  # a tied head is untied: the embedding is copied, the head divided
        sd = dict(sd, **{"lm_head.weight": sd["transformer.wte.weight"]})
    out = {}
    for k, W in sd.items():
        stem = k.rsplit(".", 1)[0]
        if k in ("transformer.wte.weight", "transformer.wpe.weight"):
            out[k] = W.repeat(1, n)  # [x, x, ...]: embeddings are copied, not divided
        elif k == "lm_head.weight":
            out[k] = W.repeat(1, n) / n  # reads [h, h, ...]: divide, or the logits come out n times too large
        elif re.search(r"ln_(1|2|f)$", stem):
            out[k] = W.repeat(n)  # [x, x] has x's mean and variance: LN([x, x]) = [LN(x), LN(x)]
        elif stem.endswith("c_attn"):
            out[k] = clone_qkv(W, n)
        else:  # attn.c_proj, mlp.c_fc, mlp.c_proj
            out[k] = clone_matrix(W, n, n) if W.dim() == 2 else W.repeat(n)
        if noise and W.dim() == 2 and not k.startswith("transformer.w"):
            out[k] = break_symmetry(out[k], n, noise, gen)
    return wide, out, set()  # Grow Up and Merge trains everything


def widen_ffn(sd, margs, add_neurons, seed):
    wide = dict(margs, n_inner_u=add_neurons, adapt=True)
    out = fresh_state(wide, seed) | sd  # new neurons: GPT-2 init; the base: copied
    for k in out:
        if k.endswith("mlp.c_proj_12.weight"):
            out[k] = torch.zeros_like(out[k])  # the new neurons' output starts at zero
    return wide, out, set(sd)


def scale_width(sd, margs, add_width, add_neurons, variant, seed):
    wide = dict(margs, n_embd_u=add_width, n_inner_u=add_neurons, adapt=variant == "adapt", route=variant == "route")
    out = fresh_state(wide, seed) | sd  # the new stream: GPT-2 init; the base: copied, untouched
    for k in out:
        if re.search(r"_12\.weight$", k) or k == "lm_head_u.weight":
            out[k] = torch.zeros_like(out[k])  # W12 = 0 and zero new head columns: the logits start as the base's
    if margs.get("tie_weights", True):
        out["transformer.wte_u.weight"] = out["lm_head_u.weight"]  # tied: the new embedding columns start at 0 too
    if variant == "route":
        out["router.weight"] = torch.zeros_like(out["router.weight"])  # the gate starts at 1/2 for every token
    return wide, out, set(sd)


# ----------------------------------------------------------------------------
# checks and reporting


@torch.no_grad()
def logit_gap(ckpt, options, dtype, batch=4):
    """Grow the checkpoint in `dtype` and return max |grown logits - base logits|
    on random token sequences of full block size.

    In float64 this measures the method itself; in float32 it is the gap of the
    saved model, rounding included (W/3 or W/2 + N are not exact in float32)."""
    margs = ckpt["model_args"]
    base = new_model(margs).to(dtype).eval()
    base.load_state_dict(ckpt["model"])
    grown_args, sd, _ = grow(dict(ckpt, model={k: v.to(dtype) for k, v in ckpt["model"].items()}), **options)
    grown = build(grown_args, sd, dtype).eval()
    idx = torch.randint(margs["vocab_size"], (batch, margs["block_size"]), generator=torch.Generator().manual_seed(0))
    return (grown(idx)[0] - base(idx)[0]).abs().max().item()


def build(margs, sd, dtype=torch.float32):
    """The grown model from its state dict (a tied head is stored once, as the embedding)."""
    sd = tie_head(sd, margs)
    model = new_model(margs).to(dtype)
    model.load_state_dict(sd)
    return model


def frozen_spec(model, frozen_names, seen, train_unseen):
    """{parameter name: True or a row mask} for train.py.

    Rows of the embedding (and an untied head) for token ids the base never saw
    stay trainable, for every method alike (one policy, so no method is handicapped):
    a base trained on ASCII English has never used the byte ids of Korean, and with
    those rows frozen its head keeps them at about -11 nats.
    """
    spec = {}
    for name, p in model.named_parameters():  # named_parameters lists a tied tensor once
        if name not in frozen_names:
            continue
        spec[name] = True
        if train_unseen and seen is not None and name in ("transformer.wte.weight", "lm_head.weight") \
                and not seen.all():
            spec[name] = seen[:, None].expand_as(p).clone()  # True = frozen: the rows of seen tokens
    return spec


def added_names(grown_names, frozen_names):
    """Tensors a freezing method added next to the frozen base (new blocks of depth, new neurons of
    ffn, SCALE's stream): they start from random or zero init and learned nothing yet, so train.py
    may give them their own learning rate (--new-lr-mult). HyperCloning and SOLAR copy trained
    weights and freeze nothing: they add none."""
    return sorted(k for k in grown_names if frozen_names and k not in frozen_names)


def count(model, spec):
    total = model.num_params()
    params = dict(model.named_parameters())
    frozen = sum(params[n].numel() if m is True else int(m.sum()) for n, m in spec.items())
    return total, total - frozen


# ----------------------------------------------------------------------------
# command line


def build_parser():
    p = parser("scale.py", "Grow a GPT checkpoint, preserving what it computes.")
    p.add_argument("--method", required=True, choices=METHODS, help="how to grow (see the top of scale.py)")
    p.add_argument("--variant", default="preserve", choices=["preserve", "adapt", "route"],
                   help="scale only: W12 frozen at 0 / W12 trains / a per-token gate between two heads")
    p.add_argument("--in", dest="inp", default=BASE_CKPT, help="checkpoint to grow")
    p.add_argument("--out", default=UPSCALED_CKPT, help="where to write the grown checkpoint")
    p.add_argument("--tokenizer", help="for an --in checkpoint that does not say: bytes, gpt2, or nanoGPT's "
                                       "data/<dataset>/meta.pkl")
    p.add_argument("--factor", default="2", help="hyperclone: width multiplier, an integer >= 2")
    p.add_argument("--noise", type=float, default=SYMMETRY_NOISE,
                   help="hyperclone: std of the +N/-N noise that lets the clones' halves separate while keeping "
                        "the function; 0 makes the exact clone that never leaves the 1x model (the lesson)")
    p.add_argument("--every", type=int, default=1, help="depth: insert a copy after every k-th block")
    p.add_argument("--top", type=int, default=0, help="depth: instead, stack this many copies of the last block on top")
    p.add_argument("--overlap", type=int, default=0, help="solar: layers dropped from each copy (default: n_layer / 4)")
    p.add_argument("--add-width", type=int, default=0, help="scale: width of the new stream (default: n_embd)")
    p.add_argument("--add-neurons", type=int, default=0,
                   help="scale / ffn: new MLP neurons (default: 4 x the new width for scale, the base MLP width for ffn)")
    p.add_argument("--freeze-unseen", action="store_true",
                   help="also freeze the base's embedding rows of tokens it never saw (default: they train, "
                        "for every method)")
    p.add_argument("--seed", type=int, default=0, help="seed for the new weights")
    p.add_argument("--draw", metavar="FILE.png", help="also draw a block's matrices before and after the growth")
    return p


def check_factor(text):
    try:
        n = int(text)
    except ValueError:
        raise UserError(f"--factor={text} is not an integer: HyperCloning copies each coordinate a whole number of times")
    if n < 2:
        raise UserError(f"--factor={n} does not grow the model: use an integer >= 2")
    return n


def grow(ckpt, method, variant="preserve", factor=2, noise=SYMMETRY_NOISE, every=1, top=0, overlap=0,
         add_width=0, add_neurons=0, seed=0):
    """Grow the checkpoint by `method`; return (model_args, state_dict, frozen tensor names).
    The options are scale.py's flags of the same names; each method reads its own."""
    margs = dict(ckpt["model_args"])
    sd = untie_head(ckpt["model"], margs)  # a tied head is stored once, as wte
    if method in ("hyperclone", "ffn", "scale") and not is_plain(margs):
        grown_by = "scale (it has a second stream)" if margs.get("n_embd_u") else "ffn (it has extra MLP neurons)"
        raise UserError(f"--method={method} grows plain GPT-2 models, and this one was already grown by "
                        f"{grown_by}: grow the plain model instead, or use --method=depth or solar on this one")
    if method == "depth":
        L = margs["n_layer"]
        if top < 0 or not 1 <= every <= L:
            raise UserError(f"--every must be between 1 and n_layer = {L} (a copy after every k-th block; "
                            f"--every={every} inserts none), and --top >= 0")
        return grow_depth(sd, margs, every, top)
    if method == "solar":
        L = margs["n_layer"]
        overlap = overlap or max(1, L // 4)
        if not 0 < overlap < L / 2:
            raise UserError(f"solar keeps 2 x (n_layer - overlap) layers, so --overlap must be >= 1 and below "
                            f"n_layer / 2 = {L / 2:g} to grow this {L}-layer model")
        return grow_solar(sd, margs, overlap)
    if method == "hyperclone":
        return hyperclone(sd, margs, check_factor(factor), noise, seed)
    if add_neurons < 0 or add_width < 0:
        raise UserError("--add-neurons and --add-width must be >= 1 (or 0 for the default)")
    if method == "ffn":
        return widen_ffn(sd, margs, add_neurons or (margs.get("n_inner") or 4 * margs["n_embd"]), seed)
    head_size = margs["n_embd"] // margs["n_head"]
    width = add_width or margs["n_embd"]
    if width % head_size:
        raise UserError(f"--add-width={width} is not a multiple of the head size {head_size} "
                        f"(n_embd {margs['n_embd']} / n_head {margs['n_head']}): new heads must have the base's size")
    return scale_width(sd, margs, width, add_neurons or 4 * width, variant, seed)


def growth_options(args):
    """grow()'s options from scale.py's flags."""
    return {k: getattr(args, k) for k in ("method", "variant", "factor", "noise", "every", "top", "overlap",
                                          "add_width", "add_neurons", "seed")}


def recipe_flags(options):
    """scale.py's flags for grow() options, e.g. {"method": "scale", "variant": "adapt"} -> [--method=scale, ...]."""
    return [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]


def main(argv=None):
    args = parse_flags(build_parser(), argv)
    if args.method != "hyperclone" and args.factor != "2":
        raise UserError("--factor is for --method=hyperclone")
    check_number("noise", args.noise, 0)
    writable_file(args.out, "--out")
    if args.draw:
        writable_file(args.draw, "--draw")
    ckpt = load_checkpoint(args.inp, tokenizer=args.tokenizer)
    check_finite(ckpt["model"], args.inp)
    base = model_from_checkpoint(ckpt, args.inp)
    options = growth_options(args)
    margs, sd, frozen_names = grow(ckpt, **options)
    grown = build(margs, sd)
    seen = ckpt.get("seen_tokens")
    spec = frozen_spec(grown, frozen_names, seen, not args.freeze_unseen)

    n_base = base.num_params()
    total, trainable = count(grown, spec)
    what = f"{args.method}" + (f" ({args.variant})" if args.method == "scale" else "")
    cfg, Cu, Hu = grown.config, margs.get("n_embd_u"), margs.get("n_inner_u")
    print(f"{what}: {base.config.n_layer} layers x {base.config.n_embd} -> {cfg.n_layer} layers x {cfg.n_embd}"
          + (f" + {Cu}" if Cu else "") + f", MLP {cfg.mlp_width}" + (f" + {Hu}" if Hu else ""))
    print(f"parameters: {total:,} total, {total - n_base:+,} added, {trainable:,} trainable, {total - trainable:,} frozen")
    if any(m is not True for m in spec.values()):
        print(f"embedding rows of the {int((~seen).sum())} token ids the base never saw stay trainable")
    gap32, gap64 = logit_gap(ckpt, options, torch.float32), logit_gap(ckpt, options, torch.float64)
    if gap64 <= 1e-10:
        rounding = " (float32 rounding: the wider model adds in another order)" if gap32 else ""
        print(f"preserved: max |logits - base logits| on random tokens = {gap64:.3g} in float64, "
              f"{gap32:.3g} in float32{rounding}")
    else:
        print(f"NOT preserved: max |logits - base logits| on random tokens = {gap64:.3g} in float64, "
              f"{gap32:.3g} in float32")

    check_finite(grown.state_dict(), "the grown model")
    record = {"stage": "scale", "method": args.method, "from": args.inp, "gap_float32": gap32,
              **{k: v for k, v in vars(args).items() if k not in ("inp", "out", "method")}}
    save_checkpoint(make_checkpoint(grown.state_dict(), asdict(grown.config), ckpt["tokenizer"],
                                    ckpt.get("history", []) + [record], parents=[ckpt],
                                    frozen=spec, seen_tokens=seen, added=added_names([n for n, _ in grown.named_parameters()], frozen_names)),
                    args.out)
    print(f"saved {args.out}; continue it with: python train.py --init-from="
          + ("upscaled" if args.out == UPSCALED_CKPT else args.out))
    if args.draw:
        from draw import draw_growth  # matplotlib is imported only when a picture is asked for
        draw_growth(ckpt["model"], grown.state_dict(), args.draw, f"python scale.py --method={what}", frozen=spec)
        print(f"drew {args.draw}")


if __name__ == "__main__":
    run_cli(main)
