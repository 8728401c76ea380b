"""The run store: read what ``benchmark`` wrote into ``runs/<run-id>/``, tolerating gaps.

Every reader returns something usable for a partial run (a failed job, no metrics yet, a
missing training log) and records what was missing in :attr:`RunData.missing`, so the
report can say so instead of crashing. Paths and files come from :mod:`earshot.results.rundir`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from earshot.results.rundir import RunDir

METRICS_COLUMNS = ["job", "loss", "seed", "item", "category", "metric", "value", "error"]
LOG_COLUMNS = ["step", "epoch", "loss", "lr", "windows_per_s", "wall_s"]


@dataclass
class RunData:
    """One run directory, loaded."""

    path: Path
    config: dict  # config.yaml as written; {} when it is missing or unreadable
    environment: dict
    run: dict
    metrics: pd.DataFrame
    logs: pd.DataFrame  # the training logs of every job, with ``job, loss, seed`` columns
    excerpts: list[dict]
    # Per metric, in table order: higher_is_better, ideal, unit, categories, description
    # (metrics_info.json); {} for a run evaluated before evaluation wrote it.
    metric_info: dict[str, dict] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    @property
    def dir(self) -> RunDir:
        """The run directory's layout: every path in it."""
        return RunDir(self.path)

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id") or self.path.name)

    @property
    def losses(self) -> list[str]:
        """Losses in the configured order (then any others found in the metrics)."""
        configured = list(self.config.get("losses") or [])
        found = sorted(set(self.metrics["loss"]) - set(configured)) if len(self.metrics) else []
        return configured + found

    @property
    def jobs(self) -> dict[str, dict]:
        return dict(self.run.get("jobs") or {})

    @property
    def sample_rate(self) -> int:
        return int((self.config.get("data") or {}).get("sample_rate") or 11025)

    def reference_wav(self, item: str) -> Path:
        return self.dir.reference_wav(item)

    def recon_wav(self, job: str, item: str) -> Path:
        return self.dir.recon_wav(job, item)


def _read(read, path: Path, missing: list[str], default):
    """``read()``, or ``default`` with the reason noted in ``missing``."""
    try:
        return read()
    except FileNotFoundError:
        missing.append(f"{path.name} is missing")
    except (OSError, ValueError, yaml.YAMLError) as exc:
        missing.append(f"{path.name} is unreadable ({exc.__class__.__name__})")
    return default


def load_run(run_dir: str | Path) -> RunData:
    """Everything the report needs from a run directory.

    Raises:
        FileNotFoundError: the directory does not exist or holds no ``config.yaml`` and no
            ``run.json`` (it is not a run at all).
    """
    layout = RunDir(run_dir)
    if not layout.path.is_dir() or not layout.exists():
        raise FileNotFoundError(f"{layout.path}: not a run directory (no {layout.config_file.name} "
                                f"or {layout.run_file.name})")
    missing: list[str] = []
    config = _read(layout.read_config, layout.config_file, missing, {})
    if not isinstance(config, dict):
        missing.append(f"{layout.config_file.name} is not a mapping; left out")
        config = {}
    environment = _read(layout.read_environment, layout.environment_file, missing, {})
    run = _read(layout.read_record, layout.run_file, missing, {})
    if not layout.run_file.is_file():  # read_record gives an empty record for a run without one
        missing.append(f"{layout.run_file.name} is missing")
    excerpts = _read(layout.read_excerpts, layout.excerpts_file, missing, [])

    metrics = layout.read_metrics()
    metric_info = layout.read_metric_info() or {}
    if metrics is None:
        missing.append(f"{layout.metrics_file.name} is missing: the run has not been evaluated (earshot eval RUN)")
        metrics = pd.DataFrame(columns=METRICS_COLUMNS)
    elif not metric_info:
        missing.append(f"{layout.metric_info_file.name} is missing: metric directions and units are not shown "
                       f"(earshot report RUN writes it)")

    logs = []
    for job, info in (run.get("jobs") or {}).items():
        log = layout.job(job).read_log()
        if log is not None:
            logs.append(log.assign(job=job, loss_name=info.get("loss"), seed=info.get("seed")))
        else:
            missing.append(f"job {job}: no training log")
    log_frame = pd.concat(logs, ignore_index=True) if logs else pd.DataFrame(columns=LOG_COLUMNS + ["job"])
    return RunData(layout.path, config, environment, run, metrics, log_frame, excerpts, metric_info, missing)
