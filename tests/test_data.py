"""
Tokenizers, the prepared layout, checked downloads and the cleaning of each corpus.
No network: downloads are exercised with file:// URLs and a .deb built here.

    python -m pytest -q tests/test_data.py
"""

import hashlib
import io
import json
import os
import tarfile
import urllib.request

import numpy as np
import pytest

import data.download as download
from data.common import load_meta, split_text, write_dataset
from data.download import deb_files, fetch, fortune_entries, read_fortunes
from data.tokenizers import get_tokenizer
from data.english.prepare import strip_gutenberg
from data.korean.prepare import clean_lines, html_lines, mallard_lines
from tests.conftest import run_script
from plumbing.cli import UserError

SAMPLES = ["Hello world", "To be, or not to be: that is the question.\n", "파일을 저장합니다. 한국어!", "emoji 🎭 and tabs\t"]


@pytest.mark.parametrize("name", ["bytes", "gpt2"])
def test_tokenizers_round_trip(name):
    enc = get_tokenizer(name)
    for text in SAMPLES:
        ids = enc.encode_ordinary(text)
        assert enc.decode(ids) == text
        assert all(0 <= i < enc.n_vocab for i in ids)


def test_gpt2_tokenizer_is_gpt2s_without_the_network():
    enc = get_tokenizer("gpt2")
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    assert enc.n_vocab == 50257
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]


def test_byte_tokenizer_is_utf8():
    enc = get_tokenizer("bytes")
    assert enc.n_vocab == 256
    assert enc.encode_ordinary("한") == list("한".encode("utf-8"))
    with pytest.raises(UserError, match="unknown tokenizer"):
        get_tokenizer("sentencepiece")


def test_split_text_cuts_at_a_line_break():
    text = "".join(f"line {i}\n" for i in range(100))
    train, val = split_text(text, 0.1)
    assert train + val == text and train.endswith("\n") and val.startswith("line ")
    assert 0.05 < len(val) / len(text) < 0.15


def test_write_dataset_layout(tmp_path):
    meta = write_dataset("toy", "abc\n" * 500 + "한국어\n" * 50, "bytes", "test", data_dir=str(tmp_path))
    train = np.fromfile(tmp_path / "toy" / "train.bin", dtype=np.uint16)
    val = np.fromfile(tmp_path / "toy" / "val.bin", dtype=np.uint16)
    assert len(train) == meta["train_tokens"] and len(val) == meta["val_tokens"]
    assert bytes(np.concatenate([train, val]).astype(np.uint8)).decode() == "abc\n" * 500 + "한국어\n" * 50
    assert load_meta("toy", str(tmp_path)) == json.load(open(tmp_path / "toy" / "meta.json"))
    assert meta["tokenizer"] == "bytes" and meta["vocab_size"] == 256


def test_missing_datasets_name_the_fix(tmp_path):
    with pytest.raises(UserError, match=r"not prepared: run python data/korean/prepare.py --data-dir="):
        load_meta("korean", str(tmp_path))
    with pytest.raises(UserError, match=r"unknown dataset 'klingon' \(known: .*english.*korean"):
        load_meta("klingon", str(tmp_path))


