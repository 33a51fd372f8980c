"""
Every claim part of lab/rules.py, and the interval behind it, on hand-made numbers that must come out
supported, refuted and inconclusive.

    python -m pytest -q tests/test_rules.py
"""

import pytest

from lab import claims, first_rules, readings, stats
from lab import verdicts as page
from lab.rules import RULES, SEED_OFFSET, USED_OFFSETS

SEEDS = 3


def test_welchs_interval_by_hand():
    # a = 1, 2, 3 and b = 4, 5, 6: difference -3, each variance 1, SE sqrt(2/3), 4 degrees of freedom,
    # t(0.975, 4) = 2.7764, so -3 +- 2.2669
    diff, low, high, df = stats.welch([1, 2, 3], [4, 5, 6])
    assert (diff, df) == (pytest.approx(-3), pytest.approx(4))
    assert (low, high) == (pytest.approx(-5.2669, abs=1e-3), pytest.approx(-0.7331, abs=1e-3))
    # unequal variances: fewer degrees of freedom than 4 (Welch-Satterthwaite)
    assert stats.welch([1, 2, 3], [5, 5.01, 5.02])[3] == pytest.approx(2.0, abs=0.01)
    assert stats.t_quantile(0.975, 2) == pytest.approx(4.3027, abs=1e-3)
    assert stats.one_sample([1, 2, 3], 0)[1:3] == pytest.approx((2 - 2.4841, 2 + 2.4841), abs=1e-3)
    with pytest.raises(ValueError):
        stats.welch([1], [2, 3])


def test_three_verdicts_and_the_seeds_that_would_decide():
    assert stats.verdict(0.1, 0.5) == "supported"
    assert stats.verdict(-0.5, -0.1) == "refuted"
    assert stats.verdict(-0.1, 0.5) == "inconclusive"
    assert stats.verdict(-0.05, 0.2, margin=-0.1) == "supported"  # non-inferiority: above minus the margin
    a, b = [1.0, 1.2, 1.4], [0.9, 1.1, 1.3]  # 0.1 apart, sd 0.2: undecided at 3 seeds
    assert stats.verdict(*stats.welch(a, b)[1:3]) == "inconclusive"
    n = stats.seeds_to_decide(a, b)
    assert n > 3 and stats.t_quantile(0.975, 2 * n - 2) * (0.08 / n) ** 0.5 < 0.1  # decided at n a side
    assert stats.seeds_to_decide([1.0, 1.0], [1.0, 1.0]) is None  # no difference: no number of seeds decides


@pytest.mark.parametrize("how, verdicts, out", [
    ("all", ["supported", "supported"], "supported"), ("all", ["supported", "inconclusive"], "inconclusive"),
    ("all", ["supported", "refuted"], "refuted"), ("any", ["refuted", "supported"], "supported"),
    ("any", ["refuted", "refuted"], "refuted"), ("any", ["refuted", "inconclusive"], "inconclusive"),
    ("most", ["supported", "supported", "refuted"], "supported"),
    ("most", ["supported", "refuted", "inconclusive", "refuted"], "refuted"),
    ("most", ["supported", "inconclusive", "inconclusive"], "inconclusive")])
def test_readings_combine_as_the_rule_says(how, verdicts, out):
    assert stats.combine(verdicts, how) == out


def test_every_rule_is_written_once_with_its_test():
    ids = [r["id"] for r in RULES]
    assert len(ids) == len(set(ids)) and SEED_OFFSET > 0
    assert SEED_OFFSET not in USED_OFFSETS  # the confirmatory run's seeds are drawn for the first time
    assert all(r["combine"].split(":")[0] in ("one", "all", "any", "most") for r in RULES)


# ----------------------------------------------------------------------------
# hand-made results: every method's seeds along a sweep of two rates


def noisy(values, spread):
    """SEEDS values around each, spread apart by `spread` (sd = spread)."""
    return [[v - spread, v, v + spread] for v in values]


def sweep_results(forgets, korean=(3.0, 2.0), spread=0.01):
    """Methods at 3e-4 (Korean 3.0) and 1e-3 (Korean 2.0), forgetting `forgets[m]` = (at 3e-4, at 1e-3) on
    every seed (+- spread); full reaches 2.5 at 3e-4, so every sweep is read halfway between its rates."""
    s = {"cpt_lr": 3e-4, "sweep_lrs": [1e-3], "seeds": SEEDS, "cpt_iters": 250}
    losses, choice = {"base": {"english": 1.0, "korean": 9.0}}, {}
    for m, (f0, f1) in forgets.items():
        for lr, f, ko in ((3e-4, f0, korean[0]), (1e-3, f1, korean[1])):
            for k, e in enumerate(noisy([f], spread)[0]):
                name = readings.seeded(readings.at_rate(m, lr, s), k)
                losses[name] = {"english": 1.0 + e, "korean": 2.5 if m == "full" and lr == 3e-4 else ko}
            choice[readings.at_rate(m, lr, s)] = losses[readings.at_rate(m, lr, s)]["korean"]
    return {"settings": s, "losses": losses, "choice": choice, "compared": list(forgets)}


