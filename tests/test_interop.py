"""
Bring your own GPT, take the grown one anywhere: nanoGPT checkpoints and Hugging Face GPT-2
folders load, grow and keep their logits; every GPT-2-shaped model exports to a folder that an
independent reader (Conv1D layout, GPT-2 written out by hand in test_model.py) runs to the same
logits; what cannot be exported or read says so in one line. No network.

    python -m pytest -q tests/test_interop.py
"""

import json
import os
import pickle
from dataclasses import asdict

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from tools import export
import scale
from checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from data.tokenizers import read_nanogpt_meta
from model import GPTConfig
from tests.conftest import trained_a_little
from tests.test_model import naive_gpt2
from plumbing.cli import UserError


def nanogpt_checkpoint(path, vocab_size=50304, compiled=True, dataset="openwebtext"):
    """What nanoGPT's train.py writes to out/ckpt.pt (a torch.compile'd model has "_orig_mod." prefixes)."""
    config = GPTConfig(block_size=16, vocab_size=vocab_size, n_layer=4, n_head=2, n_embd=16)
    model = trained_a_little(config, steps=2)
    sd = {("_orig_mod." if compiled else "") + k: v for k, v in model.state_dict().items()}
    model_args = dict(n_layer=4, n_head=2, n_embd=16, block_size=16, bias=True, vocab_size=vocab_size, dropout=0.0)
    torch.save({"model": sd, "optimizer": {}, "model_args": model_args, "iter_num": 100, "best_val_loss": 3.2,
                "config": {"dataset": dataset, "batch_size": 12}}, path)
    return model.eval()


@pytest.mark.parametrize("recipe", sorted(scale.RECIPES))
def test_a_nanogpt_checkpoint_grows_with_every_method_and_keeps_its_logits(recipe, tmp_path):
    path = str(tmp_path / "ckpt.pt")
    original = nanogpt_checkpoint(path)
    ckpt = load_checkpoint(path)
    assert ckpt["tokenizer"] == "gpt2" and ckpt["history"][0]["format"] == "nanoGPT"
    idx = torch.randint(50257, (2, 16))
    assert torch.equal(model_from_checkpoint(ckpt).eval()(idx)[0], original(idx)[0])
    options = dict(scale.RECIPES[recipe], noise=0.0)  # noise keeps the function only to float32 rounding
    margs, sd, _ = scale.grow(dict(ckpt, model={k: v.double() for k, v in ckpt["model"].items()}), **options)
    grown = scale.build(margs, sd, torch.float64).eval()
    gap = (grown(idx)[0] - original.double()(idx)[0]).abs().max().item()
    assert (gap < 1e-9) == (recipe != "solar"), gap  # SOLAR is the one that does not preserve


SHAKESPEARE = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 30


