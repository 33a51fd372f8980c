"""
scale.py: every preserving method keeps the base model's logits (float32 and
float64, bias on and off, on a trained model), SOLAR does not, frozen weights
stay bit-identical through continued pretraining, grown checkpoints load with
the one recipe, and bad input gets one clear line.

    python -m pytest -q tests/test_scale.py
"""

from dataclasses import asdict

import pytest
import torch

import scale
from lab import clones
import train
from checkpoint import load_checkpoint
from model import GPTConfig
from model_scale import new_model
from optim import apply_freezing, make_optimizer
from tests.conftest import TINY, run_script, trained_a_little
from plumbing import rundir
from plumbing.cli import UserError

PRESERVING = {
    "depth": ["--method=depth"],
    "depth_every_2": ["--method=depth", "--every=2"],
    "depth_top": ["--method=depth", "--top=2"],
    "hyperclone": ["--method=hyperclone", "--noise=0"],
    "hyperclone_default_noise": ["--method=hyperclone"],
    "hyperclone_3_noise": ["--method=hyperclone", "--factor=3", "--noise=0.02"],
    "ffn": ["--method=ffn"],
    "scale_preserve": ["--method=scale", "--variant=preserve"],
    "scale_adapt": ["--method=scale", "--variant=adapt", "--add-width=16"],
    "scale_route": ["--method=scale", "--variant=route", "--add-neurons=40"],
}


def base_checkpoint(bias=True, vocab=256, block=32):
    config = GPTConfig(block_size=block, vocab_size=vocab, n_layer=3, n_head=2, n_embd=32, bias=bias)
    model = trained_a_little(config)
    seen = torch.zeros(vocab, dtype=torch.bool)
    seen[:128] = True  # an ASCII-English base: byte ids >= 128 never seen
    return {"model": model.state_dict(), "model_args": asdict(config), "tokenizer": "bytes", "seen_tokens": seen}


def grown_and_base(flags, ckpt, dtype):
    """Grow ckpt in dtype with scale.py's own functions; return (base, grown) models."""
    args = scale.build_parser().parse_args(flags)  # the flags as scale.py reads them
    base = new_model(ckpt["model_args"]).to(dtype).eval()
    base.load_state_dict(ckpt["model"])
    margs, sd, _ = scale.grow(dict(ckpt, model={k: v.to(dtype) for k, v in ckpt["model"].items()}),
                              **scale.growth_options(args))
    return base, scale.build(margs, sd, dtype).eval()


@pytest.mark.parametrize("method", PRESERVING)
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
def test_growth_preserves_logits(method, bias, dtype, tol):
    ckpt = base_checkpoint(bias)
    base, grown = grown_and_base(PRESERVING[method], ckpt, dtype)
    idx = torch.randint(256, (4, 32), generator=torch.Generator().manual_seed(1))  # full block size
    gap = (grown(idx)[0] - base(idx)[0]).abs().max().item()
    assert gap <= tol, gap
    assert grown.num_params() > base.num_params()


@pytest.mark.parametrize("method", PRESERVING)
def test_greedy_generations_are_identical(method):
    base, grown = grown_and_base(PRESERVING[method], base_checkpoint(), torch.float32)
    prompt = torch.randint(256, (2, 4), generator=torch.Generator().manual_seed(2))
    assert torch.equal(base.generate(prompt, 40, temperature=0), grown.generate(prompt, 40, temperature=0))


def test_solar_does_not_preserve():
    base, grown = grown_and_base(["--method=solar"], base_checkpoint(), torch.float64)
    idx = torch.randint(256, (4, 32), generator=torch.Generator().manual_seed(1))
    assert (grown(idx)[0] - base(idx)[0]).abs().max().item() > 1e-2
    assert grown.config.n_layer == 4  # 3 layers, overlap 1: [0, 1] + [1, 2]


@pytest.mark.parametrize("flags,symmetric", [(["--noise=0"], True), (["--noise=0.02"], False), ([], False)])
def test_hyperclone_breaks_the_symmetry_unless_asked_not_to(flags, symmetric):
    """The clones' halves differ by default (scale.py's SYMMETRY_NOISE); --noise=0 is the exact clone."""
    _, grown = grown_and_base(["--method=hyperclone", *flags], base_checkpoint(), torch.float64)
    W = grown.transformer.h[0].mlp.c_fc.weight
    assert torch.equal(W[:, :32], W[:, 32:]) == symmetric


