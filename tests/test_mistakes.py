"""
Every user mistake is one line: each bad input below goes through its script's real
command line and must exit non-zero with exactly one `error:` line, no traceback, and
every file that existed before unchanged. Every case runs its script's `__main__` in
this process (runpy, as `python script.py` would, without a new Python importing torch
each time); the first case of each script also runs as a new process, as a user types it.

    python -m pytest -q tests/test_mistakes.py
"""

import contextlib
import errno
import hashlib
import io
import os
import runpy
import signal
import subprocess
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import merge
import train
from checkpoint import load_checkpoint, save_checkpoint
from data.common import write_dataset
from tests.conftest import REPO, TINY, synthetic_english, synthetic_korean
from plumbing.cli import run_cli


class Opaque:  # a pickled object: loading it would run code
    pass


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """A folder as a user's would look after a few steps of the story, plus some broken files."""
    w = tmp_path_factory.mktemp("world")
    data = str(w / "data")
    write_dataset("english", synthetic_english(800), "bytes", "test", data_dir=data)
    write_dataset("korean", synthetic_korean(400), "bytes", "test", data_dir=data)
    write_dataset("tiny10", "0123456789", "bytes", "test", data_dir=data, val_text="0123456789")
    write_dataset("emptyval", synthetic_english(50), "bytes", "test", data_dir=data, val_text="")
    common = [f"--data-dir={data}", *TINY, "--eval-interval=2"]
    train.main([*common, f"--out-dir={w / 'base'}", "--max-iters=2"])
    train.main([*common, f"--out-dir={w / 'other'}", "--max-iters=2", "--seed=7"])
    base = str(w / "base" / "ckpt.pt")
    train.main([*common, f"--init-from={base}", f"--out-dir={w / 'ko'}", "--max-iters=2"])
    ckpt = load_checkpoint(base)
    save_checkpoint(dict(ckpt, model={k: v * float("nan") for k, v in ckpt["model"].items()}), str(w / "nan.pt"))
    torch.save({"model": Opaque(), "model_args": {}}, w / "pickle.pt")
    (w / "cut.pt").write_bytes(open(base, "rb").read()[:5000])
    (w / "a_file").write_text("not a folder")
    (w / "bad.json").write_text('{"cpt_iters": -5}')  # an experiment setting out of range
    torch.save({"model": ckpt["model"], "model_args": ckpt["model_args"]}, w / "bare.pt")  # says no tokenizer
    return w


