"""
measure.py — what experiment.py writes to results.json about its checkpoints.

Place in the story: after every stage of experiment.py has run, each checkpoint
is evaluated on every language (fixed validation batches), the biographies are
tested by exact match, and two diagnostics look inside grown models: has a
HyperClone left the 1x model (clones.py), and what does SCALE-Route's gate
choose on English and on Korean tokens. claims.py and report.py read the result.
"""

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial

import torch
from tqdm import tqdm

from lab import clones
import scale
from checkpoint import load_checkpoint, model_from_checkpoint
from data.bios.prepare import exact_match, load_people
from data.loader import open_split
from evaluate import estimate_loss, evaluate_checkpoints
from plumbing.system import pick_dtype

# The final evaluation's precision: what train.py's --dtype=auto trains in on this CPU, bfloat16 autocast where
# the CPU does bfloat16 natively (AVX-512 BF16, AMX), float32 elsewhere (AVX2 only: there bfloat16 is emulated,
# and a bfloat16 evaluation took minutes where float32 takes seconds).
EVAL_DTYPE = pick_dtype("auto", "cpu")


def read_log(ckpt):
    with open(os.path.join(os.path.dirname(ckpt), "log.jsonl")) as f:
        return [json.loads(line) for line in f]


def params_of(path):
    """(total, trainable) parameters of a checkpoint, counting its frozen record."""
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path)
    return scale.count(model, ckpt.get("frozen", {}))


@torch.no_grad()
def symmetry(path, data_dir, s):
    """Did the 2x HyperClone leave the 1x model? Its clones' largest difference, and its Korean and
    English losses next to those of the 1x model it collapses to (equal while the clones are equal)."""
    ckpt = load_checkpoint(path)
    sd = {k: v.double() for k, v in ckpt["model"].items()}
    small_args, small_sd = clones.unclone(sd, ckpt["model_args"])
    wide = model_from_checkpoint(dict(ckpt, model=sd), path).double()
    small = scale.build(small_args, small_sd, torch.float64)
    out = {"clone_gap": clones.clone_swap_gap(sd)}
    for lang in ("english", "korean"):
        data = open_split(data_dir, lang, "val", ckpt["tokenizer"], s["block_size"])
        out[lang] = [estimate_loss(m, {lang: data}, s["batch_size"], s["eval_iters"] // 4 or 1)[lang]
                     for m in (wide, small)]
    return out


@torch.no_grad()
def gate_means(path, data_dir, s):
    """SCALE-Route's gate g (1 = keep the base's logits) averaged over English and over Korean tokens."""
    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt, path).eval()
    seen = []
    hook = model.router.register_forward_hook(lambda mod, inp, outp: seen.append(torch.sigmoid(outp).mean().item()))
    means = {}
    for lang in ("english", "korean"):
        seen.clear()
        data = open_split(data_dir, lang, "val", ckpt["tokenizer"], s["block_size"])
        estimate_loss(model, {lang: data}, s["batch_size"], s["eval_iters"] // 4 or 1)
        means[lang] = sum(seen) / len(seen)
    hook.remove()
    return means


def set_threads_here(threads):
    torch.set_num_threads(threads)


def evaluate_side_by_side(paths, languages, data_dir, s, jobs, threads):
    """{path: {language: loss}}, `jobs` checkpoints at a time, each process with `threads` threads, as
    the training stages ran: the same sums, so the same numbers as one process with `threads` threads.
    Checkpoints are handed out one at a time, so a process that drew the 2x models does not hold up the end."""
    evaluate = partial(evaluate_checkpoints, datasets=languages, data_dir=data_dir, batch_size=s["batch_size"],
                       eval_iters=s["eval_iters"], dtype=EVAL_DTYPE)
    bar = partial(tqdm, total=len(paths), desc="evaluating", unit="ckpt")
    if jobs == 1:
        return {k: v for p in bar(paths) for k, v in evaluate([p]).items()}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),  # fork and OpenMP don't mix
                             initializer=set_threads_here, initargs=(threads,)) as pool:
        return {k: v for one in bar(pool.map(evaluate, [[p] for p in paths])) for k, v in one.items()}


def measure(s, languages, data_dir, runs, merges, bios, bios_base, bios_runs, jobs=1, threads=1):
    """Everything results.json holds about the checkpoints: losses on every language, training logs,
    sizes and FLOPs, the biographies' exact match, the HyperClones' symmetry and Route's gate."""
    ckpts = dict(runs, **{f"merged/{k}": v for k, v in merges.items()})
    print(f"\nevaluating {len(ckpts)} checkpoints on {', '.join(languages)}, {jobs} at a time", flush=True)
    losses = evaluate_side_by_side(list(ckpts.values()), languages, data_dir, s, jobs, threads)
    a_people, _ = load_people(bios["a"], data_dir)
    b_people, b_lang = load_people(bios["b_ko"] if s["bios_korean"] else bios["b"], data_dir)
    bio = {"before": exact_match(model_from_checkpoint(load_checkpoint(bios_base)), a_people), "runs": {}, "sweep": {}}
    for (method, seed), path in bios_runs.items():  # "depth@0.003": depth's first seed at another learning rate
        model = model_from_checkpoint(load_checkpoint(path), path)
        scores = {"seed": seed, "retention": exact_match(model, a_people),
                  "acquisition": exact_match(model, b_people, b_lang)}
        bio["sweep" if "@" in method else "runs"].setdefault(method, []).append(scores)
    return {
        "losses": {k: losses[v] for k, v in ckpts.items()},
        "logs": {k: read_log(v) for k, v in runs.items()},
        "params": {k: params_of(v) for k, v in runs.items()},
        "flops_per_token": {k: model_from_checkpoint(load_checkpoint(runs[k])).flops_per_token()
                            for k in ("full-long", "full-flops", "hyperclone", "growup", "hyperclone-long") if k in runs},
        "before": {k: "growup/base-2x" for k in runs if k.startswith("growup") and "/" not in k},  # its own start
        "tokens_per_step": s["batch_size"] * s["block_size"],
        "korean_train_tokens": os.path.getsize(os.path.join(data_dir, "korean", "train.bin")) // 2,  # uint16 ids
        "bios": bio,
        "symmetry": {k: symmetry(runs[k], data_dir, s) for k in ("hyperclone", "hyperclone-noiseless")},
        "gate": {k: gate_means(runs[k], data_dir, s) for k in ("route", "route+replay")},
        "tuned": {f"merged/{k}": chosen_settings(v) for k, v in merges.items() if k.endswith("-tuned")},
    }


def chosen_settings(path):
    """The settings a tuned merge (merge.py --tune) chose, from its checkpoint's record."""
    record = load_checkpoint(path)["merge"]
    if record["method"] == "layerwise":
        return {"layer weights": record["layer_weights"], "λ": record["lambda"]}
    knobs = {"λ": record["lambda"]}
    return knobs if record["method"] == "task_arithmetic" else dict(knobs, density=record["density"])
