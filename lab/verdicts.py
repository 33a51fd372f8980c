"""
verdicts.py — the report's opening: one line per claim part, its effect with a 95% interval and its verdict,
the key to the verdicts, the rules as pre-registered, and what the first rule of each claim says.

Place in the story: the first thing REPORT.md says (report.py puts it there).
claims.py computes the parts, rules.py holds the rules, first_rules.py the
rules each claim had when the experiment was first run.
"""

import subprocess

from lab.first_rules import FIRST_COMMIT, first_verdicts
from lab.rules import RULES, SEED_OFFSET, USED_OFFSETS

KEY = """**How to read a verdict.** Each part compares two things over seeds (runs that differ only in their
random numbers). The *effect* is the difference the claim predicts, signed so that positive favours the claim,
and the brackets hold its 95% interval: the range of true differences these seeds cannot rule out.
**supported**: the whole interval lies above the part's margin, so the seeds' noise cannot explain the effect.
**refuted**: the whole interval lies below it, so the data speak against the claim. **inconclusive**: the
interval reaches both sides; the line says how many seeds a side would decide it if the means and spreads
stayed as measured. With 3 seeds a side an interval is wide (Welch's t has 2–4 degrees of freedom), so
inconclusive is a common, honest answer, not a failure of the run."""

PERCENT = ("C1", "C2a", "C2b")  # parts read on exact-match accuracy, shown in percentage points


def commits():
    """{code, rules, dirty}: the code's commit, the last commit of lab/rules.py, whether the tree had changes."""
    def git(*args):
        try:
            return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""
    return {"code": git("rev-parse", "--short", "HEAD") or "unknown",
            "rules": git("log", "-1", "--format=%h", "--", "lab/rules.py") or "unknown",
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def effect_text(pid, t):
    """'+0.123 [+0.050, +0.196]' (nats) or '+5.0 pp [...]' (accuracy); a part without an interval says why."""
    if t["effect"] is None:
        return t.get("note", "not measured")
    scale, unit = (100, " pp") if pid in PERCENT else (1, "")
    shown = f"{scale * t['effect']:+.3f}{unit}" if not unit else f"{scale * t['effect']:+.1f}{unit}"
    if t["low"] is None:
        return f"{shown} ({t['note']})"
    f = (lambda v: f"{scale * v:+.1f}") if unit else (lambda v: f"{v:+.3f}")
    return f"{shown} [{f(t['low'])}, {f(t['high'])}]"


def verdict_text(p):
    """The verdict in bold; an inconclusive one with how many seeds a side would decide it."""
    t = p["deciding"]
    if p["verdict"] != "inconclusive":
        return f"**{p['verdict']}**"
    if t["effect"] is None:
        return f"**inconclusive** ({t.get('note', 'not measured')})"
    if t["low"] is None:
        return "**inconclusive** (one seed: an interval needs 2 or more a side, 3 or more to decide much)"
    more = f"~{t['decide']} seeds a side would decide it" if t["decide"] else "more seeds would not decide it"
    return f"**inconclusive** ({more})"


def verdicts_section(r, parts):
    """The opening table: one line per claim part (claims.claims), and the key."""
    first = first_verdicts(r)
    rows = []
    for p in parts:
        t = p["deciding"]
        which = f" ({t['label']})" if t["label"] and len(p["tests"]) > 1 else ""
        seeds = " vs ".join(str(n) for n in t["n"])
        rows.append((p["id"], p["claim"], effect_text(p["id"], t) + which, seeds, verdict_text(p),
                     first.get(p["id"], "")))
    head = ["part", "claim", "effect [95% interval]", "seeds", "verdict", f"first rule ({FIRST_COMMIT})"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "## The verdicts\n\n" + "\n".join(lines) + "\n\n" + KEY + "\n"


def rules_section(r, parts):
    """The rules as lab/rules.py wrote them, which commits ran, and what each part (claims.claims) measured."""
    c = r.get("commits", {"code": "unknown", "rules": "unknown", "dirty": False})
    offset = r["settings"].get("seed_offset", 0)
    fresh = (f"fresh seeds (the confirmatory offset {offset}; offsets {' and '.join(map(str, USED_OFFSETS))} ran "
             "before it: the exploratory runs and a first confirmatory run whose longer design ran over the time "
             "budget; LOG.md gives that run's verdicts and the design changes made after it)"
             if offset == SEED_OFFSET else f"seed offset {offset} (not the confirmatory {SEED_OFFSET})")
    dirty = " with uncommitted changes" if c["dirty"] else ""
    margin = lambda x: f"{100 * x['margin']:+.0f} pp" if x["id"] in PERCENT else f"{x['margin']:+.2f}"  # noqa: E731
    rows = [(x["id"], x["compares"], x["where"], margin(x), x["combine"]) for x in RULES]
    lines = ["| part | effect | read where | margin | several readings |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    measured = "\n".join(f"- **{p['id']}**: {p['measured']}; " + ", ".join(
        f"{t['label'] or 'effect'} {effect_text(p['id'], t)} {t['verdict']}" for t in p["tests"])
        for p in parts)
    return f"""## The rules

The rules are lab/rules.py at commit {c['rules']}; the code ran at commit {c['code']}{dirty}, on {fresh}.
Rates are chosen on held-out validation batches that no claim reads. The column "first rule" gives the verdict
the rule each claim had when the experiment first ran ({FIRST_COMMIT}: same-rate comparisons against a
threshold of seed noise) on these numbers; LOG.md tells how each rule changed since.

{chr(10).join(lines)}

What each part read (every comparison, with its own verdict):

{measured}
"""
