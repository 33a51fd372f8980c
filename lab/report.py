"""
report.py — turn experiment.py's results.json into report/REPORT.md and five plots.

Place in the story: the last page. Every number in the report is read from
results.json (what experiment.py measured, copied beside the report); every
verdict follows from a rule of lab/rules.py (claims.py computes them, verdicts.py
writes the opening table). Re-make a report from saved results:

    python -m lab.report report/results.json   # re-writes report/ byte for byte
"""

import json
import os
import platform
import resource
import sys

import numpy as np

import scale
from lab.claims import claims
from lab.verdicts import rules_section, verdicts_section
from lab.readings import (MERGE_ANCESTORS, MERGE_METHODS, TUNED_MERGES, at_rate, below_note, best_rate, bio_frontier,
                          bio_stats, chosen_note, efficiency_runs, fmt, frontier, kept, korean_runs, loss_at, pooled_sd,
                          rates_of_merges, rates_tried, seed_runs, stats, sweep_end, sweep_rates)
from plumbing.cli import UserError, parse_flags, parser, run_cli

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
# the report


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def stages_line(r):
    """How the stages ran (the machine line counts the threads of the process that evaluated them)."""
    if "jobs" not in r:
        return ""
    return (f" in the orchestrating process; training stages {r['jobs']} at a time, {r['threads']} thread(s) each; "
            f"merges one at a time on {r['jobs'] * r['threads']} thread(s)")


def title_section(r, plots):
    """The title and the command that made the report."""
    return f"""# Growing a GPT and teaching it Korean: the report

Made by `python experiment.py --preset={r['preset']}`; `python -m lab.report` on the [results.json](results.json)
beside this page re-makes it byte for byte. Each claim of the two papers is split into parts, each decided by a
rule written before the run (lab/rules.py) from an effect and its 95% interval over seeds.
"""


def header_section(r, plots):
    """Title, machine, time per stage and the settings every number depends on."""
    s, groups = r["settings"], {}
    for stage in r["stages"].values():
        groups[stage["group"]] = groups.get(stage["group"], 0) + stage["seconds"]
    tokens = s["cpt_iters"] * r["tokens_per_step"]
    return f"""## How it ran

{r['machine']}{stages_line(r)}.
Wall time {r['wall_s'] / 60:.1f} min for this invocation (stages cached from earlier runs are not re-run);
peak memory {r['peak_rss_mb']:,} MiB. Time per stage when it ran:
{", ".join(f"{g} {v / 60:.1f} min" for g, v in groups.items())}.

Settings: a {s['n_layer']}-layer, {s['n_embd']}-wide GPT on bytes, block {s['block_size']}, batch {s['batch_size']};
English base {s['base_iters']} steps; every continued run {s['cpt_iters']} steps = {tokens:,} Korean tokens at
learning rate {s['cpt_lr']} for every method, and for the compared ones also {", ".join(f"{lr:g}" for lr in s["sweep_lrs"])}{below_note(s, r["compared"])}
(the weights a growth added get the same rate as the rest; for the frozen-base methods, depth and SCALE,
nothing else trains but unseen embedding rows, so their sweep is a sweep of the added weights' rate);
biographies: {s['bios_people']} people per population, {s['bios_seeds']} seeds. All losses are validation losses
in nats per byte on fixed batches. The compared runs ({", ".join(r["compared"])}) ran {s['seeds']} seeds each, varying
the data order and the growth's own random initialisation (growup: the data order); the others ran once and are given the pooled seed
standard deviation ({pooled_sd(r, 'forgetting'):.3f} for forgetting, {pooled_sd(r, 'korean'):.3f} for Korean).
Embedding rows of bytes the English base never saw train in every method (one policy); HyperCloning breaks
the clones' symmetry with noise {scale.SYMMETRY_NOISE} (the function is kept); "+replay" runs see 5% English.
"growup" is Grow Up's 2x arm: the English base's first {s['base_iters'] // 2} steps at 1x, HyperCloned, the other
{s['base_iters'] - s['base_iters'] // 2} steps at 2x (same English tokens as the base), then Korean like every method;
its forgetting is counted from its own English loss before Korean.{lessons_line(r)}
"""


def lessons_line(r):
    """Which growths the preset left out (the class preset: those no claim or diagnostic reads)."""
    missing = [g for g in scale.RECIPES if g not in r["losses"]]
    return f"\nLeft out for time: the growths {', '.join(missing)} (no claim or diagnostic reads them)." if missing else ""


