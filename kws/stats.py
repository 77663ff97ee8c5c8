"""Uncertainty of reported numbers: Wilson intervals for accuracies, t intervals over seeds.

Every accuracy kws prints carries its example count and a 95% interval (ARCHITECTURE.md,
"Tests and benchmarks"). An accuracy is a binomial proportion, so its interval is Wilson's score
interval (Wilson 1927; well behaved near 0 and 1, unlike the normal approximation). A count of
events (false accepts in so many hours) gets the exact Poisson interval (Garwood 1936). Comparisons
over seeds report the mean and a Student-t 95% interval of the mean. Two models scored on the
same examples are compared paired (McNemar's exact test on the examples where they disagree).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (then ~normal), to six
# decimals (scipy.stats.t.ppf(0.975, dof)): three decimals moved a reported interval's last digit.
_T95 = (
    12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157,
    2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.131450, 2.119905, 2.109816, 2.100922,
    2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831,
    2.048407, 2.045230, 2.042272,
)  # fmt: skip
Z95 = 1.959964


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval `(low, high)` of `correct / total` (fractions; (0, 1) if empty)."""
    if total <= 0:
        return 0.0, 1.0
    p = correct / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def poisson_interval(count: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Garwood 1936) `1 - alpha` interval `(low, high)` of a Poisson mean from one
    observed `count` of events; divide by the hours observed for a rate per hour. Above 100
    events, its chi-square form with Wilson-Hilferty's quantiles (relative error < 1e-4).

    Raises:
        ValueError: a negative count.
    """
    if count < 0:
        raise ValueError(f"a count of events is >= 0, not {count}")
    if count > 100:  # the exact sums grow with the count; Wilson-Hilferty's quantiles do not
        z = Z95 if alpha == 0.05 else NormalDist().inv_cdf(1 - alpha / 2)
        return _chi2_quantile(-z, 2 * count) / 2, _chi2_quantile(z, 2 * count + 2) / 2

    def cdf(k: int, mean: float) -> float:  # P(X <= k), summed in log space
        if mean <= 0:
            return 1.0
        log_mean = math.log(mean)
        return sum(math.exp(i * log_mean - mean - math.lgamma(i + 1)) for i in range(k + 1))

    def solve(f, target: float) -> float:  # f decreasing in the mean
        low, high = 0.0, max(10.0, 3.0 * count + 20.0)
        for _ in range(100):
            mid = (low + high) / 2
            low, high = (mid, high) if f(mid) > target else (low, mid)
        return (low + high) / 2

    lower = 0.0 if count == 0 else solve(lambda m: cdf(count - 1, m), 1 - alpha / 2)
    return lower, solve(lambda m: cdf(count, m), alpha / 2)


def _chi2_quantile(z: float, dof: int) -> float:
    """Wilson-Hilferty (1931): the chi-square quantile of `dof` degrees of freedom at the
    normal quantile `z`."""
    c = 2 / (9 * dof)
    return dof * (1 - c + z * math.sqrt(c)) ** 3


def format_rate_per_hour(count: int, hours: float) -> str:
    """'5.0 [2.8-8.2] per hour (15 in 3 h)': a rate with its exact 95% Poisson interval (the
    span in minutes under an hour)."""
    if hours <= 0:
        return f"n/a ({count} in 0 h)"  # nothing observed
    low, high = poisson_interval(count)
    # decimals enough for two significant digits of the interval's upper end (0 in 1,000 h:
    # 0.0037 an hour, not 0.00)
    digits = min(4, max(1, 1 - math.floor(math.log10(high / hours))))
    span = (f"{60 * hours:.3g} min" if hours < 1 else f"{hours:.0f} h" if hours >= 10
            else f"{hours:.2g} h")  # fmt: skip
    return (f"{count / hours:.{digits}f} [{low / hours:.{digits}f}-{high / hours:.{digits}f}] "
            f"per hour ({count} in {span})")  # fmt: skip


def format_share(count: int, total: int) -> str:
    """'48.7% [40.8-56.6] (73/150)': a share of `total` (misses of commands) with its 95%
    Wilson interval and both counts."""
    if total <= 0:
        return "n/a (0/0)"
    low, high = wilson_interval(count, total)
    return f"{100 * count / total:.1f}% [{100 * low:.1f}-{100 * high:.1f}] ({count}/{total})"


def format_accuracy(correct: int, total: int) -> str:
    """'92.92% [89.0-95.5] (n=240)': accuracy, its 95% Wilson interval and the example count."""
    if total <= 0:
        return "n/a (n=0)"
    low, high = wilson_interval(correct, total)
    return f"{100 * correct / total:.2f}% [{100 * low:.1f}-{100 * high:.1f}] (n={total})"


@dataclass
class MeanInterval:
    """Mean of several runs with a 95% t interval of the mean (`half_width` = 0 for one run)."""

    mean: float
    half_width: float
    count: int
    std: float

    def format(self, scale: float = 100.0, digits: int = 2) -> str:
        """'89.20 +- 1.10 (3 seeds)' in percent by default."""
        runs = "seed" if self.count == 1 else "seeds"
        return (
            f"{scale * self.mean:.{digits}f} +- {scale * self.half_width:.{digits}f} "
            f"({self.count} {runs})"
        )


def t95(dof: int) -> float:
    """Two-sided 95% Student-t quantile for `dof` degrees of freedom."""
    if dof < 1:
        return float("nan")
    return _T95[dof - 1] if dof <= len(_T95) else Z95


def mean_interval(values: list[float]) -> MeanInterval:
    """Mean and 95% t interval of the mean of `values` (runs with different seeds).

    Raises:
        ValueError: for an empty list.
    """
    if not values:
        raise ValueError("mean_interval needs at least one value")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return MeanInterval(mean, 0.0, 1, 0.0)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return MeanInterval(mean, t95(n - 1) * std / math.sqrt(n), n, std)


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value: `only_a` examples right only under A, `only_b` only B."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)
