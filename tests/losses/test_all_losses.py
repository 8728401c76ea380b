"""Every registered loss through the interface the trainer and evaluation use, and a tiny run of all.

See ``losses/base.py``.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from earshot.benchmark.config import load_config
from earshot.benchmark.evaluate.reconstruct import evaluate_run
from earshot.benchmark.train.runner import run_grid
from earshot.losses import REGISTRY, build_loss, describe_losses
from tests.helpers import RATE, write_folder

WINDOW = 2048


@pytest.fixture(scope="module")
def target() -> torch.Tensor:
    t = torch.arange(WINDOW) / RATE
    x = torch.stack([torch.sin(2 * math.pi * f * t) + 0.3 * torch.sin(2 * math.pi * 3.1 * f * t) for f in (220, 410)])
    return x / x.abs().amax(dim=1, keepdim=True)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_loss_shapes_gradients_decoding_and_state(name, target):
    torch.manual_seed(0)
    loss = build_loss(name, RATE)
    head = (0.1 * torch.randn(2, loss.head_channels, WINDOW)).requires_grad_(True)
    value = loss(head, target)
    assert value.shape == () and math.isfinite(value.item())
    value.backward()
    assert torch.isfinite(head.grad).all() and head.grad.abs().sum() > 0
    logged = loss.extra_step(head.detach(), target)
    assert all(isinstance(v, float) for v in logged.values())
    assert loss.decode(head.detach()).shape == (2, WINDOW)
    # The checkpoint round trip the trainer does, into a freshly built loss.
    torch.manual_seed(1)
    fresh = build_loss(name, RATE)
    fresh.load_state_dict(loss.state_dict())
    assert torch.equal(fresh.decode(head.detach()), loss.decode(head.detach()))
    # Buffers follow .to() (a device move; "meta" stands in for a GPU here).
    if list(loss.buffers()):
        assert all(b.device.type == "meta" for b in build_loss(name, RATE).to("meta").buffers())


def test_describe_lists_every_loss_with_its_head():
    heads = {name: head for name, _, head in describe_losses()}
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
    assert set(metrics["job"]) == set(record["jobs"])
    assert (metrics["value"].isna() == metrics["error"].notna()).all()
    assert set(metrics[metrics["job"] == "mse+0.1xbark-seed0"]["loss"]) == {"mse+0.1*bark"}