def verdicts_and_rules(r, plots):
    """The verdict table, its key and the rules (verdicts.py): the first thing the report says."""
    parts = claims(r)
    return verdicts_section(r, parts) + "\n" + rules_section(r, parts)


def language_section(r, plots):
    """English -> Korean: the runs, the frontier, the symmetry test and the gate."""
    s, L = r["settings"], r["losses"]
    lang_rows = [(k, f"{r['params'][k][0]:,}", f"{r['params'][k][1]:,}", len(seed_runs(r, k)),
                  fmt(stats(r, k, "forgetting")), fmt(stats(r, k, "korean"), signed=False)) for k in korean_runs(r)]
    sym_rows = [(k, f"{v['clone_gap']:.2e}", *(f"{v[lang][0]:.4f} / {v[lang][1]:.4f}" for lang in ("korean", "english")))
                for k, v in r["symmetry"].items()]
    gate_rows = [(k, f"{v['english']:.3f}", f"{v['korean']:.3f}") for k, v in r["gate"].items()]
    points = {m: {lr: (k, f) for lr, k, f in frontier(r, m)} for m in r["compared"]}  # {method: {rate: point}}
    lrs = sorted({lr for p in points.values() for lr in p})
    return f"""## Stability vs plasticity: English → Korean

English before: {L['base']['english']:.3f}; Korean before: {L['base']['korean']:.3f}. Grow Up's 2x English
model: English {L['growup/base-2x']['english']:.3f}, Korean {L['growup/base-2x']['korean']:.3f} (its 1x first half:
English {L['growup/base-1x']['english']:.3f}).

{table(["run", "parameters", "trainable", "seeds", "English forgetting (mean ± sd)", "Korean after (mean ± sd)"], lang_rows)}

### Does the 2x HyperClone leave the 1x model?

The largest difference between a tensor and the same tensor with its two clones swapped, after training, and
the loss of the 2x model next to the loss of the 1x model it collapses to (clone 0 of every coordinate, each
row block summed over its input clones; equal as long as the clones are equal):

{table(["run", "clone gap", "Korean: 2x / collapsed 1x", "English: 2x / collapsed 1x"], sym_rows)}

Without noise the clones receive identical gradients and stay equal: the "2x" model is the 1x model
with a larger step on its matrices.

### What does SCALE-Route's gate learn?

Mean gate over English and over Korean validation tokens (1 keeps the base's logits, 0 uses the adaptation):

{table(["run", "gate on English", "gate on Korean"], gate_rows)}

![curves]({plots['curves']})

### The whole frontier: forgetting against Korean loss across learning rates

The compared methods were also trained at learning rates {", ".join(f"{lr:g}" for lr in s["sweep_lrs"])}
({s['seeds']} seeds each, like {s['cpt_lr']:g}){below_note(s, r["compared"])}{edge_line(r)}; each curve joins a method's means over its seeds, one
marker per learning rate, the bars one seed sd both ways. C3 reads each seed's own curve at full training's Korean
loss (the dotted line), C5 over the shaded range; the axis stops a little past where the claims read.
Each method's lowest Korean loss is at: {best_rates_line(r)}; at an end of the sweep a method's best may lie beyond
the rates tried.

{table(["method", *(f"Korean / forgetting @ {lr:g}" for lr in lrs)],
       [(m, *(f"{p[lr][0]:.3f} / {p[lr][1]:+.3f}" if lr in p else "" for lr in lrs))
        for m, p in points.items()])}

![frontier]({plots['frontier']})
"""


def edge_line(r):
    """Which methods the sweep went past its ends for (lab/tracks.py's edge_track), and to which rate."""
    if not r["settings"].get("sweep_edge_lrs"):
        return ""
    first = sweep_rates(r["settings"])
    past = {m: [f"{lr:g}" for lr in rates_tried(r, m) if lr not in first] for m in r["compared"]}
    tried = ", ".join(f"{m} {' and '.join(lrs)}" for m, lrs in past.items() if lrs) or "none"
    edges = ", ".join(f"{lr:g}" for lr in sorted(r["settings"]["sweep_edge_lrs"]))
    return (f"; where a method's lowest Korean loss was at an end of the rates it had tried, the nearest of {edges} "
            f"past that end, one a round while its lowest stayed at an end, by the rule fixed before the run: {tried}")