def unwritable(w):
    """A folder nobody may write to: /proc when running as root (root may write anywhere else)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return "/proc/grow-and-merge-test"
    d = w / "locked"
    d.mkdir(exist_ok=True)
    d.chmod(0o500)
    return str(d / "sub")


def cases(w):
    data, base, ko, other = f"--data-dir={w / 'data'}", w / "base" / "ckpt.pt", w / "ko" / "ckpt.pt", \
        w / "other" / "ckpt.pt"
    no = unwritable(w)
    t = ["train.py", data, *TINY, f"--out-dir={w / 'new'}"]
    return [
        (t + ["--batch-size=0"], "--batch-size=0 is out of range"),
        (t + ["--learning-rate=-1"], "--learning-rate=-1 is out of range"),
        (t + ["--learning-rate=nan"], "--learning-rate=nan is out of range"),
        (t + ["--eval-interval=0"], "--eval-interval=0 is out of range"),
        (t + ["--grad-accum=0"], "--grad-accum=0 is out of range"),
        (t + ["--eval-iters=0"], "--eval-iters=0 is out of range"),
        (t + ["--max-iters=-3"], "--max-iters=-3 is out of range"),
        (t + ["--dropout=1.5"], "--dropout=1.5 is out of range"),
        (t + ["--device=cuda"], "no CUDA GPU") if not torch.cuda.is_available() else
        (t + ["--device=cuda:99"], "CUDA GPU(s)"),
        (t + ["--device=banana"], "--device=banana is not a device"),
        (t + ["--batch-size=abc"], "invalid int value"),
        (t + [f"--init-from={w / 'bare.pt'}"], "does not say which tokenizer it was trained with: pass --tokenizer"),
        (t + [f"--init-from={w / 'bare.pt'}", "--tokenizer=words"], "--tokenizer=words: use bytes, gpt2, or"),
        (["scale.py", "--method=depth", f"--in={w / 'bare.pt'}", f"--out={w / 'x.pt'}", "--tokenizer=gpt2"],
         "tokenizer has 50,257 ids but the model only"),
        (t + ["--bogus=1"], "unrecognized arguments: --bogus=1"),
        (["train.py", data, *TINY, f"--out-dir={w / 'a_file'}"], "is a file, not a folder"),
        (["train.py", data, *TINY, f"--out-dir={no}"], "choose a folder you can write to"),
        (t + ["--dataset=bios"], "'bios' is not a dataset"),
        (t + ["--dataset=nosuch"], "unknown dataset 'nosuch'"),
        (t + ["--dataset=english", "--eval-datasets=emptyval"], "dataset 'emptyval' val split has 0 tokens"),
        (t + ["--dataset=tiny10", "--block-size=16"], "too few for block_size=16"),
        (t + [f"--init-from={w / 'pickle.pt'}"], "holds Python objects, not only tensors"),
        (t + [f"--init-from={w / 'cut.pt'}"], "truncated or not a PyTorch file"),
        (t + [f"--init-from={w / 'missing.pt'}"], "no checkpoint at"),
        (["train.py", data, *TINY, f"--out-dir={w / 'base'}", "--eval-interval=2", "--max-iters=2",
          "--learning-rate=5e-3"],
         "already holds a run with other settings (learning_rate"),
        (["train.py", data, *TINY, f"--out-dir={w / 'diverged'}", "--learning-rate=1e30", "--grad-clip=0",
          "--max-iters=20"], "the training loss stopped being finite"),
        (["scale.py", "--method=ffn", "--add-neurons=-5", f"--in={base}", f"--out={w / 'g.pt'}"],
         "--add-neurons and --add-width must be >= 1"),
        (["scale.py", "--method=scale", "--add-width=-32", f"--in={base}", f"--out={w / 'g.pt'}"],
         "--add-neurons and --add-width must be >= 1"),
        (["scale.py", "--method=hyperclone", "--noise=nan", f"--in={base}", f"--out={w / 'g.pt'}"],
         "--noise=nan is out of range"),
        (["scale.py", "--method=depth", "--every=100", f"--in={base}", f"--out={w / 'g.pt'}"],
         "--every=100 inserts none"),
        (["scale.py", "--method=hyperclone", "--factor=5000", f"--in={base}", f"--out={w / 'g.pt'}"],
         "of memory; "),
        (["scale.py", "--method=depth", f"--in={w / 'nan.pt'}", f"--out={w / 'g.pt'}"], "non-finite values"),
        (["scale.py", "--method=depth", f"--in={base}", f"--out={no}/g.pt"], "choose a folder you can write to"),
        (["scale.py", f"--in={base}"], "the following arguments are required: --method"),
        (["merge.py", "--method=linear", f"--models={base},{base}", "--weights=1,abc", f"--out={w / 'm.pt'}"],
         "must be comma-separated numbers"),
        (["merge.py", "--method=task_arithmetic", f"--base={base}", f"--models={ko},{ko}", "--weights=1,-1",
          f"--out={w / 'm.pt'}"], "add up to 0"),
        (["merge.py", "--method=task_arithmetic", f"--base={base}", f"--models={ko}", "--lambda=nan",
          f"--out={w / 'm.pt'}"], "--lambda=nan is out of range"),
        (["merge.py", "--method=ties", f"--base={base}", f"--models={ko},{other}", f"--out={w / 'm.pt'}"],
         "was not continued from"),
        (["merge.py", "--method=ties", f"--base={base}", f"--models={ko}", f"--out={no}/m.pt"],
         "choose a folder you can write to"),
        (["merge.py", "--models=", f"--out={w / 'm.pt'}"], "--models names no checkpoint"),
        (["merge.py", "--method=ties", f"--base={base}", f"--models={ko}", f"--out={w / 'm.pt'}", "--draw=x.png",
          "--draw-tensor=no.such.weight"], "--draw-tensor=no.such.weight is not a tensor of these models"),
        (["scale.py", "--method=depth", f"--in={base}", f"--out={w / 'g.pt'}", f"--draw={no}/g.png"],
         "choose a folder you can write to"),
        (["draw.py", f"--before={w / 'missing.pt'}", f"--after={base}", f"--out={w / 'd.png'}"], "no checkpoint at"),
        (["draw.py", f"--before={base}", f"--after={base}", f"--out={w / 'd.png'}", "--block=99"], "--block=99"),
        (["draw.py", f"--before={base}", f"--after={base}"], "the following arguments are required: --out"),
        (["exercises/check.py", "6", "--draw=x.png"], "--draw draws exercise 3 or 4 or 5"),
        (["evaluate.py", f"--ckpts={base}", data, "--datasets=english", "--batch-size=0"], "--batch-size=0 is out"),
        (["evaluate.py", f"--ckpts={base}", data, "--datasets=english", "--eval-iters=0"], "--eval-iters=0 is out"),
        (["evaluate.py", "--ckpts=", data], "--ckpts and --datasets each need"),
        (["evaluate.py", data], "the following arguments are required: --ckpts"),
        (["sample.py", f"--ckpt={base}", "--top-k=0"], "--top-k=0 is out of range"),
        (["sample.py", f"--ckpt={base}", "--top-k=-2"], "--top-k=-2 is out of range"),
        (["sample.py", f"--ckpt={w / 'nan.pt'}"], "non-finite values"),
        (["sample.py", f"--ckpt={base}", "--bogus"], "unrecognized arguments: --bogus"),
        (["-m", "tools.export", f"--out={w / 'hf'}"], "the following arguments are required: --ckpt"),
        (["-m", "tools.export", f"--ckpt={w / 'pickle.pt'}", f"--out={w / 'hf'}"], "holds Python objects"),
        (["experiment.py", f"--config={w / 'bad.json'}", "--jobs=1", "--threads=1", f"--out-dir={w / 'exp'}"],
         "cpt_iters=-5 is not a whole number >= 1"),
        (["experiment.py", "--jobs=0", f"--out-dir={w / 'exp'}"], "--jobs=0 must be auto or a whole number"),
        (["-m", "tools.bench", "--rounds=0"], "--rounds=0 is out of range"),
        (["-m", "lab.report", f"{w / 'missing.json'}"], "no results at"),
        (["-m", "lab.report", f"{w / 'pickle.pt'}"], "is not a results.json experiment.py wrote"),
        (["-m", "lab.report", f"{w / 'bad.json'}"], "has no settings, compared, losses: it is not a results.json"),
        (["-m", "lab.report"], "the following arguments are required: results"),
        (["train.py", data, "--block-size=100000000", f"--out-dir={w / 'huge'}"], "GiB; "),
        (["train.py", data, "--batch-size=100000000", f"--out-dir={w / 'huge'}"], "GiB; "),
        (["train.py", data, "--n-layer=2000", "--n-embd=4096", "--n-head=8", f"--out-dir={w / 'huge'}"], "GiB; "),
        (["train.py", data, "--n-embd=30", "--n-head=4", f"--out-dir={w / 'odd'}"], "--n-embd=30 is not divisible by --n-head=4"),
        (["-m", "tools.bench", "--steps=0", "--configs=base"], "--steps=0 is out of range"),
        (["exercises/sweep.py", "replay", "--iters=0"], "--iters=0 is out of range"),
        (["exercises/sweep.py", "factor", "--eval-iters=-1"], "--eval-iters=-1 is out of range"),
        (["exercises/check.py", "abc"], "'abc' is not an exercise"),
        (["exercises/check.py", "16"], "'16' is not an exercise"),
        (["exercises/check.py", "0"], "'0' is not an exercise"),
        (["data/english/prepare.py", data, "--val-fraction=1.5"], "--val-fraction=1.5 is out of range"),
        (["data/english/prepare.py", data, "--val-fraction=1"], "leaves no training text"),
        (["data/english/prepare.py", data, "--tokenizer=nope"], "invalid choice: 'nope'"),
    ]


def snapshot(folder):
    """{path: sha256} of every file under folder."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            out[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def run_here(world, argv):
    """Run argv's script as `python script.py ...` (or `python -m module ...`) would, in this process:
    (exit code, stderr)."""
    module = argv[1] if argv[0] == "-m" else None
    script, err = os.path.join(REPO, argv[0]), io.StringIO()
    saved = sys.argv, list(sys.path), os.getcwd(), signal.getsignal(signal.SIGINT), torch.get_num_threads()
    args = argv[2:] if module else argv[1:]
    sys.argv, code = [module or script, *args], 0
    sys.path.insert(0, REPO if module else os.path.dirname(script))  # what Python puts first
    os.chdir(world)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            if module:  # as `python -m` does: the module runs fresh, not the copy the tests imported
                imported = sys.modules.pop(module, None)
                try:
                    runpy.run_module(module, run_name="__main__", alter_sys=True)
                finally:
                    if imported is not None:
                        sys.modules[module] = imported
            else:
                runpy.run_path(script, run_name="__main__")
    except SystemExit as e:  # what the interpreter does with it at exit
        if isinstance(e.code, str):
            print(e.code, file=err)
        code = e.code if isinstance(e.code, int) else int(e.code is not None)
    except BaseException:  # noqa: BLE001 - an uncaught exception is what a user would see as a traceback
        err.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv, sys.path[:], cwd, sigint, threads = saved
        os.chdir(cwd)
        signal.signal(signal.SIGINT, sigint)
        torch.set_num_threads(threads)
    return code, err.getvalue()


