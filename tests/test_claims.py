"""
The report's statistical rules decide on hand-made numbers as written: a difference counts only
beyond twice its standard error, forgetting is compared at equal Korean loss along each
method's learning-rate sweep, and retention of the biographies at equal acquisition.

    python -m pytest -q tests/test_claims.py
"""

import pytest

from lab import claims, readings


def results(runs):
    """A results.json with just the losses: {run: (english, korean)}; the base has English 1.0."""
    losses = {"base": {"english": 1.0, "korean": 9.0}}
    losses.update({k: {"english": e, "korean": ko} for k, (e, ko) in runs.items()})
    return {"losses": losses, "settings": {"cpt_lr": 3e-4, "cpt_iters": 250, "sweep_lrs": [1e-4, 1e-3]}}


def test_a_difference_counts_only_beyond_two_standard_errors():
    assert readings.below((1.0, 0.1, 3), (1.5, 0.1, 3))       # 0.5 apart, SE 0.08: real
    assert not readings.below((1.0, 0.3, 3), (1.3, 0.3, 3))   # 0.3 apart, SE 0.24: inside the noise
    assert not readings.below((1.5, 0.1, 3), (1.0, 0.1, 3))   # the wrong way round


def test_seed_statistics_and_the_pooled_noise_for_single_runs():
    r = results({"full": (2.0, 3.0), "full-seed2": (2.2, 3.1), "full-seed3": (2.4, 3.2), "depth": (1.5, 3.5)})
    mean, sd, n = readings.stats(r, "full", "forgetting")
    assert n == 3 and mean == pytest.approx(1.2) and sd == pytest.approx(0.2)
    assert readings.stats(r, "depth", "forgetting") == pytest.approx((0.5, 0.2, 1))  # the pooled sd stands in
    assert readings.below(readings.stats(r, "depth", "forgetting"), readings.stats(r, "full", "forgetting"))


def test_forgetting_is_read_at_equal_korean_loss_along_the_sweep():
    r = results({"preserve": (1.2, 3.0), "preserve@0.0001": (1.1, 4.0), "preserve@0.001": (1.6, 2.0),
                 "full": (2.0, 5.0)})
    assert [p[0] for p in readings.frontier(r, "preserve")] == [0.001, 3e-4, 0.0001]  # sorted by Korean loss
    assert readings.forgetting_at(r, "preserve", 3.5) == pytest.approx(0.15)  # halfway between 0.2 and 0.1
    assert readings.forgetting_at(r, "preserve", 5.0) is None  # its sweep never gets that bad in Korean


def test_a_sweep_past_its_best_rate_is_read_between_neighbouring_rates_at_its_least_forgetting():
    # Korean 4.0, 3.0, 2.0 as the rate rises, then 3.4 again at 1e-2, forgetting rising all along
    r = results({"preserve@0.0001": (1.1, 4.0), "preserve": (1.2, 3.0), "preserve@0.001": (1.6, 2.0),
                 "preserve@0.01": (3.0, 3.4)})
    # crossed between 1e-4 and 3e-4 (0.18) and between 1e-3 and 1e-2 (1.8): the least; joined in order of
    # Korean loss, 3e-4 (3.0) to 1e-2 (3.4), rates that are not neighbours, would give 1.1
    assert readings.forgetting_at(r, "preserve", 3.2) == pytest.approx(0.18)
    # crossed between 3e-4 and 1e-3 (0.4) and between 1e-3 and 1e-2 (1.1): the least
    assert readings.forgetting_at(r, "preserve", 2.5) == pytest.approx(0.4)
    assert readings.forgetting_at(r, "preserve", 1.9) is None  # no rate gets that low
    # acquisition 0.1, 0.3, 0.2 as the rate rises: 0.2 is crossed twice, retention 0.6 or 0.1: the most
    r = {"settings": {"bios_lr": 1e-3},
         "bios": {"runs": {"depth": [{"acquisition": [0.3], "retention": [0.4]}]},
                  "sweep": {"depth@0.0003": [{"acquisition": [0.1], "retention": [0.8]}],
                            "depth@0.003": [{"acquisition": [0.2], "retention": [0.1]}]}}}
    assert readings.retention_at(r, "depth", 0.2) == pytest.approx(0.6)