@pytest.fixture
def base_path(tmp_path, data_dir, monkeypatch):
    """A base checkpoint written by train.py on tiny English, and scale.py's default output redirected here."""
    monkeypatch.setattr(rundir, "UPSCALED_CKPT", str(tmp_path / "upscaled.pt"))
    monkeypatch.setattr(scale, "UPSCALED_CKPT", str(tmp_path / "upscaled.pt"))
    train.main([f"--data-dir={data_dir}", f"--out-dir={tmp_path / 'base'}", *TINY, "--n-layer=3", "--max-iters=20",
                "--eval-interval=20"])
    return str(tmp_path / "base" / "ckpt.pt")


FROZEN_BASE = {
    "depth": ["--method=depth"],
    "ffn": ["--method=ffn"],
    "scale_preserve": ["--method=scale", "--variant=preserve"],
    "scale_adapt": ["--method=scale", "--variant=adapt"],
    "scale_route": ["--method=scale", "--variant=route"],
}


@pytest.mark.parametrize("method", FROZEN_BASE)
def test_frozen_weights_bit_identical_after_continued_training(method, base_path, data_dir, tmp_path):
    scale.main([*FROZEN_BASE[method], f"--in={base_path}"])
    up = load_checkpoint(str(tmp_path / "upscaled.pt"))
    train.main(["--init-from=upscaled", f"--data-dir={data_dir}", f"--out-dir={tmp_path / 'cont'}", *TINY[5:],
                "--max-iters=50", "--eval-interval=50", "--weight-decay=0.1", "--learning-rate=3e-3",
                "--replay=english:0.1"])
    after = load_checkpoint(str(tmp_path / "cont" / "ckpt.pt"))
    assert after["frozen"].keys() == up["frozen"].keys() and up["frozen"]
    for name, p in up["model"].items():
        spec = up["frozen"].get(name, False)
        if name not in up["frozen"] and name.replace("lm_head", "transformer.wte") in up["frozen"] \
                and up["model_args"]["tie_weights"]:
            continue  # the tied head is the embedding: checked under its embedding name
        mask = torch.ones_like(p, dtype=torch.bool) if spec is True else \
            spec if spec is not False else torch.zeros_like(p, dtype=torch.bool)
        assert torch.equal(after["model"][name][mask], p[mask]), f"frozen entries of {name} moved"
        if (~mask).any():
            assert not torch.equal(after["model"][name][~mask], p[~mask]), f"trainable {name} did not move"
    # the one recipe loads both
    for path in (tmp_path / "upscaled.pt", tmp_path / "cont" / "ckpt.pt"):
        ckpt = torch.load(path, weights_only=True)
        model = new_model(ckpt["model_args"])
        model.load_state_dict(ckpt["model"])


@pytest.mark.parametrize("freeze_unseen", [True, False])
def test_preserve_keeps_the_base_model_inside_forever(freeze_unseen, base_path, data_dir, tmp_path):
    """After continued training, SCALE-Preserve without its new head columns is the base model, bit for bit;
    by default on the tokens the base saw (the rows of the others train), with --freeze-unseen on all."""
    scale.main(["--method=scale", "--variant=preserve", f"--in={base_path}"] + ["--freeze-unseen"] * freeze_unseen)
    train.main(["--init-from=upscaled", f"--data-dir={data_dir}", f"--out-dir={tmp_path / 'cont'}", *TINY[5:],
                "--max-iters=30", "--learning-rate=3e-3"])
    ckpt = load_checkpoint(str(tmp_path / "cont" / "ckpt.pt"))
    grown = new_model(ckpt["model_args"])
    grown.load_state_dict(ckpt["model"])
    base = new_model(load_checkpoint(base_path)["model_args"])
    base.load_state_dict(load_checkpoint(base_path)["model"])
    seen = load_checkpoint(base_path)["seen_tokens"]
    known = seen if not freeze_unseen else torch.ones_like(seen)
    ids = known.nonzero().flatten()
    idx = ids[torch.randint(len(ids), (2, 32))]
    changed = (grown(idx)[0] - base(idx)[0]).abs().max().item()
    with torch.no_grad():
        grown.lm_head_u.weight.zero_()
    assert changed > 1e-3 and torch.equal(grown(idx)[0][..., known], base(idx)[0][..., known])


