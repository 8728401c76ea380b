"""Declared hypotheses, checked against a run's metrics: one contrast, one interval, one verdict each.

Each hypothesis (:mod:`earshot.results.hypotheses`) is the paired difference
``treatment − baseline`` on the same (seed, item), estimated by
:func:`earshot.results.aggregate.paired_difference`, the estimator every metric table uses
(the hierarchical bootstrap over seeds, then items), so the interval printed here is the
one the paired-differences table prints. For ``closer-to-ideal`` the contrast is
``|baseline − ideal| − |treatment − ideal|`` per (seed, item): positive when the treatment
lies closer to the ideal.

Multiplicity: each hypothesis gets a bootstrap p-value by inverting that same interval (the
smallest α whose ``1 − α`` interval lies wholly beyond the smallest effect on the claimed
side, or wholly on the other side of 0), and the p-values of the declared set are
Holm-adjusted (``statsmodels.stats.multitest.multipletests``). Uncorrected, p < α exactly
when the 95 % interval decides; corrected, a borderline interval stays inconclusive when
several hypotheses are tested.

Verdicts (:func:`verdict`): "supported" when the Holm-adjusted p < α and the interval lies
beyond the smallest effect on the claimed side; "contradicted" when it lies on the other
side of 0; "not meaningful: undertrained" when either system is undertrained; else
"inconclusive". Where the two systems' jobs trained different numbers of steps (a failed or
resumed job), the verdict says so too (``supported; unequal training``) and ``steps`` names
the counts: the difference is then partly one of training.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests

from earshot.results import adequacy
from earshot.results.aggregate import Contrast, paired_difference
from earshot.results.hypotheses import Hypothesis
from earshot.results.stats import hierarchical_bootstrap_ci
from earshot.results.store import RunData
from earshot.results.training import job_training

ALPHA = 0.05
BISECTIONS = 14  # the p-value to within 1e-4, finer than the 2000 resamples resolve
UNDERTRAINED = "not meaningful: undertrained"
UNEQUAL = "unequal training"

CHECK_COLUMNS = ["name", "statement", "metric", "categories", "treatment", "baseline", "direction",
                 "smallest_effect", "contrast", "pairs", "mean", "ci_low", "ci_high", "p", "p_holm", "side", "steps", "unequal", "verdict"]


def _rows(metrics: pd.DataFrame, h: Hypothesis, ideal: float | None) -> pd.DataFrame:
    """The hypothesis's metric rows in its categories; for closer-to-ideal, values as −|value − ideal|."""
    rows = metrics[(metrics["metric"] == h.metric) & metrics["loss"].isin([h.treatment, h.baseline])]
    if h.categories:
        rows = rows[rows["category"].isin(h.categories)]
    if h.direction == "closer-to-ideal":
        rows = rows.assign(value=-(rows["value"].astype(float) - ideal).abs())
    return rows


def contrast_label(h: Hypothesis, ideal: float | None = None) -> str:
    """What the contrast's numbers are: ``bark − mse``, or ``|mse − 0| − |bark − 0|`` toward an ideal."""
    if h.direction == "closer-to-ideal":
        return f"|{h.baseline} − {ideal:g}| − |{h.treatment} − {ideal:g}|"
    return f"{h.treatment} − {h.baseline}"


def _signed(low: float, high: float, direction: str) -> tuple[float, float]:
    """The interval turned so that the claimed direction is positive."""
    return (-high, -low) if direction == "lower" else (low, high)


def _difference_matrix(rows: pd.DataFrame, h: Hypothesis) -> np.ndarray:
    """seeds × items of ``treatment − baseline``: the table :func:`paired_difference` bootstraps."""
    wide = rows.pivot_table(index=["seed", "item"], columns="loss", values="value", aggfunc="mean")
    diff = (wide[h.treatment] - wide[h.baseline]).rename("value").reset_index()
    return diff.pivot_table(index="seed", columns="item", values="value", aggfunc="mean",
                            dropna=False).to_numpy(dtype=float)


def _p_value(matrix: np.ndarray, direction: str, decides) -> float:
    """The smallest α at which the ``1 − α`` hierarchical-bootstrap interval of the contrast satisfies
    ``decides(low, high)`` (signed), by bisection over the coverage; 1 when no interval does.

    The resampling is seeded, so every coverage reads quantiles of the same bootstrap means: this is
    the two-sided percentile-bootstrap p-value, and p < 0.05 exactly when the 95 % interval decides.
    """
    def holds(alpha: float) -> bool:
        _, low, high = hierarchical_bootstrap_ci(matrix, 1 - alpha)
        return decides(*_signed(low, high, direction))

    if holds(0.0):
        return 0.0  # every bootstrap mean lies on the deciding side
    if not holds(1.0):
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(BISECTIONS):
        middle = (low + high) / 2
        low, high = (low, middle) if holds(middle) else (middle, high)
    return high


def _test(rows: pd.DataFrame, h: Hypothesis) -> tuple[float, str]:
    """(p, side): the bootstrap p-value of the hypothesis and the side it points to (``supports``,
    ``contradicts``)."""
    matrix = _difference_matrix(rows, h)
    effect = h.smallest_effect or 0.0
    p_support = _p_value(matrix, h.direction, lambda low, high: low > effect)
    p_contra = _p_value(matrix, h.direction, lambda low, high: high < 0)
    if p_support <= p_contra:
        return p_support, "supports"
    return p_contra, "contradicts"


