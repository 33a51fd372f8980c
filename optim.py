"""
optim.py — how the weights move: AdamW, the learning-rate schedule, and what stays frozen.

Place in the story: train.py calls these once per step. A grown model's base is
frozen here: wholly frozen tensors get no gradient at all, partly frozen ones
(embedding rows of tokens the base already knew) are held bit-identical, weight
decay included. Follows nanoGPT's schedule and weight-decay groups.
"""

import math

import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from plumbing.cli import UserError


def lr_at(it, learning_rate, min_lr, warmup_iters, lr_decay_iters):
    """Linear warm-up, then cosine decay to min_lr at lr_decay_iters (nanoGPT's schedule)."""
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it > lr_decay_iters:
        return min_lr
    ratio = (it - warmup_iters) / max(1, lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (learning_rate - min_lr)


def apply_freezing(model, frozen):
    """Freeze what a grown checkpoint marks frozen; return the partly frozen tensors.

    frozen maps parameter names to True (the whole tensor) or a bool mask
    (True = frozen entry). A wholly frozen tensor gets requires_grad=False: no
    gradient, no optimizer state, no work. A partly frozen one (the embedding
    rows of tokens the base model never saw stay trainable) keeps training, and
    `zero_frozen_grads` zeroes its frozen entries' gradients and `restore_frozen`
    puts their values back after every step, because AdamW's decoupled weight decay would
    otherwise still move them.
    """
    params = dict(model.named_parameters())
    partial = []
    for name, mask in frozen.items():
        if name not in params:
            raise UserError(f"the checkpoint freezes '{name}', which the model does not have")
        p = params[name]
        if mask is True or bool(mask.all()):
            p.requires_grad_(False)
        elif mask.shape != p.shape:
            raise UserError(f"frozen mask for '{name}' has shape {tuple(mask.shape)}, the weight {tuple(p.shape)}")
        elif mask.any():
            mask = mask.to(p.device)
            partial.append((p, mask, p.detach()[mask].clone()))
    return partial


def zero_frozen_grads(partial):
    """Before the step: frozen entries of partly frozen tensors get no gradient (nor clip-norm share)."""
    for p, mask, _ in partial:
        if p.grad is not None:
            p.grad[mask] = 0


def restore_frozen(partial):
    """After the step: put frozen entries back, since AdamW's decoupled weight decay moved them anyway."""
    for p, mask, values in partial:
        p.data[mask] = values


def optimizer_step(model, optimizer, batches, partial, grad_clip, ctx):
    """One AdamW step on the micro-batches [(x, y), ...]; returns their mean loss.

    Gradients are accumulated over the micro-batches (under DDP, all-reduced
    once, after the last one), frozen entries held, the norm clipped.
    """
    loss_sum = 0.0
    for micro, (x, y) in enumerate(batches):
        if isinstance(model, DDP):
            model.require_backward_grad_sync = micro == len(batches) - 1
        with ctx:
            _, loss = model(x, y)
        (loss / len(batches)).backward()
        loss_sum += loss.item()
    zero_frozen_grads(partial)
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], grad_clip)
    optimizer.step()
    restore_frozen(partial)
    optimizer.zero_grad(set_to_none=True)
    return loss_sum / len(batches)


def make_optimizer(model, learning_rate, weight_decay, betas, device_type="cpu", added=(), new_lr_mult=1.0):
    """AdamW over trainable tensors only; weight decay on 2-D weights (matrices, embeddings) only.

    `added` names the tensors a growth added next to a frozen base (random or zero init): with
    new_lr_mult != 1 they get their own groups, whose learning rate is new_lr_mult x the schedule's,
    because Adam moves an entry by about the learning rate per step, and a fresh stream at the
    rate tuned for trained weights barely leaves its init (METHODS.md)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    new = set(added) if new_lr_mult != 1 else set()
    groups = []
    for mult, members in ((1.0, [p for n, p in named if n not in new]), (new_lr_mult, [p for n, p in named if n in new])):
        if members or mult == 1.0:
            groups += [{"params": [p for p in members if p.dim() >= 2], "weight_decay": weight_decay, "lr_mult": mult},
                       {"params": [p for p in members if p.dim() < 2], "weight_decay": 0.0, "lr_mult": mult}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type == "cuda")
