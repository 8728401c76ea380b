"""The split by file and the training-window sampler."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tests.helpers import RATE, write_folder

from earshot.benchmark.data.audio import AudioFile, load_folder
from earshot.benchmark.data.windows import WindowSampler, split_by_file


def _album(tmp_path):
    layout = {"speech": [1.0 + 0.1 * i for i in range(8)], "drums": [1.0] * 4, "music": [1.2] * 4, "mix": [1.0]}
    return load_folder(write_folder(tmp_path / "a", layout), RATE, min_samples=2048)


def test_split_is_by_file_deterministic_and_stratified(tmp_path):
    audio_set = _album(tmp_path)
    a = split_by_file(audio_set, 0.25, seed=7)
    b = split_by_file(audio_set, 0.25, seed=7)
    assert [f.relative for f in a.test] == [f.relative for f in b.test]
    assert not {f.relative for f in a.train} & {f.relative for f in a.test}
    assert len(a.train) + len(a.test) == len(audio_set.files)
    test_by_category = {c: sum(f.category == c for f in a.test) for c in ("speech", "drums", "music", "mix")}
    assert test_by_category == {"speech": 2, "drums": 1, "music": 1, "mix": 0}
    other = split_by_file(audio_set, 0.25, seed=8)
    assert [f.relative for f in other.test] != [f.relative for f in a.test]


def _file(name, audio):
    return AudioFile(path=None, relative=name, category="other", audio=audio.astype(np.float32))


def test_windows_are_drawn_in_proportion_to_file_length():
    window = 64
    # File b has three times the valid starts of file a; each file is a constant level.
    a = _file("a", np.full(window - 1 + 1000, 0.25))
    b = _file("b", np.full(window - 1 + 3000, -0.5))
    sampler = WindowSampler([a, b], window, normalize=False, min_rms=0.0, seed=0)
    windows = sampler.sample(40_000)
    share_b = (windows[:, 0] < 0).float().mean().item()
    assert abs(share_b - 0.75) < 0.01
    # No window straddles two files.
    assert torch.all(windows.max(dim=1).values == windows.min(dim=1).values)


def test_windows_are_normalised_by_their_own_peak():
    rng = np.random.default_rng(0)
    sampler = WindowSampler([_file("a", 0.1 * rng.standard_normal(10_000))], 256, normalize=True, seed=0)
    windows = sampler.sample(64)
    np.testing.assert_allclose(windows.abs().amax(dim=1).numpy(), 1.0, rtol=1e-5)


def test_near_silent_windows_are_left_out_and_counted():
    window = 100
    audio = np.concatenate([np.zeros(1000), 0.5 * np.ones(1000)])
    sampler = WindowSampler([_file("a", audio)], window, normalize=False, min_rms=0.01, seed=0)
    windows = sampler.sample(5000)
    assert torch.all(windows.pow(2).mean(dim=1).sqrt() >= 0.01)
    assert sampler.total_windows == 2000 - window + 1
    # Starts 0..~900 hold mostly zeros: rms ≥ 0.01 needs ≥ 1 loud sample of 100 at 0.5 → start ≥ 901.
    assert sampler.silent_windows == 901


def test_sampler_is_deterministic_and_resumable():
    audio = np.random.default_rng(1).standard_normal(20_000)
    first = WindowSampler([_file("a", audio)], 512, seed=3)
    first.sample(8)
    state = first.state_dict()
    expected = first.sample(8)
    second = WindowSampler([_file("a", audio)], 512, seed=3)
    second.load_state_dict(state)
    assert torch.equal(second.sample(8), expected)


def test_no_window_fits_is_a_clear_error():
    with pytest.raises(ValueError, match="min_window_rms"):
        WindowSampler([_file("a", np.zeros(10))], 64)
