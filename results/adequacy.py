"""Whether each trained job is adequate to compare: trained to a plateau, and better than a linear code.

A difference between two losses says something about the losses only when both models have
learnt what they can; two barely started models differ by chance and by speed. Every job is
checked twice:

- **flattened**: its training loss has stopped falling. The logged loss is split by logged
  step into quarters; the median of the last quarter is compared with the median of the
  quarter before (medians, because single logged steps are noisy). The job has flattened
  when the loss fell by less than :data:`FLAT_RELATIVE_CHANGE` (5 %) of the earlier median
  between them. A loss that rises is not "still falling": more steps would not help it.
  With fewer than :data:`MIN_LOGGED_STEPS` logged steps the check is unknown.
- **beats the baseline**: on its own objective, against the run's linear baseline
  (``pca-<latent>``: PCA with as many components as the model's code, fitted on the same
  training windows and reconstructed the same way; ``benchmark/evaluate/baseline.py``).
  For ``mse``, and for a loss whose decoder head is not a waveform (a PCA reconstruction
  cannot be scored by it), the objective is the mean SNR over the held-out excerpts
  (``metrics.parquet``), higher better; for every other loss, the loss itself on the
  held-out windows, the model's and the baseline's (``adequacy.json``), lower better.

A job that fails either check is **undertrained**, and a hypothesis resting on it gets the
verdict "not meaningful: undertrained" (``results.claims``). A check that cannot be made
(no training log; a run evaluated before ``adequacy.json`` existed) is unknown and marks
nothing.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from earshot.results.store import RunData

FLAT_RELATIVE_CHANGE = 0.05  # a loss still falling by this fraction over the last quarter is not flat
MIN_LOGGED_STEPS = 8  # two quarters of at least two logged steps each
SNR_METRIC = "snr"
SNR_LOSSES = ("mse",)  # losses judged by SNR: MSE's own distance, in the unit users read

ASSESSMENT_COLUMNS = ["job", "loss", "seed", "steps", "relative_change", "flattened", "objective", "model",
                      "baseline", "baseline_system", "beats_baseline", "undertrained", "reason"]
OBJECTIVE_SNR = "SNR (dB, higher better)"
OBJECTIVE_LOSS = "own loss (lower better)"


def relative_change(log: pd.DataFrame) -> float | None:
    """How much the training loss fell over the last quarter of the logged steps, as a fraction of the
    quarter before's median: ``(median before − median last) / |median before|`` (positive: still
    falling); None with fewer than :data:`MIN_LOGGED_STEPS` finite logged values or a zero median."""
    values = log.sort_values("step")["loss"].astype(float).to_numpy()
    values = values[np.isfinite(values)]
    if values.size < MIN_LOGGED_STEPS:
        return None
    quarter = values.size // 4
    before, last = np.median(values[-2 * quarter:-quarter]), np.median(values[-quarter:])
    if before == 0:
        return None
    return float((before - last) / abs(before))


def baseline_system(run: RunData) -> str | None:
    """The run's linear baseline system (``pca-128``), or None when the run was evaluated without one."""
    record = run.dir.read_adequacy() or {}
    return (record.get("baseline") or {}).get("name")


def _mean_snr(metrics: pd.DataFrame, job: str, items: set[str] | None = None) -> tuple[float | None, set[str]]:
    rows = metrics[(metrics["job"] == job) & (metrics["metric"] == SNR_METRIC)]
    rows = rows[np.isfinite(rows["value"].astype(float))]
    if items is not None:
        rows = rows[rows["item"].isin(items)]
    return (float(rows["value"].mean()) if len(rows) else None), set(rows["item"])


def _objective(run: RunData, job: str, loss: str, entry: dict | None, baseline: str | None) -> tuple:
    """(objective, model value, baseline value, beats the baseline: True, False or None when unknown)."""
    if baseline is None:
        return None, None, None, None
    if loss in SNR_LOSSES or entry is None or entry.get("model") is None or entry.get("baseline") is None:
        model, items = _mean_snr(run.metrics, job)
        reference, _ = _mean_snr(run.metrics, baseline, items)
        if model is None or reference is None:
            return OBJECTIVE_SNR, model, reference, None
        return OBJECTIVE_SNR, model, reference, model > reference
    model, reference = float(entry["model"]), float(entry["baseline"])
    if not (math.isfinite(model) and math.isfinite(reference)):
        return OBJECTIVE_LOSS, model, reference, None
    return OBJECTIVE_LOSS, model, reference, model < reference


def assess(run: RunData) -> pd.DataFrame:
    """Both checks for every finished job of the run, in the run's job order.

    Returns:
        Columns :data:`ASSESSMENT_COLUMNS`: ``relative_change`` (:func:`relative_change`), ``flattened``,
        ``objective`` (what the model and the baseline are compared on), ``model`` and ``baseline`` (their
        values), ``baseline_system``, ``beats_baseline`` (True/False, None when unknown), ``undertrained``
        and ``reason`` (words: which check failed); empty when no job has finished.
    """
    record = run.dir.read_adequacy() or {}
    entries = record.get("jobs") or {}
    baseline = (record.get("baseline") or {}).get("name")
    rows = []
    for job, info in run.jobs.items():
        if info.get("status") != "done":
            continue
        loss = str(info.get("loss"))
        log = run.logs[run.logs["job"] == job] if "job" in run.logs else run.logs.iloc[0:0]
        change = relative_change(log) if len(log) else None
        flattened = None if change is None else change < FLAT_RELATIVE_CHANGE
        objective, model, reference, beats = _objective(run, job, loss, entries.get(job), baseline)
        reasons = []
        if flattened is False:
            reasons.append("training loss still falling")
        if beats is False:
            reasons.append(f"does not beat {baseline}")
        rows.append({"job": job, "loss": loss, "seed": info.get("seed"), "steps": info.get("steps"),
                     "relative_change": change, "flattened": flattened, "objective": objective, "model": model,
                     "baseline": reference, "baseline_system": baseline, "beats_baseline": beats,
                     "undertrained": bool(reasons), "reason": "; ".join(reasons)})
    return pd.DataFrame(rows, columns=ASSESSMENT_COLUMNS)


def undertrained_jobs(assessment: pd.DataFrame) -> list[str]:
    """The jobs :func:`assess` marks undertrained, in its order."""
    return list(assessment.loc[assessment["undertrained"].astype(bool), "job"]) if len(assessment) else []


def undertrained_losses(assessment: pd.DataFrame) -> set[str]:
    """The losses with at least one undertrained job: a comparison across seeds rests on every one of them."""
    return set(assessment.loc[assessment["undertrained"].astype(bool), "loss"]) if len(assessment) else set()
