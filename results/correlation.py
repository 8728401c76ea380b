"""Metrics against ears: rank correlation of each objective metric with MUSHRA scores.

Conditions of a listening test are the run's job names (``mse-seed0``), so a rating
maps to the metrics row with the same ``job`` and ``item``. Two levels, as in the
metric-validation literature (e.g. ITU-T P.1401 §7; Torcoli et al., "Objective measures
of perceptual audio quality reviewed", IEEE/ACM TASLP 29, 2021):

- system level: per condition, the mean MUSHRA score (mean over raters of each rater's
  mean over items) against the metric's mean over the same rated items;
- item level: per condition × item, the mean score over raters against the metric value.

Spearman's ρ and Kendall's τ-b (scipy; exact p-values for small n) with 95 % Fisher-z intervals
(:func:`results.stats.correlation_ci`): an interval, unlike a bootstrap, stays defined
for the handful of systems a test usually has, and is NaN where n is too small for it.
The hidden reference and anchors have no metrics rows and are left out.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from earshot.results.listening import normalise_ratings
from earshot.results.stats import correlation_ci

EXACT_P_MAX_N = 8  # pairs: up to here Spearman's p is an exact permutation p (8! = 40 320 orderings);
#   the t approximation scipy uses otherwise calls ρ = 1 with 4 systems "p < 0.001" (exact: 1/12)

CORRELATION_COLUMNS = ["metric", "level", "n", "spearman", "spearman_low", "spearman_high", "spearman_p",
                       "kendall", "kendall_low", "kendall_high", "kendall_p", "higher_is_better", "not_computed"]
MIN_PAIRS = 3  # fewer leave nothing to rank


def paired_scores(metrics: pd.DataFrame, ratings: pd.DataFrame, level: str) -> pd.DataFrame:
    """Rows ``metric, condition, [item,] score, value`` joined on job = condition (and item).

    Arguments:
        metrics: the run's tidy metrics table.
        ratings: the long ratings table (post-screened, if wanted).
        level: ``"system"`` or ``"item"``.
    """
    ratings = normalise_ratings(ratings)
    systems = ratings[ratings["kind"] == "system"]
    if level == "item":
        scores = systems.groupby(["condition", "item"])["score"].mean().rename("score").reset_index()
        values = metrics.groupby(["metric", "job", "item"])["value"].mean().rename("value").reset_index()
        return scores.merge(values.rename(columns={"job": "condition"}), on=["condition", "item"])
    if level != "system":
        raise ValueError(f"level must be 'system' or 'item', not {level!r}")
    per_rater = systems.groupby(["condition", "rater"])["score"].mean()
    scores = per_rater.groupby("condition").mean().rename("score").reset_index()
    rated = systems[["condition", "item"]].drop_duplicates().rename(columns={"condition": "job"})
    # The metric over the items the listeners heard, so both sides judge the same audio.
    values = (metrics.merge(rated, on=["job", "item"]).groupby(["metric", "job"])["value"].mean()
              .rename("value").reset_index().rename(columns={"job": "condition"}))
    return scores.merge(values, on="condition")


def spearman_exact_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided exact permutation p-value of Spearman's ρ (every ordering of x; small n only).

    Like scipy's ``permutation_test`` with ``permutation_type="pairings"``: twice the
    smaller tail, at most 1; tied values keep their mean ranks.
    """
    rx, ry = stats.rankdata(x), stats.rankdata(y)
    orderings = rx[np.array(list(itertools.permutations(range(rx.size))))]
    centred = orderings - orderings.mean(axis=1, keepdims=True)
    ry = ry - ry.mean()
    rho = centred @ ry / (np.sqrt((centred ** 2).sum(axis=1)) * np.sqrt((ry ** 2).sum()))
    observed = rho[0]  # the first permutation is the identity
    tolerance = 1e-12 * max(1.0, abs(observed))  # equal values must count as "as extreme"
    tail = min((rho >= observed - tolerance).mean(), (rho <= observed + tolerance).mean())
    return float(min(1.0, 2 * tail))


UNITS = {"system": "rated systems", "item": "rated (system, item) pairs",
         "pair": "compared pairs of systems"}  # what n counts, per level


def _correlate(x: np.ndarray, y: np.ndarray, unit: str = "pairs") -> dict:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    out = {"n": n, "not_computed": ""}
    if n < MIN_PAIRS:
        out["not_computed"] = f"fewer than {MIN_PAIRS} {unit}"
    elif np.ptp(x) == 0:
        out["not_computed"] = "the metric has one value over the rated audio"
    elif np.ptp(y) == 0:
        out["not_computed"] = "every rating is the same"
    for method, function in (("spearman", stats.spearmanr), ("kendall", stats.kendalltau)):
        r = p = math.nan
        if not out["not_computed"]:
            result = function(x, y)
            r, p = float(result.statistic), float(result.pvalue)
            if method == "spearman" and n <= EXACT_P_MAX_N:
                p = spearman_exact_p(x, y)
        low, high = correlation_ci(r, n, method)
        out.update({method: r, f"{method}_low": low, f"{method}_high": high, f"{method}_p": p})
    return out


