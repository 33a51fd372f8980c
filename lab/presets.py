"""
presets.py — experiment.py's settings: the four presets, and every --config value checked before anything runs.

Place in the story: the knobs of the whole experiment in one place. A preset is a
plain dict (model size, steps, learning rates, seeds); `--config=FILE.json`
overrides any of its keys, and each value is checked for kind and range here,
because a stage would find a bad one only after the minutes of training before it.
"""

import json
import math

import scale
from lab.readings import sweep_rates
from lab.rules import SEED_OFFSET
from lab.tracks import COMPARED
from plumbing.cli import UserError

BIOS_ALL = ["full", *scale.RECIPES]  # every method the biographies can run

PRESETS = {
    # byte tokenizer, 4 x 128 model, two 1-thread stages at a time on 2 cores, 86 min (budget 90: docs/experiment.md's
    # Budget). Every seed of a method runs its whole sweep. The rate below cpt_lr (1e-4) runs only for the methods
    # whose seeds need it to cross full training's Korean loss at cpt_lr, where C3 reads (the 2x models are below
    # it already at 3e-4; full's and full+replay's seeds lie on both sides of it); on the biographies 3e-4 only
    # for preserve, which learns B faster than full at bios_lr. What gave way to the budget: the rates past the
    # sweep's ends, the long run's tail, route on the biographies, then 250 -> 200 steps per continued run and
    # 20 -> 10 evaluation batches, 8 -> 4 tuning batches.
    # sweep_edge_lrs: the rates past the sweep's ends, tried one a round, nearest first, for a method whose
    # best is still at an end
    "default": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, eval_iters=10, train_eval_iters=5,
                    base_iters=2000, base_lr=1e-3, cpt_iters=200, cpt_lr=3e-4, sweep_lrs=[1e-4, 1e-3, 3e-3],
                    sweep_below=["full", "full+replay", "hyperclone", "growup"],
                    sweep_edge_lrs=[], eval_interval=50, replay=0.05, long_factor=4,
                    long_factor_2x=0, joint_factor=2, seeds=3, merge_seeds=3, tune_iters=4, seed_offset=SEED_OFFSET,
                    bios_people=100, bios_renderings=5, bios_base_iters=2000, bios_base_lr=3e-3,
                    bios_iters=250, bios_lr=1e-3, bios_sweep_lrs=[3e-4, 3e-3], bios_sweep_below=["preserve"],
                    bios_seeds=3, bios_methods=["full", "depth", "preserve"],
                    bios_korean=False, lesson_growths=False),
    # a lesson: the same story in a sixth of the time, 15 min on 2 cores (fewer and shorter steps, 2 seeds, one
    # extra learning rate, no lesson-only growths, a smaller biography test without route, tuning on 2 batches;
    # its report says so), its curves evaluated every 16 steps (3 points per continued run), the final
    # evaluation on 5 batches
    "class": dict(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, eval_iters=5, train_eval_iters=5,
                  base_iters=400, base_lr=1e-3, cpt_iters=32, cpt_lr=3e-4, sweep_lrs=[1e-3], sweep_below=COMPARED,
                  sweep_edge_lrs=[],
                  eval_interval=16, replay=0.05, long_factor=3, long_factor_2x=0, joint_factor=1, seeds=2, merge_seeds=1,
                  tune_iters=2, seed_offset=SEED_OFFSET,
                  bios_people=50, bios_renderings=5, bios_base_iters=800, bios_base_lr=3e-3,
                  bios_iters=50, bios_lr=1e-3, bios_sweep_lrs=[3e-3], bios_sweep_below=BIOS_ALL, bios_seeds=2,
                  bios_methods=["full", "depth", "preserve"],
                  bios_korean=False, lesson_growths=False),
    # every stage, tiny: what the test runs
    "quick": dict(n_layer=4, n_head=2, n_embd=32, block_size=64, batch_size=4, eval_iters=2, train_eval_iters=1,
                  base_iters=20, base_lr=3e-3, cpt_iters=8, cpt_lr=1e-3, sweep_lrs=[3e-3], sweep_below=COMPARED,
                  sweep_edge_lrs=[3e-4, 1e-2], eval_interval=4, replay=0.05, long_factor=2, long_factor_2x=2,
                  joint_factor=2, seeds=2, merge_seeds=2, tune_iters=1, seed_offset=SEED_OFFSET,
                  bios_people=6, bios_renderings=2, bios_base_iters=20, bios_base_lr=3e-3,
                  bios_iters=8, bios_lr=1e-3, bios_sweep_lrs=[3e-3], bios_sweep_below=BIOS_ALL, bios_seeds=2,
                  bios_methods=["full", "depth", "preserve", "route"],
                  bios_korean=False, lesson_growths=True),
    # a GPU: a 6 x 384 model (nanoGPT's char model size) and ten times the tokens
    "gpu": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, eval_iters=50, train_eval_iters=20,
                base_iters=5000, base_lr=1e-3, cpt_iters=2000, cpt_lr=3e-4, sweep_lrs=[1e-4, 1e-3], sweep_below=COMPARED,
                sweep_edge_lrs=[3e-5, 3e-3], eval_interval=250,
                replay=0.05, long_factor=12, long_factor_2x=4, joint_factor=2, seeds=5, merge_seeds=5, tune_iters=16,
                seed_offset=SEED_OFFSET,
                bios_people=400, bios_renderings=5, bios_base_iters=5000, bios_base_lr=1e-3,
                bios_iters=1500, bios_lr=5e-4, bios_sweep_lrs=[1.5e-4, 1.5e-3], bios_sweep_below=BIOS_ALL,
                bios_seeds=5,
                bios_methods=["full", "depth", "hyperclone", "preserve", "adapt", "route"], bios_korean=False,
                lesson_growths=True),
}


