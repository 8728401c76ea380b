"""The run store: read what ``benchmark`` wrote into ``runs/<run-id>/``, tolerating gaps.

Every reader returns something usable for a partial run (a failed job, no metrics yet, a
missing training log) and records what was missing in :attr:`RunData.missing`, so the
report can say so instead of crashing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

METRICS_COLUMNS = ["job", "loss", "seed", "item", "category", "metric", "value", "error"]
LOG_COLUMNS = ["step", "epoch", "loss", "lr", "windows_per_s", "wall_s"]


@dataclass
class RunData:
    """One run directory, loaded."""

    path: Path
    config: object | None  # benchmark.config.RunConfig, or None when config.yaml is unreadable
    config_dict: dict
    environment: dict
    run: dict
    metrics: pd.DataFrame
    logs: pd.DataFrame  # the training logs of every job, with ``job, loss, seed`` columns
    excerpts: list[dict]
    missing: list[str] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.run.get("run_id") or self.path.name)

    @property
    def losses(self) -> list[str]:
        """Losses in the configured order (then any others found in the metrics)."""
        configured = list(self.config_dict.get("losses") or [])
        found = sorted(set(self.metrics["loss"]) - set(configured)) if len(self.metrics) else []
        return configured + found

    @property
    def jobs(self) -> dict[str, dict]:
        return dict(self.run.get("jobs") or {})

    @property
    def sample_rate(self) -> int:
        return int((self.config_dict.get("data") or {}).get("sample_rate") or 11025)

    def reference_wav(self, item: str) -> Path:
        return self.path / "reference" / f"{item}.wav"

    def recon_wav(self, job: str, item: str) -> Path:
        return self.path / "recon" / job / f"{item}.wav"


def _json(path: Path, missing: list[str], default):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        missing.append(f"{path.name} is missing")
    except (OSError, ValueError) as exc:
        missing.append(f"{path.name} is unreadable ({exc.__class__.__name__})")
    return default


def load_run(run_dir: str | Path) -> RunData:
    """Everything the report needs from a run directory.

    Raises:
        FileNotFoundError: the directory does not exist or holds no ``config.yaml`` and no
            ``run.json`` (it is not a run at all).
    """
    path = Path(run_dir)
    if not path.is_dir() or not ((path / "config.yaml").is_file() or (path / "run.json").is_file()):
        raise FileNotFoundError(f"{path}: not a run directory (no config.yaml or run.json)")
    missing: list[str] = []
    config, config_dict = None, {}
    try:
        config_dict = yaml.safe_load((path / "config.yaml").read_text()) or {}
        from earshot.benchmark.config import config_from_dict

        config = config_from_dict(config_dict)
    except FileNotFoundError:
        missing.append("config.yaml is missing")
    except Exception as exc:  # an old or hand-edited config: show what we can
        missing.append(f"config.yaml does not validate ({exc.__class__.__name__}); shown as written")
    environment = _json(path / "environment.json", missing, {})
    run = _json(path / "run.json", missing, {})
    excerpts = _json(path / "excerpts.json", missing, [])

    metrics_file = path / "metrics.parquet"
    if metrics_file.is_file():
        metrics = pd.read_parquet(metrics_file)
    else:
        missing.append("metrics.parquet is missing: the run has not been evaluated (earshot eval RUN)")
        metrics = pd.DataFrame(columns=METRICS_COLUMNS)

    logs = []
    for job, info in (run.get("jobs") or {}).items():
        log_file = path / "jobs" / job / "train_log.parquet"
        if log_file.is_file():
            logs.append(pd.read_parquet(log_file).assign(job=job, loss_name=info.get("loss"), seed=info.get("seed")))
        else:
            missing.append(f"job {job}: no training log")
    log_frame = pd.concat(logs, ignore_index=True) if logs else pd.DataFrame(columns=LOG_COLUMNS + ["job"])
    return RunData(path, config, config_dict, environment, run, metrics, log_frame, excerpts, missing)