def merges(base, hyper, joint=5.0):
    """Hand-made merge results: {method: [mean Korean+German loss per merge seed]} for each ancestor."""
    losses = {f"joint/{a}": {"korean": joint, "german": joint} for a in ("base", "hyper")}
    for anc, per_method in (("base", base), ("hyper", hyper)):
        for m, values in per_method.items():
            for seed, v in enumerate(values):
                losses[f"merged/{anc}/{m}" + ("" if seed == 0 else f"-seed{seed + 1}")] = {"korean": v, "german": v}
    return {"losses": losses, "settings": {"cpt_lr": 3e-4, "sweep_lrs": [1e-4, 1e-3]},
            "merge_rates": {"base": 3e-4, "hyper": 3e-4}}


def c7(r, monkeypatch):
    for module in (claims, readings):
        monkeypatch.setattr(module, "MERGE_METHODS", ["a", "b", "c"])
        monkeypatch.setattr(module, "TUNED_MERGES", ["a", "b", "c"])
    return dict((c[0], c[4]) for c in claims.merge_claims(r))["C7"]


def test_c7_is_decided_by_the_spread_of_merges_over_seeds(monkeypatch):
    base = {"a": [3.0, 3.02, 2.98], "b": [3.5, 3.52, 3.48], "c": [3.2, 3.21, 3.19]}
    better = {m: [v - 0.2 for v in vs] for m, vs in base.items()}  # 0.2 lower, seed sd 0.02: real
    assert c7(merges(base, better), monkeypatch) is True
    noisy = {m: [vs[0] - 0.2, vs[0] + 0.3, vs[0] - 0.5] for m, vs in base.items()}  # lower on average, sd 0.4
    assert c7(merges(base, noisy), monkeypatch) is False
    same = {m: [3.1, 3.11, 3.09] for m in base}  # methods do not differ: the second half of the claim fails
    assert c7(merges(same, {m: [v - 0.2 for v in vs] for m, vs in same.items()}), monkeypatch) is False
    single = {m: vs[:1] for m, vs in base.items()}  # one merge per setting: no spread, no verdict
    assert c7(merges(single, {m: [v - 0.2 for v in vs] for m, vs in single.items()}), monkeypatch) is None


def test_c7_counts_identical_merges_once(monkeypatch):
    """Two methods that make the same merges (linear and task arithmetic at merge.py's defaults) are one
    method to C7: hyper winning on that pair alone is 1 of 2 distinct methods, not most of 3."""
    base = {"a": [3.0, 3.02, 2.98], "b": [3.0, 3.02, 2.98], "c": [3.5, 3.52, 3.48]}
    hyper = {"a": [2.8, 2.82, 2.78], "b": [2.8, 2.82, 2.78], "c": [3.5, 3.51, 3.49]}
    for module in (claims, readings):
        monkeypatch.setattr(module, "MERGE_METHODS", ["a", "b", "c"])
        monkeypatch.setattr(module, "TUNED_MERGES", ["a", "b", "c"])
    assert readings.distinct_methods(merges(base, hyper)) == (["a", "c"], {"b": "a"})
    out = {c[0]: c for c in claims.merge_claims(merges(base, hyper))}
    assert out["C7"][4] is False and "1 of 2 distinct methods" in out["C7"][2] and "b made a's merges" in out["C7"][2]
    hyper["b"] = [2.81, 2.82, 2.78]  # one merge differs: three methods, hyper better for two of them
    assert readings.distinct_methods(merges(base, hyper)) == (["a", "b", "c"], {})
    assert c7(merges(base, hyper), monkeypatch) is True


def at_best_rate(r, base, hyper, lr=1e-3):
    """The results `r` with merges at `lr`, each ancestor's chosen rate: {method: loss, or [loss per merge seed]}."""
    for anc, per_method in (("base", base), ("hyper", hyper)):
        for m, values in per_method.items():
            for seed, v in enumerate(values if isinstance(values, list) else [values]):
                r["losses"][f"merged/{anc}@{lr:g}/{m}" + ("" if seed == 0 else f"-seed{seed + 1}")] = \
                    {"korean": v, "german": v}
    return dict(r, merge_rates={"base": lr, "hyper": lr})


