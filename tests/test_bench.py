"""
bench.py runs and reports what a frozen base saves. (Timings are not tested:
the benchmark is not a test; this only proves it works.)

    python -m pytest -q tests/test_bench.py
"""

import types

import torch

from tools import bench
from tests.conftest import run_script


def test_bench_runs_and_compares_frozen_with_all_trainable():
    r = run_script("-m", "tools.bench", "--configs=preserve", "--steps=2", "--warmup=1", "--rounds=1", "--dtype=float32")
    assert r.returncode == 0, r.stderr
    frozen, everything = [line.split() for line in r.stdout.splitlines() if line.startswith("preserve")]
    assert frozen[1] == "(frozen)" and everything[1] == "(all)"
    assert int(frozen[3].replace(",", "")) < int(everything[3].replace(",", ""))  # fewer trainable parameters
    assert float(frozen[8]) < float(everything[8])  # less optimizer state
    assert "matmul peak measured now: float32" in r.stdout
    assert "x faster" in r.stdout


def test_models_train_in_turn_each_round_starting_elsewhere(monkeypatch):
    """in_turn: a, b / b, a / a, b ...; the first step of every turn warms up and is not timed."""
    order = []
    monkeypatch.setattr(bench, "optimizer_step", lambda model, *rest: order.append(model.name))
    model = lambda name: types.SimpleNamespace(name=name, config=types.SimpleNamespace(block_size=4, vocab_size=8))  # noqa: E731
    runs = {k: (model(k), None, [], None, 2) for k in ("a", "b")}
    speed = bench.in_turn(runs, rounds=3, steps=2)
    assert order == ["a"] * 3 + ["b"] * 3 + ["b"] * 3 + ["a"] * 3 + ["a"] * 3 + ["b"] * 3
    assert set(speed) == {"a", "b"} and all(v > 0 for v in speed.values())


def test_freeze_unseen_freezes_the_rows_of_unseen_bytes_too():
    _, spec, _ = bench.build("preserve", frozen=True)
    mask = spec["transformer.wte.weight"]  # True = frozen: the rows of the ASCII bytes the base saw
    assert mask[:128].all() and not mask[128:].any()
    _, spec, _ = bench.build("preserve", frozen=True, train_unseen=False)
    assert spec["transformer.wte.weight"] is True


def test_bench_rejects_unknown_configurations():
    r = run_script("-m", "tools.bench", "--configs=huge")
    assert r.returncode == 1 and r.stderr.startswith("error: unknown configuration 'huge'")


def test_sampling_benchmark_compares_cached_with_recomputed():
    r = bench.time_sampling(tokens=20, reps=1)
    assert r["identical"] and r["cached_s"] > 0 and r["recomputed_s"] > 0


def test_merge_benchmark_runs_merge_py_in_its_own_process():
    r = bench.time_merge("global", dict(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=64))
    assert r["seconds"] > 0 and r["peak_mb"] > 0


def test_nanogpt_side_by_side_times_both_models_from_the_same_weights(tmp_path):
    # a stand-in for a nanoGPT clone: its model.py has nanoGPT's interface (GPTConfig with bias and dropout,
    # GPT(config), forward(idx, targets) -> (logits, loss)); here it is ours under nanoGPT's names
    (tmp_path / "model.py").write_text("from model import GPT, GPTConfig\n")
    nano = bench.load_nanogpt(str(tmp_path))
    runs = bench.nanogpt_models(nano, dict(bench.CONFIGS["tiny"][0], dropout=0.0, bias=True))
    theirs = runs["nanoGPT, float32 (its CPU default)"][0].state_dict()
    for label, (model, _) in runs.items():
        assert all(torch.equal(v, theirs[k]) for k, v in model.state_dict().items()), label
    gelus = [m.transformer.h[0].mlp.gelu.approximate for m, _ in runs.values()]
    assert gelus == ["tanh", "tanh", "none", "tanh"]  # ours keeps GPT-2's; the third shows nanoGPT's exact one
    rows = bench.nanogpt_side_by_side(str(tmp_path), rounds=2, steps=1, config="tiny")
    assert [label for label, _ in rows] == list(runs) and all(tok_s > 0 for _, tok_s in rows)


def test_nanogpt_side_by_side_needs_a_clone():
    r = run_script("-m", "tools.bench", "--nanogpt=no/such/folder")
    assert r.returncode == 1 and r.stderr.startswith("error: --nanogpt=no/such/folder: no model.py there")
