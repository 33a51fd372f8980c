"""
rundir.py — a training run's folder: where it starts from, where it writes, what it may replace.

Place in the story: train.py asks here which checkpoint --init-from names, where a
continued run goes by default (a folder named after what it continues, so the
README's story steps never overwrite each other), whether the folder already
holds a different run (refused without --overwrite), and how a resumed run
keeps its log.
"""

import json
import os

from plumbing.cli import UserError, writable_dir

PRETRAIN_OUT_DIR = "out/base"        # where pretraining writes by default
BASE_CKPT = "out/base/ckpt.pt"       # scale.py grows it by default
UPSCALED_CKPT = "out/upscaled.pt"    # where scale.py writes by default; --init-from=upscaled reads it


def continue_out_dir(init_from):
    """Default folder of a continued run, named after what it continues, so the README's story
    steps never share one: out/base/ckpt.pt -> out/continued-base, upscaled -> out/continued-upscaled."""
    if init_from == "upscaled":
        return "out/continued-upscaled"
    stem = os.path.splitext(os.path.basename(init_from))[0]
    if stem == "ckpt":
        stem = os.path.basename(os.path.dirname(os.path.abspath(init_from)))
    return f"out/continued-{stem}"


def init_path(args):
    """The checkpoint --init-from names, or None for scratch."""
    if args.init_from == "scratch":
        return None
    if args.init_from == "resume":
        return os.path.join(args.out_dir or PRETRAIN_OUT_DIR, "ckpt.pt")
    if args.init_from == "upscaled":
        if not os.path.isfile(UPSCALED_CKPT):
            raise UserError(f"no upscaled checkpoint at {UPSCALED_CKPT}: run python scale.py first, or pass a checkpoint path")
        return UPSCALED_CKPT
    if args.init_from in HUB_GPT2 and not os.path.exists(args.init_from):
        return hub_gpt2(args.init_from)
    return args.init_from


HUB_GPT2 = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")  # nanoGPT's names for OpenAI's GPT-2 weights


def hub_gpt2(name):
    """The folder of Hugging Face's `name` (downloaded once by the optional huggingface_hub package),
    or one line saying how to get it by hand."""
    try:
        from huggingface_hub import snapshot_download
        return snapshot_download(f"openai-community/{name}", allow_patterns=["config.json", "model.safetensors"])
    except Exception as e:  # not installed, or no network
        raise UserError(f"--init-from={name} needs Hugging Face's {name} weights ({type(e).__name__}): download "
                        f"config.json and model.safetensors from https://huggingface.co/openai-community/{name} "
                        f"into a folder and pass --init-from=FOLDER (or pip install huggingface_hub)")


def take_saved_settings(args, explicit, ckpt, path):
    """Resume continues the run as it was configured, except for flags typed now (which are printed)."""
    if not ckpt.get("config"):
        raise UserError(f"{path} holds no training settings to resume from")
    for key, value in ckpt["config"].items():
        if key not in explicit and key != "init_from" and hasattr(args, key):
            setattr(args, key, value)
    args.out_dir = os.path.dirname(path)  # keep writing where the run lives
    return sorted(explicit - {"init_from", "out_dir"})


def other_settings(saved, args, explicit):
    """The settings in which a run already in the folder differs from this one, typed flags first."""
    ignore = {"device", "compile", "sample_tokens", "overwrite", "threads", "init_from"}  # how, not what
    now = vars(args)
    return sorted((k for k in saved if k not in ignore and k in now and saved[k] != now[k]),
                  key=lambda k: (k not in explicit, k))


def remove_stale_tmp(path):
    """A save killed mid-write (SIGKILL, power cut) leaves path.tmp behind: remove it at the next start."""
    if os.path.isfile(path + ".tmp"):
        os.remove(path + ".tmp")


def claim_out_dir(args, explicit, resumed, load_checkpoint):
    """The run's folder, writable, and not holding a different earlier run (unless --overwrite).
    load_checkpoint is checkpoint.py's, passed in: this floor knows folders, not models."""
    writable_dir(args.out_dir, "--out-dir")
    ckpt_path = os.path.join(args.out_dir, "ckpt.pt")
    remove_stale_tmp(ckpt_path)
    if resumed or args.overwrite or not os.path.isfile(ckpt_path):
        return
    saved = load_checkpoint(ckpt_path).get("config") or {}
    differ = other_settings(saved, args, explicit)
    if differ:
        raise UserError(f"{args.out_dir} already holds a run with other settings ({', '.join(differ[:4])}"
                        f"{', ...' if len(differ) > 4 else ''}): continue it with --init-from=resume "
                        f"--out-dir={args.out_dir}, choose another --out-dir, or pass --overwrite to replace it")


def start_log(log_path, resumed, iter_num):
    """A new run starts a new log; a resumed one keeps its lines up to the step it resumes from."""
    old = [line for line in open(log_path)] if os.path.exists(log_path) and resumed else []
    with open(log_path + ".tmp", "w") as f:
        f.writelines(line for line in old if json.loads(line)["iter"] <= iter_num)
    os.replace(log_path + ".tmp", log_path)
