"""The linear baseline every run is measured against: PCA with as many components as the model's code.

The best linear code of the model's size (``model.latent`` components) is fitted on the
same training windows the autoencoder sees (:class:`WindowSampler`: same window, same
per-window normalisation, same minimum RMS, a fixed seed) and reconstructs the held-out
excerpts the same way (:func:`reconstruct`: 50 %-overlapped windows, scale restored, Hann,
overlap-add). It is a system named ``pca-<latent>`` that lands in the run like a job:
``recon/pca-<latent>/``, rows in ``metrics.parquet`` (job and loss ``pca-<latent>``, seed 0).

The fit is deterministic from the config and the data, and kept in the run
(``baseline/pca-<latent>.npz``) under a key of what it depends on, so a re-evaluation
loads it instead of fitting again (:class:`LinearBaseline`).

:func:`held_out_objective` measures a trained model and the baseline with the job's own
loss on the same held-out windows; ``results.adequacy`` judges from it whether the model
beats the baseline.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable

import numpy as np
import torch
from torch import nn

from earshot.benchmark.config import RunConfig
from earshot.benchmark.data.windows import NORMALIZE_EPS, WindowSampler
from earshot.results.rundir import RunDir

BASELINE_VERSION = 1  # bump when the fit or the reconstruction changes: cached fits are then refitted
FIT_WINDOWS = 20_000  # training windows the PCA is fitted on (drawn with replacement)
FIT_SEED = 0
FIT_CHUNK = 2_000  # windows per covariance update (bounds the memory to a chunk)
SUBSPACE_ITERATIONS = 8
OVERSAMPLE = 16  # extra columns that make the leading k converge in few iterations


def _components(config: RunConfig) -> int:
    """The baseline's size: the code size of the run's model (``model.latent``, or a plugin model's own)."""
    from earshot.models import code_size

    return code_size(config.model, config.data.window, config.model_options, config.data.sample_rate)


def baseline_name(latent: int) -> str:
    """The baseline system's name for a code of ``latent`` dimensions: ``pca-128``."""
    return f"pca-{latent}"


class PCABaseline(nn.Module):
    """PCA as an autoencoder: ``(batch, window)`` → code ``(batch, k)`` → head ``(batch, 1, window)``.

    Used as both the model and the loss of :func:`reconstruct` (``decode`` takes the
    waveform head as it is), and as a waveform head for a loss's own distance.
    """

    def __init__(self, mean: torch.Tensor, basis: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("basis", basis.float())  # (components, window), orthonormal rows

    @property
    def components(self) -> int:
        return int(self.basis.shape[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        code = (x - self.mean) @ self.basis.T
        return (code @ self.basis + self.mean).unsqueeze(1)

    def decode(self, head: torch.Tensor) -> torch.Tensor:
        """The waveform ``(batch, window)`` of a head."""
        return head[:, 0]


def fit_pca(train_files, window: int, components: int, normalize: bool = True, min_rms: float = 0.0,
            windows: int = FIT_WINDOWS, seed: int = FIT_SEED) -> PCABaseline:
    """PCA with ``components`` components on ``windows`` training windows drawn as training draws them.

    The covariance is summed in float32 chunks into float64 and its leading eigenvectors
    taken (:func:`top_eigenvectors`): seconds on a CPU for 20 000 windows of 2048 samples.

    Raises:
        ValueError: ``components`` exceeds the window, or no training window is loud enough.
    """
    if components > window:
        raise ValueError(f"a PCA of {components} components on windows of {window} samples")
    sampler = WindowSampler(train_files, window, "cpu", normalize=normalize, min_rms=min_rms, seed=seed)
    total = torch.zeros(window, dtype=torch.float64)
    outer = torch.zeros(window, window, dtype=torch.float64)
    drawn = 0
    while drawn < windows:
        chunk = sampler.sample(min(FIT_CHUNK, windows - drawn))
        total += chunk.sum(dim=0, dtype=torch.float64)
        outer += (chunk.T @ chunk).double()
        drawn += chunk.shape[0]
    mean = total / drawn
    return PCABaseline(mean, top_eigenvectors(outer / drawn - torch.outer(mean, mean), components))


def top_eigenvectors(covariance: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` leading eigenvectors of a symmetric matrix as orthonormal rows ``(k, n)``, largest first.

    Subspace iteration (:data:`SUBSPACE_ITERATIONS` products with a block of ``k`` +
    :data:`OVERSAMPLE` columns, then Rayleigh–Ritz): a full ``eigh`` of a 2048² covariance
    takes tens of seconds on two cores, this about one, and captures the same energy
    (checked to 7 digits on audio windows for 16 and 128 components).
    """
    n = covariance.shape[0]
    if k + OVERSAMPLE >= n:
        _, vectors = torch.linalg.eigh(covariance)  # eigenvalues ascending
        return vectors[:, -k:].flip(1).T
    generator = torch.Generator().manual_seed(FIT_SEED)
    single = covariance.float()
    block = torch.linalg.qr(torch.randn(n, k + OVERSAMPLE, generator=generator)).Q
    for _ in range(SUBSPACE_ITERATIONS):
        block = torch.linalg.qr(single @ block).Q
    block = block.double()
    _, vectors = torch.linalg.eigh(block.T @ covariance @ block)
    return (block @ vectors[:, -k:]).flip(1).T


def baseline_key(config: RunConfig) -> str:
    """What the fit depends on, hashed: the data settings, the code size and this module's version."""
    record = {"version": BASELINE_VERSION, "data": config.data.model_dump(mode="json"),
              "components": _components(config), "windows": FIT_WINDOWS, "seed": FIT_SEED}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:16]


class LinearBaseline:
    """The run's PCA baseline ``pca-<latent>``: read from the run when its key matches the config, else
    fitted on the run's training files and kept there (``baseline/pca-<latent>.npz``), on first use."""

    def __init__(self, run: RunDir, config: RunConfig, device: torch.device | str = "cpu",
                 log: Callable[[str], None] = print) -> None:
        self.run, self.config, self.device, self.log = run, config, torch.device(device), log
        self.name, self.key = baseline_name(_components(config)), baseline_key(config)
        self._model: PCABaseline | None = None
        self._unavailable: str | None = None

    def available(self) -> bool:
        """Whether the baseline could be read or fitted; when the run's training data cannot be loaded any
        more (an old run evaluated on another folder), says so once in the log and returns False."""
        if self._model is None and self._unavailable is None:
            from earshot.benchmark.data.corpus import CorpusError

            try:
                self._model = self._load_or_fit().to(self.device)
            except (ValueError, CorpusError) as exc:  # DataError is a ValueError
                self._unavailable = str(exc)
                self.log(f"no linear baseline {self.name}: its training data cannot be loaded ({exc})")
        return self._model is not None

    def model(self) -> PCABaseline:
        """The fitted baseline on the device (fitted or read once). Raises RuntimeError when not :meth:`available`."""
        if not self.available():
            raise RuntimeError(f"no linear baseline {self.name}: {self._unavailable}")
        return self._model

    def _load_or_fit(self) -> PCABaseline:
        from earshot.benchmark.data.windows import load_data, split_by_file

        kept = self.run.read_baseline(self.name)
        if kept is not None and kept.get("key") == self.key:
            return PCABaseline(torch.from_numpy(kept["mean"]), torch.from_numpy(kept["basis"]))
        data = self.config.data
        audio_set = load_data(data, log=lambda m: None)
        train = split_by_file(audio_set, data.test_fraction, data.split_seed).train
        baseline = fit_pca(train, data.window, _components(self.config), data.normalize_windows, data.min_window_rms)
        self.run.write_baseline(self.name, {"key": self.key, "mean": baseline.mean.numpy(),
                                            "basis": baseline.basis.numpy()})
        self.log(f"fitted the linear baseline {self.name} (PCA on {FIT_WINDOWS} training windows)")
        return baseline


def held_out_windows(signals: list[np.ndarray], window: int, normalize: bool, min_rms: float) -> torch.Tensor:
    """The 50 %-overlapped windows of ``signals`` that are loud enough (``min_rms``), each normalised as
    in training; ``(n, window)`` float32, possibly empty."""
    frames = [torch.from_numpy(np.ascontiguousarray(s, dtype=np.float32)).unfold(0, window, window // 2)
              for s in signals if s.size >= window]
    if not frames:
        return torch.zeros(0, window)
    stacked = torch.cat(frames)
    stacked = stacked[stacked.pow(2).mean(dim=1).sqrt() >= min_rms]
    if normalize:
        stacked = stacked / (stacked.abs().amax(dim=1, keepdim=True) + NORMALIZE_EPS)
    return stacked


@torch.no_grad()
def held_out_objective(model, loss, baseline: PCABaseline, windows: torch.Tensor, batch: int,
                       device: torch.device, bf16: bool = True) -> dict:
    """The job's own loss on held-out ``windows``, for the model and for the PCA baseline.

    Returns:
        ``{"head", "windows", "model", "baseline"}``: the loss's head kind, the windows measured, and the
        mean loss of each (lower is better); ``model`` and ``baseline`` are None when the loss's head is
        not a waveform (a PCA reconstruction cannot be scored by it) or no window is loud enough.
    """
    head_kind = getattr(loss, "head_kind", "waveform")
    record = {"head": head_kind, "windows": int(windows.shape[0]), "model": None, "baseline": None}
    if head_kind != "waveform" or windows.shape[0] == 0:
        return record
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda" and bf16)
    baseline = baseline.to(device)
    sums = {"model": 0.0, "baseline": 0.0}
    for start in range(0, windows.shape[0], batch):
        chunk = windows[start:start + batch].to(device)
        with autocast:
            head = model(chunk)
        sums["model"] += float(loss(head.float(), chunk)) * chunk.shape[0]
        sums["baseline"] += float(loss(baseline(chunk), chunk)) * chunk.shape[0]
    return {**record, **{k: v / windows.shape[0] for k, v in sums.items()}}


def job_objective(state: dict, objective: dict) -> dict:
    """One job's entry of ``adequacy.json``: its loss, seed and step (from its checkpoint) and
    :func:`held_out_objective`'s measurement."""
    return {"loss": state["loss_name"], "seed": int(state["seed"]), "steps": int(state["step"]), **objective}


def adequacy_record(previous: dict | None, baseline: LinearBaseline, objectives: dict[str, dict],
                    jobs: list[str]) -> dict:
    """``adequacy.json``: the baseline, and per job of ``jobs`` its objective, measured now (``objectives``) or
    kept from ``previous`` (a job whose evaluation was cached loads no model)."""
    kept = (previous or {}).get("jobs", {}) if (previous or {}).get("baseline", {}).get("key") == baseline.key else {}
    entries = {job: objectives.get(job, kept.get(job)) for job in jobs}
    return {"baseline": {"name": baseline.name, "kind": "pca", "components": _components(baseline.config),
                         "fit_windows": FIT_WINDOWS, "key": baseline.key},
            "jobs": {job: entry for job, entry in entries.items() if entry is not None}}
