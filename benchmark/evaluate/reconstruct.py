"""Evaluation: reconstruct held-out excerpts the seed's way and measure them.

Reconstruction: 50 %-overlapped windows, each normalised as in training and its scale
restored, a Hann window on the output, overlap-add; batched on the device. Metrics run
in a process pool over (job × item) while the device reconstructs the next job.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from earshot.benchmark.data.audio import AudioFile
from earshot.benchmark.config import RunConfig, config_from_dict
from earshot.benchmark.data.windows import NORMALIZE_EPS, reconstruction_hop
from earshot.benchmark.evaluate.baseline import (LinearBaseline, adequacy_record, held_out_objective, held_out_windows,
                                                 job_objective)
from earshot.benchmark.evaluate.metrics import METRICS, metric_catalog, metric_pool, metrics_for
from earshot.benchmark.evaluate.metrics.registry import skip_reason
from earshot.benchmark.train.loop import load_trained
from earshot.results.rundir import PCM16_SCALE, JobDir, RunDir, file_digest, pcm16, read_wav, write_wav

METRIC_COLUMNS = ["job", "loss", "seed", "item", "category", "metric", "value", "error"]
EXCERPT_MIN_RMS = 1e-3  # an excerpt quieter than this (≈ −60 dBFS) is not worth judging


@dataclass
class Excerpt:
    item: str
    category: str
    source: str  # file relative to the data folder
    start: int  # sample offset in the source
    samples: int


def select_excerpts(test_files: list[AudioFile], seconds: float, per_category: int,
                    sample_rate: int) -> list[Excerpt]:
    """A deterministic set of excerpts per category from the held-out files.

    Files are taken round-robin (sorted by path), each cut into consecutive excerpts of
    ``seconds``; near-silent excerpts are passed over. A file shorter than ``seconds``
    gives one excerpt of its whole length.
    """
    length = int(round(seconds * sample_rate))
    excerpts = []
    for category in sorted({f.category for f in test_files}):
        files = sorted((f for f in test_files if f.category == category), key=lambda f: f.relative)
        candidates = []
        for f in files:
            n = max(1, f.audio.size // length)
            spans = [(k * length, min(length, f.audio.size)) for k in range(n)]
            candidates.append([(f, s, m) for s, m in spans
                               if np.sqrt(np.mean(f.audio[s:s + m] ** 2)) >= EXCERPT_MIN_RMS])
        chosen, depth = [], 0
        while len(chosen) < per_category and any(depth < len(c) for c in candidates):
            for c in candidates:
                if depth < len(c) and len(chosen) < per_category:
                    chosen.append(c[depth])
            depth += 1
        for i, (f, start, samples) in enumerate(chosen):
            excerpts.append(Excerpt(f"{category}-{i + 1:02d}", category, f.relative, start, samples))
    return excerpts


@torch.no_grad()
def reconstruct(model, loss, audio: np.ndarray, window: int, normalize: bool, batch: int,
                device: torch.device, bf16: bool = True) -> np.ndarray:
    """The model's reconstruction of a whole signal, by 50 %-overlapped windows.

    Each window is scaled to peak 1 (when ``normalize``), reconstructed, scaled back,
    multiplied by a periodic Hann window and overlap-added; periodic Hann windows at
    half-window hops sum to one, so a perfect model returns the signal unchanged.
    """
    hop = reconstruction_hop(window)
    n = audio.size
    frames = int(np.ceil((n + hop) / hop))
    padded = np.zeros((frames + 1) * hop, dtype=np.float32)
    padded[hop:hop + n] = audio
    x = torch.from_numpy(padded).to(device)
    windows = x.unfold(0, window, hop)  # (frames, window)
    hann = torch.hann_window(window, periodic=True, device=device)
    out = torch.zeros_like(x)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and bf16)
    for start in range(0, windows.shape[0], batch):
        chunk = windows[start:start + batch]
        scale = chunk.abs().amax(dim=1, keepdim=True) + NORMALIZE_EPS if normalize else torch.ones_like(chunk[:, :1])
        with autocast:
            head = model(chunk / scale)
        decoded = loss.decode(head.float()) * scale * hann
        positions = (torch.arange(chunk.shape[0], device=device) + start)[:, None] * hop + torch.arange(window, device=device)
        out.index_add_(0, positions.reshape(-1), decoded.reshape(-1))
    return out[hop:hop + n].cpu().numpy()


def _metrics_task(job: str, loss: str, seed: int, excerpt: dict, reference: np.ndarray,
                  degraded: np.ndarray, sample_rate: int, non_finite: bool, metrics: list[str]) -> list[dict]:
    """The rows of ``metrics`` (in that order) for one system's reconstruction of one excerpt."""
    from earshot.benchmark.evaluate.metrics import compute_metric

    if non_finite:
        degraded = np.full_like(degraded, np.nan)
    rows = []
    for name in metrics:
        value, error = compute_metric(name, reference, degraded, sample_rate)
        rows.append({"job": job, "loss": loss, "seed": seed, "item": excerpt["item"], "category": excerpt["category"],
                     "metric": name, "value": value, "error": error})
    return rows


