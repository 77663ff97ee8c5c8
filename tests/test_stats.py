"""Intervals (kws/stats.py) against scipy's: Wilson's score interval and Student's t."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from kws.stats import (
    format_accuracy,
    format_rate_per_hour,
    format_share,
    mean_interval,
    poisson_interval,
    t95,
    wilson_interval,
)


@pytest.mark.parametrize("correct,total", [(0, 10), (3, 10), (1567, 1653), (240, 240), (1, 2)])
def test_wilson_interval_is_scipys(correct, total):
    ci = stats.binomtest(correct, total).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(correct, total)
    assert low == pytest.approx(ci.low, abs=1e-6) and high == pytest.approx(ci.high, abs=1e-6)


def test_t_quantiles_are_scipys_to_six_decimals():
    for dof in range(1, 31):
        assert t95(dof) == pytest.approx(stats.t.ppf(0.975, dof), abs=1e-6)
    assert t95(100) == pytest.approx(1.96, abs=1e-3) and math.isnan(t95(0))


def test_mean_interval_over_seeds():
    values = [54.33, 54.08, 56.87]
    got = mean_interval(values)
    sem = stats.sem(values)
    assert got.mean == pytest.approx(55.0933, abs=1e-4) and got.count == 3
    assert got.half_width == pytest.approx(stats.t.ppf(0.975, 2) * sem, abs=1e-5)
    assert f"{got.half_width:.2f}" == "3.83"  # the last digit a 3-decimal t table got wrong
    assert mean_interval([0.9]).half_width == 0.0
    with pytest.raises(ValueError, match="at least one value"):
        mean_interval([])


def test_accuracy_text_has_n_and_interval():
    assert format_accuracy(223, 240) == "92.92% [89.0-95.5] (n=240)"
    assert format_accuracy(0, 0) == "n/a (n=0)"


@pytest.mark.parametrize("count", [0, 1, 2, 5, 10, 53, 100, 101, 400, 5000])
def test_poisson_interval_is_garwoods_exact_interval(count):
    """The chi-square form of the exact interval (Garwood 1936), from scipy: to 4 decimals up
    to 100 events, within 1e-4 relative above (Wilson-Hilferty's quantiles)."""
    low, high = poisson_interval(count)
    want_low = 0.0 if count == 0 else stats.chi2.ppf(0.025, 2 * count) / 2
    tolerance = {"abs": 1e-4} if count <= 100 else {"rel": 1e-4}
    assert low == pytest.approx(want_low, **tolerance)
    assert high == pytest.approx(stats.chi2.ppf(0.975, 2 * count + 2) / 2, **tolerance)
    with pytest.raises(ValueError, match=">= 0"):
        poisson_interval(-1)


def test_rates_and_shares_carry_counts_and_intervals():
    assert format_rate_per_hour(15, 3.0) == "5.0 [2.8-8.2] per hour (15 in 3 h)"
    assert format_rate_per_hour(7, 150.0) == "0.047 [0.019-0.096] per hour (7 in 150 h)"
    assert format_rate_per_hour(0, 1000.0) == "0.0000 [0.0000-0.0037] per hour (0 in 1000 h)"
    assert format_rate_per_hour(8, 5 / 60) == "96.0 [41.4-189.2] per hour (8 in 5 min)"
    assert format_share(73, 150) == "48.7% [40.8-56.6] (73/150)"  # recipes/README.md's rows
    assert format_share(0, 0) == "n/a (0/0)" and format_rate_per_hour(1, 0) == "n/a (1 in 0 h)"