def best_rates_line(r):
    """Where along the sweep each compared method's Korean loss is lowest, ends of the sweep marked."""
    rates = {m: best_rate(r, m)[0] for m in r["compared"]}
    return ", ".join(f"{m} {lr:g}{sweep_end(rates_tried(r, m), lr)}" for m, lr in rates.items())


def bios_section(r, plots):
    """The biographies: retention of A and acquisition of B per method."""
    s = r["settings"]
    lrs = sorted([s["bios_lr"], *s["bios_sweep_lrs"]])
    bio_rows = [(m, f"{bio_stats(r, m, 'retention')[0]:.1%} ± {bio_stats(r, m, 'retention')[1]:.1%}",
                 f"{bio_stats(r, m, 'acquisition')[0]:.1%} ± {bio_stats(r, m, 'acquisition')[1]:.1%}")
                for m in r["bios"]["runs"]]
    sweeps = {m: {lr: f"{a:.0%} / {k:.0%}" for lr, a, k in bio_frontier(r, m)} for m in r["bios"]["runs"]}
    return f"""## Biographies: retention and acquisition

Population A memorised by the base: {np.mean(r['bios']['before']):.1%} exact match
(per attribute: {", ".join(f"{v:.0%}" for v in r['bios']['before'])}). Phase 2 continues on population B
{"written in Korean (the cross-lingual variant) " if s.get("bios_korean") else ""}for
{s['bios_iters']} steps at learning rate {s['bios_lr']}; mean ± std over {s['bios_seeds']} seeds.

{table(["method", "retention on A", "acquisition of B"], bio_rows)}

Every method was also trained at learning rates {", ".join(f"{lr:g}" for lr in lrs if lr != s["bios_lr"])} (every
seed){below_note(s, list(sweeps), bios=True)}; C1 and C2 read each method's retention along this sweep at full
training's acquisition at {s['bios_lr']:g}.

{table(["method", *(f"acquisition / retention @ {lr:g}" for lr in lrs)],
       [(m, *(p.get(lr, "") for lr in lrs)) for m, p in sweeps.items()])}

![biographies]({plots['bios']})
"""


def korean_at(log, tokens):
    """A curve's Korean loss at a token count: as evaluated, or ≈ interpolated between the evaluations either
    side (a budget between two of its evaluations), or nothing past its end."""
    evaluated = {e["tokens"]: e["loss"]["korean"] for e in log}
    if tokens in evaluated:
        return f"{evaluated[tokens]:.3f}"
    return f"≈{loss_at(log, tokens, 'korean'):.3f}" if tokens < log[-1]["tokens"] else ""


def efficiency_section(r, plots):
    """Data efficiency: the 1x model trained longer against the 2x models, at equal tokens and FLOPs."""
    s, fpt, steps = r["settings"], r["flops_per_token"], r["settings"]["cpt_iters"] * r["tokens_per_step"]
    long, curves = r["logs"]["full-long"], efficiency_runs(r)
    evaluated = {k: {e["tokens"]: e["loss"]["korean"] for e in r["logs"][k]} for k, _, _ in curves}
    budgets = sorted({t for losses in evaluated.values() for t in losses if t > 0 and t % steps == 0})
    rows = [(f"{t:,} ({t // steps} × {s['cpt_iters']} steps)", *(korean_at(r["logs"][k], t) for k in evaluated))
            for t in budgets]
    epoch = f"; one epoch of Korean is {r['korean_train_tokens']:,}" if "korean_train_tokens" in r else ""
    third = long[-1]["tokens"] * 2 // 3
    before, after = loss_at(long, third, "korean"), long[-1]["loss"]["korean"]
    low = min(long[1:], key=lambda e: e["loss"]["korean"])
    long_rates = "; ".join(f"{k} at {lr:g}{chosen_note(r, k.removesuffix('-long'), lr)}"
                           for k, _, lr in curves if k.endswith("-long"))
    rate_note = (f"The long runs train at their ancestor's rate, the best of its {s['cpt_iters']}-step Korean "
                 f"sweep ({long_rates}), a rate chosen for the short budget, not swept at the long one."
                 if "long_rates" in r else f"The long runs train at the default rate, {s['cpt_lr']:g}.")
    return f"""## Data efficiency: a 1x model trained longer vs the 2x models

Korean validation loss against Korean tokens seen ({s['cpt_iters']} steps = {steps:,} tokens{epoch}). Over its last
third the 1x model went from {before:.3f} to {after:.3f} ({after - before:+.3f}; the pooled seed sd of a Korean loss is
{pooled_sd(r, 'korean'):.3f}); its lowest evaluated Korean loss is {low['loss']['korean']:.3f}, after
{low['tokens']:,} tokens.
{rate_note}
A value marked ≈ lies between two evaluations of that run, interpolated.
Training FLOPs per Korean token: 1x {fpt['full-long']:,}, 2x {fpt['growup']:,}, so a 2x token costs
{fpt['growup'] / fpt['full-long']:.1f} 1x tokens (Grow Up's 2x also spent more FLOPs on English: its second half ran at 2x).

{table(["Korean tokens", *(f"{k} at {lr:g}" for k, _, lr in curves)], rows)}

![data efficiency]({plots['efficiency']})
"""


