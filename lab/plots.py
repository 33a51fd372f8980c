"""
plots.py — the report's figures, one function each, from results.json's numbers.

Place in the story: report.py writes REPORT.md and calls plot_all for its figures.
"""

import os

import numpy as np

from lab.readings import (BASELINES, MERGE_ANCESTORS, MERGE_METHODS, at_rate, bio_frontier, bio_stats, efficiency_runs,
                          frontier, korean_runs, rates_of_merges, stats)


def plot_all(r, out_dir):
    """Every figure of the report, written to out_dir; returns {name: file name}."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return {name: _save(plot(r, plt), out_dir, f"{file}.png") for name, file, plot in (
        ("curves", "curves", plot_curves), ("tradeoff", "tradeoff", plot_tradeoff),
        ("frontier", "frontier", plot_frontier), ("efficiency", "data_efficiency", plot_efficiency),
        ("merges", "merges", plot_merges), ("bios", "bios_frontier", plot_bios_frontier))}


def plot_curves(r, plt):
    """English and Korean validation loss during continued pretraining, one line per run."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k in korean_runs(r):
        log = r["logs"][k]
        for ax, lang in zip(axes, ("english", "korean")):
            ax.plot([e["iter"] for e in log], [e["loss"][lang] for e in log], label=k,
                    ls="--" if k in BASELINES or k.startswith("full") else "-")
    for ax, lang in zip(axes, ("English (forgetting)", "Korean (learning)")):
        ax.set(xlabel="step of continued pretraining on Korean", ylabel="validation loss (nats/byte)", title=lang)
    axes[1].legend(fontsize=8)
    return fig


def plot_tradeoff(r, plt):
    """Forgetting against Korean loss at the default learning rate, mean and sd over seeds."""
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k in korean_runs(r):  # mean over seeds, bars: one sd (the pooled sd for single runs, drawn dotted)
        (x, sx, n), (y, sy, _) = stats(r, k, "korean"), stats(r, k, "forgetting")
        bars = ax.errorbar(x, y, xerr=sx, yerr=sy, fmt="o", ms=4, capsize=2)
        if n == 1:
            bars[-1][0].set_linestyle(":")
            bars[-1][1].set_linestyle(":")
        ax.annotate(k + (" *" if "replay" in k else ""), (x, y), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="Korean validation loss after  (← better)", ylabel="English forgetting: loss rise  (↓ better)",
           title="Stability vs plasticity (best: bottom left; * sees English)")
    return fig


def plot_frontier(r, plt):
    """Forgetting against Korean loss across the learning-rate sweep, one curve per compared method."""
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for m in r["compared"]:  # one curve per method along the learning-rate sweep; bars: seed sd at the default
        points = sorted(frontier(r, m))  # joined in order of learning rate: a rate past the best turns back
        line, = ax.plot([p[1] for p in points], [p[2] for p in points], "-o", ms=3,
                        label=m + (" (sees English)" if "replay" in m else ""))
        (x, sx, _), (y, sy, _) = stats(r, m, "korean"), stats(r, m, "forgetting")
        ax.errorbar(x, y, xerr=sx, yerr=sy, color=line.get_color(), capsize=2)
        for lr, k, f in points:
            ax.annotate(f"{lr:g}", (k, f), fontsize=6, xytext=(2, -8), textcoords="offset points")
    ax.axvline(stats(r, "full", "korean")[0], color="grey", lw=0.8, ls=":")
    ax.set(xlabel="Korean validation loss after  (← better)", ylabel="English forgetting  (↓ better)",
           title="Frontier across learning rates (dotted: full's Korean)")
    ax.legend(fontsize=7)
    return fig


def plot_bios_frontier(r, plt):
    """Retention of A against acquisition of B across the biographies' learning-rate sweep, one curve per method."""
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    for m in r["bios"]["runs"]:  # bars: seed sd at the default rate
        points = bio_frontier(r, m)
        line, = ax.plot([p[1] for p in points], [p[2] for p in points], "-o", ms=3, label=m)
        (x, sx), (y, sy) = bio_stats(r, m, "acquisition"), bio_stats(r, m, "retention")
        ax.errorbar(x, y, xerr=sx, yerr=sy, color=line.get_color(), capsize=2)
        for lr, a, k in points:
            ax.annotate(f"{lr:g}", (a, k), fontsize=6, xytext=(2, -8), textcoords="offset points")
    ax.axvline(bio_stats(r, "full", "acquisition")[0], color="grey", lw=0.8, ls=":")
    ax.axhline(np.mean(r["bios"]["before"]) / 2, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="acquisition of B: exact match  (→ better)", ylabel="retention of A: exact match  (↑ better)",
           title="Biographies across learning rates (dotted: full's acquisition; dashed: half of A before)")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    return fig


def plot_efficiency(r, plt):
    """Korean loss against tokens and against FLOPs: the 1x model trained longer vs the 2x models."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, label, lr in efficiency_runs(r):
        log = [e for e in r["logs"][k] if e["tokens"] > 0]  # step 0 (the untrained Korean, ~11) would flatten the rest
        tokens, flops = np.array([e["tokens"] for e in log]), r["flops_per_token"][k.split("@")[0]]
        axes[0].plot(tokens, [e["loss"]["korean"] for e in log], "-o", ms=2, label=f"{label}, at {lr:g}")
        axes[1].plot(tokens * flops, [e["loss"]["korean"] for e in log], "-o", ms=2, label=f"{label}, at {lr:g}")
    axes[0].set(xlabel="Korean tokens seen", ylabel="Korean validation loss", title="Data efficiency (from the first "
                "evaluation after step 0)", xscale="log")
    axes[1].set(xlabel="training FLOPs", xscale="log", title="Compute")
    axes[0].legend(fontsize=7, loc="upper right")
    return fig


def plot_merges(r, plt):
    """Each language's loss of the language models, the joint model and every merge, per ancestor, at the
    ancestor's rate (means over the merge seeds)."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=False)
    names = ["korean", "german", "joint"] + MERGE_METHODS
    rates = rates_of_merges(r)
    for ax, lang in zip(axes, ("english", "korean", "german")):
        for j, (anc, ko_run) in enumerate(MERGE_ANCESTORS):
            at = lambda name: at_rate(name, rates[anc], r["settings"])  # noqa: E731
            keys = [at(ko_run), at(f"german/{anc}"), f"joint/{anc}"] + [f"{at(f'merged/{anc}')}/{m}" for m in MERGE_METHODS]
            means = [stats(r, k, lang) for k in keys]  # over the merge seeds (bars: one sd)
            ax.bar(np.arange(len(keys)) + 0.4 * j, [m[0] for m in means], width=0.4,
                   yerr=[m[1] if m[2] > 1 else 0 for m in means], capsize=2,
                   label=f"from {'1x base' if anc == 'base' else '2x HyperClone'}, at {rates[anc]:g}")
        ax.set_xticks(np.arange(len(names)) + 0.2, names, rotation=45, ha="right", fontsize=8)
        ax.set(title=f"{lang} validation loss", ylim=(min(r['losses'][k][lang] for k in r['losses']) * 0.9, None))
    axes[0].legend(fontsize=8)
    return fig


def _save(fig, out_dir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return name
