"""Every registered loss through the interface the trainer and evaluation use, and a tiny run of all.

See ``losses/base.py``.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from earshot.benchmark.config import load_config
from earshot.benchmark.evaluate.baseline import baseline_name
from earshot.benchmark.evaluate.reconstruct import evaluate_run
from earshot.benchmark.train.runner import run_grid
from earshot.losses import REGISTRY, build_loss, describe_losses
from earshot.losses.categorical import mulaw_quantize
from tests.helpers import RATE, write_folder

WINDOW = 2048


@pytest.fixture(scope="module")
def target() -> torch.Tensor:
    t = torch.arange(WINDOW) / RATE
    x = torch.stack([torch.sin(2 * math.pi * f * t) + 0.3 * torch.sin(2 * math.pi * 3.1 * f * t) for f in (220, 410)])
    return x / x.abs().amax(dim=1, keepdim=True)


def head_for(loss, waveform: torch.Tensor) -> torch.Tensor:
    """A confident head that says ``waveform``, in the language of the loss's head kind."""
    if loss.head_kind == "waveform":
        return waveform[:, None].clone()
    if loss.head_kind == "mu-law logits":
        return 50.0 * F.one_hot(mulaw_quantize(waveform), loss.head_channels).permute(0, 2, 1).float()
    if loss.head_kind == "logistic mixture":  # component 0 takes it all, centred on the sample, at the sharpest scale
        logits, means, log_scales = torch.zeros(3, waveform.shape[0], loss.head_channels // 3, waveform.shape[1])
        logits[:, 0], means[:, 0], log_scales[:] = 30.0, waveform, loss.log_scale_min
        return torch.cat([logits, means, log_scales], dim=1)
    raise AssertionError(f"no test head for a {loss.head_kind!r} head: add one here")


def degraded(target: torch.Tensor) -> dict[str, torch.Tensor]:
    """Waveforms a user would call worse than the target: noisy, 6 dB quieter, low-passed."""
    noise = 0.1 * torch.randn(target.shape, generator=torch.Generator().manual_seed(3))
    smoothed = F.avg_pool1d(target[:, None], 9, stride=1, padding=4, count_include_pad=False)[:, 0]
    return {"noisy": (target + noise).clamp(-1, 1), "quieter": 0.5 * target, "low-passed": smoothed}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_loss_shapes_gradients_decoding_and_state(name, target):
    torch.manual_seed(0)
    loss = build_loss(name, RATE)
    head = (0.1 * torch.randn(2, loss.head_channels, WINDOW)).requires_grad_(True)
    value = loss(head, target)
    assert value.shape == () and math.isfinite(value.item())
    value.backward()
    assert torch.isfinite(head.grad).all() and head.grad.abs().sum() > 0
    before = [p.detach().clone() for p in loss.parameters()]
    logged = loss.extra_step(head.detach(), target)
    assert all(isinstance(v, float) and math.isfinite(v) for v in logged.values())
    # A loss with weights of its own (a discriminator) trains them in extra_step and logs it; others do neither.
    assert bool(logged) == bool(before)
    assert not any(torch.equal(b, p) for b, p in zip(before, loss.parameters()))
    decoded = loss.decode(head.detach())
    assert decoded.shape == (2, WINDOW) and torch.isfinite(decoded).all()
    # The checkpoint round trip the trainer does, into a freshly built (differently seeded) loss.
    torch.manual_seed(1)
    fresh = build_loss(name, RATE)
    fresh.load_state_dict(loss.state_dict())
    assert torch.equal(fresh.decode(head.detach()), decoded)
    assert torch.equal(fresh(head.detach(), target), loss(head.detach(), target))
    # Buffers follow .to() (a device move; "meta" stands in for a GPU here).
    if list(loss.buffers()):
        assert all(b.device.type == "meta" for b in build_loss(name, RATE).to("meta").buffers())


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_loss_is_lowest_on_the_target_and_its_head_decodes_back_to_it(name, target):
    torch.manual_seed(0)
    loss = build_loss(name, RATE)
    perfect = loss(head_for(loss, target), target).item()
    for kind, worse in degraded(target).items():
        assert loss(head_for(loss, worse), target).item() > perfect, kind
    if loss.head_kind == "waveform" and not list(loss.parameters()):
        assert perfect == pytest.approx(0.0, abs=1e-6)  # a plain distance: nothing left on identical inputs
    # Half the coarsest mu-law step (at ±1) is 0.0218; the other heads carry the waveform itself.
    tolerance = 0.022 if loss.head_kind == "mu-law logits" else 1e-5
    decoded = loss.decode(head_for(loss, target))
    assert decoded.shape == target.shape and (decoded - target).abs().max() < tolerance


def test_describe_lists_every_loss_with_its_head():
    heads = {name: head for name, _, head, _ in describe_losses()}
    assert heads["mulaw-ce"] == 256 and heads["dmol"] == 30 and heads["mse"] == 1
    assert set(heads) == set(REGISTRY)


def test_a_tiny_run_with_every_loss_trains_and_evaluates(tmp_path):
    # "other" audio gets only the metrics for every category: the fastest evaluation.
    album = write_folder(tmp_path / "album", {"other": [1.5, 1.2, 1.2]})
    losses = [*sorted(REGISTRY), "mse+0.1*bark"]
    config = load_config("tiny", {"data.path": str(album), "losses": losses, "train.budget": "3",
                                  "eval.excerpt_seconds": 1.0})
    run_dir = run_grid(config, out=tmp_path / "runs", device="cpu", log=lambda m: None)
    record = json.loads((run_dir / "run.json").read_text())
    assert {j["loss"] for j in record["jobs"].values()} == set(losses)
    assert all(j["status"] == "done" and j["steps"] == 3 for j in record["jobs"].values()), record["jobs"]
    assert "mse+0.1xbark-seed0" in record["jobs"]
    metrics = evaluate_run(run_dir, device="cpu", workers=1, log=lambda m: None)
    # Every job, and the linear baseline of the same code size that every run is measured against.
    assert set(metrics["job"]) == set(record["jobs"]) | {baseline_name(config.model.latent)}
    assert (metrics["value"].isna() == metrics["error"].notna()).all()
    assert set(metrics[metrics["job"] == "mse+0.1xbark-seed0"]["loss"]) == {"mse+0.1*bark"}
