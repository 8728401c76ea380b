"""The seed experiment's claims, checked against a run's metrics.

Each claim compares the ``bark`` loss with ``mse`` on the same items and seeds: the
paired difference ``bark − mse`` per (seed, item), its mean and 95 % Student-t interval
over seeds × items. The verdict is computed: "supported" when the interval lies wholly on
the claimed side of zero, "contradicted" when wholly on the other, else "inconclusive".
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from earshot.results.stats import mean_ci


@dataclass(frozen=True)
class Claim:
    short: str
    statement: str
    metric: str
    direction: int  # +1: bark − mse should be positive; −1: negative
    categories: tuple[str, ...] | None = None  # None: every category


SEED_CLAIMS = (
    Claim("bark keeps more high frequencies",
          "the bark loss keeps more high-frequency energy (above 2 kHz) than MSE", "hf_energy_ratio_db_2k", +1),
    Claim("bark is less intelligible", "the bark loss is less intelligible on speech (STOI) than MSE", "stoi", -1,
          ("speech",)),
    Claim("MSE's error is noisier, bark's tonal",
          "MSE's error is more noise-like (flatter) than the bark loss's, which is more tonal", "error_flatness", -1),
)


def paired_differences(metrics: pd.DataFrame, metric: str, a: str, b: str,
                       categories: tuple[str, ...] | None = None) -> pd.Series:
    """``a − b`` for one metric, paired by (seed, item); NaN pairs dropped."""
    rows = metrics[(metrics["metric"] == metric) & metrics["loss"].isin([a, b])]
    if categories:
        rows = rows[rows["category"].isin(categories)]
    wide = rows.pivot_table(index=["seed", "item"], columns="loss", values="value", aggfunc="mean")
    if a not in wide or b not in wide:
        return pd.Series(dtype=float)
    return (wide[a] - wide[b]).dropna()


def check_claims(metrics: pd.DataFrame, treatment: str = "bark", baseline: str = "mse",
                 claims=SEED_CLAIMS) -> pd.DataFrame:
    """One row per claim: statement, metric, n pairs, mean difference, CI, verdict."""
    rows = []
    for claim in claims:
        diffs = paired_differences(metrics, claim.metric, treatment, baseline, claim.categories)
        mean, low, high = mean_ci(diffs.values)
        if diffs.size < 2 or pd.isna(low):
            verdict = "inconclusive"
        elif (low > 0 and claim.direction > 0) or (high < 0 and claim.direction < 0):
            verdict = "supported"
        elif (low > 0 and claim.direction < 0) or (high < 0 and claim.direction > 0):
            verdict = "contradicted"
        else:
            verdict = "inconclusive"
        rows.append({"claim": claim.short, "statement": claim.statement, "metric": claim.metric, "pairs": int(diffs.size),
                     "difference": f"{treatment} − {baseline}", "mean": mean, "ci_low": low, "ci_high": high,
                     "verdict": verdict})
    return pd.DataFrame(rows)
