"""
model.py against a deliberately naive GPT-2, the Hugging Face layout converter,
generation and the checkpoint recipe.

    python -m pytest -q tests/test_model.py
"""

import math
from dataclasses import asdict

import pytest
import torch

from checkpoint import convert_hf_gpt2, load_checkpoint, model_from_checkpoint, save_checkpoint
from model import GPT, GPTConfig, written_out_attention
from model_scale import ScaleConfig, new_model
from tests.conftest import trained_a_little
from plumbing.cli import UserError


def naive_gpt2(sd, idx, n_layer, n_head, ln_groups=None):
    """GPT-2 spelled out on Hugging Face's layout, where Conv1D computes y = x @ W + b.

    Explicit LayerNorm, one attention head at a time, an explicit causal mask:
    nothing shared with model.py, so agreement means both compute GPT-2.
    """
    C = sd["wte.weight"].shape[1]
    zero = lambda n: torch.zeros(n, dtype=sd["wte.weight"].dtype)
    b = lambda key, n: sd.get(key, zero(n))

    def layer_norm(x, w, bias):
        groups = ln_groups or [x.shape[-1]]
        out, start = [], 0
        for g in groups:
            xg = x[..., start:start + g]
            mean = xg.mean(-1, keepdim=True)
            var = ((xg - mean) ** 2).mean(-1, keepdim=True)
            out.append((xg - mean) / torch.sqrt(var + 1e-5))
            start += g
        return torch.cat(out, -1) * w + bias

    def gelu(x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    B, T = idx.shape
    x = sd["wte.weight"][idx] + sd["wpe.weight"][:T]
    hs = C // n_head
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for layer in range(n_layer):
        p = f"h.{layer}."
        h = layer_norm(x, sd[p + "ln_1.weight"], b(p + "ln_1.bias", C))
        qkv = h @ sd[p + "attn.c_attn.weight"] + b(p + "attn.c_attn.bias", 3 * C)
        q, k, v = qkv[..., :C], qkv[..., C:2 * C], qkv[..., 2 * C:]
        heads = []
        for i in range(n_head):
            qi, ki, vi = (t[..., i * hs:(i + 1) * hs] for t in (q, k, v))
            att = (qi @ ki.transpose(-1, -2)) / math.sqrt(hs)
            att = att.masked_fill(~causal, float("-inf")).softmax(-1)
            heads.append(att @ vi)
        x = x + torch.cat(heads, -1) @ sd[p + "attn.c_proj.weight"] + b(p + "attn.c_proj.bias", C)
        h = layer_norm(x, sd[p + "ln_2.weight"], b(p + "ln_2.bias", C))
        hidden = gelu(h @ sd[p + "mlp.c_fc.weight"] + b(p + "mlp.c_fc.bias", sd[p + "mlp.c_fc.weight"].shape[1]))
        x = x + hidden @ sd[p + "mlp.c_proj.weight"] + b(p + "mlp.c_proj.bias", C)
    x = layer_norm(x, sd["ln_f.weight"], b("ln_f.bias", C))
    return x @ sd["lm_head.weight"].T


def to_hf_layout(state_dict):
    """Our state dict in Hugging Face's GPT-2 layout (the converter's input)."""
    out = {}
    for k, v in state_dict.items():
        if k.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):
            v = v.t()
        out[k.removeprefix("transformer.")] = v.clone()
    return out


CONFIGS = {
    "gpt2": GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_embd=32),
    "no_bias": GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_embd=32, bias=False),
    "untied": GPTConfig(block_size=16, vocab_size=50, n_layer=3, n_head=6, n_embd=48, n_inner=80, tie_weights=False),
}
TWO_STREAM = {  # SCALE's two streams (and ffn's extra neurons), checked against the fused block form
    "scale": ScaleConfig(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_embd=32, n_embd_u=16, n_inner_u=64),
    "scale_adapt_untied": ScaleConfig(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_embd=32, n_embd_u=8,
                                     n_inner_u=24, adapt=True, tie_weights=False),
    "ffn": ScaleConfig(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_embd=32, n_inner_u=40, adapt=True,
                      bias=False),
}


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_forward_matches_naive_gpt2(name, dtype, tol):
    config = CONFIGS[name]
    model = trained_a_little(config).to(dtype).eval()
    idx = torch.randint(config.vocab_size, (3, config.block_size))
    logits, _ = model(idx)
    ref = naive_gpt2(to_hf_layout(model.state_dict()), idx, config.n_layer, config.n_head)
    assert logits.shape == (3, config.block_size, config.vocab_size)
    assert (logits - ref).abs().max().item() < tol


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_written_out_attention_is_the_fused_kernel(dtype, tol):
    """The attention model.py writes out for bfloat16 on a CPU (and for one query) computes what
    F.scaled_dot_product_attention does, values and gradients, with the causal mask and without."""
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 9, 8, generator=gen, dtype=dtype, requires_grad=True) for _ in range(3))
    for T, causal in ((9, True), (1, False)):  # a whole sequence; one new query after 9 cached keys
        qt = q[:, :, -T:]
        ours = written_out_attention(qt, k, v)
        ref = torch.nn.functional.scaled_dot_product_attention(qt, k, v, is_causal=causal)
        assert (ours - ref).abs().max().item() < tol
        g_ours = torch.autograd.grad(ours.square().sum(), (q, k, v))
        g_ref = torch.autograd.grad(ref.square().sum(), (q, k, v))
        assert max((a - b).abs().max().item() for a, b in zip(g_ours, g_ref)) < tol


