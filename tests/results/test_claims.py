"""The claims check: verdicts computed from paired differences."""

from __future__ import annotations

import numpy as np
import pandas as pd

from earshot.results.claims import check_claims, paired_differences
from earshot.results.stats import mean_ci


def _metrics(metric, mse_values, bark_values, category="speech"):
    rows = []
    for loss, values in (("mse", mse_values), ("bark", bark_values)):
        for i, v in enumerate(values):
            rows.append({"job": f"{loss}-seed{i % 2}", "loss": loss, "seed": i % 2, "item": f"{category}-{i // 2:02d}",
                         "category": category, "metric": metric, "value": v, "error": None})
    return pd.DataFrame(rows)


def test_mean_ci_matches_the_t_interval():
    mean, low, high = mean_ci([1.0, 2.0, 3.0, 4.0])
    assert mean == 2.5
    assert np.isclose(high - mean, 3.182446 * np.std([1, 2, 3, 4], ddof=1) / 2, rtol=1e-5)
    assert np.isnan(mean_ci([1.0])[1])


def test_pairs_are_matched_by_seed_and_item():
    frame = _metrics("stoi", [0.9, 0.8, 0.7, 0.6], [0.5, 0.5, 0.5, np.nan])
    diffs = paired_differences(frame, "stoi", "bark", "mse")
    assert sorted(diffs.round(6).tolist()) == [-0.4, -0.3, -0.2]


def test_verdicts_follow_the_interval():
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 20)
    hf = _metrics("hf_energy_ratio_db_2k", base, base + 3 + rng.normal(0, 0.1, 20))
    stoi = _metrics("stoi", base, base + 0.5 + rng.normal(0, 0.05, 20))
    flat = _metrics("error_flatness", base, base + rng.normal(0, 1, 20))
    verdicts = check_claims(pd.concat([hf, stoi, flat])).set_index("metric")["verdict"]
    assert verdicts.to_dict() == {"hf_energy_ratio_db_2k": "supported", "stoi": "contradicted",
                                  "error_flatness": "inconclusive"}


def test_claims_need_both_losses():
    frame = _metrics("stoi", [0.9, 0.8], [0.5, 0.5])
    only_mse = frame[frame["loss"] == "mse"]
    assert set(check_claims(only_mse)["verdict"]) == {"inconclusive"}
