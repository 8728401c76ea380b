"""The run directory: every path and file name of ``runs/<run-id>/``, and every read and write of its files.

The one module that knows the layout; the harness, the listening app and the report go
through :class:`RunDir` (a grep test keeps the file names out of every other module)::

    runs/<run-id>/
      config.yaml            the resolved config
      environment.json       versions, device, git commit
      run.json               run id, data, split, job status, layout version
      jobs/<job>/            checkpoint.pt, train_log.parquet, done.json | failed.json
      excerpts.json          the held-out excerpts measured
      reference/<item>.wav   each excerpt as the listener hears it (16-bit PCM)
      recon/<job>/<item>.wav each job's reconstruction of it
      metrics.parquet        tidy: one row per job × item × metric
      metrics_info.json      per metric: direction, ideal, unit, categories (layout 2)
      eval_cache.json        what each system's metrics were computed from (checkpoint, inputs, metric versions)
      systems.json           per system: its kind (autoencoder, linear, codec, scored) and its bitrate
      adequacy.json          per job: its own loss on held-out windows, for the model and the PCA baseline
      baseline/pca-<k>.npz   the fitted PCA baseline (mean, basis, the key it was fitted under)
      hypotheses.yaml        the hypotheses declared for the run (run.json: its sha256, when declared)
      plugins/<sha>/<file>   a copy of each file-based loss or model plugin (run.json: each plugin's origin)
      eval-<folder>/         the same measurement files, for an evaluation on another folder

      report/                index.html | index.md (+ PNGs) | index.tex

Layout 1 (runs written before ``run.json`` recorded ``"layout"``) is the same without
``metrics_info.json``; :meth:`RunDir.ensure_metric_info` adds it.

Writers are atomic (a temporary file, then ``os.replace``): a killed process leaves the
previous file or the new one, never half of one. This module imports no other earshot
package, so ``benchmark``, ``results`` and ``listening_app`` can all use it.
"""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import soundfile as sf
import yaml

SCORE_RUN_KIND = "score"  # run.json's "kind" for a run made by earshot score from decoded audio (nothing trained)
LAYOUT = 2  # the layout version new runs record in run.json; runs without the key are layout 1

CONFIG_FILE = "config.yaml"
ENVIRONMENT_FILE = "environment.json"
RUN_FILE = "run.json"
JOBS_DIR = "jobs"
CHECKPOINT_FILE = "checkpoint.pt"
TRAIN_LOG_FILE = "train_log.parquet"
DONE_FILE = "done.json"
FAILED_FILE = "failed.json"
EXCERPTS_FILE = "excerpts.json"
REFERENCE_DIR = "reference"
RECON_DIR = "recon"
METRICS_FILE = "metrics.parquet"
METRIC_INFO_FILE = "metrics_info.json"
EVAL_CACHE_FILE = "eval_cache.json"
SYSTEMS_FILE = "systems.json"
HYPOTHESES_FILE = "hypotheses.yaml"
EVAL_PREFIX = "eval-"

ADEQUACY_FILE = "adequacy.json"
BASELINE_DIR = "baseline"
BASELINE_SUFFIX = ".npz"
REPORT_DIR = "report"
PLUGINS_DIR = "plugins"
REPORT_INDEX = "index"  # report/index.<format suffix>
WAV_SUFFIX = ".wav"

PCM16_SCALE = 32768  # 2^15: full scale of 16-bit PCM; libsndfile reads a sample back as pcm / 2^15


# ---------------------------------------------------------------------------
# Atomic writers and 16-bit PCM
# ---------------------------------------------------------------------------


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; it replaces ``path`` when the block succeeds.

    For writers that take a path (``torch.save``); on an exception the temporary file is removed
    and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2))


