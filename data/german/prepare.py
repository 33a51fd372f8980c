"""
Prepare German: the German `fortune` collection (quotations, proverbs, jokes, poems).

Source: the Debian bookworm package fortunes-de (GPL-2+), read without
installing it; entries are separated by '%' lines, ASCII-art entries dropped.
German is the second target language: a German and a Korean model continued
from one ancestor are what merge.py merges.

    python data/german/prepare.py                  # bytes tokenizer (default)
    python data/german/prepare.py --tokenizer=gpt2
    python data/german/prepare.py --input=my_german.txt
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.common import fortune_cli  # noqa: E402

PACKAGE = ("pool/main/f/fortunes-de/fortunes-de_0.35-1_all.deb",
           "03fe7a7912935bd3d4e02e38d79ef32a289097f8718d4488c409595abce067a0")


if __name__ == "__main__":
    fortune_cli("german", "German", PACKAGE, "usr/share/games/fortunes/de/")
