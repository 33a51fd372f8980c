"""
experiment.py --preset=quick runs every stage end to end, writes the report,
and a second run skips every finished stage. Also the bios generator and its
exact-match scoring.

    python -m pytest -q tests/test_experiment.py
"""

import json
import os
import re
import shutil
import signal
import types

import numpy as np
import pytest
import torch

from lab import claims, readings
import experiment
from lab import tracks
from lab.rules import SEED_OFFSET
from lab.tracks import Plan
from lab import measure
from lab import report
from lab import stages
from data.bios.prepare import ATTRIBUTES, dataset_names, exact_match, populations, prepare, questions
from data.common import write_dataset
from model import GPT, GPTConfig
from checkpoint import load_checkpoint
from tests.conftest import synthetic_english, synthetic_german, synthetic_korean
from plumbing.cli import UserError


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("exp")
    data = str(d / "data")
    write_dataset("english", synthetic_english(2000), "bytes", "test", data_dir=data)
    write_dataset("korean", synthetic_korean(1000), "bytes", "test", data_dir=data)
    write_dataset("german", synthetic_german(1000), "bytes", "test", data_dir=data)
    out = str(d / "out")
    experiment.main(["--preset=quick", "--jobs=1", "--threads=1", f"--data-dir={data}", f"--out-dir={out}"])
    return data, out


def test_quick_experiment_writes_the_report(quick_run):
    data, out = quick_run
    results = json.load(open(os.path.join(out, "results.json")))
    for run in ["base", "full", "full-seed2", "full+replay", "full-long", "joint/hyper", "joint/hyper-seed2",
                "route+replay", "hyperclone-seed2", *tracks.GROW]:
        assert set(results["losses"][run]) == {"english", "korean", "german"}
    rates, lr0 = results["merge_rates"], experiment.PRESETS["quick"]["cpt_lr"]
    for anc, recipe in experiment.MERGE_ANCESTORS:  # the rate chosen is the one of the lowest final Korean loss
        tried = [results["losses"][tracks.at_rate(recipe, lr, results["settings"])]["korean"]
                 for lr in [lr0, *results["settings"]["sweep_lrs"]]]
        assert results["losses"][tracks.at_rate(recipe, rates[anc], results["settings"])]["korean"] == min(tried)
    # 5 methods at merge.py's defaults and 5 tuned (all but linear, and layerwise), 2 seeds, each ancestor at
    # its own rate and at the default rate (C7b)
    n_rates = sum(len({rates[a], lr0}) for a in rates)
    assert len([k for k in results["losses"] if k.startswith("merged/")]) == 20 * n_rates
    for name, chosen in results["tuned"].items():  # seed 0 chose; seed 2 merged with what it chose
        seed2 = results["stages"][os.path.join(out, f"{name}-seed2.pt")]["cmd"]
        assert "--tune=korean,german" in results["stages"][os.path.join(out, f"{name}.pt")]["cmd"]
        assert "--tune" not in seed2 and f"--lambda={chosen['λ']:g}" in seed2
    assert len(results["tuned"]) == 5 * n_rates
    for a, recipe in experiment.MERGE_ANCESTORS:  # each ancestor's merges, German and joint model at its rate
        at = lambda name: readings.at_rate(name, rates[a], results["settings"])  # noqa: E731
        for name in (f"{at(f'merged/{a}')}/ties-seed2", f"{at(f'german/{a}')}-seed2", f"{at(recipe)}-seed2"):
            assert name in results["losses"]
    for a in rates:
        assert f"--learning-rate={rates[a]}" in results["stages"][os.path.join(out, "joint", a)]["cmd"]
    assert results["logs"]["hyperclone-long"][-1]["iter"] == 16 and results["logs"]["full-long"][-1]["iter"] == 16
    assert results["long_rates"] == {"full-long": rates["base"], "hyperclone-long": rates["hyper"]}
    for run, lr in results["long_rates"].items():
        assert f"--learning-rate={lr}" in results["stages"][os.path.join(out, "korean", run)]["cmd"]
    assert results["params"]["preserve"][1] < results["params"]["preserve"][0]  # the base is frozen
    assert results["flops_per_token"]["hyperclone"] > 3 * results["flops_per_token"]["full-long"]
    text = open(os.path.join(out, "report", "REPORT.md")).read()
    for part in ["C1", "C2a", "C2b", "C3a", "C3b", "C3c", "C4", "C5", "C6", "C7a", "C7b", "C7c"]:
        assert f"| {part} |" in text
    assert text.index("## The verdicts") < text.index("## The rules") < text.index("## How it ran")
    assert json.load(open(os.path.join(out, "report", "results.json"))) == results  # the report's own copy
    flops = results["logs"]["full-flops-seed2"]  # C4's 1x: its own run to the 2x run's FLOPs, every seed
    assert flops[-1]["iter"] == results["flops_iters"] == round(
        8 * results["flops_per_token"]["growup"] / results["flops_per_token"]["full-flops"])
    for k in range(2):  # every seed of a compared method runs every rate of the first round
        assert readings.seeded("depth@0.003", k) in results["losses"]
        assert [run["seed"] for run in results["bios"]["sweep"]["depth@0.003"]] == [0, 1]
    assert set(results["choice"]) >= {"full", "full@0.003", "growup@0.003"}  # the held-out losses rates are chosen on
    assert f"--seed={1337 + SEED_OFFSET + 1}" in results["stages"][os.path.join(out, "korean", "full-seed2")]["cmd"]
    assert results["symmetry"]["hyperclone-noiseless"]["clone_gap"] == 0 < results["symmetry"]["hyperclone"]["clone_gap"]
    assert set(results["gate"]) == {"route", "route+replay"} and 0 < results["gate"]["route"]["korean"] < 1
    assert "full@0.003" in results["losses"] and "full-seed2" in results["losses"]  # the sweep and the seeds
    for name in tracks.COMPARED:  # two rates in the first round: every best is at an end, tried past it
        assert len([lr for lr in readings.rates_tried(results, name) if lr in (3e-4, 1e-2)]) == 1
    assert set(results["bios"]["sweep"]) == {f"{m}@0.003" for m in experiment.PRESETS["quick"]["bios_methods"]}
    assert results["before"]["growup-seed2"] == "growup/base-2x"  # Grow Up's 2x forgets from its own start
    assert readings.forgetting(results, "growup") == pytest.approx(
        results["losses"]["growup"]["english"] - results["losses"]["growup/base-2x"]["english"])
    assert results["params"]["growup"] == results["params"]["hyperclone"] and "growup@0.003" in results["losses"]
    for png in ["curves.png", "frontier.png", "data_efficiency.png", "merges.png", "bios_frontier.png"]:
        assert os.path.getsize(os.path.join(out, "report", png)) > 10_000


