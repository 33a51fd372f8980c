"""
model_scale.py — SCALE's two-stream GPT: model.py plus a second residual stream.

Place in the story: `scale.py --method=scale` (SCALE, Lee et al. 2025) grows the
base into this model, and `--method=ffn` into its one-stream special case. Read
model.py first: every class here is the class of the same role there, plus
what SCALE adds, and nothing else changes.

SCALE widens every linear map to the block form

    [y ; y_u] = [[W, W12], [W21, W22]] [x ; x_u]

with the base's W untouched. The blocks are separate tensors, so the base keeps
its GPT-2 names and shapes:
    c_fc       W            old inputs -> old outputs (the base's own weight)
    c_fc_u     [W21 W22]    both streams -> new outputs (the new rows)
    c_fc_12    W12          new stream -> old outputs; present only with `adapt`
The second stream has its own embedding columns (`wte_u`, `wpe_u`), its own
LayerNorms (`ln_1_u`, `ln_2_u`, `ln_f_u`: grouped LayerNorm, so the old
coordinates are normalised exactly as in the base) and its own head columns
(`lm_head_u`, whose logits are added to the base's). SCALE-Route adds a
`router`: a per-token gate g in (0, 1) that keeps the base's logits (g = 1) or
uses the adaptation (g = 0). With a frozen base and no W12, the old stream *is*
the base model: training only pays for the new stream.

`ffn` growth (extra MLP neurons next to the base's, writing into the one stream)
is the same block form with no second stream: n_inner_u > 0, n_embd_u = 0.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from model import GPT, MLP, CausalSelfAttention, GPTConfig, LayerNorm, lm_loss, positions


@dataclass
class ScaleConfig(GPTConfig):
    n_embd_u: int = 0       # width of the second residual stream; its heads have the base's head size
    n_inner_u: int = 0      # MLP neurons added next to the base's
    adapt: bool = False     # the W12 blocks exist: the new part may write into the old stream
    route: bool = False     # a per-token gate between the base's head and the adapted head

    def __post_init__(self):
        super().__post_init__()
        if self.n_embd_u % self.head_size != 0:
            raise ValueError(f"n_embd_u={self.n_embd_u} is not a multiple of the head size {self.head_size}")
        if self.route and not self.n_embd_u:
            raise ValueError("route needs a second stream (n_embd_u > 0)")


def block_linear(base, new, w12, x, x_u):
    """SCALE's block form [y ; y_u] = [[W, W12], [W21, W22]] [x ; x_u].

    base is W (old inputs -> old outputs), new is [W21 W22] (both streams -> new
    outputs), w12 is W12 (new inputs -> old outputs); None means the block is
    absent (zero), and x_u None means there is no second stream yet.
    """
    y = base(x) if w12 is None else base(x) + w12(x_u)
    y_u = None if new is None else new(x if x_u is None else torch.cat([x, x_u], dim=-1))
    return y, y_u


def maybe(f, x):
    return None if x is None else f(x)


class ScaleAttention(CausalSelfAttention):
    """The base's heads (c_attn, c_proj), plus new heads that read both streams."""

    def __init__(self, config):
        super().__init__(config)
        C, Cu, bias = config.n_embd, config.n_embd_u, config.bias
        self.c_attn_u = nn.Linear(C + Cu, 3 * Cu, bias=bias) if Cu else None  # new heads read both streams
        self.c_proj_u = nn.Linear(C + Cu, Cu, bias=bias) if Cu else None      # the new stream reads every head
        self.c_attn_12 = nn.Linear(Cu, 3 * C, bias=False) if Cu and config.adapt else None
        self.c_proj_12 = nn.Linear(Cu, C, bias=False) if Cu and config.adapt else None

    def forward(self, x, x_u, cache=None):
        qkv, qkv_u = block_linear(self.c_attn, self.c_attn_u, self.c_attn_12, x, x_u)
        y = self.attend(qkv, None if cache is None else cache.setdefault("old", {}))  # the base's heads
        y_u = None if qkv_u is None else self.attend(qkv_u, None if cache is None else cache.setdefault("new", {}))
        y, y_u = block_linear(self.c_proj, self.c_proj_u, self.c_proj_12, y, y_u)
        return self.resid_dropout(y), maybe(self.resid_dropout, y_u)


class ScaleMLP(MLP):
    """The base's neurons (c_fc, c_proj), plus new neurons that read both streams."""

    def __init__(self, config):
        super().__init__(config)
        C, Cu, H, Hu, bias = config.n_embd, config.n_embd_u, config.mlp_width, config.n_inner_u, config.bias
        self.c_fc_u = nn.Linear(C + Cu, Hu, bias=bias) if Hu else None
        self.c_proj_u = nn.Linear(H + Hu, Cu, bias=bias) if Cu else None  # the new stream reads every neuron
        self.c_fc_12 = nn.Linear(Cu, H, bias=False) if Cu and config.adapt else None
        self.c_proj_12 = nn.Linear(Hu, C, bias=False) if Hu and config.adapt else None

    def forward(self, x, x_u):
        h, h_u = block_linear(self.c_fc, self.c_fc_u, self.c_fc_12, x, x_u)
        h, h_u = self.gelu(h), maybe(self.gelu, h_u)
        y, y_u = block_linear(self.c_proj, self.c_proj_u, self.c_proj_12, h, h_u)
        return self.dropout(y), maybe(self.dropout, y_u)