def verdicts(parts):
    return {p["id"]: p["verdict"] for p in parts}


BASELINES = {m: (1.0, 1.4) for m in ["full", "depth", "hyperclone", "growup", "full+replay"]}


def test_c3_supported_refuted_and_inconclusive():
    r = sweep_results(dict(BASELINES, preserve=(0.1, 0.3), **{"route+replay": (0.05, 0.1)}))
    assert verdicts(claims.forgetting_parts(r))["C3a"] == "supported"  # 0.2 against 1.2 for every baseline
    assert verdicts(claims.forgetting_parts(r))["C3b"] == "supported"
    r = sweep_results(dict(BASELINES, preserve=(0.1, 0.3), depth=(0.05, 0.1), **{"route+replay": (2.0, 2.0)}))
    v = verdicts(claims.forgetting_parts(r))
    assert v["C3a"] == "refuted" and v["C3b"] == "refuted"  # depth forgets less than preserve
    r = sweep_results(dict(BASELINES, preserve=(1.0, 1.38), **{"route+replay": (1.0, 1.4)}), spread=0.2)
    parts = {p["id"]: p for p in claims.forgetting_parts(r)}
    assert parts["C3a"]["verdict"] == "inconclusive" and parts["C3a"]["deciding"]["decide"] > SEEDS


def test_c3c_is_a_non_inferiority_test_with_its_margin():
    # preserve's Korean 0.05 worse than full's at each one's best rate: within the 0.10 margin
    r = sweep_results(dict(BASELINES, preserve=(0.1, 0.3), **{"route+replay": (0.0, 0.0)}))
    for k in range(SEEDS):
        r["losses"][readings.seeded("preserve@0.001", k)]["korean"] = 2.05 + 0.001 * k
        r["losses"][readings.seeded("full@0.001", k)]["korean"] = 2.0 + 0.001 * k
    assert verdicts(claims.forgetting_parts(r))["C3c"] == "supported"
    for k in range(SEEDS):
        r["losses"][readings.seeded("preserve@0.001", k)]["korean"] = 2.3 + 0.001 * k
    assert verdicts(claims.forgetting_parts(r))["C3c"] == "refuted"  # 0.3 worse


def growup_results(full, growup, flops_1x, two_x):
    """full and growup along a sweep (forgetting per rate), the FLOP-matched 1x and Grow Up's 2x Korean."""
    r = sweep_results({"full": full, "growup": growup})
    for k in range(SEEDS):
        r["losses"][readings.seeded("full-flops", k)] = {"english": 2.0, "korean": flops_1x + 0.01 * k}
        r["losses"][readings.seeded("growup@0.001", k)]["korean"] = two_x + 0.01 * k
    r["choice"]["growup@0.001"] = 0.0  # its best rate
    r["logs"], r["flops_rate"] = {"full-flops": [{"tokens": 1000}]}, 3e-4
    return r


def test_c4_and_c5():
    # C4: the 2x 0.05 worse than the 1x at equal FLOPs: within "matches" (0.10); 0.5 worse: refuted
    assert verdicts(claims.growup_parts(growup_results((1.0, 1.4), (0.5, 0.7), 2.0, 2.05)))["C4"] == "supported"
    assert verdicts(claims.growup_parts(growup_results((1.0, 1.4), (0.5, 0.7), 2.0, 2.5)))["C4"] == "refuted"
    # C5 over the shared range: Grow Up forgets less at every level, or more at some
    assert verdicts(claims.growup_parts(growup_results((1.0, 1.4), (0.5, 0.7), 2.0, 2.0)))["C5"] == "supported"
    assert verdicts(claims.growup_parts(growup_results((1.0, 1.4), (0.5, 1.6), 2.0, 2.0)))["C5"] == "refuted"
    parts = {p["id"]: p for p in claims.growup_parts(growup_results((1.0, 1.4), (0.5, 0.7), 2.0, 2.0))}
    assert len(parts["C5"]["tests"]) == 5  # rules.C5_LEVELS, all inside both sweeps


def merge_results(base, hyper, joint, spread=0.01):
    """Merge scores per tuned method (Korean = German = the score) of each ancestor at the default rate."""
    s = {"cpt_lr": 3e-4, "sweep_lrs": [1e-3], "seeds": SEEDS, "merge_seeds": SEEDS}
    losses = {}
    for anc, by_method in (("base", base), ("hyper", hyper)):
        for m in readings.TUNED_MERGES:
            for k, v in enumerate(noisy([by_method.get(m, by_method["linear"])], spread)[0]):
                losses[readings.seeded(f"merged/{anc}/{m}", k)] = {"korean": v, "german": v, "english": 2.0}
        for k, v in enumerate(noisy([joint], spread)[0]):
            losses[readings.seeded(f"joint/{anc}", k)] = {"korean": v, "german": v, "english": 2.0}
    return {"settings": s, "losses": losses, "merge_rates": {"base": 3e-4, "hyper": 3e-4}}


