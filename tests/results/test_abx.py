"""ABX analysis against binomial tails and Clopper–Pearson bounds worked out by hand."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from earshot.results import present
from earshot.results.abx import analyze_abx, is_abx, pair_name


def _tail_at_least(k: int, n: int, p: float = 0.5) -> float:
    return sum(math.comb(n, i) * p ** i * (1 - p) ** (n - i) for i in range(k, n + 1))


def _bisect(f, target: float) -> float:
    """p in [0, 1] where the increasing function f reaches target."""
    low, high = 0.0, 1.0
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) < target else (low, mid)
    return (low + high) / 2


def _answers(rater: str, correct: int, trials: int, a: str = "mse", b: str = "bark") -> list[dict]:
    rows = []
    for i in range(trials):
        x = a if i % 2 else b  # X alternates; A/B order swaps too, the pair stays one
        first, second = (a, b) if i % 3 else (b, a)
        other = b if x == a else a
        rows.append({"test": "t", "type": "abx", "rater": rater, "item": f"item-{i}", "condition": x, "score": math.nan,
                     "a": first, "b": second, "x": x, "answer": x if i < correct else other})
    return rows


def test_proportion_correct_exact_binomial_and_interval_per_rater_and_pooled():
    frame = pd.DataFrame(_answers("r1", 8, 10) + _answers("r2", 9, 10))
    result = analyze_abx(frame, "t")
    raters = result.raters.set_index("rater")
    # P(X >= k), X ~ Binomial(10, 1/2): 8 of 10 -> 56/1024, 9 of 10 -> 11/1024.
    assert raters.loc["r1", "pvalue"] == pytest.approx(56 / 1024) == pytest.approx(_tail_at_least(8, 10))
    assert raters.loc["r2", "pvalue"] == pytest.approx(11 / 1024)
    assert not raters.loc["r1", "told_apart"] and raters.loc["r2", "told_apart"]
    assert raters.loc["r2", "proportion"] == 0.9
    # Clopper-Pearson for 9 of 10: the upper bound solves P(X <= 9 | p) = 1 - p^10 = 0.025; the lower
    # bound solves P(X >= 9 | p) = 0.025.
    assert raters.loc["r2", "ci_high"] == pytest.approx(0.975 ** 0.1, abs=1e-9)
    assert raters.loc["r2", "ci_low"] == pytest.approx(_bisect(lambda p: _tail_at_least(9, 10, p), 0.025), abs=1e-9)
    (pooled,) = result.pairs.to_dict("records")
    assert pooled["pair"] == "bark vs mse" == pair_name("mse", "bark")
    assert (pooled["trials"], pooled["correct"], pooled["raters"], pooled["raters_told_apart"]) == (20, 17, 2, 1)
    assert pooled["pvalue"] == pytest.approx((1140 + 190 + 20 + 1) / 2 ** 20)  # P(X >= 17), n = 20
    assert pooled["told_apart"]


def test_chance_performance_is_not_told_apart_and_a_perfect_rater_has_an_upper_bound_of_one():
    result = analyze_abx(pd.DataFrame(_answers("guess", 5, 10) + _answers("ears", 6, 6)), "t")
    raters = result.raters.set_index("rater")
    assert raters.loc["guess", "pvalue"] == pytest.approx(_tail_at_least(5, 10)) and not raters.loc["guess", "told_apart"]
    assert raters.loc["ears", "ci_high"] == 1.0 and raters.loc["ears", "pvalue"] == pytest.approx(1 / 64)
    assert raters.loc["ears", "ci_low"] == pytest.approx(0.025 ** (1 / 6), abs=1e-9)  # p^6 = 0.025


def test_several_pairs_are_judged_by_holm_adjusted_p_values():
    # Three pairs, one rater: p = 11/1024 (9 of 10), 9/256 (7 of 8), 1/32 (5 of 5). Holm by hand:
    # the smallest times 3, the next times 2 (and at least the one before), the largest times 1.
    frame = pd.DataFrame(_answers("r1", 9, 10, "mse", "bark") + _answers("r1", 7, 8, "mse", "stft")
                         + _answers("r1", 5, 5, "bark", "stft"))
    found = analyze_abx(frame, "t")
    pairs = found.pairs.set_index("pair")
    p = {"bark vs mse": 11 / 1024, "mse vs stft": 9 / 256, "bark vs stft": 1 / 32}
    assert pairs["pvalue"].to_dict() == pytest.approx(p)
    holm = {"bark vs mse": 3 * 11 / 1024, "bark vs stft": 2 / 32, "mse vs stft": max(9 / 256, 2 / 32)}
    assert pairs["p_holm"].to_dict() == pytest.approx(holm)
    # Each raw p is below 0.05; after Holm only the first pair is told apart.
    assert pairs["told_apart"].to_dict() == {"bark vs mse": True, "bark vs stft": False, "mse vs stft": False}
    table = present.abx_pairs_table(found.pairs)
    assert [row[4:] for row in table.rows] == [["0.011", "0.032", "yes"], ["0.031", "0.062", "no"],
                                               ["0.035", "0.062", "no"]]


def test_mushra_rows_are_not_abx_and_the_tables_say_who_told_pairs_apart():
    assert not is_abx(pd.DataFrame({"type": ["mushra"], "rater": ["r"]}))
    result = analyze_abx(pd.DataFrame(_answers("r1", 8, 10) + _answers("r2", 9, 10)), "t")
    pairs = present.abx_pairs_table(result.pairs)
    assert pairs.rows == [["bark vs mse", "1 of 2", "17 of 20", "85.0 % [62.1, 96.8]", "0.001", "0.001", "yes"]]
    assert (0, 6) in pairs.bold
    per_rater = present.abx_raters_table(result.raters)
    assert [row[1:3] + row[4:] for row in per_rater.rows] == [["r1", "8 of 10", "0.055", "no"],
                                                              ["r2", "9 of 10", "0.011", "yes"]]
    assert analyze_abx(pd.DataFrame(columns=["type", "rater", "a", "b", "x", "answer"]), "t").notes == ["t: no answers yet"]
