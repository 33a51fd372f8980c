"""
merge.py: every TIES step against hand-computed examples, exactness where the
maths says exact, trim fractions, DARE's expectation, clear errors, frozen
entries untouched, and the command line end to end.

    python -m pytest -q tests/test_merge.py
"""

from dataclasses import asdict

import pytest
import torch

import evaluate
import merge
import scale
import train
from merge import dare_mask, disjoint_mean, drop_and_rescale, elect_sign, kth_largest, merge_state_dicts, trim
import checkpoint
from checkpoint import load_checkpoint, save_checkpoint
from model import GPT, GPTConfig
from model_scale import new_model
from tests.conftest import TINY, run_script, trained_a_little
from plumbing.cli import UserError
from plumbing.system import pick_dtype

T = lambda *v: torch.tensor(v, dtype=torch.float64)


def trim_to(tau, density):
    t, ties = kth_largest([merge.magnitude(tau)], merge.n_kept(tau.numel(), density))
    return trim(tau, t, ties)[0]


def test_trim_keeps_the_largest_magnitudes():
    assert torch.equal(trim_to(T(0.5, -2.0, 1.0, 0.1), 0.5), T(0, -2.0, 1.0, 0))


def test_trim_breaks_threshold_ties_in_order():
    # keep 2 of 5: 3 is kept, then only the first of the three entries tied at |2|
    assert torch.equal(trim_to(T(3, -2, 2, 2, 1), 0.4), T(3, -2, 0, 0, 0))


@pytest.mark.parametrize("values", ["normal", "ties", "zeros", "wide", "special"])
def test_kth_largest_radix_select_equals_kthvalue(values):
    g = torch.Generator().manual_seed(0)
    x = {"normal": torch.randn(5000, generator=g) * 0.01,
         "ties": torch.randint(0, 7, (5000,), generator=g).float(),  # few distinct values, all tied
         "zeros": torch.zeros(5000),  # one bucket holds everything (a frozen tensor's task vector)
         "wide": torch.randn(5000, generator=g) * 10.0 ** torch.randint(-30, 30, (5000,), generator=g),
         "special": torch.tensor([0.0, float("inf"), 1e-45, 3.4e38, 1.0, 1.0 + 2 ** -23] * 3)}[values].abs()
    n = len(x)
    for k in sorted({1, 2, n // 3, n // 2, n - 1}):
        t = x.kthvalue(n - k + 1).values.item()
        expected = (t, k - int((x > t).sum()))
        assert kth_largest([x], k) == expected, k
        assert kth_largest(lambda: iter(x.split(777)), k) == expected, k  # a model, tensor by tensor
    assert kth_largest([x], n) == (float("-inf"), 0) and kth_largest([x], 0) == (float("inf"), 0)


def test_elect_sign_by_mass_with_zero_sum_positive():
    taus = [T(1, -2, 3, 0, 2), T(-3, 1, 1, 0, -1), T(1, 0, -4, 0, -0.5)]
    # sums: -1 (mass says -, though two of three are +), -1, 0 (zero sum: +), 0 (all zero: +), 0.5
    assert torch.equal(elect_sign(taus), T(-1, -1, 1, 1, 1))


def test_disjoint_mean_averages_only_agreeing_models():
    taus = [T(1, -2, 3, 0, 2), T(-3, 1, 1, 0, -1), T(1, 0, -4, 0, -0.5)]
    sign = elect_sign(taus)
    # coordinate 0: only -3 agrees with -; 1: only -2; 2: 3 and 1 -> 2; 3: nobody -> 0;
    # 4: the models disagree (+2, -1, -0.5) and the mass elects +: only 2 is averaged
    assert torch.equal(disjoint_mean(taus, [1, 1, 1], sign), T(-3, -2, 2, 0, 2))
    # weights count after the election: coordinate 2 becomes (1*3 + 3*1) / (1 + 3)
    assert torch.equal(disjoint_mean(taus, [1, 3, 1], sign), T(-3, -2, 1.5, 0, 2))


def test_ties_merge_of_three_short_vectors_by_hand():
    base = {"w": T(1, 1, 1, 1, 1, 1)}
    taus = [T(0.9, -0.1, 0.5, 0.0, -2.0, 0.3), T(-0.4, 0.2, 0.6, 0.1, 1.0, -0.2), T(0.5, -0.3, -1.2, 0.0, 0.7, 0.1)]
    models = [{"w": base["w"] + tau} for tau in taus]
    # trim to density 0.5 (3 of 6 per model):
    #   m1: 0.9, 0.5, -2.0    m2: -0.4, 0.6, 1.0    m3: 0.5, -1.2, 0.7
    # mass: 0.9-0.4+0.5=1.0 (+) | 0 (+, nobody) | 0.5+0.6-1.2=-0.1 (-) | 0 | -2+1+0.7=-0.3 (-) | 0
    # disjoint mean: 0.7 (0.9, 0.5) | 0 | -1.2 | 0 | -2.0 | 0 ; lambda 1
    merged = merge_state_dicts(base, models, "ties", density=0.5)["w"]
    assert torch.allclose(merged, T(1.7, 1, -0.2, 1, -1.0, 1), atol=1e-12)
    doubled = merge_state_dicts(base, models, "ties", density=0.5, lam=2.0)["w"]
    assert torch.allclose(doubled, T(2.4, 1, -1.4, 1, -3.0, 1), atol=1e-12)


def random_state(seed, scale_=1.0):
    g = torch.Generator().manual_seed(seed)
    return {"a": torch.randn(40, 30, generator=g) * scale_, "b": torch.randn(50, generator=g) * 10 * scale_}


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "linear", "dare", "dare_ties"])
def test_one_model_weight_one_lambda_one_returns_it_exactly(method):
    base, model = random_state(0), random_state(1)
    merged = merge_state_dicts(base, [model], method, density=1.0)
    assert all(torch.equal(merged[k], model[k]) for k in model)