def test_c7_is_read_at_each_ancestors_best_rate_over_its_merge_seeds(monkeypatch):
    """At the default rate hyper's merges are no better; at the chosen rate they are: the verdict follows the
    chosen rate, with the spread each merge has over its merge seeds there."""
    seeds = {"a": [3.0, 3.02, 2.98], "b": [3.5, 3.52, 3.48], "c": [3.2, 3.21, 3.19]}
    lower = lambda d, x: {m: [v - x for v in vs] for m, vs in d.items()}  # noqa: E731
    r = merges(seeds, seeds)
    assert c7(r, monkeypatch) is False
    assert c7(at_best_rate(r, lower(seeds, 0.1), lower(seeds, 0.3)), monkeypatch) is True
    r = merges(seeds, lower(seeds, 0.2))  # hyper wins at the default rate...
    assert c7(r, monkeypatch) is True
    close = at_best_rate(r, lower(seeds, 0.1), lower(seeds, 0.13))  # ...not at its best rate
    assert c7(close, monkeypatch) is False  # 0.03 lower is inside 2 SE = 2 x sqrt(2/3) x 0.02
    noisy = at_best_rate(merges(seeds, seeds), lower(seeds, 0.1), {m: [vs[0] - 0.3, vs[0] + 0.3, vs[0] - 0.6]
                                                                   for m, vs in seeds.items()})
    assert c7(noisy, monkeypatch) is False  # lower on average at the chosen rate, but its merge seeds spread 0.45


def test_c6_compares_merges_and_joint_at_the_ancestors_rate(monkeypatch):
    for module in (claims, readings):
        monkeypatch.setattr(module, "MERGE_METHODS", ["a", "b", "c"])
        monkeypatch.setattr(module, "TUNED_MERGES", ["a", "b", "c"])
    seeds = {"a": [3.0, 3.02, 2.98], "b": [3.5, 3.52, 3.48], "c": [3.2, 3.21, 3.19]}
    c6 = lambda r: dict((c[0], c[4]) for c in claims.merge_claims(r))["C6"]  # noqa: E731
    assert c6(merges(seeds, seeds, joint=2.5)) is True  # every merge above the joint model
    r = at_best_rate(merges(seeds, seeds, joint=2.5), {"a": 2.4, "b": 3.4, "c": 3.1}, seeds_first(seeds))
    assert c6(r) is False  # at base's rate its best merge (2.4) is below the joint model


def test_one_merge_per_setting_decides_c6_but_not_c7(monkeypatch):
    """The class preset: merges only at each ancestor's rate, one each; C7 has no spread, so no verdict, and
    its text does not claim a 2 SE margin it cannot measure."""
    for module in (claims, readings):
        monkeypatch.setattr(module, "MERGE_METHODS", ["a", "b", "c"])
        monkeypatch.setattr(module, "TUNED_MERGES", ["a", "b", "c"])
    r = {"losses": {f"joint/{a}": {"korean": 2.5, "german": 2.5} for a in ("base", "hyper")},
         "settings": {"cpt_lr": 3e-4, "sweep_lrs": [1e-4, 1e-3]}}
    r = at_best_rate(r, {"a": 3.0, "b": 3.5, "c": 3.2}, {"a": 2.8, "b": 3.3, "c": 3.0})
    out = {c[0]: c for c in claims.merge_claims(r)}
    assert out["C6"][4] is True and out["C7"][4] is None
    assert "2 SE" not in out["C7"][2] and "3 of 3" in out["C7"][2]


def seeds_first(per_method):
    return {m: vs[0] for m, vs in per_method.items()}


