"""The training step: one function, which training runs and ``earshot bench`` times."""

from __future__ import annotations

import pytest
import torch
from tests.helpers import write_folder

from earshot.benchmark.bench import bench_training
from earshot.benchmark.config import load_config
from earshot.benchmark.data.audio import load_folder
from earshot.benchmark.train.loop import TrainStep, build_optimizer, train_job
from earshot.losses import build_loss
from earshot.models import build_model


@pytest.fixture
def tiny(tmp_path):
    album = write_folder(tmp_path / "album", {"speech": [1.5], "music": [1.2]})
    return load_config("tiny", {"data.path": str(album), "train.budget": "3"}), album


def test_bench_and_training_run_the_same_step(tiny, tmp_path, monkeypatch):
    config, album = tiny
    callers = []
    original = TrainStep.__call__

    def spy(self, sample, before_update=None):
        callers.append("train" if before_update is not None else "bench")
        return original(self, sample, before_update)

    monkeypatch.setattr(TrainStep, "__call__", spy)
    files = load_folder(album, config.data.sample_rate, config.data.window, log=lambda m: None).files
    outcome = train_job(tmp_path / "job", config, "mse", 0, files, torch.device("cpu"))
    assert outcome.status == "done" and callers == ["train"] * 3
    callers.clear()
    result = bench_training(config, device="cpu", losses=["mse"], steps=2, warmup=1, rounds=2, log=lambda m: None)
    assert callers == ["bench"] * (1 + 2 * 2)  # warm-up, then rounds × steps
    assert result["losses"]["mse"]["step_ms"] > 0


def _parts(config):
    loss = build_loss("mse", sample_rate=config.data.sample_rate)
    model = build_model(config.model, config.data.window, loss.head_channels)
    return model, TrainStep(model, loss, build_optimizer(model, config.train, torch.device("cpu")), config.train,
                            torch.device("cpu"))


def test_a_refused_update_leaves_the_parameters_and_a_step_updates_them(tiny):
    config, _ = tiny
    model, step = _parts(config)
    batch = torch.randn(config.train.batch, config.data.window) * 0.1
    sizes, seen = [], []

    def sample(size):
        sizes.append(size)
        return batch

    before = [p.detach().clone() for p in model.parameters()]
    assert step(sample, before_update=lambda loss: seen.append(loss.item()) or False) is None
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is not None for p in model.parameters())  # backward ran; only the update was refused
    loss, extra = step(sample)
    assert sizes == [config.train.batch] * 2 and seen and loss.item() == pytest.approx(seen[0])
    assert extra == {}
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
