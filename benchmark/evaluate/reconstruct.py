"""Evaluation: reconstruct held-out excerpts the seed's way and measure them.

Reconstruction: 50 %-overlapped windows, each normalised as in training and its scale
restored, a Hann window on the output, overlap-add; batched on the device. Metrics run
in a process pool over (job × item) while the device reconstructs the next job.
"""

from __future__ import annotations

import os
from concurrent.futures import Future
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from earshot.benchmark.data.audio import AudioFile
from earshot.benchmark.config import RunConfig, config_from_dict
from earshot.benchmark.data.windows import NORMALIZE_EPS
from earshot.benchmark.evaluate.metrics import metric_catalog, metric_pool
from earshot.benchmark.train.loop import load_trained
from earshot.results.rundir import RunDir, write_wav

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
    hop = window // 2
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
                  degraded: np.ndarray, sample_rate: int, non_finite: bool) -> list[dict]:
    from earshot.benchmark.evaluate.metrics import compute_all

    rows = compute_all(reference, np.full_like(degraded, np.nan) if non_finite else degraded,
                       sample_rate, excerpt["category"])
    return [{"job": job, "loss": loss, "seed": seed, "item": excerpt["item"], "category": excerpt["category"],
             "metric": r["metric"], "value": r["value"], "error": r["error"]} for r in rows]


def evaluate_run(run_dir: Path, device: str = "auto", data: Path | None = None, workers: int | None = None,
                 log: Callable[[str], None] = print) -> pd.DataFrame:
    """Reconstruct the test excerpts with every trained job of a run and measure them.

    With ``data``, the excerpts come from that folder (all of it is held out) and
    everything is written under ``run_dir/eval-<folder name>/`` instead.
    Returns the tidy metrics table, also written to ``metrics.parquet`` beside what a reader
    needs to know about each metric (``metrics_info.json``).
    """
    from earshot.benchmark.data.audio import load_folder
    from earshot.benchmark.data.windows import load_data, split_by_file
    from earshot.benchmark.train.loop import resolve_device

    run = RunDir(run_dir)
    config: RunConfig = config_from_dict(run.read_config())
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
    references = {}
    for e in excerpts:
        audio = by_path[e.source].audio[e.start:e.start + e.samples]
        references[e.item] = write_wav(out.reference_wav(e.item), audio, rate)
    out.write_excerpts([asdict(e) for e in excerpts])

    jobs = run.finished_jobs()
    if not jobs:
        raise ValueError(f"{run.path}: no finished job to evaluate")
    workers = workers or config.eval.workers or os.cpu_count() or 1
    futures: list[Future] = []
    with metric_pool(workers) as pool:
        for job_dir in jobs:
            model, loss, state = load_trained(job_dir.path, torch_device)
            for e in excerpts:
                recon = reconstruct(model, loss, references[e.item], config.data.window,
                                    config.data.normalize_windows, config.eval.batch, torch_device, config.train.bf16)
                non_finite = not np.isfinite(recon).all()
                heard = write_wav(out.recon_wav(job_dir.name, e.item), recon, rate)
                futures.append(pool.submit(_metrics_task, job_dir.name, state["loss_name"], state["seed"],
                                           asdict(e), references[e.item], heard, rate, non_finite))
            log(f"reconstructed {len(excerpts)} excerpts with {job_dir.name}")
            del model, loss, state
        rows = [row for f in futures for row in f.result()]
    frame = pd.DataFrame(rows, columns=METRIC_COLUMNS)
    out.write_metric_info(metric_catalog())
    out.write_metrics(frame)
    return frame
