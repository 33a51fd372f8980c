"""
train.py: learning, evaluation on several datasets, replay, exact resume,
Ctrl-C, frozen weights, and one clear line for every user mistake.

    python -m pytest -q tests/test_train.py
"""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict

import numpy as np
import pytest
import torch

import train
from data.loader import draw_rows, parse_replay
from checkpoint import load_checkpoint, save_checkpoint
from model import GPT, GPTConfig
from optim import lr_at
from tests.conftest import REPO, TINY, run_script
from plumbing.cli import UserError


def run(data_dir, out_dir, *flags):
    train.main([f"--data-dir={data_dir}", f"--out-dir={out_dir}", *TINY, *flags])
    return load_checkpoint(os.path.join(out_dir, "ckpt.pt"))


def read_log(out_dir):
    return [json.loads(line) for line in open(os.path.join(out_dir, "log.jsonl"))]


def assert_same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_loss_falls_on_a_tiny_dataset(data_dir, tmp_path):
    run(data_dir, tmp_path, "--max-iters=150", "--eval-interval=50", "--learning-rate=3e-3")
    log = read_log(tmp_path)
    assert [e["iter"] for e in log] == [0, 50, 100, 150]
    first, last = log[0]["loss"]["english"], log[-1]["loss"]["english"]
    assert first > 5.0 and last < first - 2.5, (first, last)


def test_every_eval_logs_each_dataset_and_replay_mixes_data(data_dir, tmp_path):
    ckpt = run(data_dir, tmp_path, "--max-iters=20", "--eval-interval=10", "--eval-datasets=english,korean",
               "--replay=korean:0.3")
    log = read_log(tmp_path)
    assert all(set(e["loss"]) == {"train", "english", "korean"} for e in log)
    assert [e["tokens"] for e in log] == [0, 10 * 8 * 32, 20 * 8 * 32]
    assert ckpt["config"]["replay"] == "korean:0.3" and ckpt["iter_num"] == 20


def test_draw_rows_mixes_sources_in_the_given_proportions():
    a, b = np.zeros(1000, dtype=np.uint16), np.ones(500, dtype=np.uint16)
    rows = draw_rows(torch.Generator().manual_seed(0), [(a, 0.9), (b, 0.1)], 20000, block_size=8)
    share_b = sum(w for w, _ in rows) / len(rows)
    assert 0.09 < share_b < 0.11
    assert all(0 <= s <= (len(a) if w == 0 else len(b)) - 9 for w, s in rows)
    with pytest.raises(UserError, match="NAME:FRACTION"):
        parse_replay("english")
    with pytest.raises(UserError, match="less than 1"):
        parse_replay("english:0.7,korean:0.5")


def test_lr_schedule_warms_up_then_decays_to_min_lr():
    lrs = [lr_at(i, learning_rate=1e-3, min_lr=1e-4, warmup_iters=10, lr_decay_iters=110) for i in range(120)]
    assert lrs[0] < lrs[5] < lrs[9] < 1e-3
    assert abs(lrs[10] - 1e-3) < 1e-12 and abs(lrs[110] - 1e-4) < 1e-12 and lrs[119] == 1e-4
    assert all(x >= y for x, y in zip(lrs[10:], lrs[11:]))


def test_resume_is_exact(data_dir, tmp_path):
    """2N steps in one run == N steps, resume, N steps: bit for bit, optimizer included."""
    flags = ["--lr-decay-iters=40", "--eval-interval=15", "--dropout=0.1", "--replay=korean:0.2"]
    straight = run(data_dir, tmp_path / "a", "--max-iters=40", *flags)
    run(data_dir, tmp_path / "b", "--max-iters=20", *flags)
    resumed = run(data_dir, tmp_path / "b", "--init-from=resume", "--max-iters=40")
    assert_same_state(straight["model"], resumed["model"])
    for s, r in zip(straight["optimizer"]["state"].values(), resumed["optimizer"]["state"].values()):
        assert_same_state(s, r)
    assert resumed["iter_num"] == 40 and resumed["tokens_seen"] == straight["tokens_seen"]
    log_a, log_b = ({e["iter"]: e["loss"] for e in read_log(tmp_path / d)} for d in "ab")
    assert list(log_b) == [0, 15, 20, 30, 40]  # the stopped run also evaluated where it stopped
    assert all(log_b[i] == log_a[i] for i in log_a)
    assert resumed["config"]["dropout"] == 0.1  # taken from the saved run, not from the defaults