class ScaleBlock(nn.Module):
    """model.Block on two streams; each stream normalises its own coordinates."""

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.bias)
        self.attn = ScaleAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, config.bias)
        self.mlp = ScaleMLP(config)
        if config.n_embd_u:
            self.ln_1_u = LayerNorm(config.n_embd_u, config.bias)
            self.ln_2_u = LayerNorm(config.n_embd_u, config.bias)

    def forward(self, x, x_u, cache=None):
        if x_u is None:  # ffn: one stream, a wider MLP
            x = x + self.attn(self.ln_1(x), None, cache)[0]
            return x + self.mlp(self.ln_2(x), None)[0], None
        a, a_u = self.attn(self.ln_1(x), self.ln_1_u(x_u), cache)
        x, x_u = x + a, x_u + a_u
        m, m_u = self.mlp(self.ln_2(x), self.ln_2_u(x_u))
        return x + m, x_u + m_u


class ScaleGPT(GPT):
    """model.GPT with the second stream. Sampling, counting and initialisation are GPT's."""

    def __init__(self, config):
        nn.Module.__init__(self)  # GPT's modules in GPT's order, then the second stream's:
        self.config = config      # the order decides which random numbers each new weight gets
        C, Cu, V = config.n_embd, config.n_embd_u, config.vocab_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, C),
            wpe=nn.Embedding(config.block_size, C),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([ScaleBlock(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(C, config.bias),
        ))
        self.lm_head = nn.Linear(C, V, bias=False)
        if Cu:  # the second stream: its own embedding columns, final LayerNorm and head columns
            self.transformer.wte_u = nn.Embedding(V, Cu)
            self.transformer.wpe_u = nn.Embedding(config.block_size, Cu)
            self.transformer.ln_f_u = LayerNorm(Cu, config.bias)
            self.lm_head_u = nn.Linear(Cu, V, bias=False)
        if config.route:  # SCALE-Route: reads both streams, says how much of the adaptation to use
            self.router = nn.Linear(C + Cu, 1)
        if config.tie_weights:
            self.transformer.wte.weight = self.lm_head.weight
            if Cu:
                self.transformer.wte_u.weight = self.lm_head_u.weight
        self.init_weights()

    def init_weights(self):
        """GPT's initialisation; the new stream's output projections are scaled like the base's."""
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith(("c_proj.weight", "c_proj_u.weight")):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def flops_per_token(self):
        """GPT.flops_per_token over both streams: the new embedding columns are look-ups too."""
        cfg, tr = self.config, self.transformer
        lookups = [tr.wpe] + ([] if cfg.tie_weights else [tr.wte]) + \
                  ([tr.wpe_u] + ([] if cfg.tie_weights else [tr.wte_u]) if cfg.n_embd_u else [])
        n = self.num_params() - sum(e.weight.numel() for e in lookups)
        return 6 * n + 12 * cfg.n_layer * (cfg.n_embd + cfg.n_embd_u) * cfg.block_size

    def gate(self, h, h_u):
        """SCALE-Route's gate (B, T, 1): 1 keeps the base's logits, 0 uses the adaptation fully."""
        return torch.sigmoid(self.router(torch.cat([h, h_u], dim=-1)))

    def forward(self, idx, targets=None, kv_cache=None):
        """GPT.forward on two streams: the logits are the base's plus what the new stream adds."""
        tr = self.transformer
        start = kv_cache[0]["old"]["k"].size(2) if kv_cache and kv_cache[0] else 0  # positions already cached
        pos = positions(start, idx.size(1), self.config.block_size, idx.device)  # (T,)
        x = tr.drop(tr.wte(idx) + tr.wpe(pos))  # (B, T, C)
        x_u = tr.drop(tr.wte_u(idx) + tr.wpe_u(pos)) if self.config.n_embd_u else None  # (B, T, Cu)
        for i, block in enumerate(tr.h):
            x, x_u = block(x, x_u, None if kv_cache is None else kv_cache[i])
        h = tr.ln_f(x)
        logits = self.lm_head(h)  # (B, T, vocab_size); with a frozen base: the base model's logits
        if x_u is not None:
            h_u = tr.ln_f_u(x_u)
            delta = self.lm_head_u(h_u)  # what the second stream adds to the logits
            if self.config.route:
                delta = (1 - self.gate(h, h_u)) * delta
            logits = logits + delta
        return logits, lm_loss(logits, targets)


SCALE_FIELDS = ("n_embd_u", "n_inner_u", "adapt", "route")


def config_of(model_args):
    """GPTConfig, or ScaleConfig when model_args have a second stream or extra neurons.
    Checkpoints written before this file existed list the SCALE fields as 0 / False for
    plain models; those are plain GPT-2."""
    if any(model_args.get(k) for k in SCALE_FIELDS):
        return ScaleConfig(**model_args)
    return GPTConfig(**{k: v for k, v in model_args.items() if k not in SCALE_FIELDS})


def new_model(model_args):
    """A freshly initialised GPT or ScaleGPT for these model_args (a checkpoint's, or grown ones)."""
    config = config_of(model_args)
    return ScaleGPT(config) if isinstance(config, ScaleConfig) else GPT(config)
