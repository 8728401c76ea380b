"""A/B preference statistics: preference shares per pair, exact binomial tests, a Bradley–Terry scale.

An A/B trial plays two conditions as A and B, without a reference; the rater says which they
prefer, or (where the test offers it) that they have no preference, exported as ``none``.

Per pair of conditions: how often each was preferred and how often neither; the share of the
*decided* trials that preferred the first, with a Wilson score interval
(``scipy.stats.binomtest(...).proportion_ci(method="wilson")``), and an exact two-sided binomial test
of that share against 1/2, Holm-adjusted over the test's pairs for the verdict (several pairs are
several questions). The share of "no preference" answers is reported beside it.

Over all conditions: a Bradley–Terry scale (Bradley & Terry 1952), P(i preferred over j) =
p_i / (p_i + p_j), fitted by maximum likelihood with Hunter's MM algorithm (Ann. Statist. 32, 2004).
A "no preference" answer counts as half a win to each side (ties split half/half, not a Davidson
tie model). The scale is log p_i, centred to mean 0 (logit units: a difference of 1 means odds
e : 1). Intervals are Wald intervals from the observed information (which for this model equals
the expected one), its Moore–Penrose inverse giving the covariance of the centred scale; they treat
every trial as independent, as the pooled binomial tests do. The MLE exists only when no set of
conditions was never preferred over the rest (the graph of "i preferred over j at least once,
counting half wins" is strongly connected); otherwise no scale is given and the analysis says why.

Trials that play anything but two systems (the attention check: the reference against the low
anchor) are left out of both; :func:`attention_passed` reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats
from scipy.sparse.csgraph import connected_components

from earshot.results.listening import condition_kind
from earshot.results.stats import holm

ALPHA = 0.05  # a two-sided p below this: one side of the pair is preferred
NO_PREFERENCE = "none"
MM_TOLERANCE = 1e-12  # largest change of a log strength between MM steps at convergence
MM_MAX_STEPS = 100_000

PAIR_COLUMNS = ["pair", "first", "second", "raters", "trials", "prefer_first", "prefer_second", "no_preference",
                "share_first", "ci_low", "ci_high", "no_preference_share", "pvalue", "p_holm", "preferred"]
SCALE_COLUMNS = ["condition", "comparisons", "wins", "scale", "se", "ci_low", "ci_high"]


def is_ab(frame: pd.DataFrame) -> bool:
    """Whether a ratings table (the columns of ``RATINGS_TABLE_COLUMNS``) holds A/B preferences."""
    return "type" in frame.columns and bool((frame["type"] == "ab").any())


def share_test(wins: int, decided: int, confidence: float = 0.95) -> dict:
    """``share, ci_low, ci_high, pvalue`` of ``wins`` out of ``decided`` against 1/2: Wilson interval,
    exact two-sided p; NaN without decided trials."""
    if decided == 0:
        return {"share": math.nan, "ci_low": math.nan, "ci_high": math.nan, "pvalue": math.nan}
    test = stats.binomtest(wins, decided, 0.5)
    interval = test.proportion_ci(confidence, method="wilson")
    return {"share": wins / decided, "ci_low": float(interval.low), "ci_high": float(interval.high),
            "pvalue": float(test.pvalue)}


@dataclass
class BradleyTerry:
    """A Bradley–Terry fit: the centred log strengths with Wald intervals, or why there are none."""

    conditions: list[str]
    wins: np.ndarray  # wins[i, j]: trials where i was preferred over j, "no preference" as 1/2 each
    scale: np.ndarray  # centred log strengths; NaN when the MLE does not exist
    covariance: np.ndarray
    note: str = ""  # why there is no scale


def bradley_terry(conditions: list[str], wins: np.ndarray, confidence: float = 0.95) -> BradleyTerry:
    """The Bradley–Terry MLE of ``wins`` (``wins[i, j]``: times ``conditions[i]`` was preferred over
    ``conditions[j]``, fractional where ties were split) by Hunter's MM algorithm, with its covariance."""
    wins = np.asarray(wins, dtype=float)
    k = len(conditions)
    empty = BradleyTerry(conditions, wins, np.full(k, np.nan), np.full((k, k), np.nan))
    if k < 2:
        empty.note = "a scale needs at least two conditions"
        return empty
    strongly, _ = connected_components(wins > 0, directed=True, connection="strong")
    if strongly > 1:
        empty.note = _why_no_scale(conditions, wins)
        return empty
    games = wins + wins.T
    total_wins = wins.sum(axis=1)
    strength = np.ones(k)
    for _ in range(MM_MAX_STEPS):
        pair_sum = strength[:, None] + strength[None, :]
        updated = total_wins / (games / pair_sum).sum(axis=1)
        updated /= np.exp(np.log(updated).mean())
        change = np.abs(np.log(updated) - np.log(strength)).max()
        strength = updated
        if change < MM_TOLERANCE:
            break
    scale = np.log(strength) - np.log(strength).mean()
    chance = strength[:, None] / (strength[:, None] + strength[None, :])
    weight = games * chance * chance.T  # n_ij π_ij (1 − π_ij)
    information = np.diag(weight.sum(axis=1)) - weight
    return BradleyTerry(conditions, wins, scale, np.linalg.pinv(information))


