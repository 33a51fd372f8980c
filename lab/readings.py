"""
readings.py — the numbers the claims read from results.json: seeds, spreads, sweeps, interpolation.

Place in the story: under claims.py, report.py and plots.py. A run's numbers
over its seeds (mean, sd, n), the sd pooled over settings, a method's points
along its learning-rate sweep and the value read between two of them, the
biographies' retention and acquisition, which rate each ancestor's merges ran
at. Nothing here decides anything: claims.py does.
"""


import numpy as np

import merge
import scale
from lab.stats import mean_interval
from tune import GRIDS

# the first seed of each; "+replay" sees English; "growup" is Grow Up's 2x arm (cloned mid-pretraining)
KOREAN_RUNS = ["full", "full+replay", *scale.RECIPES, "growup", "route+replay"]
SCALE_VARIANTS = [name for name, options in scale.RECIPES.items() if options["method"] == "scale"]
BASELINES = ["full", "full+replay"] + [name for name in scale.RECIPES if name not in SCALE_VARIANTS
                                       and name != "hyperclone-noiseless"] + ["growup"]
MERGE_METHODS = [m for m in merge.METHODS if m != "layerwise"]  # at merge.py's defaults: the papers' setting
# every method tuned on held-out batches (lab/tracks.py's merge_track); linear has nothing to tune
TUNED_MERGES = ["linear"] + [f"{m}-tuned" for m in merge.METHODS if GRIDS.get(m, True)]
MERGE_ANCESTORS = (("base", "full"), ("hyper", "hyperclone"))  # the merges' ancestors, and their Korean runs

# ----------------------------------------------------------------------------
# a run over its seeds, a method along its sweep


def korean_runs(r):
    return [k for k in KOREAN_RUNS if k in r["losses"]]


def seed_runs(r, name):
    """The runs of one setting over its seeds: full, full-seed2, full-seed3, ..."""
    return [k for k in r["losses"] if k == name or k.startswith(name + "-seed") and k[len(name) + 5:].isdigit()]


def forgetting(r, k):
    """English loss after minus before; before is the base's, or the run's own start (Grow Up's 2x model)."""
    return r["losses"][k]["english"] - r["losses"][r.get("before", {}).get(k, "base")]["english"]


def measure_of(what):
    """A number of one run: its English forgetting, its mean Korean+German loss ("merge"), or its loss
    on a language."""
    if what == "merge":
        return lambda r, k: merge_score(r["losses"][k])
    return forgetting if what == "forgetting" else (lambda r, k: r["losses"][k][what])


def pooled(groups):
    """The standard deviation within groups, pooled over every group of several values."""
    num, dof = 0.0, 0
    for values in groups:
        if len(values) > 1:
            num += float(np.var(values, ddof=1)) * (len(values) - 1)
            dof += len(values) - 1
    return (num / dof) ** 0.5 if dof else 0.0


def pooled_sd(r, what):
    """The seed-to-seed standard deviation, pooled over every setting that ran several seeds: the
    noise we assume for a setting that ran once."""
    f = measure_of(what)
    return pooled([f(r, k) for k in seed_runs(r, name)] for name in KOREAN_RUNS)


def stats(r, name, what):
    """(mean, sd, n) of a setting over its seeds; a single run gets the pooled sd."""
    values = [measure_of(what)(r, k) for k in seed_runs(r, name)]
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else pooled_sd(r, what)
    return float(np.mean(values)), sd, len(values)


def frontier(r, name):
    """[(learning rate, Korean loss, forgetting)] of one method along the learning-rate sweep, sorted by
    Korean loss; at every rate the mean over its seeds (the rates past the sweep's ends ran seed 0 only)."""
    lr0 = r["settings"]["cpt_lr"]
    points = [(lr0, stats(r, name, "korean")[0], stats(r, name, "forgetting")[0])]
    for k in r["losses"]:
        if k.startswith(name + "@") and "-seed" not in k:
            points.append((float(k.split("@")[1]), stats(r, k, "korean")[0], stats(r, k, "forgetting")[0]))
    return sorted(points, key=lambda p: p[1])


def along(points, x, best=min):
    """The third coordinate of a sweep's points (learning rate, x, y), interpolated at x on every stretch
    between neighbouring rates that crosses x, the `best` of them (each method at its best setting); None
    if the sweep never gets there. A sweep that goes past its best rate turns back (a higher rate learns
    less and forgets more), so it can cross x twice; joining points in order of x instead would draw a
    stretch between rates that are not neighbours."""
    points = sorted(points)  # in order of learning rate, as the frontier plots join them
    found = [y0 if x0 == x1 else y0 + (y1 - y0) * (x - x0) / (x1 - x0)
             for (_, x0, y0), (_, x1, y1) in zip(points, points[1:]) if min(x0, x1) <= x <= max(x0, x1)]
    if len(points) == 1 and points[0][1] == x:  # a single rate: only its own value is on the sweep
        found.append(points[0][2])
    return float(best(found)) if found else None


