"""
lab/ — the experiment's machinery: the top floor, on which nothing else stands.

experiment.py (the one-command entry) drives these; each stage they run is an
ordinary command of the project (train.py, scale.py, merge.py), so nothing here
is needed to follow the story. From the bottom up:

    rules.py    the pre-registration: every claim's parts, margins and tests
    stats.py    an effect's 95% interval (Welch) and the verdict it allows
    readings.py the numbers the claims read from results.json: seeds, spreads, sweeps
    claims.py   every claim part's effect, interval and verdict, as rules.py says
    first_rules.py  the rule each claim had at the first run, on today's numbers
    verdicts.py the report's opening: the verdict table, its key, the rules
    plots.py    the report's figures
    report.py   REPORT.md from results.json (python -m lab.report)
    presets.py  the four presets and every --config value, checked first
    clones.py   has a HyperClone left the 1x model it was grown from?
    measure.py  what results.json holds about the checkpoints
    stages.py   running the experiment's commands once each, cached, side by side
    tracks.py   what the experiment runs: every stage of both papers' tracks
"""
