"""
Prepare Korean: LibreOffice's and GNOME's Korean help pages.

Sources (Debian bookworm packages, read without installing them):
- libreoffice-help-ko (MPL-2.0): 2,561 HTML pages of documentation-style Korean;
- gnome-user-docs (CC-BY-SA 3.0): 295 Mallard XML pages of the GNOME help in Korean.
Cleaning: strip markup, keep lines that are
at least 30% Hangul, drop repeats of short lines (menu labels, boilerplate).

    python data/korean/prepare.py                  # bytes tokenizer (default)
    python data/korean/prepare.py --tokenizer=gpt2
    python data/korean/prepare.py --input=my_korean.txt
"""

import os
import re
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from data.common import cli  # noqa: E402
from data.download import deb_files, fetch_deb  # noqa: E402

LIBREOFFICE = ("pool/main/libr/libreoffice/libreoffice-help-ko_7.4.7-1+deb12u14_all.deb",
               "7ef2d854e9ed58e6bf861cfa9fa2579555233f9df874baf327fcb07ccd190669")
GNOME = ("pool/main/g/gnome-user-docs/gnome-user-docs_43.0-2_all.deb",
         "0d635a840747958ca84da778b40d341f1155603851f922c9a171f5a181d6a39f")
HINT = "pass your own Korean text with --input=FILE"
HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


class HelpPageText(HTMLParser):
    """Text of a LibreOffice help page, one line per block element, navigation skipped."""
    BLOCKS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th", "div", "br", "tr", "pre"}
    SKIP = {"script", "style", "header", "aside", "nav", "head"}

    def __init__(self):
        super().__init__()
        self.lines, self.current, self.skipping = [], [], 0

    def handle_starttag(self, tag, attrs):
        if tag in self.SKIP:
            self.skipping += 1
        if tag in self.BLOCKS:
            self.flush()

    def handle_endtag(self, tag):
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        if tag in self.BLOCKS:
            self.flush()

    def handle_data(self, data):
        if not self.skipping:
            self.current.append(data)

    def flush(self):
        line = " ".join("".join(self.current).split())
        if line:
            self.lines.append(line)
        self.current = []


def html_lines(html):
    parser = HelpPageText()
    parser.feed(html)
    parser.flush()
    return parser.lines


def mallard_lines(xml):
    """Text of a GNOME Mallard page: titles, descriptions and paragraphs, credits skipped."""
    root = ET.fromstring(xml)
    ns = "{http://projectmallard.org/1.0/}"
    credits = {id(e) for c in root.iter(f"{ns}credit") for e in c.iter()}
    lines = []
    for e in root.iter():
        if e.tag in (f"{ns}title", f"{ns}desc", f"{ns}p") and id(e) not in credits:
            line = " ".join("".join(e.itertext()).split())
            if line:
                lines.append(line)
    return lines


def clean_lines(lines, min_hangul=0.3, short=30):
    """Keep lines that are mostly Korean; keep only the first copy of a short line."""
    seen, kept = set(), []
    for line in lines:
        letters = len(line.replace(" ", ""))
        if letters == 0 or len(HANGUL.findall(line)) < min_hangul * letters or line.startswith("Title is:"):
            continue  # "Title is:" lines are LibreOffice's debug copies of page titles
        if len(line) < short:
            if line in seen:
                continue
            seen.add(line)
        kept.append(line)
    return kept


def download_text():
    lines = []
    for name, data in sorted(deb_files(fetch_deb(*LIBREOFFICE, hint=HINT), "usr/share/libreoffice/help/ko/text/")):
        if name.endswith(".html"):
            lines += html_lines(data.decode("utf-8", "replace"))
    n_lo = len(lines)
    for name, data in sorted(deb_files(fetch_deb(*GNOME, hint=HINT), "usr/share/help/ko/gnome-help/")):
        if name.endswith(".page"):
            lines += mallard_lines(data)
    print(f"read {n_lo:,} lines of LibreOffice help and {len(lines) - n_lo:,} of GNOME help")
    return "\n".join(clean_lines(lines)) + "\n"


if __name__ == "__main__":
    cli("korean", "Prepare Korean (LibreOffice + GNOME help) as data/korean/{train,val}.bin.",
        source_id="debian:libreoffice-help-ko+gnome-user-docs", download_text=download_text)
