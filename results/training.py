"""Were the systems compared trained alike? The steps each job trained, from ``run.json``.

A run trains every job the same number of steps (a minutes budget becomes one calibrated
step count); jobs still differ where a job failed, where a run was resumed under another
count, or where a run was trained before equal steps were the rule. A difference between
two losses is then partly a difference in training, and every table that compares them
says so (:func:`earshot.results.present.training_note`).
"""

from __future__ import annotations

from typing import Iterable

import pandas as pd

TRAINING_COLUMNS = ["job", "loss", "seed", "status", "steps", "seconds"]


def job_training(jobs: dict[str, dict], losses: Iterable[str] | None = None) -> pd.DataFrame:
    """The jobs of ``losses`` (default: every loss) that trained, in the run's job order.

    Arguments:
        jobs: ``run.json``'s ``jobs`` (``RunData.jobs``).
        losses: the losses compared; jobs of other losses (and systems with no job) are left out.

    Returns:
        Columns :data:`TRAINING_COLUMNS`, one row per job with a recorded step count (done or
        failed; a pending job has none).
    """
    wanted = None if losses is None else set(losses)
    rows = [{"job": job, "loss": info.get("loss"), "seed": info.get("seed"), "status": info.get("status"),
             "steps": int(info["steps"]), "seconds": info.get("seconds")}
            for job, info in jobs.items()
            if info.get("steps") is not None and (wanted is None or info.get("loss") in wanted)]
    return pd.DataFrame(rows, columns=TRAINING_COLUMNS)


def unequal_training(jobs: dict[str, dict], losses: Iterable[str] | None = None) -> pd.DataFrame:
    """:func:`job_training` when those jobs did not all train the same number of steps, else an empty frame."""
    trained = job_training(jobs, losses)
    return trained if trained["steps"].nunique() > 1 else trained.iloc[:0]
