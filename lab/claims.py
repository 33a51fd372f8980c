"""
claims.py — every claim part of lab/rules.py, computed from results.json: its effect, interval and verdict.

Place in the story: what report.py's first table says. Each part reads values
with one per seed (lab/readings.py's seed_* functions), computes the effect the
rule names (positive favours the claim) with its 95% interval (lab/stats.py)
and gives the verdict the interval allows. Nothing here chooses what to
compare or where: rules.py says it, and was committed before the run.
tests/test_rules.py runs every part on hand-made numbers.
"""

import numpy as np

from lab import stats
from lab.readings import (MERGE_ANCESTORS, TUNED_MERGES, at_rate, bio_stats, chosen_rate, distinct_methods,
                          forgetting_at_seeds, korean_range, merge_score, rates_of_merges, retention_at_seeds,
                          seed_runs, seed_values)
from lab.rules import C5_LEVELS, rule

NO_ENGLISH_BASELINES = ["full", "depth", "hyperclone", "growup"]


def test(pid, a, b=None, against=None, label=""):
    """One comparison of a part: a against b (Welch) or a against a fixed number (one-sample), with the
    part's margin. {label, effect, low, high, n, verdict, decide (seeds a side that would decide)}."""
    margin = rule(pid)["margin"]
    n = (len(a), len(b)) if b is not None else (len(a),)
    out = dict(label=label, n=n, effect=None, low=None, high=None, verdict="inconclusive", decide=None)
    if min(n) < 1:
        return dict(out, note="not reached")
    out["effect"] = float(np.mean(a) - (np.mean(b) if b is not None else against))
    if min(n) < 2:
        return dict(out, note="one seed: no interval")
    if b is not None:
        effect, low, high, _ = stats.welch(a, b)
    else:
        effect, low, high, _ = stats.one_sample(a, against)
    out.update(effect=effect, low=low, high=high, verdict=stats.verdict(low, high, margin))
    if out["verdict"] == "inconclusive":
        out["decide"] = (stats.seeds_to_decide(a, b, margin) if b is not None
                         else stats.seeds_to_decide_one(a, against, margin))
    return out


def part(pid, tests, measured):
    """A claim part from its comparisons, combined as its rule says; the comparison shown is one that gives
    the part's verdict (the weakest such), or else the first undecided one."""
    verdict = stats.combine([t["verdict"] for t in tests], rule(pid)["combine"].split(":")[0])
    same = [t for t in tests if t["verdict"] == verdict and t["effect"] is not None]
    weakest = lambda t: t["low"] if t["low"] is not None else t["effect"]  # noqa: E731
    if same:
        deciding = min(same, key=weakest) if verdict != "refuted" else max(same, key=lambda t: t["high"])
    else:
        deciding = next((t for t in tests if t["verdict"] == "inconclusive"), tests[0])
    return dict(id=pid, claim=rule(pid)["claim"], verdict=verdict, tests=tests, deciding=deciding,
                measured=measured)


# ----------------------------------------------------------------------------
# the parts, grouped by what they read


def bios_parts(r):
    """C1, C2a, C2b: retention of A, read on each seed's own sweep at full's mean acquisition of B."""
    before = float(np.mean(r["bios"]["before"]))
    level = bio_stats(r, "full", "acquisition")[0]
    depth, preserve = retention_at_seeds(r, "depth", level), retention_at_seeds(r, "preserve", level)
    seen = (f"A before {before:.0%}; at full's acquisition {level:.0%}: depth retains "
            f"{', '.join(f'{v:.0%}' for v in depth) or 'not reached'}, preserve "
            f"{', '.join(f'{v:.0%}' for v in preserve) or 'not reached'} (one per seed)")
    tests = [test("C1", [before / 2 - v for v in depth], against=0.0), test("C2a", preserve, depth),
             test("C2b", preserve, against=before / 2)]
    if before < 0.5:  # retention means nothing if the base never memorised A
        seen += "; the base memorised < 50% of A (raise bios_base_iters): no verdict"
        tests = [dict(t, effect=None, low=None, high=None, verdict="inconclusive", decide=None,
                      note="the base never memorised A") for t in tests]
    return [part(pid, [t], seen) for pid, t in zip(("C1", "C2a", "C2b"), tests)]


def forgetting_parts(r):
    """C3a, C3b: forgetting read on each seed's own sweep at full's mean Korean loss (default rate); C3c."""
    level = float(np.mean(seed_values(r, "full", "korean")))
    at = {m: forgetting_at_seeds(r, m, level) for m in r["compared"]}
    seen = f"at full's Korean loss {level:.3f}, forgetting (mean over the seeds that reach it): " + ", ".join(
        f"{m} {np.mean(v):+.3f} (n={len(v)})" if v else f"{m} not reached" for m, v in at.items())
    c3a = [test("C3a", at[b], at["preserve"], label=b) for b in NO_ENGLISH_BASELINES if b in at]
    c3b = [test("C3b", at["full+replay"], at["route+replay"])]
    lr_p, lr_f = chosen_rate(r, "preserve"), chosen_rate(r, "full")
    ko_p, ko_f = seed_values(r, "preserve", "korean", lr_p), seed_values(r, "full", "korean", lr_f)
    seen_c = (f"Korean at each one's best rate: preserve {np.mean(ko_p):.3f} at {lr_p:g}, full {np.mean(ko_f):.3f} "
              f"at {lr_f:g}")
    return [part("C3a", c3a, seen), part("C3b", c3b, seen), part("C3c", [test("C3c", ko_f, ko_p)], seen_c)]


