"""A run: the grid losses × seeds, trained into one run directory.

Read top to bottom as :func:`run_grid` runs it: check the command and every job's
requirements → find the run and load the data (nothing is written until both succeed) →
record the run (:class:`earshot.results.rundir.RunDir` owns its layout) → turn a minutes
budget into one step count for every job → train the jobs (here, or on Ray) → record
their outcomes.
"""

from __future__ import annotations

import json
import math
import os
import platform
import queue
import subprocess
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Callable

import torch
import yaml

from earshot.benchmark.config import ConfigError, RunConfig, config_from_dict, dump_config
from earshot.benchmark.data.windows import load_data, split_by_file
from earshot.benchmark.plugins import (check_plugins, model_record, plugin_files, record_plugins, use_plugin_files,
                                       use_recorded_plugins)
from earshot.benchmark.train.loop import budget_minutes, calibrate, resolve_device, train_job
from earshot.benchmark.train.pack import PackJob, pack_size, parse_pack, plan_packs, train_pack
from earshot.losses import check_all_options, check_expression, missing_requirements
from earshot.models import check_model_options
from earshot.models.plugins import is_file_reference
from earshot.results.rundir import RunDir

PACKAGES = ("torch", "numpy", "scipy", "soundfile", "soxr", "pandas", "pyarrow", "pydantic", "ray", "earshot")


class RunError(ValueError):
    """A mistaken run command, caught before any training starts."""


def job_name(loss: str, seed: int) -> str:
    """The job's folder name: ``mse-seed0``; a weighted sum reads ``mse+0.1xbark-seed0``; a file plugin
    ``./my_loss.py:SpectralL1`` reads ``my_loss.py_SpectralL1-seed0``."""
    terms = []
    for term in "".join(loss.split()).split("+"):
        weight, star, name = term.rpartition("*")
        if is_file_reference(name):  # the file's name, not its folders
            where, _, attr = name.rpartition(":")
            name = f"{Path(where).name}:{attr}"
        terms.append(f"{weight}{star}{name}")
    compact = "+".join(terms).replace("*", "x")
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
    """Every check a run command can fail, before any training starts: the losses (names,
    options, heads, what each needs installed), the model, every plugin on a random batch,
    the device, write access. Returns the device.

    Raises:
        RunError / UnknownLossError: the first failed check, in one line.
    """
    check_all_options(config.loss_options, config.losses)
    folders: dict[str, str] = {}
    for loss in config.losses:
        check_expression(loss, config.loss_options)  # names, weights, options, one shared head
        folder = job_name(loss, 0)
        if folder in folders:
            raise RunError(f"losses {folders[folder]!r} and {loss!r} are the same job; list it once")
        folders[folder] = loss
        missing = missing_requirements(loss, config.loss_options)
        if missing:
            raise RunError(f"loss {loss!r} cannot run here: {'; '.join(missing)}")
    check_model_options(config.model.name, config.model_options)
    check_plugins(config)  # each plugin builds and runs once on a random batch of the run's shape
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


def skipped_metrics() -> list[str]:
    """One line per metric that evaluation will skip here (an optional package missing), with how to install it."""
    from earshot.benchmark.evaluate.metrics import available_metrics

    return [f"metric {name} will be skipped: {reason.removeprefix('skipped: ')}"
            for name, reason in available_metrics().items() if reason is not None]


def prepare_run(config: RunConfig, out: Path, run_id: str | None, resume: bool) -> tuple[RunDir, RunConfig]:
    """The run directory, found or new, and the config it runs with; writes nothing
    (:func:`run_grid` records the config once the data has loaded).

    A run id that exists with a different config is refused unless ``resume``, in
    which case the run continues with its recorded config.
    """
    run_id = run_id or f"{config.preset}-{config.fingerprint()}"
    run = RunDir(Path(out) / run_id)
    if run.config_file.exists():
        try:
            old = config_from_dict(run.read_config())
        except (ConfigError, yaml.YAMLError) as exc:
            raise RunError(f"{run.config_file}: unreadable recorded config ({exc})") from None
        if old.model_dump() != config.model_dump():
            if not resume:
                changed = _changed_keys(old.model_dump(), config.model_dump())
                raise RunError(f"run {run_id} exists with a different config ({', '.join(changed)}); "
                               "pass --resume to continue it with its recorded config, or choose another --run-id")
            config = old
    elif resume:
        raise RunError(f"--resume: no run {run_id} in {out}")
    return run, config


