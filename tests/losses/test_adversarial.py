"""Tests of the adversarial loss: its discriminator step, warm-up, and resume through state_dict.

See ``losses/adversarial.py``.
"""

from __future__ import annotations

import io

import pytest
import torch

from earshot.benchmark.data.audio import load_folder
from earshot.benchmark.config import load_config
from earshot.benchmark.data.windows import split_by_file
from earshot.benchmark.train.loop import train_job
from earshot.losses import build_loss
from earshot.losses.adversarial import AdversarialLoss
from earshot.results.rundir import CHECKPOINT_FILE
from tests.helpers import RATE, write_folder

WINDOW = 2048
# Narrow discriminators, both kinds, so the tests run in seconds.
SMALL = dict(channels=4, max_channels=16, scales=2, periods=[2, 3], period_channels=[4, 8])


def batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(head, target) of one step, a function of the step only."""
    gen = torch.Generator().manual_seed(step)
    target = torch.rand(2, WINDOW, generator=gen) * 2 - 1
    return (0.5 * target + 0.1 * torch.randn(2, WINDOW, generator=gen))[:, None], target


def train(loss: AdversarialLoss, steps: range) -> list[dict]:
    """The trainer's calls: generator loss and backward, then extra_step."""
    logs = []
    for step in steps:
        head, target = batch(step)
        head.requires_grad_(True)
        loss(head, target).backward()
        assert torch.isfinite(head.grad).all()
        assert all(p.grad is None for p in loss.discriminators.parameters())  # the generator step leaves D alone
        logs.append(loss.extra_step(head.detach(), target))
    return logs


def discriminator_weights(loss: AdversarialLoss) -> list[torch.Tensor]:
    return [p.detach().clone() for p in loss.discriminators.parameters()]


@pytest.mark.parametrize("objective", ["lsgan", "hinge"])
def test_resume_from_state_dict_gives_the_uninterrupted_discriminator(objective):
    torch.manual_seed(0)
    straight = AdversarialLoss(RATE, objective=objective, warmup_steps=2, **SMALL)
    torch.manual_seed(0)
    interrupted = AdversarialLoss(RATE, objective=objective, warmup_steps=2, **SMALL)
    train(straight, range(6))
    train(interrupted, range(4))
    saved = io.BytesIO()
    torch.save(interrupted.state_dict(), saved)
    del interrupted
    torch.manual_seed(123)  # a fresh process would initialise other weights
    resumed = AdversarialLoss(RATE, objective=objective, warmup_steps=2, **SMALL)
    saved.seek(0)
    resumed.load_state_dict(torch.load(saved, weights_only=False))
    assert resumed.steps == 4
    train(resumed, range(4, 6))
    for a, b in zip(discriminator_weights(straight), discriminator_weights(resumed)):
        assert torch.equal(a, b)
    assert resumed.optimizer.state_dict()["state"][0]["step"] == 4  # steps 3..6 after a 2-step warm-up


def test_warm_up_uses_the_reconstruction_alone_and_leaves_the_discriminators_untouched():
    torch.manual_seed(0)
    loss = AdversarialLoss(RATE, warmup_steps=3, recon="mse", recon_weight=1.0, **SMALL)
    before = discriminator_weights(loss)
    head, target = batch(0)
    assert torch.allclose(loss(head, target), torch.mean((head[:, 0] - target) ** 2))
    logs = train(loss, range(3))
    assert logs == [{}, {}, {}]
    assert all(torch.equal(a, b) for a, b in zip(before, discriminator_weights(loss)))
    after_warmup = loss(head, target)
    assert after_warmup > torch.mean((head[:, 0] - target) ** 2)  # adversarial and feature terms now count
    (log,) = train(loss, range(3, 4))
    assert set(log) == {"d_loss"} and log["d_loss"] > 0
    assert not all(torch.equal(a, b) for a, b in zip(before, discriminator_weights(loss)))


def test_options_and_one_line_errors():
    loss = build_loss("adversarial", RATE, {"adversarial": {"periods": [2, 3, 5, 7, 11], "betas": [0.5, 0.9],
                                                             "objective": "hinge"}})
    assert len(loss.discriminators.periods) == 5 and loss.optimizer.defaults["betas"] == (0.5, 0.9)
    with pytest.raises(ValueError, match="objective must be"):
        build_loss("adversarial", RATE, {"adversarial": {"objective": "wasserstein"}})
    with pytest.raises(ValueError, match="at least one discriminator"):
        build_loss("adversarial", RATE, {"adversarial": {"scales": 0}})


def test_a_training_job_killed_midway_resumes_to_the_same_discriminator(tmp_path):
    album = write_folder(tmp_path / "album", {"speech": [1.5, 1.2], "music": [1.2]})
    config = load_config("tiny", {"data.path": str(album), "train.budget": "8", "train.checkpoint_every": 5,
                                  "loss_options": {"adversarial": {"warmup_steps": 2, **SMALL}}})
    files = split_by_file(load_folder(album, RATE, config.data.window, log=lambda m: None), 0.25, 0).train

    class Killed(Exception):
        pass

    def kill_at_7(step: int) -> None:
        if step == 7:
            raise Killed

    device = torch.device("cpu")
    train_job(tmp_path / "straight", config, "adversarial", 0, files, device)
    with pytest.raises(Killed):
        train_job(tmp_path / "resumed", config, "adversarial", 0, files, device, on_step=kill_at_7)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT_FILE, weights_only=False)["step"] == 5
    train_job(tmp_path / "resumed", config, "adversarial", 0, files, device)
    a = torch.load(tmp_path / "straight" / CHECKPOINT_FILE, weights_only=False)
    b = torch.load(tmp_path / "resumed" / CHECKPOINT_FILE, weights_only=False)
    assert a["step"] == b["step"] == 8
    assert a["loss"].keys() == b["loss"].keys() and "_extra_state" in a["loss"]
    for key, value in a["loss"].items():
        if isinstance(value, torch.Tensor):
            assert torch.equal(value, b["loss"][key]), key
    assert a["loss"]["_extra_state"]["steps"] == b["loss"]["_extra_state"]["steps"] == 8
