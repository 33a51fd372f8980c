"""
The pictures tell the truth: what a figure labels 0 is zero, W is the base's block, W/n is it divided
by n, frozen is the base's tensor and, after training, unchanged; a merge's steps end in the merge
merge.py makes. The data behind each picture is checked, not its pixels.

    python -m pytest -q tests/test_draw.py
"""

import os

import pytest
import torch
from matplotlib.image import imread

import draw
import merge
import scale
from tests.conftest import REPO, TINY, run_script
from tests.test_scale import base_checkpoint

EXPECTED = {  # labels each growth must show on the block it draws (a subset: the ones that define it)
    "depth": {"attn.c_proj.weight": {"0"}, "mlp.c_proj.weight": {"0"}, "mlp.c_fc.weight": {"W"}},
    "solar": {"attn.c_proj.weight": {"W"}},
    "hyperclone": {"mlp.c_fc.weight": {"W/2 ± N"}, "ln_1.bias": {"W"}},
    "hyperclone-noiseless": {"attn.c_attn.weight": {"W/2"}, "mlp.c_proj.weight": {"W/2"}, "lm_head.weight": {"W/2"}},
    "ffn": {"mlp.c_fc.weight": {"W, frozen", "W21: new"}, "mlp.c_proj.weight": {"W, frozen", "W12: 0"}},
    "preserve": {"attn.c_attn.weight": {"W, frozen", "W12: 0", "W21: new", "W22: new"},
                 "lm_head.weight": {"W", "new stream: 0"}},  # the second head starts at 0
    "adapt": {"mlp.c_fc.weight": {"W, frozen", "W12: 0", "W21: new", "W22: new"}},
    "route": {"attn.c_proj.weight": {"W, frozen", "W12: 0", "W21: new", "W22: new"}, "router.weight": {"0"}},
}


def check_cells(lay, frozen_base):
    """Every label against the numbers it stands for."""
    for label, where, twin in lay["cells"].values():
        cell = lay["matrix"][where]
        kind = label.split(": ")[-1]
        if kind == "0":
            assert not cell.any(), label
        elif kind.startswith("W/") and "±" not in kind:
            n = int(kind[2:])
            assert torch.allclose(cell.double() * n, twin.double(), atol=1e-6), label
        elif kind in ("W", "W, frozen"):
            assert torch.equal(cell, twin), label
        if "frozen" in kind:
            assert frozen_base and torch.equal(cell, twin), label


@pytest.mark.parametrize("recipe", list(scale.RECIPES))
def test_every_growth_is_drawn_with_labels_its_numbers_bear_out(recipe, tmp_path):
    ckpt = base_checkpoint()
    margs, sd, frozen_names = scale.grow(ckpt, **scale.RECIPES[recipe])
    grown = scale.build(margs, sd)
    spec = scale.frozen_spec(grown, frozen_names, ckpt["seen_tokens"], True)
    path = str(tmp_path / "growth.png")
    lays = draw.draw_growth(ckpt["model"], grown.state_dict(), path, recipe, frozen=spec)
    width = imread(path).shape[1]
    assert 500 < width <= 1000  # readable at the README's width
    for name, lay in lays.items():
        check_cells(lay, frozen_base=spec.get(name) is True)
        short = name.split(".", 3)[3] if name.startswith("transformer.h.") else name
        labels = {c[0] for c in lay["cells"].values()}
        assert EXPECTED[recipe].get(short, labels) == labels, (short, labels)


def test_a_broken_growth_is_drawn_as_broken():
    """A HyperClone whose copies were not divided is labelled W, not W/2: the picture shows the mistake."""
    ckpt = base_checkpoint()
    margs, sd, _ = scale.grow(ckpt, method="hyperclone", noise=0)
    name = "transformer.h.0.mlp.c_fc.weight"
    sd[name] = sd[name] * 2
    lay = draw.layout(ckpt["model"], sd, name)
    assert {c[0] for c in lay["cells"].values()} == {"W"}


def test_scale_draws_and_training_moves_only_what_is_not_frozen(tmp_path, data_dir):
    """scale.py --draw writes the figure; after training, draw.py labels the frozen base 'unchanged' and
    the new stream 'moved'."""
    import train
    out = tmp_path / "base"
    train.main(TINY + [f"--data-dir={data_dir}", f"--out-dir={out}", "--max-iters=2"])
    grown, picture = tmp_path / "grown.pt", tmp_path / "grown.png"
    scale.main(["--method=scale", f"--in={out / 'ckpt.pt'}", f"--out={grown}", f"--draw={picture}"])
    assert os.path.getsize(picture) > 10_000
    flags = [f for f in TINY if not f.startswith(("--n-", "--block"))]
    train.main(flags + [f"--init-from={grown}", f"--data-dir={data_dir}", f"--out-dir={tmp_path / 'ko'}",
                        "--dataset=korean", "--max-iters=3", "--learning-rate=1e-2"])
    r = run_script("draw.py", f"--before={grown}", f"--after={tmp_path / 'ko' / 'ckpt.pt'}",
                   f"--out={tmp_path / 'trained.png'}")
    assert r.returncode == 0 and "drew" in r.stdout, r.stderr
    before = torch.load(grown, weights_only=True)
    after = torch.load(tmp_path / "ko" / "ckpt.pt", weights_only=True)
    lay = draw.layout(before["model"], after["model"], "transformer.h.0.mlp.c_fc.weight", after["frozen"],
                      trained=True)
    labels = {c[0] for c in lay["cells"].values()}
    assert "W: frozen, unchanged" in labels and "W22: moved" in labels, labels
    for label, where, twin in lay["cells"].values():
        assert ("unchanged" in label) == torch.equal(lay["matrix"][where], twin)


@pytest.mark.parametrize("method", list(merge.METHODS))
def test_a_merges_steps_end_in_the_merge_merge_py_makes(method, tmp_path):
    g = torch.Generator().manual_seed(0)
    base = {"a": torch.randn(30, 30, generator=g), "b": torch.randn(40, 30, generator=g) * 0.05}
    models = [{k: v + torch.randn(v.shape, generator=g) * 0.01 for k, v in base.items()} for _ in range(3)]
    rows = merge.merge_steps(base, models, "b", method, density=0.4, lam=0.8, seed=3, names=["a", "b"])
    merged = merge.merge_state_dicts(base, models, method, density=0.4, lam=0.8, seed=3, names=["a", "b"])["b"]
    assert rows[0][1][-1][0] == "merged θ" and torch.equal(rows[0][1][-1][1], merged[:24, :24])
    titles = [what for what, _ in rows]
    assert ("sign election" in titles) == ("ties" in method) and ("rescaled" in titles) == method.startswith("dare")
    for what, panels in rows:  # a drop mask keeps about `density` of the entries
        if what.startswith("DARE"):
            assert all(abs(mask.float().mean().item() - 0.4) < 0.15 for _, mask in panels)
    draw.draw_steps(rows, str(tmp_path / "merge.png"), method)
    assert imread(str(tmp_path / "merge.png")).shape[1] <= 1000


@pytest.mark.parametrize("exercise", ["3", "4", "5"])
def test_the_exercise_checker_draws_a_students_broken_growth(tmp_path, exercise):
    r = run_script(os.path.join(REPO, "exercises/check.py"), exercise, "--reference", f"--draw={tmp_path / 'ex.png'}")
    assert r.returncode == 0 and "drew" in r.stdout, r.stdout + r.stderr
    assert os.path.getsize(tmp_path / "ex.png") > 10_000
