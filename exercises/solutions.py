"""
exercises/solutions.py — the reference solutions (for teachers; students fill in exercises/student.py).

`python exercises/check.py all --reference` runs every check against this file;
CI does the same, which proves every exercise can be solved as written.
"""

import json
import math

import torch
from torch.nn import functional as F

from lab import clones
import scale


# 1. Count the parameters
def n_params(n_layer, n_embd, vocab_size, block_size):
    C = n_embd
    per_block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C)
    return vocab_size * C + block_size * C + n_layer * per_block + 2 * C  # wte (= lm_head), wpe, blocks, ln_f


# 2. Forgetting in numbers
def forgetting(log_path):
    log = [json.loads(line) for line in open(log_path)]
    first, last = log[0]["loss"], log[-1]["loss"]
    return {"english_rise": last["english"] - first["english"], "korean_drop": first["korean"] - last["korean"]}


# 3. Break depth growth on purpose
def depth_without_zero_init(sd, margs):
    grown_args, out, _ = scale.grow_depth(sd, margs, every=1, top=0)
    for j in range(1, grown_args["n_layer"], 2):  # block 2i+1 is the new copy of old block i
        for k in out:
            if k.startswith(f"transformer.h.{j}.") and ".c_proj." in k:
                out[k] = sd[k.replace(f"h.{j}.", f"h.{j // 2}.")].clone()
    return grown_args, out


# 4. One LayerNorm over both streams
def joint_layer_norm(x, x_u, weight, bias):
    C = x.size(-1)
    y = F.layer_norm(torch.cat([x, x_u], dim=-1), weight.shape, weight, bias, 1e-5)
    return y[..., :C], y[..., C:]


def zero_stream_factor(C, Cu):
    return math.sqrt((C + Cu) / C)


# 5. HyperCloning's tied head
def clone_head(W, n):
    return W.repeat(1, n) / n


def gap_without_division(logits, n):
    return (n - 1) * logits.abs().max().item()


# 6. TIES by hand
def ties_by_hand():
    return {"trimmed": [[0.4, 0, 0.3, 0], [-0.5, 0, 0, -0.3], [0, 0.3, -0.4, 0]],
            "sign": [-1, 1, -1, -1],
            "merged": [-0.5, 0.3, -0.4, -0.3]}


# 7. DARE
def dare(tau, density, gen):
    keep = torch.rand(tau.shape, generator=gen, dtype=torch.float64) < density
    return keep, torch.where(keep, tau / density, torch.zeros_like(tau))


# 8. Replay: the stability-plasticity front
def pareto_front(points):
    def dominates(b, a):  # b is at least as good on both axes and better on one
        return all(x <= y for x, y in zip(points[b], points[a])) and points[b] != points[a]
    return sorted(a for a in points if not any(dominates(b, a) for b in points))


# 9. TIES density and lambda
def best_merge(results):
    return min(results, key=lambda r: ((r["korean"] + r["german"]) / 2, r["density"], r["lambda"]))


def least_kept(merged, own, other):
    return min((other[lang] - merged[lang]) / (other[lang] - own[lang]) for lang in merged)


# 10. Grow by other factors
def tokens_to_reach(log, target):
    if log[0]["loss"]["korean"] <= target:
        return log[0]["tokens"]
    for before, after in zip(log, log[1:]):
        if after["loss"]["korean"] <= target:  # crossed between two evaluations: interpolate
            frac = (before["loss"]["korean"] - target) / (before["loss"]["korean"] - after["loss"]["korean"])
            return before["tokens"] + frac * (after["tokens"] - before["tokens"])
    return None


# 11. Extension: Model Breadcrumbs
def breadcrumbs(tau, density, gamma):
    n = tau.numel()
    order = tau.abs().flatten().argsort(descending=True, stable=True)
    top, keep = int(gamma * n + 0.5), int(density * n + 0.5)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[order[top:top + keep]] = True
    return torch.where(mask.view_as(tau), tau, torch.zeros_like(tau))


def merge_breadcrumbs(base, models, density, gamma):
    return {k: base[k] + sum(breadcrumbs(sd[k] - base[k], density, gamma) for sd in models) / len(models)
            for k in base}


# 12. Frozen means bit-identical
def _masked_adamw(weight_decay, steps, restore):
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(4, 3))
    frozen = torch.zeros(4, 3, dtype=torch.bool)
    frozen[:2] = True
    before = w.detach().clone()
    opt = torch.optim.AdamW([w], lr=0.1, weight_decay=weight_decay)
    for _ in range(steps):
        (w ** 2).sum().backward()
        w.grad[frozen] = 0  # the gradient says nothing...
        opt.step()          # ...but decoupled weight decay still shrinks every entry
        if restore:
            w.data[frozen] = before[frozen]
        opt.zero_grad()
    return (w.detach() - before)[frozen].abs().max().item()


def drift_under_grad_mask(weight_decay, steps=5):
    return _masked_adamw(weight_decay, steps, restore=False)


def drift_when_restored(weight_decay, steps=5):
    return _masked_adamw(weight_decay, steps, restore=True)


# 13. A HyperClone without noise
def clone_gap_after_training(noise, steps=5):
    from model_scale import new_model
    torch.manual_seed(0)
    margs = dict(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=32)
    ckpt = {"model": new_model(margs).state_dict(), "model_args": margs}
    wide_args, sd, _ = scale.grow(ckpt, method="hyperclone", noise=noise)
    model = scale.build(wide_args, sd)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    torch.manual_seed(1)
    for _ in range(steps):
        idx = torch.randint(64, (4, 16))
        model(idx, idx)[1].backward()
        opt.step()
        opt.zero_grad()
    return clones.clone_swap_gap(model.state_dict())


# 14. What SCALE-Route's gate says
def gate_mean(model, idx):
    seen = []
    hook = model.router.register_forward_hook(lambda mod, inp, out: seen.append(torch.sigmoid(out)))
    with torch.no_grad():
        model(idx)
    hook.remove()
    return seen[0].mean().item()


# 15. SOLAR vs depth: the cost of a start that does not preserve
def preservation_gaps(sd, margs, idx):
    base = scale.build(margs, sd).eval()
    gaps = {}
    for method in ("depth", "solar"):
        grown_args, grown_sd, _ = scale.grow({"model": sd, "model_args": margs}, method=method)
        grown = scale.build(grown_args, grown_sd).eval()
        with torch.no_grad():
            gaps[method] = (grown(idx)[0] - base(idx)[0]).abs().max().item()
    return gaps
