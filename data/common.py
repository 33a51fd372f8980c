"""
data/common.py — the prepared layout, data/<name>/{train.bin, val.bin, meta.json}, and the
command line every prepare script shares.

Place in the story: every dataset (English, Korean, ...) is prepared once by
its own `data/<name>/prepare.py`, which calls `prepare_main` (or `cli`) here:
the text comes through data/download.py, is tokenized by data/tokenizers.py
and written as uint16 token ids. train.py then memory-maps
`data/<name>/train.bin` and `val.bin` and reads `meta.json` to learn which
tokenizer made them.
"""

import hashlib
import json
import os
import sys

import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_DIR not in sys.path:  # prepare scripts run as `python data/<name>/prepare.py`
    sys.path.insert(0, REPO_DIR)
from data.download import fetch_deb, read_fortunes, sha256_of  # noqa: E402
from data.tokenizers import TOKENIZERS, get_tokenizer, read_nanogpt_meta, tokenizer_size  # noqa: E402
from plumbing.cli import UserError, check_number, parse_flags, parser, run_cli  # noqa: E402

DATA_DIR = os.path.join(REPO_DIR, "data")

# ----------------------------------------------------------------------------
# the prepared layout: data/<name>/{train.bin, val.bin, meta.json}


MADE_BY = {"bios": ["bios_a", "bios_b", "bios_b_ko"]}  # prepare scripts that write datasets of other names


def load_meta(name, data_dir=DATA_DIR):
    """meta.json of a prepared dataset (or what nanoGPT's meta.pkl says), or a UserError naming the
    prepare command."""
    d = os.path.join(data_dir, name)
    bins = all(os.path.isfile(os.path.join(d, f)) for f in ("train.bin", "val.bin"))
    if bins and not os.path.isfile(os.path.join(d, "meta.json")) and os.path.isfile(os.path.join(d, "meta.pkl")):
        tokenizer = read_nanogpt_meta(os.path.join(d, "meta.pkl"))  # a nanoGPT character-level dataset
        return dict(dataset=name, tokenizer=tokenizer, vocab_size=tokenizer_size(tokenizer), source="nanoGPT meta.pkl")
    if not all(os.path.isfile(os.path.join(d, f)) for f in ("meta.json", "train.bin", "val.bin")):
        if name in MADE_BY:  # a generator's folder, not a dataset: say which datasets it writes
            raise UserError(f"'{name}' is not a dataset: python data/{name}/prepare.py writes the datasets "
                            f"{', '.join(MADE_BY[name])}; use one of them, like --dataset={MADE_BY[name][0]}")
        if not os.path.isfile(os.path.join(DATA_DIR, name, "prepare.py")):  # bios_a is made by data/bios/prepare.py
            name = name.split("_")[0]
        if not os.path.isfile(os.path.join(DATA_DIR, name, "prepare.py")):
            known = sorted(n for n in os.listdir(DATA_DIR) if os.path.isfile(os.path.join(DATA_DIR, n, "prepare.py")))
            raise UserError(f"unknown dataset '{name}' (known: {', '.join(known)})")
        where = "" if os.path.samefile(data_dir, DATA_DIR) else f" --data-dir={data_dir}"
        raise UserError(f"dataset '{name}' is not prepared: run python data/{name}/prepare.py{where}")
    with open(os.path.join(d, "meta.json")) as f:
        return json.load(f)


def split_text(text, val_fraction):
    """Split at the first line break after (1 - val_fraction) of the text."""
    cut = text.find("\n", int(len(text) * (1 - val_fraction)))
    cut = len(text) if cut < 0 else cut + 1
    return text[:cut], text[cut:]


