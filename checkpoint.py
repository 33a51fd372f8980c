"""
checkpoint.py — models on disk: the format, atomic writes, safe reads, the one loading recipe, GPT-2's weights.

Place in the story: every stage hands the next one a checkpoint (base -> upscaled
-> continued -> merged). This file is the format's one owner. A checkpoint is a
dict; `make_checkpoint` builds it, and these are its keys:

    model         state dict (a tied head is stored under both names, one tensor)
    model_args    the config's fields (GPTConfig, or ScaleConfig for SCALE and ffn growth):
                  new_model(model_args) (model_scale.py) has these weights
    tokenizer     "bytes", "gpt2" or "char:<its characters>": which ids the model reads and writes
    history       list of stages, oldest first ({"stage": "train"|"scale"|"merge", ...})
    lineage       ids of every checkpoint this one descends from (its own "id" last),
                  so merge.py can tell a model that was not continued from --base
    frozen        {parameter name: True or a bool mask (True = frozen)}: what train.py holds fixed;
                  a merge inherits its base's
    seen_tokens   bool (vocab_size,): token ids any training data of the lineage contained
    added         names of the tensors a growth added next to a frozen base (train.py's --new-lr-mult)
    merge         (merged checkpoints) the merge's settings
    optimizer, iter_num, tokens_seen, elapsed_s, config, rng, threads
                  (train.py's checkpoints) what an exact resume needs

A checkpoint is written to a temporary file and renamed, so Ctrl-C never leaves
half a file; it is read with weights_only=True, so a downloaded file cannot run
code; and one function turns it back into a GPT with a one-line error when it
does not fit:

    model = model_from_checkpoint(load_checkpoint(path), path)
"""

import hashlib
import json
import os
import uuid
import zipfile
from dataclasses import asdict

import torch

from data.tokenizers import CHAR, TOKENIZERS, read_nanogpt_meta, tokenizer_from_flag, tokenizer_label, tokenizer_size
from model_scale import config_of, new_model
from plumbing.cli import UserError


def make_checkpoint(model_state, model_args, tokenizer, history, parents=(), own_id=None, **extra):
    """The dict every script saves. parents: the checkpoints this one was made from (their
    lineage is inherited, so descent can be checked later); extra: the optional keys above."""
    lineage = []
    for parent in parents:
        lineage += [i for i in parent.get("lineage", []) if i not in lineage]
    lineage.append(own_id or uuid.uuid4().hex[:16])
    return {"model": model_state, "model_args": dict(model_args), "tokenizer": tokenizer,
            "history": list(history), "lineage": lineage, **extra}


def descends_from(ckpt, ancestor):
    """True when ckpt was made (by training, growing or merging) from ancestor. Checkpoints
    written before lineage existed say nothing, so they are given the benefit of the doubt."""
    if not ckpt.get("lineage") or not ancestor.get("lineage"):
        return True
    return ancestor["lineage"][-1] in ckpt["lineage"]


def tie_head(sd, model_args):
    """A state dict with the tied head filled in: lm_head (and SCALE's lm_head_u) is the embedding."""
    if not model_args.get("tie_weights", True):
        return sd
    sd = dict(sd, **{"lm_head.weight": sd["transformer.wte.weight"]})
    if "transformer.wte_u.weight" in sd:
        sd["lm_head_u.weight"] = sd["transformer.wte_u.weight"]
    return sd


def untie_head(sd, model_args):
    """The state dict with a tied head stored once, as the embedding: what growth and merging work on."""
    if not model_args.get("tie_weights", True):
        return sd
    return {k: v for k, v in sd.items() if k not in ("lm_head.weight", "lm_head_u.weight")}


def check_finite(state_dict, what):
    """NaN or inf in a weight poisons every output: refuse to read or write such a model."""
    for name, t in state_dict.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise UserError(f"{what} has non-finite values (NaN or inf) in {name}: refusing to use it "
                            "(was it trained with too high a learning rate, or merged with extreme settings?)")


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


