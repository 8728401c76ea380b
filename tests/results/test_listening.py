"""MUSHRA statistics: post-screening, intervals, tests, readers."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from earshot.results.listening import (RatingsError, analyze_ratings, condition_summary, friedman_test, mixed_model,
                               pairwise_wilcoxon, post_screen, read_long_csv, read_ratings, read_webmushra_csv)
from earshot.results.stats import crossed_bootstrap_ci, mean_ci

ITEMS = [f"item-{i:02d}" for i in range(20)]


def _rater(name, items=ITEMS, reference=100.0, mid=50.0, systems=None, low_reference_on=0, high_mid_on=0):
    """One rater's ratings: hidden reference and mid anchor, flagged on the first N items."""
    rows = []
    for i, item in enumerate(items):
        rows.append((name, item, "reference", 80.0 if i < low_reference_on else reference))
        rows.append((name, item, "anchor-mid", 95.0 if i < high_mid_on else mid))
        rows.append((name, item, "anchor-low", 20.0))
        for system, score in (systems or {"a-seed0": 60.0}).items():
            rows.append((name, item, system, score))
    return rows


def _frame(*raters):
    return pd.DataFrame([row for rater in raters for row in rater], columns=["rater", "item", "condition", "score"])


# --- post-screening ------------------------------------------------------------------


def test_exactly_15_percent_is_kept_more_is_excluded():
    ratings = _frame(_rater("ok"), _rater("at-limit", low_reference_on=3),  # 3/20 = 15 %
                     _rater("over", low_reference_on=4),  # 4/20 = 20 %
                     _rater("mid-high", high_mid_on=4), _rater("mid-limit", high_mid_on=3))
    result = post_screen(ratings)
    assert result.n_before == 5 and result.n_after == 3
    assert sorted(result.excluded) == ["mid-high", "over"]
    table = result.raters.set_index("rater")
    assert table.loc["at-limit", "reference_below"] == 3 and not table.loc["at-limit", "excluded"]
    assert "4 of 20" in table.loc["over", "reason"]
    assert set(result.ratings["rater"]) == {"ok", "at-limit", "mid-limit"}


def test_screening_thresholds_are_configurable():
    ratings = _frame(_rater("strict", reference=92.0), _rater("mid-high", high_mid_on=10))
    assert post_screen(ratings).excluded == ["mid-high"]
    assert post_screen(ratings, anchor_threshold=None).excluded == []  # mid-anchor rule off
    assert post_screen(ratings, reference_threshold=95, anchor_threshold=None).excluded == ["strict"]
    assert post_screen(ratings, anchor_max_fraction=0.5).excluded == []  # 10/20 is not above 50 %


def test_rater_without_reference_is_kept_and_noted():
    ratings = _frame(_rater("ok"))
    ratings = pd.concat([ratings, pd.DataFrame([("nr", "item-00", "a-seed0", 40.0)], columns=ratings.columns)])
    result = post_screen(ratings)
    assert result.excluded == []
    assert result.raters.set_index("rater").loc["nr", "reason"].startswith("not screened")


# --- means, intervals and tests -------------------------------------------------------


def test_condition_mean_is_over_rater_means_by_hand():
    # Rater means for "sys": 60 (two items 50, 70), 70, 80 → mean 70, sd 10, t(2) = 4.302653
    ratings = pd.DataFrame([("r1", "i1", "sys", 50.0), ("r1", "i2", "sys", 70.0), ("r2", "i1", "sys", 70.0),
                            ("r3", "i1", "sys", 80.0)], columns=["rater", "item", "condition", "score"])
    row = condition_summary(ratings).set_index("condition").loc["sys"]
    assert row["mean"] == pytest.approx(70.0)
    assert row["ci_high"] - row["mean"] == pytest.approx(4.302653 * 10 / math.sqrt(3), rel=1e-6)
    assert row["raters"] == 3 and row["ratings"] == 4


