"""
system.py's thread choice: --threads=auto uses the cores other work leaves free, read from
/proc/stat's lines of the cores this process may use.

    python -m pytest -q tests/test_system.py
"""

import pytest

from plumbing import system
from plumbing.cli import UserError

STAT = """cpu  300 0 100 550 50 0 0 0 0 0
cpu0 100 0 0 0 0 0 0 0 0 0
cpu1 0 0 0 90 10 0 0 0 0 0
cpu2 200 0 100 460 40 0 0 0 0 0
intr 12345 1 2
"""


def test_busy_time_is_read_from_the_lines_of_the_allowed_cores_only():
    assert system.cpu_ticks(STAT, {0, 1}) == (100, 200, 2)  # cpu2 (not ours) and the total line left out
    assert system.cpu_ticks(STAT, None) == (400, 1000, 3)  # iowait (the 5th field) counts as idle
    assert system.cpu_ticks("intr 1 2\n", None) == (0, 0, 0)


def test_auto_threads_use_the_cores_other_work_leaves_free(monkeypatch):
    monkeypatch.setattr(system, "usable_cores", lambda: 2)
    monkeypatch.setattr(system, "busy_cores", lambda: 1.0)
    assert system.choose_threads("auto")[0] == 1
    monkeypatch.setattr(system, "busy_cores", lambda: 0.1)
    assert system.choose_threads("auto") == (2, "auto: 2 core(s), 0.1 busy with other work")
    assert system.choose_threads("auto", processes=2)[0] == 1  # two stages share the cores
    monkeypatch.setattr(system, "busy_cores", lambda: None)  # no /proc/stat (macOS, Windows)
    assert system.choose_threads("auto") == (2, "auto: 2 core(s)")
    assert system.choose_threads("3") == (3, "set by --threads")
    with pytest.raises(UserError, match="--threads=0 must be auto or a whole number"):
        system.choose_threads("0")
