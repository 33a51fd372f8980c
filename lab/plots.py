"""
plots.py — the report's figures, one function each, from results.json's numbers.

Place in the story: report.py writes REPORT.md and calls plot_all for its figures.
"""

import os

import numpy as np

from lab.readings import (BASELINES, MERGE_ANCESTORS, MERGE_METHODS, TUNED_MERGES, at_rate, bio_seed_sweep, bio_stats,
                          efficiency_runs, korean_range, korean_runs, rates_of_merges, seed_values, stats, sweep_rates)


# one colour per method in every figure, one marker per learning rate
METHODS = ["full", "full+replay", "depth", "hyperclone", "growup", "preserve", "route+replay", "route",
           "hyperclone-noiseless", "solar", "ffn", "adapt"]
MARKERS = "osD^v<>ph*"


def colour(name):
    """The method's colour (tab20's first colours in METHODS' order); a merge method gets its own."""
    import matplotlib
    key = name.split("@")[0].removesuffix("-long").removesuffix("-flops")
    names = METHODS + [m for m in TUNED_MERGES + MERGE_METHODS if m not in METHODS]
    i = names.index(key) if key in names else len(names)
    return matplotlib.colormaps["tab20"](i % 20)


def plot_all(r, out_dir):
    """Every figure of the report, written to out_dir; returns {name: file name}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return {name: _save(plot(r, plt), out_dir, f"{file}.png") for name, file, plot in (
        ("curves", "curves", plot_curves), ("frontier", "frontier", plot_frontier),
        ("efficiency", "data_efficiency", plot_efficiency), ("merges", "merges", plot_merges),
        ("bios", "bios_frontier", plot_bios_frontier))}


def plot_curves(r, plt):
    """English and Korean validation loss during continued pretraining at the default rate, one line per run
    (seed 0), on a log scale from the first evaluation after step 0, so the end of training is readable."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k in korean_runs(r):
        log = [e for e in r["logs"][k] if e["iter"] > 0]
        for ax, lang in zip(axes, ("english", "korean")):
            ax.plot([e["iter"] for e in log], [e["loss"][lang] for e in log], label=k, color=colour(k),
                    ls="--" if k in BASELINES or k.startswith("full") else "-")
    for ax, lang in zip(axes, ("English (forgetting)", "Korean (learning)")):
        ax.set(xlabel="step of continued pretraining on Korean", ylabel="validation loss (nats/byte, log scale)",
               title=lang, yscale="log")
    axes[1].legend(fontsize=7)
    return fig


def sweep_means(r, name, what):
    """{learning rate: (mean Korean, sd, mean `what`, sd)} over the seeds at every first-round rate."""
    out = {}
    for lr in sweep_rates(r["settings"]):
        xs, ys = seed_values(r, name, "korean", lr), seed_values(r, name, what, lr)
        if xs:
            sd = lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0  # noqa: E731
            out[lr] = (float(np.mean(xs)), sd(xs), float(np.mean(ys)), sd(ys))
    return out


