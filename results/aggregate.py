"""Objective metrics aggregated per loss and category, with seed-aware intervals.

Input is a run's tidy ``metrics.parquet`` (``job, loss, seed, item, category, metric,
value, error``). Every interval here is the two-level (seeds, then items) percentile
bootstrap of :func:`results.stats.hierarchical_bootstrap_ci`, seeded, so the same table
comes out every time: it keeps the training noise between seeds in the interval, where a
flat t-interval over seeds × items would treat 2 seeds × 3 items as 6 independent
measurements. Paired differences between losses are taken on the same (seed, item),
which removes the item's own difficulty from the comparison.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
import pandas as pd

from earshot.results.stats import hierarchical_bootstrap_ci

ALL = "all"  # the category label of rows pooled over every category

SUMMARY_COLUMNS = ["metric", "category", "loss", "seeds", "items", "n", "mean", "ci_low", "ci_high"]
DIFFERENCE_COLUMNS = ["metric", "category", "a", "b", "pairs", "mean", "ci_low", "ci_high"]


def metric_order(metrics: pd.DataFrame, metric_info: dict[str, dict]) -> list[str]:
    """Metric names of ``metrics`` in the order of the run's metric catalog (``RunData.metric_info``),
    metrics it does not list last, alphabetically."""
    present = set(metrics["metric"]) if len(metrics) else set()
    known = [name for name in metric_info if name in present]
    return known + sorted(present - set(known))


def loss_order(metrics: pd.DataFrame, config_losses: list[str] | None = None) -> list[str]:
    """Losses in the run's configured order, then any others alphabetically."""
    present = set(metrics["loss"]) if len(metrics) else set()
    ordered = [name for name in (config_losses or []) if name in present]
    return ordered + sorted(present - set(ordered))


def _seed_item_matrix(rows: pd.DataFrame) -> np.ndarray:
    """seeds × items table of values (NaN where a pair is missing)."""
    wide = rows.pivot_table(index="seed", columns="item", values="value", aggfunc="mean", dropna=False)
    return wide.to_numpy(dtype=float)


def _with_all_category(metrics: pd.DataFrame) -> pd.DataFrame:
    return pd.concat([metrics, metrics.assign(category=ALL)], ignore_index=True)


