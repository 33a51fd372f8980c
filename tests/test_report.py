"""
The report's statistical rules decide on hand-made numbers as written: a difference counts only
beyond twice its standard error, and forgetting is compared at equal Korean loss along each
method's learning-rate sweep.

    python -m pytest -q tests/test_report.py
"""

import pytest

import report


def results(runs):
    """A results.json with just the losses: {run: (english, korean)}; the base has English 1.0."""
    losses = {"base": {"english": 1.0, "korean": 9.0}}
    losses.update({k: {"english": e, "korean": ko} for k, (e, ko) in runs.items()})
    return {"losses": losses, "settings": {"cpt_lr": 3e-4}}


def test_a_difference_counts_only_beyond_two_standard_errors():
    assert report.below((1.0, 0.1, 3), (1.5, 0.1, 3))       # 0.5 apart, SE 0.08: real
    assert not report.below((1.0, 0.3, 3), (1.3, 0.3, 3))   # 0.3 apart, SE 0.24: inside the noise
    assert not report.below((1.5, 0.1, 3), (1.0, 0.1, 3))   # the wrong way round


def test_seed_statistics_and_the_pooled_noise_for_single_runs():
    r = results({"full": (2.0, 3.0), "full-seed2": (2.2, 3.1), "full-seed3": (2.4, 3.2), "depth": (1.5, 3.5)})
    mean, sd, n = report.stats(r, "full", "forgetting")
    assert n == 3 and mean == pytest.approx(1.2) and sd == pytest.approx(0.2)
    assert report.stats(r, "depth", "forgetting") == pytest.approx((0.5, 0.2, 1))  # the pooled sd stands in
    assert report.below(report.stats(r, "depth", "forgetting"), report.stats(r, "full", "forgetting"))


def test_forgetting_is_read_at_equal_korean_loss_along_the_sweep():
    r = results({"preserve": (1.2, 3.0), "preserve@0.0001": (1.1, 4.0), "preserve@0.001": (1.6, 2.0),
                 "full": (2.0, 5.0)})
    assert [p[0] for p in report.frontier(r, "preserve")] == [0.001, 3e-4, 0.0001]  # sorted by Korean loss
    assert report.forgetting_at(r, "preserve", 3.5) == pytest.approx(0.15)  # halfway between 0.2 and 0.1
    assert report.forgetting_at(r, "preserve", 5.0) is None  # its sweep never gets that bad in Korean
