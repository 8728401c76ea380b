"""Equal training: a minutes budget becomes one step count for every job, from a timed calibration."""

from __future__ import annotations

import json

import pytest
import torch
from tests.helpers import write_folder

from earshot.benchmark.config import load_config
from earshot.benchmark.data.audio import load_folder
from earshot.benchmark.data.windows import split_by_file
from earshot.benchmark.train import loop, runner
from earshot.benchmark.train.loop import budget_steps, seconds_per_step
from earshot.benchmark.train.runner import run_grid

# Seconds per step the calibration "measures" here, so the chosen count is exact on a busy machine.
PER_STEP = {"mse": 0.005, "bark": 0.05}


@pytest.fixture
def album(tmp_path):
    return write_folder(tmp_path / "album", {"speech": [2.0, 1.5, 1.5], "drums": [1.5, 1.2], "music": [1.5, 1.2]})


@pytest.fixture
def timed(monkeypatch):
    monkeypatch.setattr(loop, "seconds_per_step", lambda config, loss, files, device: PER_STEP[loss])


def _record(run_dir):
    return json.loads((run_dir / "run.json").read_text())


def test_a_minutes_budget_gives_every_job_the_slowest_losss_steps(album, tmp_path, timed):
    config = load_config("tiny", {"data.path": str(album), "losses": ["mse", "bark"], "seeds": 2,
                                  "train.budget": "0.01m"})
    lines = []
    run_dir = run_grid(config, out=tmp_path / "runs", device="cpu", log=lines.append)
    record = _record(run_dir)
    calibration = record["calibration"]
    assert calibration["seconds_per_step"] == PER_STEP and calibration["slowest"] == "bark"
    assert calibration["steps"] == 12 and calibration["budget_minutes"] == 0.01  # 0.6 s / 0.05 s
    assert {job: j["steps"] for job, j in record["jobs"].items()} == {
        "mse-seed0": 12, "mse-seed1": 12, "bark-seed0": 12, "bark-seed1": 12}
    assert all(j["seconds"] > 0 for j in record["jobs"].values())  # each job's own wall time
    assert any("every job trains 12 steps" in line and "bark" in line for line in lines)


def test_a_rerun_or_resumed_run_keeps_its_recorded_step_count(album, tmp_path, timed, monkeypatch):
    config = load_config("tiny", {"data.path": str(album), "losses": ["mse", "bark"], "train.budget": "0.01m"})
    run_dir = run_grid(config, out=tmp_path / "runs", device="cpu", log=lambda m: None)
    for path in sorted((run_dir / "jobs" / "bark-seed0").iterdir()):
        path.unlink()  # bark is trained again, mse is kept

    def no_calibration(*args, **kwargs):
        raise AssertionError("a run with a recorded calibration was calibrated again")

    monkeypatch.setattr(runner, "calibrate", no_calibration)
    lines = []
    run_grid(config, out=tmp_path / "runs", device="cpu", log=lines.append)
    assert {job: j["steps"] for job, j in _record(run_dir)["jobs"].items()} == {"mse-seed0": 12, "bark-seed0": 12}
    assert "job mse-seed0: already trained (12 steps)" in lines


def test_a_steps_or_epochs_budget_needs_no_calibration(album, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "calibrate", lambda *a, **k: pytest.fail("calibrated a steps budget"))
    config = load_config("tiny", {"data.path": str(album), "losses": ["mse"], "train.budget": "3"})
    run_dir = run_grid(config, out=tmp_path / "runs", device="cpu", log=lambda m: None)
    assert "calibration" not in _record(run_dir) and _record(run_dir)["jobs"]["mse-seed0"]["steps"] == 3


def test_a_minutes_budget_without_a_calibrated_count_is_refused():
    config = load_config("tiny", {"train.budget": "2m"})
    with pytest.raises(ValueError, match="calibrated step count"):
        budget_steps(config)
    assert budget_steps(config, 40) == 40
    assert budget_steps(load_config("tiny", {"train.budget": "7"}), 40) == 7


def test_calibration_times_the_training_step(album):
    config = load_config("tiny", {"data.path": str(album)})
    split = split_by_file(load_folder(album, config.data.sample_rate, config.data.window, log=lambda m: None), 0.3, 0)
    seconds = seconds_per_step(config, "mse", split.train, torch.device("cpu"), warmup=1, steps=2)
    assert 0 < seconds < 30