def _why_no_scale(conditions: list[str], wins: np.ndarray) -> str:
    never_lost = [c for i, c in enumerate(conditions) if wins[:, i].sum() == 0 and wins[i].sum() > 0]
    never_won = [c for i, c in enumerate(conditions) if wins[i].sum() == 0]
    compared = (wins + wins.T) > 0
    if connected_components(compared, directed=False)[0] > 1:
        reason = "some conditions were never compared, directly or through others"
    elif never_lost:
        reason = f"{', '.join(never_lost)} was preferred in every trial it played"
    elif never_won:
        reason = f"{', '.join(never_won)} was never preferred"
    else:
        reason = "some conditions were preferred over all the others in every trial"
    return (f"no Bradley–Terry scale: {reason}, so the maximum-likelihood scale does not exist "
            "(the preference shares per pair still hold)")


def scale_frame(fit: BradleyTerry, confidence: float = 0.95) -> pd.DataFrame:
    """``SCALE_COLUMNS``, highest scale first; empty when the fit has no scale."""
    if np.isnan(fit.scale).all():
        return pd.DataFrame(columns=SCALE_COLUMNS)
    z = stats.norm.ppf(0.5 + confidence / 2)
    se = np.sqrt(np.clip(np.diag(fit.covariance), 0, None))
    games = fit.wins + fit.wins.T
    frame = pd.DataFrame({"condition": fit.conditions, "comparisons": games.sum(axis=1).round().astype(int),
                          "wins": fit.wins.sum(axis=1), "scale": fit.scale, "se": se,
                          "ci_low": fit.scale - z * se, "ci_high": fit.scale + z * se})
    return frame.sort_values("scale", ascending=False, kind="stable").reset_index(drop=True)[SCALE_COLUMNS]


@dataclass
class AbAnalysis:
    """Everything shown about one A/B preference test."""

    name: str
    pairs: pd.DataFrame  # PAIR_COLUMNS, one row per pair of systems
    scale: pd.DataFrame  # SCALE_COLUMNS; empty when no scale
    fit: BradleyTerry | None
    used: pd.DataFrame  # the trials analysed (two systems each), with rater, item, a, b, answer
    alpha: float = ALPHA
    notes: list[str] = field(default_factory=list)


def _ordered(conditions, order: list[str] | None) -> list[str]:
    rank = {c: i for i, c in enumerate(order or [])}
    return sorted(set(conditions), key=lambda c: (rank.get(c, len(rank)), c))


def analyze_ab(frame: pd.DataFrame, name: str = "A/B test", order: list[str] | None = None,
               confidence: float = 0.95, alpha: float = ALPHA) -> AbAnalysis:
    """Preference shares per pair and the Bradley–Terry scale.

    Arguments:
        frame: the ratings table; its A/B rows (``type`` ``ab``) are used, with ``rater``, ``item``,
            ``a``, ``b`` and ``answer`` (the condition preferred, or ``none``).
        order: systems in the run's order: a pair is named and counted in it, the first system first.
    """
    rows = frame[frame["type"] == "ab"] if "type" in frame.columns else frame
    missing = [c for c in ("rater", "item", "a", "b", "answer") if c not in rows.columns]
    if missing:
        raise ValueError(f"A/B table: missing column(s) {', '.join(missing)}")
    rows = rows.assign(a=rows["a"].astype(str), b=rows["b"].astype(str), answer=rows["answer"].astype(str),
                       rater=rows["rater"].astype(str), item=rows["item"].astype(str))
    wrong = rows[~rows["answer"].isin([NO_PREFERENCE]) & (rows["answer"] != rows["a"]) & (rows["answer"] != rows["b"])]
    if len(wrong):
        row = wrong.iloc[0]
        raise ValueError(f"A/B table: answer {row['answer']!r} is neither {row['a']!r}, {row['b']!r} nor "
                         f"{NO_PREFERENCE!r}")
    systems = rows["a"].map(condition_kind).eq("system") & rows["b"].map(condition_kind).eq("system")
    notes = []
    if (~systems).sum():
        notes.append(f"{name}: {int((~systems).sum())} attention-check trials (the reference against the low anchor) "
                     "are not part of the preferences")
    used = rows[systems]
    empty = AbAnalysis(name, pd.DataFrame(columns=PAIR_COLUMNS), pd.DataFrame(columns=SCALE_COLUMNS), None, used,
                       alpha)
    if used.empty:
        empty.notes = [f"{name}: no answers yet", *notes]
        return empty
    conditions = _ordered(pd.concat([used["a"], used["b"]]), order)
    index = {c: i for i, c in enumerate(conditions)}
    wins = np.zeros((len(conditions), len(conditions)))
    pairs = []
    first_of = used[["a", "b"]].apply(lambda r: min(r, key=index.__getitem__), axis=1)
    second_of = used[["a", "b"]].apply(lambda r: max(r, key=index.__getitem__), axis=1)
    for (first, second), group in used.groupby([first_of, second_of], sort=False):
        i, j = index[first], index[second]
        to_first, to_second = int((group["answer"] == first).sum()), int((group["answer"] == second).sum())
        neither = len(group) - to_first - to_second
        wins[i, j] += to_first + neither / 2
        wins[j, i] += to_second + neither / 2
        result = share_test(to_first, to_first + to_second, confidence)
        pairs.append({"pair": f"{first} vs {second}", "first": first, "second": second,
                      "raters": group["rater"].nunique(), "trials": len(group), "prefer_first": to_first,
                      "prefer_second": to_second, "no_preference": neither, "share_first": result["share"],
                      "ci_low": result["ci_low"], "ci_high": result["ci_high"],
                      "no_preference_share": neither / len(group), "pvalue": result["pvalue"]})
    pairs_frame = pd.DataFrame(pairs).assign(p_holm=lambda f: holm(f["pvalue"]))
    # Several pairs are several questions: the verdict reads p Holm-adjusted over the test's pairs.
    pairs_frame["preferred"] = [(r.first if r.share_first > 0.5 else r.second) if r.p_holm < alpha else ""
                                for r in pairs_frame.itertuples()]
    pairs_frame = pairs_frame[PAIR_COLUMNS]
    pairs_frame = pairs_frame.sort_values(["first", "second"], key=lambda s: s.map(index), kind="stable")
    fit = bradley_terry(conditions, wins, confidence)
    if fit.note:
        notes.append(f"{name}: {fit.note}")
    return AbAnalysis(name, pairs_frame.reset_index(drop=True), scale_frame(fit, confidence), fit, used, alpha, notes)


