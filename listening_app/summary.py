"""The admin page's live view of a test: the analysis and tables of the ``results`` package.

The page shows what the report and ``earshot listen analyze`` show for the same ratings,
in the same strings: post-screening per rater, then the MUSHRA means with their
intervals over the raters who passed it; for ABX, proportion correct per pair, pooled and per rater.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from earshot.results import present
from earshot.results.analyses import analyze_test
from earshot.results.listening import analyze_ratings
from earshot.results.rundir import RunDir


@dataclass
class LiveView:
    """What the admin page shows about a test's ratings so far."""

    notes: list[str]  # raters who have not finished, every rater excluded, no ratings yet
    screening: str  # the screening rules and N before and after; '' before the first rating
    raters: present.Table | None  # post-screening per rater
    summary: list[present.Table]  # MUSHRA means [95 % CI]: systems, then the hidden reference and anchors
    too_few: str | None = None  # which conditions have too few raters for an interval
    heading: str = "Live summary (mean and 95 % CI over the raters who pass post-screening)"


def system_order(run_dir: str | Path) -> list[str]:
    """The jobs of the run a test was made from, in the run's order (the report lists systems in
    it); [] when the run is no longer there, and systems are then listed alphabetically."""
    try:
        return list(RunDir(Path(run_dir)).read_record().get("jobs") or {})
    except (OSError, ValueError):  # moved, unreadable or half-written run.json
        return []


def live_view(ratings: pd.DataFrame, name: str, order: list[str] | None = None) -> LiveView:
    """The live view of one test's ratings (the ratings table of ``earshot listen export``),
    systems in ``order`` (see :func:`system_order`); any other type's tables (:mod:`results.analyses`)."""
    other = analyze_test(ratings, name, order)
    if other is not None:
        sentences = [p for _, p in other.parts if isinstance(p, str)]
        return LiveView(other.notes + sentences, "", None, [p for _, p in other.parts if isinstance(p, present.Table)],
                        heading=other.heading)
    result = analyze_ratings(ratings, name, with_mixed_model=False, system_order=order)
    if result.screening is None:
        return LiveView(result.notes, "", None, [])
    return LiveView(result.notes, present.screening_sentence(result.screening),
                    present.screening_table(result.screening), present.mushra_tables(result.summary),
                    present.too_few_raters_sentence(result.summary))
