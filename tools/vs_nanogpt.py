"""
vs_nanogpt.py — nanoGPT's model beside ours, with the same weights, for `python -m tools.bench --nanogpt=FOLDER`.

nanoGPT is not a dependency: its model.py is read from a clone the user names.
"""

import copy
import importlib.util
import os
from contextlib import nullcontext
from dataclasses import asdict

import torch

from model_scale import config_of, new_model
from plumbing.cli import UserError


def load_nanogpt(folder):
    """nanoGPT's model.py, from a clone of its repository (its code: only run one you trust)."""
    path = os.path.join(folder, "model.py")
    if not os.path.isfile(path):
        raise UserError(f"--nanogpt={folder}: no model.py there; pass the folder of a nanoGPT clone "
                        "(git clone https://github.com/karpathy/nanoGPT)")
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nanogpt_models(nano, margs):
    """{label: (model, autocast)}: nanoGPT's model, and ours with its weights three ways. The third of ours
    uses nanoGPT's exact GELU instead of GPT-2's tanh approximation, to show what the tanh form costs."""
    torch.manual_seed(0)
    theirs = nano.GPT(nano.GPTConfig(**margs))
    ours = new_model(asdict(config_of(margs)))
    ours.load_state_dict({k: v for k, v in theirs.state_dict().items() if k in ours.state_dict()})
    exact = copy.deepcopy(ours)
    for block in exact.transformer.h:
        block.mlp.gelu = torch.nn.GELU()  # erf, as nanoGPT's MLP
    return {"nanoGPT, float32 (its CPU default)": (theirs, nullcontext()), "ours, float32": (ours, nullcontext()),
            "ours, float32, exact GELU": (exact, nullcontext()),
            "ours, bfloat16 autocast (our CPU default)": (copy.deepcopy(ours),
                                                          torch.autocast("cpu", dtype=torch.bfloat16))}
