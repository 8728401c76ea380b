"""A run: the grid losses × seeds, trained into one run directory.

``runs/<run-id>/`` holds ``config.yaml`` (resolved), ``environment.json``,
``run.json`` (data, split, skipped files, job status) and ``jobs/<job>/``.
"""

from __future__ import annotations

import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch
import yaml

from earshot.benchmark.config import ConfigError, RunConfig, config_from_dict, dump_config
from earshot.benchmark.data.windows import load_data, split_by_file
from earshot.benchmark.train.loop import _atomic_json, resolve_device, train_job
from earshot.losses import check_all_options, check_expression

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
ENV_FILE = "environment.json"
PACKAGES = ("torch", "numpy", "scipy", "soundfile", "soxr", "pandas", "pyarrow", "pydantic", "ray", "earshot")


class RunError(ValueError):
    """A mistaken run command, caught before any training starts."""


def job_name(loss: str, seed: int) -> str:
    """The job's folder name: ``mse-seed0``; a weighted sum reads ``mse+0.1xbark-seed0``."""
    compact = "".join(loss.split()).replace("*", "x")
    safe = "".join(c if c.isalnum() or c in "-_.+" else "_" for c in compact)
    return f"{safe}-seed{seed}"


def job_grid(config: RunConfig) -> list[tuple[str, str, int]]:
    """(job, loss, seed) for every job of the run."""
    return [(job_name(loss, seed), loss, seed) for loss in config.losses for seed in range(config.seeds)]


def environment(device: torch.device) -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        root = Path(__file__).resolve().parent.parent
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "packages": versions,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "cpu_count": os.cpu_count(), "git_commit": commit,
    }


def validate(config: RunConfig, device_name: str, out: Path) -> torch.device:
    """Every check a run command can fail, before any training starts."""
    check_all_options(config.loss_options)
    folders: dict[str, str] = {}
    for loss in config.losses:
        check_expression(loss, config.loss_options)  # names, weights, options, one shared head
        folder = job_name(loss, 0)
        if folder in folders:
            raise RunError(f"losses {folders[folder]!r} and {loss!r} are the same job; list it once")
        folders[folder] = loss
    try:
        device = resolve_device(device_name)
    except (ValueError, RuntimeError) as exc:
        raise RunError(str(exc)) from None
    out = Path(out)
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise RunError(f"output directory {out} is not writable")
    return device


def prepare_run(config: RunConfig, out: Path, run_id: str | None, resume: bool) -> tuple[Path, RunConfig]:
    """The run directory, created or reopened, and the config it runs with.

    A run id that exists with a different config is refused unless ``resume``, in
    which case the run continues with its recorded config.
    """
    run_id = run_id or f"{config.preset}-{config.fingerprint()}"
    run_dir = Path(out) / run_id
    recorded = run_dir / CONFIG_FILE
    if recorded.exists():
        try:
            old = config_from_dict(yaml.safe_load(recorded.read_text()))
        except (ConfigError, yaml.YAMLError) as exc:
            raise RunError(f"{recorded}: unreadable recorded config ({exc})") from None
        if old.model_dump() != config.model_dump():
            if not resume:
                changed = _changed_keys(old.model_dump(), config.model_dump())
                raise RunError(f"run {run_id} exists with a different config ({', '.join(changed)}); "
                               "pass --resume to continue it with its recorded config, or choose another --run-id")
            config = old
    elif resume:
        raise RunError(f"--resume: no run {run_id} in {out}")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(dump_config(config))
    return run_dir, config