def scale_scores(result: AbAnalysis) -> pd.DataFrame | None:
    """The Bradley–Terry scale as a ratings-shaped table for the metric-vs-listener correlation:
    one row per system and item it was heard on, ``score`` its scale (higher = preferred), one
    pseudo-rater; system level only (the scale is fitted over every item). None without a scale."""
    if result.scale.empty:
        return None
    scale = dict(zip(result.scale["condition"], result.scale["scale"]))
    heard = pd.concat([result.used[["item", "a"]].rename(columns={"a": "condition"}),
                       result.used[["item", "b"]].rename(columns={"b": "condition"})]).drop_duplicates()
    return pd.DataFrame({"rater": "bradley-terry", "item": heard["item"], "condition": heard["condition"],
                         "kind": "system", "score": heard["condition"].map(scale).astype(float)}).reset_index(drop=True)


def attention_passed(rows: pd.DataFrame) -> bool:
    """Whether one rater passed one attention trial (the exported rows of that trial: one A/B row
    playing the reference against the low anchor): passed when they preferred the reference."""
    if len(rows) != 1:
        raise ValueError(f"an A/B attention trial is one exported row, not {len(rows)}")
    row = rows.iloc[0]
    if {str(row["a"]), str(row["b"])} != {"reference", "anchor-low"}:
        raise ValueError(f"an A/B attention trial plays the reference against the low anchor, not "
                         f"{row['a']} against {row['b']}")
    return str(row["answer"]) == "reference"


def analysis(frame: pd.DataFrame, name: str, order: list[str] | None = None):
    """The test's :class:`results.analyses.TestAnalysis`: pair table, scale table, scale figure, scores."""
    from earshot.results import plots, present
    from earshot.results.analyses import TestAnalysis

    found = analyze_ab(frame, name, order)
    parts, figures = [], []
    if len(found.pairs):
        parts.append(("ab-pairs", present.ab_pairs_table(found.pairs, found.alpha)))
    if len(found.scale):
        parts.append(("ab-scale", present.ab_scale_table(found.scale)))
        figures.append(("ab-scale", lambda colours: plots.preference_scale(found.scale, colours),
                        "Bradley–Terry scale per system with 95 % Wald intervals"))
    numbers = {"bradley_terry": {"ties": "no preference counts half a win to each side",
                                 "fit": "maximum likelihood, Hunter's MM algorithm",
                                 "intervals": "Wald, from the observed information",
                                 "estimable": bool(len(found.scale)), "note": found.fit.note if found.fit else ""}}
    return TestAnalysis(name=name, type="ab", title="A/B preference",
                        heading="Live summary (preference shares per pair, Bradley–Terry scale)", notes=found.notes,
                        parts=parts, figures=figures, numbers=numbers, scores=scale_scores(found), levels=("system",),
                        scale="the Bradley–Terry preference scale")
