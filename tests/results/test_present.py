"""The presentation layer's formatting rules: one per quantity, the same wherever a table is shown."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from earshot.results import present
from earshot.results.claims import check_hypotheses
from earshot.results.hypotheses import SEED_HYPOTHESES_FILE, declared_for_run, read


INFO = {"si_sdr": {"unit": "dB", "higher_is_better": True, "ideal": None},
        "stoi": {"unit": "0-1", "higher_is_better": True, "ideal": None},
        "pesq_wb": {"unit": "MOS-LQO", "higher_is_better": True, "ideal": None},
        "hf_energy_ratio_db_2k": {"unit": "dB", "higher_is_better": None, "ideal": 0.0},
        "error_flatness": {"unit": "0-1", "higher_is_better": None, "ideal": None},
        "mrstft": {"unit": "", "higher_is_better": False, "ideal": None}}


@pytest.mark.parametrize("metric, mean, low, high, expected", [
    ("si_sdr", 23.0, 20.0, 26.1, "23.00 [20.00, 26.10]"),  # once printed "23 [20, 26.1]"
    ("stoi", 0.8, 0.75123, 0.9, "0.800 [0.751, 0.900]"),
    ("pesq_wb", 3.14159, 2.9, 3.4, "3.14 [2.90, 3.40]"),
    ("mrstft", 1234.5, 1000.0, 1500.0, "1234 [1000, 1500]"),  # no unit: 3 significant digits of the mean
    ("mrstft", 0.012345, 0.01, 0.0151, "0.0123 [0.0100, 0.0151]"),
    ("unknown", 2.5, 2.0, 3.0, "2.50 [2.00, 3.00]"),
    ("error_flatness", 0.00612, 0.00581, 0.0066, "0.0061 [0.0058, 0.0066]"),  # 2 significant digits at least
    ("si_sdr", -0.0123, -0.03, 0.01, "-0.012 [-0.030, 0.010]"),
])
def test_an_interval_keeps_the_means_precision(metric, mean, low, high, expected):
    text = present.metric_interval(metric, mean, low, high, INFO)
    assert text == expected
    decimals = [len(part.split(".")[1]) if "." in part else 0
                for part in text.replace("[", "").replace("]", "").replace(",", "").split()]
    assert len(set(decimals)) == 1


def test_no_interval_shows_the_mean_alone_and_missing_is_a_dash():
    assert present.metric_interval("si_sdr", 5.0, math.nan, math.nan, INFO) == "5.00"
    assert present.metric_interval("si_sdr", math.nan, math.nan, math.nan, INFO) == "–"
    assert present.metric_value("stoi", None, INFO) == "–"
    assert present.score_interval(-0.04, -1.0, 0.9) == "0.0 [-1.0, 0.9]"  # no "-0.0"


@pytest.mark.parametrize("p, expected", [(0.0004, "< 0.001"), (0.001, "0.001"), (0.01234, "0.012"),
                                         (0.5, "0.500"), (math.nan, "–"), (None, "–")])
def test_p_values_print_one_way(p, expected):
    assert present.p_value(p) == expected


def test_p_in_a_sentence():
    assert present.p_text(0.0001) == "p < 0.001" and present.p_text(0.04) == "p = 0.040"


def test_scores_correlations_and_statistics_have_their_own_decimals():
    assert present.score(66.4321) == "66.4"
    assert present.correlation(0.83333) == "0.83"
    assert present.statistic(17.5714) == "17.57"
    assert present.count(7.0) == "7" and present.yes_no(True) == "yes"
    assert present.number(1.23456) == "1.23" and present.number(123456.0) == "123456"


def test_direction_marks_come_from_the_metric_info():
    assert [present.direction(m, INFO) for m in ("si_sdr", "mrstft", "hf_energy_ratio_db_2k", "error_flatness")] \
        == ["↑", "↓", "→0", ""]


def test_hypotheses_rows_keep_the_verdict_and_statement_whole(tmp_path):

    rows = []
    for seed in range(2):
        for item in range(6):
            for loss, value in (("bark", -3.0 + 0.1 * item), ("mse", -8.0 + 0.05 * item)):
                rows.append({"job": f"{loss}-seed{seed}", "loss": loss, "seed": seed, "item": f"speech-{item}",
                             "category": "speech", "metric": "hf_energy_ratio_db_2k", "value": value, "error": None})
    hypotheses, _ = read(SEED_HYPOTHESES_FILE)
    table = present.hypotheses_table(check_hypotheses(pd.DataFrame(rows), hypotheses, INFO),
                                     declared_for_run(tmp_path), INFO)
    assert table.columns == ["hypothesis", "statement", "declared", "metric", "contrast", "steps", "pairs",
                             "mean [95 % CI]", "p (Holm)", "verdict"]
    first = table.rows[0]
    assert first[1] == "the bark loss keeps more high-frequency energy (above 2 kHz) than MSE"
    assert first[4] == "bark − mse" and first[6] == "12" and first[9] == "supported" and (0, 9) in table.bold
    assert first[7].startswith("5.") and first[7].count(".") == 3
    assert {row[9] for row in table.rows[1:]} == {"inconclusive"}  # no stoi, no error_flatness rows



def test_mushra_tables_split_systems_from_controls():
    summary = pd.DataFrame([
        {"condition": "mse-seed0", "kind": "system", "raters": 5, "ratings": 15, "mean": 43.44, "ci_low": 38.51,
         "ci_high": 48.36, "crossed_low": 36.02, "crossed_high": 50.9, "median": 45.8},
        {"condition": "reference", "kind": "reference", "raters": 5, "ratings": 15, "mean": 100.0, "ci_low": 100.0,
         "ci_high": 100.0, "crossed_low": 100.0, "crossed_high": 100.0, "median": 100.0},
        {"condition": "anchor-low", "kind": "anchor", "raters": 1, "ratings": 3, "mean": 15.0, "ci_low": math.nan,
         "ci_high": math.nan, "crossed_low": math.nan, "crossed_high": math.nan, "median": 15.0}])
    systems, controls = present.mushra_tables(summary)
    assert systems.columns[4:6] == ["mean [95 % t-CI]", "mean [95 % raters × items]"]
    assert systems.rows == [["mse-seed0", "system", "5", "15", "43.4 [38.5, 48.4]", "43.4 [36.0, 50.9]", "45.8"]]
    assert [row[4] for row in controls.rows] == ["100.0 [100.0, 100.0]", "15.0"]
    assert [row[5] for row in controls.rows] == ["100.0 [100.0, 100.0]", "15.0"]
    assert present.mushra_tables(summary.iloc[:0]) == []