def metric_summary(metrics: pd.DataFrame, confidence: float = 0.95, per_category: bool = True) -> pd.DataFrame:
    """Mean and interval of every metric per loss (and category), over seeds × items.

    Arguments:
        metrics: the tidy metrics table.
        confidence: coverage of the intervals.
        per_category: also one row per category, besides the pooled ``all`` rows.

    Returns:
        Columns ``metric, category, loss, seeds, items, n, mean, ci_low, ci_high``; ``n``
        counts the finite values (NaN values, i.e. errors, are left out and not counted).
    """
    if metrics.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    frame = _with_all_category(metrics) if per_category else metrics.assign(category=ALL)
    rows = []
    for (metric, category, loss), group in frame.groupby(["metric", "category", "loss"], sort=False):
        finite = group[np.isfinite(group["value"].astype(float))]
        mean, low, high = hierarchical_bootstrap_ci(_seed_item_matrix(group), confidence)
        rows.append({"metric": metric, "category": category, "loss": loss, "seeds": finite["seed"].nunique(),
                     "items": finite["item"].nunique(), "n": len(finite), "mean": mean, "ci_low": low,
                     "ci_high": high})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def per_item_table(metrics: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric, item × loss, averaged over seeds (index ``category, item``)."""
    rows = metrics[metrics["metric"] == metric]
    if rows.empty:
        return pd.DataFrame()
    return rows.pivot_table(index=["category", "item"], columns="loss", values="value", aggfunc="mean")


class Contrast(NamedTuple):
    """A paired difference ``a − b``: its mean, interval and the number of finite (seed, item) pairs."""

    mean: float
    low: float
    high: float
    n: int


def _contrast(rows: pd.DataFrame, a: str, b: str, confidence: float) -> Contrast | None:
    """``a − b`` over ``rows`` (one metric), paired by (seed, item); None when either loss is absent."""
    wide = rows.pivot_table(index=["seed", "item"], columns="loss", values="value", aggfunc="mean")
    if a not in wide or b not in wide:
        return None
    diff = (wide[a] - wide[b]).rename("value").reset_index()
    matrix = diff.pivot_table(index="seed", columns="item", values="value", aggfunc="mean", dropna=False)
    mean, low, high = hierarchical_bootstrap_ci(matrix.to_numpy(dtype=float), confidence)
    return Contrast(mean, low, high, int(np.isfinite(diff["value"].astype(float)).sum()))


def paired_difference(metrics: pd.DataFrame, metric: str, a: str, b: str,
                      category: str | Iterable[str] | None = None, confidence: float = 0.95) -> Contrast:
    """The one estimate of ``a − b`` on ``metric``: the contrast every table and every claim prints.

    Paired by (seed, item), with the hierarchical bootstrap interval of
    :func:`results.stats.hierarchical_bootstrap_ci`; :func:`paired_differences` (the tables)
    computes each of its rows through the same code, so a contrast prints the same interval
    wherever it appears.

    Arguments:
        metrics: the tidy metrics table.
        metric: the metric's name.
        a, b: the two losses (or systems); the difference is ``a − b``.
        category: one category, several (pooled), or None / ``"all"`` for every category.
        confidence: coverage of the interval.

    Returns:
        A :class:`Contrast` ``(mean, low, high, n)``; NaN mean and bounds with ``n = 0`` when
        either loss has no value of the metric there.
    """
    rows = metrics[(metrics["metric"] == metric) & metrics["loss"].isin([a, b])]
    if category is not None and category != ALL:
        rows = rows[rows["category"].isin([category] if isinstance(category, str) else list(category))]
    found = _contrast(rows, a, b, confidence) if len(rows) else None
    return found or Contrast(math.nan, math.nan, math.nan, 0)


def paired_differences(metrics: pd.DataFrame, a: str, b: str, confidence: float = 0.95) -> pd.DataFrame:
    """``a − b`` per metric and category, paired by (seed, item), with bootstrap intervals.

    Each row is the :func:`paired_difference` of that metric and category.

    Returns:
        Columns ``metric, category, a, b, pairs, mean, ci_low, ci_high``; ``pairs`` counts
        the (seed, item) pairs where both losses have a finite value.
    """
    rows = []
    frame = _with_all_category(metrics[metrics["loss"].isin([a, b])])
    for (metric, category), group in frame.groupby(["metric", "category"], sort=False):
        found = _contrast(group, a, b, confidence)
        if found is None:
            continue
        rows.append({"metric": metric, "category": category, "a": a, "b": b, "pairs": found.n,
                     "mean": found.mean, "ci_low": found.low, "ci_high": found.high})
    return pd.DataFrame(rows, columns=DIFFERENCE_COLUMNS)


def all_paired_differences(metrics: pd.DataFrame, losses: list[str] | None = None,
                           confidence: float = 0.95) -> pd.DataFrame:
    """:func:`paired_differences` for every pair of losses (each pair once, in loss order)."""
    names = losses or loss_order(metrics)
    frames = [paired_differences(metrics, a, b, confidence) for a, b in itertools.combinations(names, 2)]
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=DIFFERENCE_COLUMNS)


def _goodness(values: pd.Series, higher_is_better: bool | None, ideal: float | None) -> pd.Series | None:
    """``values`` turned into a score where higher is better, or None for a descriptive metric.

    Lower-is-better values are negated; with no direction, the score is minus the distance to
    ``ideal`` (0 dB for the HF energy ratios: the reference's energy).
    """
    if higher_is_better is True:
        return values
    if higher_is_better is False:
        return -values
    if ideal is not None:
        return -(values - ideal).abs()
    return None


def best_loss(values: pd.Series, higher_is_better: bool | None, ideal: float | None = None) -> str | None:
    """The index label of the best value in a row of loss means (the row's leader), or None.

    ``higher_is_better`` and ``ideal`` are the metric's catalog entries; with no direction,
    the value closest to ``ideal`` is best, and with neither the metric is descriptive and
    nothing is marked. Ties and all-NaN rows: None. Whether the leader is *clearly* best is
    :func:`best_in_row`'s question.
    """
    finite = values.dropna()
    finite = finite[np.isfinite(finite.astype(float))]
    if len(finite) < 2:
        return None
    score = _goodness(finite, higher_is_better, ideal)
    if score is None:
        return None
    best = score[score == score.max()]
    return str(best.index[0]) if len(best) == 1 else None


class RowBest(NamedTuple):
    """The verdict on one metric row: ``best`` when one loss is clearly best, else the ``tied`` losses."""

    best: str | None
    tied: tuple[str, ...]


def best_in_row(metrics: pd.DataFrame, metric: str, losses: list[str], higher_is_better: bool | None,
                ideal: float | None = None, category: str = ALL, confidence: float = 0.95) -> RowBest:
    """Which loss is best on ``metric`` (in ``category``), only where the data say so.

    The leader is the loss with the best mean (:func:`best_loss`). It is ``best`` only where its
    :func:`paired_difference` from every other loss excludes zero in the better direction; for a
    metric judged by its distance to an ideal, the paired difference is of that distance, item
    by item. Otherwise the leader and every loss not clearly worse than it are ``tied``.

    Returns:
        ``RowBest(best, ())`` for a clear winner; ``RowBest(None, tied)`` (loss order, leader
        included) when intervals overlap; ``RowBest(None, ())`` for a descriptive metric or
        fewer than two losses with a value.
    """
    rows = metrics[(metrics["metric"] == metric) & metrics["loss"].isin(losses)]
    if category != ALL:
        rows = rows[rows["category"] == category]
    rows = rows[np.isfinite(rows["value"].astype(float))]
    means = rows.groupby("loss")["value"].mean().reindex([name for name in losses if name in set(rows["loss"])])
    score = _goodness(means, higher_is_better, ideal) if len(means) >= 2 else None
    if score is None:
        return RowBest(None, ())
    leader = str(score.idxmax())
    scored = rows.assign(value=_goodness(rows["value"].astype(float), higher_is_better, ideal))
    clearly_worse = {other for other in means.index if other != leader
                     and paired_difference(scored, metric, leader, other, confidence=confidence).low > 0}
    tied = tuple(name for name in means.index if name not in clearly_worse)
    return RowBest(leader, ()) if tied == (leader,) else RowBest(None, tied)


def summary_table(summary: pd.DataFrame, category: str, losses: list[str] | None = None,
                  metrics_order: list[str] | None = None) -> pd.DataFrame:
    """Wide view of :func:`metric_summary` for one category: metric rows, loss columns of means."""
    rows = summary[summary["category"] == category]
    if rows.empty:
        return pd.DataFrame()
    wide = rows.pivot_table(index="metric", columns="loss", values="mean", aggfunc="first", dropna=False)
    if losses:
        wide = wide.reindex(columns=[name for name in losses if name in wide.columns])
    if metrics_order:
        wide = wide.reindex([name for name in metrics_order if name in wide.index])
    return wide


def compare_runs(metrics_a: pd.DataFrame, metrics_b: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Two runs side by side: per metric, category and loss, each run's mean and B − A.

    Runs need not share items or seeds, so the difference is unpaired: its interval is
    the bootstrap interval of run B's mean minus that of run A combined in quadrature
    (a normal approximation, stated in the report).
    """
    sa = metric_summary(metrics_a, confidence).set_index(["metric", "category", "loss"])
    sb = metric_summary(metrics_b, confidence).set_index(["metric", "category", "loss"])
    columns = ["mean", "ci_low", "ci_high", "n"]
    joined = sa[columns].add_suffix("_a").join(sb[columns].add_suffix("_b"), how="outer")
    joined["difference"] = joined["mean_b"] - joined["mean_a"]
    half_a = (joined["ci_high_a"] - joined["ci_low_a"]) / 2
    half_b = (joined["ci_high_b"] - joined["ci_low_b"]) / 2
    half = np.sqrt(half_a ** 2 + half_b ** 2)
    joined["diff_ci_low"] = joined["difference"] - half
    joined["diff_ci_high"] = joined["difference"] + half
    return joined.reset_index()

