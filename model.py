"""
model.py — GPT-2, small enough to read in one sitting.

Place in the story: this is the model everything else grows, trains and merges.
train.py pretrains it on English, scale.py makes it deeper or wider without
changing what it computes, merge.py averages several copies of it.

It follows GPT-2 (Radford et al. 2019) as nanoGPT writes it: pre-LayerNorm
blocks, a fused q,k,v projection `c_attn`, a tanh-GELU MLP, learned position
embeddings and an `lm_head` tied to `wte`. Parameter names are GPT-2's, so a
Hugging Face GPT-2 state dict loads after `convert_hf_gpt2` (checkpoint.py)
transposes its Conv1D weights. Two settings go beyond GPT-2, both used by
growth: `n_inner` (an MLP wider than 4 x n_embd) and `tie_weights=False` (an
untied head, which HyperCloning needs).

SCALE's two-stream model is the one grown model this file cannot hold; it lives
in model_scale.py, written as "this file plus a second stream". Any checkpoint
of the project, either kind, loads with one call (checkpoint.py):

    model = model_from_checkpoint(load_checkpoint(path), path)
"""

import math
from dataclasses import dataclass

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
    n_inner: int = 0        # MLP width; 0 means GPT-2's 4 * n_embd
    tie_weights: bool = True  # lm_head shares its weight with wte

    def __post_init__(self):
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")

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


def written_out_attention(q, k, v, dropout=0.0):
    """softmax(q k^T / sqrt(hs) + causal mask) v, step by step, for (B, nh, T, hs) heads; T == 1 is one
    new query after a cache of keys (it sees them all). The same function as the fused kernel
    F.scaled_dot_product_attention, used where that kernel is slow: for one query at a time
    (generation), and in bfloat16 on a CPU, where its backward takes 3x as long as this (a training
    step of the default model 1.5x as long; README, Performance)."""
    T, S = q.size(-2), k.size(-2)
    att = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(q.size(-1)))  # (B, nh, T, S)
    if T > 1:  # query t sees keys 0..t
        att = att.masked_fill(torch.ones(T, S, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    att = F.dropout(F.softmax(att, dim=-1), dropout)
    return att @ v  # (B, nh, T, hs)


class CausalSelfAttention(nn.Module):

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias)  # q, k, v of every head, fused
        self.c_proj = nn.Linear(C, C, bias=config.bias)
        self.head_size = config.head_size
        self.attn_dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def attend(self, qkv, cache=None):
        """Causal attention of the heads packed in qkv (B, T, 3 * width) -> (B, T, width).

        cache (a dict) is for generation: keys and values of earlier positions are kept
        there, so each new token computes its own q, k, v only and attends to all of them.
        The cache is a growing (B, nh, S, hs) tensor per layer, concatenated one token at a
        time: simpler than a preallocated buffer, and as fast here (measured, README).
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
        dropout = self.attn_dropout if self.training else 0.0
        if T == 1 or (q.device.type == "cpu" and q.dtype == torch.bfloat16):
            y = written_out_attention(q, k, v, dropout)  # (B, nh, T, hs)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=T > 1, dropout_p=dropout)  # (B, nh, T, hs)
        return y.transpose(1, 2).contiguous().view(B, T, three_width // 3)  # (B, T, width): heads side by side

    def forward(self, x, cache=None):
        y = self.attend(self.c_attn(x), cache)  # (B, T, C)
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
        self.ln_1 = LayerNorm(config.n_embd, config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, config.bias)
        self.mlp = MLP(config)

    def forward(self, x, cache=None):
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_weights:  # one tensor, two names
            self.transformer.wte.weight = self.lm_head.weight
        self.init_weights()

    def init_weights(self):
        """GPT-2's initialisation: N(0, 0.02), zero biases, and the projections into the
        residual stream scaled by 1/sqrt(2 * n_layer) so the stream's variance does not grow with depth."""
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.config.n_layer))

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
        lookups = tr.wpe.weight.numel() + (0 if cfg.tie_weights else tr.wte.weight.numel())
        return 6 * (self.num_params() - lookups) + 12 * cfg.n_layer * cfg.n_embd * cfg.block_size

    def training_bytes(self, batch_size):
        """Rough float32 memory of one training step: weights, gradients and AdamW's two moments (16 bytes
        a parameter) plus the activations the backward pass keeps, per block and token about 34 x width
        + 5 x heads x block_size values (Korthikanti et al. 2022), and the logits three times over. Works
        on a model built on the "meta" device, so a size can be refused before anything is allocated."""
        cfg = self.config
        per_token = cfg.n_layer * (34 * cfg.n_embd + 5 * cfg.n_head * cfg.block_size) + 3 * cfg.vocab_size
        return 16 * self.num_params() + 4 * batch_size * cfg.block_size * per_token

    def forward(self, idx, targets=None, kv_cache=None):
        """logits (B, T, vocab) for idx (B, T), and the loss if targets (B, T) are given.

        kv_cache: a list with one dict per block, filled and reused by generate(); idx then
        holds only the positions after those already cached.
        """
        tr = self.transformer
        start = kv_cache[0]["k"].size(2) if kv_cache and kv_cache[0] else 0  # positions already cached
        pos = positions(start, idx.size(1), self.config.block_size, idx.device)  # (T,)
        x = tr.drop(tr.wte(idx) + tr.wpe(pos))  # (B, T, C)
        for i, block in enumerate(tr.h):
            x = block(x, None if kv_cache is None else kv_cache[i])
        logits = self.lm_head(tr.ln_f(x))  # (B, T, vocab_size)
        return logits, lm_loss(logits, targets)

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


def positions(start, T, block_size, device):
    """(T,) positions start .. start + T - 1, or one line if they pass the longest context learned."""
    if start + T > block_size:
        raise ValueError(f"sequence of length {start + T} is longer than block_size={block_size}")
    return torch.arange(start, start + T, dtype=torch.long, device=device)


def lm_loss(logits, targets):
    """Cross-entropy of next-token prediction in float32 (also under bfloat16 autocast); -1 targets are skipped."""
    if targets is None:
        return None
    return F.cross_entropy(logits.view(-1, logits.size(-1)).float(), targets.view(-1), ignore_index=-1)