def _changed_keys(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = []
    for key in sorted(set(a) | set(b)):
        if isinstance(a.get(key), dict) and isinstance(b.get(key), dict):
            keys += _changed_keys(a[key], b[key], f"{prefix}{key}.")
        elif a.get(key) != b.get(key):
            keys.append(f"{prefix}{key}")
    return keys


# One load per process and data settings: the driver, and each Ray worker for all its jobs.
_DATA_CACHE: dict[str, object] = {}


def _load_split(config: RunConfig, log: Callable[[str], None]):
    key = json.dumps(config.data.model_dump(mode="json"), sort_keys=True)
    if key not in _DATA_CACHE:
        audio_set = load_data(config.data, log=log)
        _DATA_CACHE[key] = (audio_set, split_by_file(audio_set, config.data.test_fraction, config.data.split_seed))
    return _DATA_CACHE[key]


def _record_start(record: dict, run: RunDir, audio_set, split, jobs: list[tuple[str, str, int]]) -> None:
    """``run.json`` before training: the data, the split, and every job (pending unless already recorded)."""
    record.update({
        "run_id": run.name,
        "data": {"root": str(audio_set.root), "files": len(audio_set.files),
                 "seconds": {c: audio_set.seconds(c) for c in sorted({f.category for f in audio_set.files})},
                 "skipped": [{"file": f, "reason": r} for f, r in audio_set.skipped]},
        "split": {"train": [f.relative for f in split.train], "test": [f.relative for f in split.test]},
    })
    for job, loss, seed in jobs:
        record["jobs"].setdefault(job, {"loss": loss, "seed": seed, "status": "pending"})


def _job_steps(run: RunDir, config: RunConfig, jobs: list[tuple[str, str, int]], train_files,
               device: torch.device, log: Callable[[str], None]) -> int | None:
    """The step count a minutes budget gives every job: the one ``run.json`` records (a re-run
    or a resumed run keeps it), else a new calibration, recorded; None for a steps or epochs
    budget, and when every job is already trained."""
    if budget_minutes(config) is None:
        return None
    recorded = run.read_record().get("calibration")
    if recorded is not None:
        return int(recorded["steps"])
    pending = [loss for job, loss, _ in jobs if not run.job(job).is_done]
    if not pending:
        return None
    calibration = calibrate(config, pending, train_files, device, log=log)
    run.update_record(lambda record: record.update(calibration=calibration))
    return calibration["steps"]


def _record_outcomes(record: dict, outcomes: list[dict], train_seconds: float) -> None:
    """``run.json`` after training: each job's status; a job found already trained stays done."""
    for outcome in outcomes:
        entry = record["jobs"][outcome["job"]]
        if outcome["status"] != "skipped" or entry.get("status") != "done":
            entry.update(status="done" if outcome["status"] == "skipped" else outcome["status"],
                         steps=outcome["steps"], seconds=outcome["seconds"], message=outcome["message"])
    record["train_seconds"] = train_seconds


def _worker_run(run_dir: Path, files: dict[str, tuple[str, str, str]] | None):
    """(run, config, train files, steps) of a run read from its directory alone, in a worker."""
    run = RunDir(run_dir)
    if files:
        use_plugin_files(files)
    else:
        use_recorded_plugins(run, log=lambda line: None)
    config = config_from_dict(run.read_config())
    _, split = _load_split(config, log=lambda line: None)
    calibration = run.read_record().get("calibration")
    steps = None if calibration is None else int(calibration["steps"])
    return run, config, split.train, steps


def run_job(run_dir: Path, job: str, loss: str, seed: int, device: str,
            progress: Callable[[dict], None] | None = None,
            files: dict[str, tuple[str, str, str]] | None = None) -> dict:
    """Train one job of a run from the run directory alone (its recorded config); what a Ray worker runs.

    ``files``: the run's file plugins as the task carries them (:func:`plugin_files`); without them, the
    run's own copies. Other plugins are imported by reference in the worker's environment.
    """
    run, config, train_files, steps = _worker_run(run_dir, files)
    return asdict(train_job(run.job(job).path, config, loss, seed, train_files, torch.device(device),
                            progress=progress, steps=steps))


def run_pack(run_dir: Path, jobs: list[tuple[str, str, int]], device: str,
             files: dict[str, tuple[str, str, str]] | None = None) -> list[dict]:
    """Train one pack of a run's jobs ((job, loss, seed) each) through :func:`train_pack`, from the run
    directory alone; what a Ray worker runs for a pack. ``files``: as :func:`run_job`'s."""
    run, config, train_files, steps = _worker_run(run_dir, files)
    pack = [PackJob(run.job(job).path, loss, seed) for job, loss, seed in jobs]
    return [asdict(o) for o in train_pack(pack, config, train_files, torch.device(device), steps=steps)]


TrainOne = Callable[[str, str, int, torch.device], dict]  # (job, loss, seed, device) -> outcome


def _local_jobs(jobs: list[tuple[str, str, int]], device: torch.device, train_one: TrainOne,
                log: Callable[[str], None]) -> list[dict]:
    """Every job through ``train_one`` in this process: in turn on one device; with several GPUs, on each a job."""
    devices = [device]
    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        devices = [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    if len(devices) == 1:
        outcomes = []
        for job, loss, seed in jobs:
            outcomes.append(train_one(job, loss, seed, device))
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
            return train_one(job, loss, seed, gpu)
        finally:
            free.put(gpu)

    with ThreadPoolExecutor(len(devices)) as pool:
        futures = [pool.submit(on_a_free_gpu, job, loss, seed) for job, loss, seed in jobs]
        outcomes = [f.result() for f in futures]
    for outcome in outcomes:
        log_outcome(outcome, log)
    return outcomes


def _one_device(device: torch.device) -> bool:
    return not (device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1)


def _packed_jobs(run: RunDir, config: RunConfig, packs: list[list[tuple[str, str, int]]], train_files,
                 device: torch.device, train_one: TrainOne, steps: int | None,
                 progress: Callable[[dict], None] | None, log: Callable[[str], None]) -> list[dict]:
    """Each pack through :func:`train_pack`, a job alone through ``train_one``; outcomes in the grid's order."""
    found: dict[str, dict] = {}
    for pack in packs:
        if len(pack) == 1:
            job, loss, seed = pack[0]
            results = [train_one(job, loss, seed, device)]
        else:
            log(f"training {len(pack)} jobs packed: {', '.join(job for job, _, _ in pack)}")
            results = [asdict(o) for o in train_pack([PackJob(run.job(job).path, loss, seed) for job, loss, seed in pack],
                                                     config, train_files, device, progress=progress, steps=steps)]
        for outcome in results:
            found[outcome["job"]] = outcome
            log_outcome(outcome, log)
    return [found[job] for pack in packs for job, _, _ in pack]


def _ray_jobs(run: RunDir, config: RunConfig, jobs: list[tuple[str, str, int]], device: torch.device,
              address: str | None, pack: int | str, log: Callable[[str], None]) -> list[dict]:
    """Every job on Ray: one task per pack (``num_gpus=1`` on CUDA), a job that trains alone in a task
    of its own. ``auto`` on CUDA spreads the packable jobs over the cluster's GPUs in equal packs."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if not ray.is_initialized():
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    size = pack_size(pack, device)
    if pack == "auto" and device.type == "cuda":
        gpus = max(1, int(ray.cluster_resources().get("GPU", 1)))
        size = math.ceil(len(jobs) / gpus)
    packs = plan_packs(config, jobs, size)
    resources = {"num_gpus": 1} if device.type == "cuda" else {"num_cpus": 1}
    one, packed = ray.remote(**resources)(run_job), ray.remote(**resources)(run_pack)
    device_name = "cuda" if device.type == "cuda" else "cpu"
    where = str(run.path.resolve())
    files = plugin_files(run)  # a file plugin travels with each task
    refs = []
    for members in packs:
        if len(members) == 1:
            job, loss, seed = members[0]
            refs.append(one.remote(where, job, loss, seed, device_name, None, files))
        else:
            log(f"training {len(members)} jobs packed in one Ray task: {', '.join(job for job, _, _ in members)}")
            refs.append(packed.remote(where, members, device_name, files))
    outcomes = []
    for result in ray.get(refs):
        outcomes += result if isinstance(result, list) else [result]
    return outcomes


def run_grid(config: RunConfig, out: Path = Path("runs"), run_id: str | None = None, device: str = "auto",
             executor: str = "local", ray_address: str | None = None, resume: bool = False,
             log: Callable[[str], None] = print, progress: Callable[[dict], None] | None = None,
             check_metrics: bool = False, hypotheses: tuple[str, str] | None = None, strict: bool = False,
             pack: str | int = "off") -> Path:
    """Train every job of the grid into one run directory; returns the directory.

    ``hypotheses``: (source name, YAML text) of the declared hypotheses, checked by the caller and
    recorded in the run (``hypotheses.yaml``, its sha256 and time) before any job trains.

    Every job trains the same number of steps: a minutes budget becomes the steps the
    slowest loss trains in it (``run.json``'s ``calibration``). ``check_metrics``: also log,
    before training, each metric that evaluation will skip here. A run that exists rebuilds its
    file plugins from its own copies; ``strict`` refuses one whose file has changed since.
    ``pack``: ``auto``, ``off`` or K, the jobs trained side by side in one process
    (:mod:`earshot.benchmark.train.pack`): the local executor's on one device, or one Ray task per pack.

    Raises:
        RunError / UnknownLossError / DataError: a mistaken command, before any training
            starts and before anything is written.
    """
    if executor not in ("local", "ray"):
        raise RunError(f"--executor {executor!r}: expected local or ray")
    try:
        pack = parse_pack(pack)
    except ValueError as exc:
        raise RunError(str(exc)) from None
    run, config = prepare_run(config, out, run_id, resume)
    use_recorded_plugins(run, strict, log)
    torch_device = validate(config, device, out)
    if check_metrics:
        for line in skipped_metrics():
            log(line)
    audio_set, split = _load_split(config, log)

    run.write_config(dump_config(config))
    run.write_environment(environment(torch_device))
    record_plugins(run, config)
    run.update_record(lambda record: record.update(model=model_record(config)))
    jobs = job_grid(config)
    run.update_record(lambda record: _record_start(record, run, audio_set, split, jobs))
    if hypotheses is not None:
        run.record_hypotheses(*hypotheses)

    steps = _job_steps(run, config, jobs, split.train, torch_device, log)

    started = time.time()
    if executor == "ray":
        outcomes = _ray_jobs(run, config, jobs, torch_device, ray_address, pack, log)
        for outcome in outcomes:
            log_outcome(outcome, log)
    else:
        def train_one(job: str, loss: str, seed: int, on: torch.device) -> dict:
            return asdict(train_job(run.job(job).path, config, loss, seed, split.train, on, progress=progress,
                                    steps=steps))

        size = pack_size(pack, torch_device)
        packs = plan_packs(config, jobs, size) if size > 1 and _one_device(torch_device) else [[j] for j in jobs]
        if any(len(p) > 1 for p in packs):
            outcomes = _packed_jobs(run, config, packs, split.train, torch_device, train_one, steps, progress, log)
        else:
            outcomes = _local_jobs(jobs, torch_device, train_one, log)
    run.update_record(lambda record: _record_outcomes(record, outcomes, time.time() - started))
    return run.path


def log_outcome(outcome: dict, log: Callable[[str], None]) -> None:
    if outcome["status"] == "failed":
        log(f"job {outcome['job']} FAILED: {outcome['message']}")
    elif outcome["status"] == "skipped":
        log(f"job {outcome['job']}: already trained ({outcome['steps']} steps)")
    else:
        log(f"job {outcome['job']}: trained {outcome['steps']} steps in {outcome['seconds']:.1f} s")
