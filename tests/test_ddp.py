"""
Multi-process training (DDP) on the CPU with the gloo backend: two processes
must end with identical weights, and match one process that accumulates the
same two micro-batches per step.

    python -m pytest -q tests/test_ddp.py
"""

import json
import os
import subprocess
import sys

import torch

import train
from checkpoint import load_checkpoint
from tests.conftest import REPO, TINY


def test_two_processes_match_one_process_with_gradient_accumulation(data_dir, tmp_path):
    flags = [f"--data-dir={data_dir}", *TINY, "--max-iters=12", "--eval-interval=6", "--eval-datasets=english,korean"]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", TQDM_DISABLE="1")
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "train.py", *flags, f"--out-dir={tmp_path / 'ddp'}"],
                         cwd=REPO, capture_output=True, text=True, timeout=3600, env=env)
    assert ddp.returncode == 0, ddp.stderr[:3000]  # the workers' own lines come before torchrun's traceback
    assert "2 process(es)" in ddp.stdout
    assert "weights identical on all 2 processes" in ddp.stdout

    train.main([*flags, "--grad-accum=2", f"--out-dir={tmp_path / 'one'}"])  # torchrun's default: 1 per process
    one = load_checkpoint(str(tmp_path / "one" / "ckpt.pt"))
    two = load_checkpoint(str(tmp_path / "ddp" / "ckpt.pt"))
    assert one["tokens_seen"] == two["tokens_seen"] == 12 * 2 * 8 * 32
    for name in one["model"]:  # same data, same math; only the order of float additions differs
        assert torch.allclose(one["model"][name], two["model"][name], atol=1e-5, rtol=0), name
    logs = [[json.loads(line) for line in open(tmp_path / d / "log.jsonl")] for d in ("one", "ddp")]
    assert [e["iter"] for e in logs[0]] == [e["iter"] for e in logs[1]] == [0, 6, 12]
    for a, b in zip(*logs):
        for name in ("english", "korean"):
            assert abs(a["loss"][name] - b["loss"][name]) < 1e-4
    assert logs[1][-1]["loss"]["english"] < logs[1][0]["loss"]["english"] - 0.05  # it did learn
