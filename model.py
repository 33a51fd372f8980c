"""
model.py — GPT-2, small enough to read in one sitting.

Place in the story: this is the model everything else grows, trains and merges.
train.py pretrains it on English, scale.py makes it deeper or wider without
changing what it computes, merge.py averages several copies of it.

It follows GPT-2 (Radford et al. 2019) as nanoGPT writes it: pre-LayerNorm
blocks, a fused q,k,v projection `c_attn`, a tanh-GELU MLP, learned position
embeddings and an `lm_head` tied to `wte`. Parameter names are GPT-2's, so a
Hugging Face GPT-2 state dict loads after `convert_hf_gpt2` (checkpoint.py)
transposes its Conv1D weights.

Grown models need three more things, all off by default:
- `tie_weights=False`: an untied head (HyperCloning unties it).
- SCALE's second residual stream (`n_embd_u`, `n_inner_u`, `adapt`, `route`).
  SCALE widens every linear map to the block form
      [y ; y_u] = [[W, W12], [W21, W22]] [x ; x_u]
  with the base's W untouched. We store the blocks as separate tensors: the
  base keeps its GPT-2 names and shapes (`c_fc`), the new rows [W21 W22] are
  `c_fc_u`, and W12 (new stream -> old outputs) is `c_fc_12`, present only when
  the new part may write into the old stream (`adapt`). Each stream has its own
  LayerNorm (`ln_1`, `ln_1_u`), so the old coordinates are normalised exactly as
  in the base model. With a frozen base and no W12 the old stream *is* the base
  model, computed without autograd: training only pays for the new stream.

Every checkpoint the project writes (base, upscaled, continued, merged) loads
with one recipe (checkpoint.py writes and reads them):

    ckpt = torch.load(path, weights_only=True)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict(ckpt["model"])
"""

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from cli import UserError


@dataclass
class GPTConfig:
    block_size: int = 128   # longest context the model can see
    vocab_size: int = 256   # 256 for the byte tokenizer, 50257 for GPT-2's BPE
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True       # biases in Linear and LayerNorm, as in GPT-2
    n_inner: int = 0        # MLP width; 0 means GPT-2's 4 * n_embd
    tie_weights: bool = True  # lm_head shares its weight with wte
    # SCALE (scale.py --method=scale / ffn); zero / False is plain GPT-2
    n_embd_u: int = 0       # width of the second residual stream; its heads have the base's head size
    n_inner_u: int = 0      # MLP neurons added next to the base's
    adapt: bool = False     # the W12 blocks exist: the new part may write into the old stream
    route: bool = False     # a per-token gate between the base's head and the adapted head

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise UserError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_embd_u % self.head_size != 0:
            raise UserError(f"n_embd_u={self.n_embd_u} is not a multiple of the head size {self.head_size}")
        if self.route and not self.n_embd_u:
            raise UserError("route needs a second stream (n_embd_u > 0)")

    @property
    def head_size(self):
        return self.n_embd // self.n_head

    @property
    def mlp_width(self):
        return self.n_inner or 4 * self.n_embd