def load_checkpoint(path, map_location="cpu", mmap=False, tokenizer=None):
    """Load a checkpoint safely (weights_only: a downloaded file cannot run code) and check
    that it is one of ours, tokenizer included, before anyone touches it. mmap=True reads
    tensors from the file only when they are used (merge.py streams that way). `tokenizer`
    (a --tokenizer flag's value) names the tokenizer of a checkpoint that does not say."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
        return from_hf_folder(path, tokenizer)
    if not os.path.isfile(path):
        raise UserError(f"no checkpoint at {path}" + (" (it is a folder)" if os.path.isdir(path) else ""))
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:
        raise UserError(unreadable(path, e))
    if not isinstance(ckpt, dict) or "model" not in ckpt or "model_args" not in ckpt:
        raise UserError(f"{path} is not a model checkpoint of this project (no 'model' and 'model_args' entries)")
    if "tokenizer" not in ckpt and "iter_num" in ckpt:  # nanoGPT's out/ckpt.pt
        ckpt = from_nanogpt(ckpt, path, tokenizer)
    elif "tokenizer" not in ckpt and tokenizer:  # a bare {model, model_args}
        ckpt = dict(ckpt, tokenizer=fitting_tokenizer(tokenizer_from_flag(tokenizer), ckpt, path))
    if "tokenizer" not in ckpt:
        raise UserError(f"{path} does not say which tokenizer it was trained with: pass --tokenizer=bytes, "
                        "--tokenizer=gpt2 or --tokenizer=PATH/meta.pkl (a nanoGPT character vocabulary)")
    return ckpt


def known_tokenizer(tokenizer, path):
    """A tokenizer name read from a file: one of ours, or one line."""
    if not isinstance(tokenizer, str) or not (tokenizer in TOKENIZERS or tokenizer.startswith(CHAR)):
        raise UserError(f"{path} names an unknown tokenizer {str(tokenizer)[:30]!r}: pass --tokenizer")
    return tokenizer


def fitting_tokenizer(tokenizer, ckpt, path):
    """A tokenizer named from outside the checkpoint, if the model has an embedding row for each of its ids."""
    n_vocab, vocab = tokenizer_size(tokenizer), ckpt["model_args"].get("vocab_size", 0)
    if n_vocab > vocab:
        raise UserError(f"{path}: the {tokenizer_label(tokenizer)} tokenizer has {n_vocab:,} ids but the model only "
                        f"{vocab:,}: pass the --tokenizer it was trained with")
    return tokenizer


def file_id(path):
    """A stable id for a file made elsewhere (the same file gives the same id at every load)."""
    st = os.stat(path)
    return hashlib.sha256(f"{os.path.abspath(path)}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]


def nanogpt_tokenizer(ckpt, path, flag):
    """The tokenizer of a nanoGPT checkpoint: --tokenizer if given; GPT-2's BPE for its vocabulary of
    50,257 (or 50,304, padded for speed); else the meta.pkl of the dataset it trained on, where
    nanoGPT keeps it (out-X/ckpt.pt beside data/<dataset>/meta.pkl)."""
    vocab = ckpt["model_args"].get("vocab_size")
    if flag:
        return tokenizer_from_flag(flag)
    if vocab in (50257, 50304):
        return "gpt2"
    dataset = (ckpt.get("config") or {}).get("dataset", "")
    meta = os.path.join(os.path.dirname(os.path.abspath(path)), "..", "data", str(dataset), "meta.pkl")
    if dataset and os.path.isfile(meta):
        return read_nanogpt_meta(meta)
    raise UserError(f"{path} is a nanoGPT checkpoint with a {vocab}-token vocabulary and no meta.pkl at "
                    f"{os.path.normpath(meta)}: pass --tokenizer=PATH/meta.pkl (nanoGPT's data/<dataset>/meta.pkl)")


def from_nanogpt(ckpt, path, tokenizer=None):
    """A nanoGPT checkpoint (model, model_args, iter_num, config) as one of ours, with its tokenizer
    (`nanogpt_tokenizer`); torch.compile's "_orig_mod." prefixes are dropped."""
    tokenizer = fitting_tokenizer(nanogpt_tokenizer(ckpt, path, tokenizer), ckpt, path)
    model = {k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()}
    margs = {k: v for k, v in ckpt["model_args"].items() if k in ("n_layer", "n_head", "n_embd", "block_size",
                                                                   "bias", "vocab_size", "dropout")}
    if "lm_head.weight" not in model:
        model["lm_head.weight"] = model["transformer.wte.weight"]
    return make_checkpoint(model, margs, tokenizer, [{"stage": "import", "from": path, "format": "nanoGPT",
                                                   "iter_num": ckpt["iter_num"]}], own_id=file_id(path))


