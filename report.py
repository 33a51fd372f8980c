"""
report.py — turn experiment.py's results.json into report/REPORT.md and four plots.

Place in the story: the last page. Every number in the report is read from
results.json (what experiment.py measured); every verdict in the claims table
follows from a rule printed next to it, with the seed-to-seed noise of full
continued pretraining as the yardstick. Re-write a report from saved results:

    python report.py out/experiment/results.json
"""

import json
import os
import platform
import resource
import sys

import numpy as np

import merge
import scale

KOREAN_RUNS = ["full", "full-seed2", "full-seed3", "full+replay", *scale.RECIPES]
SCALE_VARIANTS = [name for name, options in scale.RECIPES.items() if options["method"] == "scale"]
BASELINES = ["full"] + [name for name in scale.RECIPES if name not in SCALE_VARIANTS]
VERDICT = {True: "**reproduced**", False: "**not reproduced**",
           None: "not measurable: the base memorised < 50% of A (raise bios_base_iters)"}
MERGE_METHODS = list(merge.METHODS)


def machine():
    import torch
    cpu = platform.processor() or platform.machine()
    if os.path.exists("/proc/cpuinfo"):
        names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}, Python {platform.python_version()}"


def peak_rss_mb():
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(rss / (2**20 if sys.platform == "darwin" else 2**10))  # bytes on macOS, KiB on Linux


# ----------------------------------------------------------------------------
# numbers


def korean_runs(r):
    return [k for k in KOREAN_RUNS if k in r["losses"]]


def noise(r, lang):
    """Seed-to-seed spread (max - min) of full continued pretraining: the smallest difference we trust."""
    values = [r["losses"][k][lang] for k in r["losses"] if k == "full" or k.startswith("full-seed")]
    return max(values) - min(values) if len(values) > 1 else 0.0


def forgetting(r, k):
    return r["losses"][k]["english"] - r["losses"]["base"]["english"]


def bio_stats(r, method, what):
    """Mean and standard deviation over seeds of the mean exact-match accuracy over the six attributes."""
    values = [np.mean(run[what]) for run in r["bios"]["runs"][method]]
    return float(np.mean(values)), float(np.std(values))


def loss_at(log, tokens, lang):
    """Validation loss at a token count, linearly interpolated between evaluations."""
    xs = [e["tokens"] for e in log]
    return float(np.interp(tokens, xs, [e["loss"][lang] for e in log]))


def merge_score(losses):
    """What a Korean + German merge is judged on: its mean loss over the two languages."""
    return (losses["korean"] + losses["german"]) / 2


# ----------------------------------------------------------------------------
# the claims, each decided by a rule on the numbers


