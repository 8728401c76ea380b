"""Declared hypotheses checked: the tables' contrast, bootstrap p-values, Holm across the set, verdicts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from earshot.results import present
from earshot.results.aggregate import paired_difference, paired_differences
from earshot.results.claims import UNDERTRAINED, check_hypotheses, verdict
from earshot.results.hypotheses import SEED_HYPOTHESES_FILE, Hypothesis, declared_for_run, read

INFO = {
    "hf_energy_ratio_db_2k": {"higher_is_better": None, "ideal": 0.0, "unit": "dB"},
    "stoi": {"higher_is_better": True, "ideal": None, "unit": "0-1"},
    "error_flatness": {"higher_is_better": None, "ideal": None, "unit": "0-1"},
    "snr": {"higher_is_better": True, "ideal": None, "unit": "dB"},
    "si_sdr": {"higher_is_better": True, "ideal": None, "unit": "dB"},
    "lsd": {"higher_is_better": False, "ideal": None, "unit": "dB"},
}
SEED, _ = read(SEED_HYPOTHESES_FILE)


def _metrics(metric, mse_values, bark_values, category="speech", losses=("mse", "bark")):
    rows = []
    for loss, values in zip(losses, (mse_values, bark_values)):
        for i, v in enumerate(values):
            rows.append({"job": f"{loss}-seed{i % 2}", "loss": loss, "seed": i % 2, "item": f"{category}-{i // 2:02d}",
                         "category": category, "metric": metric, "value": v, "error": None})
    return pd.DataFrame(rows)


def _seed_like_run() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.normal(0, 1, 20)
    return pd.concat([_metrics("hf_energy_ratio_db_2k", base, base + 3 + rng.normal(0, 0.1, 20)),
                      _metrics("stoi", base, base + 0.5 + rng.normal(0, 0.05, 20)),
                      _metrics("error_flatness", base, base + rng.normal(0, 1, 20))])


def _hypothesis(name="h", metric="snr", direction="higher", **fields) -> Hypothesis:
    return Hypothesis(name=name, metric=metric, treatment="bark", baseline="mse", direction=direction, **fields)


def test_the_default_set_reproduces_the_seed_claims():
    checked = check_hypotheses(_seed_like_run(), SEED, INFO)
    assert checked.set_index("metric")["verdict"].to_dict() == {
        "hf_energy_ratio_db_2k": "supported", "stoi": "contradicted", "error_flatness": "inconclusive"}
    assert list(checked["contrast"]) == ["bark − mse"] * 3
    assert list(checked["categories"]) == ["all", "speech", "all"]


def test_the_contrast_is_the_tables_paired_difference():
    metrics = _seed_like_run()
    checked = check_hypotheses(metrics, SEED, INFO).set_index("metric")
    table = paired_differences(metrics, "bark", "mse").set_index(["metric", "category"])
    for metric in ("hf_energy_ratio_db_2k", "stoi", "error_flatness"):
        row, mine = table.loc[(metric, "all")], checked.loc[metric]
        assert (mine["mean"], mine["ci_low"], mine["ci_high"], mine["pairs"]) == (
            row["mean"], row["ci_low"], row["ci_high"], row["pairs"])


def test_an_uncorrected_p_below_alpha_is_exactly_a_95_interval_that_decides():
    rng = np.random.default_rng(3)
    for shift in np.linspace(0.0, 0.8, 9):
        base = rng.normal(0, 1, 16)
        metrics = _metrics("snr", base, base + shift + rng.normal(0, 1, 16))
        (row,) = check_hypotheses(metrics, (_hypothesis(),), INFO).to_dict("records")
        excludes = row["ci_low"] > 0 or row["ci_high"] < 0
        assert (row["p"] < 0.05) == excludes, (shift, row)
        assert row["p_holm"] == row["p"]  # one hypothesis: nothing to correct


def _borderline(n: int = 20, t: float = 2.2) -> pd.DataFrame:
    """bark − mse on snr with a mean of ``t`` standard errors: 95 % interval excludes 0, p ≈ 0.03."""
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(n)
    noise = (noise - noise.mean()) / noise.std(ddof=1)
    base = rng.normal(0, 1, n)
    return _metrics("snr", base, base + t / np.sqrt(n) + noise)


def test_holm_across_the_declared_set_turns_a_borderline_support_inconclusive():
    null = np.random.default_rng(2).normal(0, 1, 20)
    metrics = pd.concat([_borderline(), _metrics("si_sdr", null, null[::-1]), _metrics("lsd", null, null[::-1])])
    alone = check_hypotheses(metrics, (_hypothesis("snr up"),), INFO)
    assert 1 / 3 * 0.05 < alone["p"].iloc[0] < 0.05 and alone["verdict"].iloc[0] == "supported"
    family = (_hypothesis("snr up"), _hypothesis("si_sdr up", "si_sdr"), _hypothesis("lsd down", "lsd", "lower"))
    checked = check_hypotheses(metrics, family, INFO).set_index("name")
    assert checked.loc["snr up", "p"] == alone["p"].iloc[0]  # the same test, corrected for three
    assert checked.loc["snr up", "p_holm"] >= 0.05 and checked.loc["snr up", "verdict"] == "inconclusive"
    assert (checked.loc["snr up", "ci_low"], checked.loc["snr up", "ci_high"]) == (
        alone["ci_low"].iloc[0], alone["ci_high"].iloc[0])  # the printed interval stays the tables'


def test_a_smallest_effect_needs_the_interval_beyond_it():
    metrics = _seed_like_run()  # hf: bark − mse ≈ 3.0 dB [2.97, 3.05]
    hf = SEED[0]
    assert check_hypotheses(metrics, (hf.model_copy(update={"smallest_effect": 2.5}),), INFO)["verdict"].iloc[0] \
        == "supported"
    assert check_hypotheses(metrics, (hf.model_copy(update={"smallest_effect": 3.0}),), INFO)["verdict"].iloc[0] \
        == "inconclusive"


def test_closer_to_ideal_compares_distances_to_the_ideal():
    rng = np.random.default_rng(4)
    mse = -6.0 + rng.normal(0, 0.3, 20)  # 6 dB of high frequencies lost
    bark = 1.0 + rng.normal(0, 0.3, 20)  # 1 dB too much: closer to 0 dB
    metrics = _metrics("hf_energy_ratio_db_2k", mse, bark)
    h = _hypothesis("closer", "hf_energy_ratio_db_2k", "closer-to-ideal")
    (row,) = check_hypotheses(metrics, (h,), INFO).to_dict("records")
    assert row["contrast"] == "|mse − 0| − |bark − 0|" and row["verdict"] == "supported"
    assert np.isclose(row["mean"], np.mean(np.abs(mse) - np.abs(bark)))
    lower = check_hypotheses(metrics, (_hypothesis("down", "hf_energy_ratio_db_2k", "lower"),), INFO)
    assert lower["verdict"].iloc[0] == "contradicted"  # bark's ratio is higher, not lower


def test_hypotheses_need_both_losses_and_an_undertrained_system_is_not_meaningful():
    metrics = _seed_like_run()
    only_mse = metrics[metrics["loss"] == "mse"]
    checked = check_hypotheses(only_mse, SEED, INFO)
    assert set(checked["verdict"]) == {"inconclusive"} and set(checked["pairs"]) == {0}
    assert set(check_hypotheses(metrics, SEED, INFO, undertrained={"bark"})["verdict"]) == {UNDERTRAINED}
    assert verdict("supports", 0.001, 20, ("bark", "mse"), {"mse"}) == UNDERTRAINED
    assert verdict("contradicts", 0.001, 20, ("bark", "mse")) == "contradicted"
    assert verdict("supports", 0.2, 20, ("bark", "mse")) == "inconclusive"


def test_the_table_shows_each_hypothesis_when_it_was_declared_its_interval_and_verdict(tmp_path):
    metrics = _seed_like_run()
    declaration = declared_for_run(tmp_path)  # a folder that records none: the seed's default
    table = present.hypotheses_table(check_hypotheses(metrics, SEED, INFO), declaration, INFO)
    assert table.columns == present.HYPOTHESES_COLUMNS
    first = table.rows[0]
    assert first[:5] == ["bark keeps more high frequencies",
                         "the bark loss keeps more high-frequency energy (above 2 kHz) than MSE",
                         "nowhere (the run records none)", "hf_energy_ratio_db_2k", "bark − mse"]
    assert first[5] == "–"  # no training recorded
    assert first[6] == "20" and first[7] == "3.01 [2.97, 3.05]" and first[8] == "< 0.001"
    assert first[9] == "supported" and (0, 9) in table.bold
    assert table.rows[1][3] == "stoi (speech)" and table.rows[1][9] == "contradicted"
    assert table.rows[2][9] == "inconclusive" and (2, 9) not in table.bold
    assert "Holm-adjusted over the 3 declared" in table.caption and "the seed's default set" in table.caption
    contrast = paired_difference(metrics, "hf_energy_ratio_db_2k", "bark", "mse")
    assert first[7] == present.metric_interval("hf_energy_ratio_db_2k", contrast.mean, contrast.low, contrast.high,
                                               INFO)


def _training(steps: dict[str, int]) -> pd.DataFrame:
    return pd.DataFrame([{"job": f"{loss}-seed{seed}", "loss": loss, "seed": seed, "status": "done",
                          "steps": n, "seconds": 1.0} for loss, n in steps.items() for seed in (0, 1)])


def test_a_verdict_on_unequally_trained_systems_says_so_and_names_the_steps():
    checked = check_hypotheses(_seed_like_run(), SEED, INFO, training=_training({"mse": 1153, "bark": 167}))
    assert list(checked["verdict"]) == ["supported; unequal training", "contradicted; unequal training",
                                        "inconclusive; unequal training"]
    table = present.hypotheses_table(checked, declared_for_run(Path("/nonexistent-run")), INFO)
    steps = table.columns.index("steps")
    assert {row[steps] for row in table.rows} == {"bark 167 · mse 1153"}
    assert all(row[-1].endswith("unequal training") for row in table.rows)


def test_equal_steps_and_untrained_baselines_leave_the_verdict_alone():
    metrics = _seed_like_run()
    equal = check_hypotheses(metrics, SEED, INFO, training=_training({"mse": 500, "bark": 500}))
    assert list(equal["verdict"]) == ["supported", "contradicted", "inconclusive"]
    table = present.hypotheses_table(equal, declared_for_run(Path("/nonexistent-run")), INFO)
    assert {row[table.columns.index("steps")] for row in table.rows} == {"500"}
    # pca-128 has no job: only the trained side's count is compared
    pca = metrics.replace({"loss": {"mse": "pca-128"}})
    against = (Hypothesis(name="h", metric="stoi", treatment="bark", baseline="pca-128", direction="higher"),)
    (row,) = check_hypotheses(pca, against, INFO, training=_training({"bark": 500, "mse": 90})).to_dict("records")
    assert row["steps"] == {"bark": [500]} and not row["unequal"] and "unequal" not in row["verdict"]
