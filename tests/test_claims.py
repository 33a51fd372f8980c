"""
What the claims read, on hand-made numbers: seeds and spreads, forgetting at equal Korean loss along a
learning-rate sweep, retention at equal acquisition. tests/test_rules.py decides the claim parts.

    python -m pytest -q tests/test_claims.py
"""

import pytest

from lab import claims, readings


def results(runs):
    """A results.json with just the losses: {run: (english, korean)}; the base has English 1.0."""
    losses = {"base": {"english": 1.0, "korean": 9.0}}
    losses.update({k: {"english": e, "korean": ko} for k, (e, ko) in runs.items()})
    return {"losses": losses, "settings": {"cpt_lr": 3e-4, "cpt_iters": 250, "sweep_lrs": [1e-4, 1e-3]}}


def test_seed_statistics_and_the_pooled_noise_for_single_runs():
    r = results({"full": (2.0, 3.0), "full-seed2": (2.2, 3.1), "full-seed3": (2.4, 3.2), "depth": (1.5, 3.5)})
    mean, sd, n = readings.stats(r, "full", "forgetting")
    assert n == 3 and mean == pytest.approx(1.2) and sd == pytest.approx(0.2)
    assert readings.stats(r, "depth", "forgetting") == pytest.approx((0.5, 0.2, 1))  # the pooled sd stands in


def test_forgetting_is_read_at_equal_korean_loss_along_the_sweep():
    r = results({"preserve": (1.2, 3.0), "preserve@0.0001": (1.1, 4.0), "preserve@0.001": (1.6, 2.0),
                 "full": (2.0, 5.0)})
    assert [p[0] for p in readings.frontier(r, "preserve")] == [0.001, 3e-4, 0.0001]  # sorted by Korean loss
    assert readings.forgetting_at(r, "preserve", 3.5) == pytest.approx(0.15)  # halfway between 0.2 and 0.1
    assert readings.forgetting_at(r, "preserve", 5.0) is None  # its sweep never gets that bad in Korean


def test_a_sweep_past_its_best_rate_is_read_between_neighbouring_rates_at_its_least_forgetting():
    # Korean 4.0, 3.0, 2.0 as the rate rises, then 3.4 again at 1e-2, forgetting rising all along
    r = results({"preserve@0.0001": (1.1, 4.0), "preserve": (1.2, 3.0), "preserve@0.001": (1.6, 2.0),
                 "preserve@0.01": (3.0, 3.4)})
    # crossed between 1e-4 and 3e-4 (0.18) and between 1e-3 and 1e-2 (1.8): the least; joined in order of
    # Korean loss, 3e-4 (3.0) to 1e-2 (3.4), rates that are not neighbours, would give 1.1
    assert readings.forgetting_at(r, "preserve", 3.2) == pytest.approx(0.18)
    # crossed between 3e-4 and 1e-3 (0.4) and between 1e-3 and 1e-2 (1.1): the least
    assert readings.forgetting_at(r, "preserve", 2.5) == pytest.approx(0.4)
    assert readings.forgetting_at(r, "preserve", 1.9) is None  # no rate gets that low
    # acquisition 0.1, 0.3, 0.2 as the rate rises: 0.2 is crossed twice, retention 0.6 or 0.1: the most
    r = {"settings": {"bios_lr": 1e-3},
         "bios": {"runs": {"depth": [{"acquisition": [0.3], "retention": [0.4]}]},
                  "sweep": {"depth@0.0003": [{"acquisition": [0.1], "retention": [0.8]}],
                            "depth@0.003": [{"acquisition": [0.2], "retention": [0.1]}]}}}
    assert readings.retention_at(r, "depth", 0.2) == pytest.approx(0.6)


def test_a_rate_at_an_end_of_the_sweep_is_marked_where_the_best_may_lie_beyond():
    lrs = [3e-4, 1e-4, 1e-3, 3e-3]
    assert readings.sweep_end(lrs, 3e-3) == " (the highest rate tried)"
    assert readings.sweep_end(lrs, 1e-4) == " (the lowest rate tried)"
    assert readings.sweep_end(lrs, 1e-3) == readings.sweep_end(lrs, 3e-4) == ""
    assert readings.sweep_end([*lrs, 1e-2], 3e-3) == ""  # a rate tried past the end puts it inside


def test_a_rate_chosen_before_the_sweep_went_past_its_end_says_where_the_best_moved():
    """merge_rates picks from the first round; edge_track tries one rate past an end after that choice."""
    r = results({"full": (2.0, 3.0), "full@0.0001": (1.5, 3.5), "full@0.001": (2.5, 2.5)})
    assert readings.chosen_note(r, "full", 1e-3) == " (the highest rate tried)"
    r["losses"]["full@0.01"] = {"english": 3.0, "korean": 2.8}  # past the end, and worse: the choice stands
    assert readings.rates_tried(r, "full") == [1e-4, 3e-4, 1e-3, 1e-2]
    assert readings.chosen_note(r, "full", 1e-3) == ""
    r["losses"]["full@0.01"]["korean"] = 2.2  # past the end, and better: said so
    assert readings.chosen_note(r, "full", 1e-3) == " (the lowest Korean loss of its whole sweep is at 0.01)"