def _changed_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            keys += _changed_keys(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            keys.append(f"{prefix}{key}")
    return keys


def _run_record(run_dir: Path) -> dict:
    path = run_dir / RUN_FILE
    return json.loads(path.read_text()) if path.exists() else {"jobs": {}}


def _write_record(run_dir: Path, record: dict) -> None:
    _atomic_json(record, run_dir / RUN_FILE)


_DATA_CACHE: dict[str, object] = {}
# The local executor's GPU threads call _load_split together: the first loads, the others wait for it.
_DATA_LOCK = threading.Lock()


def _load_split(config: RunConfig, log: Callable[[str], None]):
    key = json.dumps(config.data.model_dump(mode="json"), sort_keys=True)
    with _DATA_LOCK:
        if key not in _DATA_CACHE:
            audio_set = load_data(config.data, log=log)
            _DATA_CACHE[key] = (audio_set, split_by_file(audio_set, config.data.test_fraction, config.data.split_seed))
        return _DATA_CACHE[key]


def run_job(run_dir: Path, job: str, loss: str, seed: int, device: str,
            progress: Callable[[dict], None] | None = None) -> dict:
    """Train one job of a run; what the local and the Ray executor both call."""
    run_dir = Path(run_dir)
    config = config_from_dict(yaml.safe_load((run_dir / CONFIG_FILE).read_text()))
    _, split = _load_split(config, log=lambda line: None)
    outcome = train_job(run_dir / "jobs" / job, config, loss, seed, split.train, torch.device(device),
                        progress=progress)
    return asdict(outcome)


def _local_jobs(run_dir: Path, jobs: list[tuple[str, str, int]], device: torch.device,
                progress: Callable[[dict], None] | None, log: Callable[[str], None]) -> list[dict]:
    devices = [device]
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        devices = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if len(devices) == 1:
        outcomes = []
        for job, loss, seed in jobs:
            outcomes.append(run_job(run_dir, job, loss, seed, str(device), progress))
            log_outcome(outcomes[-1], log)
        return outcomes
    # One job per GPU at a time; CUDA kernels release the GIL, so threads keep every GPU busy.
    # A job takes whichever GPU is free when it starts (not one fixed up front), so jobs of
    # different lengths never queue behind a busy GPU while another one idles.
    from concurrent.futures import ThreadPoolExecutor

    free: queue.Queue[torch.device] = queue.Queue()
    for gpu in devices:
        free.put(gpu)

    def on_a_free_gpu(job: str, loss: str, seed: int) -> dict:
        gpu = free.get()
        try:
            return run_job(run_dir, job, loss, seed, str(gpu), progress)
        finally:
            free.put(gpu)

    with ThreadPoolExecutor(len(devices)) as pool:
        futures = [pool.submit(on_a_free_gpu, job, loss, seed) for job, loss, seed in jobs]
        outcomes = [f.result() for f in futures]
    for outcome in outcomes:
        log_outcome(outcome, log)
    return outcomes


def _ray_jobs(run_dir, jobs, device, address) -> list[dict]:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    resources = {"num_gpus": 1} if device.type == "cuda" else {"num_cpus": 1}
    remote = ray.remote(**resources)(run_job)
    device_name = "cuda" if device.type == "cuda" else "cpu"
    refs = [remote.remote(str(Path(run_dir).resolve()), job, loss, seed, device_name) for job, loss, seed in jobs]
    return ray.get(refs)


def run_grid(config: RunConfig, out: Path = Path("runs"), run_id: str | None = None, device: str = "auto",
             executor: str = "local", ray_address: str | None = None, resume: bool = False,
             log: Callable[[str], None] = print, progress: Callable[[dict], None] | None = None) -> Path:
    """Train every job of the grid into one run directory; returns the directory.

    Raises:
        RunError / UnknownLossError: a mistaken command, before any training starts.
    """
    if executor not in ("local", "ray"):
        raise RunError(f"--executor {executor!r}: expected local or ray")
    torch_device = validate(config, device, out)
    run_dir, config = prepare_run(config, out, run_id, resume)
    (run_dir / ENV_FILE).write_text(json.dumps(environment(torch_device), indent=2))

    audio_set, split = _load_split(config, log)
    record = _run_record(run_dir)
    record.update({
        "run_id": run_dir.name,
        "data": {"root": str(audio_set.root), "files": len(audio_set.files),
                 "seconds": {c: audio_set.seconds(c) for c in sorted({f.category for f in audio_set.files})},
                 "skipped": [{"file": f, "reason": r} for f, r in audio_set.skipped]},
        "split": {"train": [f.relative for f in split.train], "test": [f.relative for f in split.test]},
    })
    jobs = job_grid(config)
    for job, loss, seed in jobs:
        record["jobs"].setdefault(job, {"loss": loss, "seed": seed, "status": "pending"})
    _write_record(run_dir, record)

    started = time.time()
    if executor == "ray":
        outcomes = _ray_jobs(run_dir, jobs, torch_device, ray_address)
        for outcome in outcomes:
            log_outcome(outcome, log)
    else:
        outcomes = _local_jobs(run_dir, jobs, torch_device, progress, log)
    record = _run_record(run_dir)
    for outcome in outcomes:
        entry = record["jobs"][outcome["job"]]
        if outcome["status"] != "skipped" or entry.get("status") != "done":
            entry.update(status="done" if outcome["status"] == "skipped" else outcome["status"],
                         steps=outcome["steps"], seconds=outcome["seconds"], message=outcome["message"])
    record["train_seconds"] = time.time() - started
    _write_record(run_dir, record)
    return run_dir


def log_outcome(outcome: dict, log: Callable[[str], None]) -> None:
    if outcome["status"] == "failed":
        log(f"job {outcome['job']} FAILED: {outcome['message']}")
    elif outcome["status"] == "skipped":
        log(f"job {outcome['job']}: already trained ({outcome['steps']} steps)")
    else:
        log(f"job {outcome['job']}: trained {outcome['steps']} steps in {outcome['seconds']:.1f} s")
