"""MOS / ACR statistics: the interval over raters and items, gold questions, screening, the report's door."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from earshot.results import mos
from earshot.results.analyses import analyze_test
from earshot.results.listening import read_ratings

# One condition, three raters × three items (rows: raters r1-r3, columns: items i1-i3).
GRID = [[5, 4, 3],
        [3, 3, 1],
        [4, 2, 2]]


def grid_rows(grid=GRID, condition="mse") -> pd.DataFrame:
    return pd.DataFrame([{"type": "mos", "rater": f"r{r + 1}", "item": f"i{i + 1}", "condition": condition,
                          "kind": "system", "score": float(score)}
                         for r, line in enumerate(grid) for i, score in enumerate(line)])


def test_the_interval_is_the_two_way_cluster_robust_one_computed_by_hand():
    found = mos.cluster_interval(grid_rows())
    # MOS = 27 / 9 = 3. Residuals (score - 3): r1: 2 1 0, r2: 0 0 -2, r3: 1 -1 -1.
    # Rater sums 3, -2, -1: squares 14; V_rater = 3/2 · 14/81 = 21/81.
    # Item sums 3, 0, -3: squares 18; V_item = 3/2 · 18/81 = 27/81.
    # Cells (one rating each): squares 4+1+0+0+0+4+1+1+1 = 12; V_cell = 9/8 · 12/81 = 13.5/81.
    # V = (21 + 27 - 13.5) / 81 = 34.5/81; df = min(3 raters, 3 items) - 1 = 2; t(0.975, 2) = 4.302653.
    se = math.sqrt(34.5 / 81)
    assert found["mos"] == 3.0 and found["df"] == 2
    assert found["se"] == pytest.approx(0.652630, abs=1e-6) == pytest.approx(se)
    assert found["ci_low"] == pytest.approx(3 - 4.302653 * se, abs=1e-5)
    assert found["ci_high"] == pytest.approx(3 + 4.302653 * se, abs=1e-5)


def test_the_interval_matches_statsmodels_two_way_clustered_ols_on_an_unbalanced_table():
    rng = np.random.default_rng(3)
    # A strict, a lenient and a neutral rater type, items of four qualities; each rater hears 6 of 10 items.
    rows = pd.DataFrame([{"rater": f"r{r}", "item": f"i{i}",
                          "score": float(np.clip(round(3 + rng.normal() + (r % 3 - 1) * 0.7 + (i % 4 - 1.5) * 0.5),
                                                 1, 5))}
                         for r in range(7) for i in rng.choice(10, 6, replace=False)])
    found = mos.cluster_interval(rows)
    groups = np.column_stack([pd.factorize(rows["rater"])[0], pd.factorize(rows["item"])[0]])
    fit = sm.OLS(rows["score"].to_numpy(), np.ones((len(rows), 1))).fit(cov_type="cluster", cov_kwds={"groups": groups})
    assert found["mos"] == pytest.approx(fit.params[0])
    assert found["se"] == pytest.approx(fit.bse[0], rel=1e-10)
    half = stats.t.ppf(0.975, min(7, rows["item"].nunique()) - 1) * fit.bse[0]
    assert (found["ci_low"], found["ci_high"]) == pytest.approx((fit.params[0] - half, fit.params[0] + half))


def test_an_interval_needs_three_raters_and_three_items():
    two_raters = grid_rows(GRID[:2])
    assert math.isnan(mos.cluster_interval(two_raters)["ci_low"])
    two_items = grid_rows([line[:2] for line in GRID])
    assert math.isnan(mos.cluster_interval(two_items)["ci_high"])
    assert mos.cluster_interval(two_items)["mos"] == pytest.approx(21 / 6)


def test_a_gold_question_passes_when_the_reference_is_good_and_the_low_anchor_poor():
    def one(condition, score):
        return pd.DataFrame([{"rater": "r", "item": "i", "condition": condition, "score": score}])

    assert mos.attention_passed(one("reference", 4)) and mos.attention_passed(one("reference", 5))
    assert not mos.attention_passed(one("reference", 3))
    assert mos.attention_passed(one("anchor-low", 1)) and mos.attention_passed(one("anchor-low", 2))
    assert not mos.attention_passed(one("anchor-low", 3))
    with pytest.raises(ValueError, match="'mse' is not a gold question"):
        mos.attention_passed(one("mse", 5))
    with pytest.raises(ValueError, match="anchor-mid"):
        mos.attention_passed(one("anchor-mid", 1))


def screened_table() -> pd.DataFrame:
    """Four raters rate mse and bark on three items; each answers the two gold questions of item i1,
    and r4 rates the low anchor Good (4): r4 fails one gold question."""
    rows = []
    mse = {"r1": [5, 4, 3], "r2": [3, 3, 1], "r3": [4, 2, 2], "r4": [1, 1, 1]}
    for rater, scores in mse.items():
        for i, score in enumerate(scores):
            rows.append({"rater": rater, "item": f"i{i + 1}", "condition": "mse", "kind": "system", "score": score})
            rows.append({"rater": rater, "item": f"i{i + 1}", "condition": "bark", "kind": "system", "score": 2})
        rows.append({"rater": rater, "item": "i1", "condition": "reference", "kind": "reference", "score": 5})
        rows.append({"rater": rater, "item": "i1", "condition": "anchor-low", "kind": "anchor",
                     "score": 4 if rater == "r4" else 1})
    frame = pd.DataFrame(rows)
    frame.insert(0, "type", "mos")
    return frame


def test_raters_who_fail_a_gold_question_are_flagged_and_the_mos_shown_with_and_without_them():
    found = mos.analyze_mos(screened_table(), "t", order=["mse", "bark"])
    raters = found.raters.set_index("rater")
    assert raters.loc["r4", "flagged"] and raters.loc["r4", "gold_passed"] == 1 and raters.loc["r4", "gold"] == 2
    assert not raters.loc[["r1", "r2", "r3"], "flagged"].any()
    assert raters["ratings"].tolist() == [6, 6, 6, 6]  # gold questions are not ratings of a system
    assert any("rater r4 failed 1 of 2 gold questions: flagged" in n for n in found.notes)
    summary = found.summary.set_index("condition")
    assert list(summary.index) == ["mse", "bark"]  # the run's order
    # All raters: mse's 12 ratings sum to 27 + 3 = 30 (MOS 2.5); without r4 the GRID above (MOS 3).
    assert summary.loc["mse", "mos"] == pytest.approx(2.5) and summary.loc["mse", "ratings"] == 12
    assert summary.loc["mse", "screened_mos"] == 3.0 and summary.loc["mse", "screened_raters"] == 3
    assert summary.loc["bark", "mos"] == 2.0 and summary.loc["bark", "ci_low"] == 2.0  # no spread at all
    # Without r4, mse's interval is the hand-computed one, cut at the scale's ends [1, 5].
    assert (summary.loc["mse", "screened_ci_low"], summary.loc["mse", "screened_ci_high"]) == (1.0, 5.0)
    assert summary.loc["mse", "screened_clipped"]
    # The correlation reads the screened systems' ratings only.
    assert set(found.scores["rater"]) == {"r1", "r2", "r3"} and set(found.scores["kind"]) == {"system"}


def test_the_report_door_shows_the_mos_table_and_the_gold_questions():
    found = analyze_test(screened_table(), "t", ["mse", "bark"])
    assert (found.type, found.title) == ("mos", "MOS (ACR)")
    tables = dict(found.parts)
    conditions, raters = tables["mos-conditions"], tables["mos-raters"]
    assert conditions.columns[-1] == "MOS of unflagged [95 % CI]"
    assert conditions.rows[0][:4] == ["mse", "4", "3", "12"]
    assert conditions.rows[0][-1] == "3.00 [1.00, 5.00]*"
    assert raters.rows[3] == ["r4", "6", "1 of 2", "yes"] and (3, 3) in raters.bold
    assert found.numbers["flagged"] == ["r4"] and set(found.scores["condition"]) == {"mse", "bark"}


def test_without_gold_questions_the_table_has_one_mos_and_no_screening():
    found = analyze_test(grid_rows(), "t")
    assert [key for key, _ in found.parts] == ["mos-conditions"] and found.notes == []
    assert dict(found.parts)["mos-conditions"].columns[-1] == "MOS [95 % CI]"
    empty = mos.analyze_mos(grid_rows().iloc[:0], "t")
    assert empty.summary.empty and empty.notes == ["t: no ratings yet"]


def test_a_mos_csv_is_read_back_with_its_type(tmp_path):
    frame = screened_table()
    frame.to_csv(tmp_path / "mos.csv", index=False)
    back = read_ratings(tmp_path / "mos.csv")
    assert set(back["type"]) == {"mos"}
    from_file, direct = mos.analyze_mos(back, "t"), mos.analyze_mos(frame, "t")
    assert from_file.summary.equals(direct.summary) and from_file.raters.equals(direct.raters)


def test_the_report_figure_draws_both_means_where_a_rater_was_flagged():
    found = analyze_test(screened_table(), "t", ["mse", "bark"])
    ((slug, draw, caption),) = found.figures
    figure = draw({"mse": "#000000", "bark": "#111111"})
    (ax,) = figure.axes
    assert slug == "mos-means" and "flagged raters left out" in ax.get_title()
    assert len(ax.containers) == 4  # a point per condition, for all raters and for the unflagged ones