def merge_section(r, plots):
    """Merging a Korean and a German model, against joint training, at each ancestor's best rate over the
    merge seeds."""
    s, L, rates = r["settings"], r["losses"], rates_of_merges(r)
    at = lambda name, a: at_rate(name, rates[a], s)  # noqa: E731
    names = ["base"] + [at(name, a) for a, recipe in MERGE_ANCESTORS
                        for name in (recipe, f"german/{a}")] + ["joint/base", "joint/hyper"] + [
        f"{at(f'merged/{a}', a)}/{m}" for a in ("base", "hyper") for m in MERGE_METHODS + TUNED_MERGES[1:]]
    merge_rows = [(k, *(fmt(stats(r, k, lang), signed=False) for lang in ("english", "korean", "german", "merge")))
                  for k in names if k in L]
    return f"""## Merging a Korean and a German model

Each pair continued from the same ancestor ({s['cpt_iters']} steps each). Each ancestor's rate, chosen before
its German and joint models trained: the rate of its Korean sweep{first_round(s)} (seed 0) with the lowest final Korean
validation loss: {', '.join(f"{a} {rates[a]:g}{chosen_note(r, k, rates[a])}" for a, k in MERGE_ANCESTORS)}. At that rate every
merge seed k has a Korean and a German model continued from the ancestor of seed k (name@rate at a rate other
than {s['cpt_lr']:g}), merged with merge.py's defaults (density 0.5, λ 1; the papers' setting) and, as
"-tuned", at the settings chosen on held-out batches (below): {s.get('merge_seeds', 1)} merge
seed(s){"" if s.get("merge_seeds", 1) > 1 else " (no spread over seeds to measure)"}. "joint" trains one model
on Korean + German (half each) for {s['cpt_iters'] * s['joint_factor']} steps at that rate, one per merge seed.
Mean ± sd over the merge seeds.

{table(["model", "English", "Korean", "German", "mean Korean+German"], merge_rows)}

![merges]({plots['merges']})

{kept_section(r)}"""


def kept_section(r):
    """How much of each specialist's gain each merge keeps, untuned and tuned, beside the joint model."""
    s = r["settings"]
    cols = [(a, lang) for a, _ in MERGE_ANCESTORS for lang in ("korean", "german")]

    def cell(a, m, lang):
        mean, low, high, n = kept(r, a, m, lang)
        return "–" if n == 0 else f"{mean:.2f}" + (f" [{low:.2f}, {high:.2f}]" if low is not None else "")
    rows = [(m, *(cell(a, m, lang) for a, lang in cols)) for m in MERGE_METHODS + TUNED_MERGES[1:] + ["joint"]]
    chosen = "; ".join(f"{k.removeprefix('merged/')}: " + ", ".join(
        f"{name} {'/'.join(','.join(f'{w:g}' for w in layer) for layer in v) if name == 'layer weights' else f'{v:g}'}"
        for name, v in knobs.items()) for k, knobs in r.get("tuned", {}).items())
    return f"""### How much of each language a merge keeps

For each ancestor and language, the fraction of the specialist's gain a merge keeps: 0 is the loss of the other
language's model from the same ancestor (same seed and rate), 1 the specialist's own. Mean over the
{s['merge_seeds']} merge seed(s) with Student's t 95% interval (none from one seed); "joint" is the joint model of
each merge seed, on that seed's scale. "-tuned": each method's settings (λ; λ × density for TIES and DARE; per-layer weights and λ
for layerwise, by coordinate search from plain averaging) chosen on merge seed 0's models to keep the most of the
language that keeps least, on {s.get('tune_iters', 8)} held-out validation batches per language that share no
token with the {s['eval_iters']} batches every number here is read on (evaluate.held_out_rows), then used for
every seed. Chosen: {chosen or "none recorded"}.

{table(["merge", *(f"{a} {lang}" for a, lang in cols)], rows)}
{kept_summary(r)}"""