def metric_rating_correlation(metrics: pd.DataFrame, ratings: pd.DataFrame, metric_info: dict[str, dict],
                              levels: tuple[str, ...] = ("system", "item")) -> pd.DataFrame:
    """Spearman and Kendall correlation of every metric with MUSHRA scores.

    A good metric whose higher values are better correlates positively; one whose lower
    values are better (``higher_is_better`` False: lsd, mcd, …) negatively. Directions and
    the row order come from ``metric_info``, the run's metric catalog (``RunData.metric_info``).

    Returns:
        Columns ``metric, level, n, spearman, spearman_low, spearman_high, spearman_p,
        kendall, kendall_low, kendall_high, kendall_p, higher_is_better, not_computed``; NaN
        where fewer than 3 pairs, or a constant side, leave nothing to rank, and
        ``not_computed`` then says which (empty where the row was computed).
    """
    rows = []
    if metrics.empty or ratings.empty:
        return pd.DataFrame(columns=CORRELATION_COLUMNS)
    for level in levels:
        joined = paired_scores(metrics, ratings, level)
        for metric, group in joined.groupby("metric", sort=False):
            row = {"metric": metric, "level": level}
            row.update(_correlate(group["value"].to_numpy(float), group["score"].to_numpy(float), UNITS[level]))
            row["higher_is_better"] = (metric_info.get(metric) or {}).get("higher_is_better")
            rows.append(row)
    table = pd.DataFrame(rows, columns=CORRELATION_COLUMNS)
    order = {name: i for i, name in enumerate(metric_info)}
    return table.sort_values(["level", "metric"], key=lambda s: s.map(order).fillna(len(order))
                             if s.name == "metric" else s.map({"system": 0, "item": 1}),
                             kind="stable").reset_index(drop=True)


def pair_differences(metrics: pd.DataFrame, answers: pd.DataFrame) -> pd.DataFrame:
    """Rows ``metric, pair, difference, proportion``: per pair of systems compared in an ABX test, the
    absolute difference of the two systems' metric means over the items the pair was heard on, and
    the proportion of its trials where X was named right (every rater pooled).

    Arguments:
        answers: one row per ABX trial with ``a``, ``b`` (conditions), ``item`` and ``hit`` (0/1).
    """
    rows = []
    means = metrics.groupby(["metric", "job", "item"])["value"].mean()
    for (a, b), trials in answers.groupby([answers[["a", "b"]].min(axis=1), answers[["a", "b"]].max(axis=1)]):
        heard = sorted(trials["item"].unique())
        for metric in metrics["metric"].unique():
            sides = []
            for job in (a, b):
                found = [means.get((metric, job, item), math.nan) for item in heard]
                sides.append(float(np.nanmean(found)) if np.isfinite(found).any() else math.nan)
            rows.append({"metric": metric, "pair": f"{a} vs {b}", "difference": abs(sides[0] - sides[1]),
                         "proportion": float(trials["hit"].mean())})
    return pd.DataFrame(rows, columns=["metric", "pair", "difference", "proportion"])


def metric_discrimination_correlation(metrics: pd.DataFrame, answers: pd.DataFrame,
                                      metric_info: dict[str, dict]) -> pd.DataFrame:
    """Spearman and Kendall correlation, over the pairs of an ABX test, of each metric's absolute
    difference between the pair with the proportion of trials the pair was told apart: a metric
    that predicts what listeners hear correlates positively, whichever way it points.

    Returns the columns of :func:`metric_rating_correlation`, at level ``pair``.
    """
    if metrics.empty or answers.empty:
        return pd.DataFrame(columns=CORRELATION_COLUMNS)
    rows = []
    order = {name: i for i, name in enumerate(metric_info)}
    joined = pair_differences(metrics, answers)
    for metric, group in sorted(joined.groupby("metric", sort=False), key=lambda g: order.get(g[0], len(order))):
        row = {"metric": metric, "level": "pair"}
        row.update(_correlate(group["difference"].to_numpy(float), group["proportion"].to_numpy(float), UNITS["pair"]))
        row["higher_is_better"] = None
        rows.append(row)
    return pd.DataFrame(rows, columns=CORRELATION_COLUMNS)