def best_rate(r, name):
    """(learning rate, (mean, sd, n)) of the method's lowest Korean loss along its sweep: the mean over
    seeds at the default rate, a single run elsewhere (with the pooled sd)."""
    lr, korean, _ = frontier(r, name)[0]
    if lr == r["settings"]["cpt_lr"]:
        return lr, stats(r, name, "korean")
    return lr, (korean, pooled_sd(r, "korean"), 1)


def rates_tried(r, name):
    """The learning rates a compared method's sweep tried: the first round's and any past its ends."""
    return sorted(p[0] for p in frontier(r, name))


def sweep_end(lrs, lr):
    """What the report adds to a chosen rate at an end of the rates tried `lrs`, where the method's best may
    lie beyond them: ' (the highest rate tried)', ' (the lowest rate tried)', or nothing."""
    lrs = sorted(lrs)
    return " (the highest rate tried)" if lr == lrs[-1] else " (the lowest rate tried)" if lr == lrs[0] else ""


def chosen_note(r, name, lr):
    """What the report adds to a rate picked from the first round of name's sweep (lab/tracks.py's
    merge_rates): an end of all the rates tried, and where the sweep's lowest Korean loss is if elsewhere
    (the sweep goes past its ends after the choice: edge_track)."""
    best = best_rate(r, name)[0]
    moved = f" (the lowest Korean loss of its whole sweep is at {best:g})" if best != lr else ""
    return sweep_end(rates_tried(r, name), lr) + moved


def forgetting_at(r, name, korean):
    """Forgetting interpolated along the method's frontier at this Korean loss; None if its sweep
    never gets there (its Korean stays worse, or is better everywhere)."""
    return along(frontier(r, name), korean)


def fmt(stat, signed=True):
    mean = f"{stat[0]:+.3f}" if signed else f"{stat[0]:.3f}"
    return f"{mean} ± {stat[1]:.3f} (n={stat[2]})" if stat[2] > 1 else f"{mean} (n=1)"


def bio_stats(r, method, what):
    """Mean and sample standard deviation (ddof=1; 0 for one seed) over seeds of the mean exact-match accuracy
    over the six attributes."""
    values = [np.mean(run[what]) for run in r["bios"]["runs"][method]]
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def bio_frontier(r, method):
    """[(learning rate, acquisition, retention)] of one method on the biographies along its sweep, sorted
    by acquisition; at every rate the mean over its seeds."""
    acq, ret = bio_stats(r, method, "acquisition")[0], bio_stats(r, method, "retention")[0]
    points = [(r["settings"]["bios_lr"], acq, ret)]
    for k, runs in r["bios"].get("sweep", {}).items():
        if k.split("@")[0] == method:
            acq, ret = (float(np.mean([np.mean(run[w]) for run in runs])) for w in ("acquisition", "retention"))
            points.append((float(k.split("@")[1]), acq, ret))
    return sorted(points, key=lambda p: p[1])


def retention_at(r, method, acquisition):
    """Retention interpolated along the method's sweep at this acquisition; None if its sweep never
    gets there."""
    return along(bio_frontier(r, method), acquisition, best=max)


def loss_at(log, tokens, lang):
    """Validation loss at a token count, linearly interpolated between evaluations."""
    xs = [e["tokens"] for e in log]
    return float(np.interp(tokens, xs, [e["loss"][lang] for e in log]))


def merge_score(losses):
    """What a Korean + German merge is judged on: its mean loss over the two languages."""
    return (losses["korean"] + losses["german"]) / 2


# ----------------------------------------------------------------------------
# rates and the merges


def sweep_rates(settings):
    """The first round's learning rates of every compared method's sweep, lowest first: cpt_lr and sweep_lrs."""
    return sorted([settings["cpt_lr"], *settings["sweep_lrs"]])


