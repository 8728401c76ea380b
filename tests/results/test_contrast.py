"""One estimator for a contrast: the tables' paired differences and aggregate.paired_difference agree exactly."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from earshot.results.aggregate import ALL, paired_difference, paired_differences

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
