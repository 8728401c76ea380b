"""Ranking listening-test statistics: mean rank per condition, the Friedman test, pairwise post-hoc tests.

A ranking trial is one rater's order of one excerpt's k systems, best first (rank 1 = best), without
ties. Each trial is one block of the Friedman test (Friedman, JASA 32, 1937): with n complete blocks
and R_j the sum of condition j's ranks,

    χ² = 12 / (n k (k + 1)) · Σ_j R_j² − 3 n (k + 1),   k − 1 degrees of freedom,

computed here by that formula (ranks within a trial have no ties, so no tie correction applies; for
k = 2 it is the two-sided sign test's normal approximation), with Kendall's W = χ² / (n (k − 1)).
The post-hoc tests are Wilcoxon signed-rank tests for every pair of conditions over the same trials,
Holm-corrected, with the matched-pairs rank-biserial correlation as effect size. Trials of one rater
are not independent of each other: the per-rater means and their interval say how general a result is.

Mean rank per condition: the mean over raters of each rater's mean rank over items (each rater one
observation, as BS.1534 averages MUSHRA scores), with a 95 % crossed percentile bootstrap interval that
resamples raters and items together (:func:`results.stats.crossed_bootstrap_ci`).

Attention trials (the reference and the low anchor ranked in place of two systems) never enter these
statistics: :func:`attention_passed` says whether one was passed.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from earshot.results.stats import crossed_bootstrap_ci, holm, rank_biserial

ALPHA = 0.05
MEAN_COLUMNS = ["condition", "raters", "trials", "mean_rank", "ci_low", "ci_high", "first"]
PAIR_COLUMNS = ["a", "b", "n", "mean_difference", "statistic", "pvalue", "p_holm", "significant", "rank_biserial"]


def is_ranking(frame: pd.DataFrame) -> bool:
    """Whether a ratings table (the columns of ``RATINGS_TABLE_COLUMNS``) holds ranking answers."""
    return "type" in frame.columns and bool((frame["type"] == "ranking").any())


def _rank_column(rows: pd.DataFrame) -> pd.Series:
    """Each row's rank: the ``rank`` column of an export, or ``score`` in a table that has none."""
    values = rows["rank"] if "rank" in rows.columns else rows["score"]
    return pd.to_numeric(values, errors="coerce").astype(float)


def attention_passed(rows: pd.DataFrame) -> bool:
    """Whether one rater's one attention trial (its exported rows) was passed: the reference ranked
    above (a smaller rank than) the low anchor."""
    rank = dict(zip(rows["condition"].astype(str), _rank_column(rows)))
    reference, anchor = rank.get("reference", math.nan), rank.get("anchor-low", math.nan)
    return bool(np.isfinite(reference) and np.isfinite(anchor) and reference < anchor)


def friedman(ranks: pd.DataFrame) -> dict:
    """The Friedman test of a blocks × conditions table of within-block ranks (1..k, no ties), by the
    formula in the module's docstring: ``statistic, pvalue, kendalls_w, blocks, conditions, note``."""
    n, k = ranks.shape
    result = {"statistic": math.nan, "pvalue": math.nan, "kendalls_w": math.nan, "blocks": n, "conditions": k,
              "note": ""}
    if k < 2:
        result["note"] = f"needs at least 2 conditions (has {k})"
        return result
    if n < 2:
        result["note"] = f"needs at least 2 complete trials (has {n})"
        return result
    sums = ranks.to_numpy(dtype=float).sum(axis=0)
    statistic = 12.0 / (n * k * (k + 1)) * float((sums ** 2).sum()) - 3.0 * n * (k + 1)
    result.update(statistic=statistic, pvalue=float(stats.chi2.sf(statistic, k - 1)),
                  kendalls_w=statistic / (n * (k - 1)))
    return result


def pairwise(ranks: pd.DataFrame, alpha: float = ALPHA) -> pd.DataFrame:
    """Wilcoxon signed-rank tests of every pair of conditions over the trials that ranked both (zero
    differences dropped), Holm-corrected; ``mean_difference`` is mean rank a − b, so negative favours
    a, and the rank-biserial r is positive when a is ranked better."""
    rows = []
    for a, b in itertools.combinations(ranks.columns, 2):
        pair = ranks[[a, b]].dropna()
        d = (pair[a] - pair[b]).to_numpy()
        statistic = pvalue = math.nan
        if np.count_nonzero(d) >= 1:
            test = stats.wilcoxon(pair[a], pair[b], zero_method="wilcox", alternative="two-sided")
            statistic, pvalue = float(test.statistic), float(test.pvalue)
        rows.append({"a": a, "b": b, "n": len(pair), "mean_difference": float(d.mean()) if d.size else math.nan,
                     "statistic": statistic, "pvalue": pvalue,
                     "rank_biserial": rank_biserial(pair[b], pair[a])})  # better = a smaller rank
    table = pd.DataFrame(rows, columns=[c for c in PAIR_COLUMNS if c not in ("p_holm", "significant")])
    table.insert(6, "p_holm", holm(table["pvalue"].to_numpy()) if len(table) else [])
    table.insert(7, "significant", table["p_holm"] < alpha)
    return table