def growup_results(growup_forgets):
    """Full and Grow Up's 2x along their sweeps: (English after, Korean after); both start at English 1.0."""
    full = {"full": (2.0, 3.0), "full-seed2": (2.1, 3.05), "full-seed3": (2.2, 2.95),
            "full@0.0001": (1.5, 4.0), "full@0.001": (2.6, 2.5)}
    g = growup_forgets
    growup = {"growup": (1 + g, 3.1), "growup-seed2": (1.05 + g, 3.12), "growup-seed3": (1.1 + g, 3.08),
              "growup@0.0001": (1 + g - 0.3, 4.2), "growup@0.001": (1 + g + 0.3, 2.6)}
    r = results(dict(full, **growup, **{"growup/base-2x": (1.0, 9.0), "full-long": (2.5, 2.0), "preserve": (1.2, 3.5),
                         "hyperclone": (2.3, 3.2), "full+replay": (1.2, 3.3)}))  # shown beside C4 and C5
    log = lambda k: [{"tokens": 0, "loss": {"korean": 9.0}}, {"tokens": 6000, "loss": {"korean": k}}]  # noqa: E731
    r.update(compared=["full", "preserve", "growup"], before={k: "growup/base-2x" for k in growup},
             logs={"full-long": log(2.0), "growup": log(3.1)}, flops_per_token={"full-long": 1, "growup": 3},
             long_rates={"full-long": 3e-4})
    return r


def test_c5_compares_forgetting_at_full_trainings_korean_loss_along_each_sweep():
    verdict = lambda r: dict((c[0], c[4]) for c in claims.language_claims(r))["C5"]  # noqa: E731
    assert readings.forgetting_at(growup_results(0.6), "growup", 3.0) == pytest.approx(0.7)  # 0.9 -> 0.6 between
    assert verdict(growup_results(0.6)) is True    # 0.7 against full's 1.1 at Korean 3.0
    assert verdict(growup_results(0.95)) is False  # 1.05 against 1.1: inside the noise


def bios(before, **methods):
    """Hand-made biography results: {method: ((retention, acquisition) per seed at 1e-3, {lr: (ret, acq)})}."""
    run = lambda ret, acq: {"retention": [ret] * 6, "acquisition": [acq] * 6}  # noqa: E731
    return {"settings": {"bios_lr": 1e-3}, "bios": {
        "before": [before] * 6,
        "runs": {m: [run(*v) for v in seeds] for m, (seeds, _) in methods.items()},
        "sweep": {f"{m}@{lr:g}": [run(*v)] for m, (_, sweep) in methods.items() for lr, v in sweep.items()}}}


def test_c1_and_c2_read_retention_at_fulls_acquisition_along_each_sweep():
    verdicts = lambda r: {c[0]: c[4] for c in claims.bios_claims(r)}  # noqa: E731
    full = ([(0.2, 0.6), (0.2, 0.6)], {3e-3: (0.1, 0.8)})
    depth = ([(0.1, 0.5), (0.12, 0.5)], {3e-3: (0.05, 0.7)})
    preserve = ([(0.8, 0.4), (0.8, 0.41)], {3e-3: (0.7, 0.65)})
    r = bios(0.9, full=full, depth=depth, preserve=preserve)
    assert readings.retention_at(r, "preserve", 0.6) == pytest.approx(0.7204, abs=1e-4)  # between 0.405 and 0.65
    assert readings.retention_at(r, "depth", 0.6) == pytest.approx(0.08)  # halfway
    assert verdicts(r) == {"C1": True, "C2": True}
    slow = ([(0.8, 0.1), (0.8, 0.1)], {3e-3: (0.7, 0.2)})  # SCALE never acquires as much as full
    assert verdicts(bios(0.9, full=full, depth=depth, preserve=slow))["C2"] is False
    # depth's sweep stops short of full's acquisition: C1 undecided, C2 meets depth at its best retention (strict)
    stuck = ([(0.5, 0.3), (0.5, 0.3)], {3e-3: (0.75, 0.35)})
    assert verdicts(bios(0.9, full=full, depth=stuck, preserve=preserve)) == {"C1": None, "C2": False}
    assert verdicts(bios(0.3, full=full, depth=depth, preserve=preserve)) == {"C1": None, "C2": None}  # never knew A


