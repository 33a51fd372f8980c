"""
tracks.py — what experiment.py runs: every stage of both papers' tracks, queued on a Plan.

Two tracks, following the two papers:
- languages ("Grow Up and Merge", SCALE section 5): pretrain on English, grow the
  model with every method of scale.py a claim reads (lesson_growths: all of them),
  continue each on Korean with the same token budget, measure English forgetting;
  then German models from the same ancestors, merged with every method of
  merge.py, against joint training, each ancestor at its best rate.
- biographies (SCALE's controlled setup): memorise the facts of population A,
  grow, continue on population B; exact-match retention on A and acquisition on B,
  over several seeds.

Every function here only queues commands (train.py, scale.py, merge.py) on the
Plan's stages; stages.py runs them. The Plan holds what every track shares, so
a track's arguments are only what is its own.
"""

import os
import subprocess
import sys
from dataclasses import dataclass, field

import merge
import scale
from checkpoint import load_checkpoint, model_from_checkpoint
from data.bios.prepare import prepare as prepare_bios
from data.common import DATA_DIR, load_meta
from evaluate import evaluate_checkpoints
from lab.readings import MERGE_ANCESTORS, at_rate, method_sweep, sweep_rates
from lab.readings import seeded as seed_name  # full, full-seed2, full-seed3, ...
from lab.measure import EVAL_DTYPE
from lab.stages import Stages
from tune import GRIDS
from plumbing.cli import UserError

GROW = scale.RECIPES  # the language track grows the base with every registered growth
# Runs the claims compare: each gets `seeds` seeds (data order and the growth's own random init);
# "growup" is Grow Up's 2x arm: cloned halfway through English pretraining, then Korean;
# the others (contrasts and lessons) run once. "+replay" runs also see 5% English: marked as such.
COMPARED = ["full", "full+replay", "depth", "hyperclone", "growup", "preserve", "route+replay"]
# growths no claim or diagnostic reads, run once for the README's lessons (lesson_growths=false skips them)
LESSON_GROWTHS = [g for g in GROW if g not in COMPARED and g not in ("route", "hyperclone-noiseless")]
LANGUAGES = ["english", "korean", "german"]
TUNED = [m for m in merge.METHODS if GRIDS.get(m, True)]  # methods with settings to tune: not linear


@dataclass
class Plan:
    """What every track shares: the stages it queues on, the settings, where files go, and what is queued."""
    stages: Stages
    settings: dict         # the preset, with --config's overrides (presets.py)
    out: str               # every checkpoint goes under this folder
    data_dir: str          # the prepared datasets
    runs: dict = field(default_factory=dict)   # run name -> its checkpoint ("base", "korean/full", ...)
    grown: dict = field(default_factory=dict)  # growth name of a seed ("depth-seed2") -> the grown checkpoint


def prepare_data(s, data_dir):
    """Every language's prepare.py that has not run yet (bytes tokenizer), then the biographies."""
    for name in LANGUAGES:
        try:
            load_meta(name, data_dir)
        except UserError:  # not prepared yet: download and prepare it (bytes tokenizer)
            print(f"\n$ python data/{name}/prepare.py --data-dir={data_dir}", flush=True)
            if subprocess.run([sys.executable, os.path.join(DATA_DIR, name, "prepare.py"),
                               f"--data-dir={data_dir}"]).returncode != 0:
                raise UserError(f"could not prepare {name}; see the message above")
    return prepare_bios(s["bios_people"], s["bios_renderings"], data_dir, seed=s["seed_offset"])


def model_flags(s):
    """The architecture, for training from scratch (continued runs take it from their checkpoint)."""
    return [f"--n-layer={s['n_layer']}", f"--n-head={s['n_head']}", f"--n-embd={s['n_embd']}",
            f"--block-size={s['block_size']}"]


def run_flags(plan, seed=0):
    """Seed k of a run trains with seed 1337 + seed_offset + k (lab/rules.py's SEED_OFFSET); the curves logged
    during training use fewer batches than the final evaluation (eval_iters)."""
    s = plan.settings
    return [f"--batch-size={s['batch_size']}", f"--eval-iters={s['train_eval_iters']}", f"--data-dir={plan.data_dir}",
            f"--seed={1337 + s['seed_offset'] + seed}"]