def _random_ratings(raters=10, items=4, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(raters):
        bias = rng.normal(0, 5)
        for i in range(items):
            for c, level in (("a", 40), ("b", 50), ("c", 55), ("reference", 100)):
                score = 100.0 if c == "reference" else float(np.clip(level + bias + rng.normal(0, 8), 0, 100))
                rows.append((f"r{r}", f"i{i}", c, score))
    return pd.DataFrame(rows, columns=["rater", "item", "condition", "score"])


def test_summary_interval_matches_scipy_t():
    ratings = _random_ratings()
    per_rater = ratings[ratings["condition"] == "b"].groupby("rater")["score"].mean()
    low, high = stats.t.interval(0.95, len(per_rater) - 1, loc=per_rater.mean(), scale=stats.sem(per_rater))
    row = condition_summary(ratings).set_index("condition").loc["b"]
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert mean_ci(per_rater)[1] == pytest.approx(low)
    assert list(condition_summary(ratings)["condition"]) == ["a", "b", "c", "reference"]


def test_friedman_by_hand_and_against_scipy():
    # 3 raters ranking 3 systems identically: R = 3, 6, 9 → χ² = 12/(3·3·4)·126 − 3·3·4 = 6, W = 1
    rows = [(f"r{r}", "i", c, s) for r in range(3) for c, s in (("a", 10.0 + r), ("b", 20.0 + r), ("c", 30.0))]
    result = friedman_test(pd.DataFrame(rows, columns=["rater", "item", "condition", "score"]))
    assert result["statistic"] == pytest.approx(6.0)
    assert result["pvalue"] == pytest.approx(math.exp(-3))  # χ²(2) survival at 6
    assert result["kendalls_w"] == pytest.approx(1.0)

    ratings = _random_ratings()
    wide = ratings.pivot_table(index="rater", columns="condition", values="score", aggfunc="mean")
    expected = stats.friedmanchisquare(wide["a"], wide["b"], wide["c"])
    got = friedman_test(ratings)
    assert got["statistic"] == pytest.approx(expected.statistic) and got["pvalue"] == pytest.approx(expected.pvalue)
    assert got["conditions"] == 3 and got["blocks"] == 10  # the hidden reference is not a system


def test_friedman_needs_three_systems():
    ratings = _random_ratings()
    result = friedman_test(ratings[ratings["condition"].isin(["a", "b"])])
    assert math.isnan(result["statistic"]) and "3 systems" in result["note"]


def test_pairwise_wilcoxon_matches_scipy_and_statsmodels_holm():
    multipletests = pytest.importorskip("statsmodels.stats.multitest").multipletests
    ratings = _random_ratings(raters=12, seed=3)
    table = pairwise_wilcoxon(ratings)
    wide = ratings.pivot_table(index="rater", columns="condition", values="score", aggfunc="mean")
    expected = [stats.wilcoxon(wide[a], wide[b]).pvalue for a, b in (("a", "b"), ("a", "c"), ("b", "c"))]
    assert list(zip(table["a"], table["b"])) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert table["pvalue"].to_numpy() == pytest.approx(expected)
    assert table["p_holm"].to_numpy() == pytest.approx(multipletests(expected, method="holm")[1])
    assert (table["rank_biserial"] < 0).all()  # a < b < c on average, so a − b is mostly negative


def test_pairwise_wilcoxon_by_hand():
    # 6 raters, b − a = 1..6 all positive: exact two-sided p = 2 / 2^6 = 0.03125, r = -1 for a − b
    rows = [(f"r{i}", "i", "a", 50.0) for i in range(6)] + [(f"r{i}", "i", "b", 50.0 + i + 1) for i in range(6)]
    table = pairwise_wilcoxon(pd.DataFrame(rows, columns=["rater", "item", "condition", "score"]))
    assert table.loc[0, "pvalue"] == pytest.approx(0.03125)
    assert table.loc[0, "p_holm"] == pytest.approx(0.03125)  # one test: Holm changes nothing
    assert table.loc[0, "rank_biserial"] == -1.0 and table.loc[0, "statistic"] == 0.0


def test_trial_blocks_use_every_rating():
    ratings = _random_ratings(raters=5, items=4)
    table = pairwise_wilcoxon(ratings, blocks="trial")
    assert (table["n"] == 20).all()
    with pytest.raises(ValueError):
        pairwise_wilcoxon(ratings, blocks="item")


def test_mixed_model_recovers_the_condition_effect():
    pytest.importorskip("statsmodels")
    ratings = _random_ratings(raters=12, items=5, seed=4)
    result = mixed_model(ratings)
    fixed = result["fixed"].set_index("a")
    assert list(fixed.index) == ["b", "c"] and set(fixed["b"]) == {"a"}  # contrasts only: no intercept row
    assert fixed.loc["c", "estimate"] == pytest.approx(15.0, abs=5.0)  # c − a is 15 by construction
    assert fixed.loc["c", "ci_low"] > 0
    assert result["variance"]["residual"] > 0


def test_analysis_notes_missing_trials_and_empty_tests():
    ratings = _random_ratings(raters=6, items=3)
    partial = ratings[~((ratings["rater"] == "r0") & (ratings["item"] == "i2"))]
    analysis = analyze_ratings(partial, with_mixed_model=False)
    assert any("rater r0" in note and "2 of 3 items" in note for note in analysis.notes)
    assert analysis.summary.set_index("condition").loc["a", "raters"] == 6
    empty = analyze_ratings(pd.DataFrame(columns=["rater", "item", "condition", "score"]), "t")
    assert empty.screening is None and empty.notes == ["t: no ratings yet"]
    everyone_out = analyze_ratings(_frame(_rater("x", low_reference_on=20)), with_mixed_model=False)
    assert any("every rater was excluded" in note and "UNSCREENED" in note for note in everyone_out.notes)
    assert everyone_out.summary.set_index("condition").loc["reference", "mean"] == 80.0


# --- readers ------------------------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_long_csv(tmp_path):
    path = _write(tmp_path / "r.csv", "rater,item,condition,score,extra\nr1,speech-01,mse-seed0,55.5,x\n"
                  "r1,speech-01,reference,100,\nr1,speech-01,anchor-low,10,\n\n")
    ratings = read_long_csv(path)
    assert list(ratings["kind"]) == ["system", "reference", "anchor"]
    assert ratings["score"].tolist() == [55.5, 100.0, 10.0]
    assert read_ratings(path).equals(ratings)


@pytest.mark.parametrize("text, message", [
    ("rater,item,score\nr1,a,50\n", "row 1 (header): missing column(s) condition"),
    ("rater,item,condition,score\nr1,a,mse,50\nr1,a,bark,loud\n", "row 3, column 'score': 'loud' is not a number"),
    ("rater,item,condition,score\nr1,a,mse,120\n", "row 2, column 'score': 120 is outside the MUSHRA scale"),
    ("rater,item,condition,score\nr1,,mse,50\n", "row 2, column 'item': empty"),
    ("rater,item,condition,score\nr1,a,mse\n", "row 2, column 'score': missing"),
    ("", "empty file"),
])
def test_long_csv_errors_name_row_and_column(tmp_path, text, message):
    path = _write(tmp_path / "bad.csv", text)
    with pytest.raises(RatingsError) as error:
        read_ratings(path)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_file(tmp_path):
    with pytest.raises(RatingsError, match="cannot read"):
        read_long_csv(tmp_path / "nope.csv")


WEBMUSHRA = """session_test_id,session_uuid,email,age,trial_id,rating_stimulus,rating_score,rating_time,rating_comment
earshot,u1,a@x,30,trial1,reference,100,12000,
earshot,u1,a@x,30,trial1,anchor35,12,12000,
earshot,u1,a@x,30,trial1,anchor70,45,12000,
earshot,u1,a@x,30,trial1,C1,60,12000,ok
earshot,u2,b@x,40,trial1,reference,95,9000,
earshot,u2,b@x,40,trial1,C1,70,9000,
"""


def test_webmushra_csv(tmp_path):
    ratings = read_webmushra_csv(_write(tmp_path / "mushra.csv", WEBMUSHRA))
    assert ratings["rater"].tolist() == ["u1"] * 4 + ["u2"] * 2
    assert ratings["item"].unique().tolist() == ["trial1"]
    assert dict(zip(ratings["condition"], ratings["kind"])) == {"reference": "reference", "anchor35": "anchor",
                                                                "anchor70": "anchor", "C1": "system"}
    assert read_ratings(tmp_path / "mushra.csv")["score"].sum() == ratings["score"].sum()
    # anchor70 is the mid anchor for screening
    flagged = WEBMUSHRA.replace("anchor70,45", "anchor70,99")
    assert post_screen(read_ratings(_write(tmp_path / "m2.csv", flagged))).excluded == ["u1"]


def test_webmushra_without_uuid_uses_participant_fields(tmp_path):
    text = ("session_test_id,name,trial_id,rating_stimulus,rating_score,rating_time,rating_comment\n"
            "t,ann,trial1,reference,100,1,\nt,bob,trial1,reference,90,1,\n")
    assert read_webmushra_csv(_write(tmp_path / "m.csv", text))["rater"].tolist() == ["ann", "bob"]


def test_webmushra_errors(tmp_path):
    bad = WEBMUSHRA.replace("trial1,C1,70", "trial1,C1,seventy")
    with pytest.raises(RatingsError, match=r"row 7, column 'rating_score': 'seventy' is not a number"):
        read_ratings(_write(tmp_path / "m.csv", bad))
    with pytest.raises(RatingsError, match="missing column"):
        read_webmushra_csv(_write(tmp_path / "m2.csv", "session_uuid,trial_id,rating_score\nu,t,1\n"))


# --- the crossed (raters × items) bootstrap beside the BS.1534-3 t-interval --------------------------------------


def _crossed_ratings(rater_sd: float, item_sd: float, raters=8, items=6, seed=1):
    """One system's ratings: 50 + a rater's bias (normal, sd ``rater_sd``) + an item's difficulty (evenly
    spread, sd ``item_sd``) + noise."""
    rng = np.random.default_rng(seed)
    spread = np.linspace(-1, 1, items)
    rater_bias, item_bias = rng.normal(0, rater_sd, raters), item_sd * spread / spread.std()
    rows = [(f"r{r}", f"i{i}", "sys", float(50 + rater_bias[r] + item_bias[i] + rng.normal(0, 3)))
            for r in range(raters) for i in range(items)]
    return pd.DataFrame(rows, columns=["rater", "item", "condition", "score"])


def test_with_rater_and_item_effects_the_crossed_interval_is_wider():
    ratings = _crossed_ratings(rater_sd=8, item_sd=8)
    row = condition_summary(ratings).set_index("condition").loc["sys"]
    assert row["crossed_low"] < row["mean"] < row["crossed_high"]
    assert row["crossed_high"] - row["crossed_low"] > row["ci_high"] - row["ci_low"]  # the t-CI takes items as fixed
    flat_low, flat_high = mean_ci(ratings["score"])[1:]  # every rating as an independent observation
    assert row["crossed_high"] - row["crossed_low"] > 2 * (flat_high - flat_low)
    matrix = ratings.pivot_table(index="rater", columns="item", values="score")
    assert crossed_bootstrap_ci(matrix.to_numpy())[0] == pytest.approx(row["mean"])


def test_the_crossed_interval_is_reproducible_and_needs_two_of_each():
    ratings = _crossed_ratings(rater_sd=5, item_sd=5)
    assert condition_summary(ratings).equals(condition_summary(ratings))
    matrix = ratings.pivot_table(index="rater", columns="item", values="score").to_numpy(copy=True)
    assert crossed_bootstrap_ci(matrix) == crossed_bootstrap_ci(matrix)
    assert crossed_bootstrap_ci(matrix, seed=1) != crossed_bootstrap_ci(matrix)
    matrix[0, :3] = np.nan  # a rater who skipped items: still a rater, the mean is over what was rated
    assert np.isfinite(crossed_bootstrap_ci(matrix)).all()
    assert math.isnan(crossed_bootstrap_ci(matrix[:1])[1])  # one rater: the raters' spread is unknown
    assert math.isnan(crossed_bootstrap_ci(matrix[:, :1])[1])  # one item
    assert math.isnan(crossed_bootstrap_ci([[np.nan]])[0])
