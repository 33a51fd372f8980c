"""
export.py — take a grown, continued or merged model anywhere: a Hugging Face GPT-2 folder.

Place in the story: the last step. Every checkpoint whose architecture is GPT-2's
(the base, `depth`, `solar`, `hyperclone`, `ffn`, anything continued or merged
from them) becomes a folder that `transformers.GPT2LMHeadModel.from_pretrained`
loads, with the project's logits: `config.json` and `model.safetensors` in
GPT-2's Conv1D layout, and for the `gpt2` tokenizer GPT-2's own tokenizer files.

    python -m tools.export --ckpt=out/continued-upscaled/ckpt.pt --out=hf/grown

What changes on the way: Conv1D stores a weight as (in, out), the transpose of
nn.Linear's; a model without biases gets zero biases (GPT-2 always has them,
and adding zero changes nothing); `ffn`'s extra neurons are folded into one
wider MLP (`n_inner`), which is exactly what they compute. A SCALE two-stream
model is refused: its grouped LayerNorm and second head have no GPT-2 equivalent.
"""

import json
import os
import shutil

import torch

from checkpoint import check_finite, load_checkpoint, model_from_checkpoint
from plumbing.cli import UserError, parse_flags, parser, run_cli, writable_dir

CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def fold_ffn(sd, margs):
    """ffn growth as plain GPT-2: the new neurons are more rows of c_fc and more columns of c_proj."""
    sd, H = dict(sd), margs.get("n_inner") or 4 * margs["n_embd"]
    for i in range(margs["n_layer"]):
        p = f"transformer.h.{i}.mlp."
        sd[p + "c_fc.weight"] = torch.cat([sd[p + "c_fc.weight"], sd.pop(p + "c_fc_u.weight")])  # (H + Hu, C)
        if p + "c_fc.bias" in sd:
            sd[p + "c_fc.bias"] = torch.cat([sd[p + "c_fc.bias"], sd.pop(p + "c_fc_u.bias")])
        sd[p + "c_proj.weight"] = torch.cat([sd[p + "c_proj.weight"], sd.pop(p + "c_proj_12.weight")], dim=1)
    plain = {k: v for k, v in margs.items() if k not in ("n_embd_u", "n_inner_u", "adapt", "route")}
    return dict(plain, n_inner=H + margs["n_inner_u"]), sd


def gpt2_architecture(ckpt, path):
    """(model_args, state_dict) of a checkpoint as plain GPT-2, or one line saying why it is not."""
    margs, sd = dict(ckpt["model_args"]), ckpt["model"]
    if margs.get("n_embd_u"):
        raise UserError(f"{path} is a SCALE two-stream model: its grouped LayerNorm and second head have no "
                        "GPT-2 equivalent, so it cannot be exported as GPT2LMHeadModel")
    if margs.get("n_inner_u"):
        margs, sd = fold_ffn(sd, margs)
    return margs, sd


def hf_state_dict(margs, sd):
    """Our names and nn.Linear layout -> GPT2LMHeadModel's names and Conv1D layout, zero biases added."""
    out = {}
    for k, v in sd.items():
        if k == "lm_head.weight" and margs.get("tie_weights", True):
            continue  # tied: GPT2LMHeadModel makes lm_head the embedding itself
        out[k] = (v.t() if k.endswith(CONV1D) else v).float().contiguous().clone()  # no shared storage
    if not margs.get("bias", True):
        C, H = margs["n_embd"], margs.get("n_inner") or 4 * margs["n_embd"]
        sizes = {"ln_1": C, "ln_2": C, "attn.c_attn": 3 * C, "attn.c_proj": C, "mlp.c_fc": H, "mlp.c_proj": C}
        for i in range(margs["n_layer"]):
            for stem, n in sizes.items():
                out[f"transformer.h.{i}.{stem}.bias"] = torch.zeros(n)
        out["transformer.ln_f.bias"] = torch.zeros(C)
    return out


def hf_config(margs, tokenizer="gpt2"):
    """config.json of GPT2LMHeadModel for these model_args. "tokenizer" is ours (transformers keeps
    unknown keys as they are): it tells load_checkpoint which ids the model reads when it comes back."""
    return {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
            "vocab_size": margs["vocab_size"], "n_positions": margs["block_size"], "n_ctx": margs["block_size"],
            "n_embd": margs["n_embd"], "n_layer": margs["n_layer"], "n_head": margs["n_head"],
            "n_inner": margs.get("n_inner") or None, "activation_function": "gelu_new",
            "layer_norm_epsilon": 1e-5, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            "initializer_range": 0.02, "tie_word_embeddings": bool(margs.get("tie_weights", True)),
            "tokenizer": tokenizer,
            # GPT2Config's default ids (50256) lie outside a smaller vocabulary: say there are none
            **({"bos_token_id": 50256, "eos_token_id": 50256} if margs["vocab_size"] > 50256 else
               {"bos_token_id": None, "eos_token_id": None})}


def write_tokenizer(out_dir):
    """GPT-2's vocab.json and merges.txt (the files tiktoken's GPT-2 encoding is built from)."""
    from data.tokenizers import gpt2_files
    files = gpt2_files()
    shutil.copy(os.path.join(files, "encoder.json"), os.path.join(out_dir, "vocab.json"))
    shutil.copy(os.path.join(files, "vocab.bpe"), os.path.join(out_dir, "merges.txt"))
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump({"tokenizer_class": "GPT2Tokenizer", "model_max_length": 1024, "bos_token": "<|endoftext|>",
                   "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, f, indent=1)


def export(ckpt_path, out_dir):
    """Write the Hugging Face folder; return what was written."""
    from safetensors.torch import save_file
    ckpt = load_checkpoint(ckpt_path)
    check_finite(ckpt["model"], ckpt_path)
    model_from_checkpoint(ckpt, ckpt_path)  # the weights fit their model_args, or one line says why not
    margs, sd = gpt2_architecture(ckpt, ckpt_path)
    writable_dir(out_dir, "--out")
    save_file(hf_state_dict(margs, sd), os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(hf_config(margs, ckpt["tokenizer"]), f, indent=1)
    written = ["config.json", "model.safetensors"]
    if ckpt["tokenizer"] == "gpt2":
        write_tokenizer(out_dir)
        written += ["vocab.json", "merges.txt", "tokenizer_config.json"]
    return written, ckpt["tokenizer"]


def main(argv=None):
    p = parser("-m tools.export", "Write a checkpoint as a Hugging Face GPT-2 folder (config.json, model.safetensors).")
    p.add_argument("--ckpt", required=True, help="a checkpoint of this project whose architecture is GPT-2's")
    p.add_argument("--out", required=True, help="the folder to write")
    args = parse_flags(p, argv)
    written, tokenizer = export(args.ckpt, args.out)
    note = {"gpt2": "", "bytes": " (no tokenizer files: the bytes tokenizer's ids are UTF-8 bytes)"}.get(
        tokenizer, f" (no tokenizer files: id i is character i of {tokenizer[len('char:'):]!r})")
    print(f"wrote {args.out}/: {', '.join(written)}{note}; load it with "
          f"transformers.GPT2LMHeadModel.from_pretrained('{args.out}')")


if __name__ == "__main__":
    run_cli(main)
