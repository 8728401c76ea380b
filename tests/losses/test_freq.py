"""Tests of the spectral losses: parity with auraloss, the mel bank, no empty band.

See ``losses/freq.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from earshot.losses import build_loss
from earshot.losses.freq import (MEL_BANDS, MEL_WINDOWS, MRSTFT_FFT_SIZES, MelLoss, MultiScaleMel, empty_mel_bands,
                         mel_filter_bank)
from tests.helpers import RATE, tone_mix

WINDOW = 2048  # samples, the seed's
PARITY = 1e-5  # the brief's tolerance against auraloss


def windows(batch: int, seed: int) -> torch.Tensor:
    """Peak-normalised windows of tone mixes, ``(batch, WINDOW)``."""
    x = torch.stack([torch.from_numpy(tone_mix(0.25, RATE, seed + i)[:WINDOW]) for i in range(batch)])
    return x / x.abs().amax(dim=1, keepdim=True)


def test_mrstft_matches_auraloss_at_the_same_settings():
    auraloss = pytest.importorskip("auraloss")
    reference = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=list(MRSTFT_FFT_SIZES), hop_sizes=[n // 4 for n in MRSTFT_FFT_SIZES],
        win_lengths=list(MRSTFT_FFT_SIZES))
    ours = build_loss("mrstft", RATE)
    target = windows(3, 0)
    estimate = 0.7 * target + 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    expected = reference(estimate[:, None], target[:, None]).item()
    got = ours(estimate[:, None], target).item()
    assert abs(got - expected) <= PARITY * max(1.0, abs(expected))


def test_mel_bank_equals_librosa():
    librosa = pytest.importorskip("librosa")
    for window, bands in zip(MEL_WINDOWS, MEL_BANDS):
        ours = mel_filter_bank(RATE, window, bands)
        theirs = librosa.filters.mel(sr=RATE, n_fft=window, n_mels=bands)
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-7)


def test_no_mel_band_is_empty_and_each_spans_at_least_two_bins():
    for window, bands in zip(MEL_WINDOWS, MEL_BANDS):
        bank = mel_filter_bank(RATE, window, bands)
        assert empty_mel_bands(bank) == []
        assert (bank > 0).sum(axis=1).min() >= 2, (window, bands)


def test_the_auraloss_mel_trap_is_refused_not_nan():
    # auraloss with scale="mel", 64 bands and FFT 128 at 11 025 Hz returns NaN:
    # its lowest bands hold no FFT bin. Ours names the problem instead.
    assert empty_mel_bands(mel_filter_bank(RATE, 128, 64))
    with pytest.raises(ValueError, match="no FFT bin"):
        MultiScaleMel(RATE, windows=[512, 256, 128], bands=[64, 64, 64])


@pytest.mark.parametrize("name", ["mrstft", "mel"])
def test_zero_on_a_perfect_reconstruction_finite_gradients_otherwise(name):
    loss = build_loss(name, RATE)
    target = windows(2, 3)
    assert loss(target[:, None], target).item() == pytest.approx(0.0, abs=1e-6)
    # A silent head sits on the log floor: a finite (zero) gradient, never NaN.
    for head, moves in ((torch.zeros(2, 1, WINDOW), False), (0.5 * target[:, None].clone(), True)):
        head.requires_grad_(True)
        value = loss(head, target)
        value.backward()
        assert math.isfinite(value.item()) and value.item() > 0
        assert torch.isfinite(head.grad).all() and (head.grad.abs().sum() > 0) == moves


def test_mel_loss_is_finite_and_ranks_a_closer_estimate_lower():
    loss = MelLoss(RATE)
    target = windows(2, 5)
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(0))
    near, far = loss((target + 0.01 * noise)[:, None], target), loss((target + 0.3 * noise)[:, None], target)
    assert math.isfinite(far.item()) and near < far


@pytest.mark.parametrize("name", ["mrstft", "mel"])
def test_buffers_follow_to_and_stay_out_of_the_state_dict(name):
    loss = build_loss(name, RATE)
    assert loss.state_dict() == {} or all(not k for k in loss.state_dict())
    moved = loss.to("meta")
    assert all(b.device.type == "meta" for b in moved.buffers())
    assert len(list(moved.buffers())) > 0
