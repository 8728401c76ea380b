"""Metric aggregation over seeds × items, and metric-vs-rating correlation on constructed data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from earshot.benchmark.evaluate.metrics import metric_catalog
from earshot.results.aggregate import (ALL, best_loss, compare_runs, metric_order, metric_summary, paired_differences,
                                       per_item_table, summary_table)
from earshot.results.correlation import (metric_discrimination_correlation, metric_rating_correlation, pair_differences,
                                         paired_scores)

CATALOG = metric_catalog()  # what evaluation writes into a run as metrics_info.json

ITEMS = {"speech-01": "speech", "speech-02": "speech", "drums-01": "drums", "music-01": "music"}


def _metrics(offsets: dict[str, float], metric="si_sdr", seeds=2, noise=0.0, seed=0):
    """One row per loss × seed × item: offset of the loss + item difficulty (+ noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for loss, offset in offsets.items():
        for s in range(seeds):
            for i, (item, category) in enumerate(ITEMS.items()):
                rows.append({"job": f"{loss}-seed{s}", "loss": loss, "seed": s, "item": item, "category": category,
                             "metric": metric, "value": offset + i + noise * rng.standard_normal(), "error": None})
    return pd.DataFrame(rows)


def test_summary_means_and_counts():
    metrics = _metrics({"mse": 0.0, "bark": 2.0}, noise=0.5)
    metrics.loc[0, ["value", "error"]] = [np.nan, "reconstruction is silent"]
    summary = metric_summary(metrics).set_index(["metric", "category", "loss"])
    row = summary.loc[("si_sdr", ALL, "mse")]
    assert row["n"] == 7 and row["seeds"] == 2 and row["items"] == 4
    assert row["mean"] == pytest.approx(metrics[metrics["loss"] == "mse"]["value"].mean())
    assert row["ci_low"] < row["mean"] < row["ci_high"]
    assert summary.loc[("si_sdr", "speech", "bark"), "items"] == 2
    wide = summary_table(metric_summary(metrics), ALL, ["mse", "bark"])
    assert list(wide.columns) == ["mse", "bark"]


def test_paired_difference_removes_item_difficulty():
    # bark − mse is exactly 2 on every (seed, item): the interval has zero width
    diff = paired_differences(_metrics({"mse": 0.0, "bark": 2.0}), "bark", "mse").set_index("category")
    assert diff.loc[ALL, "pairs"] == 8
    assert (diff.loc[ALL, "mean"], diff.loc[ALL, "ci_low"], diff.loc[ALL, "ci_high"]) == pytest.approx((2, 2, 2))


def test_per_item_table_averages_seeds():
    table = per_item_table(_metrics({"mse": 0.0}), "si_sdr")
    assert table.loc[("drums", "drums-01"), "mse"] == pytest.approx(2.0)
    assert per_item_table(_metrics({"mse": 0.0}), "nope").empty


@pytest.mark.parametrize("metric, values, best", [
    ("si_sdr", {"mse": 1.0, "bark": 2.0}, "bark"),
    ("lsd", {"mse": 1.0, "bark": 2.0}, "mse"),
    ("hf_energy_ratio_db_2k", {"mse": -5.0, "bark": 1.0}, "bark"),  # closest to its ideal 0 dB
    ("hf_energy_ratio_db_4k", {"mse": -0.5, "bark": 1.0}, "mse"),
    ("error_flatness", {"mse": 0.1, "bark": 0.2}, None),  # descriptive: unmarked
    ("si_sdr", {"mse": 1.0, "bark": 1.0}, None),  # tie
    ("si_sdr", {"mse": 1.0, "bark": math.nan}, None),  # nothing to compare with
])
def test_best_loss_follows_the_metric_catalog(metric, values, best):
    info = CATALOG[metric]
    assert best_loss(pd.Series(values), info["higher_is_better"], info["ideal"]) == best


def test_best_loss_closest_to_a_nonzero_ideal():
    assert best_loss(pd.Series({"a": 0.2, "b": 0.9, "c": 0.6}), None, 1.0) == "b"


def test_metrics_in_the_catalogs_order_then_unknown_ones():
    metrics = pd.concat([_metrics({"mse": 0.0}, m) for m in ("zz_new", "lsd", "si_sdr", "aa_new")])
    assert metric_order(metrics, CATALOG) == ["si_sdr", "lsd", "aa_new", "zz_new"]
    assert metric_order(metrics, {}) == ["aa_new", "lsd", "si_sdr", "zz_new"]  # a run without metrics_info.json


def test_compare_runs():
    table = compare_runs(_metrics({"mse": 0.0}), _metrics({"mse": 1.5})).set_index(["metric", "category", "loss"])
    assert table.loc[("si_sdr", ALL, "mse"), "difference"] == pytest.approx(1.5)


# --- correlation ------------------------------------------------------------------------------


def _ratings(score_of_job: dict[str, float], items=ITEMS, raters=4, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(raters):
        for item in items:
            for job, score in score_of_job.items():
                rows.append((f"r{r}", item, job, score + noise * rng.standard_normal()))
            rows.append((f"r{r}", item, "reference", 100.0))
            rows.append((f"r{r}", item, "anchor-low", 10.0))
    return pd.DataFrame(rows, columns=["rater", "item", "condition", "score"])


def test_system_level_correlation_on_monotone_data():
    offsets = {"a": 0.0, "b": 1.0, "c": 2.5, "d": 3.0, "e": 4.0}
    metrics = pd.concat([_metrics(offsets, "si_sdr", seeds=1), _metrics({k: -v for k, v in offsets.items()}, "lsd",
                                                                        seeds=1)])
    ratings = _ratings({f"{k}-seed0": 20 + 10 * v for k, v in offsets.items()})
    table = metric_rating_correlation(metrics, ratings, CATALOG).set_index(["metric", "level"])
    assert table.loc[("si_sdr", "system"), "n"] == 5  # the reference and anchor are not systems
    assert table.loc[("si_sdr", "system"), "spearman"] == pytest.approx(1.0)
    assert table.loc[("lsd", "system"), "kendall"] == pytest.approx(-1.0)
    assert table.loc[("si_sdr", "system"), "spearman_p"] == pytest.approx(2 / math.factorial(5))  # exact
    assert table.loc[("lsd", "system"), "higher_is_better"] == False  # noqa: E712 (a numpy bool: lower is better)
    assert table.loc[("si_sdr", "system"), "higher_is_better"] == True  # noqa: E712
    # Rows in the catalog's order: si_sdr before lsd, as in the report's tables.
    assert list(table.xs("system", level="level").index) == ["si_sdr", "lsd"]


def test_item_level_matches_scipy():
    offsets = {"a": 0.0, "b": 1.0, "c": 2.0}
    metrics = _metrics(offsets, seeds=1, noise=1.0, seed=2)
    ratings = _ratings({f"{k}-seed0": 30 + 10 * v for k, v in offsets.items()}, noise=15.0, seed=5)
    joined = paired_scores(metrics, ratings, "item")
    assert len(joined) == 12  # 3 systems × 4 items
    table = metric_rating_correlation(metrics, ratings, CATALOG, levels=("item",)).iloc[0]
    rho = stats.spearmanr(joined["value"], joined["score"])
    tau = stats.kendalltau(joined["value"], joined["score"])
    assert table["spearman"] == pytest.approx(rho.statistic) and table["kendall"] == pytest.approx(tau.statistic)
    assert table["kendall_p"] == pytest.approx(tau.pvalue)
    assert table["spearman_low"] < table["spearman"] < table["spearman_high"]


def test_correlation_without_matching_jobs_is_empty_or_nan():
    metrics = _metrics({"a": 0.0}, seeds=1)
    ratings = _ratings({"other-seed0": 50.0})
    assert metric_rating_correlation(metrics, ratings, CATALOG).empty
    few = metric_rating_correlation(metrics, _ratings({"a-seed0": 50.0}), CATALOG, levels=("system",))
    assert few.loc[0, "n"] == 1 and math.isnan(few.loc[0, "spearman"])


def test_exact_spearman_p_matches_scipy_permutation_test():
    from earshot.results.correlation import spearman_exact_p

    rng = np.random.default_rng(7)
    x = np.round(rng.normal(size=6), 1)
    y = x + rng.normal(size=6)
    expected = stats.permutation_test((x,), lambda a: stats.spearmanr(a, y).statistic,
                                      permutation_type="pairings", n_resamples=np.inf).pvalue
    assert spearman_exact_p(x, y) == pytest.approx(expected)


def test_abx_pairs_correlate_each_metrics_difference_with_how_often_the_pair_was_told_apart():
    """Four systems with metric values 1, 2, 4, 8: the pairs' differences are ab 1, bc 2, ac 3, cd 4,
    bd 6, ad 7; trials told apart 5, 6, 7, 8, 9, 10 of 10 in that order make ρ = τ = 1 at level pair,
    whichever way the metric points, and the differences are taken over the items the pair was heard on."""
    values = {"a": 1.0, "b": 2.0, "c": 4.0, "d": 8.0}
    metrics = pd.DataFrame([{"metric": "snr", "job": job, "item": item, "value": v + (100.0 if item == "unheard" else 0)}
                            for job, v in values.items() for item in ("x1", "unheard")])
    told = {("a", "b"): 5, ("b", "c"): 6, ("a", "c"): 7, ("c", "d"): 8, ("b", "d"): 9, ("a", "d"): 10}
    answers = pd.DataFrame([{"a": b if k % 2 else a, "b": a if k % 2 else b, "item": "x1", "hit": int(k < hits)}
                            for (a, b), hits in told.items() for k in range(10)])
    differences = pair_differences(metrics, answers).set_index("pair")
    assert differences.loc["a vs d", "difference"] == 7.0 and differences.loc["a vs d", "proportion"] == 1.0
    row = metric_discrimination_correlation(metrics, answers, CATALOG).iloc[0]
    assert (row["level"], row["n"]) == ("pair", 6)
    assert row["spearman"] == pytest.approx(1.0) and row["kendall"] == pytest.approx(1.0)
    assert row["spearman_p"] == pytest.approx(2 / 720)  # exact: the identity ordering of 6, two-sided
