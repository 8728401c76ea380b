"""The admin page's live view of a test, computed by the ``results`` package."""

from __future__ import annotations

import pandas as pd

from earshot.results.listening import condition_summary, post_screen

SCREENING_COLUMNS = ["rater", "items", "reference_below_fraction", "mid_anchor_above_fraction", "excluded", "reason"]


def live_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per condition: mean and 95 % t-interval over raters (each averaged over items first)."""
    return condition_summary(frame)


def screening_status(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per rater: the ITU-R BS.1534-3 post-screening outcome so far, and why."""
    if frame.empty:
        return pd.DataFrame(columns=SCREENING_COLUMNS)
    return post_screen(frame).raters[SCREENING_COLUMNS]