def method_sweep(settings, name, bios=False):
    """The rates of one method's sweep besides the default (sweep_lrs; with `bios`, bios_sweep_lrs): every rate
    above the default, those below it only for the methods listed (sweep_below, bios_sweep_below). A rate below
    the default is there for a method already past a reading point at the default rate: C3 reads every method
    at full training's Korean loss, C1 and C2 at full's acquisition, and a seed's sweep must reach that point
    from both sides. A method short of it at the default needs only the rates above, and its best rate lies
    above too, so leaving the lower ones out takes nothing a claim or a rate choice reads."""
    lrs, lr0, below = sweep_settings(settings, bios)
    return [lr for lr in lrs if lr > lr0 or below is None or name in below]


def sweep_settings(settings, bios=False):
    """(the sweep's other rates, the default rate, the methods that run the rates below it) of the language
    track, or with `bios` of the biographies."""
    if bios:
        return settings["bios_sweep_lrs"], settings["bios_lr"], settings.get("bios_sweep_below")
    return settings["sweep_lrs"], settings["cpt_lr"], settings.get("sweep_below")


def below_note(settings, names, bios=False):
    """The report's words for which methods ran the sweep's rates below the default (method_sweep)."""
    lrs, lr0, _ = sweep_settings(settings, bios)
    low = [lr for lr in lrs if lr < lr0]
    ran = [n for n in names if low and low[0] in method_sweep(settings, n, bios)]
    if not low or len(ran) == len(names):
        return ""
    return (f"; {' and '.join(f'{lr:g}' for lr in low)} only for {', '.join(ran) or 'none'}, whose seeds at {lr0:g} "
            "lie at or past the claims' reading point (a lower rate brings a seed's sweep back across it); the "
            "others reach it from the rates above, where their best rates lie too")


def at_rate(name, lr, settings):
    """A run's name at a learning rate: the name itself at the default rate, else name@lr (full@0.001)."""
    return name if lr == settings["cpt_lr"] else f"{name}@{lr:g}"


def rates_of_merges(r):
    """The learning rate each ancestor's merges, German and joint models were trained at (lab/tracks.py's
    merge_rates)."""
    return r["merge_rates"]


def long_rate(r, name):
    """The learning rate a long data-efficiency run (full-long, hyperclone-long) was trained at: its
    ancestor's (lab/tracks.py's long_track); the default rate for a run that was not continued longer
    (hyperclone, when long_factor_2x is 0)."""
    return r["long_rates"].get(name, r["settings"]["cpt_lr"])


def efficiency_runs(r):
    """[(run, label, learning rate)] of the data-efficiency curves: the 1x and the 2x HyperClone trained
    longer (each at its ancestor's rate), C4's 1x run to the 2x run's FLOPs (seed 0), Grow Up's 2x at the
    default rate and, if it differs, at its best rate (chosen on held-out batches: C4 reads that one)."""
    s = r["settings"]
    lr_growup = chosen_rate(r, "growup") if "choice" in r else best_rate(r, "growup")[0]
    wide = "hyperclone-long" if "hyperclone-long" in r["logs"] else "hyperclone"
    runs = [("full-long", "1x, continued longer", long_rate(r, "full-long")),
            (wide, "2x, HyperClone of the finished base" + (", continued longer" if wide.endswith("-long") else ""),
             long_rate(r, wide)),
            ("growup", "2x, Grow Up (cloned mid-pretraining)", s["cpt_lr"])]
    if "full-flops" in r["logs"]:
        runs.insert(1, ("full-flops", "1x, to the 2x run's FLOPs (C4)", r["flops_rate"]))
    if lr_growup != s["cpt_lr"]:
        runs.append((at_rate("growup", lr_growup, s), "2x, Grow Up, at its best rate", lr_growup))
    return runs


def distinct_methods(r, methods=None):
    """(the merge methods, each merge counted once; {method left out: the one it duplicates}). A method whose
    merges have every loss (each ancestor, each seed, each language) equal to an earlier method's made the
    same models, and a claim that counts methods would count it twice (linear and task arithmetic coincide
    at merge.py's defaults: normalized weights and lambda 1 make both the average of the models)."""
    rates = rates_of_merges(r)
    prefixes = [f"{at_rate(f'merged/{a}', rates[a], r['settings'])}/" for a in ("base", "hyper")]

    def losses(m):  # {(ancestor's prefix, seed suffix): losses} of the method's merges
        return {(p, k[len(p):].replace(m, "", 1)): v for p in prefixes for k, v in r["losses"].items()
                if k.startswith(p) and (k[len(p):] == m or k[len(p):].startswith(f"{m}-seed"))}
    methods = MERGE_METHODS if methods is None else methods
    merged, kept, twins = {m: losses(m) for m in methods}, [], {}
    for m in methods:
        twin = next((k for k in kept if merged[m] and merged[m] == merged[k]), None)
        if twin:
            twins[m] = twin
        else:
            kept.append(m)
    return kept, twins