def kept_summary(r):
    """In words, per ancestor: the merge that keeps most of the language it keeps least, against the joint
    model; and where tuning for that (not for the mean loss C6 and C7 read) made the mean loss worse."""
    s, lines = r["settings"], []
    for a, _ in MERGE_ANCESTORS:
        means = {}  # {merge: (kept of Korean, kept of German)}, the merges every seed has
        for m in MERGE_METHODS + TUNED_MERGES[1:] + ["joint"]:
            (korean, *_, n), (german, *_) = kept(r, a, m, "korean"), kept(r, a, m, "german")
            if n:
                means[m] = (korean, german)
        if "joint" not in means or len(means) < 2:
            continue
        best = max((m for m in means if m != "joint"), key=lambda m: min(means[m]))
        (bk, bg), (jk, jg) = means[best], means["joint"]
        lines.append(f"{a}: the merge that keeps most of the language it keeps least is {best} ({bk:.2f} of "
                     f"Korean, {bg:.2f} of German); joint training keeps {jk:.2f} and {jg:.2f}, "
                     f"{min(jk, jg) - min(bk, bg):.2f} more of the language the merge keeps least.")
        merged = at_rate(f"merged/{a}", rates_of_merges(r)[a], s)
        linear = stats(r, f"{merged}/linear", "merge")[0]
        worse = [m for m in TUNED_MERGES[1:] if m in means and stats(r, f"{merged}/{m}", "merge")[0] > linear]
        if worse:
            lines.append(f"{a}: tuned to keep both languages, {len(worse)} of {len(TUNED_MERGES) - 1} tuned merges "
                         "score worse than the untuned linear merge on the mean Korean+German loss that C6 and "
                         "C7 read (means over the merge seeds, as in the table above).")
    return "\n" + "\n".join(f"- {line}" for line in lines) + "\n" if lines else ""


def first_round(s):
    """Where the sweep went past its ends (sweep_edge_lrs), the merges' rate was chosen before that."""
    return "'s first round (rates past its ends train beside the merges' models)" if s.get("sweep_edge_lrs") else ""


def report_dir(preset, out_dir, config=None):
    """Where a run's report goes: report/ (the committed one) for the default preset as it stands, else
    OUT-DIR/report, so a lesson or a --config run never replaces the committed report."""
    return "report" if preset == "default" and not config else os.path.join(out_dir, "report")


def write_report(r, out_dir="report"):
    """REPORT.md and its figures in out_dir, from results.json's numbers; returns the file's path."""
    from lab.plots import plot_all  # matplotlib is imported only when figures are drawn
    os.makedirs(out_dir, exist_ok=True)
    plots = plot_all(r, out_dir)
    sections = (title_section, verdicts_and_rules, header_section, language_section, bios_section, efficiency_section, merge_section)
    path = os.path.join(out_dir, "REPORT.md")
    with open(path, "w") as f:
        f.write("\n".join(section(r, plots) for section in sections))
    return path


def read_results(path):
    """results.json as experiment.py wrote it, or one line saying what is wrong with the file."""
    try:
        with open(path) as f:
            r = json.load(f)
    except FileNotFoundError:
        raise UserError(f"no results at {path}: run python experiment.py first (it writes OUT-DIR/results.json)")
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not a results.json experiment.py wrote ({e}); run python experiment.py again")
    missing = [key for key in ("settings", "compared", "losses") if not isinstance(r, dict) or key not in r]
    if missing:
        raise UserError(f"{path} has no {', '.join(missing)}: it is not a results.json experiment.py wrote")
    return r


def main(argv=None):
    p = parser("-m lab.report", "Write REPORT.md and its figures from an experiment's results.json.")
    p.add_argument("results", help="results.json of a run, e.g. report/results.json")
    p.add_argument("--report-dir", help="where REPORT.md and the plots go (default: the folder of results.json)")
    args = parse_flags(p, argv)
    r = read_results(args.results)
    out = args.report_dir or os.path.dirname(args.results) or "."  # beside the numbers it is made from
    print("wrote " + write_report(r, out))


if __name__ == "__main__":
    run_cli(main)