def nanogpt_char_run(root):
    """nanoGPT's shakespeare_char layout: data/shakespeare_char/ with train.bin, val.bin and meta.pkl as
    its prepare.py writes them, and out-shakespeare-char/ckpt.pt trained on it. Returns (ckpt path, model)."""
    chars = sorted(set(SHAKESPEARE))
    stoi, itos = {c: i for i, c in enumerate(chars)}, {i: c for i, c in enumerate(chars)}
    data = root / "data" / "shakespeare_char"
    data.mkdir(parents=True)
    ids = np.array([stoi[c] for c in SHAKESPEARE], dtype=np.uint16)
    ids[: len(ids) * 9 // 10].tofile(data / "train.bin")
    ids[len(ids) * 9 // 10:].tofile(data / "val.bin")
    with open(data / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": itos, "stoi": stoi}, f)
    (root / "out-shakespeare-char").mkdir()
    path = str(root / "out-shakespeare-char" / "ckpt.pt")
    return path, nanogpt_checkpoint(path, vocab_size=len(chars), dataset="shakespeare_char")


def test_a_character_level_nanogpt_model_is_grown_continued_and_sampled(tmp_path):
    """The tokenizer comes from nanoGPT's own meta.pkl; the grown model keeps the logits, continues on
    nanoGPT's own data folder, and samples Shakespeare's characters."""
    import train
    from sample import sample_text
    path, original = nanogpt_char_run(tmp_path)
    ckpt = load_checkpoint(path)
    assert ckpt["tokenizer"] == "char:" + "".join(sorted(set(SHAKESPEARE)))
    idx = torch.randint(len(set(SHAKESPEARE)), (2, 16))
    for recipe in scale.RECIPES:  # every growth keeps the logits, SOLAR excepted (it is the one that does not)
        margs, sd, _ = scale.grow(dict(ckpt, model={k: v.double() for k, v in ckpt["model"].items()}),
                                  **dict(scale.RECIPES[recipe], noise=0.0))
        gap = (scale.build(margs, sd, torch.float64).eval()(idx)[0] - original.double()(idx)[0]).abs().max().item()
        assert (gap < 1e-9) == (recipe != "solar"), (recipe, gap)
    grown = str(tmp_path / "grown.pt")
    scale.main(["--method=hyperclone", f"--in={path}", f"--out={grown}"])
    train.main([f"--init-from={grown}", "--dataset=shakespeare_char", "--eval-datasets=shakespeare_char",
                f"--data-dir={tmp_path / 'data'}", f"--out-dir={tmp_path / 'continued'}", "--batch-size=2",
                "--eval-iters=1", "--max-iters=2", "--eval-interval=2", "--sample-tokens=0", "--device=cpu",
                "--threads=1"])
    continued = load_checkpoint(str(tmp_path / "continued" / "ckpt.pt"))
    assert continued["tokenizer"] == ckpt["tokenizer"] and continued["iter_num"] == 2
    text = sample_text(model_from_checkpoint(continued), continued["tokenizer"], "All:", 30)
    assert text.startswith("All:") and set(text) <= set(SHAKESPEARE)
    import merge
    merge.main(["--method=ties", f"--base={grown}", f"--models={tmp_path / 'continued' / 'ckpt.pt'},{grown}",
                f"--out={tmp_path / 'merged.pt'}"])
    export.export(str(tmp_path / "merged.pt"), str(tmp_path / "hf"))
    back = load_checkpoint(str(tmp_path / "hf"))
    assert back["tokenizer"] == ckpt["tokenizer"]  # the characters travel in config.json


def test_the_tokenizer_flag_and_what_a_checkpoint_cannot_say(tmp_path):
    path, _ = nanogpt_char_run(tmp_path)
    os.rename(tmp_path / "data", tmp_path / "elsewhere")  # nanoGPT's meta.pkl is not beside the checkpoint
    with pytest.raises(UserError, match="no meta.pkl at .*pass --tokenizer=PATH/meta.pkl"):
        load_checkpoint(path)
    meta = str(tmp_path / "elsewhere" / "shakespeare_char" / "meta.pkl")
    assert load_checkpoint(path, tokenizer=meta)["tokenizer"].startswith("char:")
    with pytest.raises(UserError, match=r"50,257 ids but the model only \d+"):
        load_checkpoint(path, tokenizer="gpt2")
    config = GPTConfig(block_size=16, vocab_size=256, n_layer=1, n_head=2, n_embd=16)
    torch.save({"model": trained_a_little(config).state_dict(), "model_args": asdict(config)}, tmp_path / "plain.pt")
    with pytest.raises(UserError, match="does not say which tokenizer.*--tokenizer=bytes"):
        load_checkpoint(str(tmp_path / "plain.pt"))
    assert load_checkpoint(str(tmp_path / "plain.pt"), tokenizer="bytes")["tokenizer"] == "bytes"
    with pytest.raises(UserError, match="--tokenizer=words: use bytes, gpt2, or the path"):
        load_checkpoint(str(tmp_path / "plain.pt"), tokenizer="words")


class Boom:
    def __reduce__(self):  # what a malicious pickle does: call a function while loading
        return (os.system, ("touch PWNED",))


def test_a_meta_pkl_that_carries_code_is_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": 2, "itos": {0: "a", 1: Boom()}}, f)
    with pytest.raises(UserError, match="names posix.system: only plain data is read from a meta.pkl, no code runs"):
        read_nanogpt_meta(str(tmp_path / "meta.pkl"))
    assert not (tmp_path / "PWNED").exists()
    with open(tmp_path / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": 2, "itos": {0: "a", 1: "bc"}}, f)
    with pytest.raises(UserError, match="is not 2 distinct single characters"):
        read_nanogpt_meta(str(tmp_path / "meta.pkl"))


def read_folder(folder, idx):
    """An independent reader: config.json and model.safetensors in GPT2LMHeadModel's layout -> logits."""
    config = json.load(open(os.path.join(folder, "config.json")))
    sd = {k.removeprefix("transformer."): v.double() for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
    if config["tie_word_embeddings"]:
        assert "lm_head.weight" not in sd
        sd["lm_head.weight"] = sd["wte.weight"]
    return naive_gpt2(sd, idx, config["n_layer"], config["n_head"])


@pytest.mark.parametrize("recipe", ["base", "no-bias", "depth", "solar", "hyperclone", "ffn"])
def test_every_gpt2_shaped_model_exports_to_the_same_logits(recipe, tmp_path):
    config = GPTConfig(block_size=16, vocab_size=256, n_layer=4, n_head=2, n_embd=16, bias=recipe != "no-bias")
    base = trained_a_little(config)
    ckpt = {"model": base.state_dict(), "model_args": asdict(config), "tokenizer": "bytes"}
    if recipe in scale.RECIPES:
        margs, sd, _ = scale.grow(ckpt, **scale.RECIPES[recipe])
        with torch.no_grad():  # train-like changes, so that zero-initialised parts are not zero any more
            sd = {k: v + 0.01 * torch.randn_like(v) for k, v in scale.tie_head(sd, margs).items()}
        ckpt = {"model": scale.build(margs, sd).state_dict(), "model_args": margs, "tokenizer": "bytes"}
    save_checkpoint(ckpt, str(tmp_path / "m.pt"))
    written, _ = export.export(str(tmp_path / "m.pt"), str(tmp_path / "hf"))
    assert written == ["config.json", "model.safetensors"]
    idx = torch.randint(256, (2, 16))
    ours = model_from_checkpoint(ckpt).double().eval()(idx)[0]
    assert (read_folder(str(tmp_path / "hf"), idx) - ours).abs().max().item() < 1e-5
    back = load_checkpoint(str(tmp_path / "hf"))  # and in again, with the tokenizer config.json names
    assert back["tokenizer"] == "bytes"
    assert (model_from_checkpoint(back).double().eval()(idx)[0] - ours).abs().max().item() < 1e-5


def test_what_cannot_be_exported_or_read_says_so_in_one_line(tmp_path):
    config = GPTConfig(block_size=16, vocab_size=256, n_layer=1, n_head=2, n_embd=16)
    ckpt = {"model": trained_a_little(config).state_dict(), "model_args": asdict(config), "tokenizer": "bytes"}
    margs, sd, _ = scale.grow(ckpt, method="scale")
    save_checkpoint({"model": scale.build(margs, sd).state_dict(), "model_args": margs, "tokenizer": "bytes"},
                    str(tmp_path / "s.pt"))
    with pytest.raises(UserError, match="SCALE two-stream model"):
        export.export(str(tmp_path / "s.pt"), str(tmp_path / "x"))
    save_checkpoint(ckpt, str(tmp_path / "m.pt"))
    folder = str(tmp_path / "hf")
    export.export(str(tmp_path / "m.pt"), folder)
    config = json.load(open(os.path.join(folder, "config.json")))
    json.dump({k: v for k, v in config.items() if k != "tokenizer"}, open(os.path.join(folder, "config.json"), "w"))
    with pytest.raises(UserError, match="gpt2 tokenizer has 50,257 ids but the model only 256"):
        load_checkpoint(folder)  # a folder from elsewhere: GPT-2's tokenizer is assumed; 256 rows cannot hold it
    assert load_checkpoint(folder, tokenizer="bytes")["tokenizer"] == "bytes"
    json.dump(config, open(os.path.join(folder, "config.json"), "w"))
    weights = load_file(os.path.join(folder, "model.safetensors"))
    os.remove(os.path.join(folder, "model.safetensors"))
    with pytest.raises(UserError, match="no model.safetensors or pytorch_model.bin"):
        load_checkpoint(folder)
    weights["transformer.h.0.mlp.c_fc.weight"] = weights["transformer.h.0.mlp.c_fc.weight"][:, :10].contiguous()
    save_file(weights, os.path.join(folder, "model.safetensors"))
    with pytest.raises(UserError, match="do not match"):
        model_from_checkpoint(load_checkpoint(folder))
    json.dump({"model_type": "llama"}, open(os.path.join(folder, "config.json"), "w"))
    with pytest.raises(UserError, match="only GPT-2 folders"):
        load_checkpoint(folder)


def test_a_nanogpt_checkpoint_is_continued_and_merged_with_the_projects_commands(tmp_path):
    """nanoGPT's GPT-2-vocabulary model, continued on two tiny GPT-2-tokenized datasets and merged
    against it: the continued models are recognised as its descendants."""
    import merge
    import train
    from data.common import write_dataset
    from tests.conftest import synthetic_english, synthetic_german
    data = str(tmp_path / "data")
    write_dataset("en", synthetic_english(300), "gpt2", "test", data_dir=data)
    write_dataset("de", synthetic_german(300), "gpt2", "test", data_dir=data)
    nano = str(tmp_path / "ckpt.pt")
    nanogpt_checkpoint(nano)
    flags = [f"--data-dir={data}", "--batch-size=2", "--eval-iters=1", "--sample-tokens=0", "--dtype=float32",
             "--device=cpu", "--threads=1", "--max-iters=2", "--eval-interval=2", f"--init-from={nano}"]
    for lang in ("en", "de"):
        train.main(flags + [f"--dataset={lang}", f"--eval-datasets={lang}", f"--out-dir={tmp_path / lang}"])
    merge.main(["--method=ties", f"--base={nano}", f"--models={tmp_path / 'en' / 'ckpt.pt'},{tmp_path / 'de' / 'ckpt.pt'}",
                f"--out={tmp_path / 'merged.pt'}"])
    merged = load_checkpoint(str(tmp_path / "merged.pt"))
    assert merged["tokenizer"] == "gpt2" and merged["model_args"]["vocab_size"] == 50304
    assert [h["stage"] for h in merged["history"]] == ["import", "merge"]


def test_a_hugging_face_folder_is_grown_continued_and_merged_with_the_projects_commands(tmp_path):
    """A GPT-2 folder (here exported from a tiny bytes model) is an ordinary starting point for scale.py,
    train.py and merge.py, and what they make exports again."""
    import merge
    import train
    from data.common import write_dataset
    from tests.conftest import synthetic_english
    data = str(tmp_path / "data")
    write_dataset("en", synthetic_english(300), "bytes", "test", data_dir=data)
    config = GPTConfig(block_size=16, vocab_size=256, n_layer=2, n_head=2, n_embd=16)
    save_checkpoint({"model": trained_a_little(config).state_dict(), "model_args": asdict(config),
                     "tokenizer": "bytes"}, str(tmp_path / "m.pt"))
    folder = str(tmp_path / "hf")
    export.export(str(tmp_path / "m.pt"), folder)
    scale.main(["--method=depth", f"--in={folder}", f"--out={tmp_path / 'deep.pt'}"])
    flags = [f"--data-dir={data}", "--dataset=en", "--eval-datasets=en", "--batch-size=2", "--eval-iters=1",
             "--sample-tokens=0", "--device=cpu", "--threads=1", "--max-iters=2", "--eval-interval=2"]
    for seed in (1, 2):
        train.main(flags + [f"--init-from={folder}", f"--seed={seed}", f"--out-dir={tmp_path / f'c{seed}'}"])
    merge.main(["--method=ties", f"--base={folder}", f"--models={tmp_path / 'c1' / 'ckpt.pt'},{tmp_path / 'c2' / 'ckpt.pt'}",
                f"--out={tmp_path / 'merged.pt'}"])
    merged, deep = load_checkpoint(str(tmp_path / "merged.pt")), load_checkpoint(str(tmp_path / "deep.pt"))
    assert merged["tokenizer"] == deep["tokenizer"] == "bytes" and deep["model_args"]["n_layer"] == 4
    assert [h["stage"] for h in merged["history"]] == ["import", "merge"]
    export.export(str(tmp_path / "merged.pt"), str(tmp_path / "hf2"))
    assert load_checkpoint(str(tmp_path / "hf2"))["tokenizer"] == "bytes"


def test_init_from_gpt2_without_the_hub_says_what_to_download(monkeypatch, tmp_path):
    """--init-from=gpt2 downloads through the optional huggingface_hub; without it (or without a
    network) one line says which files to fetch and where to pass them."""
    import sys
    from plumbing import rundir
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # not installed: importing it fails
    monkeypatch.chdir(tmp_path)  # no folder named gpt2-medium here
    with pytest.raises(UserError, match=r"--init-from=gpt2-medium needs Hugging Face's gpt2-medium weights "
                                        r"\(ModuleNotFoundError\): download config.json and model.safetensors from "
                                        r"https://huggingface.co/openai-community/gpt2-medium"):
        rundir.init_path(type("Args", (), {"init_from": "gpt2-medium", "out_dir": None})())