def test_the_report_command_remakes_the_report_byte_for_byte(quick_run, tmp_path):
    """python -m lab.report on a run's results.json writes the REPORT.md the run wrote."""
    _, out = quick_run
    report.main([os.path.join(out, "results.json"), f"--report-dir={tmp_path}"])
    assert open(tmp_path / "REPORT.md").read() == open(os.path.join(out, "report", "REPORT.md")).read()


def test_the_report_command_writes_beside_its_numbers(quick_run, tmp_path):
    """Without --report-dir the report goes where its results.json is: a lesson's report folder, never report/."""
    _, out = quick_run
    shutil.copy(os.path.join(out, "report", "results.json"), tmp_path / "results.json")
    report.main([str(tmp_path / "results.json")])
    assert open(tmp_path / "REPORT.md").read() == open(os.path.join(out, "report", "REPORT.md")).read()


@pytest.mark.parametrize("preset, config, where", [("default", None, "report"),
                                                   ("default", "my.json", os.path.join("out", "x", "report")),
                                                   ("class", None, os.path.join("out", "x", "report"))])
def test_only_the_default_run_as_it_stands_writes_the_committed_report(preset, config, where):
    assert report.report_dir(preset, os.path.join("out", "x"), config) == where


def test_each_ancestor_is_merged_at_the_rate_its_korean_loss_is_lowest(tmp_path, monkeypatch):
    """merge_rates reads the finished sweep's final Korean losses; the German and joint models then queue at
    that rate."""
    s = dict(experiment.PRESETS["default"], sweep_lrs=[1e-4, 1e-3])
    runs, loss = {"base": str(tmp_path / "base" / "ckpt.pt")}, {}
    ends = {"full": {3e-4: 2.6, 1e-4: 3.3, 1e-3: 2.1}, "hyperclone": {3e-4: 2.3, 1e-4: 2.8, 1e-3: 2.4}}
    for recipe, by_rate in ends.items():
        for lr, korean in by_rate.items():
            name = tracks.at_rate(recipe, lr, s)
            runs[name] = str(tmp_path / name / "ckpt.pt")
            loss[runs[name]] = korean
    asked = []
    rates = tracks.merge_rates(s, runs, lambda paths: asked.extend(paths) or {p: loss[p] for p in paths})
    assert rates == {"base": 1e-3, "hyper": 3e-4} and sorted(asked) == sorted(loss)  # every rate tried, once
    grown = {tracks.seed_name("hyperclone", k): str(tmp_path / f"grown-{k}.pt") for k in range(3)}
    for recipe in ends:  # every seed ran every rate of the sweep
        runs.update({tracks.seed_name(tracks.at_rate(recipe, lr, s), k): str(tmp_path / f"{recipe}{lr}{k}.pt")
                     for lr in ends[recipe] for k in (1, 2)})
    plan = Plan(experiment.Stages(str(tmp_path / "out"), jobs=2, threads=1), s, str(tmp_path / "out"), str(tmp_path),
                runs, grown)
    tracks.best_rate_track(plan, rates)
    st = plan.stages
    cmds = {q["out"].split("/out/")[1]: q["cmd"] for q in st.queue}
    # every merge seed: at each one's rate, and at the default rate common to both (C7b); the joint models
    assert set(cmds) == {f"{name}{k}" for k in ("", "-seed2", "-seed3") for name in (
        "german/base@0.001", "german/base", "german/hyper", "joint/base", "joint/hyper")}
    assert f"--seed={1337 + SEED_OFFSET + 2}" in cmds["german/base@0.001-seed3"]  # 1337 + the seed offset + 2
    assert "--learning-rate=0.001" in cmds["german/base@0.001"] and "--dataset=german" in cmds["german/base@0.001"]
    assert "--learning-rate=0.001" in cmds["joint/base"] and "--learning-rate=0.0003" in cmds["joint/hyper"]
    assert f"--init-from={grown['hyperclone-seed3']}" in cmds["german/hyper-seed3"]  # from seed 3's own growth
    assert f"--init-from={grown['hyperclone']}" in cmds["joint/hyper"]
    st.run = lambda *args, **kw: None  # the merges' names only: nothing here exists to merge
    monkeypatch.setattr(tracks, "chosen_flags", lambda merges: [])
    merges = tracks.merge_track(plan, rates)
    untuned = [m for m in tracks.merge.METHODS if m != "layerwise"]
    assert set(merges) == {f"{a}/{m}" + k for a in ("base@0.001", "base", "hyper")
                           for m in untuned + [f"{m}-tuned" for m in tracks.TUNED] for k in ("", "-seed2", "-seed3")}
    assert "linear" not in tracks.TUNED and "layerwise" in tracks.TUNED