def test_bfloat16_on_a_cpu_takes_the_written_out_attention(monkeypatch):
    """Under bfloat16 autocast the CPU model attends with written_out_attention, and its loss stays
    that of float32 to bfloat16's precision (the training default on a CPU)."""
    import model as model_py
    model = trained_a_little(CONFIGS["gpt2"]).eval()
    idx = torch.randint(50, (3, 16))
    calls = []
    monkeypatch.setattr(model_py, "written_out_attention",
                        lambda *a: calls.append(1) or written_out_attention(*a))
    loss32 = model(idx, idx)[1].item()
    assert calls == []  # float32: the fused kernel
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss16 = model(idx, idx)[1].item()
    assert len(calls) == CONFIGS["gpt2"].n_layer and abs(loss16 - loss32) < 0.05


def block_matrix(W, W12, W21_22, n_in_new):
    """[[W, W12], [W21, W22]] from its blocks (a missing W12 is zero, a missing new row block is absent)."""
    top = torch.cat([W, W12 if W12 is not None else W.new_zeros(W.shape[0], n_in_new)], dim=1)
    return top if W21_22 is None else torch.cat([top, W21_22], dim=0)


def fuse_streams(sd, config):
    """A two-stream model as one wide GPT-2 in the Hugging Face layout, every linear map in block form."""
    Cu = config.n_embd_u
    get = lambda k: sd.get(k)
    cat = lambda a, b: a if b is None else torch.cat([a, b], dim=-1)
    fused = {"wte.weight": cat(sd["transformer.wte.weight"], get("transformer.wte_u.weight")),
             "wpe.weight": cat(sd["transformer.wpe.weight"], get("transformer.wpe_u.weight")),
             "lm_head.weight": cat(sd["lm_head.weight"], get("lm_head_u.weight"))}
    for key in sd:
        if key.startswith("transformer.h.") or key.startswith("transformer.ln_f."):
            name = key.removeprefix("transformer.")
            stem, kind = name.rsplit(".", 1)
            if stem.endswith(("_u", "_12")):
                continue
            if ".ln_" in "." + stem:  # LayerNorm: old group then new group
                fused[name] = cat(sd[key], get(f"transformer.{stem}_u.{kind}"))
            elif kind == "bias":
                new_bias = get(f"transformer.{stem}_u.bias")
                if stem.endswith("c_attn") and new_bias is not None:  # q, k, v chunks each get old then new
                    fused[name] = torch.cat([torch.cat(p) for p in zip(sd[key].chunk(3), new_bias.chunk(3))])
                else:
                    fused[name] = cat(sd[key], new_bias)
            else:
                W, W12, new = sd[key], get(f"transformer.{stem}_12.weight"), get(f"transformer.{stem}_u.weight")
                n_in_new = config.n_inner_u if stem.endswith("mlp.c_proj") else Cu  # new neurons, else new stream
                if stem.endswith("c_attn"):  # q, k, v each in block form, then stacked
                    thirds = lambda t: t.chunk(3) if t is not None else [None] * 3
                    M = torch.cat([block_matrix(w, w12, wn, Cu) for w, w12, wn in zip(W.chunk(3), thirds(W12), thirds(new))])
                else:
                    M = block_matrix(W, W12, new, n_in_new)
                fused[name] = M.t()  # Conv1D layout
    return fused


