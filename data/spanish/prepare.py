"""
Prepare Spanish: the Spanish `fortune` collection (quotations, proverbs, sayings).

Source: the Debian bookworm package fortunes-es (GPL-2+), read without
installing it; the 'off' (offensive) folder is left out, entries are
separated by '%' lines. A third language for three-way merges.

    python data/spanish/prepare.py                 # bytes tokenizer (default)
    python data/spanish/prepare.py --input=my_spanish.txt
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.common import fortune_cli  # noqa: E402

PACKAGE = ("pool/main/f/fortunes-es/fortunes-es_1.36_all.deb",
           "54636edc1a4384093b68d1666c7e702ce42d1fcc8b5ab402d9646c328dcca899")


if __name__ == "__main__":
    fortune_cli("spanish", "Spanish", PACKAGE, "usr/share/games/fortunes/es/")
