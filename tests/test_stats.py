"""
lab/stats.py on numbers worked out by hand: Student's t against printed tables, Welch's interval against
its formula, and hand-made seeds that must come out supported, refuted and inconclusive.

    python -m pytest -q tests/test_stats.py
"""

import math

import pytest

from lab import stats


@pytest.mark.parametrize("df,t", [(1, 12.7062), (2, 4.3027), (3, 3.1824), (4, 2.7764), (10, 2.2281), (30, 2.0423),
                                  (1000, 1.9623)])
def test_t_quantiles_match_the_printed_table(df, t):
    assert stats.t_quantile(0.975, df) == pytest.approx(t, abs=1e-4)
    assert stats.t_cdf(t, df) == pytest.approx(0.975, abs=2e-5) and stats.t_cdf(-t, df) == pytest.approx(0.025, abs=2e-5)


def test_welch_interval_by_hand():
    """a: mean 1.0, variance 0.01; b: mean 0.55, variance 0.0025; three seeds each."""
    diff, low, high, df = stats.welch([1.0, 1.1, 0.9], [0.5, 0.6, 0.55])
    se2 = 0.01 / 3 + 0.0025 / 3
    want_df = se2 ** 2 / ((0.01 / 3) ** 2 / 2 + (0.0025 / 3) ** 2 / 2)
    assert diff == pytest.approx(0.45) and df == pytest.approx(want_df)
    assert high - diff == pytest.approx(stats.t_quantile(0.975, want_df) * math.sqrt(se2))
    assert diff - low == pytest.approx(high - diff)
    with pytest.raises(ValueError, match="at least two seeds"):
        stats.welch([1.0], [0.5, 0.6])


def test_hand_made_seeds_come_out_supported_refuted_and_inconclusive():
    clear = stats.welch([1.0, 1.1, 0.9], [0.5, 0.6, 0.55])      # a far above b
    reverse = stats.welch([0.5, 0.6, 0.55], [1.0, 1.1, 0.9])    # a far below b
    overlap = stats.welch([1.0, 1.3, 0.7], [0.9, 1.2, 0.8])     # a little above, noisy
    assert stats.verdict(*clear[1:3]) == "supported"
    assert stats.verdict(*reverse[1:3]) == "refuted"
    assert stats.verdict(*overlap[1:3]) == "inconclusive"
    assert stats.verdict(*clear[1:3], margin=0.5) == "inconclusive"  # above 0 for sure, above 0.5 not
    assert stats.verdict(0.1, 0.2, margin=-0.05) == "supported"   # a "competitive" claim: within its margin


def sample(mean, var, n):
    """n values with exactly this mean and sample variance."""
    z = [(-1) ** i for i in range(n - n % 2)] + [0.0] * (n % 2)
    scale = math.sqrt(var / (sum(v * v for v in z) / (n - 1)))
    return [mean + scale * v for v in z]


def test_seeds_to_decide_is_the_first_number_of_seeds_whose_interval_decides():
    a, b = [1.0, 1.3, 0.7], [0.7, 1.0, 0.6]  # a above b, noisy: inconclusive at three seeds
    n = stats.seeds_to_decide(a, b)
    (ma, va), (mb, vb) = stats.mean_var(a), stats.mean_var(b)
    assert n is not None and n > 3
    assert stats.verdict(*stats.welch(sample(ma, va, n), sample(mb, vb, n))[1:3]) == "supported"
    assert stats.verdict(*stats.welch(sample(ma, va, n - 1), sample(mb, vb, n - 1))[1:3]) == "inconclusive"
    assert stats.seeds_to_decide([1.0, 1.1, 0.9], [0.5, 0.6, 0.55]) == 3  # three decide it, two would not
    assert stats.seeds_to_decide([1.0, 1.2], [1.2, 1.0]) is None  # equal means: no number of seeds decides
