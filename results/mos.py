"""MOS / ACR listening-test statistics (ITU-T P.800, P.808): mean opinion score per condition with an
interval that counts raters and items as samples, and rater screening by gold questions.

Every trial plays one stimulus, rated 5 Excellent, 4 Good, 3 Fair, 2 Poor or 1 Bad. The MOS of a
condition is the mean of its ratings.

**The interval.** Ratings of one condition are not independent twice over: a rater who is strict
is strict on every item, and an item that sounds bad does so to every rater. An interval over the
ratings as if independent is too narrow, and one over per-rater means (MUSHRA's) takes the items
as fixed. Here the standard error of the mean is two-way cluster-robust (Cameron, Gelbach & Miller,
"Robust inference with multiway clustering", JBES 2011): with residuals ``e = score - MOS`` over the
``n`` ratings,

    V = V_rater + V_item - V_cell,   V_g = G / (G - 1) * sum over clusters c of g (sum of e in c)^2 / n^2

(``G`` clusters of grouping ``g``; a cell is one rater's rating of one item, so ``V_cell`` is the
heteroscedasticity-robust term the two others count twice). The interval is ``MOS ± t * sqrt(V)``
with ``min(raters, items) - 1`` degrees of freedom, as Cameron, Gelbach & Miller advise for few
clusters. Where ``V`` comes out negative (possible in small samples) the larger one-way variance is
used, which is conservative. This estimator was chosen over a crossed random-effects model
(``score ~ condition + (1|rater) + (1|item)``) because it needs no iterative fit that can fail to
converge on a small test, it holds for the unbalanced designs crowd tests make (each rater a subset
of the items), and it is exactly reproducible by hand; it is the same estimate statsmodels gives an
intercept-only OLS with ``cov_type="cluster"`` and two group columns. An interval needs at least
three raters and three items.

**Gold questions** (P.808 §6.3.8): trials of the clean reference alone, which a rater who listens
rates at least Good (4), and of the low anchor alone, rated at most Poor (2). A rater who fails any
is flagged; the table shows every condition's MOS with and without the flagged raters, and nobody is
dropped silently. Gold trials never enter the MOS; a table without them (a test prepared without
``--attention``) shows the MOS alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from earshot.results.listening import LOW_ANCHORS, REFERENCE, condition_kind

GOLD_HIGH = 4.0  # the clean reference alone: at least Good
GOLD_LOW = 2.0  # the low anchor alone: at most Poor
SCALE_MIN, SCALE_MAX = 1.0, 5.0
MIN_INTERVAL_RATERS = 3
MIN_INTERVAL_ITEMS = 3

SUMMARY_COLUMNS = ["condition", "raters", "items", "ratings", "mos", "ci_low", "ci_high", "clipped",
                   "screened_raters", "screened_ratings", "screened_mos", "screened_ci_low", "screened_ci_high",
                   "screened_clipped"]
RATER_COLUMNS = ["rater", "ratings", "gold", "gold_passed", "flagged"]
SCORE_COLUMNS = ["rater", "item", "condition", "kind", "score"]


def is_mos(frame: pd.DataFrame) -> bool:
    """Whether a ratings table (the columns of ``RATINGS_TABLE_COLUMNS``) holds ACR ratings."""
    return "type" in frame.columns and bool((frame["type"] == "mos").any())


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The MOS rows with ``rater, item, condition`` as text, ``score`` as a number, ``kind`` and ``gold``."""
    rows = frame[frame["type"] == "mos"] if "type" in frame.columns else frame
    missing = [c for c in ("rater", "item", "condition", "score") if c not in rows.columns]
    if missing:
        raise ValueError(f"MOS table: missing column(s) {', '.join(missing)}")
    out = rows.copy()
    for column in ("rater", "item", "condition"):
        out[column] = out[column].astype(str)
    out["score"] = pd.to_numeric(out["score"], errors="coerce").astype(float)
    if "kind" not in out.columns or out["kind"].isna().any():
        out["kind"] = out["condition"].map(condition_kind)
    # A MOS trial of anything but a system is a gold question (an export may also say so in ``attention``).
    gold = out["kind"] != "system"
    if "attention" in out.columns:
        gold |= out["attention"].fillna(False).astype(bool)
    out["gold"] = gold
    return out


def attention_passed(rows: pd.DataFrame) -> bool:
    """Whether one rater's one gold question (its exported rows: one, for ACR) was answered as a listener
    would: the reference rated at least Good, the low anchor at most Poor.

    Raises:
        ValueError: rows that are no gold question (a system, the mid anchor) or have no score.
    """
    if rows.empty:
        raise ValueError("a gold question needs its rating")
    for _, row in rows.iterrows():
        condition = str(row["condition"])
        score = float(pd.to_numeric(row["score"], errors="coerce"))
        if math.isnan(score):
            raise ValueError(f"gold question {condition}: no score")
        if condition == REFERENCE:
            passed = score >= GOLD_HIGH
        elif condition in LOW_ANCHORS:
            passed = score <= GOLD_LOW
        else:
            raise ValueError(f"{condition!r} is not a gold question (the reference or the low anchor)")
        if not passed:
            return False
    return True