def run_new_process(world, argv):
    head = argv[:2] if argv[0] == "-m" else [os.path.join(REPO, argv[0])]
    r = subprocess.run([sys.executable, *head, *argv[len(head):]], cwd=world, capture_output=True, text=True,
                       timeout=3600, env=dict(os.environ, PYTHONPATH=REPO))
    return r.returncode, r.stderr


def check_one(world, argv, expected, run=run_here):
    """None if the mistake gave one clear line and changed nothing, else what went wrong."""
    before = snapshot(world)
    returncode, stderr = run(world, argv)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    after = snapshot(world)
    changed = [p for p in before if after.get(p) != before[p]]
    what = " ".join(argv)
    if returncode == 0 or "Traceback" in stderr or len(errors) != 1 or expected not in errors[0]:
        return f"{what}\n  rc {returncode}, stderr: {stderr.strip()[-600:]!r}"
    if stderr.strip().splitlines()[-1] != errors[0]:
        return f"{what}\n  the error is not the last line: {stderr.strip()[-300:]!r}"
    if changed:
        return f"{what}\n  changed {changed}"
    return None


def test_every_mistake_is_one_line_and_changes_nothing(world):
    problems = [p for p in (check_one(world, *case) for case in cases(world)) if p]
    assert not problems, "\n".join(problems)


