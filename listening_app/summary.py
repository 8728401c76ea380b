"""A live summary for the admin page: mean and 95 % t-interval per condition.

The analysis proper belongs to ``results`` (post-screening, Friedman, Wilcoxon/Holm):
when ``results.listening.condition_summary`` is there the admin page shows it. Without
it, this is the small interval BS.1534 asks for: each rater averaged over items first,
then a Student t interval over raters (``results.stats.mean_ci``).
"""

from __future__ import annotations

import pandas as pd


def live_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per condition: kind, raters, mean, ci_low, ci_high (of per-rater means)."""
    try:
        from results.listening import condition_summary
    except ImportError:
        condition_summary = None
    if condition_summary is not None:
        return condition_summary(frame)
    from results.stats import mean_ci

    rows = []
    if frame.empty:
        return pd.DataFrame(columns=["condition", "kind", "raters", "mean", "ci_low", "ci_high"])
    per_rater = frame.groupby(["condition", "kind", "rater"], as_index=False)["score"].mean()
    for (condition, kind), group in per_rater.groupby(["condition", "kind"]):
        mean, low, high = mean_ci(group["score"].to_numpy())
        rows.append({"condition": condition, "kind": kind, "raters": len(group), "mean": mean,
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows).sort_values("mean", ascending=False).reset_index(drop=True)
