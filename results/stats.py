"""Statistics shared by the metric tables, the claims check and the listening tests."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests


def mean_ci(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean; NaN bounds below two values."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    sem = float(x.std(ddof=1) / math.sqrt(x.size))
    if sem == 0:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + confidence / 2, x.size - 1)) * sem
    return mean, mean - half, mean + half


# ---------------------------------------------------------------------------
# Hierarchical bootstrap (seeds, then items)
# ---------------------------------------------------------------------------

BOOTSTRAP_RESAMPLES = 2000  # enough for stable 2.5/97.5 % percentiles (±~1 % of the width)
BOOTSTRAP_SEED = 0  # fixed: a report is reproducible byte for byte


def hierarchical_bootstrap_ci(matrix, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                              seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(mean, low, high) of a seeds × items table by a two-level percentile bootstrap.

    Each resample draws the seeds with replacement, then, inside every drawn seed, that
    seed's items with replacement, and takes the mean; the interval is the percentile
    interval of those means. Resampling both levels keeps the seed-to-seed spread (the
    training noise) in the interval, which a bootstrap over seeds × items as one flat
    sample would understate. See Saravanan, Berman & Sober, "Application of the
    hierarchical bootstrap to multi-level data in neuroscience", NBDC 2020.

    Arguments:
        matrix: 2-D array, rows = seeds, columns = items; NaN = missing (ignored).
        confidence: coverage of the interval.
        resamples: bootstrap resamples.
        seed: random seed of the resampling.

    Returns:
        The plain mean of the finite values and the interval; NaN bounds when there are
        fewer than two finite values, or when every row has fewer than two.
    """
    values = np.asarray(matrix, dtype=float)
    if values.ndim == 1:
        values = values[None, :]
    values = values[np.isfinite(values).any(axis=1)]  # a seed with nothing measured is not a seed here
    finite = np.isfinite(values)
    if finite.sum() == 0:
        return math.nan, math.nan, math.nan
    mean = float(values[finite].mean())
    if finite.sum() < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    n_seeds, n_items = values.shape
    seed_draw = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    item_draw = rng.integers(0, n_items, size=(resamples, n_seeds, n_items))
    drawn = values[seed_draw[:, :, None], item_draw]
    flat = drawn.reshape(resamples, -1)
    counts = np.isfinite(flat).sum(axis=1)
    sums = np.where(np.isfinite(flat), flat, 0.0).sum(axis=1)
    means = sums[counts > 0] / counts[counts > 0]  # a resample that drew only NaN cells is skipped
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return mean, float(low), float(high)


def crossed_bootstrap_ci(matrix, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(mean, low, high) of a raters × items table by a crossed (two-way cluster) percentile bootstrap.

    Each resample draws the raters with replacement and, independently, the items with
    replacement, keeps every drawn rater's scores of every drawn item, and takes the mean over
    drawn raters of each one's mean over the drawn items (the BS.1534-3 mean of that sample).
    Ratings by one rater, or of one item, are not independent; resampling both clusters keeps
    the rater-to-rater and item-to-item spread in the interval. This "pigeonhole" bootstrap is
    slightly conservative (it counts the residual more than once): see McCullagh, "Resampling
    and exchangeable arrays", Bernoulli 6 (2000); Owen, "The pigeonhole bootstrap", Ann. Appl.
    Stat. 1 (2007).

    Arguments:
        matrix: 2-D array, rows = raters, columns = items; NaN = not rated.
        confidence: coverage of the interval.
        resamples: bootstrap resamples.
        seed: random seed of the resampling (fixed: the same ratings give the same interval).

    Returns:
        The mean over raters of each rater's mean over items, and the interval; NaN bounds
        with fewer than two raters or fewer than two items (one cluster's spread unknown).
    """
    values = np.asarray(matrix, dtype=float)
    values = values[np.isfinite(values).any(axis=1)][:, np.isfinite(values).any(axis=0)]
    if values.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(np.nanmean(np.nanmean(values, axis=1)))
    n_raters, n_items = values.shape
    if n_raters < 2 or n_items < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    rater_draw = rng.integers(0, n_raters, size=(resamples, n_raters))
    item_draw = rng.integers(0, n_items, size=(resamples, n_items))
    drawn = values[rater_draw[:, :, None], item_draw[:, None, :]]
    rated = np.isfinite(drawn)
    counts = rated.sum(axis=2)
    per_rater = np.where(rated, drawn, 0.0).sum(axis=2) / np.maximum(counts, 1)
    raters = (counts > 0).sum(axis=1)
    kept = raters > 0  # a resample whose drawn raters rated none of its drawn items is skipped
    means = np.where(counts > 0, per_rater, 0.0).sum(axis=1)[kept] / raters[kept]
    alpha = (1 - confidence) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return mean, float(low), float(high)


# ---------------------------------------------------------------------------
# Tests used by the listening analysis
# ---------------------------------------------------------------------------


def holm(pvalues) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the input order (statsmodels' ``multipletests``).

    NaN p-values (a test not computed) stay NaN and do not count as tests, which
    ``multipletests`` alone would not allow. See Holm, "A simple sequentially rejective
    multiple test procedure", Scand. J. Statist. 6 (1979).
    """
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        adjusted[ok] = multipletests(p[ok], method="holm")[1]
    return adjusted


def rank_biserial(x, y) -> float:
    """Matched-pairs rank-biserial correlation of ``x − y``, in [−1, 1].

    r = (T+ − T−) / (T+ + T−), with T± the sums of the ranks of |d| over positive and
    negative differences (zero differences dropped, ties given mean ranks). +1: every
    pair favours x. See Kerby, "The simple difference formula", Compr. Psychol. 3 (2014).
    """
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    d = d[np.isfinite(d) & (d != 0)]
    if d.size == 0:
        return math.nan
    ranks = stats.rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


CORRELATION_CI_MIN_N = 5  # pairs: Kendall's standard error below needs n > 4


def correlation_ci(r: float, n: int, method: str, confidence: float = 0.95) -> tuple[float, float]:
    """Fisher-z interval for a Spearman or Kendall coefficient.

    Standard errors of z = atanh(r): Spearman sqrt((1 + r²/2) / (n − 3)) (Bonett & Wright,
    Psychometrika 65, 2000); Kendall sqrt(0.437 / (n − 4)) (Fieller, Hartley & Pearson,
    Biometrika 44, 1957). NaN below n = :data:`CORRELATION_CI_MIN_N` for both (Kendall's
    needs 5; Spearman's is held to the same, so one is never shown without the other), and at
    |r| = 1, where z is infinite and the interval would collapse to a misleading point.
    """
    if not np.isfinite(r) or abs(r) >= 1 or n < CORRELATION_CI_MIN_N:
        return math.nan, math.nan
    if method == "spearman":
        se = math.sqrt((1 + r * r / 2) / (n - 3))
    elif method == "kendall":
        se = math.sqrt(0.437 / (n - 4))
    else:
        raise ValueError(f"unknown correlation method {method!r} (spearman or kendall)")
    z = math.atanh(r)
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * se
    return math.tanh(z - half), math.tanh(z + half)