def claims(r):
    L, en_noise, ko_noise = r["losses"], noise(r, "english"), noise(r, "korean")
    before = float(np.mean(r["bios"]["before"]))
    ret = {m: bio_stats(r, m, "retention") for m in r["bios"]["runs"]}
    acq = {m: bio_stats(r, m, "acquisition") for m in r["bios"]["runs"]}
    out = []

    knew = before >= 0.5  # retention means nothing if the base never memorised A
    c1 = ret["depth"][0] <= before / 2 if knew else None
    out.append(("C1", "SCALE: on the biographies, depth expansion forgets severely",
                f"A before {before:.0%}; after phase 2: depth {ret['depth'][0]:.0%} ± {ret['depth'][1]:.0%} "
                f"(full {ret['full'][0]:.0%})", "depth keeps at most half of what the base knew", c1))

    best = max((m for m in SCALE_VARIANTS if m in ret), key=lambda m: ret[m][0])
    margin = ret[best][0] - ret["depth"][0] > 2 * max(ret[best][1], ret["depth"][1], 0.01)
    learns = acq[best][0] >= acq["full"][0] / 2
    out.append(("C2", "SCALE: SCALE mitigates that forgetting while still acquiring new knowledge",
                f"{best}: retention {ret[best][0]:.0%} vs depth {ret['depth'][0]:.0%}; acquisition "
                f"{acq[best][0]:.0%} vs full {acq['full'][0]:.0%}",
                "retention above depth's by > 2 std, and acquisition >= half of full's",
                margin and learns if knew else None))

    least = min(SCALE_VARIANTS, key=lambda m: forgetting(r, m))
    base_least = min(BASELINES, key=lambda m: forgetting(r, m))
    less = forgetting(r, least) < forgetting(r, base_least) - en_noise
    competitive = L[least]["korean"] <= L["full"]["korean"] * 1.05 + ko_noise
    out.append(("C3", "SCALE: English→Korean, SCALE forgets less English than the baselines with competitive Korean",
                f"{least}: forgetting {forgetting(r, least):+.3f}, Korean {L[least]['korean']:.3f}; best "
                f"baseline {base_least}: forgetting {forgetting(r, base_least):+.3f}; full: Korean "
                f"{L['full']['korean']:.3f}; seed noise {en_noise:.3f} (English), {ko_noise:.3f} (Korean)",
                "forgets less than every baseline by more than the seed noise, and its Korean loss is within 5% "
                "(+ seed noise) of full continued pretraining's", less and competitive))

    log_long, log_hyper = r["logs"]["full-long"], r["logs"]["hyperclone"]
    tokens_hyper = log_hyper[-1]["tokens"]
    flops_hyper = tokens_hyper * r["flops_per_token"]["hyperclone"]
    tokens_long_same_flops = flops_hyper / r["flops_per_token"]["full-long"]
    ko_hyper, ko_long = L["hyperclone"]["korean"], L["full-long"]["korean"]
    if tokens_long_same_flops <= log_long[-1]["tokens"]:
        flops_note = (f"its training curve passes the 2x model's FLOPs at {tokens_long_same_flops:,.0f} tokens, "
                      f"Korean {loss_at(log_long, tokens_long_same_flops, 'korean'):.3f}")
    else:
        flops_note = f"equal FLOPs would take {tokens_long_same_flops:,.0f} tokens"
    c4 = ko_hyper <= ko_long + ko_noise
    out.append(("C4", "Grow Up: an upscaled model matches a smaller one trained on much more data (≈ FLOP-matched)",
                f"2x HyperClone after {tokens_hyper:,} tokens: Korean {ko_hyper:.3f}; 1x after "
                f"{log_long[-1]['tokens']:,} tokens: {ko_long:.3f} ({flops_note})",
                "2x Korean loss <= the longer 1x run's + seed noise", c4))

    c5 = forgetting(r, "hyperclone") < forgetting(r, "full") - en_noise
    out.append(("C5", "Grow Up: upscaling reduces forgetting of English",
                f"forgetting: 2x HyperClone {forgetting(r, 'hyperclone'):+.3f}, 1x full {forgetting(r, 'full'):+.3f}; "
                f"seed noise {en_noise:.3f}", "HyperClone forgets less than full by more than the seed noise", c5))

    worse = {anc: min(merge_score(L[f"merged/{anc}/{m}"]) for m in MERGE_METHODS) - merge_score(L[f"joint/{anc}"])
             for anc in ("base", "hyper")}
    out.append(("C6", "Grow Up: merging language models stays below joint multilingual training",
                "best merge minus joint, mean Korean+German loss: " + ", ".join(f"{a} {v:+.3f}" for a, v in
                                                                              worse.items()),
                "for both ancestors every merge's loss is above the joint model's", all(v > 0 for v in worse.values())))

    diff = [merge_score(L[f"merged/base/{m}"]) - merge_score(L[f"merged/hyper/{m}"]) for m in MERGE_METHODS]
    spread = max(max(merge_score(L[f"merged/{a}/{m}"]) for m in MERGE_METHODS) -
                 min(merge_score(L[f"merged/{a}/{m}"]) for m in MERGE_METHODS) for a in ("base", "hyper"))
    c7 = sum(d > ko_noise for d in diff) > len(diff) / 2 and spread > max(0.1, 3 * ko_noise)
    out.append(("C7", "Grow Up: merges of upscaled models beat merges of smaller ones; methods differ widely",
                f"hyper better than base in {sum(d > ko_noise for d in diff)} of {len(diff)} methods "
                f"(mean gain {np.mean(diff):+.3f}); spread across methods {spread:.3f}",
                "hyper wins for most methods by > seed noise, and methods spread > max(0.1, 3 x noise)", c7))
    return out