def pretrain(plan, bios):
    """Queue the bases: English for the language track (plan.runs["base"], and its first half for Grow Up's
    2x arm), population A for the biographies. Returns the biographies' base checkpoint."""
    s, out = plan.settings, plan.out
    flags = model_flags(s) + run_flags(plan)
    english = flags + ["--dataset=english", f"--learning-rate={s['base_lr']}", f"--eval-interval={s['base_iters'] // 10}"]
    base = plan.stages.train("base", f"{out}/base", english, s["base_iters"])
    plan.stages.train("base", f"{out}/growup/base-1x", english, s["base_iters"] // 2)
    bios_base = plan.stages.train("bios", f"{out}/bios/base", flags + [
        f"--dataset={bios['a']}", f"--eval-datasets={bios['a']}", f"--learning-rate={s['bios_base_lr']}",
        f"--eval-interval={s['bios_base_iters'] // 4}"], s["bios_base_iters"])
    plan.runs["base"] = base
    return bios_base


def continued(plan, name, init, iters=None, dataset="korean", extra=(), seed=0, evals="english,korean", lr=None,
              eval_every=None):
    """Queue one continued run, <out>/<name>: `iters` steps (cpt_iters) on `dataset` from `init`,
    evaluated every `eval_every` steps (by default as often as a cpt_iters run, relative to its length)."""
    s = plan.settings
    iters = iters or s["cpt_iters"]
    eval_every = eval_every or max(1, s["eval_interval"] * iters // s["cpt_iters"])
    argv = run_flags(plan, seed) + [
        f"--init-from={init}", f"--dataset={dataset}", f"--eval-datasets={evals}",
        f"--learning-rate={lr or s['cpt_lr']}", f"--eval-interval={eval_every}", *extra]
    return plan.stages.train("continue", f"{plan.out}/{name}", argv, iters)


def grow(plan, name, seed):
    """Queue the growth of the base by recipe `name` with the growth's own seed; returns its checkpoint."""
    path = f"{plan.out}/grown/{seed_name(name, seed)}.pt"
    flags = scale.recipe_flags(GROW[name]) + [f"--in={plan.runs['base']}", f"--out={path}",
                                              f"--seed={plan.settings['seed_offset'] + seed}"]
    return plan.stages.step("grow", scale, flags, path)


def language_track(plan):
    """Queue the growth of the base by every method (lesson_growths=false: those a claim or diagnostic reads)
    and every continued run: each growth and full training on Korean (the compared runs with several seeds
    and a sweep of learning rates); the merges' models, the joint models and the long data-efficiency runs,
    at each ancestor's best rate, wait for the sweep (merge_rates, best_rate_track, long_track)."""
    s, runs = plan.settings, plan.runs
    replay = [f"--replay=english:{s['replay']}"]
    growths = [g for g in GROW if s["lesson_growths"] or g not in LESSON_GROWTHS]
    for name in ["full", "full+replay", *growths, "route+replay"]:
        for seed in range(s["seeds"] if name in COMPARED else 1):
            recipe = name.removesuffix("+replay")
            init = runs["base"] if recipe == "full" else grow(plan, recipe, seed)
            if recipe != "full":
                plan.grown[seed_name(recipe, seed)] = init
            run = seed_name(name, seed)
            runs[run] = continued(plan, f"korean/{run}", init, seed=seed, extra=replay if name.endswith("+replay") else ())
            if name in COMPARED:  # the frontier: every seed of a method runs its sweep (method_sweep)
                for lr in method_sweep(s, name):
                    sweep_run(plan, name, init, lr, seed)
    growup_2x(plan)


def growup_2x(plan):
    """Queue Grow Up's 2x arm: English pretraining's first half at 1x, HyperCloned, its second half at 2x."""
    s, runs = plan.settings, plan.runs
    runs["growup/base-1x"], plan.grown["growup"] = f"{plan.out}/growup/base-1x/ckpt.pt", f"{plan.out}/grown/growup-2x.pt"
    plan.stages.step("grow", scale, scale.recipe_flags(GROW["hyperclone"]) + [
        f"--in={runs['growup/base-1x']}", f"--out={plan.grown['growup']}", f"--seed={s['seed_offset']}"],
        plan.grown["growup"])
    runs["growup/base-2x"] = continued(plan, "growup/base-2x", plan.grown["growup"],
                                       iters=s["base_iters"] - s["base_iters"] // 2, dataset="english",
                                       evals="english", lr=s["base_lr"])


def growup_track(plan):
    """Queue Grow Up's 2x model on Korean as a compared method: seeds (data order; the 2x English
    model is one) at every rate of its sweep (method_sweep)."""
    for seed in range(plan.settings["seeds"]):
        run = seed_name("growup", seed)
        plan.runs[run] = continued(plan, f"korean/{run}", plan.runs["growup/base-2x"], seed=seed)
        for lr in method_sweep(plan.settings, "growup"):
            sweep_run(plan, "growup", plan.runs["growup/base-2x"], lr, seed)


def sweep_run(plan, name, init, lr, seed=0):
    """Queue one seed of a compared method's run at one learning rate of its sweep, korean/<name>@<lr>[-seedK]."""
    extra = [f"--replay=english:{plan.settings['replay']}"] if name.endswith("+replay") else ()
    run = seed_name(f"{name}@{lr:g}", seed)
    plan.runs[run] = continued(plan, f"korean/{run}", init, lr=lr, extra=extra, seed=seed)


def ancestor(plan, recipe, seed):
    """The checkpoint seed `seed` of a Korean run of `recipe` was continued from: the base or its growth."""
    return plan.runs["base"] if recipe == "full" else plan.grown[seed_name(recipe, seed)]


def bios_track(plan, bios, base):
    """Queue the growths of the population-A base and the phase-2 runs on population B, per method and seed,
    each at bios_lr and at every rate of its sweep (method_sweep). With bios_korean, population B is written in
    Korean (the cross-lingual variant). Returns {(method, seed): checkpoint}."""
    s = plan.settings
    b, out = (bios["b_ko"], f"{plan.out}/bios-ko") if s["bios_korean"] else (bios["b"], f"{plan.out}/bios")
    runs = {}
    for method in s["bios_methods"]:
        for seed in range(s["bios_seeds"]):
            init = base
            if method != "full":
                init = f"{out}/grown/{method}-{seed}.pt"
                plan.stages.step("bios", scale, scale.recipe_flags(GROW[method]) + [
                    f"--in={base}", f"--out={init}", f"--seed={s['seed_offset'] + seed}"], init)
            # every seed runs the sweep: C1 and C2 read retention at equal acquisition on each seed's own sweep
            rates = [(method, s["bios_lr"])] + [(f"{method}@{lr:g}", lr) for lr in method_sweep(s, method, bios=True)]
            for name, lr in rates:
                argv = run_flags(plan, seed) + [
                    f"--init-from={init}", f"--dataset={b}", f"--eval-datasets={bios['a']},{b}",
                    f"--learning-rate={lr}", f"--eval-interval={max(1, s['bios_iters'] // 5)}"]
                runs[(name, seed)] = plan.stages.train("bios", f"{out}/{name}-{seed}", argv, s["bios_iters"])
    return runs


# ----------------------------------------------------------------------------
# after the sweep: each ancestor's rate, the runs past a sweep's ends, the merges' models, the long runs


def choice_korean(s, data_dir):
    """{checkpoint: Korean loss on tune_iters held-out batches} (evaluate.py's held_out_rows: windows that share
    no token with the report's evaluation), in the final evaluation's precision: what every rate is chosen
    on, so no claim reads the batches that chose its rates (lab/rules.py)."""
    seen = {}  # each checkpoint evaluated once, however many choices read it

    def korean(paths):
        new = [path for path in paths if path not in seen]
        if new:
            losses = evaluate_checkpoints(new, ["korean"], data_dir, s["batch_size"], s["eval_iters"], EVAL_DTYPE,
                                          held_out=s["tune_iters"])
            seen.update({path: losses[path]["korean"] for path in new})
        return {path: seen[path] for path in paths}
    return korean


def choices(plan, korean):
    """{run: its held-out Korean loss} for seed 0 of every compared method at every rate it tried: the
    numbers its rates were chosen on, for the report (lab/readings.py's chosen_rate)."""
    s = plan.settings
    rates = sorted(sweep_rates(s) + s["sweep_edge_lrs"])
    names = [at_rate(n, lr, s) for n in COMPARED for lr in rates if at_rate(n, lr, s) in plan.runs]
    loss = korean([plan.runs[n] for n in names])
    return {n: loss[plan.runs[n]] for n in names}


def sweep_best(s, runs, names, korean, every=False):
    """{method: the rate of its sweep with the lowest Korean loss on held-out batches (seed 0), `korean`
    {checkpoint: loss}: choice_korean}; over the first round (cpt_lr and sweep_lrs), or
    with `every`, over every rate it has tried so far (sweep_edge_lrs' too)."""
    rates = sorted(sweep_rates(s) + (s["sweep_edge_lrs"] if every else []))
    tried = {name: {lr: runs[at_rate(name, lr, s)] for lr in rates if at_rate(name, lr, s) in runs} for name in names}
    loss = korean([path for by_rate in tried.values() for path in by_rate.values()])
    return {name: min(by_rate, key=lambda lr: loss[by_rate[lr]]) for name, by_rate in tried.items()}


def merge_rates(s, runs, korean):
    """Each ancestor's learning rate (for its merges, joint model and long run), by the rule fixed before the
    run: the rate of its Korean run's sweep (seed 0: cpt_lr and sweep_lrs) with the lowest Korean loss on
    held-out batches, `korean` {checkpoint: loss}: choice_korean. A HyperClone takes larger steps at the
    same rate (the README's symmetry lesson), so one rate for both ancestors would compare step sizes as
    much as models; at its own best rate each is merged, and trained longer, at its best."""
    best = sweep_best(s, runs, [recipe for _, recipe in MERGE_ANCESTORS], korean)
    return {anc: best[recipe] for anc, recipe in MERGE_ANCESTORS}


def edge_track(plan, korean):
    """Queue, for every compared method whose lowest Korean loss so far (sweep_best over every rate it
    tried) is at the lowest or highest rate it tried, the nearest rate of sweep_edge_lrs beyond that end,
    by the rule fixed before the run. main calls it once a round until it queues nothing, so a best found
    at an end is followed outwards one rate a round, as far as sweep_edge_lrs go (the report marks a best
    still at an end). The merges, joint and long runs keep the first round's choice (merge_rates): they
    train beside the first of these rounds. Returns how many runs it queued."""
    s, runs = plan.settings, plan.runs
    first, queued = sweep_rates(s), 0
    below = sorted((lr for lr in s["sweep_edge_lrs"] if lr < first[0]), reverse=True)  # nearest first
    above = sorted(lr for lr in s["sweep_edge_lrs"] if lr > first[-1])
    for name, lr in sweep_best(s, runs, COMPARED, korean, every=True).items():
        tried = sorted(rate for rate in first + below + above if at_rate(name, rate, s) in runs)
        beyond = ([r for r in below if r < lr] if lr == tried[0] else []) + \
                 ([r for r in above if r > lr] if lr == tried[-1] else [])
        if beyond:
            recipe = name.removesuffix("+replay")
            init = runs["growup/base-2x"] if name == "growup" else ancestor(plan, recipe, 0)
            sweep_run(plan, name, init, beyond[0])
            queued += 1
    return queued


def merge_lrs(s, rates, anc):
    """The rates an ancestor's merges are made at: its own best rate (C6, C7a, C7c) and the default rate,
    one rate common to both ancestors (C7b)."""
    return sorted({rates[anc], s["cpt_lr"]})


def best_rate_track(plan, rates):
    """Queue what each ancestor's merges need at each rate of merge_lrs: for every merge seed k a German model
    and a Korean one (the sweep made every seed's), both from the ancestor of seed k, so a merge's noise is its
    own spread over merge seeds; and at its own rate the joint Korean+German model of every merge seed."""
    s, runs = plan.settings, plan.runs
    for anc, recipe in MERGE_ANCESTORS:
        for seed in range(s["merge_seeds"]):
            start = ancestor(plan, recipe, seed)
            for lr in merge_lrs(s, rates, anc):
                korean = seed_name(at_rate(recipe, lr, s), seed)
                if korean not in runs:
                    runs[korean] = continued(plan, f"korean/{korean}", start, lr=lr, seed=seed)
                german = seed_name(at_rate(f"german/{anc}", lr, s), seed)
                runs[german] = continued(plan, german, start, dataset="german", evals="english,german", lr=lr,
                                         seed=seed)
            joint = seed_name(f"joint/{anc}", seed)
            runs[joint] = continued(plan, joint, start, lr=rates[anc], iters=s["cpt_iters"] * s["joint_factor"],
                                    extra=["--replay=german:0.5"], evals="english,korean,german", seed=seed)


def flops_track(plan, rates):
    """Queue C4's 1x runs, one per seed: the base continued on Korean at its best rate (merge_rates) for as many
    steps as give the training FLOPs of a cpt_iters run of Grow Up's 2x model, each with its own schedule (its
    learning rate decays to the end of its own run), so no run is read mid-schedule. Returns the steps."""
    s, runs = plan.settings, plan.runs
    ratio = (model_from_checkpoint(load_checkpoint(runs["growup/base-2x"])).flops_per_token()
             / model_from_checkpoint(load_checkpoint(runs["base"])).flops_per_token())
    iters = round(s["cpt_iters"] * ratio)
    for seed in range(s["seeds"]):
        run = seed_name("full-flops", seed)
        runs[run] = continued(plan, f"korean/{run}", runs["base"], lr=rates["base"], iters=iters, seed=seed,
                              eval_every=2 * s["eval_interval"])
    return iters


def long_track(plan, rates):
    """Queue the data-efficiency runs, each ancestor's Korean run continued longer at its rate (merge_rates):
    the 1x base long_factor times cpt_iters, past one epoch of Korean, the symmetry-broken 2x HyperClone
    long_factor_2x times (0: none). At one fixed rate the 2x would take larger steps than the 1x (the
    symmetry lesson); at its own sweep's best rate each is compared at its best by the same rule. Their
    curves are read at equal tokens and equal FLOPs, evaluated every 2 x eval_interval steps."""
    s = plan.settings
    for (anc, recipe), factor in zip(MERGE_ANCESTORS, (s["long_factor"], s["long_factor_2x"])):
        if factor:
            plan.runs[f"{recipe}-long"] = continued(plan, f"korean/{recipe}-long", ancestor(plan, recipe, 0),
                                                    lr=rates[anc], iters=s["cpt_iters"] * factor,
                                                    eval_every=2 * s["eval_interval"])


def merge_track(plan, rates):
    """Merge the Korean and the German model of each ancestor (the 1x base, the 2x HyperClone), at each rate of
    merge_lrs, once per merge seed: seed k merges seed k's two models, so the spread of a merge over seeds is
    measured, not borrowed from the Korean runs. Every method at merge.py's defaults (the papers' setting;
    layerwise has none), and every method with settings (tune.GRIDS, layerwise) tuned: chosen on merge seed
    0's models by the least kept fraction on tune_iters held-out batches of each language (none of the
    report's), then used for every seed. Returns {merge name: checkpoint}."""
    s, merges = plan.settings, {}
    tuning = ["--tune=korean,german", "--tune-by=kept", f"--tune-iters={s['tune_iters']}",
              f"--batch-size={s['batch_size']}", f"--eval-iters={s['eval_iters']}", f"--data-dir={plan.data_dir}"]
    for anc, recipe in MERGE_ANCESTORS:
        for lr in merge_lrs(s, rates, anc):
            for method in merge.METHODS:
                if method != "layerwise":
                    merges.update(merge_seeds(plan, anc, recipe, lr, method, [f"--method={method}"]))
                if method in TUNED:
                    merges.update(merge_seeds(plan, anc, recipe, lr, f"{method}-tuned", [f"--method={method}"],
                                              tuning))
    return merges


def merge_seeds(plan, anc, recipe, lr, name, flags, tuning=()):
    """Merge each merge seed's Korean and German models of one ancestor (DARE's drop seeded by the merge
    seed); with `tuning`, seed 0's merge chooses the settings (merge.py --tune) and the other seeds' merges
    use them. {merge name: checkpoint}."""
    s, runs, merges = plan.settings, plan.runs, {}
    for seed in range(s["merge_seeds"]):
        run, base = seed_name(f"{at_rate(anc, lr, s)}/{name}", seed), ancestor(plan, recipe, seed)
        ko = runs[seed_name(at_rate(recipe, lr, s), seed)]
        de = runs[seed_name(at_rate(f"german/{anc}", lr, s), seed)]
        path = f"{plan.out}/merged/{run}.pt"
        plan.stages.run("merge", merge, flags + [f"--base={base}", f"--models={ko},{de}", f"--out={path}",
                                                 f"--seed={s['seed_offset'] + seed}"]
                        + (list(tuning) if seed == 0 else chosen_flags(merges)), path, inputs=[base, ko, de])
        merges[run] = path
    return merges


def chosen_flags(merges):
    """The flags that merge with the settings seed 0's tuned merge (the first of `merges`) chose."""
    record = load_checkpoint(next(iter(merges.values())))["merge"]
    if record["method"] == "layerwise":
        weights = "/".join(",".join(f"{w:g}" for w in layer) for layer in record["layer_weights"])
        return [f"--layer-weights={weights}", f"--lambda={record['lambda']:g}"]
    return [f"--lambda={record['lambda']:g}", f"--density={record['density']:g}"]
