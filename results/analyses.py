"""Every listening-test type's analysis, by the ``type`` column of the ratings table.

MUSHRA's (post-screening, means, Friedman, pairwise tests, the mixed model) lives in
:mod:`results.listening` and has its own path through the report and the CLI. Every other type's
statistics are one module beside ``abx.py`` (``ab.py``, ``ranking.py``, ``mos.py``), and one line in
:data:`ANALYSES` names the function that turns them into a :class:`TestAnalysis`; the report,
``listen analyze`` and the admin page show any of them the same way, in the order the analysis
gives, with the test's attention checks (:mod:`results.attention`) kept apart and shown first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from earshot.results import ab, abx, attention, mos, present, ranking
from earshot.results.present import Table

Part = tuple[str, "Table | str"]  # (key under --json, a table or a sentence)


@dataclass
class TestAnalysis:
    """What the report, ``listen analyze`` and the admin page show about one test."""

    __test__ = False
    name: str
    type: str
    title: str  # "ABX": the test's heading reads "test NAME (ABX)"
    heading: str  # the admin page's live summary heading
    notes: list[str] = field(default_factory=list)  # no answers yet, raters flagged, too few…
    parts: list[Part] = field(default_factory=list)  # tables and sentences, in order
    # (slug, colours -> matplotlib figure, caption): the report's plots, drawn only there
    figures: list[tuple[str, Callable[[dict], object], str]] = field(default_factory=list)
    numbers: dict = field(default_factory=dict)  # what --json adds beyond the tables
    # A ratings-shaped table (rater, item, condition, kind, score; higher is better) the
    # metric-vs-listener correlation reads, at ``levels``; None when the type gives no scale.
    scores: pd.DataFrame | None = None
    levels: tuple[str, ...] = ("system", "item")
    scale: str = "the listeners' scores"  # what ``scores`` holds, for the correlation's caption
    # One row per ABX-like trial (a, b, item, hit 0/1): the correlation of each metric's difference
    # between a pair with how often the pair was told apart.
    discrimination: pd.DataFrame | None = None


def _abx(frame: pd.DataFrame, name: str, order: list[str] | None = None) -> TestAnalysis:
    found = abx.analyze_abx(frame, name)
    parts: list[Part] = []
    if len(found.pairs):
        parts = [("abx-pairs", present.abx_pairs_table(found.pairs, found.alpha)),
                 ("abx-raters", present.abx_raters_table(found.raters, found.alpha))]
    rows = frame[frame["type"] == "abx"] if "type" in frame.columns else frame
    answers = None
    if len(rows):
        answers = pd.DataFrame({"a": rows["a"].astype(str), "b": rows["b"].astype(str), "item": rows["item"].astype(str),
                                "hit": (rows["answer"].astype(str) == rows["x"].astype(str)).astype(int)})
    return TestAnalysis(name, "abx", "ABX", "Live summary (proportion correct per pair, exact binomial tests)",
                        found.notes, parts, discrimination=answers)


def _ranking(frame: pd.DataFrame, name: str, order: list[str] | None = None) -> TestAnalysis:
    found = ranking.analyze_ranking(frame, name, order)
    parts: list[Part] = []
    if len(found.means):
        parts = [("ranking-means", present.ranking_means_table(found.means)),
                 ("ranking-friedman", present.ranking_friedman_sentence(found.friedman))]
        if len(found.pairwise):
            parts.append(("ranking-pairwise", present.ranking_pairwise_table(found.pairwise, found.alpha)))
    figures = []
    if len(found.means):
        def draw(colours):  # matplotlib only where the report draws it, never on the admin page
            from earshot.results import plots

            return plots.ranking_means(found.means, colours)

        figures.append(("ranking-means", draw, "mean rank per condition (1 = best) with 95 % intervals"))
    return TestAnalysis(name, "ranking", "Ranking", "Live summary (mean rank per condition, Friedman test)",
                        found.notes, parts, figures, numbers={"friedman": found.friedman},
                        scores=found.scores if len(found.scores) else None,
                        scale="ranks (k + 1 − rank: higher is better)")


def _mos_figure(summary: pd.DataFrame, colours: dict):
    from earshot.results import plots  # matplotlib: the report draws figures, the admin page never does

    return plots.mos_means(summary, colours)


def _mos(frame: pd.DataFrame, name: str, order: list[str] | None = None) -> TestAnalysis:
    found = mos.analyze_mos(frame, name, order)
    parts: list[Part] = []
    if len(found.summary):
        parts = [("mos-conditions", present.mos_table(found.summary, found.gold))]
        if found.gold:  # a test without gold questions has no one to screen
            parts.append(("mos-raters", present.mos_raters_table(found.raters, mos.GOLD_HIGH, mos.GOLD_LOW)))
    figures = [("mos-means", lambda colours: _mos_figure(found.summary, colours),
                "MOS per condition with 95 % intervals over raters and items")] if len(found.summary) else []
    return TestAnalysis(name, "mos", "MOS (ACR)", "Live summary (mean opinion score per condition, gold questions)",
                        found.notes, parts, figures,
                        numbers={"flagged": found.raters.loc[found.raters["flagged"], "rater"].tolist()},
                        scores=found.scores if len(found.scores) else None, scale="mean opinion scores (1–5)")


#: type name -> (ratings table, test name, systems in the run's order) -> its analysis
ANALYSES: dict[str, Callable[..., TestAnalysis]] = {"abx": _abx, "ab": ab.analysis, "ranking": _ranking,
                                                   "mos": _mos}
#: Types whose analysis screens raters by the attention checks itself (it is handed them, and shows
#: them its own way); every other type's analysis sees the test's own trials only, and the checks are
#: shown for it here (:func:`analyze_test`).
SCREENS_ITSELF: set[str] = {"mos"}  # its gold questions: MOS with and without the raters who fail them


def test_type(frame: pd.DataFrame) -> str:
    """A ratings table's test type: its ``type`` column (one test per table), ``mushra`` without one."""
    if "type" not in frame.columns or frame.empty:
        return "mushra"
    kinds = [t for t in frame["type"].dropna().unique() if t != "mushra"]
    return str(kinds[0]) if kinds else "mushra"