@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "linear", "dare_ties"])
def test_merging_identical_models_returns_that_model(method):
    base, model = random_state(0), random_state(1)
    merged = merge_state_dicts(base, [model, model, model], method, density=1.0)
    assert all(torch.equal(merged[k], model[k]) for k in model)


def test_task_arithmetic_is_base_plus_lambda_times_weighted_sum():
    base, a, b = random_state(0), random_state(1), random_state(2)
    merged = merge_state_dicts(base, [a, b], "task_arithmetic", weights=[1.0, 3.0], lam=0.5, normalize=False)
    expected = base["a"].double() + 0.5 * ((a["a"].double() - base["a"]) + 3 * (b["a"].double() - base["a"]))
    assert torch.allclose(merged["a"].double(), expected, atol=1e-6)
    normalized = merge_state_dicts(base, [a, b], "task_arithmetic", weights=[1.0, 3.0])
    assert torch.allclose(normalized["b"], 0.25 * a["b"] + 0.75 * b["b"], atol=1e-5)
    linear = merge_state_dicts(base, [a, b], "linear", weights=[1.0, 3.0], lam=7.0)  # lam is ignored
    assert torch.allclose(linear["b"], normalized["b"])


def test_trim_keeps_exactly_the_requested_fraction_per_tensor_and_globally():
    base = {"a": torch.zeros(100, 10), "b": torch.zeros(1000)}
    g = torch.Generator().manual_seed(0)
    model = {"a": torch.randint(-3, 4, (100, 10), generator=g).float(),  # many exact ties
             "b": torch.randint(-3, 4, (1000,), generator=g).float() * 0.5}
    per = merge_state_dicts(base, [model], "ties", density=0.3, trim_scope="tensor")
    assert (per["a"] != 0).sum() == 300 and (per["b"] != 0).sum() == 300
    glob = merge_state_dicts(base, [model], "ties", density=0.3, trim_scope="global")
    assert (glob["a"] != 0).sum() + (glob["b"] != 0).sum() == 600
    assert (glob["a"] != 0).sum() > 300  # larger magnitudes in "a": the global trim takes more of it


def test_dare_is_reproducible_and_unbiased():
    tau = {"w": torch.linspace(-1, 1, 200).double()}
    base = {"w": torch.zeros(200, dtype=torch.float64)}
    model = {"w": tau["w"]}
    one = merge_state_dicts(base, [model], "dare", density=0.3, seed=7)["w"]
    assert torch.equal(one, merge_state_dicts(base, [model], "dare", density=0.3, seed=7)["w"])
    assert not torch.equal(one, merge_state_dicts(base, [model], "dare", density=0.3, seed=8)["w"])
    kept = (one != 0).double().mean().item()
    assert 0.2 < kept < 0.4 and torch.allclose(one[one != 0], tau["w"][one != 0] / 0.3)
    mean = sum(drop_and_rescale(tau["w"], 0.3, dare_mask(tau["w"].numel(), 0.3, torch.Generator().manual_seed(s)))
               for s in range(4000)) / 4000
    assert (mean - tau["w"]).abs().max().item() < 0.1