def from_hf_folder(path, tokenizer=None):
    """A Hugging Face GPT-2 folder (config.json with model.safetensors, or pytorch_model.bin read
    with weights_only) as one of our checkpoints: with GPT-2's tokenizer, or the one tools/export.py
    wrote into config.json, or --tokenizer."""
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    if config.get("model_type") != "gpt2":
        raise UserError(f"{path} holds a {config.get('model_type')} model: only GPT-2 folders (model_type gpt2) load here")
    st, bin_ = os.path.join(path, "model.safetensors"), os.path.join(path, "pytorch_model.bin")
    try:
        if os.path.isfile(st):
            from safetensors.torch import load_file
            weights = load_file(st)
        elif os.path.isfile(bin_):
            weights = torch.load(bin_, map_location="cpu", weights_only=True)
        else:
            raise UserError(f"{path} has a config.json but no model.safetensors or pytorch_model.bin")
    except UserError:
        raise
    except Exception as e:
        raise UserError(unreadable(path, e))
    model_args, sd = convert_hf_gpt2(weights)
    model_args.update(n_head=config["n_head"], block_size=config.get("n_positions", model_args["block_size"]),
                      tie_weights=bool(config.get("tie_word_embeddings", True)))
    if not model_args["tie_weights"] and "lm_head.weight" in weights:
        sd["lm_head.weight"] = weights["lm_head.weight"]
    if tokenizer or "tokenizer" not in config:  # named now, or assumed: it must fit the embedding
        tokenizer = fitting_tokenizer(tokenizer_from_flag(tokenizer) if tokenizer else "gpt2",
                                      {"model_args": model_args}, path)
    else:  # tools/export.py wrote the checkpoint's own
        tokenizer = known_tokenizer(config["tokenizer"], path)
    ckpt = make_checkpoint(sd, model_args, tokenizer,
                           [{"stage": "import", "from": path, "format": "huggingface"}],
                           own_id=file_id(os.path.join(path, "config.json")))
    model_from_checkpoint(ckpt, path)  # shapes that do not fit the config: one line here
    return ckpt


def unreadable(path, e):
    """Why torch.load refused a file, in words a user can act on."""
    text = str(e)
    if "Unsupported global" in text or "GLOBAL " in text:  # a pickled class or function, not a tensor
        return (f"{path} holds Python objects, not only tensors: refused, because loading it could run code "
                "(it is not a checkpoint of this project)")
    if isinstance(e, (zipfile.BadZipFile, EOFError, OSError)) or "zip archive" in text or "central directory" in text:
        return f"{path} is truncated or not a PyTorch file (an interrupted copy?): copy or train it again"
    first_line = (text.strip().splitlines() or [type(e).__name__])[0]
    return f"{path} is not a readable checkpoint ({first_line[:120]})"


def model_from_checkpoint(ckpt, path="checkpoint"):
    """The one recipe, with a clear error when the weights do not fit the config."""
    try:
        model = new_model(ckpt["model_args"])
    except TypeError as e:
        raise UserError(f"{path} has model_args this version does not understand ({e})")
    except ValueError as e:  # sizes that make no model (model.py's own checks)
        raise UserError(f"{path}: {e}")
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


def check_compatible(base_ckpt, ckpts, paths, base_path):
    """Same architecture, tokenizer, tensor names and shapes everywhere, or one clear line."""
    for ckpt, path in zip(ckpts, paths):
        if ckpt.get("tokenizer") != base_ckpt.get("tokenizer"):
            raise UserError(f"{path} uses the {ckpt.get('tokenizer')} tokenizer, {base_path} {base_ckpt.get('tokenizer')}")
        a, b = asdict(config_of(base_ckpt["model_args"])), asdict(config_of(ckpt["model_args"]))
        a.pop("dropout"), b.pop("dropout")
        if a != b:
            diff = ", ".join(f"{k} {b[k]} vs {a[k]}" for k in a if a[k] != b[k])
            raise UserError(f"{path} has a different architecture from {base_path} ({diff}): "
                            "merging needs the common ancestor as --base (for grown models, the upscaled "
                            "checkpoint they were continued from, not the small base)")
        for name in base_ckpt["model"].keys() | ckpt["model"].keys():
            x, y = base_ckpt["model"].get(name), ckpt["model"].get(name)
            if x is None or y is None or x.shape != y.shape:
                shape = lambda t: "missing" if t is None else tuple(t.shape)
                raise UserError(f"tensor {name}: {shape(y)} in {path} but {shape(x)} in {base_path}")


def tensors_to_merge(margs, state_dict):
    """Every tensor once: a tied head is the embedding under a second name."""
    tied = {"lm_head.weight", "lm_head_u.weight"} if margs.get("tie_weights", True) else set()
    return [n for n in state_dict if n not in tied]