def verdict(side: str | None, p_holm: float, pairs: int, systems: tuple[str, str],
            undertrained: set[str] | frozenset[str] = frozenset(), alpha: float = ALPHA) -> str:
    """The verdict of one hypothesis.

    Arguments:
        side: which way its test points (``supports`` / ``contradicts``), None without a test.
        p_holm: its Holm-adjusted p-value over the declared set.
        pairs: the (seed, item) pairs its contrast rests on.
        systems: (treatment, baseline).
        undertrained: losses or systems judged undertrained (``results.adequacy``): a hypothesis
            resting on one is not meaningful, whatever its interval.
        alpha: the family-wise error rate.

    Returns:
        "supported", "contradicted", "inconclusive" or "not meaningful: undertrained".
    """
    if set(systems) & set(undertrained):
        return UNDERTRAINED
    if side is None or pairs < 2 or not p_holm < alpha:
        return "inconclusive"
    return "supported" if side == "supports" else "contradicted"


def _steps(training: pd.DataFrame | None, systems: tuple[str, str]) -> tuple[dict[str, list[int]], bool]:
    """Each trained system's distinct step counts, and whether the jobs compared differ in steps."""
    if training is None or training.empty:
        return {}, False
    counts = {name: sorted({int(s) for s in training.loc[training["loss"] == name, "steps"]}) for name in systems}
    counts = {name: steps for name, steps in counts.items() if steps}
    return counts, len({s for steps in counts.values() for s in steps}) > 1


def check_hypotheses(metrics: pd.DataFrame, hypotheses: tuple[Hypothesis, ...], metric_info: dict[str, dict],
                     undertrained: set[str] | frozenset[str] = frozenset(), alpha: float = ALPHA,
                     training: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per hypothesis, in declared order.

    Arguments:
        metrics: the run's tidy metrics table.
        hypotheses: the declared set (the family the Holm correction runs over).
        metric_info: the run's metric catalog (units, ideals).
        undertrained: see :func:`verdict`.
        alpha: the family-wise error rate.
        training: the jobs' step counts (:func:`earshot.results.training.job_training`); systems with
            no job (a baseline) are left out of the comparison of steps.

    Returns:
        Columns :data:`CHECK_COLUMNS`: ``mean, ci_low, ci_high`` the contrast and its 95 %
        interval (for higher/lower exactly the paired-differences table's ``treatment −
        baseline``), ``pairs`` the (seed, item) pairs, ``p`` and ``p_holm`` the bootstrap p-value
        before and after the Holm correction, ``side`` which way the test points, ``steps`` each
        trained system's step counts, ``unequal`` whether they differ, ``verdict`` (with
        ``; unequal training`` appended when they do).
    """
    rows = []
    for h in hypotheses:
        info = metric_info.get(h.metric) or {}
        ideal = info.get("ideal")
        selected = _rows(metrics, h, ideal)
        c: Contrast = paired_difference(selected, h.metric, h.treatment, h.baseline)
        p, side = _test(selected, h) if c.n >= 2 and math.isfinite(c.low) else (math.nan, None)
        rows.append({"name": h.name, "statement": h.describe(info.get("unit")), "metric": h.metric,
                     "categories": ", ".join(h.categories) if h.categories else "all", "treatment": h.treatment,
                     "baseline": h.baseline, "direction": h.direction, "smallest_effect": h.smallest_effect,
                     "contrast": contrast_label(h, ideal), "pairs": c.n, "mean": c.mean, "ci_low": c.low,
                     "ci_high": c.high, "p": p, "side": side,
                     **dict(zip(("steps", "unequal"), _steps(training, (h.treatment, h.baseline))))})
    frame = pd.DataFrame(rows, columns=[c for c in CHECK_COLUMNS if c not in ("p_holm", "verdict")])
    tested = frame["p"].notna().to_numpy()
    frame["p_holm"] = math.nan
    if tested.any():
        frame.loc[tested, "p_holm"] = multipletests(frame.loc[tested, "p"].to_numpy(dtype=float), alpha=alpha,
                                                    method="holm")[1]
    frame["verdict"] = [verdict(r["side"], r["p_holm"], r["pairs"], (r["treatment"], r["baseline"]), undertrained,
                                alpha) + (f"; {UNEQUAL}" if r["unequal"] else "") for _, r in frame.iterrows()]
    return frame[CHECK_COLUMNS]


def check_run(run: RunData, hypotheses: tuple[Hypothesis, ...], assessment: pd.DataFrame | None = None,
              metric_info: dict[str, dict] | None = None) -> pd.DataFrame:
    """:func:`check_hypotheses` on a run, as ``eval`` and the report both check it: undertrained
    systems from its adequacy ``assessment`` (:func:`earshot.results.adequacy.assess` when None),
    its jobs' step counts, and its recorded metric info unless ``metric_info`` is given."""
    assessment = adequacy.assess(run) if assessment is None else assessment
    return check_hypotheses(run.metrics, hypotheses, run.metric_info if metric_info is None else metric_info,
                            undertrained=adequacy.undertrained_losses(assessment), training=job_training(run.jobs))