def test_ctrl_c_saves_and_resume_finishes_the_same_run(data_dir, tmp_path):
    common = [sys.executable, "train.py", f"--data-dir={data_dir}", *TINY, "--max-iters=400",
              "--eval-interval=150"]
    proc = subprocess.Popen(common + [f"--out-dir={tmp_path / 'b'}"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    log = tmp_path / "b" / "log.jsonl"
    while not (log.exists() and log.stat().st_size > 0):  # step 0 evaluated: the loop is running
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.1)
    time.sleep(0.3)  # a few dozen steps of the tiny model
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=3600)
    assert proc.returncode == 0, err
    assert "interrupted: saved step" in out and "--init-from=resume" in out
    stopped_at = load_checkpoint(str(tmp_path / "b" / "ckpt.pt"))["iter_num"]
    assert 0 < stopped_at < 400
    finish = subprocess.run([sys.executable, "train.py", "--init-from=resume", f"--out-dir={tmp_path / 'b'}"],
                            cwd=REPO, capture_output=True, text=True, timeout=3600)
    assert finish.returncode == 0, finish.stderr
    straight = run(data_dir, tmp_path / "a", "--max-iters=400", "--eval-interval=150")
    assert_same_state(straight["model"], load_checkpoint(str(tmp_path / "b" / "ckpt.pt"))["model"])


def test_frozen_weights_stay_bit_identical_with_weight_decay(data_dir, tmp_path):
    config = GPTConfig(block_size=32, vocab_size=256, n_layer=2, n_head=2, n_embd=32)
    model = GPT(config)
    sd = model.state_dict()
    frozen = {"transformer.h.0.mlp.c_fc.weight": torch.ones_like(sd["transformer.h.0.mlp.c_fc.weight"], dtype=torch.bool),
              "transformer.wte.weight": torch.zeros(256, 32, dtype=torch.bool)}
    frozen["transformer.wte.weight"][:128] = True  # ASCII rows frozen, the rest trains
    frozen["transformer.h.1.attn.c_attn.weight"] = torch.rand(96, 32) < 0.5  # a scattered mask
    save_checkpoint({"model": sd, "model_args": asdict(config), "tokenizer": "bytes", "frozen": frozen},
                    str(tmp_path / "grown.pt"))
    out = run(data_dir, tmp_path / "run", f"--init-from={tmp_path / 'grown.pt'}", "--max-iters=30",
              "--weight-decay=0.5", "--learning-rate=1e-2", "--dataset=english", "--eval-datasets=english")
    after = out["model"]
    for name, mask in frozen.items():
        assert torch.equal(after[name][mask], sd[name][mask]), name
        assert not torch.equal(after[name][~mask], sd[name][~mask]) or not (~mask).any(), name
    assert not torch.equal(after["transformer.h.0.attn.c_attn.weight"], sd["transformer.h.0.attn.c_attn.weight"])
    assert len(out["optimizer"]["state"]) == sum(1 for n, p in model.named_parameters()) - 1  # c_fc has no state
    unfrozen = run(data_dir, tmp_path / "run2", f"--init-from={tmp_path / 'grown.pt'}", "--max-iters=5",
                   "--dataset=english", "--unfreeze")
    assert not torch.equal(unfrozen["model"]["transformer.h.0.mlp.c_fc.weight"], sd["transformer.h.0.mlp.c_fc.weight"])


def user_error(data_dir, tmp_path, *flags):
    with pytest.raises(UserError) as e:
        run(data_dir, tmp_path, *flags)
    return str(e.value)


