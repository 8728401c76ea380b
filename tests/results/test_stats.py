"""Shared statistics: Holm, rank-biserial, the hierarchical bootstrap, correlation intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from earshot.results.stats import correlation_ci, hierarchical_bootstrap_ci, holm, rank_biserial


def test_holm_by_hand():
    # sorted: 0.01·3 = 0.03; 0.03·2 = 0.06; 0.04·1 = 0.04 → raised to 0.06 (step-down is monotone)
    assert np.allclose(holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    assert np.allclose(holm([0.5, 0.9]), [1.0, 1.0])  # capped at 1


def test_holm_matches_statsmodels_and_keeps_nan():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    p = np.array([0.001, 0.2, 0.013, 0.04, 0.04, 0.5])
    assert np.allclose(holm(p), multipletests(p, method="holm")[1])
    with_nan = holm([0.01, np.nan, 0.02])
    assert np.isnan(with_nan[1]) and np.allclose(with_nan[[0, 2]], [0.02, 0.02])


def test_rank_biserial_by_hand():
    # d = [1, -2, 3, 4]: ranks 1, 2, 3, 4; T+ = 8, T- = 2 → (8 - 2) / 10
    assert rank_biserial([1, 0, 3, 4], [0, 2, 0, 0]) == pytest.approx(0.6)
    assert rank_biserial([1, 2, 3], [0, 0, 0]) == 1.0
    assert rank_biserial([0, 0, 3], [1, 2, 0]) == 0.0  # T+ = 3, T- = 1 + 2
    assert math.isnan(rank_biserial([1, 1], [1, 1]))  # only zero differences


def test_bootstrap_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(1)
    matrix = rng.normal(5, 1, (3, 8)) + rng.normal(0, 0.5, (3, 1))
    first = hierarchical_bootstrap_ci(matrix)
    assert first == hierarchical_bootstrap_ci(matrix)
    mean, low, high = first
    assert mean == pytest.approx(matrix.mean())
    assert low < mean < high


def test_bootstrap_edge_cases():
    assert hierarchical_bootstrap_ci(np.full((2, 3), 4.0)) == (4.0, 4.0, 4.0)  # constant: zero width
    mean, low, high = hierarchical_bootstrap_ci([[np.nan, np.nan]])
    assert math.isnan(mean) and math.isnan(low)
    mean, low, high = hierarchical_bootstrap_ci([[2.0, np.nan]])
    assert mean == 2.0 and math.isnan(low)  # one value: no interval
    mean, low, high = hierarchical_bootstrap_ci([[1.0, 2.0, np.nan], [np.nan] * 3])  # an all-NaN seed is dropped
    assert mean == 1.5 and 1.0 <= low <= high <= 2.0


def test_bootstrap_interval_includes_seed_spread():
    # Two seeds far apart, items identical inside each: a flat item bootstrap would give
    # a narrow interval; resampling seeds must span both.
    matrix = np.array([[0.0] * 6, [10.0] * 6])
    _, low, high = hierarchical_bootstrap_ci(matrix)
    assert low == 0.0 and high == 10.0


def test_correlation_ci_by_hand():
    # Spearman r = 0.5, n = 28: se = sqrt(1.125 / 25) = 0.21213, z = 0.54931 ± 1.95996·se
    low, high = correlation_ci(0.5, 28, "spearman")
    assert low == pytest.approx(math.tanh(0.549306 - 1.959964 * 0.212132), abs=1e-5)
    assert high == pytest.approx(math.tanh(0.549306 + 1.959964 * 0.212132), abs=1e-5)
    low, high = correlation_ci(0.3, 20, "kendall")  # se = sqrt(0.437 / 16)
    assert high - low == pytest.approx(math.tanh(math.atanh(0.3) + 1.959964 * math.sqrt(0.437 / 16))
                                       - math.tanh(math.atanh(0.3) - 1.959964 * math.sqrt(0.437 / 16)), abs=1e-6)
    assert all(math.isnan(v) for v in correlation_ci(0.9, 3, "spearman"))
    assert all(math.isnan(v) for v in correlation_ci(1.0, 30, "spearman"))
    with pytest.raises(ValueError):
        correlation_ci(0.1, 10, "pearson")
