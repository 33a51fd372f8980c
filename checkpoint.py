"""
checkpoint.py — models on disk: atomic writes, safe reads, the one loading recipe, GPT-2's own weights.

Place in the story: every stage hands the next one a checkpoint (base -> upscaled
-> continued -> merged), a dict with the weights ("model"), the architecture
("model_args"), the tokenizer and what was done to it ("history", "frozen", ...).
A checkpoint is written to a temporary file and renamed, so Ctrl-C never leaves
half a file; it is read with weights_only=True, so a downloaded file cannot run
code; and one function turns it back into a GPT with a one-line error when it
does not fit.
"""

import os

import torch

from model import GPT, GPTConfig, UserError


def save_checkpoint(ckpt, path):
    """Write atomically: a crash or Ctrl-C mid-write leaves the old file intact."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    try:
        torch.save(ckpt, tmp)
        os.replace(tmp, path)  # atomic on POSIX and Windows
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path, map_location="cpu", mmap=False):
    """Load a checkpoint safely (weights_only: a downloaded file cannot run code)
    and check that it is one of ours before anyone touches it. mmap=True reads
    tensors from the file only when they are used (merge.py streams that way)."""
    if not os.path.isfile(path):
        raise UserError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{path} is not a readable checkpoint ({first_line[:120]})")
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        raise UserError(f"{path} is not a model checkpoint of this project (no 'model' and 'model_args' entries)")
    return ckpt


def model_from_checkpoint(ckpt, path="checkpoint"):
    """The one recipe, with a clear error when the weights do not fit the config."""
    try:
        model = GPT(GPTConfig(**ckpt["model_args"]))
    except TypeError as e:
        raise UserError(f"{path} has model_args this version does not understand ({e})")
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        detail = [line.strip() for line in str(e).splitlines() if line.strip()][1:2] or [""]
        raise UserError(f"{path}: weights do not match its model_args ({detail[0][:160]})")
    return model


# ----------------------------------------------------------------------------
# GPT-2 weights in the Hugging Face layout

def convert_hf_gpt2(hf_state_dict):
    """Turn a Hugging Face GPT2LMHeadModel state dict into (model_args, state_dict).

    Hugging Face stores c_attn, c_proj and c_fc as Conv1D, whose weight is the
    transpose of nn.Linear's: (in, out) instead of (out, in). Everything else
    already has our names. Usage with `transformers` installed:
        model_args, sd = convert_hf_gpt2(GPT2LMHeadModel.from_pretrained("gpt2").state_dict())
    """
    sd = {k.removeprefix("transformer."): v for k, v in hf_state_dict.items()}
    sd = {k: v for k, v in sd.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}  # causal-mask buffers
    out = {}
    for k, v in sd.items():
        if k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            v = v.t()
        out[k if k.startswith("lm_head") else "transformer." + k] = v.contiguous()
    if "lm_head.weight" not in out:
        out["lm_head.weight"] = out["transformer.wte.weight"]
    n_layer = 1 + max(int(k.split(".")[2]) for k in out if k.startswith("transformer.h."))
    vocab_size, n_embd = out["transformer.wte.weight"].shape
    model_args = dict(block_size=out["transformer.wpe.weight"].shape[0], vocab_size=vocab_size,
                      n_layer=n_layer, n_head=n_embd // 64, n_embd=n_embd, dropout=0.0,
                      bias="transformer.ln_f.bias" in out, n_inner=out["transformer.h.0.mlp.c_fc.weight"].shape[0],
                      tie_weights=True)
    return model_args, out