@dataclass
class RankingAnalysis:
    """Everything shown about one ranking test."""

    name: str
    means: pd.DataFrame  # MEAN_COLUMNS, best (smallest mean rank) first
    friedman: dict
    pairwise: pd.DataFrame  # PAIR_COLUMNS
    scores: pd.DataFrame  # rater, item, condition, kind, score = k + 1 − rank (higher is better)
    notes: list[str] = field(default_factory=list)
    alpha: float = ALPHA


def _trials(frame: pd.DataFrame) -> pd.DataFrame:
    """The ranking rows of the analysed trials: not attention trials, whose ranks include the reference
    and the low anchor, and only trials that ranked the test's systems, every one of them once."""
    rows = frame[frame["type"] == "ranking"] if "type" in frame.columns else frame
    if "attention" in rows.columns:
        rows = rows[~rows["attention"].fillna(False).astype(bool)]
    missing = [c for c in ("rater", "item", "condition") if c not in rows.columns]
    if missing or ("rank" not in rows.columns and "score" not in rows.columns):
        raise ValueError(f"ranking table: missing column(s) {', '.join(missing or ['rank'])}")
    rows = rows.assign(rater=rows["rater"].astype(str), item=rows["item"].astype(str),
                       condition=rows["condition"].astype(str), rank=_rank_column(rows))
    kind = rows["kind"].astype(str) if "kind" in rows.columns else pd.Series("system", index=rows.index)
    ranked_controls = rows.assign(control=kind != "system").groupby(["rater", "item"])["control"].transform("any")
    return rows[~ranked_controls]


def analyze_ranking(frame: pd.DataFrame, name: str = "ranking test", order: list[str] | None = None,
                    alpha: float = ALPHA) -> RankingAnalysis:
    """Mean ranks with crossed bootstrap intervals, the Friedman test over rater × item trials and
    pairwise Wilcoxon tests (Holm), from a ratings table's ranking rows (``rank``, 1 = best).

    ``order``: the run's systems, which order the conditions of equal mean rank (else alphabetical).
    """
    rows = _trials(frame)
    empty = RankingAnalysis(name, pd.DataFrame(columns=MEAN_COLUMNS), friedman(pd.DataFrame()),
                            pd.DataFrame(columns=PAIR_COLUMNS), pd.DataFrame(columns=["rater", "item", "condition",
                                                                                      "kind", "score"]))
    if rows.empty:
        empty.notes.append(f"{name}: no rankings yet")
        return empty
    wide = rows.pivot_table(index=["rater", "item"], columns="condition", values="rank", aggfunc="first")
    complete = wide.dropna()
    notes = []
    if len(complete) < len(wide):
        notes.append(f"{name}: {len(wide) - len(complete)} of {len(wide)} trials did not rank every condition "
                     "and are left out")
    if complete.empty:
        empty.notes.extend(notes)
        return empty
    position = {c: i for i, c in enumerate(order or [])}
    means = []
    for condition in complete.columns:
        per_trial = complete[condition]
        matrix = per_trial.unstack("item")
        mean, low, high = crossed_bootstrap_ci(matrix.to_numpy())
        means.append({"condition": condition, "raters": matrix.shape[0], "trials": len(per_trial), "mean_rank": mean,
                      "ci_low": low, "ci_high": high, "first": int((per_trial == 1).sum())})
    means = pd.DataFrame(means, columns=MEAN_COLUMNS)
    means = means.assign(_at=[position.get(c, len(position)) for c in means["condition"]])
    means = means.sort_values(["mean_rank", "_at", "condition"], kind="stable").drop(columns="_at")
    conditions = list(means["condition"])
    ranks = complete[conditions]
    k = len(conditions)
    scores = (k + 1 - ranks).stack().rename("score").reset_index()
    scores["kind"] = "system"
    return RankingAnalysis(name, means.reset_index(drop=True), friedman(ranks), pairwise(ranks, alpha),
                           scores[["rater", "item", "condition", "kind", "score"]], notes, alpha)