def cluster_interval(rows: pd.DataFrame, confidence: float = 0.95) -> dict:
    """``mos, se, df, ci_low, ci_high`` of ratings ``rater, item, score`` (one condition): the two-way
    cluster-robust interval of the module's docstring; NaN bounds below three raters or three items."""
    scores = rows["score"].to_numpy(float)
    n = len(scores)
    if n == 0:
        return {"mos": math.nan, "se": math.nan, "df": 0, "ci_low": math.nan, "ci_high": math.nan}
    mos = float(scores.mean())
    residual = pd.Series(scores - mos, index=rows.index)

    def variance(groups) -> float:
        sums = residual.groupby(groups).sum().to_numpy()
        count = len(sums)
        return count / (count - 1) * float(np.sum(sums ** 2)) / n ** 2 if count > 1 else math.nan

    raters, items = rows["rater"].astype(str), rows["item"].astype(str)
    by_rater, by_item = variance(raters.to_numpy()), variance(items.to_numpy())
    by_cell = variance((raters + "\x00" + items).to_numpy())
    var = by_rater + by_item - by_cell
    if var < 0:  # Cameron, Gelbach & Miller's small-sample fallback: the larger one-way variance
        var = max(by_rater, by_item)
    df = min(raters.nunique(), items.nunique()) - 1
    se = math.sqrt(var) if math.isfinite(var) else math.nan
    if raters.nunique() < MIN_INTERVAL_RATERS or items.nunique() < MIN_INTERVAL_ITEMS or not math.isfinite(se):
        return {"mos": mos, "se": se, "df": df, "ci_low": math.nan, "ci_high": math.nan}
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return {"mos": mos, "se": se, "df": df, "ci_low": mos - half, "ci_high": mos + half}


def _clip(result: dict) -> dict:
    """The interval cut at the ends of the scale, and whether it was (a MOS cannot leave 1–5)."""
    low, high = result["ci_low"], result["ci_high"]
    clipped = bool(math.isfinite(low) and (low < SCALE_MIN or high > SCALE_MAX))
    if clipped:
        result = {**result, "ci_low": max(low, SCALE_MIN), "ci_high": min(high, SCALE_MAX)}
    return {**result, "clipped": clipped}


@dataclass
class MosAnalysis:
    """Everything shown about one MOS test."""

    name: str
    summary: pd.DataFrame  # SUMMARY_COLUMNS: one row per system condition
    raters: pd.DataFrame  # RATER_COLUMNS: gold questions passed, flagged
    scores: pd.DataFrame  # SCORE_COLUMNS: the systems' ratings the correlation reads (flagged raters left out)
    gold: bool  # whether the test had gold questions at all
    notes: list[str] = field(default_factory=list)


def analyze_mos(frame: pd.DataFrame, name: str = "MOS test", order: list[str] | None = None,
                confidence: float = 0.95) -> MosAnalysis:
    """MOS per system condition (all raters, and without the raters the gold questions flag) and the
    gold questions per rater.

    Arguments:
        frame: the ratings table; its MOS rows (``type`` ``mos``) with ``rater, item, condition, score``
            (``kind`` derived from the condition where absent).
        order: systems in this order first (the run's), the others after, alphabetically.
    """
    rows = _rows(frame)
    if rows.empty:
        return MosAnalysis(name, pd.DataFrame(columns=SUMMARY_COLUMNS), pd.DataFrame(columns=RATER_COLUMNS),
                           pd.DataFrame(columns=SCORE_COLUMNS), False, [f"{name}: no ratings yet"])
    gold_rows, systems = rows[rows["gold"]], rows[~rows["gold"]]
    per_rater = []
    for rater in sorted(rows["rater"].unique()):
        mine = gold_rows[gold_rows["rater"] == rater]
        passed = [attention_passed(trial) for _, trial in mine.groupby(["item", "condition"], sort=True)]
        per_rater.append({"rater": rater, "ratings": int((systems["rater"] == rater).sum()), "gold": len(passed),
                          "gold_passed": int(sum(passed)), "flagged": len(passed) > sum(passed)})
    raters = pd.DataFrame(per_rater, columns=RATER_COLUMNS)
    flagged = set(raters.loc[raters["flagged"], "rater"])
    kept = systems[~systems["rater"].isin(flagged)]
    rank = {c: i for i, c in enumerate(order or [])}
    conditions = sorted(systems["condition"].unique(), key=lambda c: (rank.get(c, len(rank)), c))
    summary = []
    for condition in conditions:
        everyone, screened = systems[systems["condition"] == condition], kept[kept["condition"] == condition]
        result, fewer = _clip(cluster_interval(everyone, confidence)), _clip(cluster_interval(screened, confidence))
        summary.append({"condition": condition, "raters": everyone["rater"].nunique(),
                        "items": everyone["item"].nunique(), "ratings": len(everyone), "mos": result["mos"],
                        "ci_low": result["ci_low"], "ci_high": result["ci_high"], "clipped": result["clipped"],
                        "screened_raters": screened["rater"].nunique(), "screened_ratings": len(screened),
                        "screened_mos": fewer["mos"], "screened_ci_low": fewer["ci_low"],
                        "screened_ci_high": fewer["ci_high"], "screened_clipped": fewer["clipped"]})
    table = pd.DataFrame(summary, columns=SUMMARY_COLUMNS)
    notes = []
    has_gold = bool(len(gold_rows))
    for _, r in raters[raters["flagged"]].iterrows():
        notes.append(f"rater {r['rater']} failed {r['gold'] - r['gold_passed']} of {r['gold']} gold questions: "
                     "flagged (the MOS is shown with and without the flagged raters)")
    if len(table) and table["ci_low"].isna().any():
        notes.append(f"an interval needs at least {MIN_INTERVAL_RATERS} raters and {MIN_INTERVAL_ITEMS} items; "
                     "conditions with fewer show the MOS alone")
    # The correlation reads the screened ratings, unless screening left nobody.
    scores = (kept if len(kept) else systems)[SCORE_COLUMNS].reset_index(drop=True)
    return MosAnalysis(name, table, raters, scores, has_gold, notes)
