"""Intervals (kws/stats.py) against scipy's: Wilson's score interval and Student's t."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from kws.stats import format_accuracy, mean_interval, t95, wilson_interval


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