# ----------------------------------------------------------------------------
# plots


def plot_all(r, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    paths = {}

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k in korean_runs(r):
        log = r["logs"][k]
        for ax, lang in zip(axes, ("english", "korean")):
            ax.plot([e["iter"] for e in log], [e["loss"][lang] for e in log], label=k,
                    ls="--" if k in BASELINES or k.startswith("full") else "-")
    for ax, lang in zip(axes, ("English (forgetting)", "Korean (learning)")):
        ax.set(xlabel="step of continued pretraining on Korean", ylabel="validation loss (nats/byte)", title=lang)
    axes[1].legend(fontsize=8)
    paths["curves"] = _save(fig, out_dir, "curves.png")

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for k in korean_runs(r):
        ax.scatter(r["losses"][k]["korean"], forgetting(r, k))
        ax.annotate(k, (r["losses"][k]["korean"], forgetting(r, k)), fontsize=8, xytext=(3, 3),
                    textcoords="offset points")
    ax.set(xlabel="Korean validation loss after  (← better)", ylabel="English forgetting: loss rise  (↓ better)",
           title="Stability vs plasticity (best: bottom left)")
    paths["tradeoff"] = _save(fig, out_dir, "tradeoff.png")

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for k, label in (("full-long", "1x, continued longer"), ("hyperclone", "2x HyperCloned")):
        log = r["logs"][k]
        tokens = np.array([e["tokens"] for e in log])
        axes[0].plot(tokens, [e["loss"]["korean"] for e in log], label=label)
        axes[1].plot(tokens * r["flops_per_token"][k], [e["loss"]["korean"] for e in log], label=label)
    axes[0].set(xlabel="Korean tokens seen", ylabel="Korean validation loss", title="Data efficiency")
    axes[1].set(xlabel="training FLOPs", xscale="log", title="Compute")
    axes[0].legend()
    paths["efficiency"] = _save(fig, out_dir, "data_efficiency.png")

    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=False)
    names = ["korean", "german", "joint"] + MERGE_METHODS
    for ax, lang in zip(axes, ("english", "korean", "german")):
        for j, (anc, ko_run) in enumerate((("base", "full"), ("hyper", "hyperclone"))):
            keys = [ko_run, f"german/{anc}", f"joint/{anc}"] + [f"merged/{anc}/{m}" for m in MERGE_METHODS]
            ax.bar(np.arange(len(keys)) + 0.4 * j, [r["losses"][k][lang] for k in keys], width=0.4,
                   label=f"from {'1x base' if anc == 'base' else '2x HyperClone'}")
        ax.set_xticks(np.arange(len(names)) + 0.2, names, rotation=45, ha="right", fontsize=8)
        ax.set(title=f"{lang} validation loss", ylim=(min(r['losses'][k][lang] for k in r['losses']) * 0.9, None))
    axes[0].legend(fontsize=8)
    paths["merges"] = _save(fig, out_dir, "merges.png")
    return paths


def _save(fig, out_dir, name):
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, name), dpi=110)
    import matplotlib.pyplot as plt
    plt.close(fig)
    return name


# ----------------------------------------------------------------------------
# the report


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def claims_table(r):
    return table(["", "claim", "measured here", "rule", "verdict"],
                 [(c, claim, measured, rule, VERDICT[ok])
                  for c, claim, measured, rule, ok in claims(r)])