def write_parquet_atomic(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def pcm16(audio: np.ndarray) -> np.ndarray:
    """A float signal in [-1, 1] as 16-bit PCM samples (little-endian int16), the one scaling earshot uses.

    Scaled by 2^15, rounded to nearest and clipped to [-32768, 32767], so reading the file back
    as float (libsndfile divides by 2^15) gives ``pcm / 32768`` exactly; NaN becomes 0 and ±inf
    full scale. Any shape.
    """
    finite = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    # float32 holds every 16-bit step exactly, so the scaling itself adds no error.
    return np.clip(np.rint(finite * np.float32(PCM16_SCALE)), -PCM16_SCALE, PCM16_SCALE - 1).astype("<i2")


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Write ``audio`` as a 16-bit PCM wav (creating folders); returns what a listener hears.

    Returns:
        The written samples as float32 (clipped and quantised by :func:`pcm16`), equal to
        what reading the file back gives.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = pcm16(audio)
    sf.write(path, pcm, sample_rate, subtype="PCM_16")
    return pcm.astype(np.float32) / PCM16_SCALE


def read_wav(path: Path) -> np.ndarray:
    """A wav's samples as 1-D float32, equal to what :func:`write_wav` returned when it wrote them.

    Raises:
        soundfile.LibsndfileError: missing or unreadable file.
    """
    data, _ = sf.read(Path(path), dtype="float32", always_2d=False)
    return data


def file_digest(path: Path) -> str:
    """The SHA-256 of a file's content, hex. Raises FileNotFoundError."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path, default):
    return json.loads(path.read_text()) if path.is_file() else default


# ---------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------


class JobDir:
    """``jobs/<job>/``: one job's checkpoint, training log and outcome."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.checkpoint = self.path / CHECKPOINT_FILE
        self.train_log = self.path / TRAIN_LOG_FILE
        self.done_file = self.path / DONE_FILE
        self.failed_file = self.path / FAILED_FILE

    def __repr__(self) -> str:
        return f"JobDir({str(self.path)!r})"

    @property
    def name(self) -> str:
        """The job's name, e.g. ``mse-seed0``."""
        return self.path.name

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    @property
    def is_done(self) -> bool:
        return self.done_file.is_file()

    def read_done(self) -> dict:
        """The finished job's record (steps, seconds, …). Raises FileNotFoundError when it is not done."""
        return json.loads(self.done_file.read_text())

    def write_done(self, record: dict) -> None:
        write_json_atomic(self.done_file, record)

    def write_failed(self, record: dict) -> None:
        write_json_atomic(self.failed_file, record)

    def clear_failed(self) -> None:
        self.failed_file.unlink(missing_ok=True)

    def read_log(self) -> pd.DataFrame | None:
        """The training log, or None when the job has not logged yet."""
        return pd.read_parquet(self.train_log) if self.train_log.is_file() else None

    def write_log(self, frame: pd.DataFrame) -> None:
        write_parquet_atomic(self.train_log, frame)

    def checkpoint_path(self):
        """Context manager: a temporary path to ``torch.save`` the checkpoint to, swapped in atomically."""
        return atomic_path(self.checkpoint)


class Measurements:
    """A measurement root: the excerpts, ``reference/``, ``recon/<job>/`` and the metrics.

    The run directory itself is one (the held-out files); ``eval-<folder>/`` is another.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.excerpts_file = self.path / EXCERPTS_FILE
        self.reference_dir = self.path / REFERENCE_DIR
        self.recon_dir = self.path / RECON_DIR
        self.metrics_file = self.path / METRICS_FILE
        self.metric_info_file = self.path / METRIC_INFO_FILE
        self.adequacy_file = self.path / ADEQUACY_FILE
        self.eval_cache_file = self.path / EVAL_CACHE_FILE
        self.systems_file = self.path / SYSTEMS_FILE

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def reference_wav(self, item: str) -> Path:
        return self.reference_dir / f"{item}{WAV_SUFFIX}"

    def recon_wav(self, job: str, item: str) -> Path:
        return self.recon_dir / job / f"{item}{WAV_SUFFIX}"

    def reconstructed_jobs(self) -> list[str]:
        """Names of the jobs with a ``recon/<job>/`` folder, sorted."""
        return sorted(p.name for p in self.recon_dir.iterdir() if p.is_dir()) if self.recon_dir.is_dir() else []

    def relative(self, path: Path) -> str:
        """``path`` relative to this root, with ``/`` (for links in a report)."""
        return Path(path).relative_to(self.path).as_posix()

    def read_excerpts(self) -> list[dict]:
        """The excerpts (item, category, source, start, samples). Raises FileNotFoundError when not evaluated."""
        return json.loads(self.excerpts_file.read_text())

    def write_excerpts(self, excerpts: list[dict]) -> None:
        write_json_atomic(self.excerpts_file, excerpts)

    def read_metrics(self) -> pd.DataFrame | None:
        """The tidy metrics table, or None when not evaluated."""
        return pd.read_parquet(self.metrics_file) if self.metrics_file.is_file() else None

    def write_metrics(self, frame: pd.DataFrame) -> None:
        write_parquet_atomic(self.metrics_file, frame)

    def read_metric_info(self) -> dict[str, dict] | None:
        """Per metric (in table order): ``higher_is_better``, ``ideal``, ``unit``, ``categories``,
        ``description``; None when the file is missing (a layout-1 run)."""
        return _read_json(self.metric_info_file, None)

    def write_metric_info(self, catalog: dict[str, dict]) -> None:
        write_json_atomic(self.metric_info_file, catalog)

    def read_adequacy(self) -> dict | None:
        """``adequacy.json``: ``{"baseline": {...}, "jobs": {job: {...}}}`` (``results.adequacy`` reads it);
        None when the file is missing (a run evaluated before it was written)."""
        return _read_json(self.adequacy_file, None)

    def write_adequacy(self, record: dict) -> None:
        write_json_atomic(self.adequacy_file, record)

    def read_eval_cache(self) -> dict:
        """What the stored metrics were computed from (``benchmark.evaluate.reconstruct`` defines the
        keys); ``{}`` when the file is missing or unreadable, so that everything is recomputed."""
        try:
            cache = _read_json(self.eval_cache_file, {})
        except ValueError:
            return {}
        return cache if isinstance(cache, dict) else {}

    def write_eval_cache(self, cache: dict) -> None:
        """Write the evaluation cache; write it after the metrics it describes, so a killed
        evaluation leaves a cache that matches the stored metrics or one that misses."""
        write_json_atomic(self.eval_cache_file, cache)

    def read_systems(self) -> dict[str, dict]:
        """``systems.json``: per system name (a loss, the linear baseline, a codec, a scored folder) what it
        is and its bitrate (``benchmark.evaluate.systems`` defines the keys); ``{}`` when missing or unreadable."""
        try:
            systems = _read_json(self.systems_file, {})
        except ValueError:
            return {}
        return systems if isinstance(systems, dict) else {}

    def update_systems(self, entries: dict[str, dict], drop: set[str] = frozenset()) -> dict[str, dict]:
        """Add or replace the ``entries`` of ``systems.json`` and remove the names in ``drop``; returns the result."""
        systems = {name: entry for name, entry in self.read_systems().items() if name not in drop}
        systems.update(entries)
        write_json_atomic(self.systems_file, systems)
        return systems

    def ensure_metric_info(self, catalog: Callable[[], dict[str, dict]]) -> bool:
        """Write ``metrics_info.json`` from ``catalog()`` where the metrics lack it; returns whether it wrote.

        For runs evaluated before evaluation wrote it: the CLI passes the metric registry's catalog.
        """
        if self.metric_info_file.is_file() or not self.metrics_file.is_file():
            return False
        self.write_metric_info(catalog())
        return True


class RunDir(Measurements):
    """``runs/<run-id>/``: the run's files, its jobs, its evaluations and its report."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.config_file = self.path / CONFIG_FILE
        self.environment_file = self.path / ENVIRONMENT_FILE
        self.run_file = self.path / RUN_FILE
        self.jobs_dir = self.path / JOBS_DIR
        self.report_dir = self.path / REPORT_DIR
        self.hypotheses_file = self.path / HYPOTHESES_FILE

        self.baseline_dir = self.path / BASELINE_DIR
        self.plugins_dir = self.path / PLUGINS_DIR

    @property
    def name(self) -> str:
        return self.path.name

    def exists(self) -> bool:
        """Whether this is a run directory at all: it holds ``config.yaml`` or ``run.json``."""
        return self.config_file.is_file() or self.run_file.is_file()

    def create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    # config.yaml, environment.json, run.json

    def read_config(self) -> dict:
        """The recorded config as written (a dict). Raises FileNotFoundError, yaml.YAMLError."""
        return yaml.safe_load(self.config_file.read_text()) or {}

    def write_config(self, text: str) -> None:
        """Record the resolved config (YAML text, as ``benchmark.config.dump_config`` writes it)."""
        self.create()
        write_text_atomic(self.config_file, text)

    def read_environment(self) -> dict:
        """Raises FileNotFoundError, ValueError (unreadable JSON)."""
        return json.loads(self.environment_file.read_text())

    def write_environment(self, environment: dict) -> None:
        write_json_atomic(self.environment_file, environment)

    def read_record(self) -> dict:
        """``run.json``: ``{"jobs": {}}`` when the run has none yet."""
        return _read_json(self.run_file, {"jobs": {}})

    def write_record(self, record: dict) -> None:
        """Write ``run.json`` atomically, stamped with the current layout version."""
        write_json_atomic(self.run_file, {**record, "layout": LAYOUT})

    def update_record(self, change: Callable[[dict], None]) -> dict:
        """Read ``run.json``, let ``change`` edit it in place, write it back; returns the new record."""
        record = self.read_record()
        change(record)
        self.write_record(record)
        return record

    @property
    def layout(self) -> int:
        """The layout version ``run.json`` records; 1 for runs written before it did."""
        return int(self.read_record().get("layout", 1))

    @property
    def run_id(self) -> str:
        """The run id ``run.json`` records, else the folder's name."""
        return str(self.read_record().get("run_id") or self.path.name)

    # hypotheses.yaml

    def record_hypotheses(self, source: str, text: str) -> dict:
        """Record the declared hypotheses: ``text`` (the file's content) as ``hypotheses.yaml``, and
        in ``run.json`` its ``source`` name, sha256, the time (UTC, ISO 8601) and whether any job had
        finished. The same content declared again keeps its first record. Returns the record."""
        import hashlib
        from datetime import datetime, timezone

        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        recorded = self.read_record().get("hypotheses")
        if recorded and recorded.get("sha256") == digest and self.hypotheses_file.is_file():
            return recorded
        entry = {"source": source, "sha256": digest,
                 "declared_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "before_training": not self.finished_jobs()}
        self.create()
        write_text_atomic(self.hypotheses_file, text)
        self.update_record(lambda record: record.update(hypotheses=entry))
        return entry

    def read_hypotheses(self) -> tuple[str, dict] | None:
        """The recorded hypotheses file's text and its ``run.json`` entry, or None when none is recorded."""
        entry = self.read_record().get("hypotheses")
        if not entry or not self.hypotheses_file.is_file():
            return None
        return self.hypotheses_file.read_text(encoding="utf-8"), entry

    # plugins/

    def plugin_copy(self, sha256: str, filename: str) -> Path:
        """``plugins/<sha256[:16]>/<filename>``: the run's copy of a file-based plugin with that content."""
        return self.plugins_dir / sha256[:16] / Path(filename).name

    def keep_plugin_copy(self, source: Path, sha256: str) -> Path:
        """Copy a file-based plugin into the run (once per content); returns the copy's path."""
        copy = self.plugin_copy(sha256, Path(source).name)
        if not copy.is_file():
            with atomic_path(copy) as tmp:
                tmp.write_bytes(Path(source).read_bytes())
        return copy

    # jobs/

    def job(self, name: str) -> JobDir:

        return JobDir(self.jobs_dir / name)

    def finished_jobs(self) -> list[JobDir]:
        """Jobs with ``done.json``, sorted by name."""
        if not self.jobs_dir.is_dir():
            return []
        return [job for job in (JobDir(p) for p in sorted(self.jobs_dir.iterdir()) if p.is_dir()) if job.is_done]

    # baseline/

    def baseline_file(self, name: str) -> Path:
        """``baseline/<name>.npz``: a fitted baseline system's arrays."""
        return self.baseline_dir / f"{name}{BASELINE_SUFFIX}"

    def read_baseline(self, name: str) -> dict | None:
        """A fitted baseline's arrays by name (a ``key`` string among them); None when missing or unreadable."""
        try:
            with np.load(self.baseline_file(name)) as arrays:
                return {k: (str(v) if v.dtype.kind == "U" else v) for k, v in arrays.items()}
        except (OSError, ValueError):
            return None

    def write_baseline(self, name: str, arrays: dict) -> None:
        """Keep a fitted baseline's arrays (strings, e.g. its key, stored as 0-d string arrays)."""
        with atomic_path(self.baseline_file(name)) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})

    # eval-<folder>/ and report/

    def evaluation(self, folder: str | Path | None = None) -> Measurements:
        """Where an evaluation's measurements go: the run itself (``None``: its held-out files), or
        ``eval-<name>/`` for an evaluation on the folder ``folder``."""
        if folder is None:
            return self
        return Measurements(self.path / f"{EVAL_PREFIX}{Path(folder).name}")

    def report_file(self, suffix: str) -> Path:
        """``report/index.<suffix>`` (``html``, ``md``, ``tex``)."""
        return self.report_dir / f"{REPORT_INDEX}.{suffix}"
