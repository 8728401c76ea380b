"""One estimator for a contrast: the tables' paired differences and aggregate.paired_difference agree exactly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from earshot.results import present
from earshot.results.aggregate import (ALL, RowBest, best_in_row, metric_summary, paired_difference,
                                       paired_differences)

ITEMS = {"speech-01": "speech", "speech-02": "speech", "drums-01": "drums", "music-01": "music"}


def noisy_metrics(seed: int = 0) -> pd.DataFrame:
    """si_sdr and stoi for mse, bark, l1 over 3 seeds × 4 items, with noise (so intervals have width)."""
    rng = np.random.default_rng(seed)
    rows = []
    for metric in ("si_sdr", "stoi"):
        for loss, offset in {"mse": 0.0, "bark": 0.3, "l1": 0.1}.items():
            for s in range(3):
                for i, (item, category) in enumerate(ITEMS.items()):
                    rows.append({"job": f"{loss}-seed{s}", "loss": loss, "seed": s, "item": item, "category": category,
                                 "metric": metric, "value": offset + i + rng.standard_normal(), "error": None})
    frame = pd.DataFrame(rows)
    frame.loc[5, "value"] = math.nan  # a failed measurement: one pair fewer
    return frame


@pytest.mark.parametrize("category", [ALL, "speech", "drums"])
def test_table_rows_and_the_single_contrast_are_the_same_numbers(category):
    metrics = noisy_metrics()
    table = paired_differences(metrics, "bark", "mse").set_index(["metric", "category"])
    for metric in ("si_sdr", "stoi"):
        row = table.loc[(metric, category)]
        contrast = paired_difference(metrics, metric, "bark", "mse", category=category)
        assert (contrast.mean, contrast.low, contrast.high, contrast.n) == (
            row["mean"], row["ci_low"], row["ci_high"], row["pairs"])
        assert contrast.low < contrast.mean < contrast.high


def test_a_category_given_as_a_name_a_tuple_or_none():
    metrics = noisy_metrics()
    assert paired_difference(metrics, "stoi", "bark", "mse", "speech") == paired_difference(
        metrics, "stoi", "bark", "mse", ("speech",))
    assert paired_difference(metrics, "stoi", "bark", "mse") == paired_difference(metrics, "stoi", "bark", "mse", ALL)
    several = paired_difference(metrics, "stoi", "bark", "mse", ("speech", "drums"))
    assert several.n == 3 * 3


def test_a_missing_loss_or_metric_is_an_empty_contrast():
    metrics = noisy_metrics()
    for contrast in (paired_difference(metrics, "stoi", "bark", "nope"),
                     paired_difference(metrics, "nope", "bark", "mse"),
                     paired_difference(metrics, "stoi", "bark", "mse", "birdsong")):
        assert contrast.n == 0 and math.isnan(contrast.mean) and math.isnan(contrast.low)
    mean, low, high, n = paired_difference(metrics, "si_sdr", "bark", "mse")  # unpacks as a plain tuple
    assert n == 3 * 4 - 1


# --- best in a row: only where the paired difference from every other loss excludes zero ---------------------

INFO = {"si_sdr": {"unit": "dB", "higher_is_better": True, "ideal": None},
        "lsd": {"unit": "dB", "higher_is_better": False, "ideal": None},
        "hf_energy_ratio_db_2k": {"unit": "dB", "higher_is_better": None, "ideal": 0.0},
        "error_flatness": {"unit": "0-1", "higher_is_better": None, "ideal": None}}


def one_metric(values: dict[str, list[float]], metric: str = "si_sdr") -> pd.DataFrame:
    """Per loss, one value per (seed, item): 2 seeds × 3 items, the list in that order."""
    rows = [{"job": f"{loss}-seed{k // 3}", "loss": loss, "seed": k // 3, "item": f"speech-0{k % 3}",
             "category": "speech", "metric": metric, "value": v, "error": None}
            for loss, vs in values.items() for k, v in enumerate(vs)]
    return pd.DataFrame(rows)


def pooled_table(metrics: pd.DataFrame, losses: list[str]):
    summary = metric_summary(metrics, per_category=False)
    return present.metric_summary_table(summary, ALL, losses, sorted(set(metrics["metric"])), INFO, metrics)


def test_overlapping_intervals_are_tied_not_bold():
    # the report once bolded -0.00594 over -0.0232 dB although the intervals overlapped
    metrics = one_metric({"mse": [-0.0232 + d for d in (0.05, -0.04, 0.02, -0.03, 0.01, -0.01)],
                          "bark": [-0.00594 + d for d in (-0.03, 0.04, -0.05, 0.02, 0.0, 0.02)]})
    assert best_in_row(metrics, "si_sdr", ["mse", "bark"], True) == RowBest(None, ("mse", "bark"))
    table = pooled_table(metrics, ["mse", "bark"])
    assert table.columns[-1] == "best" and table.rows[0][-1] == "tied: mse, bark"
    assert not table.bold


def test_a_clear_winner_is_bold_and_named():
    metrics = one_metric({"mse": [1, 2, 3, 1, 2, 3], "bark": [2, 3, 4, 2.1, 3.1, 4.1], "l1": [0, 1, 2, 0, 1, 2]})
    assert best_in_row(metrics, "si_sdr", ["mse", "bark", "l1"], True) == RowBest("bark", ())
    table = pooled_table(metrics, ["mse", "bark", "l1"])
    assert table.rows[0][-1] == "bark" and table.bold == {(0, 4)}
    lower = one_metric({"mse": [1, 2, 3, 1, 2, 3], "bark": [2, 3, 4, 2.1, 3.1, 4.1]}, "lsd")
    assert best_in_row(lower, "lsd", ["mse", "bark"], False) == RowBest("mse", ())


def test_only_the_losses_not_clearly_worse_than_the_leader_are_tied():
    metrics = one_metric({"mse": [5, 5.2, 4.9, 5.1, 5.0, 4.8], "bark": [5.1, 4.9, 5.2, 4.8, 5.0, 5.1],
                          "l1": [0, 1, 0, 1, 0, 1]})
    assert best_in_row(metrics, "si_sdr", ["mse", "bark", "l1"], True) == RowBest(None, ("mse", "bark"))


def test_an_ideal_is_judged_by_each_items_distance_to_it():
    # bark averages 0 dB (the leader by means) but is 3 dB off on every item; mse is steadily 0.5 dB off:
    # the leader is not closer item by item, so neither is marked
    metrics = one_metric({"mse": [0.5, 0.6, 0.4, 0.5, 0.6, 0.4], "bark": [3, -3, 3, -3, 3, -3]},
                         "hf_energy_ratio_db_2k")
    assert best_in_row(metrics, "hf_energy_ratio_db_2k", ["mse", "bark"], None, 0.0) == RowBest(None, ("mse", "bark"))
    steady = one_metric({"mse": [0.5, 0.6, 0.4, 0.5, 0.6, 0.4], "bark": [3, 3.2, 2.9, 3.1, 3, 3]},
                        "hf_energy_ratio_db_2k")
    assert best_in_row(steady, "hf_energy_ratio_db_2k", ["mse", "bark"], None, 0.0) == RowBest("mse", ())


def test_descriptive_metrics_and_single_losses_rank_nothing():
    metrics = one_metric({"mse": [0.1] * 6, "bark": [0.9] * 6}, "error_flatness")
    assert best_in_row(metrics, "error_flatness", ["mse", "bark"], None, None) == RowBest(None, ())
    assert pooled_table(metrics, ["mse", "bark"]).rows[0][-1] == "–"
    alone = one_metric({"mse": [1, 2, 3, 1, 2, 3]})
    assert best_in_row(alone, "si_sdr", ["mse", "bark"], True) == RowBest(None, ())
