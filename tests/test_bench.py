"""
bench.py runs and reports what a frozen base saves. (Timings are not tested:
the benchmark is not a test; this only proves it works.)

    python -m pytest -q tests/test_bench.py
"""

import bench
from tests.conftest import run_script


def test_bench_runs_and_compares_frozen_with_all_trainable():
    r = run_script("bench.py", "--configs=preserve", "--steps=2", "--warmup=1", "--dtype=float32")
    assert r.returncode == 0, r.stderr
    frozen, everything = [line.split() for line in r.stdout.splitlines() if line.startswith("preserve")]
    assert frozen[1] == "(frozen)" and everything[1] == "(all)"
    assert int(frozen[3].replace(",", "")) < int(everything[3].replace(",", ""))  # fewer trainable parameters
    assert float(frozen[8]) < float(everything[8])  # less optimizer state
    assert "matmul peak measured now: float32" in r.stdout
    assert "x faster" in r.stdout


def test_bench_rejects_unknown_configurations():
    r = run_script("bench.py", "--configs=huge")
    assert r.returncode == 1 and r.stderr.startswith("error: unknown configuration 'huge'")


def test_sampling_benchmark_compares_cached_with_recomputed():
    r = bench.time_sampling(tokens=20, reps=1)
    assert r["identical"] and r["cached_s"] > 0 and r["recomputed_s"] > 0


def test_merge_benchmark_runs_merge_py_in_its_own_process():
    r = bench.time_merge("global", dict(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=64))
    assert r["seconds"] > 0 and r["peak_mb"] > 0