def test_one_merge_seed_makes_one_german_model_at_each_rate_merged(tmp_path):
    """With merge_seeds=1 (the class preset) an ancestor gets one German model at its own rate and one at the
    default rate (C7b's common rate), a single one where the two are the same."""
    s = experiment.read_settings("class", None)
    plan = Plan(experiment.Stages(str(tmp_path / "out"), jobs=2, threads=1), s, str(tmp_path / "out"), str(tmp_path),
                {"base": str(tmp_path / "base.pt")})
    tracks.language_track(plan)
    st = plan.stages
    assert not any("german" in q["out"] for q in st.queue)
    st.queue.clear()
    tracks.best_rate_track(plan, {"base": 3e-4, "hyper": 1e-3})
    cmds = {q["out"].split("/out/")[1]: q["cmd"] for q in st.queue}
    assert set(cmds) == {"german/base", "german/hyper@0.001", "german/hyper", "joint/base", "joint/hyper"}
    assert "--learning-rate=0.0003" in cmds["german/base"] and "--learning-rate=0.001" in cmds["german/hyper@0.001"]


def test_a_second_run_skips_finished_stages(quick_run, capsys):
    data, out = quick_run
    capsys.readouterr()
    experiment.main(["--preset=quick", "--jobs=1", "--threads=1", f"--data-dir={data}", f"--out-dir={out}"])
    printed = capsys.readouterr().out
    assert "$ python" not in printed and "wrote" in printed


def test_an_interrupted_training_stage_resumes(tmp_path, quick_run):
    data, _ = quick_run
    st = experiment.Stages(str(tmp_path))
    argv = ["--n-layer=2", "--n-head=2", "--n-embd=16", "--block-size=16", "--batch-size=2", "--eval-iters=1",
            f"--data-dir={data}", "--dataset=english", "--eval-interval=2"]
    run_dir = str(tmp_path / "run")

    class CtrlCAfter4Steps(dict):  # what train.catch_ctrl_c returns, pressed during step 4
        def __getitem__(self, key):
            self.reads = getattr(self, "reads", 0) + 1
            return self.reads > 4

    real = stages.train.catch_ctrl_c
    stages.train.catch_ctrl_c = lambda: CtrlCAfter4Steps()
    try:
        with pytest.raises(UserError, match="interrupted"):
            st.train("test", run_dir, argv, 8)
            st.wait()
    finally:
        stages.train.catch_ctrl_c = real
    assert load_checkpoint(os.path.join(run_dir, "ckpt.pt"))["iter_num"] == 4
    st.train("test", run_dir, argv, 8)
    st.wait()  # resumes from step 4 with the saved settings
    log = [json.loads(line) for line in open(os.path.join(run_dir, "log.jsonl"))]
    assert log[-1]["iter"] == 8 and load_checkpoint(os.path.join(run_dir, "ckpt.pt"))["iter_num"] == 8