@pytest.mark.parametrize("name", TWO_STREAM)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_two_stream_forward_is_the_block_form(name, dtype, tol):
    """Our reading of SCALE: every linear map [[W, W12], [W21, W22]], LayerNorm per group of coordinates."""
    config = TWO_STREAM[name]
    model = trained_a_little(config).to(dtype).eval()
    with torch.no_grad():  # W12 is zero after growth; make it nonzero so the test sees it
        for n, p in model.named_parameters():
            if "_12" in n:
                p.normal_(0, 0.05)
    idx = torch.randint(config.vocab_size, (3, config.block_size))
    fused = fuse_streams(model.state_dict(), config)
    n_head = config.n_head + config.n_embd_u // config.head_size
    groups = [config.n_embd, config.n_embd_u] if config.n_embd_u else None
    ref = naive_gpt2(fused, idx, config.n_layer, n_head, groups)
    assert (model(idx)[0] - ref).abs().max().item() < tol


def test_loss_is_mean_cross_entropy_over_all_positions():
    config = CONFIGS["gpt2"]
    model = trained_a_little(config).eval()
    idx, targets = torch.randint(50, (2, 16)), torch.randint(50, (2, 16))
    logits, loss = model(idx, targets)
    manual = -logits.log_softmax(-1).gather(-1, targets[..., None]).mean()
    assert torch.allclose(loss, manual, atol=1e-6)


def test_tied_head_is_one_tensor_and_untied_is_two():
    tied, untied = GPT(CONFIGS["gpt2"]), GPT(CONFIGS["untied"])
    assert tied.lm_head.weight is tied.transformer.wte.weight
    assert untied.lm_head.weight is not untied.transformer.wte.weight


def test_hf_gpt2_state_dict_converts_and_gives_its_logits():
    config = CONFIGS["gpt2"]
    source = trained_a_little(config).double()
    hf = {"transformer." + k: v for k, v in to_hf_layout(source.state_dict()).items() if k != "lm_head.weight"}
    for i in range(config.n_layer):  # HF checkpoints also carry the causal-mask buffers
        hf[f"transformer.h.{i}.attn.bias"] = torch.ones(1, 1, 16, 16)
    model_args, sd = convert_hf_gpt2(hf)
    model_args["n_head"] = config.n_head  # GPT-2 has 64-wide heads; this toy has 8
    model = new_model(model_args).double()
    model.load_state_dict(sd)
    idx = torch.randint(50, (2, 16))
    ref = naive_gpt2({k.removeprefix("transformer."): v for k, v in hf.items()} | {"lm_head.weight": hf["transformer.wte.weight"]},
                     idx, config.n_layer, config.n_head)
    assert (model(idx)[0] - ref).abs().max().item() < 1e-12
    assert model_args["n_layer"] == 2 and model_args["vocab_size"] == 50 and model_args["n_inner"] == 128


def test_generate_greedy_appends_argmax_and_respects_block_size():
    config = CONFIGS["gpt2"]
    model = trained_a_little(config).eval()
    idx = torch.randint(50, (2, 5))
    out = model.generate(idx, 20, temperature=0, use_cache=False)  # runs past block_size=16
    assert out.shape == (2, 25) and torch.equal(out[:, :5], idx)
    start = 0  # a full context (16 tokens) keeps its last 12 and grows again
    for t in range(5, 25):
        if t - start >= config.block_size:
            start = t - config.block_size * 3 // 4
        assert torch.equal(out[:, t], model(out[:, start:t])[0][:, -1].argmax(-1))
    top1 = model.generate(idx, 20, temperature=1.0, top_k=1)
    assert torch.equal(top1, out)


