"""Every listening-test type's analysis, by the ``type`` column of the ratings table.

MUSHRA's (post-screening, means, Friedman, pairwise tests, the mixed model) lives in
:mod:`results.listening` and has its own path through the report and the CLI. Every other type is
one module beside ``abx.py`` whose ``analysis(frame, name, order)`` returns a :class:`TestAnalysis`
and one line in :data:`ANALYSES`; the report, ``listen analyze`` and the admin page show any of
them the same way, in the order the analysis gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from earshot.results import abx, attention, present
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


def _abx(frame: pd.DataFrame, name: str, order: list[str] | None = None) -> TestAnalysis:
    found = abx.analyze_abx(frame, name)
    parts: list[Part] = []
    if len(found.pairs):
        parts = [("abx-pairs", present.abx_pairs_table(found.pairs, found.alpha)),
                 ("abx-raters", present.abx_raters_table(found.raters, found.alpha))]
    return TestAnalysis(name, "abx", "ABX", "Live summary (proportion correct per pair, exact binomial tests)",
                        found.notes, parts)


#: type name -> (ratings table, test name, systems in the run's order) -> its analysis
ANALYSES: dict[str, Callable[..., TestAnalysis]] = {"abx": _abx}
#: Types whose analysis screens raters by the attention checks itself (it is handed them, and shows
#: them its own way); every other type's analysis sees the test's own trials only, and the checks are
#: shown for it here (:func:`analyze_test`).
SCREENS_ITSELF: set[str] = set()


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