def test_a_run_started_with_ctrl_c_ignored_still_stops_on_it(tmp_path):
    """A shell's `nohup python experiment.py &` starts Python with SIGINT ignored; the run takes it back."""
    cfg = tmp_path / "c.json"
    cfg.write_text('{"cpt_iterz": 5}')
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with pytest.raises(UserError):
            experiment.main([f"--config={cfg}", f"--out-dir={tmp_path}"])
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_unknown_config_settings_are_refused(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"cpt_iterz": 5}')
    with pytest.raises(UserError, match="unknown setting.*cpt_iterz"):
        experiment.main([f"--config={cfg}", f"--out-dir={tmp_path}"])


@pytest.mark.parametrize("text, message", [
    ('{"cpt_iters": -5}', "cpt_iters=-5 is not a whole number >= 1"),
    ('{"cpt_iters": 2.5}', "cpt_iters=2.5 is not a whole number >= 1"),
    ('{"seeds": true}', "seeds=true is not a whole number >= 1"),
    ('{"long_factor_2x": -1}', "long_factor_2x=-1 is not a whole number >= 0"),
    ('{"cpt_lr": 0}', "cpt_lr=0 is not a number > 0"),
    ('{"cpt_lr": "3e-4"}', 'cpt_lr="3e-4" is not a number > 0'),
    ('{"replay": 1.5}', "replay=1.5 is not a number > 0 and < 1"),
    ('{"sweep_lrs": [1e-3, -1]}', "is not a list of one or more learning rates > 0"),
    ('{"sweep_lrs": []}', "is not a list of one or more learning rates > 0"),
    ('{"sweep_edge_lrs": [1e-2, 1e-2]}', "is not [] (no rate past the sweep's ends) or a list of different"),
    ('{"sweep_edge_lrs": [0, 1e-2]}', "a list of different learning rates > 0"),
    ('{"sweep_edge_lrs": 1e-2}', "a list of different learning rates > 0"),
    ('{"sweep_edge_lrs": [1e-2, 5e-4]}', "must lie beyond the sweep's ends (0.0001 and 0.003)"),
    ('{"bios_methods": ["full", "preserve"]}', "with full, depth and preserve among them"),
    ('{"bios_methods": ["full", "nosuch"]}', "is not a list of methods from full, depth"),
    ('{"bios_korean": 1}', "bios_korean=1 is not true or false"),
    ('{"sweep_below": ["nosuch"]}', 'sweep_below=["nosuch"] is not a list of methods from full, full+replay'),
    ('{"bios_sweep_below": "preserve"}', 'bios_sweep_below="preserve" is not a list of methods from full, depth'),
    ('[1, 2]', "must hold one JSON object of settings"),
    ('{"seeds": 2, "merge_seeds": 3}', "merge_seeds=3 must be from 1 to seeds=2"),
])
def test_config_values_are_checked_before_anything_runs(tmp_path, text, message):
    cfg = tmp_path / "c.json"
    cfg.write_text(text)
    with pytest.raises(UserError, match=re.escape(message)):
        experiment.main([f"--config={cfg}", f"--out-dir={tmp_path / 'out'}", "--jobs=1", "--threads=1"])
    assert not os.path.exists(tmp_path / "out")  # refused before any stage (or folder) was made