def plot_frontier(r, plt):
    """Forgetting against Korean loss across the first-round learning rates (mean over seeds, bars one sd),
    one colour per method, one marker per rate; the line and band where C3 and C5 read it."""
    fig, ax = plt.subplots(figsize=(7, 5))
    rates = sweep_rates(r["settings"])
    level = float(np.mean(seed_values(r, "full", "korean")))
    (lo_f, hi_f), (lo_g, hi_g) = korean_range(r, "full"), korean_range(r, "growup")
    for m in r["compared"]:
        points = sweep_means(r, m, "forgetting")
        lrs = sorted(points)
        ax.plot([points[lr][0] for lr in lrs], [points[lr][2] for lr in lrs], "-", color=colour(m), lw=1,
                label=m + (" (sees English)" if "replay" in m else ""))
        for lr in lrs:
            x, sx, y, sy = points[lr]
            ax.errorbar(x, y, xerr=sx, yerr=sy, fmt=MARKERS[rates.index(lr)], ms=5, color=colour(m), capsize=2)
    for i, lr in enumerate(rates):  # the markers' key
        ax.plot([], [], MARKERS[i], color="grey", label=f"rate {lr:g}")
    ax.axvline(level, color="black", lw=0.8, ls=":")
    if max(lo_f, lo_g) <= min(hi_f, hi_g):
        ax.axvspan(max(lo_f, lo_g), min(hi_f, hi_g), color="grey", alpha=0.12, lw=0)
    xs = [p[0] for m in r["compared"] for p in sweep_means(r, m, "forgetting").values()]
    ax.set_xlim(min(xs) - 0.1, max(level, min(hi_f, hi_g)) + 0.6)  # where the claims read; the rest is cut
    ax.set(xlabel="Korean validation loss after  (← better)", ylabel="English forgetting  (↓ better)",
           title="Frontier across learning rates (dotted: C3 reads here; shaded: C5's range)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, ncol=2)
    return fig


def plot_bios_frontier(r, plt):
    """Retention of A against acquisition of B across the biographies' rates, mean over seeds (bars one sd)."""
    fig, ax = plt.subplots(figsize=(7, 5))
    s = r["settings"]
    rates = sorted([s["bios_lr"], *s["bios_sweep_lrs"]])
    for m in r["bios"]["runs"]:
        per_seed = [bio_seed_sweep(r, m, k) for k in range(s["bios_seeds"])]
        points = []
        for lr in rates:
            at = [p for sw in per_seed for p in sw if p[0] == lr]
            if at:
                a, k = [p[1] for p in at], [p[2] for p in at]
                points.append((lr, np.mean(a), np.std(a, ddof=1) if len(a) > 1 else 0,
                               np.mean(k), np.std(k, ddof=1) if len(k) > 1 else 0))
        ax.plot([p[1] for p in points], [p[3] for p in points], "-", color=colour(m), lw=1, label=m)
        for lr, a, sa, k, sk in points:
            ax.errorbar(a, k, xerr=sa, yerr=sk, fmt=MARKERS[rates.index(lr)], ms=5, color=colour(m), capsize=2)
    for i, lr in enumerate(rates):
        ax.plot([], [], MARKERS[i], color="grey", label=f"rate {lr:g}")
    ax.axvline(bio_stats(r, "full", "acquisition")[0], color="black", lw=0.8, ls=":")
    ax.axhline(np.mean(r["bios"]["before"]) / 2, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="acquisition of B: exact match  (→ better)", ylabel="retention of A: exact match  (↑ better)",
           title="Biographies across learning rates (dotted: C1, C2 read here; dashed: half of A before)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, ncol=2)
    return fig


def plot_efficiency(r, plt):
    """Korean loss against tokens and against FLOPs: the 1x model trained longer vs the 2x models."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, label, lr in efficiency_runs(r):
        log = [e for e in r["logs"][k] if e["tokens"] > 0]  # step 0 (the untrained Korean, ~11) would flatten the rest
        tokens, flops = np.array([e["tokens"] for e in log]), r["flops_per_token"][k.split("@")[0]]
        style = dict(color=colour(k), ls=":" if k.endswith("-flops") else "-", ms=2, label=f"{label}, at {lr:g}")
        axes[0].plot(tokens, [e["loss"]["korean"] for e in log], marker="o", **style)
        axes[1].plot(tokens * flops, [e["loss"]["korean"] for e in log], marker="o", **style)
    axes[0].set(xlabel="Korean tokens seen", ylabel="Korean validation loss", title="Data efficiency (from the first "
                "evaluation after step 0)", xscale="log")
    axes[1].set(xlabel="training FLOPs", xscale="log", title="Compute")
    axes[0].legend(fontsize=7, loc="upper right")
    return fig


def plot_merges(r, plt):
    """What C6 and C7 decide on: each tuned merge's mean Korean+German loss at its ancestor's rate (mean over
    the merge seeds, bars one sd), one bar per ancestor, and each ancestor's joint model as a line."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    rates, width = rates_of_merges(r), 0.4
    for j, (anc, _) in enumerate(MERGE_ANCESTORS):
        at = at_rate(f"merged/{anc}", rates[anc], r["settings"])
        means = [stats(r, f"{at}/{m}", "merge") for m in TUNED_MERGES]
        tone = ("tab:blue", "tab:orange")[j]
        name = "1x base" if anc == "base" else "2x HyperClone"
        ax.bar(np.arange(len(TUNED_MERGES)) + width * j, [v[0] for v in means], width=width, color=tone,
               yerr=[v[1] if v[2] > 1 else 0 for v in means], capsize=2, label=f"merges of the {name}, at {rates[anc]:g}")
        ax.axhline(stats(r, f"joint/{anc}", "merge")[0], color=tone, ls="--", lw=1.2, label=f"joint model of the {name}")
    ax.set_xticks(np.arange(len(TUNED_MERGES)) + width / 2, TUNED_MERGES, rotation=30, ha="right", fontsize=8)
    low = min(stats(r, f"joint/{a}", "merge")[0] for a, _ in MERGE_ANCESTORS)
    ax.set(ylabel="mean Korean+German loss  (↓ better)", ylim=(low * 0.9, None),
           title="Tuned merges against joint training (what C6 and C7 decide on)")
    ax.legend(fontsize=7)
    return fig


def _save(fig, out_dir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return name