def test_frozen_entries_stay_bit_identical_in_every_method():
    config = GPTConfig(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=16)
    base_sd = trained_a_little(config).state_dict()
    ckpt = {"model": base_sd, "model_args": asdict(config)}
    margs, sd, frozen = scale.grow(ckpt, method="scale")
    up = scale.build(margs, sd).state_dict()
    children = []
    for seed in (1, 2, 3):  # continued models: only the trainable (new) tensors moved
        g = torch.Generator().manual_seed(seed)
        children.append({k: v if k in frozen or k == "lm_head.weight" else v + 0.1 * torch.randn(v.shape, generator=g)
                         for k, v in up.items()})
    names = checkpoint.tensors_to_merge(margs, up)
    for method in merge.METHODS:
        merged = merge_state_dicts(up, children, method, names=names)
        for k in frozen:
            assert torch.equal(merged[k], up[k]), (method, k)
        assert not torch.equal(merged["transformer.h.0.attn.c_attn_u.weight"], up["transformer.h.0.attn.c_attn_u.weight"])


def test_tied_weights_are_counted_once():
    config = GPTConfig(block_size=16, vocab_size=64, n_layer=1, n_head=2, n_embd=16)
    sd = GPT(config).state_dict()
    names = checkpoint.tensors_to_merge(asdict(config), sd)
    assert "transformer.wte.weight" in names and "lm_head.weight" not in names
    untied = asdict(config) | {"tie_weights": False}
    assert "lm_head.weight" in checkpoint.tensors_to_merge(untied, sd)


@pytest.fixture(scope="module")
def family(tmp_path_factory, data_dir):
    """A tiny base, grown by hyperclone, continued once on 'english' and once on 'korean'."""
    d = tmp_path_factory.mktemp("family")
    train.main([f"--data-dir={data_dir}", f"--out-dir={d / 'base'}", *TINY, "--max-iters=30", "--eval-interval=30"])
    scale.main(["--method=hyperclone", f"--in={d / 'base' / 'ckpt.pt'}", f"--out={d / 'up.pt'}"])
    for lang in ("english", "korean"):
        train.main([f"--init-from={d / 'up.pt'}", f"--data-dir={data_dir}", f"--out-dir={d / lang}", *TINY[5:],
                    f"--dataset={lang}", "--eval-datasets=english,korean", "--max-iters=20", "--eval-interval=20"])
    return d, data_dir


@pytest.mark.parametrize("method", merge.METHODS)
def test_command_line_merges_two_language_models(family, method, capsys):
    d, data_dir = family
    out = d / f"merged-{method}.pt"
    tuned = [f"--tune=english,korean", "--tune-by=kept", "--tune-iters=1", "--batch-size=2", "--eval-iters=2",
             f"--data-dir={data_dir}"] if method == "layerwise" else []  # layerwise's weights: chosen on data
    merge.main([f"--method={method}", f"--base={d / 'up.pt'}",
                f"--models={d / 'english' / 'ckpt.pt'},{d / 'korean' / 'ckpt.pt'}", f"--out={out}", *tuned])
    ckpt = torch.load(out, weights_only=True)  # the one recipe
    model = new_model(ckpt["model_args"])
    model.load_state_dict(ckpt["model"])
    assert ckpt["merge"]["method"] == method and ckpt["history"][-1]["stage"] == "merge"
    assert ckpt["merge"]["models"][1].endswith("korean/ckpt.pt") and ckpt["merge"]["density"] == 0.5
    evaluate.main([f"--ckpts={out}", "--datasets=english,korean", f"--data-dir={data_dir}", "--eval-iters=2"])
    assert str(out) in capsys.readouterr().out


def test_evaluate_auto_precision_is_train_pys(family, capsys):
    """--dtype=auto evaluates in what train.py's --dtype=auto picks here, so it prints that precision's numbers."""
    d, data_dir = family
    flags = [f"--ckpts={d / 'korean' / 'ckpt.pt'}", "--datasets=korean", f"--data-dir={data_dir}", "--eval-iters=2"]
    tables = {}
    for dtype in ("auto", "float32", "bfloat16"):
        evaluate.main([*flags, f"--dtype={dtype}"])
        tables[dtype] = capsys.readouterr().out
    assert tables["float32"] != tables["bfloat16"]  # the two precisions differ in the printed digits
    assert tables["auto"] == tables[pick_dtype("auto", "cpu")]


