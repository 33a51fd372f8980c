"""
clones.py — has a HyperClone left the 1x model it was grown from?

Place in the story: HyperCloning (scale.py) copies every coordinate n times. Without
symmetry-breaking noise both copies get identical gradients for ever, so the wide
model stays an n-fold copy of a 1x model (with a larger step on its matrices).
These two functions let the report and exercise 13 see it: the largest difference
between a tensor and the same tensor with its clones swapped, and the 1x model a
symmetric clone collapses to.
"""

import torch


def swap_clones(t, n, dim):
    return torch.cat(t.chunk(n, dim=dim)[::-1], dim=dim)


def clone_swap_gap(sd, n=2):
    """Largest |W - W with its clones swapped| over an n x HyperClone's tensors: 0 while the clones
    are exact copies of each other (no noise: they get identical gradients for ever), > 0 once they differ."""
    gap = 0.0
    for k, W in sd.items():
        if k.endswith(("wte.weight", "wpe.weight", "lm_head.weight")):  # cloned along the width only
            swapped = swap_clones(W, n, 1)
        else:  # rows are outputs, columns inputs; a fused c_attn is cloned one third (q, k, v) at a time
            thirds = W.chunk(3) if ".c_attn." in k else [W]
            swapped = torch.cat([swap_clones(swap_clones(t, n, 0), n, 1) if t.dim() == 2 else swap_clones(t, n, 0)
                                 for t in thirds])
        gap = max(gap, (W.double() - swapped.double()).abs().max().item())
    return gap


def unclone(sd, margs, n=2):
    """The 1x model a symmetric n x HyperClone computes (HyperCloning backwards): clone 0 of every
    coordinate, every row block summed over its input clones. Exact while the clones are equal."""
    C = margs["n_embd"] // n
    out = {}
    for k, W in sd.items():
        if k.endswith(("wte.weight", "wpe.weight")):
            out[k] = W[:, :C].clone()
        elif k == "lm_head.weight":
            out[k] = sum(W.chunk(n, dim=1))  # reads [h, h]: its column blocks act on one h
        elif W.dim() == 1:
            out[k] = torch.cat([t.chunk(n)[0] for t in W.chunk(3)]) if k.endswith("c_attn.bias") else W.chunk(n)[0]
        elif k.endswith("c_attn.weight"):
            out[k] = torch.cat([sum(t.chunk(n, dim=0)[0].chunk(n, dim=1)) for t in W.chunk(3)])
        else:
            out[k] = sum(W.chunk(n, dim=0)[0].chunk(n, dim=1))
    small = dict(margs, n_embd=C, n_head=margs["n_head"] // n,
                 n_inner=margs["n_inner"] // n if margs.get("n_inner") else 0)
    return small, out