def write_dataset(name, text, tokenizer, source, val_fraction=0.1, data_dir=DATA_DIR, val_text=None):
    """Tokenize text and write <data_dir>/<name>/{train.bin, val.bin} (uint16 ids) and meta.json.

    The last val_fraction of the text is held out, unless val_text is given.
    """
    out_dir = os.path.join(data_dir, name)
    os.makedirs(out_dir, exist_ok=True)
    enc = get_tokenizer(tokenizer)
    meta = dict(dataset=name, tokenizer=tokenizer, vocab_size=enc.n_vocab, source=source,
                chars=len(text) + len(val_text or ""))
    parts = split_text(text, val_fraction) if val_text is None else (text, val_text)
    for split, part in zip(("train", "val"), parts):
        ids = np.array(enc.encode_ordinary(part), dtype=np.uint16)
        ids.tofile(os.path.join(out_dir, f"{split}.bin.tmp"))
        os.replace(os.path.join(out_dir, f"{split}.bin.tmp"), os.path.join(out_dir, f"{split}.bin"))
        meta[f"{split}_tokens"] = len(ids)
    with open(os.path.join(out_dir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, ensure_ascii=False)
    return meta


def read_input(path):
    """The user's own text (--input=FILE): a UTF-8 file, or every *.txt in a folder."""
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".txt"))
        if not files:
            raise UserError(f"--input folder {path} holds no .txt files")
    elif os.path.isfile(path):
        files = [path]
    else:
        raise UserError(f"--input {path} does not exist")
    try:
        return "\n\n".join(open(f, encoding="utf-8").read() for f in files)
    except UnicodeDecodeError as e:
        raise UserError(f"--input {path} is not UTF-8 text ({e.reason} at byte {e.start})")


def prepare_main(name, description, source_id, download_text, clean=lambda text: text):
    """The command line every data/<name>/prepare.py shares.

    download_text() -> str fetches and extracts the default corpus; clean(text)
    is applied to it and to --input text alike. Re-running with the same source
    and tokenizer does nothing (use --force to rebuild).
    """
    p = parser(f"data/{name}/prepare.py", description)
    p.add_argument("--tokenizer", default="bytes", choices=TOKENIZERS,
                        help="bytes: 256 UTF-8 byte ids (fast on CPU); gpt2: GPT-2's BPE (default: bytes)")
    p.add_argument("--input", default=None, metavar="FILE",
                        help="use this UTF-8 text file (or folder of .txt files) instead of the default corpus")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of the text held out for validation")
    p.add_argument("--force", action="store_true", help="rebuild even if the data is already prepared")
    p.add_argument("--data-dir", default=DATA_DIR, help="write <data-dir>/%s/ (default: this data/ folder)" % name)
    args = parse_flags(p)
    check_number("val_fraction", args.val_fraction, 0, 1, low_open=True)
    if args.val_fraction >= 1:
        raise UserError(f"--val-fraction={args.val_fraction:g} leaves no training text: use a number between 0 and 1, like 0.1")
    user_text = read_input(args.input) if args.input else None
    if user_text is not None:
        source_id = "input sha256:" + hashlib.sha256(user_text.encode()).hexdigest()[:16]
    # a changed prepare.py (say, new cleaning rules) must not be mistaken for "already prepared"
    source_id += " / prepare.py sha256:" + sha256_of(sys.modules["__main__"].__file__)[:12]
    out_dir = os.path.join(args.data_dir, name)
    meta_path = os.path.join(out_dir, "meta.json")
    if not args.force and os.path.isfile(meta_path) and os.path.isfile(os.path.join(out_dir, "val.bin")):
        with open(meta_path) as f:
            meta = json.load(f)
        if meta.get("source") == source_id and meta.get("tokenizer") == args.tokenizer:
            print(f"{out_dir} is already prepared ({args.tokenizer}, {meta['train_tokens']:,} train tokens); "
                  "--force rebuilds it")
            return
    text = clean(user_text if user_text is not None else download_text())
    if len(text.strip()) == 0:
        raise UserError("the text is empty after cleaning")
    meta = write_dataset(name, text, args.tokenizer, source_id, args.val_fraction, args.data_dir)
    print(f"{out_dir}: {meta['chars']:,} characters -> {meta['train_tokens']:,} train and "
          f"{meta['val_tokens']:,} val tokens ({args.tokenizer} tokenizer)")


def cli(name, description, source_id, download_text, clean=lambda text: text):
    run_cli(lambda: prepare_main(name, description, source_id, download_text, clean))


def fortune_cli(name, language, package, folder):
    """data/<name>/prepare.py for a Debian `fortune` collection: package = (pool path, sha256),
    folder = where its fortune files sit inside the package."""
    pool_path, sha256 = package
    deb = pool_path.rsplit("/", 1)[-1].split("_")[0]  # e.g. fortunes-de

    def download_text():
        return read_fortunes(fetch_deb(pool_path, sha256, hint=f"pass your own {language} text with --input=FILE"),
                             folder)
    cli(name, f"Prepare {language} ({deb}) as data/{name}/{{train,val}}.bin.", source_id=f"debian:{deb}",
        download_text=download_text)
