"""Tests of the Bark losses: the seed's filters, and the fast path against conv1d.

See ``losses/bark.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from earshot.losses import REGISTRY, build_loss
from earshot.losses.bark import (
    BarkFeatures,
    BarkLoss,
    BarkNormLoss,
    bark_band_centres,
    bark_filter_bank,
    filter_peak_gains,
    hz_to_bark,
    n_frames,
)

SAMPLE_RATE = 11_025  # Hz, the seed's
WINDOW = 2048  # samples, the seed's
OTHER_LENGTH = 777  # samples: odd, and not a power of 2
# Peak gains measured by re-running the seed's filter design: (centre Hz, gain).
SEED_PEAK_GAINS = [(100, 0.024), (500, 0.10), (1000, 0.27), (2000, 0.42), (4000, 0.67), (5200, 0.76)]
EXACT = 1e-10  # relative, float64: the fast path is the same arithmetic reordered
FLOAT32 = 1e-4  # relative, float32


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest absolute difference over the largest magnitude of ``b``."""
    return ((a - b).abs().max() / b.abs().max()).item()


def music(batch: int, samples: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    """Sums of sines across the spectrum with a little noise, peak 1, ``(batch, samples)``."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples, dtype=torch.float64) / SAMPLE_RATE
    freqs = torch.tensor([220.0, 700.0, 1300.0, 2600.0, 3500.0, 4700.0], dtype=torch.float64)
    amps = torch.rand(batch, len(freqs), 1, generator=gen, dtype=torch.float64) + 0.2
    phases = 2 * math.pi * torch.rand(batch, len(freqs), 1, generator=gen, dtype=torch.float64)
    x = (amps * torch.sin(2 * math.pi * freqs[:, None] * t + phases)).sum(1)
    x = x + 0.01 * torch.randn(batch, samples, generator=gen, dtype=torch.float64)
    return (x / x.abs().amax(-1, keepdim=True)).to(dtype)


def noise(batch: int, samples: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, samples, generator=gen, dtype=torch.float64).to(dtype)


@pytest.fixture(scope="module")
def bank() -> np.ndarray:
    return bark_filter_bank(SAMPLE_RATE)


@pytest.fixture(scope="module")
def features() -> dict[tuple[bool, str], BarkFeatures]:
    return {
        (normalise, method): BarkFeatures(SAMPLE_RATE, normalise=normalise, method=method)
        for normalise in (False, True)
        for method in ("fft", "direct")
    }


@pytest.fixture(scope="module")
def losses() -> dict[tuple[str, str], torch.nn.Module]:
    return {
        (cls.name, method): cls(SAMPLE_RATE, method=method)
        for cls in (BarkLoss, BarkNormLoss)
        for method in ("fft", "direct")
    }


# The filter bank


def test_centres_are_evenly_spaced_in_bark_from_50_hz_to_300_below_nyquist():
    centres = bark_band_centres(SAMPLE_RATE)
    assert centres.shape == (512,)
    assert centres[0] == pytest.approx(50.0)
    assert centres[-1] == pytest.approx(5212.5)
    steps = np.diff(hz_to_bark(centres))
    np.testing.assert_allclose(steps, steps[0], rtol=1e-9)


def test_bank_has_one_512_tap_filter_per_band(bank):
    assert bank.shape == (512, 512)
    assert np.isfinite(bank).all()


@pytest.mark.parametrize("centre_hz, gain", SEED_PEAK_GAINS)
def test_peak_gains_are_the_seeds(bank, centre_hz, gain):
    band = np.argmin(np.abs(bark_band_centres(SAMPLE_RATE) - centre_hz))
    tolerance = 0.10 if centre_hz in (1000, 4000) else 0.15
    assert filter_peak_gains(bank[band : band + 1])[0] == pytest.approx(gain, rel=tolerance)


def test_peak_gains_are_erratic_below_300_hz_and_rise_smoothly_above_1500(bank):
    # firwin2's 10.77 Hz design grid against Gaussians 1 Hz wide at 100 Hz: a
    # band's gain depends on how close a grid point falls to its centre.
    gains, centres = filter_peak_gains(bank), bark_band_centres(SAMPLE_RATE)
    low = gains[centres < 300]
    assert low.max() / low.min() > 1e4
    assert low.max() == pytest.approx(0.27, rel=0.05)  # a grid point right on the centre
    high = gains[centres > 1500]
    assert np.all(high[1:] / high[:-1] > 0.99)
    assert high[-1] > 1.5 * high[0]


@pytest.mark.parametrize("centre_hz", [1000, 4000])
def test_bands_are_only_27_to_40_hz_wide_at_minus_3_db(bank, centre_hz):
    band = np.argmin(np.abs(bark_band_centres(SAMPLE_RATE) - centre_hz))
    response = np.abs(np.fft.rfft(bank[band], n=1 << 16))
    hz = np.fft.rfftfreq(1 << 16, 1 / SAMPLE_RATE)
    above = hz[response >= response.max() / math.sqrt(2)]
    assert 27 <= above.max() - above.min() <= 40
    assert abs(hz[response.argmax()] - centre_hz) < 15


def test_normalised_bank_has_unit_peak_gain_and_the_same_shapes(bank):
    normalised = bark_filter_bank(SAMPLE_RATE, normalise=True)
    np.testing.assert_allclose(filter_peak_gains(normalised), 1.0, rtol=1e-12)
    np.testing.assert_allclose(normalised * filter_peak_gains(bank)[:, None], bank, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("sample_rate", [4000, 22050])
def test_other_sample_rates_build(sample_rate):
    # At 22 050 Hz the top bands reach Nyquist and are cut there.
    normalised = bark_filter_bank(sample_rate, normalise=True)
    assert np.isfinite(normalised).all()
    assert bark_band_centres(sample_rate)[-1] == pytest.approx(sample_rate / 2 - 300)


# The features: fast path against conv1d


def test_frame_counts():
    assert n_frames(WINDOW) == 1281
    assert n_frames(OTHER_LENGTH) == 645


@pytest.mark.parametrize("normalise", [False, True])
@pytest.mark.parametrize("samples", [WINDOW, OTHER_LENGTH])
def test_fft_is_conv1d_exactly_in_float64(features, normalise, samples):
    x = torch.cat([noise(2, samples, seed=1, dtype=torch.float64), music(2, samples, seed=2, dtype=torch.float64)])
    fast, direct = features[normalise, "fft"], features[normalise, "direct"]
    expected = direct.responses(x)
    assert expected.shape == (4, 512, n_frames(samples))
    assert relative(fast.responses(x), expected) < EXACT
    assert relative(fast(x), direct(x)) < EXACT


@pytest.mark.parametrize("normalise", [False, True])
@pytest.mark.parametrize("signal", [noise, music])
@pytest.mark.parametrize("samples", [WINDOW, OTHER_LENGTH])
def test_fft_matches_conv1d_in_float32(features, normalise, signal, samples):
    x = signal(3, samples, seed=3)
    fast, direct = features[normalise, "fft"], features[normalise, "direct"]
    assert relative(fast.responses(x), direct.responses(x)) < 1e-5
    # log(1 + 10000 y) magnifies rounding in y near 0 by up to 10000: both paths
    # are about 5e-5 from float64 there, in different directions.
    assert relative(fast(x), direct(x)) < (FLOAT32 if signal is music else 2 * FLOAT32)


def test_features_have_1281_frames_and_the_padding_only_frames_are_zero(features):
    out = features[False, "fft"](music(2, WINDOW, seed=4))
    assert out.shape == (2, 512, 1281)
    # The first and the last window see only conv1d's zero padding.
    assert torch.all(out[..., 0] == 0) and torch.all(out[..., -1] == 0)
    assert torch.all(out >= 0)


def test_features_are_differentiable_and_expose_centres(features):
    module = features[True, "fft"]
    x = music(2, OTHER_LENGTH, seed=5).requires_grad_()
    module(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    np.testing.assert_allclose(module.centres_hz.numpy(), bark_band_centres(SAMPLE_RATE), rtol=1e-6)


# The losses


def test_registered_under_both_names():
    assert REGISTRY["bark"] is BarkLoss and REGISTRY["bark-norm"] is BarkNormLoss
    loss = build_loss("bark", sample_rate=SAMPLE_RATE)
    assert loss.features.method == "fft" and not loss.features.normalise
    assert build_loss("bark-norm", sample_rate=SAMPLE_RATE).features.normalise


@pytest.mark.parametrize("name", ["bark", "bark-norm"])
@pytest.mark.parametrize("samples", [WINDOW, OTHER_LENGTH])
def test_fast_loss_and_gradient_are_conv1d_s_exactly_in_float64(losses, name, samples):
    target = music(3, samples, seed=6, dtype=torch.float64)
    head = (target + 0.1 * noise(3, samples, seed=7, dtype=torch.float64))[:, None].requires_grad_()
    fast, direct = losses[name, "fft"](head, target), losses[name, "direct"](head, target)
    assert fast.item() == pytest.approx(direct.item(), rel=EXACT)
    (grad_fast,) = torch.autograd.grad(fast, head)
    (grad_direct,) = torch.autograd.grad(direct, head)
    assert relative(grad_fast, grad_direct) < 1e-8


@pytest.mark.parametrize("name", ["bark", "bark-norm"])
@pytest.mark.parametrize("signal", [noise, music])
def test_fast_loss_matches_conv1d_in_float32(losses, name, signal):
    target = signal(4, WINDOW, seed=8)
    head = (target + 0.1 * noise(4, WINDOW, seed=9))[:, None].requires_grad_()
    fast, direct = losses[name, "fft"](head, target), losses[name, "direct"](head, target)
    assert fast.dtype == torch.float32
    assert fast.item() == pytest.approx(direct.item(), rel=FLOAT32)
    (grad_fast,) = torch.autograd.grad(fast, head)
    (grad_direct,) = torch.autograd.grad(direct, head)
    # A filter output within rounding of 0 switches its gradient between 0 and
    # 10000 x its feature difference, in either path: compare as vectors.
    assert ((grad_fast - grad_direct).norm() / grad_direct.norm()).item() < 2e-2


@pytest.mark.parametrize("name", ["bark", "bark-norm"])
def test_loss_is_zero_on_identical_inputs_and_positive_otherwise(losses, name):
    loss = losses[name, "fft"]
    target = music(3, WINDOW, seed=10)
    assert loss(target[:, None], target).item() < 1e-12
    assert loss((target + 0.01 * noise(3, WINDOW, seed=11))[:, None], target).item() > 0


@pytest.mark.parametrize("name", ["bark", "bark-norm"])
def test_gradient_is_finite_and_nonzero_and_only_for_the_reconstruction(losses, name):
    target = music(2, WINDOW, seed=12).requires_grad_()
    head = (target.detach() + 0.1 * noise(2, WINDOW, seed=13))[:, None].requires_grad_()
    losses[name, "fft"](head, target).backward()
    assert torch.isfinite(head.grad).all() and head.grad.abs().sum() > 0
    assert target.grad is None


@pytest.mark.parametrize("name", ["bark", "bark-norm"])
def test_the_value_without_autograd_is_the_same(losses, name):
    target = music(2, WINDOW, seed=14)
    head = (target + 0.1 * noise(2, WINDOW, seed=15))[:, None].requires_grad_()
    with torch.no_grad():
        quiet = losses[name, "fft"](head, target)
    assert quiet.item() == losses[name, "fft"](head, target).item()


@pytest.mark.parametrize("name", ["bark", "bark-norm"])
def test_losing_everything_above_2_khz_costs_more_than_faint_noise(losses, name):
    target = music(3, WINDOW, seed=16)
    spectrum = torch.fft.rfft(target)
    spectrum[:, torch.fft.rfftfreq(WINDOW, 1 / SAMPLE_RATE) > 2000] = 0
    low_passed = torch.fft.irfft(spectrum, n=WINDOW)
    noisy = target + 1e-3 * noise(3, WINDOW, seed=17)
    loss = losses[name, "fft"]
    assert loss(low_passed[:, None], target) > 2 * loss(noisy[:, None], target)


def test_autocast_does_not_reach_the_loss(losses):
    target = music(2, WINDOW, seed=18)
    head = (target + 0.1 * noise(2, WINDOW, seed=19))[:, None]
    plain = losses["bark", "fft"](head, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cast = losses["bark", "fft"](head.bfloat16(), target)
    # Only the input's rounding to bf16 differs.
    assert cast.dtype == torch.float32
    assert cast.item() == pytest.approx(plain.item(), rel=1e-2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        same = losses["bark", "fft"](head, target)
    assert same.item() == plain.item()


def test_buffers_follow_to_and_stay_out_of_the_state_dict():
    loss = BarkNormLoss(SAMPLE_RATE)
    assert loss.state_dict() == {}
    moved = loss.to("meta")
    buffers = dict(moved.named_buffers())
    expected = {"features.filters", "features.centres_hz", "features.spectrum_low", "features.spectrum_high"}
    assert expected <= set(buffers)
    assert all(b.device.type == "meta" for b in buffers.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_under_bf16_autocast(losses):
    target = music(2, WINDOW, seed=20)
    head = (target + 0.1 * noise(2, WINDOW, seed=21))[:, None]
    expected = losses["bark", "direct"](head, target)
    loss = BarkLoss(SAMPLE_RATE).to("cuda")
    head_cuda = head.cuda().requires_grad_()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        value = loss(head_cuda, target.cuda())
    value.backward()
    assert value.item() == pytest.approx(expected.item(), rel=1e-3)
    assert torch.isfinite(head_cuda.grad).all()