def growup_parts(r):
    """C4: Grow Up's 2x at its best rate against the FLOP-matched 1x; C5 over the shared range of Korean loss."""
    lr_g = chosen_rate(r, "growup")
    two = seed_values(r, "growup", "korean", lr_g)
    one = [r["losses"][k]["korean"] for k in seed_runs(r, "full-flops")]
    tokens = r["logs"]["full-flops"][-1]["tokens"] if "full-flops" in r["logs"] else 0
    seen4 = (f"Grow Up's 2x at {lr_g:g}: {np.mean(two):.3f}; the 1x at the same FLOPs ({tokens:,} tokens, "
             f"at {r.get('flops_rate', 0):g}): " + (f"{np.mean(one):.3f}" if one else "not run"))
    (lo_f, hi_f), (lo_g, hi_g) = korean_range(r, "full"), korean_range(r, "growup")
    lo, hi = max(lo_f, lo_g), min(hi_f, hi_g)
    levels = list(np.linspace(lo, hi, C5_LEVELS)) if lo <= hi else []
    c5 = [test("C5", forgetting_at_seeds(r, "full", x), forgetting_at_seeds(r, "growup", x), label=f"{x:.2f}")
          for x in levels]
    seen5 = (f"shared Korean range {lo:.3f}–{hi:.3f} (what both sweeps span: lower losses, from longer training, "
             f"are not read); full minus Grow Up's forgetting at each level: "
             + ", ".join(f"{t['label']} {t['effect']:+.3f}" for t in c5 if t["effect"] is not None)
             if levels else "the two sweeps share no range of Korean loss: no verdict")
    return [part("C4", [test("C4", one, two)], seen4),
            part("C5", c5 or [test("C5", [], [])], seen5)]


def merge_values(r, anc, method, lr):
    """[one per merge seed] the mean Korean+German loss of a merge (or the joint model: method "joint")."""
    name = f"joint/{anc}" if method == "joint" else f"{at_rate(f'merged/{anc}', lr, r['settings'])}/{method}"
    return [merge_score(r["losses"][k]) for k in seed_runs(r, name)]


def merge_parts(r):
    """C6, C7a-c: the tuned merges (TUNED_MERGES) of each ancestor, over the merge seeds."""
    rates, lr0 = rates_of_merges(r), r["settings"]["cpt_lr"]
    ancs = [a for a, _ in MERGE_ANCESTORS]
    own = {(a, m): merge_values(r, a, m, rates[a]) for a in ancs for m in TUNED_MERGES}
    common = {(a, m): merge_values(r, a, m, lr0) for a in ancs for m in TUNED_MERGES}
    methods, twins = distinct_methods(r, TUNED_MERGES)
    best = {a: min(TUNED_MERGES, key=lambda m: np.mean(own[a, m])) for a in ancs}
    worst = {a: max(TUNED_MERGES, key=lambda m: np.mean(own[a, m])) for a in ancs}
    joint = {a: merge_values(r, a, "joint", rates[a]) for a in ancs}
    at = ", ".join(f"{a} {rates[a]:g}" for a in ancs)
    seen6 = f"at each ancestor's rate ({at}): " + "; ".join(
        f"{a} best merge {best[a]} {np.mean(own[a, best[a]]):.3f}, joint {np.mean(joint[a]):.3f}" for a in ancs)
    twinned = "".join(f"; {m} made {k}'s merges exactly, counted once" for m, k in twins.items())
    gain = lambda v: ", ".join(f"{m} {np.mean(v['base', m]) - np.mean(v['hyper', m]):+.3f}"  # noqa: E731
                               for m in methods)
    return [part("C6", [test("C6", own[a, best[a]], joint[a], label=a) for a in ancs], seen6),
            part("C7a", [test("C7a", own["base", m], own["hyper", m], label=m) for m in methods],
                 f"at each ancestor's rate ({at}), 1x minus 2x merge score: {gain(own)}{twinned}"),
            part("C7b", [test("C7b", common["base", m], common["hyper", m], label=m) for m in methods],
                 f"both at {lr0:g}, 1x minus 2x merge score: {gain(common)}{twinned}"),
            part("C7c", [test("C7c", own[a, worst[a]], own[a, best[a]], label=a) for a in ancs],
                 "worst minus best tuned method: " + ", ".join(
                     f"{a} {worst[a]} − {best[a]} {np.mean(own[a, worst[a]]) - np.mean(own[a, best[a]]):.3f}"
                     for a in ancs))]


def claims(r):
    """Every claim part of rules.py, in its order, each with its verdict."""
    return bios_parts(r) + forgetting_parts(r) + growup_parts(r) + merge_parts(r)
