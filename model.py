"""
model.py — GPT-2, small enough to read in one sitting.

Place in the story: this is the model everything else grows, trains and merges.
train.py pretrains it on English, scale.py makes it deeper or wider without
changing what it computes, merge.py averages several copies of it.

It follows GPT-2 (Radford et al. 2019) as nanoGPT writes it: pre-LayerNorm
blocks, a fused q,k,v projection `c_attn`, a tanh-GELU MLP, learned position
embeddings and an `lm_head` tied to `wte`. Parameter names are GPT-2's, so a
Hugging Face GPT-2 state dict loads after `convert_hf_gpt2` transposes its
Conv1D weights.

Three config fields exist only for grown models and default to plain GPT-2:
`n_inner` (a wider MLP), `ln_groups` (a LayerNorm that normalises groups of
coordinates separately, for SCALE) and `tie_weights=False` (an untied head).

Every checkpoint the project writes (base, upscaled, continued, merged) loads
with one recipe:

    ckpt = torch.load(path, weights_only=True)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
"""

import math
import os
import sys
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class GPTConfig:
    block_size: int = 128   # longest context the model can see
    vocab_size: int = 256   # 256 for the byte tokenizer, 50257 for GPT-2's BPE
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True       # biases in Linear and LayerNorm, as in GPT-2
    n_inner: int = 0        # MLP hidden width; 0 means GPT-2's 4 * n_embd
    ln_groups: Optional[list] = None  # e.g. [128, 64]: normalise coordinates 0..127 and 128..191 separately
    tie_weights: bool = True          # lm_head shares its weight with wte

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise UserError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.ln_groups is not None and sum(self.ln_groups) != self.n_embd:
            raise UserError(f"ln_groups {self.ln_groups} do not add up to n_embd={self.n_embd}")

    @property
    def mlp_width(self):
        return self.n_inner or 4 * self.n_embd


class LayerNorm(nn.Module):
    """LayerNorm with optional bias (PyTorch's has no bias=False before 2.1).

    With `groups`, the coordinates are split into consecutive groups and each
    group is normalised with its own mean and variance. SCALE needs this: the
    old coordinates of a widened model must be normalised exactly as in the
    base model, whatever the new coordinates hold.
    """

    def __init__(self, ndim, bias, groups=None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None
        self.groups = list(groups) if groups else [ndim]

    def forward(self, x):
        if len(self.groups) == 1:
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)
        parts = []
        for x_g, w_g, b_g in zip(x.split(self.groups, dim=-1),
                                 self.weight.split(self.groups),
                                 self.bias.split(self.groups) if self.bias is not None else [None] * len(self.groups)):
            parts.append(F.layer_norm(x_g, w_g.shape, w_g, b_g, 1e-5))
        return torch.cat(parts, dim=-1)


class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v fused
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side again
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.mlp_width, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's GELU
        self.c_proj = nn.Linear(config.mlp_width, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.bias, config.ln_groups)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, config.bias, config.ln_groups)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, config.bias, config.ln_groups),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:
            self.transformer.wte.weight = self.lm_head.weight  # one tensor, two names
        self.apply(self._init_weights)
        # GPT-2 scales the init of the projections into the residual stream by 1/sqrt(2 * n_layer)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, trainable_only=False):
        """Parameters counted once each (a tied wte/lm_head is one tensor)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def forward(self, idx, targets=None):
        B, T = idx.size()
        if T > self.config.block_size:
            raise UserError(f"sequence of length {T} is longer than block_size={self.config.block_size}")
        pos = torch.arange(0, T, dtype=torch.long, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        logits = self.lm_head(x)  # (B, T, vocab_size)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None):
        """Continue idx (B, T) by max_new_tokens tokens.

        temperature 0 means greedy decoding; top_k keeps only the k likeliest tokens.
        """
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -self.config.block_size:]  # the model sees at most block_size tokens
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :].float()  # (B, vocab_size): only the last position predicts
            if temperature == 0:
                idx_next = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                probs = F.softmax(logits, dim=-1)
                idx_next = torch.multinomial(probs, num_samples=1, generator=generator)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


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


# ----------------------------------------------------------------------------
# Checkpoints and user-facing errors, shared by every script

class UserError(Exception):
    """A mistake the user can fix (bad flag, missing file, wrong checkpoint).

    Command-line entry points print it as one line and exit with status 1;
    every other exception is a bug and keeps its traceback.
    """


def run_cli(main):
    """Run main(); print a UserError as one line and exit 1 instead of a traceback."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


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


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint safely (weights_only: a downloaded file cannot run code)
    and check that it is one of ours before anyone touches it."""
    if not os.path.isfile(path):
        raise UserError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
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