def test_fetch_checks_the_sha256(tmp_path, monkeypatch):
    monkeypatch.setattr(download, "CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "corpus.txt"
    src.write_bytes(b"some text")
    good = hashlib.sha256(b"some text").hexdigest()
    url = "file://" + urllib.request.pathname2url(str(src))
    path = fetch(url, good, hint="use --input")
    assert open(path, "rb").read() == b"some text"
    assert fetch(url, good, hint="use --input") == path  # cached: no second download
    with pytest.raises(UserError, match="expected"):
        fetch(url, "0" * 64, hint="use --input", filename="other.txt")
    assert not os.path.exists(tmp_path / "cache" / "other.txt")
    with pytest.raises(UserError, match=r"could not download .*; use --input=FILE"):
        fetch(url + ".missing", good, hint="use --input=FILE")


def make_deb(path, files):
    """A minimal Debian package: an ar archive holding debian-binary and data.tar.xz."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:xz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    members = [("debian-binary", b"2.0\n"), ("data.tar.xz", buf.getvalue())]
    with open(path, "wb") as f:
        f.write(b"!<arch>\n")
        for name, payload in members:
            f.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(payload):<10}`\n".encode())
            f.write(payload + (b"\n" if len(payload) % 2 else b""))


def test_deb_files_reads_a_package_without_dpkg(tmp_path):
    make_deb(tmp_path / "x.deb", {"usr/share/help/ko/a.page": b"<page/>", "usr/share/doc/x": b"doc",
                                  "usr/share/help/ko/b.page": b"odd-sized!"})
    found = dict(deb_files(str(tmp_path / "x.deb"), "usr/share/help/ko/"))
    assert found == {"usr/share/help/ko/a.page": b"<page/>", "usr/share/help/ko/b.page": b"odd-sized!"}
    (tmp_path / "not.deb").write_bytes(b"PK\x03\x04zip")
    with pytest.raises(UserError, match="not a Debian package"):
        list(deb_files(str(tmp_path / "not.deb"), ""))


def test_strip_gutenberg_keeps_only_the_text():
    raw = ("The Project Gutenberg EBook of Hamlet\r\nlicence blah\r\n"
           "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\n\r\nACT I.\r\nWho's there?\r\n"
           "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\r\nmore licence\r\n")
    assert strip_gutenberg(raw) == "ACT I.\nWho's there?\n"
    assert strip_gutenberg("no markers here\n") == "no markers here\n"


def test_korean_cleaning_keeps_korean_lines_once():
    html = ("<html><head><title>제목</title><script>var x = '스크립트';</script></head><body>"
            "<header>LibreOffice 7.4 Help</header><p>파일을 <b>저장</b>합니다.</p><p>Choose Tools - Options</p>"
            "<h1>관련 주제</h1><p>관련 주제</p><p>도구 - 옵션 - LibreOffice Writer 를 선택합니다.</p></body></html>")
    lines = html_lines(html)
    assert "파일을 저장합니다." in lines and not any("스크립트" in l or "제목" in l for l in lines)
    kept = clean_lines(lines)
    assert kept == ["파일을 저장합니다.", "관련 주제", "도구 - 옵션 - LibreOffice Writer 를 선택합니다."]
    page = ('<page xmlns="http://projectmallard.org/1.0/"><info><credit><name>홍길동</name></credit>'
            '<desc>항목을 복사합니다.</desc></info><title>파일 복사</title><p>끌어다 <gui>놓기</gui>.</p></page>')
    assert mallard_lines(page.encode()) == ["항목을 복사합니다.", "파일 복사", "끌어다 놓기."]


def test_prepare_script_with_input_is_idempotent(tmp_path):
    text = tmp_path / "mine.txt"
    text.write_text("*** START OF THE PROJECT GUTENBERG EBOOK X ***\nTo be or not to be.\n" * 200 +
                    "*** END OF THE PROJECT GUTENBERG EBOOK X ***\nlicence\n")
    first = run_script("data/english/prepare.py", f"--input={text}", f"--data-dir={tmp_path}")
    assert first.returncode == 0, first.stderr
    assert "train" in first.stdout and "val tokens" in first.stdout
    assert "licence" not in open(tmp_path / "english" / "train.bin", "rb").read().decode("latin-1")
    again = run_script("data/english/prepare.py", f"--input={text}", f"--data-dir={tmp_path}")
    assert again.returncode == 0 and "already prepared" in again.stdout
    other = run_script("data/english/prepare.py", f"--input={text}", f"--data-dir={tmp_path}", "--tokenizer=gpt2")
    assert other.returncode == 0 and "gpt2 tokenizer" in other.stdout
    assert load_meta("english", str(tmp_path))["vocab_size"] == 50257
    missing = run_script("data/korean/prepare.py", f"--input={tmp_path}/nope.txt", f"--data-dir={tmp_path}")
    assert missing.returncode == 1 and missing.stderr.strip() == f"error: --input {tmp_path}/nope.txt does not exist"


def test_fortunes_are_split_and_ascii_art_dropped(tmp_path):
    text = "Wer leichthin glaubt, wird leicht betrogen.\n\t\t-- Rollenhagen\n%\n  ..::''::..\n ::  ::  ::\n%\nZweiter Spruch.\n%\n"
    assert fortune_entries(text) == ["Wer leichthin glaubt, wird leicht betrogen.\n\t\t-- Rollenhagen", "Zweiter Spruch."]
    make_deb(tmp_path / "f.deb", {"usr/share/games/fortunes/de/b": b"Zwei.\n%\n", "usr/share/games/fortunes/de/a": b"Eins.\n%\n",
                                  "usr/share/games/fortunes/de/a.dat": b"\x00\x01", "usr/share/games/fortunes/de/off/x": b"Nein.\n"})
    assert read_fortunes(str(tmp_path / "f.deb"), "usr/share/games/fortunes/de/") == "Eins.\n\nZwei.\n"