def read_settings(preset, config):
    """The preset's settings, with --config's JSON file over them, every value checked before anything
    runs (a stage would find a bad one only after the minutes of training before it)."""
    s = dict(PRESETS[preset])
    if config:
        try:
            extra = json.load(open(config))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"--config {config}: {e}")
        if not isinstance(extra, dict):
            raise UserError(f"--config {config} must hold one JSON object of settings, like {{\"cpt_iters\": 800}}")
        unknown = set(extra) - set(s)
        if unknown:
            raise UserError(f"--config: unknown setting(s) {', '.join(sorted(unknown))}; known: {', '.join(s)}")
        for key, value in extra.items():
            if kind := misfit(key, value, s[key]):
                raise UserError(f"--config: {key}={json.dumps(value)} is not {kind}")
        s.update(extra)
    ends = sweep_rates(s)
    if not all(lr < ends[0] or lr > ends[-1] for lr in s["sweep_edge_lrs"]):
        raise UserError(f"sweep_edge_lrs={json.dumps(s['sweep_edge_lrs'])} must lie beyond the sweep's ends "
                        f"({ends[0]:g} and {ends[-1]:g}): rates below the lowest or above the highest")
    if not 1 <= s["merge_seeds"] <= s["seeds"]:
        raise UserError(f"merge_seeds={s['merge_seeds']} must be from 1 to seeds={s['seeds']} (each merge seed "
                        "merges the Korean run of that seed)")
    return s


def misfit(key, value, like):
    """None if a --config value fits its setting, else what the setting must be (`like`: the preset's value)."""
    number = lambda v: type(v) in (int, float) and 0 < v < math.inf  # noqa: E731 (true is not a number here)
    if key == "bios_methods":
        ok = isinstance(value, list) and all(m in ["full", *scale.RECIPES] for m in value) and \
            {"full", "depth", "preserve"} <= set(value)
        kind = (f"a list of methods from {', '.join(['full', *scale.RECIPES])} with full, depth and preserve "
                "among them (C1 and C2 compare those)")
    elif key == "sweep_edge_lrs":
        ok, kind = isinstance(value, list) and all(number(v) for v in value) and len(set(value)) == len(value), \
            "[] (no rate past the sweep's ends) or a list of different learning rates > 0"
    elif key in ("sweep_below", "bios_sweep_below"):
        names = COMPARED if key == "sweep_below" else BIOS_ALL
        ok, kind = isinstance(value, list) and all(m in names for m in value), \
            f"a list of methods from {', '.join(names)} (those that run the sweep's rates below the default)"
    elif key in ("sweep_lrs", "bios_sweep_lrs"):
        ok, kind = isinstance(value, list) and len(value) > 0 and all(number(v) for v in value), \
            "a list of one or more learning rates > 0"
    elif isinstance(like, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(like, int):
        low = 0 if key in ("long_factor_2x", "seed_offset") else 1  # long_factor_2x=0: no long 2x run
        ok, kind = type(value) is int and value >= low, f"a whole number >= {low}"
    elif key == "replay":
        ok, kind = number(value) and value < 1, "a number > 0 and < 1"
    else:
        ok, kind = number(value), "a number > 0"
    return None if ok else kind
