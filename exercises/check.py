"""
exercises/check.py — PASS or FAIL for each exercise of EXERCISES.md, with the numbers.

    python exercises/check.py 3              # exercise 3, against your exercises/student.py
    python exercises/check.py all            # every exercise
    python exercises/check.py all --reference   # against the teachers' solutions (what CI runs)

A check passes only when the function behaves as the exercise asks, on inputs
the check builds itself; where you ran the exercise's command, it also prints
what your function says about your own run. Each exercise is checked in a
process of its own with a time and a memory limit (--time-limit,
--memory-limit): a loop that never ends or a tensor that eats the machine is
that exercise's FAIL, and the others still run.
"""

import argparse
import importlib
import importlib.util
import os
import subprocess
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from plumbing.cli import UserError, check_number, parse_flags, parser, run_cli  # noqa: E402


def from_this_folder(name):
    """A module of this folder, read from its file: a student's own `exercises` package on the path
    (where their student.py may live) must not hide the checks."""
    spec = importlib.util.spec_from_file_location(f"exercise_{name}", os.path.join(HERE, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checks = from_this_folder("checks")
N_EXERCISES, Fail = checks.N_EXERCISES, checks.Fail


def where_it_broke(e):
    """'file.py:line' of the innermost frame in the student's (or solutions') file, else the innermost."""
    frames = traceback.extract_tb(e.__traceback__)
    mine = [f for f in frames if os.path.basename(f.filename) in ("student.py", "solutions.py")]
    f = (mine or frames)[-1]
    return f"{os.path.relpath(f.filename)}:{f.lineno}"


def run_check(n, module):
    """One exercise's verdict line. A student's exception is that exercise's FAIL, never the end of the run."""
    try:
        return True, f"exercise {n}: PASS — {getattr(checks, f'check_{n}')(module)}"
    except NotImplementedError:
        return False, f"exercise {n}: FAIL — not done yet (exercises/student.py still raises NotImplementedError)"
    except Fail as e:
        return False, f"exercise {n}: FAIL — {e}"
    except Exception as e:  # the student's bug: say what and where, then go on with the next exercise
        message = (str(e).strip().splitlines() or [""])[-1]
        return False, f"exercise {n}: FAIL — {type(e).__name__}: {message} (at {where_it_broke(e)})"


def limit_memory(gib):
    """For the child process: at most `gib` GiB of address space (POSIX; elsewhere no memory limit)."""
    def apply():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (int(gib * 2**30), int(gib * 2**30)))
    return apply if os.name == "posix" else None


def run_limited(n, args):
    """One exercise's verdict line, checked in a child process within the time and memory limits."""
    cmd = [sys.executable, os.path.abspath(__file__), str(n), "--in-process"] + (["--reference"] if args.reference else [])
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.time_limit,
                           preexec_fn=limit_memory(args.memory_limit))
    except subprocess.TimeoutExpired:
        return False, (f"exercise {n}: FAIL — still running after {args.time_limit:g} s (a loop that never ends?), "
                       "so it was stopped; the check itself takes seconds")
    lines = [line for line in r.stdout.splitlines() if line.startswith(f"exercise {n}:")]
    if lines and not any(word in lines[-1] for word in ("MemoryError", "allocate")):
        return r.returncode == 0, lines[-1]
    return False, (f"exercise {n}: FAIL — it needed more than the {args.memory_limit:g} GiB of memory a check may "
                   f"use (or its process died: {(r.stderr.strip().splitlines() or ['no message'])[-1][:120]})")


def which_exercises(text):
    if text == "all":
        return list(range(1, N_EXERCISES + 1))
    if not text.isdigit() or not 1 <= int(text) <= N_EXERCISES:
        raise UserError(f"'{text}' is not an exercise: use a number from 1 to {N_EXERCISES}, or all")
    return [int(text)]


def main(argv=None):
    p = parser("exercises/check.py", "Check the exercises of EXERCISES.md.")
    p.add_argument("which", help="an exercise number, or all")
    p.add_argument("--reference", action="store_true", help="check the teachers' solutions instead of yours")
    p.add_argument("--time-limit", type=float, default=120, help="seconds one exercise's check may take")
    p.add_argument("--memory-limit", type=float, default=6, help="GiB of memory one exercise's check may use")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # the child run_limited starts
    args = parse_flags(p, argv)
    numbers = which_exercises(args.which)
    check_number("time_limit", args.time_limit, 1)
    check_number("memory_limit", args.memory_limit, 1)
    if args.in_process:
        module = importlib.import_module("exercises.solutions" if args.reference else "exercises.student")
        check = lambda n: run_check(n, module)  # noqa: E731
    else:
        check = lambda n: run_limited(n, args)  # noqa: E731
    failed = 0
    for n in numbers:
        ok, line = check(n)
        print(line, flush=True)
        failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run_cli(main)
