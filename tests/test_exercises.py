"""
The exercises are solvable as written: every check passes on the reference
solutions, fails on the untouched student file, and the sweeps behind
exercises 8-10 run (on tiny data here).

    python -m pytest -q tests/test_exercises.py
"""

import json
import os
import sys

import pytest

import train
from data.common import write_dataset
from tests.conftest import REPO, TINY, run_script, synthetic_german


def test_every_check_passes_on_the_reference_solutions():
    r = run_script("exercises/check.py", "all", "--reference")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(": PASS") == 15


def test_every_check_fails_on_the_untouched_student_file():
    r = run_script("exercises/check.py", "all")
    assert r.returncode == 1
    assert r.stdout.count("FAIL — not done yet") == 15 and "PASS" not in r.stdout


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, data_dir):
    d = tmp_path_factory.mktemp("ex")
    write_dataset("german", synthetic_german(1000), "bytes", "test", data_dir=data_dir)
    train.main(TINY + ["--n-layer=4", f"--data-dir={data_dir}", f"--out-dir={d}/base", "--max-iters=10"])
    return d, f"{d}/base/ckpt.pt"


@pytest.mark.parametrize("which", ["replay", "factor", "ties"])
def test_sweeps_run_and_feed_the_checks(which, tiny_base, data_dir):
    d, base = tiny_base
    out = f"{d}/out/exercises"
    flags = [f"--base={base}", f"--data-dir={data_dir}", "--iters=4", "--eval-iters=1", f"--out={out}"]
    if which == "ties":  # a Korean and a German model continued from the tiny base
        for lang in ("korean", "german"):
            train.main([f for f in TINY if not f.startswith(("--n-", "--block"))] + [f"--init-from={base}", f"--dataset={lang}", f"--eval-datasets={lang}",
                               f"--data-dir={data_dir}", f"--out-dir={d}/{lang}", "--max-iters=4"])
        flags += [f"--ancestor={base}", f"--ko={d}/korean/ckpt.pt", f"--de={d}/german/ckpt.pt"]
    r = run_script(os.path.join(REPO, "exercises/sweep.py"), which, *flags, cwd=d)
    assert r.returncode == 0, r.stderr
    assert os.path.getsize(f"{out}/{which}.png") > 5_000
    number = {"replay": 8, "ties": 9, "factor": 10}[which]
    r = run_script(os.path.join(REPO, "exercises/check.py"), str(number), "--reference", cwd=d)
    assert r.returncode == 0 and "PASS" in r.stdout and "run the exercise's command" not in r.stdout, r.stdout


def test_the_ties_sweep_takes_the_models_the_experiments_merges_used(tmp_path):
    """After an experiment the sweep merges the 2x HyperClone's Korean and German models at the rate the
    report's merges used (results.json's merge_rates); before one, a one-line error says what to run."""
    sys.path.insert(0, os.path.join(REPO, "exercises"))
    import sweep
    (tmp_path / "results.json").write_text(json.dumps({"merge_rates": {"base": 3e-3, "hyper": 1e-3},
                                                       "settings": {"cpt_lr": 3e-4}}))
    assert sweep.experiment_models(str(tmp_path)) == (f"{tmp_path}/korean/hyperclone@0.001/ckpt.pt",
                                                      f"{tmp_path}/german/hyper@0.001/ckpt.pt")
    r = run_script(os.path.join(REPO, "exercises/sweep.py"), "ties", f"--experiment={tmp_path}/none", cwd=tmp_path)
    assert r.returncode != 0 and r.stderr.strip().splitlines() == [
        f"error: {tmp_path}/none/results.json not found: run python experiment.py first, or pass --ko and --de"]


def student_package(folder, edits):
    """An `exercises` package in folder whose student.py is the reference solutions with `edits`
    {line: replacement} made: a student's file with their bugs, found first on PYTHONPATH."""
    package = folder / "exercises"
    package.mkdir()
    (package / "__init__.py").write_text("")
    text = open(os.path.join(REPO, "exercises", "solutions.py")).read()
    for line, replacement in edits.items():
        text = text.replace(line, replacement)
    (package / "student.py").write_text(text)


