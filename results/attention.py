"""Attention checks: trials with a known answer mixed into a crowd test, judged per test type.

The ratings table marks them (``attention``); they never enter a test's analysis. Each type's
results module says whether one rater passed one check (``attention_passed(rows) -> bool``, given
the exported rows of that rater's trial) and registers it in :data:`RULES` with one line. A rater who
failed any check is flagged, never silently dropped: MUSHRA's post-screening excludes them and says
so, every other type shows its test with and without them (:mod:`results.analyses`).
"""

from __future__ import annotations

import pandas as pd

from earshot.results import ab, abx, listening, mos, ranking

#: test type -> (one rater's rows of one attention trial) -> passed
RULES = {
    "mushra": listening.attention_passed,
    "abx": abx.attention_passed,
    "ab": ab.attention_passed,
    "ranking": ranking.attention_passed,
    "mos": mos.attention_passed,
}

COLUMNS = ["rater", "checks", "passed", "failed"]


def marked(frame: pd.DataFrame) -> pd.Series:
    """Which rows are attention checks: the ``attention`` column (True, or ``true`` read from a CSV)."""
    if "attention" not in frame.columns:
        return pd.Series(False, index=frame.index)
    column = frame["attention"]
    if column.dtype == bool:
        return column
    return column.map(lambda v: str(v).strip().lower() in ("true", "1", "yes"))


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(the test's own rows, its attention checks' rows)."""
    checks = marked(frame)
    return frame[~checks], frame[checks]


def attention_raters(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per rater who answered an attention check: how many they answered (``checks``), how many
    they passed and whether they failed any. ``frame``: the ratings table (checks' rows are picked out).

    Raises:
        ValueError: a check of a test type with no rule in :data:`RULES`.
    """
    rows = frame[marked(frame)] if len(frame) else frame
    if rows.empty:
        return pd.DataFrame(columns=COLUMNS)
    kinds = rows["type"].fillna("mushra").astype(str) if "type" in rows.columns else pd.Series("mushra", rows.index)
    unknown = sorted(set(kinds) - set(RULES))
    if unknown:
        raise ValueError(f"attention checks of test type {unknown[0]!r}: no rule to judge them "
                         f"(known: {', '.join(RULES)})")
    out = []
    for rater, mine in rows.assign(_type=kinds, rater=rows["rater"].astype(str)).groupby("rater", sort=True):
        results = [RULES[kind](trial) for (kind, _), trial in mine.groupby(["_type", "item"], sort=True)]
        out.append({"rater": rater, "checks": len(results), "passed": sum(results),
                    "failed": sum(results) < len(results)})
    return pd.DataFrame(out, columns=COLUMNS)


def failed_raters(frame: pd.DataFrame) -> list[str]:
    """The raters who failed at least one attention check."""
    table = attention_raters(frame)
    return [str(r) for r in table.loc[table["failed"].astype(bool), "rater"]]