def test_c6_and_c7():
    spread = {"linear": 3.0, "ties-tuned": 3.2, "dare-tuned": 3.1, "task_arithmetic-tuned": 3.05,
              "dare_ties-tuned": 3.15, "layerwise-tuned": 3.02}
    base = {m: v + 0.5 for m, v in spread.items()}
    v = verdicts(claims.merge_parts(merge_results(base, spread, joint=2.0)))
    assert v == {"C6": "supported", "C7a": "supported", "C7b": "supported", "C7c": "supported"}
    v = verdicts(claims.merge_parts(merge_results(spread, base, joint=4.0)))  # 1x merges better; joint worse
    assert v == {"C6": "refuted", "C7a": "refuted", "C7b": "refuted", "C7c": "supported"}
    same = {m: 3.0 for m in spread}
    parts = {p["id"]: p for p in claims.merge_parts(merge_results(same, same, joint=3.0, spread=0.2))}
    assert {k: p["verdict"] for k, p in parts.items()} == {k: "inconclusive" for k in parts}
    assert len(parts["C7a"]["tests"]) == 1  # every method made the same merges: counted once


def bios_results(before, depth, preserve, full_acq=0.3):
    """Biographies: depth and preserve retain `depth` / `preserve` (+- 0.01 by seed) on a sweep crossing
    full's acquisition."""
    s = {"bios_lr": 1e-3, "bios_sweep_lrs": [3e-3], "bios_seeds": SEEDS}
    run = lambda k, acq, ret: {"seed": k, "acquisition": [acq] * 6, "retention": [ret + 0.01 * k] * 6}  # noqa
    runs = {"full": [run(k, full_acq, 0.2) for k in range(SEEDS)]}
    sweep = {}
    for m, ret in (("depth", depth), ("preserve", preserve)):
        runs[m] = [run(k, 0.2, ret) for k in range(SEEDS)]
        sweep[f"{m}@0.003"] = [run(k, 0.4, ret) for k in range(SEEDS)]
    return {"settings": s, "bios": {"before": [before] * 6, "runs": runs, "sweep": sweep}}


def test_c1_and_c2():
    v = verdicts(claims.bios_parts(bios_results(0.9, depth=0.2, preserve=0.7)))
    assert v == {"C1": "supported", "C2a": "supported", "C2b": "supported"}
    v = verdicts(claims.bios_parts(bios_results(0.9, depth=0.8, preserve=0.3)))
    assert v == {"C1": "refuted", "C2a": "refuted", "C2b": "refuted"}
    v = verdicts(claims.bios_parts(bios_results(0.9, depth=0.45, preserve=0.455)))
    assert v == {"C1": "inconclusive", "C2a": "inconclusive", "C2b": "inconclusive"}
    v = verdicts(claims.bios_parts(bios_results(0.3, depth=0.1, preserve=0.2)))  # the base never knew A
    assert set(v.values()) == {"inconclusive"}


def test_the_first_rules_read_the_default_rate():
    """The first rules of C6 and C7 (57d1f35): untuned merges at the default rate, seed 0."""
    r = merge_results({"linear": 3.5}, {"linear": 3.0}, joint=2.0)
    for anc, v in (("base", 3.5), ("hyper", 3.0)):
        for i, m in enumerate(readings.MERGE_METHODS):  # methods 0.1 apart: a spread of 0.4 > 0.1
            r["losses"][f"merged/{anc}/{m}"] = {"korean": v + 0.1 * i, "german": v + 0.1 * i}
    for k, ko in enumerate((2.0, 2.01, 2.02)):  # the seed noise of the first rules: max - min, 0.02
        r["losses"][readings.seeded("full", k)] = {"english": 1.5, "korean": ko}
    assert first_rules.first_merges(r) == (True, True)
    r["losses"]["joint/base"]["korean"] = r["losses"]["joint/base"]["german"] = 9.0  # a merge below the joint
    assert first_rules.first_merges(r) == (False, True)


def test_an_inconclusive_verdict_says_what_would_decide_it():
    one = claims.part("C4", [claims.test("C4", [2.0], [2.1])], "")
    assert "one seed" in page.verdict_text(one) and one["verdict"] == "inconclusive"
    none = claims.part("C4", [claims.test("C4", [], [2.1])], "")
    assert "not reached" in page.verdict_text(none)
    wide = claims.part("C4", [claims.test("C4", [2.0, 2.3, 1.9], [2.2, 2.1, 2.5])], "")  # -0.2 against -0.1
    assert "seeds a side would decide it" in page.verdict_text(wide)
    on_margin = claims.part("C4", [claims.test("C4", [2.0, 2.3, 1.9], [2.1, 2.0, 2.4])], "")  # exactly -0.1
    assert "more seeds would not decide it" in page.verdict_text(on_margin)
    assert page.verdict_text(claims.part("C4", [claims.test("C4", [2.0, 2.01], [1.0, 1.01])], "")) == \
        "**supported**"