def test_a_best_rate_at_an_end_of_the_sweep_is_followed_one_rate_a_round(tmp_path):
    """edge_track reads the final Korean losses (seed 0) of every rate a method tried: a method whose lowest
    is at its highest rate gets the nearest of sweep_edge_lrs above it, at its lowest the nearest below,
    inside nothing; from the start its sweep trained from, with replay where it has it. A next round
    follows a best still at an end one rate further, and stops where sweep_edge_lrs end."""
    s = dict(experiment.PRESETS["default"], sweep_lrs=[1e-4, 1e-3], sweep_edge_lrs=[3e-2, 1e-5, 3e-5, 1e-2])
    best = {"full": 1e-3, "full+replay": 1e-3, "depth": 1e-4, "hyperclone": 3e-4, "growup": 1e-3,
            "preserve": 3e-4, "route+replay": 3e-4}
    runs, loss = {"base": "base.pt", "growup/base-2x": "growup-2x.pt"}, {}
    for name, lowest in best.items():
        for lr in (1e-4, 3e-4, 1e-3):
            runs[tracks.at_rate(name, lr, s)] = path = f"{name}@{lr:g}.pt"
            loss[path] = 2.0 if lr == lowest else 3.0
    grown = {"depth": "grown-depth.pt"}
    korean = lambda ps: {p: loss[p] for p in ps}  # noqa: E731
    plan = lambda out, settings=s: Plan(experiment.Stages(str(tmp_path / out), jobs=2, threads=1), settings,  # noqa: E731
                                        str(tmp_path / out), str(tmp_path), runs, grown)
    st = (p := plan("out")).stages
    assert tracks.edge_track(p, korean) == 4
    cmds = {q["out"].split("/out/")[1]: q["cmd"] for q in st.queue}
    assert set(cmds) == {"korean/full@0.01", "korean/full+replay@0.01", "korean/depth@3e-05", "korean/growup@0.01"}
    assert "--learning-rate=0.01" in cmds["korean/full@0.01"] and "--init-from=base.pt" in cmds["korean/full@0.01"]
    assert "--replay=english:0.05" in cmds["korean/full+replay@0.01"] and "replay" not in cmds["korean/full@0.01"]
    assert "--learning-rate=3e-05" in cmds["korean/depth@3e-05"] and "--init-from=grown-depth.pt" in cmds[
        "korean/depth@3e-05"]
    assert "--init-from=growup-2x.pt" in cmds["korean/growup@0.01"] and runs["growup@0.01"].endswith("ckpt.pt")
    # round 2: full better again at 0.01, depth worse at 3e-5 (its best 1e-4 is now inside), growup better
    # again at 0.01, full+replay worse
    loss.update({runs["full@0.01"]: 1.0, runs["full+replay@0.01"]: 4.0, runs["depth@3e-05"]: 4.0,
                 runs["growup@0.01"]: 1.0})
    st = (p := plan("out2")).stages
    assert tracks.edge_track(p, korean) == 2
    assert {q["out"].split("/out2/")[1] for q in st.queue} == {"korean/full@0.03", "korean/growup@0.03"}
    loss.update({runs["full@0.03"]: 0.5, runs["growup@0.03"]: 5.0})  # round 3: full still best at its end
    st = (p := plan("out3")).stages
    assert tracks.edge_track(p, korean) == 0
    assert st.queue == []  # nothing past 0.03 in sweep_edge_lrs: the rounds end
    st = (p := plan("out4", dict(s, sweep_edge_lrs=[]))).stages
    assert tracks.edge_track(p, korean) == 0
    assert st.queue == []  # sweep_edge_lrs=[]: no rate past the ends


@pytest.mark.parametrize("long_factor_2x", [4, 0])
def test_the_long_runs_train_at_each_ancestors_rate(tmp_path, long_factor_2x):
    """The data-efficiency runs queue after the sweep, each at its ancestor's rate (merge_rates), from seed
    0's ancestor, long_factor (long_factor_2x) times cpt_iters; long_factor_2x=0 leaves the 2x one out."""
    s = dict(experiment.PRESETS["default"], long_factor=12, long_factor_2x=long_factor_2x)
    runs, grown = {"base": str(tmp_path / "base.pt")}, {"hyperclone": str(tmp_path / "grown.pt")}
    plan = Plan(experiment.Stages(str(tmp_path / "out"), jobs=2, threads=1), s, str(tmp_path / "out"), str(tmp_path),
                runs, grown)
    tracks.long_track(plan, {"base": 3e-3, "hyper": 1e-3})
    st = plan.stages
    queued = {q["out"].split("/out/")[1]: q for q in st.queue}
    assert set(queued) == {"korean/full-long"} | ({"korean/hyperclone-long"} if long_factor_2x else set())
    full = queued["korean/full-long"]
    assert full["iters"] == 12 * s["cpt_iters"] and "--learning-rate=0.003" in full["cmd"]
    assert f"--eval-interval={2 * s['eval_interval']}" in full["cmd"]
    assert f"--init-from={runs['base']}" in full["cmd"] and runs["full-long"].startswith(full["out"])
    if long_factor_2x:
        wide = queued["korean/hyperclone-long"]
        assert wide["iters"] == 4 * s["cpt_iters"] and "--learning-rate=0.001" in wide["cmd"]
        assert f"--init-from={grown['hyperclone']}" in wide["cmd"]