KIND_AUTOENCODER = "autoencoder"  # systems.json's kinds of the systems evaluation makes itself
KIND_LINEAR = "linear"


def latent_rate_entry(kind: str, config: RunConfig) -> dict:
    """``systems.json``'s entry for a trained loss or the PCA baseline: latents per second as evaluated, one
    code per hop of half a window (the 50 %-overlapped reconstruction: twice the model's rate per window)."""
    from earshot.models import code_size

    hop = reconstruction_hop(config.data.window)
    latent = code_size(config.model, config.data.window, config.model_options, config.data.sample_rate)
    return {"kind": kind, "latents_per_s": latent * config.data.sample_rate / hop, "latent": latent, "hop": hop}


# Bump when reconstruct() or the excerpt selection changes what is measured: every cached value is then redone.
RECONSTRUCTION_VERSION = 1

# The references by item → each item's reconstruction, yielded in the references' order (a model
# reconstructs them one by one while the pool measures the previous ones; a codec needs them all
# first, to find its delay).
Reconstructor = Callable[[dict[str, np.ndarray]], Iterator[tuple[str, np.ndarray]]]


def one_by_one(reconstruct_one: Callable[[np.ndarray], np.ndarray]) -> Reconstructor:
    """A reconstructor from a function of one whole signal."""
    def run(references: dict[str, np.ndarray]) -> Iterator[tuple[str, np.ndarray]]:
        for item, audio in references.items():
            yield item, reconstruct_one(audio)

    return run


@dataclass
class System:
    """One thing evaluate_run reconstructs and measures: a trained job, a baseline, a codec or a scored folder.

    ``key`` is what its reconstructions depend on besides the evaluation's inputs (a job: its
    checkpoint's SHA-256; a baseline: a hash of what it is fitted from); the cache reuses a
    system's stored metrics and wavs only while it is unchanged. ``load`` is called only when
    reconstructions must be made, and returns (the reconstructor, loss name, seed). ``entry`` is
    what ``systems.json`` records of it (its kind, its bitrate); a reconstructor may add to it.
    """

    name: str
    key: str
    load: Callable[[], tuple[Reconstructor, str, int]]
    entry: dict = field(default_factory=dict)


def _job_system(job_dir: JobDir, config: RunConfig, device: torch.device,
                on_load: Callable[[str, object, object, dict], None] | None = None) -> System:
    """A trained job as a system; ``on_load(job, model, loss, state)`` measures more while its model is loaded."""
    def load() -> tuple[Reconstructor, str, int]:
        model, loss, state = load_trained(job_dir.path, device)
        if on_load is not None:
            on_load(job_dir.name, model, loss, state)

        def run(audio: np.ndarray) -> np.ndarray:
            return reconstruct(model, loss, audio, config.data.window, config.data.normalize_windows,
                               config.eval.batch, device, config.train.bf16)

        return one_by_one(run), state["loss_name"], int(state["seed"])

    return System(job_dir.name, file_digest(job_dir.checkpoint), load, latent_rate_entry(KIND_AUTOENCODER, config))


def _baseline_system(baseline: LinearBaseline, config: RunConfig, device: torch.device) -> System:
    """The run's linear baseline as a system (loss and job ``pca-<latent>``, seed 0), fitted only when measured."""
    def load() -> tuple[Reconstructor, str, int]:
        pca = baseline.model()

        def run(audio: np.ndarray) -> np.ndarray:
            # Never under bf16 autocast: the baseline is the exact linear fit.
            return reconstruct(pca, pca, audio, config.data.window, config.data.normalize_windows,
                               config.eval.batch, device, bf16=False)

        return one_by_one(run), baseline.name, 0

    return System(baseline.name, baseline.key, load, latent_rate_entry(KIND_LINEAR, config))


def _inputs_key(config: RunConfig, data: Path | None, excerpts: list[Excerpt],
                references: dict[str, np.ndarray]) -> str:
    """A hash of everything every system's measurements depend on: the data and evaluation settings,
    the excerpts and the reference samples themselves (so edited audio files are noticed)."""
    settings = {"reconstruction": RECONSTRUCTION_VERSION, "data": config.data.model_dump(mode="json"),
                "eval": config.eval.model_dump(mode="json", exclude={"workers"}), "bf16": config.train.bf16,
                "folder": None if data is None else Path(data).name, "excerpts": [asdict(e) for e in excerpts]}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for e in excerpts:
        digest.update(np.ascontiguousarray(references[e.item]).tobytes())
    return digest.hexdigest()


