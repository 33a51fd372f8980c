"""
The README's reading path points at real code: every `name` (file.py:N) names
a def, class or constant defined on line N (inside its class, for Class.method).
And the README's test command is the one CI runs.

    python -m pytest -q tests/test_readme.py
"""

import os
import re

from tests.conftest import REPO

README = open(os.path.join(REPO, "README.md")).read()


def test_reading_path_line_numbers_are_right():
    refs = re.findall(r"`([\w.]+)` \(([\w/]+\.py):(\d+)\)", README)
    assert len(refs) >= 25
    for name, path, n in refs:
        lines = open(os.path.join(REPO, path)).read().splitlines()
        *cls, last = name.split(".")
        here = lines[int(n) - 1]
        assert re.match(rf"\s*(def {last}\(|class {last}\b|{last} =)", here), f"{name}: {path}:{n} is {here!r}"
        if cls:
            owner = next(l for l in reversed(lines[:int(n) - 1]) if l.startswith("class "))
            assert owner.startswith(f"class {cls[0]}"), f"{name}: {path}:{n} is in {owner!r}"


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(REPO, ".ci", "run")).read()
    assert "pip install -r requirements.txt" in README and "pip install -r requirements.txt" in ci
    assert "python -m pytest -q tests" in README and "python -m pytest -q tests" in ci
