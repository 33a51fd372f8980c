"""
data/loader.py — how training reads prepared data.

Place in the story: train.py (and evaluate.py) memory-map the uint16 token
files that data/<name>/prepare.py wrote, check they fit the model, and draw
batches of random windows from them, mixing in a replay fraction of other
datasets. The sampler is a torch.Generator, so a checkpoint can save its state
and a resumed run draws exactly the batches the uninterrupted run would have.
"""

import os

import numpy as np
import torch

from data.common import load_meta
from data.tokenizers import CHAR, tokenizer_label
from plumbing.cli import UserError


def open_split(data_dir, name, split, tokenizer, block_size):
    """Memory-map <data_dir>/<name>/<split>.bin after checking it fits the model."""
    meta = load_meta(name, data_dir)
    if meta["tokenizer"] != tokenizer:
        chars = meta["tokenizer"].startswith(CHAR) or tokenizer.startswith(CHAR)  # nothing to re-prepare with
        fix = "use a dataset made with the model's characters" if chars else \
            f"run python data/{name}/prepare.py --tokenizer={tokenizer}"
        raise UserError(f"dataset '{name}' was prepared with the {tokenizer_label(meta['tokenizer'])} tokenizer but "
                        f"the model uses {tokenizer_label(tokenizer)}: {fix}")
    path = os.path.join(data_dir, name, f"{split}.bin")
    if not os.path.isfile(path):
        raise UserError(f"dataset '{name}' has no {split} split ({path}): run python data/{name}/prepare.py --force")
    n_tokens = os.path.getsize(path) // 2  # np.memmap refuses an empty file, so count first
    if n_tokens <= block_size + 1:
        raise UserError(f"dataset '{name}' {split} split has {n_tokens} tokens, too few for block_size={block_size}: "
                        f"prepare more text, or use a smaller --block-size (below {max(n_tokens - 1, 1)})")
    return np.memmap(path, dtype=np.uint16, mode="r")


def parse_replay(spec):
    """'english:0.05,german:0.05' -> [('english', 0.05), ('german', 0.05)]"""
    out = []
    for item in filter(None, spec.split(",")):
        name, _, frac = item.partition(":")
        try:
            out.append((name, float(frac)))
        except ValueError:
            raise UserError(f"--replay expects NAME:FRACTION, like english:0.05 (got '{item}')")
    if any(f < 0 for _, f in out) or sum(f for _, f in out) >= 1:
        raise UserError("--replay fractions must be >= 0 and add up to less than 1")
    return out


def draw_rows(gen, sources, n_rows, block_size):
    """Choose n_rows training sequences: (source index, start offset) each.

    sources = [(data, probability), ...]. All processes draw the same rows with
    the same generator and each takes its own share, so the data seen does not
    depend on how many processes there are, and resuming restores `gen`.
    """
    u = torch.rand(n_rows, generator=gen, dtype=torch.float64)
    r = torch.rand(n_rows, generator=gen, dtype=torch.float64)
    cum = np.cumsum([p for _, p in sources])
    which = np.minimum(np.searchsorted(cum, u.numpy(), side="right"), len(sources) - 1)
    starts = [int(ri * (len(sources[w][0]) - block_size - 1)) for w, ri in zip(which, r.tolist())]
    return list(zip(which.tolist(), starts))


def make_batch(rows, datas, block_size, device):
    x = torch.stack([torch.from_numpy(datas[w][s:s + block_size].astype(np.int64)) for w, s in rows])
    y = torch.stack([torch.from_numpy(datas[w][s + 1:s + 1 + block_size].astype(np.int64)) for w, s in rows])
    return x.to(device), y.to(device)  # (B, T) each


@torch.no_grad()
def seen_tokens(sources, vocab_size, previous=None):
    """Which token ids the model has been trained on (scale.py keeps the others trainable)."""
    seen = torch.zeros(vocab_size, dtype=torch.bool) if previous is None else previous.clone()
    for data, probability in sources:
        if probability > 0:
            seen |= torch.from_numpy(np.bincount(data, minlength=vocab_size)[:vocab_size] > 0)
    return seen
