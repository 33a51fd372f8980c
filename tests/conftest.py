"""
Shared test fixtures. Tests run on the CPU, never touch the network, and build
their own tiny datasets in a temporary folder.

    python -m pytest -q tests
"""

import os
from dataclasses import asdict
import random
import subprocess
import sys

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from data.common import write_dataset  # noqa: E402
from model_scale import new_model  # noqa: E402

# a tiny model and short evaluations: every training test runs in seconds
TINY = ["--n-layer=2", "--n-head=2", "--n-embd=32", "--block-size=32", "--batch-size=8",
        "--eval-iters=2", "--sample-tokens=0", "--dtype=float32", "--device=cpu", "--threads=1"]


def synthetic_english(n_sentences, seed=0):
    """Short sentences from a small grammar: easy to learn, so a loss drop shows quickly."""
    rng = random.Random(seed)
    subjects = ["the king", "a fool", "my lord", "the queen", "our friend", "this knight"]
    verbs = ["speaks to", "loves", "fears", "follows", "betrays", "greets"]
    objects = ["the ghost", "his brother", "the crown", "her father", "a stranger", "the moon"]
    return "".join(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}.\n"
                   for _ in range(n_sentences))


def synthetic_korean(n_sentences, seed=0):
    rng = random.Random(seed)
    words = ["파일을", "열고", "저장합니다", "문서", "편집기에서", "선택한", "다음", "클릭합니다", "도구"]
    return "".join(" ".join(rng.choice(words) for _ in range(5)) + ".\n" for _ in range(n_sentences))


def synthetic_german(n_sentences, seed=0):
    rng = random.Random(seed)
    words = ["der", "Hund", "sieht", "die", "Katze", "und", "läuft", "nach", "Hause"]
    return "".join(" ".join(rng.choice(words) for _ in range(6)) + ".\n" for _ in range(n_sentences))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A data folder with tiny 'english' and 'korean' datasets (byte tokenizer)."""
    d = str(tmp_path_factory.mktemp("data"))
    write_dataset("english", synthetic_english(3000), "bytes", "test", data_dir=d)
    write_dataset("korean", synthetic_korean(1500), "bytes", "test", data_dir=d)
    return d


def run_script(*args, timeout=3600, cwd=REPO, **kwargs):
    """Run a project script as a user would; returns the CompletedProcess."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def trained_a_little(config, steps=5, seed=0):
    """A model whose weights are not the symmetric fresh init (random biases and LN too)."""
    torch.manual_seed(seed)
    model = new_model(asdict(config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(steps):
        idx = torch.randint(config.vocab_size, (4, config.block_size))
        _, loss = model(idx, idx)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model