def write_report(r, out_dir="report"):
    os.makedirs(out_dir, exist_ok=True)
    plots, s, L = plot_all(r, out_dir), r["settings"], r["losses"]
    groups = {}
    for stage in r["stages"].values():
        groups[stage["group"]] = groups.get(stage["group"], 0) + stage["seconds"]
    tokens = s["cpt_iters"] * r["tokens_per_step"]
    lang_rows = [(k, f"{r['params'][k][0]:,}", f"{r['params'][k][1]:,}", f"{L[k]['english']:.3f}",
                  f"{forgetting(r, k):+.3f}", f"{L[k]['korean']:.3f}") for k in korean_runs(r)]
    bio_rows = [(m, f"{bio_stats(r, m, 'retention')[0]:.1%} ± {bio_stats(r, m, 'retention')[1]:.1%}",
                 f"{bio_stats(r, m, 'acquisition')[0]:.1%} ± {bio_stats(r, m, 'acquisition')[1]:.1%}")
                for m in r["bios"]["runs"]]
    merge_rows = [(k, *(f"{L[k][lang]:.3f}" for lang in ("english", "korean", "german")), f"{merge_score(L[k]):.3f}")
                  for k in L if k == "base" or k.startswith(("merged/", "joint/", "german/")) or k in
                  ("full", "hyperclone")]
    text = f"""# Growing a GPT and teaching it Korean: the report

Made by `python experiment.py --preset={r['preset']}` on {r['date']}: {r['machine']}.
Wall time {r['wall_s'] / 60:.1f} min for this invocation (stages cached from earlier runs are not re-run);
peak memory {r['peak_rss_mb']:,} MiB. Time per stage when it ran:
{", ".join(f"{g} {v / 60:.1f} min" for g, v in groups.items())}.

Settings: a {s['n_layer']}-layer, {s['n_embd']}-wide GPT on bytes, block {s['block_size']}, batch {s['batch_size']};
English base {s['base_iters']} steps; every continued run {s['cpt_iters']} steps = {tokens:,} Korean tokens at
learning rate {s['cpt_lr']}; biographies: {s['bios_people']} people per population, {s['bios_seeds']} seeds.
All losses are validation losses in nats per byte on fixed batches. Single runs unless said; the seed noise
(max - min over {s['full_seeds']} seeds of full continued pretraining) is {noise(r, 'english'):.3f} on English
and {noise(r, 'korean'):.3f} on Korean.

## The claims

{claims_table(r)}

## Stability vs plasticity: English → Korean

English before: {L['base']['english']:.3f}; Korean before: {L['base']['korean']:.3f}.

{table(["run", "parameters", "trainable", "English after", "forgetting", "Korean after"], lang_rows)}

![curves]({plots['curves']})

![trade-off]({plots['tradeoff']})

## Biographies: retention and acquisition

Population A memorised by the base: {np.mean(r['bios']['before']):.1%} exact match
(per attribute: {", ".join(f"{v:.0%}" for v in r['bios']['before'])}). Phase 2 continues on population B
{"written in Korean (the cross-lingual variant) " if s.get("bios_korean") else ""}for
{s['bios_iters']} steps at learning rate {s['bios_lr']}; mean ± std over {s['bios_seeds']} seeds.

{table(["method", "retention on A", "acquisition of B"], bio_rows)}

## Data efficiency: a 1x model trained longer vs the 2x HyperClone

Training FLOPs per token: 1x {r['flops_per_token']['full-long']:,}, 2x {r['flops_per_token']['hyperclone']:,}.

![data efficiency]({plots['efficiency']})

## Merging a Korean and a German model

Each pair continued from the same ancestor ({s['cpt_iters']} steps each); "joint" trains one model on Korean +
German (half each) for {s['cpt_iters'] * s['joint_factor']} steps. Merged with merge.py's defaults
(density 0.5, λ 1).

{table(["model", "English", "Korean", "German", "mean Korean+German"], merge_rows)}

![merges]({plots['merges']})
"""
    path = os.path.join(out_dir, "REPORT.md")
    with open(path, "w") as f:
        f.write(text)
    return path


if __name__ == "__main__":
    if len(sys.argv) != 2 or not os.path.isfile(sys.argv[1]):
        sys.exit("usage: python report.py out/experiment/results.json")
    print("wrote " + write_report(json.load(open(sys.argv[1]))))