@pytest.mark.parametrize("preset", ["default", "class", "quick"])
def test_lesson_growths_run_only_where_the_preset_says(tmp_path, preset):
    """The default and class presets leave out the growths no claim or diagnostic reads (quick keeps them);
    every other run is queued."""
    s = experiment.read_settings(preset, None)
    plan = Plan(experiment.Stages(str(tmp_path), jobs=2, threads=1), s, str(tmp_path), str(tmp_path),
                {"base": str(tmp_path / "base" / "ckpt.pt")})
    tracks.language_track(plan)
    st, runs = plan.stages, plan.runs
    assert tracks.LESSON_GROWTHS == ["solar", "ffn", "adapt"]
    kept = [g for g in tracks.GROW if g not in tracks.LESSON_GROWTHS]
    assert all(g in runs for g in kept + ["full", "full+replay", "route+replay"])
    assert not any(k.startswith("german") or k.endswith("-long") for k in runs)  # they wait for the rate
    assert all((g in runs) == s["lesson_growths"] for g in tracks.LESSON_GROWTHS)
    assert not any(g in q["out"] for q in st.queue for g in tracks.LESSON_GROWTHS) or s["lesson_growths"]
    said = report.lessons_line({"losses": runs})  # the report says what was left out, and only then
    assert ("solar, ffn, adapt" in said) != s["lesson_growths"] and ("depth" not in said)


def test_the_rates_below_the_default_run_only_for_the_methods_listed(tmp_path):
    """The default preset runs the rate below 3e-4 only for the methods whose seeds need it to reach full's
    Korean loss (sweep_below), and on the biographies 3e-4 only for preserve; each runs it on every seed."""
    s = experiment.read_settings("default", None)
    plan = Plan(experiment.Stages(str(tmp_path), jobs=2, threads=1), s, str(tmp_path), str(tmp_path),
                {"base": str(tmp_path / "base" / "ckpt.pt")})
    tracks.language_track(plan)
    tracks.growup_track(plan)
    for name in tracks.COMPARED:
        for seed in range(s["seeds"]):
            ran = {lr for lr in s["sweep_lrs"] if readings.seeded(f"{name}@{lr:g}", seed) in plan.runs}
            assert ran == ({1e-4, 1e-3, 3e-3} if name in s["sweep_below"] else {1e-3, 3e-3}), name
    assert s["sweep_below"] == ["full", "full+replay", "hyperclone", "growup"]
    bios = tracks.bios_track(plan, {"a": "bios_a", "b": "bios_b", "b_ko": "bios_b_ko"}, str(tmp_path / "bios.pt"))
    for method in s["bios_methods"]:
        for seed in range(s["bios_seeds"]):
            ran = {lr for lr in s["bios_sweep_lrs"] if (f"{method}@{lr:g}", seed) in bios}
            assert ran == ({3e-4, 3e-3} if method == "preserve" else {3e-3}), method
    said = readings.below_note(s, tracks.COMPARED)
    assert "0.0001 only for full, full+replay, hyperclone, growup" in said
    assert readings.below_note(experiment.read_settings("quick", None), tracks.COMPARED) == ""


def test_the_efficiency_table_interpolates_a_budget_between_two_evaluations():
    """A budget between two evaluations of a curve (250-step budgets, a long run evaluated every 100 steps) is
    read off the line between them and marked so; past the curve's end there is nothing to read."""
    log = [{"tokens": t, "loss": {"korean": k}} for t, k in ((0, 9.0), (100, 3.0), (200, 2.0))]
    assert report.korean_at(log, 100) == "3.000" and report.korean_at(log, 150) == "≈2.500"
    assert report.korean_at(log, 250) == ""


def test_bios_are_deterministic_and_disjoint(tmp_path):
    a, b = populations(20)
    assert a == populations(20)[0] and not {p["name"] for p in a} & {p["name"] for p in b}
    names = prepare(20, 2, str(tmp_path))
    assert names == dataset_names(20, 2) and names["a"] == "bios_a-n20k2"
    first = open(tmp_path / names["a"] / "train.bin", "rb").read()
    prepare(20, 2, str(tmp_path))
    assert open(tmp_path / names["a"] / "train.bin", "rb").read() == first
    text = bytes(np.frombuffer(first, dtype=np.uint16).astype(np.uint8)).decode()  # uint16 ids of bytes
    for p in a:  # every fact of every person is in the training text
        assert all(p[attr] in text for attr in ATTRIBUTES) and p["name"] in text


