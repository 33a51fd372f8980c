"""
The documents work for their reader: every command printed in a Markdown file
names a script and flags that exist, the README's reading path names functions
that exist, the README stays a newcomer's page, and dates live only in LOG.md.

    python -m pytest -q tests/test_docs.py
"""

import ast
import glob
import os
import re
import shlex

import pytest

from tests.conftest import REPO

README = open(os.path.join(REPO, "README.md")).read()
# every Markdown file a reader follows; LOG.md is a record of what was, commands included
DOCS = sorted(os.path.relpath(p, REPO) for p in glob.glob(os.path.join(REPO, "*.md"))
              + glob.glob(os.path.join(REPO, "docs", "*.md")) + glob.glob(os.path.join(REPO, "exercises", "*.md"))
              if not p.endswith("LOG.md"))
PARSER_HELPERS = {"data": ["data/common.py"]}  # prepare.py scripts take the flags data/common.py adds


def commands(text):
    """Every `python …` or `torchrun …` command: lines of fenced blocks and inline code spans."""
    blocks = re.findall(r"```[^\n]*\n(.*?)```", text, re.S)
    lines = [line for block in blocks for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines()]
    lines += re.findall(r"`((?:python|torchrun) [^`]+)`", text)
    out = []
    for line in lines:
        if "nanoGPT" in line.partition("#")[2]:
            continue  # a command of nanoGPT's, run in its own folder
        for part in line.split("#")[0].split("&&"):
            part = part.strip().removeprefix("$ ")
            if part.startswith(("python ", "torchrun ")):
                out.append(part)
    return out


def script_and_flags(command):
    """(the file the command runs, the --flags it passes), or None for what is not this project's script."""
    words = shlex.split(command.replace("[", " ").replace("]", " "))
    words = [w for w in words[1:] if not (words[0] == "torchrun" and w.startswith("--") and w != words[-1]
                                          and not w.endswith(".py"))] if words[0] == "torchrun" else words[1:]
    if words[:1] == ["-c"] or words[:2] == ["-m", "pytest"]:
        return None
    if words[:1] == ["-m"]:
        script, rest = words[1].replace(".", "/") + ".py", words[2:]
    else:
        i = next(i for i, w in enumerate(words) if w.endswith(".py"))
        script, rest = words[i], words[i + 1:]
    flags = [w.split("=")[0] for w in rest if w.startswith("--")]
    return script, flags


def known_flags(script):
    """The --flags a script's parser declares (its own source, and the helper that builds it)."""
    sources = [script] + PARSER_HELPERS.get(script.split("/")[0], [])
    text = "".join(open(os.path.join(REPO, s)).read() for s in sources)
    return set(re.findall(r"[\"'](--[\w-]+)", text)) | {"--help"}


@pytest.mark.parametrize("doc", DOCS)
def test_every_printed_command_names_a_real_script_and_real_flags(doc):
    text = open(os.path.join(REPO, doc)).read()
    for command in commands(text):
        if "…" in command or "..." in command:  # a sketch of a command, not one to run as printed
            continue
        parsed = script_and_flags(command)
        if parsed is None:
            continue
        script, flags = parsed
        if script.startswith(("../", "/")) or "nanoGPT" in script:
            continue  # another repository's script
        assert os.path.isfile(os.path.join(REPO, script)), f"{doc}: `{command}` runs {script}, which does not exist"
        unknown = set(flags) - known_flags(script)
        assert not unknown, f"{doc}: `{command}` passes {sorted(unknown)}, which {script} does not take"


def test_the_command_check_can_fail():
    """The parser of commands finds what a wrong command gets wrong."""
    assert script_and_flags("python train.py --init-from=upscaled --no-such-flag=1") == \
        ("train.py", ["--init-from", "--no-such-flag"])
    assert "--no-such-flag" not in known_flags("train.py") and "--init-from" in known_flags("train.py")
    assert script_and_flags("python -m tools.bench --shared") == ("tools/bench.py", ["--shared"])
    assert script_and_flags("torchrun --standalone --nproc_per_node=2 train.py --out-dir=out/ddp") == \
        ("train.py", ["--out-dir"])
    assert commands("```\npython a.py --x  # note\npython c.py \\\n    --y\n```\nand `python b.py` then `ls`") == \
        ["python a.py --x", "python c.py --y", "python b.py"]


def defined_names(path):
    """Top-level functions, classes and constants of a file, and Class.method for its methods."""
    tree = ast.parse(open(os.path.join(REPO, path)).read())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names |= {f"{node.name}.{f.name}" for f in node.body if isinstance(f, ast.FunctionDef)}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def reading_path():
    """[(file, name)] the README's reading path points at: 'In `file.py`: `a`, `b`.'"""
    section = README.split("## Reading path")[1].split("\n## ")[0]
    refs = []
    for path, names in re.findall(r"In `([\w/]+\.py)`:((?:\s*`[\w.]+`[,.]?)+)", section):
        refs += [(path, name) for name in re.findall(r"`([\w.]+)`", names)]
    return refs


def test_reading_path_names_resolve():
    refs = reading_path()
    assert len(refs) >= 30
    for path, name in refs:
        assert name in defined_names(path), f"the README's reading path names {name} in {path}, which has no such name"


def test_readme_is_a_newcomers_page():
    lines = README.splitlines()
    assert len(lines) <= 300
    first = next(i for i, line in enumerate(lines) if "python train.py" in line)
    assert first < 60 and "done: 2000 steps" in "\n".join(lines[first:60])  # the first run and what it prints


def project_files():
    """The project's .py and .md files, without runs' outputs and downloads."""
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in (".git", "out", "cache", "__pycache__", ".pytest_cache")]
        yield from (os.path.relpath(os.path.join(root, f), REPO) for f in files if f.endswith((".py", ".md")))


def test_dates_live_only_in_the_log():
    """Code, docs and the report carry no dates, except the report's one header line."""
    date = re.compile(r"20\d\d-\d\d-\d\d")
    for rel in project_files():
        if rel == "LOG.md":
            continue
        hits = [line for line in open(os.path.join(REPO, rel), errors="replace") if date.search(line)]
        if rel.endswith("REPORT.md"):
            hits = [line for line in hits if not line.startswith("Made by `python experiment.py")]
        assert not hits, f"{rel} carries a date: {hits[0].strip()[:100]} (the dated record goes to LOG.md)"


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    assert "pip install -r requirements.txt" in README and "pip install -r requirements.txt" in ci
    assert "python -m pytest -q tests" in README and "python -m pytest -q tests" in ci


def verdicts(text, pattern):
    return dict(re.findall(pattern, text, re.M))


README_VERDICT = r"^- \*\*(C\d[a-c]?) (supported|refuted|inconclusive)\*\*"
REPORT_VERDICT = r"^\| (C\d[a-c]?) \|.*?\| \*\*(supported|refuted|inconclusive)\*\*"


def test_readme_verdicts_are_the_reports():
    """The README's "What it found" says what the committed report says, part by part."""
    report = open(os.path.join(REPO, "report", "REPORT.md")).read()
    found = verdicts(README.split("## What it found")[1].split("\n## ")[0], README_VERDICT)
    assert found and found == verdicts(report, REPORT_VERDICT)


def test_the_verdict_check_can_fail():
    report = "| C1 | a claim | +1 [0, 2] | 3 | **supported** | reproduced |\n"
    assert verdicts(report, REPORT_VERDICT) == {"C1": "supported"}
    assert verdicts("- **C1 refuted** — a claim\n", README_VERDICT) != verdicts(report, REPORT_VERDICT)
