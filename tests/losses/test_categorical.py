"""Tests of the mu-law and mixture-of-logistics losses and their decoding.

See ``losses/categorical.py``.
"""

from __future__ import annotations

import math

import pytest
import torch

from earshot.losses import UnknownLossError, build_loss
from earshot.losses.categorical import (DMoLLoss, MuLawCELoss, dmol_log_likelihood, mulaw_encode, mulaw_expand,
                                mulaw_quantize)
from tests.helpers import RATE

SAMPLES = 512


def signal(batch: int = 2, seed: int = 0) -> torch.Tensor:
    """Values over all of [-1, 1] with both edges, ``(batch, SAMPLES)``."""
    x = torch.rand(batch, SAMPLES, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    x[:, 0], x[:, 1] = -1.0, 1.0
    return x


def test_mulaw_round_trip_within_one_quantisation_step():
    x = torch.linspace(-1, 1, 20001)
    assert torch.allclose(mulaw_expand(mulaw_encode(x)), x, atol=1e-6)
    classes = mulaw_quantize(x)
    assert classes.min() == 0 and classes.max() == 255
    decoded = MuLawCELoss(RATE, decoding="argmax").decode(torch.nn.functional.one_hot(classes, 256).T[None].float())
    # One step of the companded grid (2/255), expanded where the grid is coarsest: at each x.
    step = mulaw_expand(mulaw_encode(x).abs() + 2 / 255) - mulaw_expand(mulaw_encode(x).abs())
    assert ((decoded[0] - x).abs() <= step).all()


@pytest.mark.parametrize("decoding", ["mean", "argmax"])
def test_mulaw_ce_is_near_zero_on_confident_correct_logits_and_decodes_them(decoding):
    loss = MuLawCELoss(RATE, decoding=decoding)
    target = signal()
    head = 50.0 * torch.nn.functional.one_hot(mulaw_quantize(target), 256).permute(0, 2, 1).float()
    assert loss(head, target).item() < 1e-6
    decoded = loss.decode(head)
    assert decoded.shape == target.shape
    assert (decoded - target).abs().max() < 0.022  # half the coarsest mu-law step (at ±1) is 0.0218


def test_mulaw_ce_gradients_and_head():
    loss = build_loss("mulaw-ce", RATE)
    assert loss.head_channels == 256
    head = torch.randn(2, 256, SAMPLES, requires_grad=True)
    loss(head, signal()).backward()
    assert torch.isfinite(head.grad).all()
    with pytest.raises(UnknownLossError, match="decoding"):
        build_loss("mulaw-ce", RATE, {"mulaw-ce": {"decoding": "median"}})


def sharp_head(means: torch.Tensor, mixtures: int = 10, log_scale: float = -7.0) -> torch.Tensor:
    """A mixture whose last component holds all the weight at ``means`` with a tiny scale."""
    batch, samples = means.shape
    logits = torch.full((batch, mixtures, samples), -30.0)
    logits[:, -1] = 30.0
    mu = torch.full((batch, mixtures, samples), 5.0)  # the others far away
    mu[:, -1] = means
    return torch.cat([logits, mu, torch.full((batch, mixtures, samples), log_scale)], dim=1)


def test_dmol_with_one_sharp_component_decodes_to_its_mean_and_has_small_nll():
    target = torch.round((signal() + 1) / 2 * 255) / 255 * 2 - 1  # on the 256 bin centres
    head = sharp_head(target)
    loss = DMoLLoss(RATE)
    assert torch.allclose(loss.decode(head), target, atol=1e-6)
    # A logistic of scale e^-7 puts about 97 % of its mass in a bin of half-width 1/255.
    assert loss(head, target).item() < 0.05


def test_dmol_edge_bins_take_the_tails_and_the_density_fallback_is_finite():
    # Mean far outside [-1, 1]: the top bin still gets nearly all the mass via 1 − CDF.
    edge = torch.tensor([[1.0, -1.0]])
    head = sharp_head(torch.tensor([[3.0, -3.0]]), log_scale=-2.0)
    assert dmol_log_likelihood(head, edge).exp().min() > 0.99
    # An interior bin far from a very sharp component: CDF difference underflows, pdf fallback.
    far = sharp_head(torch.tensor([[0.9]]), log_scale=-7.0).requires_grad_(True)
    value = dmol_log_likelihood(far, torch.tensor([[0.0]]))
    value.sum().backward()
    assert math.isfinite(value.item()) and value.item() < -100
    assert torch.isfinite(far.grad).all()


def test_dmol_gradients_options_and_sampling():
    loss = build_loss("dmol", RATE, {"dmol": {"mixtures": 4}})
    assert loss.head_channels == 12
    head = torch.randn(2, 12, SAMPLES, requires_grad=True)
    value = loss(head, signal())
    value.backward()
    assert math.isfinite(value.item()) and torch.isfinite(head.grad).all()
    sampler = dict(mixtures=4, decoding="sample", seed=7)
    a = DMoLLoss(RATE, **sampler).decode(head.detach())
    b = DMoLLoss(RATE, **sampler).decode(head.detach())
    assert torch.equal(a, b) and a.abs().max() <= 1 and a.shape == (2, SAMPLES)
    assert not torch.equal(a, DMoLLoss(RATE, mixtures=4).decode(head.detach()))
    # Sampling a sharp mixture lands within a few scales of its mean.
    target = signal()
    drawn = DMoLLoss(RATE, decoding="sample").decode(sharp_head(target))
    assert (drawn - target).abs().max() < 0.02  # e^-7 scale: 0.02 is 22 scales
