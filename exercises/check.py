"""
exercises/check.py — PASS or FAIL for each exercise of EXERCISES.md, with the numbers.

    python exercises/check.py 3              # exercise 3, against your exercises/student.py
    python exercises/check.py all            # every exercise
    python exercises/check.py all --reference   # against the teachers' solutions (what CI runs)

A check passes only when the function behaves as the exercise asks, on inputs
the check builds itself; where you ran the exercise's command, it also prints
what your function says about your own run. The checks run in a child
process, each exercise within a time and a memory limit (--time-limit,
--memory-limit): a loop that never ends or a tensor that eats the machine is
that exercise's FAIL, and a new child checks the others.
"""

import argparse
import importlib
import importlib.util
import os
import queue
import subprocess
import sys
import threading
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


def run_check(n, module, draw=None):
    """(passed, the exercise's line); with `draw`, also the picture of the student's growth, whatever the verdict."""
    ok, line = verdict(n, module)
    if draw:
        try:
            checks.DRAWN[n](module, draw)
            line += f"; drew {draw}"
        except Exception as e:  # noqa: BLE001 - the student's code: say so, as the verdict does
            line += f"; nothing drawn ({type(e).__name__}: {(str(e).strip().splitlines() or [''])[-1]})"
    return ok, line


def verdict(n, module):
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


def child(numbers, args):
    """A process that checks `numbers` in turn, within the memory limit, printing one line each."""
    cmd = [sys.executable, os.path.abspath(__file__), ",".join(map(str, numbers)), "--in-process"] \
        + (["--reference"] if args.reference else []) + ([f"--draw={args.draw}"] if args.draw else [])
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=limit_memory(args.memory_limit))
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)], daemon=True).start()
    return proc, lines


def run_limited(numbers, args):
    """(passed, line) of every exercise, checked in one child process (torch is imported once) that is
    stopped when an exercise passes the time limit, or dies past the memory limit; a new child then
    checks the exercises after it."""
    todo = list(numbers)
    while todo:
        proc, lines = child(todo, args)
        for n in list(todo):
            todo.remove(n)
            try:
                line = lines.get(timeout=args.time_limit)
            except queue.Empty:
                proc.kill()
                yield False, (f"exercise {n}: FAIL — still running after {args.time_limit:g} s (a loop that never "
                              "ends?), so it was stopped; the check itself takes seconds")
                break
            if line is None or any(word in line for word in ("MemoryError", "allocate")):
                proc.kill()
                died = (proc.stderr.read().strip().splitlines() or ["no message"])[-1][:120] if line is None else line
                yield False, (f"exercise {n}: FAIL — it needed more than the {args.memory_limit:g} GiB of memory a "
                              f"check may use ({died.split(' — ')[-1].strip()})")
                break
            yield ": PASS" in line, line.rstrip("\n")
        proc.wait()


def which_exercises(text):
    """[exercise numbers] of `all`, a number, or numbers separated by commas."""
    if text == "all":
        return list(range(1, N_EXERCISES + 1))
    numbers = text.split(",")
    for n in numbers:
        if not n.isdigit() or not 1 <= int(n) <= N_EXERCISES:
            raise UserError(f"'{n}' is not an exercise: use a number from 1 to {N_EXERCISES}, or all")
    return [int(n) for n in numbers]


def main(argv=None):
    p = parser("exercises/check.py", "Check the exercises of EXERCISES.md.")
    p.add_argument("which", help="an exercise number, numbers separated by commas, or all")
    p.add_argument("--reference", action="store_true", help="check the teachers' solutions instead of yours")
    p.add_argument("--time-limit", type=float, default=120, help="seconds one exercise's check may take")
    p.add_argument("--memory-limit", type=float, default=6, help="GiB of memory one exercise's check may use")
    p.add_argument("--draw", metavar="FILE.png", help="exercises 3, 4 and 5: also draw what your code does beside what preserves")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)  # the child run_limited starts
    args = parse_flags(p, argv)
    numbers = which_exercises(args.which)
    check_number("time_limit", args.time_limit, 1)
    check_number("memory_limit", args.memory_limit, 1)
    if args.draw and (len(numbers) != 1 or numbers[0] not in checks.DRAWN):
        raise UserError(f"--draw draws exercise {' or '.join(map(str, checks.DRAWN))}: "
                        f"python exercises/check.py 3 --draw=ex3.png")
    if args.in_process:
        module = importlib.import_module("exercises.solutions" if args.reference else "exercises.student")
        results = (run_check(n, module, args.draw) for n in numbers)
    else:
        results = run_limited(numbers, args)
    failed = 0
    for ok, line in results:
        print(line, flush=True)
        failed += not ok
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    run_cli(main)