def test_exact_match_scores_greedy_completion():
    """A 'model' that always predicts the true next byte scores 100%; shifting one answer byte loses it."""
    people = populations(3)[0]
    qa = questions(people)

    class Oracle(torch.nn.Module):
        config = GPTConfig(block_size=64)

        def __init__(self, broken=None):
            super().__init__()
            self.broken = broken

        def forward(self, x):
            nxt = torch.roll(x, -1, dims=1)  # the input shifted: the perfect next-byte prediction
            if self.broken is not None:
                q, _ = qa[self.broken]
                nxt[self.broken, len(q.encode())] += 1  # the second answer byte is wrong
            return torch.nn.functional.one_hot(nxt, 256).float(), None

    assert exact_match(Oracle(), people) == [1.0] * 6
    broken = exact_match(Oracle(broken=7), people)  # person 1, attribute 1
    assert broken[1] == pytest.approx(2 / 3) and sum(broken) == pytest.approx(5 + 2 / 3)
    assert max(exact_match(GPT(GPTConfig(block_size=64)), people)) < 0.5  # a random model knows nothing


def test_a_training_stage_killed_midway_is_not_taken_for_finished(tmp_path, monkeypatch):
    st = experiment.Stages(str(tmp_path))

    def killed(argv):
        raise KeyboardInterrupt  # the process dies during training, before the stage is recorded as done

    monkeypatch.setattr(stages.train, "main", killed)
    with pytest.raises(KeyboardInterrupt):
        st.train("test", str(tmp_path / "run"), ["--dataset=english"], 8)
        st.wait()
    assert experiment.Stages(str(tmp_path)).done[str(tmp_path / "run")]["finished"] is False


def test_cross_lingual_bios_variant(quick_run, tmp_path, capsys):
    """bios_korean: phase 2 learns population B from Korean biographies; only those stages run again."""
    data, out = quick_run
    cfg = tmp_path / "ko.json"
    cfg.write_text('{"bios_korean": true, "bios_seeds": 1}')  # one seed: the variant, in half the time
    capsys.readouterr()
    experiment.main(["--preset=quick", "--jobs=1", "--threads=1", f"--config={cfg}", f"--data-dir={data}", f"--out-dir={out}"])
    printed = capsys.readouterr().out
    assert "--dataset=bios_b_ko-n6k2" in printed and "--dataset=english" not in printed
    assert os.path.isdir(os.path.join(out, "bios-ko", "full-0"))
    assert "written in Korean" in open(os.path.join(out, "report", "REPORT.md")).read()


def tiny_stages(tmp_path, data, jobs):
    """Two tiny training stages queued on a Stages with `jobs` workers and one thread each."""
    st = experiment.Stages(str(tmp_path / f"jobs{jobs}"), jobs=jobs, threads=1)
    flags = ["--n-layer=2", "--n-head=2", "--n-embd=16", "--block-size=16", "--batch-size=2", "--eval-iters=1",
             f"--data-dir={data}", "--eval-interval=3"]
    return st, [st.train("test", str(tmp_path / f"jobs{jobs}" / lang), flags + [f"--dataset={lang}", "--seed=7"], 6)
                for lang in ("english", "korean")]


def test_stages_side_by_side_give_the_weights_of_stages_run_alone(tmp_path, quick_run, capsys):
    """jobs=2 runs each stage as its own process beside another; the weights and logs are bit for bit
    those of the same commands run one at a time in this process."""
    data, _ = quick_run
    (alone, a_ckpts), (pooled, p_ckpts) = tiny_stages(tmp_path, data, 1), tiny_stages(tmp_path, data, 2)
    alone.wait()
    pooled.wait()
    printed = capsys.readouterr().out
    assert "2 training stages, 2 at a time with 1 thread(s) each" in printed and "[2/2]" in printed
    for a, p in zip(a_ckpts, p_ckpts):
        sa, sp = load_checkpoint(a)["model"], load_checkpoint(p)["model"]
        assert sa.keys() == sp.keys() and all(torch.equal(sa[k], sp[k]) for k in sa)
        loss = lambda path: [r["loss"] for r in map(json.loads, open(os.path.join(os.path.dirname(path), "log.jsonl")))]
        assert loss(a) == loss(p)
    assert all(experiment.Stages(pooled.out_dir).done[os.path.dirname(p)]["finished"] for p in p_ckpts)
    again, _ = tiny_stages(tmp_path, data, 2)
    assert again.queue == []  # finished stages are not queued again


def test_checkpoints_evaluated_side_by_side_give_the_numbers_of_one_process(quick_run):
    """The final evaluation in two 1-thread processes gives the losses of this process on 1 thread, exactly."""
    data, out = quick_run
    paths = [os.path.join(out, d, "ckpt.pt") for d in ("base", "korean/full", "korean/hyperclone", "korean/route")]
    s = experiment.PRESETS["quick"]
    torch.set_num_threads(1)
    alone = measure.evaluate_side_by_side(paths, tracks.LANGUAGES, data, s, jobs=1, threads=1)
    pooled = measure.evaluate_side_by_side(paths, tracks.LANGUAGES, data, s, jobs=2, threads=1)
    assert list(pooled) == paths and pooled == alone
    assert len({json.dumps(v) for v in alone.values()}) == len(paths)  # four models, four sets of losses