def test_the_first_mistake_of_each_script_is_one_line_in_a_new_process(world):
    """The same check through a real `python script.py`: what runpy cannot show (start-up, the exit code)."""
    first = {}
    for argv, expected in cases(world):
        first.setdefault(argv[0], (argv, expected))
    # two at a time: each is mostly Python starting up (one core), and no case changes a file that existed
    with ThreadPoolExecutor(2) as pool:
        problems = [p for p in pool.map(lambda case: check_one(world, *case, run=run_new_process), first.values())
                    if p]
    assert len(first) >= 10 and not problems, "\n".join(problems)


def test_a_full_disk_is_one_line_and_keeps_the_old_checkpoint(world, tmp_path, monkeypatch, capsys):
    """A save that fails for lack of space leaves the previous checkpoint intact, and says so in one line."""
    path = str(tmp_path / "ckpt.pt")
    save_checkpoint({"model": {}, "model_args": {}, "tokenizer": "bytes", "n": 1}, path)

    def full(obj, f):
        with open(f, "wb") as fh:
            fh.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", f)

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: save_checkpoint({"model": {}, "model_args": {}, "tokenizer": "bytes", "n": 2}, path))
    monkeypatch.undo()
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: No space left on device"), err
    assert load_checkpoint(path)["n"] == 1 and not os.path.exists(path + ".tmp")


def test_merge_with_allow_unrelated_insists(world, tmp_path):
    base, ko, other = (str(world / d / "ckpt.pt") for d in ("base", "ko", "other"))
    merge.main(["--method=ties", f"--base={base}", f"--models={ko},{other}", "--allow-unrelated",
                f"--out={tmp_path / 'm.pt'}"])
    assert load_checkpoint(str(tmp_path / "m.pt"))["merge"]["models"] == [ko, other]