@pytest.mark.parametrize("name", ["gpt2", "scale-route"])
def test_kv_cache_gives_the_logits_and_tokens_of_recomputing(name):
    """Feeding one token at a time through the cache = one forward pass over the whole sequence."""
    config = CONFIGS["gpt2"] if name == "gpt2" else ScaleConfig(**{**asdict(CONFIGS["gpt2"]), "n_embd_u": 16,
                                                                      "n_inner_u": 32, "route": True})
    model = trained_a_little(config).eval()
    idx = torch.randint(50, (2, 12))
    cache = [{} for _ in model.transformer.h]
    steps = [model(idx[:, :5], kv_cache=cache)[0]] + [model(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(5, 12)]
    assert (torch.cat(steps, dim=1) - model(idx)[0]).abs().max().item() < 1e-5
    for temperature in (0, 1.0):  # 40 new tokens: past block_size=16 twice, so the window moves too
        a = model.generate(idx[:, :3], 40, temperature, top_k=10, generator=torch.Generator().manual_seed(1))
        b = model.generate(idx[:, :3], 40, temperature, top_k=10, generator=torch.Generator().manual_seed(1),
                           use_cache=False)
        assert torch.equal(a, b)


def test_generate_samples_reproducibly_with_a_generator():
    model = trained_a_little(CONFIGS["gpt2"]).eval()
    idx = torch.zeros(1, 1, dtype=torch.long)
    a = model.generate(idx, 30, temperature=1.0, top_k=10, generator=torch.Generator().manual_seed(3))
    b = model.generate(idx, 30, temperature=1.0, top_k=10, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_bad_configs_are_value_errors():
    with pytest.raises(ValueError, match="not divisible"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="multiple of the head size"):
        ScaleConfig(n_embd=32, n_head=4, n_embd_u=12)
    with pytest.raises(ValueError, match="route needs"):
        ScaleConfig(route=True)
    with pytest.raises(ValueError, match="longer than block_size"):
        GPT(CONFIGS["gpt2"])(torch.zeros(1, 17, dtype=torch.long))


def test_checkpoint_recipe_from_the_readme(tmp_path):
    config = TWO_STREAM["scale_adapt_untied"]
    model = trained_a_little(config).eval()
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint({"model": model.state_dict(), "model_args": asdict(config), "tokenizer": "bytes"}, path)
    ckpt = torch.load(path, weights_only=True)
    loaded = new_model(ckpt["model_args"])
    loaded.load_state_dict(ckpt["model"])
    idx = torch.randint(50, (2, 16))
    assert torch.equal(loaded.eval()(idx)[0], model(idx)[0])
    assert not any(k.startswith("_orig_mod") for k in ckpt["model"])


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint({"model": {}, "model_args": {}, "tokenizer": "bytes", "n": 1}, path)

    def crash(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise KeyboardInterrupt  # Ctrl-C in the middle of writing

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"model": {}, "model_args": {}, "n": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["n"] == 1
    assert not (tmp_path / "ckpt.pt.tmp").exists()


class NotPlainData:
    pass


def test_bad_checkpoints_give_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        load_checkpoint(str(tmp_path / "missing.pt"))
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint at all")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(str(tmp_path / "garbage.pt"))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(UserError, match="not a model checkpoint"):
        load_checkpoint(str(tmp_path / "foreign.pt"))
    torch.save({"model": NotPlainData(), "model_args": {}}, tmp_path / "code.pt")  # would run code when unpickled
    with pytest.raises(UserError, match="holds Python objects, not only tensors: refused, because loading it could run code"):
        load_checkpoint(str(tmp_path / "code.pt"))
    good = tmp_path / "good.pt"
    torch.save({"model": {"w": torch.zeros(1000)}, "model_args": {}, "tokenizer": "bytes"}, good)
    (tmp_path / "cut.pt").write_bytes(good.read_bytes()[:len(good.read_bytes()) // 2])  # an interrupted copy
    with pytest.raises(UserError, match="truncated or not a PyTorch file"):
        load_checkpoint(str(tmp_path / "cut.pt"))
    torch.save({"model": {}, "model_args": {}}, tmp_path / "notok.pt")
    with pytest.raises(UserError, match="does not say which tokenizer"):
        load_checkpoint(str(tmp_path / "notok.pt"))
    ckpt = {"model": GPT(CONFIGS["gpt2"]).state_dict(), "model_args": asdict(CONFIGS["no_bias"])}
    with pytest.raises(UserError, match="do not match"):
        model_from_checkpoint(ckpt, "x.pt")
    with pytest.raises(UserError, match="does not understand"):
        model_from_checkpoint({"model": {}, "model_args": {"n_wings": 2}}, "x.pt")


def test_checkpoints_written_before_model_scale_existed_still_load(tmp_path):
    """Plain models used to list SCALE's fields as 0 / False; they load as plain GPT-2, same logits."""
    config = CONFIGS["untied"]
    model = trained_a_little(config).eval()
    old_args = asdict(config) | {"n_embd_u": 0, "n_inner_u": 0, "adapt": False, "route": False}
    path = str(tmp_path / "old.pt")
    save_checkpoint({"model": model.state_dict(), "model_args": old_args, "tokenizer": "bytes"}, path)
    loaded = model_from_checkpoint(load_checkpoint(path), path).eval()
    assert type(loaded) is GPT
    idx = torch.randint(50, (2, 16))
    assert torch.equal(loaded(idx)[0], model(idx)[0])
