"""
exercises/student.py — your answers to EXERCISES.md. Replace each `raise NotImplementedError`.

Check one exercise with `python exercises/check.py 3`, all of them with
`python exercises/check.py all`. Each check prints PASS or FAIL and the numbers.
"""

import json  # noqa: F401  (you will need these)
import math  # noqa: F401

import torch  # noqa: F401
from torch.nn import functional as F  # noqa: F401

from lab import clones  # noqa: F401
import scale  # noqa: F401


# 1. Count the parameters
def n_params(n_layer, n_embd, vocab_size, block_size):
    """Parameters of model.py's GPT (bias on, lm_head tied to wte), from the shapes alone."""
    raise NotImplementedError


# 2. Forgetting in numbers
def forgetting(log_path):
    """{"english_rise": last - first English loss, "korean_drop": first - last Korean loss} of a train.py log.jsonl."""
    raise NotImplementedError


# 3. Break depth growth on purpose
def depth_without_zero_init(sd, margs):
    """scale.grow_depth(sd, margs, every=1, top=0), but the new blocks keep the c_proj weights and biases
    they were copied with. Returns (model_args, state_dict)."""
    raise NotImplementedError


# 4. One LayerNorm over both streams
def joint_layer_norm(x, x_u, weight, bias):
    """LayerNorm over the concatenated coordinates [x ; x_u] (eps 1e-5), split back into (y, y_u)."""
    raise NotImplementedError


def zero_stream_factor(C, Cu):
    """By what factor joint_layer_norm scales the old coordinates when x_u = 0 and x has zero mean
    (weight 1, bias 0, eps ignored), compared with a LayerNorm over x alone."""
    raise NotImplementedError


# 5. HyperCloning's tied head
def clone_head(W, n):
    """The (V, n*C) head that gives the base's logits when it reads [h, h, ..., h] (n copies)."""
    raise NotImplementedError


def gap_without_division(logits, n):
    """max |logits_grown - logits_base| if the head were W.repeat(1, n) without the 1/n: a formula."""
    raise NotImplementedError


# 6. TIES by hand
def ties_by_hand():
    """EXERCISES.md's three vectors merged on paper, step by step: a dict with
    "trimmed" (three lists of 4 numbers), "sign" (4 numbers, +1 or -1) and "merged" (4 numbers)."""
    raise NotImplementedError


# 7. DARE
def dare(tau, density, gen):
    """DARE in its two steps: (keep, result). keep: a bool tensor of tau's shape, each entry True with
    probability `density` (torch.rand with generator=gen); result: the kept entries rescaled so that
    the expectation is tau, the rest zero."""
    raise NotImplementedError


# 8. Replay: the stability-plasticity front
def pareto_front(points):
    """points: {name: (english_forgetting, korean_loss)}, lower is better on both. The sorted names no
    other point beats on both axes (at least as good on both and different)."""
    raise NotImplementedError


# 9. TIES density and lambda
def best_merge(results):
    """results: list of {"density", "lambda", "korean", "german"}. The entry with the lowest mean of the
    Korean and German losses (on a tie: the smaller density, then the smaller lambda)."""
    raise NotImplementedError


def least_kept(merged, own, other):
    """merged, own, other: {language: loss} of a merge, of each language's own model ({"korean": the Korean
    model's Korean loss, ...}) and of the other model on it. The smallest, over the languages, of the
    fraction of its own model's gain the merge keeps: 0 at the other model's loss, 1 at the own model's."""
    raise NotImplementedError


# 10. Grow by other factors
def tokens_to_reach(log, target):
    """First token count at which the Korean loss reaches target (<=), linearly interpolated between
    the two evaluations around the crossing; None if it never does. log: train.py log.jsonl entries."""
    raise NotImplementedError


# 11. Extension: Model Breadcrumbs
def breadcrumbs(tau, density, gamma):
    """Zero the largest-magnitude `gamma` fraction of tau's entries (outliers) and keep the next `density`
    fraction; zero the rest. Counts round half up; equal magnitudes: the earlier entry counts as larger."""
    raise NotImplementedError


def merge_breadcrumbs(base, models, density, gamma):
    """theta = theta_base + mean_i breadcrumbs(theta_i - theta_base), tensor by tensor."""
    raise NotImplementedError


# 12. Frozen means bit-identical
def drift_under_grad_mask(weight_decay, steps=5):
    """Freeze the first 2 of 4 rows of a (4, 3) weight by zeroing their gradient before each AdamW step
    (lr 0.1, the given weight decay, loss = sum of the weight squared, torch.manual_seed(0) for the init).
    Return the largest |change| of a frozen entry after `steps` steps."""
    raise NotImplementedError


def drift_when_restored(weight_decay, steps=5):
    """The same, but after each step also put the frozen rows back (what optim.restore_frozen does)."""
    raise NotImplementedError


# 13. A HyperClone without noise
def clone_gap_after_training(noise, steps=5):
    """HyperClone (factor 2, this noise) a 2-layer, 32-wide, 64-token model (torch.manual_seed(0) for its
    init), train it `steps` AdamW steps (lr 1e-2) on random tokens (torch.manual_seed(1)), and return
    clones.clone_swap_gap of its state dict."""
    raise NotImplementedError


# 14. What SCALE-Route's gate says
def gate_mean(model, idx):
    """The mean of SCALE-Route's gate g (1 = keep the base's logits) over every position of idx (B, T)."""
    raise NotImplementedError


# 15. SOLAR vs depth: the cost of a start that does not preserve
def preservation_gaps(sd, margs, idx):
    """{"depth": max |logit change|, "solar": max |logit change|} after growing (sd, margs) with scale.grow's
    depth and solar, on the token ids idx."""
    raise NotImplementedError