def analyze_test(frame: pd.DataFrame, name: str, order: list[str] | None = None) -> TestAnalysis | None:
    """The analysis of a test that is not MUSHRA; None for MUSHRA, whose path is :mod:`results.listening`."""
    kind = test_type(frame)
    if kind == "mushra":
        return None
    if kind not in ANALYSES:
        raise ValueError(f"test {name}: no analysis for test type {kind!r} (known: mushra, {', '.join(ANALYSES)})")
    if kind in SCREENS_ITSELF:
        return ANALYSES[kind](frame, name, order)
    main, check_rows = attention.split(frame)  # attention checks never enter the analysis
    result = ANALYSES[kind](main, name, order)
    checks = attention.attention_raters(check_rows)
    if checks.empty:
        return result
    failed = [str(r) for r in checks.loc[checks["failed"].astype(bool), "rater"]]
    result.parts.insert(0, ("attention", present.attention_table(checks)))
    result.numbers["attention"] = {"failed": failed}
    if failed:
        # Flagged, never silently dropped: the test as answered, then its first table without them.
        kept = main[~main["rater"].astype(str).isin(failed)]
        result.notes.append(present.attention_sentence(failed))
        without = ANALYSES[kind](kept, name, order) if len(kept) else None
        first = next(((key, part) for key, part in without.parts if isinstance(part, Table)), None) if without else None
        if first is not None:
            key, table = first
            at = next(i for i, (k, _) in enumerate(result.parts) if k == key) + 1
            result.parts.insert(at, (f"{key}-attentive", present.without_raters(table, failed)))
    return result
