"""A/B preference analysis against values worked out by hand: shares, Wilson intervals, binomial
tests and the Bradley–Terry scale with its intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from earshot.results import ab
from earshot.results.analyses import analyze_test
from earshot.results.present import Table

Z = 1.959963984540054  # the normal quantile of a 95 % two-sided interval


def rows(a: str, b: str, prefer_a: int, prefer_b: int, none: int = 0, rater: str = "r1",
         item: str = "i1") -> list[dict]:
    answers = [a] * prefer_a + [b] * prefer_b + ["none"] * none
    return [{"type": "ab", "rater": rater, "item": item, "a": a, "b": b, "answer": answer} for answer in answers]


def wilson(k: int, n: int) -> tuple[float, float]:
    """The Wilson score interval, from its formula."""
    centre = (k + Z ** 2 / 2) / (n + Z ** 2)
    half = Z / (n + Z ** 2) * math.sqrt(k * (n - k) / n + Z ** 2 / 4)
    return centre - half, centre + half


def test_a_pairs_share_interval_and_binomial_test_match_the_hand_computation():
    # sys1 vs sys2: 4 prefer sys1, 2 prefer sys2, 2 no preference (A and B drawn either way round).
    frame = pd.DataFrame(rows("sys1", "sys2", 3, 1, 1) + rows("sys2", "sys1", 1, 1, 1, rater="r2"))
    found = ab.analyze_ab(frame, "t", order=["sys1", "sys2"])
    pair = found.pairs.iloc[0]
    assert (pair["pair"], pair["trials"], pair["prefer_first"], pair["prefer_second"], pair["no_preference"],
            pair["raters"]) == ("sys1 vs sys2", 8, 4, 2, 2, 2)
    assert pair["share_first"] == pytest.approx(4 / 6) and pair["no_preference_share"] == pytest.approx(2 / 8)
    low, high = wilson(4, 6)
    assert (pair["ci_low"], pair["ci_high"]) == pytest.approx((low, high))
    # Two-sided exact p of 4 of 6 at 1/2: P(X >= 4) + P(X <= 2) = 2 (15 + 6 + 1) / 64.
    assert pair["pvalue"] == pytest.approx(44 / 64) and pair["preferred"] == ""
    # Ties split half/half: wins 4 + 1 = 5 against 2 + 1 = 3, so the strengths are 5 : 3 and the
    # centred scale is ±log(5/3)/2; information n π(1−π) = 8 · 5/8 · 3/8 = 15/8, and the centred
    # scale of two conditions is half their difference: variance (8/15) / 4.
    scale = found.scale.set_index("condition")
    assert scale.loc["sys1", "scale"] == pytest.approx(math.log(5 / 3) / 2)
    assert scale.loc["sys2", "scale"] == pytest.approx(-math.log(5 / 3) / 2)
    assert scale.loc["sys1", "se"] == pytest.approx(math.sqrt(8 / 15 / 4))
    assert scale.loc["sys1", "wins"] == 5.0 and scale.loc["sys1", "comparisons"] == 8


def test_a_clear_preference_is_significant_and_named():
    frame = pd.DataFrame(rows("good", "bad", 10, 0) + rows("bad", "good", 1, 9, rater="r2"))
    pair = ab.analyze_ab(frame, "t", order=["good", "bad"]).pairs.iloc[0]
    # 19 of 20: p = 2 (1 + 20) / 2^20.
    assert pair["pvalue"] == pytest.approx(2 * 21 / 2 ** 20) and pair["preferred"] == "good"


def test_several_pairs_name_a_preference_only_where_the_holm_adjusted_p_allows():
    # Two-sided p by hand: X vs Z 10 of 10: 2/1024; X vs Y 8 of 9: 2 (9 + 1)/512; Y vs Z 7 of 10:
    # 2 (120 + 45 + 10 + 1)/1024. Holm: 3 · 2/1024, max(2 · 20/512, that), max(352/1024, that).
    frame = pd.DataFrame(rows("X", "Z", 10, 0) + rows("X", "Y", 8, 1) + rows("Y", "Z", 7, 3))
    pairs = ab.analyze_ab(frame, "t", order=["X", "Y", "Z"]).pairs.set_index("pair")
    assert pairs["pvalue"].to_dict() == pytest.approx({"X vs Y": 20 / 512, "X vs Z": 2 / 1024, "Y vs Z": 352 / 1024})
    assert pairs["p_holm"].to_dict() == pytest.approx({"X vs Y": 40 / 512, "X vs Z": 6 / 1024, "Y vs Z": 352 / 1024})
    # X vs Y's raw p (0.039) is below 0.05, its Holm p (0.078) is not: no preference named.
    assert pairs["preferred"].to_dict() == {"X vs Y": "", "X vs Z": "X", "Y vs Z": ""}


def test_the_bradley_terry_scale_solves_its_score_equations_on_three_conditions():
    # Counts that a BT model with strengths 4 : 2 : 1 fits exactly: X beats Y 4 of 6 (4/(4+2)),
    # X beats Z 4 of 5 (4/(4+1)), Y beats Z 2 of 3 (2/(2+1)). The score equations
    # W_i = sum_j n_ij p_i / (p_i + p_j) then hold at p = (4, 2, 1): X: 4 + 4 = 6·2/3 + 5·4/5.
    frame = pd.DataFrame(rows("X", "Y", 4, 2) + rows("X", "Z", 4, 1) + rows("Z", "Y", 1, 2))
    found = ab.analyze_ab(frame, "t", order=["X", "Y", "Z"])
    scale = found.scale.set_index("condition")
    # log(4, 2, 1) centred: their mean is log 2, so (log 2, 0, −log 2).
    assert scale["scale"].to_dict() == pytest.approx({"X": math.log(2), "Y": 0.0, "Z": -math.log(2)}, abs=1e-9)
    assert found.scale["condition"].tolist() == ["X", "Y", "Z"]
    # The information n π (1 − π) per pair: XY 6·2/3·1/3 = 4/3, XZ 5·4/5·1/5 = 4/5, YZ 3·2/3·1/3 = 2/3.
    # With Y fixed at 0, the information of (X, Z) is [[4/3 + 4/5, −4/5], [−4/5, 4/5 + 2/3]]
    # = [[32/15, −4/5], [−4/5, 22/15]], determinant 112/45, inverse (45/112)[[22/15, 4/5], [4/5, 32/15]]:
    # var X = 33/56, cov XZ = 9/28, var Z = 6/7. The centred X is (2X − Z)/3:
    # var = (4·33/56 − 4·9/28 + 6/7)/9 = 3/14; the centred Z is (2Z − X)/3: (4·6/7 − 4·9/28 + 33/56)/9
    # = (192 − 72 + 33)/56/9 = 17/56.
    assert scale.loc["X", "se"] == pytest.approx(math.sqrt(3 / 14))
    assert scale.loc["Z", "se"] == pytest.approx(math.sqrt(17 / 56))
    assert scale.loc["X", "ci_low"] == pytest.approx(math.log(2) - Z * math.sqrt(3 / 14))
    assert scale.loc["X", "ci_high"] == pytest.approx(math.log(2) + Z * math.sqrt(3 / 14))


def test_no_scale_when_a_condition_wins_every_trial_but_the_shares_stand():
    frame = pd.DataFrame(rows("X", "Y", 5, 0) + rows("Y", "Z", 2, 1))
    found = ab.analyze_ab(frame, "t", order=["X", "Y", "Z"])
    assert found.scale.empty and len(found.pairs) == 2
    assert any("X was preferred in every trial it played" in n for n in found.notes)
    result = analyze_test(frame, "t", ["X", "Y", "Z"])
    assert result.scores is None and [k for k, _ in result.parts] == ["ab-pairs"]
    apart = pd.DataFrame(rows("X", "Y", 1, 1) + rows("Z", "W", 1, 1))
    assert any("never compared" in n for n in ab.analyze_ab(apart, "t").notes)


def test_attention_trials_are_left_out_and_read_by_attention_passed():
    check = pd.DataFrame(rows("anchor-low", "reference", 0, 1))
    frame = pd.concat([pd.DataFrame(rows("X", "Y", 2, 1, 1)), check])
    found = ab.analyze_ab(frame, "t")
    assert found.pairs["pair"].tolist() == ["X vs Y"] and set(found.scale["condition"]) == {"X", "Y"}
    assert any("1 attention-check trials" in n for n in found.notes)
    assert ab.attention_passed(check)
    assert not ab.attention_passed(pd.DataFrame(rows("reference", "anchor-low", 0, 1)))
    assert not ab.attention_passed(pd.DataFrame(rows("reference", "anchor-low", 0, 0, 1)))
    with pytest.raises(ValueError, match="one exported row, not 2"):
        ab.attention_passed(pd.DataFrame(rows("reference", "anchor-low", 1, 1)))
    with pytest.raises(ValueError, match="not X against Y"):
        ab.attention_passed(pd.DataFrame(rows("X", "Y", 1, 0)))


def test_the_registered_analysis_gives_tables_a_figure_and_system_level_scores():
    frame = pd.DataFrame(rows("X", "Y", 4, 2, item="i1") + rows("X", "Z", 4, 1, item="i2") + rows("Z", "Y", 1, 2))
    found = analyze_test(frame, "t", ["X", "Y", "Z"])
    assert (found.type, found.title) == ("ab", "A/B preference")
    assert [k for k, _ in found.parts] == ["ab-pairs", "ab-scale"] and all(isinstance(p, Table) for _, p in found.parts)
    pairs, scale = found.parts[0][1], found.parts[1][1]
    # Holm over the three pairs (p 0.6875, 0.375 and 1): 0.375 · 3 and 0.6875 · 2 both above 1, so 1.
    assert pairs.rows[0] == ["X vs Y", "1", "4 / 2", "0 (0.0 %)", "66.7 % [30.0, 90.3]", "0.688", "1.000", "–"]
    assert pairs.records[0]["trials"] == 6
    assert scale.rows[0] == ["X", "11", "8.0", "0.69 [-0.21, 1.60]"]
    assert [slug for slug, _, _ in found.figures] == ["ab-scale"]
    assert found.levels == ("system",)
    scores = found.scores.set_index(["condition", "item"])["score"]
    assert scores[("X", "i2")] == pytest.approx(math.log(2)) and scores[("Z", "i1")] == pytest.approx(-math.log(2))
    assert found.numbers["bradley_terry"]["estimable"] is True


def test_a_table_that_is_not_an_ab_table_is_named_in_one_line():
    with pytest.raises(ValueError, match=r"missing column\(s\) answer"):
        ab.analyze_ab(pd.DataFrame({"type": ["ab"], "rater": ["r"], "item": ["i"], "a": ["X"], "b": ["Y"]}))
    with pytest.raises(ValueError, match="answer 'W' is neither 'X', 'Y' nor 'none'"):
        ab.analyze_ab(pd.DataFrame({"type": ["ab"], "rater": ["r"], "item": ["i"], "a": ["X"], "b": ["Y"],
                                    "answer": ["W"]}))
    empty = ab.analyze_ab(pd.DataFrame(columns=["type", "rater", "item", "a", "b", "answer"]), "t")
    assert empty.notes == ["t: no answers yet"] and empty.pairs.empty


def test_mm_and_direct_maximisation_agree_on_a_larger_table():
    from scipy.optimize import minimize

    rng = np.random.default_rng(3)
    k = 5
    wins = rng.integers(1, 9, size=(k, k)).astype(float)
    np.fill_diagonal(wins, 0)
    fit = ab.bradley_terry(list("ABCDE"), wins)

    def negative_log_likelihood(free):
        theta = np.append(free, -free.sum())
        return -sum(wins[i, j] * (theta[i] - np.logaddexp(theta[i], theta[j])) for i in range(k) for j in range(k))

    direct = minimize(negative_log_likelihood, np.zeros(k - 1), method="BFGS", options={"gtol": 1e-10})
    assert fit.scale == pytest.approx(np.append(direct.x, -direct.x.sum()), abs=1e-5)
