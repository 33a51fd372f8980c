"""
The merge built for languages (layerwise), the held-out batches merges are tuned on, and the tuning itself.
"""

import numpy as np
import pytest
import torch

import merge
import tune
from evaluate import eval_rows, held_out_rows
from merge import layer_of, merge_state_dicts
from lab import readings, report
from lab.stats import mean_interval


def blocks_state(seed, n_layer=2):
    """A hand-made state dict with GPT-2's names: embeddings, n_layer blocks, the head."""
    g = torch.Generator().manual_seed(seed)
    names = ["transformer.wte.weight", "transformer.wpe.weight"] + [
        f"transformer.h.{i}.mlp.c_fc.weight" for i in range(n_layer)] + ["transformer.ln_f.weight", "lm_head.weight"]
    return {n: torch.randn(6, 4, generator=g) for n in names}


def test_layer_of_names_the_embeddings_each_block_and_the_head():
    assert [layer_of(n) for n in blocks_state(0)] == [0, 0, 1, 2, -1, -1]
    assert layer_of("transformer.wte_u.weight") == 0 and layer_of("router.weight") == -1  # SCALE's second stream


def test_layerwise_takes_exactly_the_layers_it_says():
    base, ko, de = blocks_state(0), blocks_state(1), blocks_state(2)
    weights = [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.0, 1.0]]  # embeddings, block 0, block 1, head
    merged = merge_state_dicts(base, [ko, de], "layerwise", layer_weights=weights)
    assert torch.equal(merged["transformer.wte.weight"], ko["transformer.wte.weight"])
    assert torch.equal(merged["transformer.h.0.mlp.c_fc.weight"], de["transformer.h.0.mlp.c_fc.weight"])
    assert torch.allclose(merged["transformer.h.1.mlp.c_fc.weight"],
                          (ko["transformer.h.1.mlp.c_fc.weight"] + de["transformer.h.1.mlp.c_fc.weight"]) / 2)
    assert torch.equal(merged["lm_head.weight"], de["lm_head.weight"])
    scaled = merge_state_dicts(base, [ko, de], "layerwise", layer_weights=weights, lam=0.5)  # lambda scales tau
    name = "transformer.wpe.weight"
    assert torch.allclose(scaled[name], base[name] + 0.5 * (ko[name] - base[name]))


@pytest.mark.parametrize("weights", [[[0.5, 0.5]] * 4, [[1.0, 0.0], [0.0, 1.0], [0.3, 0.7], [1.0, 0.0]]])
def test_layerwise_merge_of_a_model_with_itself_is_that_model(weights):
    base, model = blocks_state(0), blocks_state(1)
    merged = merge_state_dicts(base, [model, model], "layerwise", layer_weights=weights)
    assert all(torch.allclose(merged[k], model[k], atol=1e-6, rtol=0) for k in model)


def test_layerwise_at_equal_weights_is_linear_averaging():
    base, a, b = blocks_state(0), blocks_state(1), blocks_state(2)
    layerwise = merge_state_dicts(base, [a, b], "layerwise", layer_weights=[[1.0, 1.0]] * 4)
    linear = merge_state_dicts(base, [a, b], "linear")
    assert all(torch.allclose(layerwise[k], linear[k], atol=1e-6, rtol=0) for k in a)


def test_held_out_batches_share_no_token_with_the_evaluations():
    data = np.arange(20_000, dtype=np.uint16)
    block, batch = 32, 8
    held = held_out_rows(data, batch, 5, block, eval_iters=10)
    assert len(held) == 5 and all(len(b) == batch for b in held)
    evaluated = [start for b in eval_rows(data, batch, 10, block) for _, start in b]
    for _, start in (row for b in held for row in b):
        assert all(abs(start - other) > block for other in evaluated)  # windows of block + 1 tokens: disjoint
    assert held == held_out_rows(data, batch, 5, block, eval_iters=10)  # the same batches every time
    with pytest.raises(ValueError, match="too few"):
        held_out_rows(data[:3000], batch, 50, block, eval_iters=10)


def test_the_grid_search_keeps_the_lowest_score():
    made = []

    def merge_with(**setting):
        made.append(setting)
        return setting
    score = lambda s: abs(s["lam"] - 1.5) + abs(s["density"] - 0.8)  # noqa: E731
    best, tried = tune.tune_grid("ties", merge_with, score)
    assert best == {"lam": 1.5, "density": 0.8} and len(tried) == len(made) == 12
    assert tune.grid("linear") == [{}] and len(tune.grid("task_arithmetic")) == 4