def test_c4_reads_the_1x_curve_at_the_2x_runs_flops_against_the_2x_at_its_best_rate():
    verdict = lambda r: dict((c[0], c[4]) for c in claims.language_claims(r))["C4"]  # noqa: E731
    r = growup_results(0.6)  # 2x: 3.1 after 6000 tokens at 3x the FLOPs per token (2.6 at 1e-3); 1x: 2.0 after 6000
    assert readings.best_rate(r, "growup")[0] == 1e-3 and readings.best_rate(r, "growup")[1][::2] == (2.6, 1)
    assert "at its best rate 0.001 (the highest rate tried)" in dict((c[0], c[2]) for c in claims.language_claims(r))["C4"]
    r["logs"]["full-long"].append({"tokens": 18000, "loss": {"korean": 2.8}})  # at equal FLOPs the 1x is at 2.8
    assert verdict(r) is None  # below the 2x at 3e-4 (3.1), not at its best rate (2.6); the 1x ran at one rate
    r["logs"]["full-long"][-1]["loss"]["korean"] = 2.0
    assert verdict(r) is False  # the 1x model is far ahead at equal FLOPs, even of the 2x at its best
    r["logs"]["full-long"].pop()  # stops at 6000 tokens, a third of the FLOPs: already ahead, so still False
    assert verdict(r) is False
    r["logs"]["full-long"][-1]["loss"]["korean"] = 3.5  # stops short and behind: nothing to say
    assert verdict(r) is None


def test_c4_and_the_efficiency_curves_say_the_rate_each_long_run_trained_at():
    """The long runs train at their ancestor's rate: C4 and the curves say which."""
    c4 = lambda r: dict((c[0], c[2]) for c in claims.language_claims(r))["C4"]  # noqa: E731
    r = growup_results(0.6)
    r["logs"]["full-long"].append({"tokens": 18000, "loss": {"korean": 2.0}})  # reaches the 2x run's FLOPs
    assert "2.000 (n=1) at 0.0003 (the lowest Korean loss of its whole sweep is at 0.001);" in c4(r)
    assert readings.long_rate(r, "full-long") == 3e-4
    r["long_rates"] = {"full-long": 1e-3}
    assert "2.000 (n=1) at 0.001 (the highest rate tried);" in c4(r)
    assert readings.efficiency_runs(r) == [
        ("full-long", "1x, continued longer", 1e-3), ("hyperclone", "2x, HyperClone of the finished base", 3e-4),
        ("growup", "2x, Grow Up (cloned mid-pretraining)", 3e-4),
        ("growup@0.001", "2x, Grow Up, at its best rate", 1e-3)]  # C4's 2x: Grow Up at its best rate
    r["logs"]["hyperclone-long"], r["long_rates"]["hyperclone-long"] = r["logs"]["growup"], 3e-4
    assert readings.efficiency_runs(r)[1] == ("hyperclone-long", "2x, HyperClone of the finished base, continued longer",
                                            3e-4)


def test_a_rate_at_an_end_of_the_sweep_is_marked_where_the_best_may_lie_beyond():
    lrs = [3e-4, 1e-4, 1e-3, 3e-3]
    assert readings.sweep_end(lrs, 3e-3) == " (the highest rate tried)"
    assert readings.sweep_end(lrs, 1e-4) == " (the lowest rate tried)"
    assert readings.sweep_end(lrs, 1e-3) == readings.sweep_end(lrs, 3e-4) == ""
    assert readings.sweep_end([*lrs, 1e-2], 3e-3) == ""  # a rate tried past the end puts it inside


def test_a_rate_chosen_before_the_sweep_went_past_its_end_says_where_the_best_moved():
    """merge_rates picks from the first round; edge_track tries one rate past an end after that choice."""
    r = results({"full": (2.0, 3.0), "full@0.0001": (1.5, 3.5), "full@0.001": (2.5, 2.5)})
    assert readings.chosen_note(r, "full", 1e-3) == " (the highest rate tried)"
    r["losses"]["full@0.01"] = {"english": 3.0, "korean": 2.8}  # past the end, and worse: the choice stands
    assert readings.rates_tried(r, "full") == [1e-4, 3e-4, 1e-3, 1e-2]
    assert readings.chosen_note(r, "full", 1e-3) == ""
    r["losses"]["full@0.01"]["korean"] = 2.2  # past the end, and better: said so
    assert readings.chosen_note(r, "full", 1e-3) == " (the lowest Korean loss of its whole sweep is at 0.01)"
