"""ABX listening-test statistics: proportion correct per pair, exact binomial tests, per rater and pooled.

An ABX trial plays two conditions as A and B and one of them again as X; the rater says which.
Someone who hears no difference is right half the time, so each pair's question is whether the
proportion correct exceeds 1/2: an exact one-sided binomial test (``scipy.stats.binomtest``,
alternative ``greater``), with the two-sided Clopper–Pearson interval of the proportion.

Per rater, the test says whether that rater could tell the pair apart; pooled over raters, whether
listeners in general can (the pooled test counts every trial as independent, so a few very
sensitive raters can carry it: the count of raters who could tell says how widespread it is).
A test of several pairs asks several questions at once, so the pooled verdict reads the p-values
Holm-adjusted over the test's pairs (one pair: the same p).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
from scipy import stats

from earshot.results.stats import holm

ALPHA = 0.05  # a one-sided p below this: the pair was told apart
CHANCE = 0.5

PAIR_COLUMNS = ["pair", "raters", "raters_told_apart", "trials", "correct", "proportion", "ci_low", "ci_high", "pvalue",
                "p_holm", "told_apart"]
RATER_COLUMNS = ["pair", "rater", "trials", "correct", "proportion", "ci_low", "ci_high", "pvalue", "told_apart"]


def is_abx(frame: pd.DataFrame) -> bool:
    """Whether a ratings table (the columns of ``RATINGS_TABLE_COLUMNS``) holds ABX answers."""
    return "type" in frame.columns and bool((frame["type"] == "abx").any())


def pair_name(a: str, b: str) -> str:
    """A pair's name, the same whichever condition was played as A: ``a vs b``, alphabetically."""
    first, second = sorted((str(a), str(b)))
    return f"{first} vs {second}"


def binomial(correct: int, trials: int, confidence: float = 0.95) -> dict:
    """``proportion, ci_low, ci_high, pvalue`` of ``correct`` out of ``trials`` against chance (1/2):
    one-sided exact p, two-sided Clopper–Pearson interval; NaN without trials."""
    if trials == 0:
        return {"proportion": math.nan, "ci_low": math.nan, "ci_high": math.nan, "pvalue": math.nan}
    one_sided = stats.binomtest(correct, trials, CHANCE, alternative="greater")
    interval = stats.binomtest(correct, trials, CHANCE).proportion_ci(confidence, method="exact")
    return {"proportion": correct / trials, "ci_low": float(interval.low), "ci_high": float(interval.high),
            "pvalue": float(one_sided.pvalue)}


@dataclass
class AbxAnalysis:
    """Everything shown about one ABX test."""

    name: str
    pairs: pd.DataFrame  # PAIR_COLUMNS: pooled over raters
    raters: pd.DataFrame  # RATER_COLUMNS: one row per pair and rater
    alpha: float = ALPHA
    notes: list[str] = field(default_factory=list)


def analyze_abx(frame: pd.DataFrame, name: str = "ABX test", confidence: float = 0.95,
                alpha: float = ALPHA) -> AbxAnalysis:
    """Proportion correct per pair, per rater and pooled, with exact binomial tests.

    Arguments:
        frame: the ratings table; its ABX rows (``type`` ``abx``) are used, with ``rater``, ``a``,
            ``b``, ``x`` and ``answer`` (``correct`` is recomputed from them).
    """
    rows = frame[frame["type"] == "abx"] if "type" in frame.columns else frame
    missing = [c for c in ("rater", "a", "b", "x", "answer") if c not in rows.columns]
    if missing:
        raise ValueError(f"ABX table: missing column(s) {', '.join(missing)}")
    if rows.empty:
        return AbxAnalysis(name, pd.DataFrame(columns=PAIR_COLUMNS), pd.DataFrame(columns=RATER_COLUMNS), alpha,
                           [f"{name}: no answers yet"])
    rows = rows.assign(pair=[pair_name(a, b) for a, b in zip(rows["a"], rows["b"])],
                       hit=(rows["answer"].astype(str) == rows["x"].astype(str)).astype(int),
                       rater=rows["rater"].astype(str))
    per_rater = []
    for (pair, rater), group in rows.groupby(["pair", "rater"], sort=True):
        correct, trials = int(group["hit"].sum()), len(group)
        result = binomial(correct, trials, confidence)
        per_rater.append({"pair": pair, "rater": rater, "trials": trials, "correct": correct, **result,
                          "told_apart": bool(result["pvalue"] < alpha)})
    raters = pd.DataFrame(per_rater, columns=RATER_COLUMNS)
    pooled = []
    for pair, group in rows.groupby("pair", sort=True):
        correct, trials = int(group["hit"].sum()), len(group)
        result = binomial(correct, trials, confidence)
        mine = raters[raters["pair"] == pair]
        pooled.append({"pair": pair, "raters": len(mine), "raters_told_apart": int(mine["told_apart"].sum()),
                       "trials": trials, "correct": correct, **result})
    pairs = pd.DataFrame(pooled).assign(p_holm=lambda f: holm(f["pvalue"]))
    pairs = pairs.assign(told_apart=pairs["p_holm"] < alpha)[PAIR_COLUMNS]
    return AbxAnalysis(name, pairs, raters, alpha)


def attention_passed(rows: pd.DataFrame) -> bool:
    """Whether one rater passed one ABX attention check (its one row: A and B the reference and the low
    anchor): X named right."""
    return len(rows) == 1 and str(rows["answer"].iloc[0]) == str(rows["x"].iloc[0])