def test_frozen_base_gets_no_gradients_and_no_optimizer_state(base_path, tmp_path):
    for flags, frozen_prefix in ((["--method=scale"], "transformer.h.0.attn.c_attn.weight"),
                                 (["--method=depth"], "transformer.h.0.mlp.c_fc.weight")):
        scale.main([*flags, f"--in={base_path}", f"--out={tmp_path / 'g.pt'}"])
        ckpt = load_checkpoint(str(tmp_path / "g.pt"))
        model = new_model(ckpt["model_args"])
        model.load_state_dict(ckpt["model"])
        apply_freezing(model, ckpt["frozen"])
        opt = make_optimizer(model, learning_rate=3e-4, weight_decay=0.1, betas=(0.9, 0.99))
        idx = torch.randint(256, (2, 32))
        model(idx, idx)[1].backward()
        opt.step()
        params = dict(model.named_parameters())
        assert params[frozen_prefix].grad is None
        n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
        assert len(opt.state) == n_trainable < len(list(model.parameters()))


def test_growing_grown_models(base_path, tmp_path):
    hyper = str(tmp_path / "hyper.pt")
    scale.main(["--method=hyperclone", f"--in={base_path}", f"--out={hyper}"])
    base, deeper = grown_and_base(["--method=depth"], load_checkpoint(hyper), torch.float64)
    idx = torch.randint(256, (2, 32))
    assert (deeper(idx)[0] - base(idx)[0]).abs().max().item() < 1e-10  # depth after hyperclone: allowed
    wide = str(tmp_path / "scale.pt")
    scale.main(["--method=scale", f"--in={base_path}", f"--out={wide}"])
    base, deeper = grown_and_base(["--method=depth", "--every=2"], load_checkpoint(wide), torch.float64)
    assert (deeper(idx)[0] - base(idx)[0]).abs().max().item() == 0  # depth after scale: allowed
    for method in ("hyperclone", "scale", "ffn"):
        with pytest.raises(UserError, match="grows plain GPT-2 models, and this one was already grown by scale \\(it has a second stream\\)"):
            scale.main([f"--method={method}", f"--in={wide}", f"--out={tmp_path / 'x.pt'}"])


def test_bad_input_gives_one_clear_line(base_path, tmp_path):
    def error(*flags):
        with pytest.raises(UserError) as e:
            scale.main([*flags, f"--out={tmp_path / 'x.pt'}"])
        return str(e.value)

    assert "--factor=1.5 is not an integer" in error("--method=hyperclone", "--factor=1.5", f"--in={base_path}")
    assert "--factor=0 does not grow the model" in error("--method=hyperclone", "--factor=0", f"--in={base_path}")
    assert "--add-width=20 is not a multiple of the head size 16" in \
        error("--method=scale", "--add-width=20", f"--in={base_path}")
    assert "invalid choice: 'wider'" in error("--method=wider", f"--in={base_path}")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert "not a readable checkpoint" in error("--method=depth", f"--in={tmp_path / 'notes.txt'}")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    assert "not a model checkpoint" in error("--method=depth", f"--in={tmp_path / 'foreign.pt'}")
    assert "no checkpoint at" in error("--method=depth", f"--in={tmp_path / 'missing.pt'}")
    assert "--overlap must be >= 1 and below n_layer / 2 = 1.5" in error("--method=solar", "--overlap=2", f"--in={base_path}")
    r = run_script("scale.py", "--method=scale", "--add-width=7", f"--in={base_path}", f"--out={tmp_path / 'x.pt'}")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: --add-width=7")


def test_cli_reports_counts_and_gap(base_path, tmp_path):
    r = run_script("scale.py", "--method=solar", f"--in={base_path}", f"--out={tmp_path / 's.pt'}")
    assert r.returncode == 0, r.stderr
    assert "NOT preserved" in r.stdout and "parameters:" in r.stdout and "added" in r.stdout
    r = run_script("scale.py", "--method=ffn", f"--in={base_path}", f"--out={tmp_path / 'f.pt'}")
    assert "preserved: max |logits - base logits| on random tokens = 0 in float64, 0 in float32" in r.stdout
    assert "embedding rows of the" in r.stdout and "never saw stay trainable" in r.stdout


