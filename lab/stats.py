"""
stats.py — an effect with its 95% interval, and the verdict it allows: supported, refuted or inconclusive.

Place in the story: under the claims. A claim compares two methods over seeds;
with three seeds a side, "more than twice the standard error" is a weak test
(a one-sided false-positive rate of 6–9%), so a verdict is read from Welch's
95% confidence interval of the difference instead: each method keeps its own
variance, and the degrees of freedom come from the Welch–Satterthwaite
formula. Student's t distribution is written out here (the regularised
incomplete beta function, as in Numerical Recipes §6.4), so no statistics
package is needed.

    supported     the whole interval lies on the side the claim predicts (beyond its margin)
    refuted       the whole interval lies on the other side
    inconclusive  the interval reaches both sides: more seeds would decide (seeds_to_decide says how many)
"""

import math


def incomplete_beta(a, b, x):
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (Numerical Recipes'
    betacf, modified Lentz's method)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point: use the symmetry
        return 1.0 - incomplete_beta(b, a, 1.0 - x)
    tiny = 1e-300
    floor = lambda v: v if abs(v) > tiny else tiny  # noqa: E731
    c, d = 1.0, 1.0 / floor(1.0 - (a + b) * x / (a + 1))
    h = d
    for m in range(1, 300):
        for aa in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),              # the even step
                   -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):  # the odd step
            d = 1.0 / floor(1.0 + aa * d)
            c = floor(1.0 + aa / c)
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    return front * h / a


def t_cdf(t, df):
    """P(T <= t) for Student's t with df (not necessarily whole) degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p, df):
    """The t with P(T <= t) = p, by bisection on t_cdf."""
    lo, hi = -1e3, 1e3
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def mean_var(xs):
    """Mean and sample variance (ddof=1) of at least two values."""
    n = len(xs)
    m = sum(xs) / n
    return m, sum((x - m) ** 2 for x in xs) / (n - 1)


def mean_interval(xs, level=0.95):
    """(mean, low, high): Student's t interval for the mean of the seeds' values, n - 1 degrees of
    freedom; one value gives no interval (low and high None)."""
    if len(xs) < 2:
        return (xs[0], None, None) if xs else (None, None, None)
    m, v = mean_var(xs)
    half = t_quantile(0.5 + level / 2, len(xs) - 1) * math.sqrt(v / len(xs)) if v else 0.0
    return m, m - half, m + half


def welch(a, b, level=0.95):
    """(mean(a) - mean(b), low, high, degrees of freedom): Welch's interval for the difference of means,
    each sample with its own variance. Needs two or more values on each side."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"an interval needs at least two seeds a side (got {len(a)} and {len(b)})")
    (ma, va), (mb, vb) = mean_var(a), mean_var(b)
    se2 = va / len(a) + vb / len(b)
    diff = ma - mb
    if se2 == 0:
        return diff, diff, diff, float("inf")
    df = se2 ** 2 / ((va / len(a)) ** 2 / (len(a) - 1) + (vb / len(b)) ** 2 / (len(b) - 1))
    half = t_quantile(0.5 + level / 2, df) * math.sqrt(se2)
    return diff, diff - half, diff + half, df


def verdict(low, high, margin=0.0):
    """A claim that predicts a difference above `margin`: supported when the whole interval is above it,
    refuted when the whole interval is below it, inconclusive when the interval contains it."""
    if low > margin:
        return "supported"
    if high < margin:
        return "refuted"
    return "inconclusive"


def seeds_to_decide(a, b, margin=0.0, level=0.95, most=100):
    """How many seeds a side would make Welch's interval exclude `margin`, if the means and spreads stayed
    as measured; None if no number up to `most` would (the difference sits on the margin)."""
    (ma, va), (mb, vb) = mean_var(a), mean_var(b)
    gap = abs(ma - mb - margin)
    if gap == 0:
        return None
    for n in range(2, most + 1):
        se2 = (va + vb) / n
        df = se2 ** 2 / ((va / n) ** 2 / (n - 1) + (vb / n) ** 2 / (n - 1)) if se2 else float("inf")
        if se2 == 0 or t_quantile(0.5 + level / 2, df) * math.sqrt(se2) < gap:
            return n
    return None


def one_sample(xs, against, level=0.95):
    """(mean(xs) - against, low, high, degrees of freedom): Student's interval for a mean against a fixed
    number. Needs two or more values."""
    if len(xs) < 2:
        raise ValueError(f"an interval needs at least two seeds (got {len(xs)})")
    m, low, high = mean_interval(xs, level)
    return m - against, low - against, high - against, len(xs) - 1


def seeds_to_decide_one(xs, against, margin=0.0, level=0.95, most=100):
    """seeds_to_decide for one_sample: how many seeds would make its interval exclude `margin`."""
    m, v = mean_var(xs)
    gap = abs(m - against - margin)
    if gap == 0:
        return None
    for n in range(2, most + 1):
        if v == 0 or t_quantile(0.5 + level / 2, n - 1) * math.sqrt(v / n) < gap:
            return n
    return None


def combine(verdicts, how):
    """One verdict from several (a part read against several baselines, levels or methods), as rules.py's
    `combine` says: "all" (every one supported; refuted if any is), "any" (one supported; refuted if all are)
    or "most" (more than half supported; refuted if half or more are)."""
    n, yes, no = len(verdicts), verdicts.count("supported"), verdicts.count("refuted")
    if how == "all":
        return "supported" if yes == n else "refuted" if no else "inconclusive"
    if how == "any":
        return "supported" if yes else "refuted" if no == n else "inconclusive"
    if how == "most":
        return "supported" if yes > n / 2 else "refuted" if no >= n / 2 else "inconclusive"
    return verdicts[0]
