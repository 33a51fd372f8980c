"""
cli.py — the command line every script shares: one-line errors, a parser, a main.

Place in the story: none; this is plumbing. Every script (train, scale, merge,
evaluate, sample, experiment, bench, data/*/prepare.py, exercises/check.py)
builds its parser with `parser()`, reads flags with `parse_flags()` and runs
with `run_cli(main)`, so a user's mistake always prints one line starting
with `error:` and exits 1, while a bug keeps its traceback. `catch_ctrl_c` turns
a long loop's first Ctrl-C into "save and stop" (train.py).
"""

import argparse
import errno
import math
import os
import signal
import sys


class UserError(Exception):
    """A mistake the user can fix (bad flag, missing file, wrong checkpoint).

    Command-line entry points print it as one line and exit with status 1;
    every other exception is a bug and keeps its traceback.
    """


def run_cli(main):
    """Run main(); print a UserError as one line and exit 1 instead of a traceback (Ctrl-C: exit 130)."""
    try:
        main()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    except OSError as e:  # the machine, not the code: a full disk, a read-only or forbidden place
        if e.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES):
            raise
        where = f" ({e.filename})" if e.filename else ""
        fix = "free some space" if e.errno in (errno.ENOSPC, errno.EDQUOT) else "choose a path you may write to"
        print(f"error: {e.strerror}{where}; {fix} (files that existed before are unchanged)", file=sys.stderr)
        sys.exit(1)


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """-h shows each default once: not when it is None, empty or already written in the help text."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default in (None, "", False) or "default:" in text or action.default is argparse.SUPPRESS:
            return text
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """argparse prints its usage and exits on some mistakes (a missing required flag) even with
    exit_on_error=False; here every mistake is a UserError instead."""

    def error(self, message):
        raise UserError(f"{message} (see python {self.prog} -h)")


def parser(prog, description):
    """An ArgumentParser that shows defaults and turns every mistake into one line."""
    return OneLineParser(prog=prog, description=description, allow_abbrev=False,
                         exit_on_error=False, formatter_class=HelpWithDefaults)


def parse_flags(p, argv=None):
    """p.parse_args, but a bad or missing flag is a UserError (one line), not argparse's usage dump."""
    try:
        args, unknown = p.parse_known_args(argv)
    except argparse.ArgumentError as e:
        raise UserError(f"{e} (see python {p.prog} -h)")
    if unknown:
        raise UserError(f"unrecognized arguments: {' '.join(unknown)} (see python {p.prog} -h)")
    return args


def typed_flags(p, argv):
    """The dest names of the flags written in argv (to tell a typed value from a default)."""
    dests = {}
    for action in p._actions:
        for s in action.option_strings:
            dests[s] = action.dest
    return {dests[a.split("=")[0]] for a in argv if a.split("=")[0] in dests}


def check_number(name, value, low=None, high=None, low_open=False, integer=False):
    """A flag's number must be finite and in range; otherwise one line that says what is allowed."""
    if value is None:
        return value
    ok = math.isfinite(value) and (low is None or (value > low if low_open else value >= low)) \
        and (high is None or value <= high)
    if not ok:
        lo = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
        hi = "" if high is None else f"<= {high:g}"
        bounds = " and ".join(x for x in (lo, hi) if x)
        raise UserError(f"--{name.replace('_', '-')}={value:g} is out of range: use a "
                        + (f"number {bounds}" if bounds else "finite number"))
    return value


def writable_dir(path, flag):
    """Create path (a folder) or say in one line why it cannot be written to."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag}={path} is a file, not a folder: choose another path")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create {flag}={path} ({e.strerror}): choose a folder you can write to")
    if not os.access(path, os.W_OK):
        raise UserError(f"cannot write to {flag}={path} (permission denied): choose a folder you can write to")
    return path


def writable_file(path, flag):
    """Check, before any long work, that path (a file to write) can be written: its folder exists
    or can be made and accepts files, and path is not a folder."""
    if os.path.isdir(path):
        raise UserError(f"{flag}={path} is a folder: give a file name, like {os.path.join(path, 'model.pt')}")
    writable_dir(os.path.dirname(os.path.abspath(path)), f"the folder of {flag}")
    return path


def available_memory():
    """Bytes of memory this machine can still give (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def catch_ctrl_c():
    """The first Ctrl-C asks the loop to save and stop after the current step; a second one quits."""
    stop = {"requested": False}

    def on_sigint(signum, frame):
        if stop["requested"]:
            print("\ninterrupted twice: quitting without saving (the last checkpoint is intact)")
            raise SystemExit(130)
        stop["requested"] = True
    signal.signal(signal.SIGINT, on_sigint)
    return stop