def _stale_metrics(entry: dict, rows: pd.DataFrame, excerpts: list[Excerpt]) -> set[str]:
    """The metrics whose stored rows for one unchanged system cannot be reused: computed with another
    version, missing for an excerpt, or skipped for a package that is now installed."""
    stale = set()
    versions = entry.get("metrics", {})
    counts = rows["metric"].value_counts()
    skipped = set(rows.loc[rows["error"].fillna("").str.startswith("skipped"), "metric"])
    for name, spec in METRICS.items():
        expected = sum(e.category in spec.categories for e in excerpts)
        if not expected:
            continue
        if versions.get(name) != spec.version or counts.get(name, 0) != expected or \
                (name in skipped and skip_reason(name) is None):
            stale.add(name)
    return stale


def evaluate_run(run_dir: Path, device: str = "auto", data: Path | None = None, workers: int | None = None,
                 log: Callable[[str], None] = print, force: bool = False, strict: bool = False,
                 executor: str = "local", ray_address: str | None = None) -> pd.DataFrame:
    """Reconstruct the test excerpts with every trained job of a run and measure them.

    With ``data``, the excerpts come from that folder (all of it is held out) and
    everything is written under ``run_dir/eval-<folder name>/`` instead.

    Cached: a system whose checkpoint (or baseline fit), the evaluation's inputs and a metric's
    version are unchanged since the last evaluation keeps its stored values, without loading its
    model; a new metric version or a newly installed metric package is measured from the stored
    reconstructions; a new or retrained job is reconstructed and measured. ``force`` redoes all.
    File plugins are rebuilt from the run's copies; ``strict`` refuses one whose file has changed.
    Metrics run in a local process pool of ``workers``, or with ``executor="ray"`` on a Ray cluster.

    Returns the tidy metrics table, also written to ``metrics.parquet`` beside what a reader
    needs to know about each metric (``metrics_info.json``) and what the values were computed
    from (``eval_cache.json``).
    """
    from earshot.benchmark.data.audio import load_folder
    from earshot.benchmark.data.windows import load_data, split_by_file
    from earshot.benchmark.plugins import use_recorded_plugins
    from earshot.benchmark.train.loop import resolve_device

    from earshot.benchmark.evaluate.systems import SCORE_KIND, external_systems

    run = RunDir(run_dir)
    if run.read_record().get("kind") == SCORE_KIND:
        raise ValueError(f"{run.path}: made by earshot score from decoded audio: nothing to reconstruct (score the "
                         f"folders again to measure them anew; earshot baselines adds codecs to it)")
    config: RunConfig = config_from_dict(run.read_config())
    use_recorded_plugins(run, strict, log)
    torch_device = resolve_device(device)
    rate = config.data.sample_rate
    out = run.evaluation(data)
    if data is not None:
        test_files = load_folder(Path(data), rate, min_samples=config.data.window, log=log).files
    else:
        audio_set = load_data(config.data, log=lambda m: None)
        test_files = split_by_file(audio_set, config.data.test_fraction, config.data.split_seed).test
    if not test_files:
        raise ValueError(f"{run.path}: no held-out files to evaluate on (data.test_fraction is {config.data.test_fraction})")
    excerpts = select_excerpts(test_files, config.eval.excerpt_seconds, config.eval.excerpts_per_category, rate)
    by_path = {f.relative: f for f in test_files}
    # What a listener hears (16-bit PCM): the references are measured as they are written.
    references = {e.item: pcm16(by_path[e.source].audio[e.start:e.start + e.samples]).astype(np.float32) / PCM16_SCALE
                  for e in excerpts}

    inputs = _inputs_key(config, data, excerpts, references)
    cache = {} if force else out.read_eval_cache()
    old = out.read_metrics() if cache.get("inputs") == inputs else None
    cached = cache.get("systems", {}) if old is not None else {}
    for e in excerpts:
        if old is None or not out.reference_wav(e.item).is_file():
            write_wav(out.reference_wav(e.item), references[e.item], rate)
    if old is None or not out.excerpts_file.is_file():
        out.write_excerpts([asdict(e) for e in excerpts])

    jobs = run.finished_jobs()
    if not jobs:
        raise ValueError(f"{run.path}: no finished job to evaluate")
    # Adequacy: while a job's model is loaded, its own loss on held-out windows, and the baseline's.
    baseline = LinearBaseline(run, config, torch_device, log)
    held_out = held_out_windows(list(references.values()), config.data.window, config.data.normalize_windows,
                                config.data.min_window_rms)
    objectives: dict[str, dict] = {}

    def measure_objective(job: str, model, loss, state: dict) -> None:
        objectives[job] = job_objective(state, held_out_objective(model, loss, baseline.model(), held_out,
                                                                  config.eval.batch, torch_device, config.train.bf16))

    with_baseline = baseline.available()
    systems = [_job_system(job_dir, config, torch_device, measure_objective if with_baseline else None)
               for job_dir in jobs]
    if with_baseline:
        systems.append(_baseline_system(baseline, config, torch_device))
    systems += external_systems(out, references, rate, log)

    # Per system: its stored rows by (item, metric) and what must be redone ("all", or the stale metrics).
    stored: dict[str, dict[tuple[str, str], dict]] = {}
    todo: dict[str, set[str] | None] = {}
    for system in systems:
        entry = cached.get(system.name)
        if entry is None or entry.get("key") != system.key:
            stored[system.name], todo[system.name] = {}, None
            continue
        rows = old[old["job"] == system.name]
        stored[system.name] = {(r["item"], r["metric"]): r for r in rows.to_dict("records")}
        stale = _stale_metrics(entry, rows, excerpts)
        have_wavs = all(out.recon_wav(system.name, e.item).is_file() for e in excerpts)
        todo[system.name] = stale if have_wavs else None

    new_cache = {"inputs": inputs, "systems": {}}
    futures: dict[tuple[str, str], Future] = {}
    unchanged = [s.name for s in systems if todo[s.name] == set()]
    if unchanged:
        log(f"metrics unchanged since the last evaluation for {', '.join(unchanged)} (eval --force redoes them)")
    workers = workers or config.eval.workers or os.cpu_count() or 1
    with contextlib.ExitStack() as stack:
        pool = None
        for system in systems:
            entry = cached.get(system.name)
            redo = todo[system.name]
            if redo == set():
                new_cache["systems"][system.name] = entry
                continue
            pool = pool or stack.enter_context(metric_pool(workers, executor, ray_address))
            if redo is None:
                reconstructor, loss, seed = system.load()
                non_finite = []
                recons = reconstructor({e.item: references[e.item] for e in excerpts})
                for e, (item, recon) in zip(excerpts, recons):
                    assert item == e.item, f"{system.name} reconstructed {item} for {e.item}"
                    if not np.isfinite(recon).all():
                        non_finite.append(e.item)
                    heard = write_wav(out.recon_wav(system.name, e.item), recon, rate)
                    futures[system.name, e.item] = pool.submit(
                        _metrics_task, system.name, loss, seed, asdict(e), references[e.item], heard, rate,
                        e.item in non_finite, metrics_for(e.category))
                log(f"reconstructed {len(excerpts)} excerpts with {system.name}")
                del reconstructor, recons
            else:
                loss, seed, non_finite = entry["loss"], entry["seed"], entry.get("non_finite", [])
                for e in excerpts:
                    names = [m for m in metrics_for(e.category) if m in redo]
                    if names:
                        futures[system.name, e.item] = pool.submit(
                            _metrics_task, system.name, loss, seed, asdict(e), references[e.item],
                            read_wav(out.recon_wav(system.name, e.item)), rate, e.item in non_finite, names)
                log(f"measuring {', '.join(sorted(redo))} of {system.name} from its stored reconstructions")
            new_cache["systems"][system.name] = {
                "key": system.key, "loss": loss, "seed": seed, "non_finite": non_finite,
                "metrics": {name: spec.version for name, spec in METRICS.items()}}
        measured = {key: {(r["item"], r["metric"]): r for r in future.result()} for key, future in futures.items()}

    # In table order (system, excerpt, metric), whichever rows were reused or measured.
    rows = []
    for system in systems:
        for e in excerpts:
            fresh = measured.get((system.name, e.item), {})
            for name in metrics_for(e.category):
                rows.append(fresh.get((e.item, name)) or stored[system.name][e.item, name])
    frame = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    out.write_metric_info(metric_catalog())
    out.write_metrics(frame)
    if with_baseline:
        out.write_adequacy(adequacy_record(out.read_adequacy(), baseline, objectives, [job.name for job in jobs]))
    out.write_eval_cache(new_cache)
    # By system name as the tables show it: a trained system by its loss, the others by their own name.
    out.update_systems({new_cache["systems"][s.name]["loss"]: s.entry for s in systems if s.entry})
    return frame