def test_a_failing_stage_side_by_side_is_one_line(tmp_path, quick_run):
    data, _ = quick_run
    st = experiment.Stages(str(tmp_path), jobs=2, threads=1)
    st.train("test", str(tmp_path / "bad"), [f"--data-dir={data}", "--dataset=klingon"], 4)
    with pytest.raises(UserError, match=r"bad: .*klingon.*its whole output: .*logs/bad.log"):
        st.wait()
    assert experiment.Stages(str(tmp_path)).done[str(tmp_path / "bad")]["finished"] is False


def test_a_stage_waits_for_the_checkpoint_it_starts_from():
    stage = lambda out, argv, iters, script=None: dict(out=out, argv=argv, iters=iters, script=script)  # noqa: E731
    queue = [stage("out/b", ["--init-from=out/a/ckpt.pt"], 900), stage("out/a", [], 100), stage("out/c", [], 500),
             stage("out/d", ["--init-from=out/base/ckpt.pt"], 300), stage("out/g.pt", ["--in=out/c/ckpt.pt"], 0, "grow"),
             stage("out/e", ["--init-from=out/g.pt"], 400)]
    assert stages.next_stage(queue, running=())["out"] == "out/c"  # the grow, then e, wait for it: first
    assert stages.next_stage(queue, running=["out/c/ckpt.pt"])["out"] == "out/a"  # b waits for it: next, though short
    assert stages.next_stage(queue, running=["out/a/ckpt.pt"])["out"] == "out/g.pt"  # c is done: its grow
    assert stages.next_stage(queue, running=["out/a/ckpt.pt"])["out"] == "out/e"  # then the longest that can start
    assert stages.next_stage(queue, running=["out/a/ckpt.pt"])["out"] == "out/d"  # its start is no stage's output
    assert stages.next_stage(queue, running=["out/a/ckpt.pt"]) is None  # b: its start is still being trained
    assert stages.next_stage(queue, running=())["out"] == "out/b" and queue == []


def chain(tmp_path, data, base_iters, jobs=1):
    """A tiny base, a grow step of it (a copy, standing in for scale.py), and a run continued from the copy."""
    st = experiment.Stages(str(tmp_path), jobs=jobs, threads=1)
    flags = ["--n-layer=2", "--n-head=2", "--n-embd=16", "--block-size=16", "--batch-size=2", "--eval-iters=1",
             f"--data-dir={data}", "--eval-interval=2"]
    copy = types.SimpleNamespace(__name__="copy", main=lambda argv: shutil.copy(stages.flag(argv, "in"),
                                                                               stages.flag(argv, "out")))
    base = st.train("t", str(tmp_path / "base"), flags + ["--dataset=english"], base_iters)
    grown = st.step("t", copy, [f"--in={base}", f"--out={tmp_path / 'grown.pt'}"], str(tmp_path / "grown.pt"))
    st.train("t", str(tmp_path / "korean"), flags + [f"--init-from={grown}", "--dataset=korean"], 4)
    return st


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_stage_whose_start_is_made_again_runs_again(tmp_path, quick_run, jobs):
    """The grow step runs in the queue as soon as its base exists, and everything downstream of a stage
    that is made again (new settings, or a newer file) is made again, though its own command is the same."""
    data, _ = quick_run
    chain(tmp_path, data, 4, jobs).wait()
    korean = lambda: load_checkpoint(str(tmp_path / "korean" / "ckpt.pt"))["model"]  # noqa: E731
    first = korean()
    assert chain(tmp_path, data, 4, jobs).queue == []  # all done, from the very starts there are
    st = chain(tmp_path, data, 6, jobs)  # the base's settings changed: all three again
    assert [q["out"] for q in st.queue] == [str(tmp_path / n) for n in ("base", "grown.pt", "korean")]
    assert [q["again"] for q in st.queue] == [False, True, True]
    st.wait()
    assert not all(torch.equal(first[k], v) for k, v in korean().items())  # continued from the new base
    assert load_checkpoint(str(tmp_path / "korean" / "ckpt.pt"))["iter_num"] == 4
    assert chain(tmp_path, data, 6, jobs).queue == []
    os.utime(tmp_path / "grown.pt", ns=(1, 1))  # the grown file is not the one korean started from
    assert [q["out"] for q in chain(tmp_path, data, 6, jobs).queue] == [str(tmp_path / "korean")]