# ----------------------------------------------------------------------------
# how much of each language a merge keeps


def seeded(name, seed):
    """A run's name for a seed: name, name-seed2, ... (what lab/tracks.py names its runs)."""
    return name if seed == 0 else f"{name}-seed{seed + 1}"


def kept_fractions(r, anc, method, lang):
    """[one per merge seed] the fraction of the specialist's gain on `lang` that the merge `method` of
    ancestor `anc` keeps: 0 at the other language's model from the same ancestor (same seed, same rate),
    1 at the specialist's loss; "joint" reads the joint model of each merge seed."""
    s, lr = r["settings"], rates_of_merges(r)[anc]
    recipe = dict(MERGE_ANCESTORS)[anc]
    L = r["losses"]
    out = []
    for seed in range(s["merge_seeds"]):
        korean, german = seeded(at_rate(recipe, lr, s), seed), seeded(at_rate(f"german/{anc}", lr, s), seed)
        own, other = (korean, german) if lang == "korean" else (german, korean)
        merged = seeded(f"joint/{anc}" if method == "joint" else f"{at_rate(f'merged/{anc}', lr, s)}/{method}", seed)
        if merged in L:
            out.append((L[other][lang] - L[merged][lang]) / (L[other][lang] - L[own][lang]))
    return out


def kept(r, anc, method, lang):
    """(mean, low, high, n): the kept fraction over the merge seeds with its 95% t interval (lab/stats.py)."""
    values = kept_fractions(r, anc, method, lang)
    return (*mean_interval(values), len(values))


# ----------------------------------------------------------------------------
# per seed: the values a claim part reads, one per seed (lab/rules.py)


def seed_sweep(r, name, seed, what="forgetting"):
    """[(learning rate, Korean loss, `what`)] of one seed of a method at every first-round rate it ran
    (cpt_lr and its method_sweep: every seed runs them; the rates past the ends ran seed 0 only and are left out)."""
    s, out = r["settings"], []
    for lr in sweep_rates(s):
        k = seeded(at_rate(name, lr, s), seed)
        if k in r["losses"]:
            out.append((lr, r["losses"][k]["korean"], measure_of(what)(r, k)))
    return out


def forgetting_at_seeds(r, name, korean):
    """[one per seed whose own sweep reaches this Korean loss] the forgetting read there (along)."""
    values = [along(seed_sweep(r, name, k), korean) for k in range(r["settings"]["seeds"])]
    return [v for v in values if v is not None]


def korean_range(r, name):
    """(lowest, highest) Korean loss that every seed's own sweep of the method spans."""
    sweeps = [seed_sweep(r, name, k) for k in range(r["settings"]["seeds"])]
    sweeps = [p for p in sweeps if p]
    return max(min(p[1] for p in sw) for sw in sweeps), min(max(p[1] for p in sw) for sw in sweeps)


def chosen_rate(r, name):
    """The rate of a method's first-round sweep with the lowest Korean loss on held-out batches (seed 0;
    r["choice"], lab/tracks.py's choice evaluation): the claims' numbers never choose a rate."""
    s = r["settings"]
    tried = {lr: r["choice"][at_rate(name, lr, s)] for lr in sweep_rates(s) if at_rate(name, lr, s) in r["choice"]}
    return min(tried, key=tried.get)


def seed_values(r, name, what, lr=None):
    """[one per seed] a setting's `what` (measure_of) at a rate (default cpt_lr), every seed that ran."""
    s = r["settings"]
    return [measure_of(what)(r, k) for k in seed_runs(r, at_rate(name, s["cpt_lr"] if lr is None else lr, s))]


def bio_seed_sweep(r, method, seed):
    """[(learning rate, acquisition, retention)] of one seed of a method on the biographies, at every rate."""
    s, out = r["settings"], []
    rates = [(method, s["bios_lr"])] + [(f"{method}@{lr:g}", lr) for lr in s["bios_sweep_lrs"]]
    for key, lr in rates:
        runs = r["bios"]["sweep" if "@" in key else "runs"].get(key, [])
        for run in runs:
            if run.get("seed", 0) == seed:
                out.append((lr, float(np.mean(run["acquisition"])), float(np.mean(run["retention"]))))
    return out


def retention_at_seeds(r, method, acquisition):
    """[one per seed whose own sweep reaches this acquisition] the retention read there (along, the most)."""
    values = [along(bio_seed_sweep(r, method, k), acquisition, best=max) for k in range(r["settings"]["bios_seeds"])]
    return [v for v in values if v is not None]
