"""Train/test split by file, and the training-window sampler.

The whole training set lives as one tensor on the training device; each batch is
gathered there with index arithmetic, so there are no DataLoader workers and no
per-window Python on the hot path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from earshot.benchmark.data.audio import AudioFile, AudioSet

NORMALIZE_EPS = 1e-8


def reconstruction_hop(window: int) -> int:
    """Samples between the starts of consecutive windows when a whole signal is reconstructed
    (50 % overlap-add): one code per hop, so a model's latent rate is latent × rate / hop."""
    return window // 2


@dataclass
class Split:
    train: list[AudioFile]
    test: list[AudioFile]


def split_by_file(audio_set: AudioSet, test_fraction: float, seed: int) -> Split:
    """Deterministic split by whole files, stratified by category.

    Each category with at least two files gives ``round(n · test_fraction)`` (at least
    one) files to the test side; a category with a single file trains on it.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    categories = sorted({f.category for f in audio_set.files})
    for category in categories:
        members = sorted((f for f in audio_set.files if f.category == category), key=lambda f: f.relative)
        order = rng.permutation(len(members))
        n_test = 0
        if test_fraction > 0 and len(members) >= 2:
            n_test = min(len(members) - 1, max(1, round(len(members) * test_fraction)))
        test += [members[i] for i in order[:n_test]]
        train += [members[i] for i in order[n_test:]]
    key = lambda f: f.relative  # noqa: E731
    return Split(sorted(train, key=key), sorted(test, key=key))


class WindowSampler:
    """Random training windows, each file in proportion to its length.

    Every window start whose window is loud enough is equally likely, so a file is
    drawn in proportion to its number of such starts (``len - window + 1`` when it has
    no silence). Windows whose RMS is below ``min_rms`` are left out once, up front,
    and counted in ``silent_windows``; sampling itself never syncs with the device.
    Windows are divided by their own max |x| when ``normalize`` is set.
    """

    def __init__(self, files: list[AudioFile], window: int, device: torch.device | str = "cpu",
                 normalize: bool = True, min_rms: float = 0.0, seed: int = 0) -> None:
        self.device = torch.device(device)
        self.window, self.normalize = window, normalize
        starts, offset, self.silent_windows, self.total_windows = [], 0, 0, 0
        for f in files:
            n = f.audio.size - window + 1
            if n > 0:
                energy = np.concatenate([[0.0], np.cumsum(f.audio.astype(np.float64) ** 2)])
                rms = np.sqrt(np.maximum(energy[window:] - energy[:n], 0.0) / window)
                loud = np.flatnonzero(rms >= min_rms)
                starts.append(loud + offset)
                self.silent_windows += n - loud.size
                self.total_windows += n
            offset += f.audio.size
        self.starts = torch.from_numpy(np.concatenate(starts) if starts else np.zeros(0, np.int64))
        if self.starts.numel() == 0:
            raise ValueError(f"no training window of {window} samples is above data.min_window_rms={min_rms}")
        self.starts = self.starts.to(self.device)
        self.audio = torch.from_numpy(np.concatenate([f.audio for f in files])).to(self.device)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self._arange = torch.arange(window, device=self.device)

    def sample(self, batch: int) -> torch.Tensor:
        """``(batch, window)`` float32 windows on the sampler's device."""
        pick = torch.randint(0, self.starts.numel(), (batch,), generator=self.generator, device=self.device)
        windows = self.audio[self.starts[pick][:, None] + self._arange]
        if self.normalize:
            windows = windows / (windows.abs().amax(dim=1, keepdim=True) + NORMALIZE_EPS)
        return windows

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


def steps_per_epoch(windows_per_epoch: int, batch: int) -> int:
    return math.ceil(windows_per_epoch / batch)


def load_data(data_config, log=print) -> AudioSet:
    """The configured data set: ``data.path``, or the built-in corpus (built on first use)."""
    from earshot.benchmark.data.audio import load_folder

    if data_config.path:
        root = data_config.path
    else:
        from earshot.benchmark.data.corpus import ensure_corpus

        root = ensure_corpus(minutes=data_config.corpus_minutes, sample_rate=data_config.sample_rate)
    return load_folder(root, data_config.sample_rate, min_samples=data_config.window, log=log)
