"""
experiment.py — the whole story in one command: pretrain, grow, continue, merge, evaluate, report.

Place in the story: the end of it. Every stage is an ordinary command of this
project (train.py, scale.py, merge.py), printed as it runs, so a student can
re-run any single step by hand. Stages are cached: a re-run skips every stage
whose output exists and was made by the same command, and an interrupted
training run resumes where it stopped. lab/report.py then writes
report/REPORT.md and its plots from results.json.

    python experiment.py                  # the default run: about 2 hours on a 2-core CPU (docs/experiment.md)
    python experiment.py --preset=class   # the lesson-sized run, 15 minutes
    python experiment.py --preset=quick   # every stage on tiny settings, about 2 minutes
    python experiment.py --preset=gpu     # a larger model and budget for a GPU
    python experiment.py --config=my.json # any preset setting overridden from a JSON file

What each stage is, and why, is in lab/tracks.py; this file only orders them.
"""

import json
import os
import signal
import time

import torch

from data.common import DATA_DIR
from lab import report
from lab.readings import MERGE_ANCESTORS
from lab.measure import measure
from lab.presets import PRESETS, read_settings
from lab.stages import Stages, jobs_and_threads
from lab.verdicts import commits
from lab.tracks import (COMPARED, LANGUAGES, Plan, best_rate_track, bios_track, choice_korean, choices, edge_track,
                        flops_track, growup_track, language_track, long_track, merge_rates, merge_track, prepare_data,
                        pretrain)
from plumbing.cli import UserError, parse_flags, parser, run_cli


def main(argv=None):
    p = parser("experiment.py", "Run the whole experiment and write the report.")
    p.add_argument("--preset", default="default", choices=list(PRESETS), help="model size and budgets")
    p.add_argument("--config", help="JSON file overriding preset settings, e.g. {\"cpt_iters\": 800}")
    p.add_argument("--out-dir", help="where checkpoints go (default: out/experiment, or out/experiment-PRESET)")
    p.add_argument("--report-dir", help="where REPORT.md and the plots go (default: report/ for the default "
                                        "preset without --config, else OUT-DIR/report)")
    p.add_argument("--data-dir", default=DATA_DIR, help="folder holding the prepared datasets")
    p.add_argument("--jobs", default="auto", help="training stages at once: auto (one per free CPU core; one on a "
                                                  "GPU) or a number")
    p.add_argument("--threads", default="auto", help="CPU threads of each stage: auto (the free cores shared among "
                                                     "the jobs) or a number; part of every stage's command")
    args = parse_flags(p, argv)
    # started in the background (nohup ... &), Python ignores SIGINT; Ctrl-C or kill -INT should stop the run
    # the same way in every shell: the stages save, and the same command resumes them
    signal.signal(signal.SIGINT, signal.default_int_handler)
    jobs, threads = jobs_and_threads(args.jobs, args.threads)
    s = read_settings(args.preset, args.config)
    out = args.out_dir or ("out/experiment" if args.preset == "default" else f"out/experiment-{args.preset}")
    plan = Plan(Stages(out, jobs, threads), s, out, args.data_dir)
    torch.set_num_threads(threads)  # the evaluation here sums as the stages did, whatever --jobs is
    t0 = time.time()
    try:
        bios = prepare_data(s, args.data_dir)
        bios_base = pretrain(plan, bios)
        language_track(plan)
        bios_runs = bios_track(plan, bios, bios_base)
        growup_track(plan)
        plan.stages.wait()  # every stage, each as soon as what it starts from exists
        korean = choice_korean(s, args.data_dir)  # rates are chosen on held-out batches, never the report's
        rates = merge_rates(s, plan.runs, korean)  # the finished sweep's: the merges wait for it
        best_rate_track(plan, rates)
        flops_iters = flops_track(plan, rates)
        edge_track(plan, korean)
        long_track(plan, rates)
        plan.stages.wait()
        while edge_track(plan, korean):  # a best still at an end: one rate further, a round at a time
            plan.stages.wait()
        torch.set_num_threads(jobs * threads)  # merges run here one at a time, with nothing beside them
        merges = merge_track(plan, rates)
        torch.set_num_threads(threads)
    except KeyboardInterrupt:
        raise UserError("interrupted; run the same command again: finished stages are kept")
    runs = plan.runs
    chosen_on = choices(plan, korean)
    results = measure(s, LANGUAGES, args.data_dir, runs, merges, bios, bios_base, bios_runs, jobs, threads)
    long_rates = {f"{recipe}-long": rates[anc] for anc, recipe in MERGE_ANCESTORS if f"{recipe}-long" in runs}
    results.update(settings=s, compared=COMPARED, merge_rates=rates, long_rates=long_rates, preset=args.preset,
                   choice=chosen_on, flops_rate=rates["base"], flops_iters=flops_iters, commits=commits(),
                   stages=plan.stages.done, jobs=jobs, threads=threads, wall_s=round(time.time() - t0, 1),
                   peak_rss_mb=report.peak_rss_mb(), machine=report.machine())
    report_dir = args.report_dir or report.report_dir(args.preset, out, args.config)
    os.makedirs(report_dir, exist_ok=True)
    for folder in {out, report_dir}:  # the report's own copy re-makes it: python -m lab.report REPORT-DIR/results.json
        with open(os.path.join(folder, "results.json"), "w") as f:
            json.dump(results, f, indent=1)
    path = report.write_report(results, report_dir)
    print(f"\nwrote {path} ({time.time() - t0:.0f}s this run)")


if __name__ == "__main__":
    run_cli(main)