def test_bad_input_gives_one_clear_line(data_dir, tmp_path):
    assert "unknown dataset 'klingon' (known: " in user_error(data_dir, tmp_path, "--dataset=klingon")
    os.makedirs(tmp_path / "empty")
    assert "not prepared: run python data/english/prepare.py --data-dir=" in \
        user_error(tmp_path / "empty", tmp_path, "--dataset=english")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    assert "not a readable checkpoint" in user_error(data_dir, tmp_path, f"--init-from={tmp_path / 'junk.pt'}")
    torch.save({"state": 1}, tmp_path / "foreign.pt")
    assert "not a model checkpoint" in user_error(data_dir, tmp_path, f"--init-from={tmp_path / 'foreign.pt'}")
    assert "unrecognized arguments: --learning-rat=1" in user_error(data_dir, tmp_path, "--learning-rat=1")
    assert "need about" in user_error(data_dir, tmp_path, "--block-size=50000")  # refused before allocating
    assert "no checkpoint at" in user_error(data_dir, tmp_path / "nothing", "--init-from=resume")
    config = GPTConfig(block_size=32, vocab_size=50257, n_layer=2, n_head=2, n_embd=32)
    save_checkpoint({"model": GPT(config).state_dict(), "model_args": asdict(config), "tokenizer": "gpt2"},
                    str(tmp_path / "gpt2.pt"))
    assert "prepared with the bytes tokenizer but the model uses gpt2: run python data/english/prepare.py " \
           "--tokenizer=gpt2" in user_error(data_dir, tmp_path, f"--init-from={tmp_path / 'gpt2.pt'}", "--dataset=english")
    assert "--n-layer cannot change" in user_error(data_dir, tmp_path, f"--init-from={tmp_path / 'gpt2.pt'}", "--n-layer=3")


def test_command_line_errors_are_one_line_without_traceback(data_dir, tmp_path):
    for flags in (["--dataset=korean", f"--data-dir={tmp_path}"], ["--max-iters=many"], ["--init-from=upscaled"]):
        r = run_script(os.path.join(REPO, "train.py"), *flags, f"--out-dir={tmp_path}", cwd=tmp_path)  # no out/ here
        assert r.returncode == 1
        assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert r.stderr.startswith("error: ")


def test_help_documents_every_flag():
    text = train.build_parser().format_help()
    for action in train.build_parser()._actions:
        if action.option_strings and action.dest != "help":
            assert action.help, action.dest
    assert "--init-from" in text and "--replay" in text and "--eval-datasets" in text


def test_resuming_a_finished_run_says_so_and_changes_nothing(data_dir, tmp_path, capsys):
    run(data_dir, tmp_path, "--max-iters=4", "--eval-interval=2")
    before = open(tmp_path / "ckpt.pt", "rb").read()
    (tmp_path / "ckpt.pt.tmp").write_bytes(b"left by a killed save")
    capsys.readouterr()
    train.main(["--init-from=resume", f"--out-dir={tmp_path}"])
    out = capsys.readouterr().out
    assert "nothing to do" in out and "has finished its 4 steps" in out and "tokens/s" not in out
    assert open(tmp_path / "ckpt.pt", "rb").read() == before
    assert not (tmp_path / "ckpt.pt.tmp").exists()  # the stale temporary file is gone


def test_elapsed_time_continues_across_a_resume(data_dir, tmp_path):
    run(data_dir, tmp_path, "--max-iters=4", "--eval-interval=2")
    first = read_log(tmp_path)[-1]["elapsed_s"]
    train.main(["--init-from=resume", f"--out-dir={tmp_path}", "--max-iters=8"])
    log = read_log(tmp_path)
    assert [e["iter"] for e in log] == [0, 2, 4, 6, 8]
    assert log[-1]["elapsed_s"] >= first > 0
    assert all(a["elapsed_s"] <= b["elapsed_s"] for a, b in zip(log, log[1:]))


def test_a_run_with_other_settings_is_not_replaced_without_overwrite(data_dir, tmp_path):
    run(data_dir, tmp_path, "--max-iters=2", "--eval-interval=2")
    run(data_dir, tmp_path, "--max-iters=2", "--eval-interval=2")  # the same command again: allowed
    with pytest.raises(UserError, match="already holds a run with other settings \\(max_iters"):
        run(data_dir, tmp_path, "--max-iters=3", "--eval-interval=2")
    assert load_checkpoint(str(tmp_path / "ckpt.pt"))["iter_num"] == 2
    assert run(data_dir, tmp_path, "--max-iters=3", "--eval-interval=2", "--overwrite")["iter_num"] == 3


def test_continued_runs_default_to_a_folder_named_after_what_they_continue():
    assert train.continue_out_dir("out/base/ckpt.pt") == "out/continued-base"
    assert train.continue_out_dir("upscaled") == "out/continued-upscaled"
    assert train.continue_out_dir("out/hyper.pt") == "out/continued-hyper"