def test_merged_model_trains_further_and_samples(family):
    d, data_dir = family
    out = d / "merged.pt"
    merge.main([f"--base={d / 'up.pt'}", f"--models={d / 'english' / 'ckpt.pt'},{d / 'korean' / 'ckpt.pt'}",
                f"--out={out}"])
    train.main([f"--init-from={out}", f"--data-dir={data_dir}", f"--out-dir={d / 'further'}", *TINY[5:],
                "--max-iters=5", "--eval-interval=5", "--sample-tokens=10"])
    assert load_checkpoint(str(d / "further" / "ckpt.pt"))["history"][-2]["stage"] == "merge"


def test_mismatches_give_one_clear_line(family, tmp_path):
    d, _ = family
    up, ko = str(d / "up.pt"), str(d / "korean" / "ckpt.pt")

    def error(*flags):
        with pytest.raises(UserError) as e:
            merge.main([*flags, f"--out={tmp_path / 'x.pt'}"])
        return str(e.value)

    small = str(d / "base" / "ckpt.pt")
    assert "different architecture" in error(f"--base={small}", f"--models={ko}")
    assert "n_embd 64 vs 32" in error(f"--base={small}", f"--models={ko}")
    assert "not the small base" in error(f"--base={small}", f"--models={ko}")
    broken = load_checkpoint(ko)
    broken["model"] = {k: v for k, v in broken["model"].items() if k != "transformer.h.1.mlp.c_fc.bias"}
    save_checkpoint(broken, str(tmp_path / "broken.pt"))
    assert "tensor transformer.h.1.mlp.c_fc.bias: missing in" in error(f"--base={up}", f"--models={tmp_path / 'broken.pt'}")
    reshaped = load_checkpoint(ko)
    reshaped["model"]["transformer.h.0.ln_1.weight"] = torch.ones(7)
    save_checkpoint(reshaped, str(tmp_path / "reshaped.pt"))
    assert "tensor transformer.h.0.ln_1.weight: (7,) in" in error(f"--base={up}", f"--models={tmp_path / 'reshaped.pt'}")
    assert "needs --base" in error("--method=ties", f"--models={ko}")
    assert "--weights has 1 values for 2 models" in error(f"--base={up}", f"--models={ko},{ko}", "--weights=1")
    assert "--density=0.0 must be in (0, 1]" in error(f"--base={up}", f"--models={ko}", "--density=0")
    assert "needs --layer-weights" in error("--method=layerwise", f"--base={up}", f"--models={ko},{ko}")
    assert "has 2 layers, these models have 4" in error("--method=layerwise", f"--base={up}", f"--models={ko},{ko}",
                                                        "--layer-weights=1,0/0,1")
    assert "--layer-weights has 1 values for 2 models" in error("--method=layerwise", f"--base={up}",
                                                                 f"--models={ko},{ko}", "--layer-weights=1/1/1/1")
    assert "one --tune dataset per model" in error(f"--base={up}", f"--models={ko},{ko}", "--tune=korean",
                                                   "--tune-by=kept")
    r = run_script("merge.py", f"--base={small}", f"--models={ko}", f"--out={tmp_path / 'y.pt'}")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and r.stderr.startswith("error: ")


@pytest.mark.parametrize("method,scope", [("ties", "tensor"), ("ties", "global"), ("task_arithmetic", "tensor"),
                                          ("dare", "tensor"), ("dare_ties", "tensor")])
def test_merging_in_pieces_gives_the_same_model(method, scope, monkeypatch):
    """merge_state_dicts works CHUNK entries at a time (for memory); pieces of 7 must change nothing,
    including which of several equal magnitudes at the threshold are kept, and DARE's random draws."""
    torch.manual_seed(0)
    base = {"a": torch.randn(13, 11), "b": torch.randn(5)}
    models = [{k: v + (torch.randn_like(v) * 4).round() / 4 for k, v in base.items()} for _ in range(3)]  # many ties
    whole = merge_state_dicts(base, models, method, density=0.3, trim_scope=scope, seed=3)
    monkeypatch.setattr(merge, "CHUNK", 7)
    pieces = merge_state_dicts(base, models, method, density=0.3, trim_scope=scope, seed=3)
    assert all(torch.equal(whole[k], pieces[k]) for k in base)
