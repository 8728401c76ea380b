"""Ranking statistics against values worked out by hand on a small table."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from earshot.results import present
from earshot.results.analyses import analyze_test
from earshot.results.ranking import analyze_ranking, attention_passed, friedman

# Two raters × two items, three conditions; each row one trial's ranks (1 = best) of a, b, c.
TRIALS = {("r1", "i1"): (1, 2, 3), ("r1", "i2"): (1, 3, 2), ("r2", "i1"): (2, 1, 3), ("r2", "i2"): (1, 2, 3)}


def table(trials=TRIALS, **extra) -> pd.DataFrame:
    rows = [{"type": "ranking", "rater": rater, "item": item, "condition": c, "kind": "system", "score": math.nan,
             "rank": rank, **extra} for (rater, item), ranks in trials.items() for c, rank in zip("abc", ranks)]
    return pd.DataFrame(rows)


def test_friedman_matches_the_formula_worked_by_hand_and_scipy():
    result = analyze_ranking(table(), "t")
    # R_a = 1+1+2+1 = 5, R_b = 2+3+1+2 = 8, R_c = 3+2+3+3 = 11; n = 4 trials, k = 3:
    # χ² = 12 / (4·3·4) · (25 + 64 + 121) − 3·4·4 = 0.25 · 210 − 48 = 4.5, 2 df: p = exp(−4.5 / 2).
    assert result.friedman["statistic"] == pytest.approx(4.5)
    assert result.friedman["pvalue"] == pytest.approx(math.exp(-2.25))
    assert result.friedman["kendalls_w"] == pytest.approx(4.5 / (4 * 2))
    assert (result.friedman["blocks"], result.friedman["conditions"]) == (4, 3)
    ranks = list(zip(*TRIALS.values()))
    assert result.friedman["statistic"] == pytest.approx(stats.friedmanchisquare(*ranks).statistic)


def test_friedman_with_two_conditions_and_too_few_trials():
    # k = 2, three trials rank x first, one y: R = (5, 7);
    # χ² = 12 / (4·2·3) · (25 + 49) − 3·4·3 = 37 − 36 = 1.
    two = pd.DataFrame({"x": [1, 1, 1, 2], "y": [2, 2, 2, 1]})
    assert friedman(two)["statistic"] == pytest.approx(1.0)
    assert friedman(two)["pvalue"] == pytest.approx(stats.chi2.sf(1.0, 1))
    assert friedman(two.head(1))["note"] == "needs at least 2 complete trials (has 1)"


def test_mean_ranks_are_means_of_rater_means_best_first_with_a_bootstrap_interval():
    result = analyze_ranking(table(), "t")
    means = result.means.set_index("condition")
    assert list(result.means["condition"]) == ["a", "b", "c"]
    # a: r1 (1 + 1) / 2 = 1, r2 (2 + 1) / 2 = 1.5 -> 1.25; b: 2.5, 1.5 -> 2; c: 2.5, 3 -> 2.75.
    assert means["mean_rank"].tolist() == pytest.approx([1.25, 2.0, 2.75])
    assert means["first"].tolist() == [3, 1, 0] and means["trials"].tolist() == [4, 4, 4]
    assert means["raters"].tolist() == [2, 2, 2]
    for _, row in result.means.iterrows():
        assert 1 <= row["ci_low"] <= row["mean_rank"] <= row["ci_high"] <= 3
    agreed = analyze_ranking(table({(r, i): (1, 2, 3) for r in ("r1", "r2") for i in ("i1", "i2")}), "t")
    assert agreed.means[["ci_low", "ci_high"]].values.tolist() == [[1, 1], [2, 2], [3, 3]]
    text = present.ranking_means_table(result.means)
    assert text.rows[0] == ["a", "2", "4", text.rows[0][3], "3 of 4"] and text.rows[0][3].startswith("1.25 [")


def test_pairwise_wilcoxon_holm_and_the_rank_biserial_worked_by_hand():
    result = analyze_ranking(table(), "t")
    ab = result.pairwise.iloc[0]
    assert (ab["a"], ab["b"], ab["n"]) == ("a", "b", 4)
    # a − b per trial: −1, −2, +1, −1 (mean −0.75). |d| ranks: the three 1s share rank 2, the 2 has rank 4;
    # T+ = 2 (the +1), T− = 2 + 4 + 2 = 8: W = min = 2; r = (T− − T+) / 10 = 0.6 in a's favour.
    assert ab["mean_difference"] == pytest.approx(-0.75)
    assert ab["statistic"] == pytest.approx(2.0) and ab["rank_biserial"] == pytest.approx(0.6)
    # Holm over the three pairs: the i-th smallest p times (4 − i), kept monotone, at most 1.
    p = result.pairwise["pvalue"].to_numpy()
    order = p.argsort()
    expected = [min(1.0, 3 * p[order[0]])]
    expected.append(max(expected[0], min(1.0, 2 * p[order[1]])))
    expected.append(max(expected[1], min(1.0, p[order[2]])))
    assert result.pairwise["p_holm"].to_numpy()[order] == pytest.approx(expected)
    assert list(result.pairwise[["a", "b"]].itertuples(index=False, name=None)) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_scores_for_the_correlation_are_higher_for_better_ranks():
    scores = analyze_ranking(table(), "t").scores
    assert list(scores.columns) == ["rater", "item", "condition", "kind", "score"]
    got = scores.set_index(["rater", "item", "condition"])["score"]
    assert got["r1", "i1", "a"] == 3 and got["r1", "i2", "b"] == 1 and got["r2", "i1", "b"] == 3  # k + 1 − rank
    analysis = analyze_test(table(), "t")
    assert analysis.type == "ranking" and analysis.scores is not None and len(analysis.scores) == 12
    assert [key for key, _ in analysis.parts] == ["ranking-means", "ranking-friedman", "ranking-pairwise"]
    ((slug, draw, _),) = analysis.figures
    axes = draw({"a": "#000000"}).axes[0]
    assert slug == "ranking-means" and axes.get_ylim()[0] > axes.get_ylim()[1]  # rank 1 at the top
    assert [t.get_text() for t in axes.get_xticklabels()] == ["a", "b", "c"]


def test_attention_trials_and_incomplete_trials_never_enter_the_analysis():
    attention = pd.DataFrame([{"type": "ranking", "rater": "r1", "item": "i1 (attention)", "condition": c, "kind": k,
                               "score": math.nan, "rank": r}
                              for c, k, r in [("reference", "reference", 4), ("anchor-low", "anchor", 1),
                                              ("a", "system", 2), ("b", "system", 3)]])
    flagged = table(attention=False)
    flagged_attention = table({("r2", "i3"): (3, 2, 1)}, attention=True)
    partial = table({("r2", "i4"): (1, 2, 3)}).query("condition != 'c'")
    mixed = pd.concat([flagged, attention.assign(attention=True), flagged_attention, partial.assign(attention=False)])
    result = analyze_ranking(mixed, "t")
    assert result.friedman["blocks"] == 4 and result.friedman["statistic"] == pytest.approx(4.5)
    assert result.notes == ["t: 1 of 5 trials did not rank every condition and are left out"]
    # Without an attention column, a trial that ranks the reference or an anchor is an attention trial.
    assert analyze_ranking(pd.concat([table(), attention]), "t").friedman["blocks"] == 4
    assert analyze_ranking(table().iloc[0:0], "t").notes == ["t: no rankings yet"]
    other_partial = table({("r1", "i4"): (1, 2, 3)}).query("condition != 'a'")
    only_partial = analyze_ranking(pd.concat([partial, other_partial]), "t")
    assert only_partial.means.empty and only_partial.notes == [
        "t: 2 of 2 trials did not rank every condition and are left out"]


def test_an_attention_trial_is_passed_when_the_reference_is_ranked_above_the_low_anchor():
    def trial(reference, anchor, column="rank"):
        return pd.DataFrame({"condition": ["reference", "anchor-low", "a"], column: [reference, anchor, 2]})

    assert attention_passed(trial(1, 3)) and attention_passed(trial(2, 3))
    assert not attention_passed(trial(3, 1)) and not attention_passed(trial(3, 2))
    assert attention_passed(trial(1, 3, column="score"))  # a hand-made table with ranks as scores
    assert not attention_passed(trial(1, 3).query("condition != 'anchor-low'"))


def test_conditions_of_equal_mean_rank_follow_the_runs_order():
    tied = table({("r1", "i1"): (1, 2, 3), ("r2", "i1"): (2, 1, 3)})
    assert list(analyze_ranking(tied, "t").means["condition"]) == ["a", "b", "c"]
    assert list(analyze_ranking(tied, "t", order=["c", "b", "a"]).means["condition"]) == ["b", "a", "c"]


def test_a_ranking_csv_reads_back_and_a_bad_rank_is_named(tmp_path):
    from earshot.results.listening import RatingsError, read_ratings

    exported = table().assign(test="t")
    exported.to_csv(tmp_path / "rank.csv", index=False)
    back = read_ratings(tmp_path / "rank.csv")
    assert back["rank"].tolist() == exported["rank"].tolist() and (back["type"] == "ranking").all()
    assert analyze_ranking(back, "t").friedman["statistic"] == pytest.approx(4.5)
    for bad, why in (("x", "'x' is not a number"), ("1.5", "1.5 is not a rank"), ("0", "0 is not a rank"),
                     ("inf", "'inf' is not a number")):
        exported.assign(rank=[bad] + exported["rank"].tolist()[1:]).to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(RatingsError, match=f"bad.csv: row 2, column 'rank': {why}"):
            read_ratings(tmp_path / "bad.csv")