def test_resume_of_a_grown_run_is_exact_and_keeps_the_base_frozen(base_path, data_dir, tmp_path):
    scale.main(["--method=depth", f"--in={base_path}"])
    flags = ["--init-from=upscaled", f"--data-dir={data_dir}", *TINY[5:], "--lr-decay-iters=30", "--eval-interval=10",
             "--replay=english:0.2", "--weight-decay=0.3"]
    train.main([*flags, f"--out-dir={tmp_path / 'a'}", "--max-iters=30"])
    train.main([*flags, f"--out-dir={tmp_path / 'b'}", "--max-iters=15"])
    train.main(["--init-from=resume", f"--out-dir={tmp_path / 'b'}", "--max-iters=30"])
    a, b = (load_checkpoint(str(tmp_path / d / "ckpt.pt")) for d in "ab")
    up = load_checkpoint(str(tmp_path / "upscaled.pt"))
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    mask = up["frozen"]["transformer.wte.weight"]
    assert torch.equal(b["model"]["transformer.wte.weight"][mask], up["model"]["transformer.wte.weight"][mask])
    assert b["frozen"].keys() == up["frozen"].keys()


def test_a_noiseless_hyperclone_never_leaves_the_1x_model(base_path, data_dir, tmp_path):
    """Without noise both clones get identical gradients: after training the clones are still equal and
    the 2x model computes what its 1x collapse computes. With noise they drift apart."""
    idx = torch.randint(256, (2, 32))
    gaps = {}
    for noise in ("0", "0.005"):
        grown = str(tmp_path / f"h{noise}.pt")
        scale.main(["--method=hyperclone", f"--noise={noise}", f"--in={base_path}", f"--out={grown}"])
        train.main([f"--init-from={grown}", f"--data-dir={data_dir}", f"--out-dir={tmp_path / noise}", *TINY[4:],
                    "--max-iters=6", "--eval-interval=6", "--learning-rate=3e-3"])
        ckpt = load_checkpoint(str(tmp_path / noise / "ckpt.pt"))
        sd = {k: v.double() for k, v in ckpt["model"].items()}
        gaps[noise] = clones.clone_swap_gap(sd)
        small_args, small_sd = clones.unclone(sd, ckpt["model_args"])
        wide, small = scale.build(ckpt["model_args"], sd, torch.float64), scale.build(small_args, small_sd, torch.float64)
        collapse = (wide(idx)[0] - small(idx)[0]).abs().max().item()
        assert (collapse < 1e-9) == (noise == "0"), (noise, collapse)
    assert gaps["0"] == 0 and gaps["0.005"] > 1e-3


def test_unseen_rows_train_in_every_method_and_added_weights_get_their_rate(base_path, data_dir, tmp_path):
    """One policy: the base's embedding rows of bytes it never saw train for SCALE too; --new-lr-mult
    gives exactly the tensors the growth added their own learning rate; frozen entries stay bit-identical."""
    grown = str(tmp_path / "s.pt")
    scale.main(["--method=scale", f"--in={base_path}", f"--out={grown}"])
    up = load_checkpoint(grown)
    mask = up["frozen"]["transformer.wte.weight"]
    assert mask is not True and mask.any() and not mask.all()  # a row mask: seen rows frozen, unseen ones train
    assert up["added"] and all(("_u." in k or "_12." in k or k.startswith(("transformer.wte_u", "transformer.wpe_u",
                                "lm_head_u", "router"))) for k in up["added"])
    model = new_model(up["model_args"])
    model.load_state_dict(up["model"])
    apply_freezing(model, up["frozen"])
    opt = make_optimizer(model, 1e-3, 0.1, (0.9, 0.99), added=up["added"], new_lr_mult=10)
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        assert all((names[id(p)] in up["added"]) == (group["lr_mult"] == 10) for p in group["params"])
    train.main([f"--init-from={grown}", f"--data-dir={data_dir}", f"--out-dir={tmp_path / 'c'}", *TINY[4:],
                "--max-iters=4", "--eval-interval=4", "--new-lr-mult=10"])
    after = load_checkpoint(str(tmp_path / "c" / "ckpt.pt"))
    assert after["config"]["new_lr_mult"] == 10 and after["added"] == up["added"]
    w0, w1 = up["model"]["transformer.wte.weight"], after["model"]["transformer.wte.weight"]
    assert torch.equal(w0[mask], w1[mask]) and not torch.equal(w0[~mask], w1[~mask])