def test_layer_search_starts_at_averaging_and_finds_each_layers_best():
    target = [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.75, 0.25]]
    score = lambda s: sum(abs(w[0] - t[0]) for w, t in zip(s["layer_weights"], target)) + abs(s["lam"] - 1.5)  # noqa
    best, tried = tune.tune_layers(4, 2, lambda **s: s, score)
    assert tried[0][0] == {"layer_weights": [[0.5, 0.5]] * 4, "lam": 1.0}  # plain averaging first
    assert best == {"layer_weights": target, "lam": 1.5} and score(best) == 0
    assert tune.layer_choices(2) == [[0.5, 0.5], [0.75, 0.25], [1.0, 0.0], [0.25, 0.75], [0.0, 1.0]]


def test_the_kept_objective_asks_for_every_language():
    goal = tune.objective("kept", {"korean": (2.0, 6.0), "german": (2.0, 3.0)})
    korean_only = {"korean": 2.0, "german": 3.0}  # the Korean model itself: all of Korean, none of German
    both = {"korean": 3.0, "german": 2.5}  # 3/4 of Korean, 1/2 of German
    assert goal(korean_only) == 0.0 and goal(both) == -0.5 and goal(both) < goal(korean_only)
    assert tune.objective("mean", None)(korean_only) < tune.objective("mean", None)(both)  # the mean loss would not


def test_kept_fractions_read_each_seeds_specialists_and_merge():
    s = {"cpt_lr": 3e-4, "sweep_lrs": [1e-3], "merge_seeds": 2}
    L = {"hyperclone@0.001": {"korean": 2.0, "german": 3.0}, "german/hyper@0.001": {"korean": 6.0, "german": 2.0},
         "hyperclone@0.001-seed2": {"korean": 2.2, "german": 3.0},
         "german/hyper@0.001-seed2": {"korean": 6.2, "german": 2.0},
         "merged/hyper@0.001/ties": {"korean": 4.0, "german": 2.5},
         "merged/hyper@0.001/ties-seed2": {"korean": 5.2, "german": 2.5}, "joint/hyper": {"korean": 2.4, "german": 2.2}}
    r = {"settings": s, "losses": L, "merge_rates": {"base": 1e-3, "hyper": 1e-3}}
    assert readings.kept_fractions(r, "hyper", "ties", "korean") == [0.5, 0.25]
    assert readings.kept_fractions(r, "hyper", "ties", "german") == [0.5, 0.5]
    assert readings.kept_fractions(r, "hyper", "joint", "korean") == [0.9]
    mean, low, high, n = readings.kept(r, "hyper", "ties", "korean")
    assert (mean, n) == (0.375, 2) and low < 0.25 and high > 0.5  # t with 1 degree of freedom: wide
    assert mean_interval([0.9]) == (0.9, None, None)


def test_every_method_with_settings_has_a_grid_and_layerwise_is_a_method():
    assert set(tune.GRIDS) | {"layerwise"} == set(merge.METHODS)


def test_the_report_names_the_merge_that_keeps_both_and_what_tuning_for_it_cost():
    s = {"cpt_lr": 3e-4, "sweep_lrs": [1e-3], "merge_seeds": 2}
    L = {}
    for seed in ("", "-seed2"):
        L.update({f"hyperclone@0.001{seed}": {"korean": 2.0, "german": 3.0},
                  f"german/hyper@0.001{seed}": {"korean": 10.0, "german": 2.0},
                  f"joint/hyper{seed}": {"korean": 2.0, "german": 2.0},
                  f"merged/hyper@0.001/linear{seed}": {"korean": 4.0, "german": 2.8},  # keeps 0.75 and 0.2
                  f"merged/hyper@0.001/layerwise-tuned{seed}": {"korean": 6.0, "german": 2.5}})  # 0.5 and 0.5
    r = {"settings": s, "losses": L, "merge_rates": {"base": 1e-3, "hyper": 1e-3}}
    lines = report.kept_summary(r).strip().splitlines()
    assert lines[0] == ("- hyper: the merge that keeps most of the language it keeps least is layerwise-tuned (0.50 of "
                        "Korean, 0.50 of German); joint training keeps 1.00 and 1.00, 0.50 more of the language the "
                        "merge keeps least.")
    assert lines[1].startswith("- hyper: tuned to keep both languages, 1 of 5 tuned merges score worse")
    L.update({k: {"korean": 3.0, "german": 2.8} for k in L if "layerwise" in k})  # now better on both counts
    assert len(report.kept_summary(r).strip().splitlines()) == 1