def test_a_student_bug_fails_that_exercise_only(tmp_path, monkeypatch):
    """A KeyError typo in exercise 3 and a wrong return shape in exercise 6: those two FAIL with the
    error's type, message and the student's file and line; every other exercise still runs and passes."""
    student_package(tmp_path, {
        "def depth_without_zero_init(sd, margs):": "def depth_without_zero_init(sd, margs):\n    sd['transformer.h.0.oops']\n",
        "def ties_by_hand():": "def ties_by_hand():\n    return None\n\n\ndef _unused():"})
    r = run_script("exercises/check.py", "all", env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    lines = [line for line in r.stdout.splitlines() if line.startswith("exercise ")]
    assert r.returncode == 1 and len(lines) == 15, r.stdout + r.stderr
    assert lines[2].startswith("exercise 3: FAIL — KeyError: 'transformer.h.0.oops' (at ") and "student.py:" in lines[2]
    assert lines[5].startswith("exercise 6: FAIL")
    assert all(": PASS" in line for i, line in enumerate(lines) if i not in (2, 5)), r.stdout


def test_the_checker_says_which_step_went_wrong():
    """Exercise 6's usual mistakes are named; exercise 3's kept zero init and wrong return shape are told apart."""
    import types
    import torch
    from exercises import check, checks, solutions
    taus = [torch.tensor(t, dtype=torch.float64) for t in checks.TAUS]
    by_three = checks.ties_steps(taus, count_agreeing=False)[2].tolist()
    by_votes = checks.ties_steps(taus, sign_by_mass=False)[2].tolist()
    verdict = lambda n, **f: check.run_check(n, types.SimpleNamespace(**f))[1]  # noqa: E731
    right = solutions.ties_by_hand()
    steps = lambda **change: lambda: dict(right, **change)  # noqa: E731 (the reference with one step changed)
    assert "step 3 (disjoint mean)" in verdict(6, ties_by_hand=steps(merged=by_three)) and \
        "you divided by the number of models" in verdict(6, ties_by_hand=steps(merged=by_three))
    assert "step 1 (trim) first differs at τ2, coordinate 1: yours [-0.5, 0.2, 0.0, -0.3]" in verdict(
        6, ties_by_hand=steps(trimmed=[right["trimmed"][0], [-0.5, 0.2, 0, -0.3], right["trimmed"][2]]))
    by_vote_signs = checks.ties_steps(taus, sign_by_mass=False)[1].tolist()
    assert "step 2 (elect the sign)" in verdict(6, ties_by_hand=steps(sign=by_vote_signs)) and \
        "you counted votes" in verdict(6, ties_by_hand=steps(sign=by_vote_signs))
    assert "this is the merge with signs elected by counting votes" in verdict(6, ties_by_hand=steps(merged=by_votes))
    assert "return a dict with the steps" in verdict(6, ties_by_hand=lambda: None)
    assert ": PASS" in verdict(6, ties_by_hand=solutions.ties_by_hand)
    no_rescale = lambda tau, d, gen: (lambda keep: (keep, torch.where(keep, tau, 0 * tau)))(  # noqa: E731
        solutions.dare(tau, d, gen)[0])
    assert "step 2 (rescale) first differs at kept entry" in verdict(7, dare=no_rescale) and \
        "(not rescaled)" in verdict(7, dare=no_rescale)
    assert "return its two steps" in verdict(7, dare=lambda tau, d, gen: solutions.dare(tau, d, gen)[1])
    assert ": PASS" in verdict(7, dare=solutions.dare)
    assert "kept grow_depth's zero init" in verdict(3, depth_without_zero_init=lambda sd, margs: checks.scale.grow_depth(
        sd, margs, every=1, top=0)[:2])
    assert "two values" in verdict(3, depth_without_zero_init=lambda sd, margs: checks.scale.grow_depth(sd, margs, 1, 0))
    assert ": PASS" in verdict(3, depth_without_zero_init=solutions.depth_without_zero_init)


def test_a_student_loop_or_memory_hog_fails_that_exercise_only(tmp_path):
    """Exercise 1 never returns and exercise 2 eats memory: each is stopped at its limit and is that
    exercise's FAIL, saying which limit; exercise 3 still runs and passes."""
    student_package(tmp_path, {
        "def n_params(n_layer, n_embd, vocab_size, block_size):":
            "def n_params(n_layer, n_embd, vocab_size, block_size):\n    while True:\n        pass\n",
        "def forgetting(log_path):": "def forgetting(log_path):\n    hog = []\n    while True:\n        hog.append(bytearray(2**26))\n"})
    r = run_script("exercises/check.py", "all", "--time-limit=8", "--memory-limit=2",
                   env=dict(os.environ, PYTHONPATH=str(tmp_path)))
    lines = [line for line in r.stdout.splitlines() if line.startswith("exercise ")]
    assert r.returncode == 1 and len(lines) == 15, r.stdout + r.stderr
    assert lines[0].startswith("exercise 1: FAIL — still running after 8 s"), lines[0]
    assert lines[1].startswith("exercise 2: FAIL") and "2 GiB" in lines[1], lines[1]
    assert lines[2].startswith("exercise 3: PASS"), lines[2]
