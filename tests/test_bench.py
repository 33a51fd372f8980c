"""
bench.py runs and reports what a frozen base saves. (Timings are not tested:
the benchmark is not a test; this only proves it works.)

    python -m pytest -q tests/test_bench.py
"""

from tests.conftest import run_script


def test_bench_runs_and_compares_frozen_with_all_trainable():
    r = run_script("bench.py", "--configs=scale-preserve", "--steps=2", "--warmup=1", "--dtype=float32")
    assert r.returncode == 0, r.stderr
    frozen, everything = [line.split() for line in r.stdout.splitlines() if line.startswith("scale-preserve")]
    assert frozen[1] == "(frozen)" and everything[1] == "(all)"
    assert int(frozen[3].replace(",", "")) < int(everything[3].replace(",", ""))  # fewer trainable parameters
    assert float(frozen[5]) < float(everything[5])  # less optimizer state
    assert "x faster" in r.stdout


def test_bench_rejects_unknown_configurations():
    r = run_script("bench.py", "--configs=huge")
    assert r.returncode == 1 and r.stderr.startswith("error: unknown configuration 'huge'")
