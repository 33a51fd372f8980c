"""
first_rules.py — the rule each claim had when the experiment first ran, applied to today's numbers.

Place in the story: a column of the report's verdict table. The experiment's
rules changed more than ten times after exploratory runs had shown their numbers
(LOG.md tells each change); a reader should see whether the current rule's
verdict differs from the one the first-written rule gives on the same numbers.
These are the rules of commit FIRST_COMMIT, as written there: every method at
the default learning rate (the mean over its seeds), a difference counted
beyond a threshold of seed noise (the range, max minus min, of full training's
seeds), the biographies' spread with ddof=0 as it was then.
"""

import numpy as np

from lab.readings import BASELINES, MERGE_ANCESTORS, MERGE_METHODS, SCALE_VARIANTS, forgetting, merge_score, seed_runs

FIRST_COMMIT = "57d1f35"
WORD = {True: "reproduced", False: "not reproduced", None: "no verdict"}


def noise(r, what):
    """The first rules' seed noise: max minus min over full training's seeds, of English or Korean loss."""
    values = [r["losses"][k][what] for k in seed_runs(r, "full")]
    return max(values) - min(values)


def mean_of(r, name, what):
    """A setting's mean at the default rate over its seeds: its forgetting, or its loss on a language."""
    ks = seed_runs(r, name)
    return float(np.mean([forgetting(r, k) if what == "forgetting" else r["losses"][k][what] for k in ks]))


def first_bios(r):
    """C1 and C2 as first written: retention at the default rate, depth at most half, SCALE > 2 sd above."""
    runs = r["bios"]["runs"]
    ret = {m: [np.mean(x["retention"]) for x in v] for m, v in runs.items()}
    acq = {m: float(np.mean([np.mean(x["acquisition"]) for x in v])) for m, v in runs.items()}
    before = float(np.mean(r["bios"]["before"]))
    if before < 0.5:
        return None, None
    c1 = float(np.mean(ret["depth"])) <= before / 2
    best = max((m for m in SCALE_VARIANTS if m in ret), key=lambda m: np.mean(ret[m]))
    margin = np.mean(ret[best]) - np.mean(ret["depth"]) > 2 * max(np.std(ret[best]), np.std(ret["depth"]), 0.01)
    return c1, bool(margin and acq[best] >= acq["full"] / 2)


def first_languages(r):
    """C3, C4, C5 as first written: every method at the default rate, beyond the seed noise of full training."""
    en, ko = noise(r, "english"), noise(r, "korean")
    scale_runs = [m for m in SCALE_VARIANTS if m in r["losses"]]
    baselines = [m for m in BASELINES if m in r["losses"]]
    least = min(scale_runs, key=lambda m: mean_of(r, m, "forgetting"))
    base_least = min(baselines, key=lambda m: mean_of(r, m, "forgetting"))
    less = mean_of(r, least, "forgetting") < mean_of(r, base_least, "forgetting") - en
    competitive = mean_of(r, least, "korean") <= mean_of(r, "full", "korean") * 1.05 + ko
    longer = "full-long" if "full-long" in r["losses"] else "full-flops"
    c4 = mean_of(r, "hyperclone", "korean") <= mean_of(r, longer, "korean") + ko if longer in r["losses"] else None
    c5 = mean_of(r, "hyperclone", "forgetting") < mean_of(r, "full", "forgetting") - en
    return bool(less and competitive), c4, bool(c5)


def first_merges(r):
    """C6 and C7 as first written: the untuned merges at the default rate, seed 0, against the joint model."""
    L, ko = r["losses"], noise(r, "korean")
    ancs = [a for a, _ in MERGE_ANCESTORS]
    score = {(a, m): merge_score(L[f"merged/{a}/{m}"]) for a in ancs for m in MERGE_METHODS
             if f"merged/{a}/{m}" in L}
    if len(score) < 2 * len(MERGE_METHODS):
        return None, None
    c6 = all(min(score[a, m] for m in MERGE_METHODS) - merge_score(L[f"joint/{a}"]) > 0 for a in ancs)
    diff = [score["base", m] - score["hyper", m] for m in MERGE_METHODS]
    spread = max(max(score[a, m] for m in MERGE_METHODS) - min(score[a, m] for m in MERGE_METHODS) for a in ancs)
    c7 = sum(d > ko for d in diff) > len(diff) / 2 and spread > max(0.1, 3 * ko)
    return c6, bool(c7)


def first_verdicts(r):
    """{claim part: the first rule's verdict of its claim, in words}."""
    c1, c2 = first_bios(r)
    c3, c4, c5 = first_languages(r)
    c6, c7 = first_merges(r)
    by_claim = {"C1": c1, "C2": c2, "C3": c3, "C4": c4, "C5": c5, "C6": c6, "C7": c7}
    parts = ["C1", "C2a", "C2b", "C3a", "C3b", "C3c", "C4", "C5", "C6", "C7a", "C7b", "C7c"]
    return {p: WORD[by_claim[p[:2]]] for p in parts}