class LayerNorm(nn.Module):
    """LayerNorm with optional bias (PyTorch's has no bias=False before 2.1)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


def block_linear(base, new, w12, x, x_u):
    """SCALE's block form [y ; y_u] = [[W, W12], [W21, W22]] [x ; x_u].

    base is W (old inputs -> old outputs), new is [W21 W22] (both streams -> new
    outputs), w12 is W12 (new inputs -> old outputs); None means the block is
    absent (zero). For plain GPT-2 this is just y = base(x).
    """
    y = base(x) if w12 is None else base(x) + w12(x_u)
    y_u = None if new is None else new(x if x_u is None else torch.cat([x, x_u], dim=-1))
    return y, y_u


def maybe(f, x):
    return None if x is None else f(x)


class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        C, Cu, bias = config.n_embd, config.n_embd_u, config.bias
        self.c_attn = nn.Linear(C, 3 * C, bias=bias)  # q, k, v fused
        self.c_proj = nn.Linear(C, C, bias=bias)
        # SCALE: new heads read both streams; the new stream reads every head
        self.c_attn_u = nn.Linear(C + Cu, 3 * Cu, bias=bias) if Cu else None
        self.c_proj_u = nn.Linear(C + Cu, Cu, bias=bias) if Cu else None
        self.c_attn_12 = nn.Linear(Cu, 3 * C, bias=False) if Cu and config.adapt else None
        self.c_proj_12 = nn.Linear(Cu, C, bias=False) if Cu and config.adapt else None
        self.head_size = config.head_size
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def attend(self, qkv, cache=None):
        """Causal attention of the heads packed in qkv (B, T, 3 * width) -> (B, T, width).

        cache (a dict) is for generation: keys and values of earlier positions are kept
        there, so each new token computes its own q, k, v only and attends to all of them.
        """
        B, T, three_width = qkv.size()
        q, k, v = qkv.split(three_width // 3, dim=2)
        q = q.view(B, T, -1, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, -1, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, -1, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        if cache is not None:
            if "k" in cache:  # one new token attends to every cached position: no mask needed
                assert T == 1, "after the prompt, feed one token at a time"
                k, v = torch.cat([cache["k"], k], dim=2), torch.cat([cache["v"], v], dim=2)  # (B, nh, S, hs)
            cache["k"], cache["v"] = k, v
        if cache is not None and T == 1:  # one query: written out, as the fused CPU kernel is slow for it
            y = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(self.head_size), dim=-1) @ v  # (B, nh, 1, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1,
                                               dropout_p=self.attn_dropout if self.training else 0.0)
        return y.transpose(1, 2).contiguous().view(B, T, three_width // 3)  # (B, T, width): heads side by side

    def forward(self, x, x_u=None, cache=None):
        qkv, qkv_u = block_linear(self.c_attn, self.c_attn_u, self.c_attn_12, x, x_u)
        y = self.attend(qkv, None if cache is None else cache.setdefault("old", {}))  # the base's heads
        y_u = None if qkv_u is None else self.attend(qkv_u, None if cache is None else cache.setdefault("new", {}))
        y, y_u = block_linear(self.c_proj, self.c_proj_u, self.c_proj_12, y, y_u)
        return self.resid_dropout(y), maybe(self.resid_dropout, y_u)


class MLP(nn.Module):

    def __init__(self, config):
        super().__init__()
        C, Cu, H, Hu, bias = config.n_embd, config.n_embd_u, config.mlp_width, config.n_inner_u, config.bias
        self.c_fc = nn.Linear(C, H, bias=bias)
        self.gelu = nn.GELU(approximate="tanh")  # GPT-2's GELU
        self.c_proj = nn.Linear(H, C, bias=bias)
        # SCALE / ffn: new neurons read both streams; the new stream reads every neuron
        self.c_fc_u = nn.Linear(C + Cu, Hu, bias=bias) if Hu else None
        self.c_proj_u = nn.Linear(H + Hu, Cu, bias=bias) if Cu else None
        self.c_fc_12 = nn.Linear(Cu, H, bias=False) if Cu and config.adapt else None
        self.c_proj_12 = nn.Linear(Hu, C, bias=False) if Hu and config.adapt else None
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x, x_u=None):
        h, h_u = block_linear(self.c_fc, self.c_fc_u, self.c_fc_12, x, x_u)
        h, h_u = self.gelu(h), maybe(self.gelu, h_u)
        y, y_u = block_linear(self.c_proj, self.c_proj_u, self.c_proj_12, h, h_u)
        return self.dropout(y), maybe(self.dropout, y_u)


class Block(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, config.bias)
        self.mlp = MLP(config)
        if config.n_embd_u:  # the second stream normalises its own coordinates
            self.ln_1_u = LayerNorm(config.n_embd_u, config.bias)
            self.ln_2_u = LayerNorm(config.n_embd_u, config.bias)

    def forward(self, x, x_u=None, cache=None):
        if x_u is None:  # plain GPT-2 (or ffn, whose new neurons write into this one stream)
            x = x + self.attn(self.ln_1(x), cache=cache)[0]
            return x + self.mlp(self.ln_2(x))[0], None
        a, a_u = self.attn(self.ln_1(x), self.ln_1_u(x_u), cache)
        x, x_u = x + a, x_u + a_u
        m, m_u = self.mlp(self.ln_2(x), self.ln_2_u(x_u))
        return x + m, x_u + m_u


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        C, Cu, V = config.n_embd, config.n_embd_u, config.vocab_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, C),
            wpe=nn.Embedding(config.block_size, C),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(C, config.bias),
        ))
        self.lm_head = nn.Linear(C, V, bias=False)
        if Cu:  # SCALE's second stream: its own embedding columns, final LayerNorm and head columns
            self.transformer.wte_u = nn.Embedding(V, Cu)
            self.transformer.wpe_u = nn.Embedding(config.block_size, Cu)
            self.transformer.ln_f_u = LayerNorm(Cu, config.bias)
            self.lm_head_u = nn.Linear(Cu, V, bias=False)
        if config.route:  # SCALE-Route: reads both streams, says how much of the adaptation to use
            self.router = nn.Linear(C + Cu, 1)
        if config.tie_weights:  # one tensor, two names
            self.transformer.wte.weight = self.lm_head.weight
            if Cu:
                self.transformer.wte_u.weight = self.lm_head_u.weight
        self.apply(self._init_weights)
        # GPT-2 scales the init of the projections into the residual stream by 1/sqrt(2 * n_layer)
        for name, p in self.named_parameters():
            if name.endswith(("c_proj.weight", "c_proj_u.weight")):
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

    def flops_per_token(self):
        """Training FLOPs per token as nanoGPT's estimate_mfu counts them (PaLM, appendix B):
        6 per weight used in a matmul (forward 2, backward 4) plus 12 * n_layer * width * block_size
        for attention. Embedding look-ups are free; a tied wte is counted once, as the head."""
        cfg, tr = self.config, self.transformer
        lookups = [tr.wpe] + ([] if cfg.tie_weights else [tr.wte]) + \
                  ([tr.wpe_u] + ([] if cfg.tie_weights else [tr.wte_u]) if cfg.n_embd_u else [])
        n = self.num_params() - sum(e.weight.numel() for e in lookups)
        return 6 * n + 12 * cfg.n_layer * (cfg.n_embd + cfg.n_embd_u) * cfg.block_size

    def forward(self, idx, targets=None, kv_cache=None):
        """logits (B, T, vocab) for idx (B, T), and the loss if targets (B, T) are given.

        kv_cache: a list with one dict per block, filled and reused by generate(); idx then
        holds only the positions after those already cached.
        """
        B, T = idx.size()
        start = 0 if not kv_cache or not kv_cache[0] else kv_cache[0]["old"]["k"].size(2)  # positions cached
        if start + T > self.config.block_size:
            raise UserError(f"sequence of length {start + T} is longer than block_size={self.config.block_size}")
        tr = self.transformer
        pos = torch.arange(start, start + T, dtype=torch.long, device=idx.device)  # (T,)
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
                g = torch.sigmoid(self.router(torch.cat([h, h_u], dim=-1)))  # (B, T, 1): 1 = keep the base
                delta = (1 - g) * delta
            logits = logits + delta
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, generator=None, use_cache=True):
        """Continue idx (B, T) by max_new_tokens tokens.

        temperature 0 means greedy decoding; top_k keeps only the k likeliest tokens.
        With use_cache, keys and values are computed once per token and kept (a KV cache)
        instead of recomputing the whole context for every new token; the tokens are the same.
        Learned positions cannot slide a cache by one token, so when the context is full
        both ways keep its last 3/4 and go on from there (the cache re-encodes it once).
        """
        keep = max(1, self.config.block_size * 3 // 4)
        context = idx[:, -self.config.block_size:]  # what the model sees
        cache = None
        for _ in range(max_new_tokens):
            if context.size(1) >= self.config.block_size:
                context, cache = context[:, -keep:], None  # full: keep the last 3/4
            if not use_cache:
                logits, _ = self(context)
            elif cache is None:  # encode the whole context once
                cache = [{} for _ in self.transformer.h]
                logits, _ = self(context, kv_cache=cache)
            else:  # then only the newest token
                logits, _ = self(context[:, -1:], kv_cache=cache)
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
            context = torch.cat((context, idx_next), dim=1)
        return idx
