"""Training jobs and runs: end to end, resume after kill -9, NaN handling, executors."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from tests.helpers import write_folder
from typer.testing import CliRunner

from earshot.benchmark.data.audio import load_folder
from earshot.benchmark.cli.app import app
from earshot.benchmark.config import ConfigError, load_config
from earshot.benchmark.data.windows import split_by_file
from earshot.benchmark.train.runner import _local_jobs, run_grid
from earshot.benchmark.train.loop import build_optimizer, step_function, train_job
from earshot.losses import REGISTRY, Loss
from earshot.models import build_model
from earshot.results.rundir import CHECKPOINT_FILE, DONE_FILE, FAILED_FILE, TRAIN_LOG_FILE

ROOT = Path(__file__).resolve().parents[2]


class _NaNAfterFiveSteps(Loss):
    name = "test-nan-after-5"
    description = "MSE that turns NaN at its sixth call (tests only)"

    def __init__(self, sample_rate: int) -> None:
        super().__init__(sample_rate)
        self.calls = 0

    def forward(self, head, target):
        self.calls += 1
        loss = torch.mean((head[:, 0] - target) ** 2)
        return loss * float("nan") if self.calls > 5 else loss


@pytest.fixture
def album(tmp_path):
    return write_folder(tmp_path / "album", {"speech": [2.0, 1.5, 1.5], "drums": [1.5, 1.2], "music": [1.5, 1.2]})


def _tiny(album, **overrides):
    return load_config("tiny", {"data.path": str(album), **overrides})


def _album_of(run_dir: Path) -> Path:
    return Path(yaml.safe_load((run_dir / "config.yaml").read_text())["data"]["path"])


def test_a_tiny_run_trains_every_job_and_records_the_run(album, tmp_path):
    config = _tiny(album, losses=["mse", "bark"], seeds=2)
    run_dir = run_grid(config, out=tmp_path / "runs", device="cpu", log=lambda m: None)
    record = json.loads((run_dir / "run.json").read_text())
    assert set(record["jobs"]) == {"mse-seed0", "mse-seed1", "bark-seed0", "bark-seed1"}
    assert all(j["status"] == "done" and j["steps"] == 20 for j in record["jobs"].values())
    assert not set(record["split"]["train"]) & set(record["split"]["test"])
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["packages"]["torch"] and env["device"] == "cpu"
    assert (run_dir / "config.yaml").read_text().count("budget: '20'") == 1
    log = pd.read_parquet(run_dir / "jobs" / "bark-seed0" / TRAIN_LOG_FILE)
    assert list(log["step"]) == list(range(1, 21))
    assert {"step", "epoch", "loss", "lr", "windows_per_s", "wall_s"} <= set(log.columns)
    # Two seeds give two different models; each loss learns something.
    a = torch.load(run_dir / "jobs" / "mse-seed0" / CHECKPOINT_FILE, weights_only=False)["model"]
    b = torch.load(run_dir / "jobs" / "mse-seed1" / CHECKPOINT_FILE, weights_only=False)["model"]
    assert not torch.equal(next(iter(a.values())), next(iter(b.values())))
    mse_log = pd.read_parquet(run_dir / "jobs" / "mse-seed0" / TRAIN_LOG_FILE)
    assert mse_log["loss"].iloc[-5:].mean() < mse_log["loss"].iloc[:5].mean()


def test_a_finished_job_is_never_trained_again(tiny_run_copy):
    # The session run's config again, into the folder that holds (a copy of) that run.
    config = _tiny(_album_of(tiny_run_copy), seeds=2)
    lines = []
    run_grid(config, out=tiny_run_copy.parent, device="cpu", log=lines.append)
    jobs = ("mse-seed0", "mse-seed1", "bark-seed0", "bark-seed1")
    assert sorted(lines[-4:]) == sorted(f"job {job}: already trained (20 steps)" for job in jobs)


def test_training_is_deterministic_on_cpu(tiny_run, tmp_path):
    # The session run's job mse-seed0 trained again, alone in a run of its own: the same weights.
    config = _tiny(_album_of(tiny_run), losses=["mse"])
    run_dir = run_grid(config, out=tmp_path / "b", device="cpu", log=lambda m: None)
    weights = [torch.load(run / "jobs" / "mse-seed0" / CHECKPOINT_FILE, weights_only=False)["model"]
               for run in (tiny_run, run_dir)]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_compiled_tiny_run_trains_with_a_finite_loss(album, tmp_path):
    result = runner.invoke(app, ["run", "--preset", "tiny", "--data", str(album), "--out", str(tmp_path / "r"),
                                 "--losses", "mse", "--budget", "3", "--set", "train.compile=true", "--quiet",
                                 "--no-eval"])
    assert result.exit_code == 0, result.output
    log = pd.read_parquet(next((tmp_path / "r").iterdir()) / "jobs" / "mse-seed0" / TRAIN_LOG_FILE)
    assert list(log["step"]) == [1, 2, 3] and log["loss"].map(math.isfinite).all()


def test_adam_is_fused_on_cuda_only():
    train_cfg = load_config("tiny").train
    model = torch.nn.Linear(2, 2)  # CPU parameters: torch has a CPU fused Adam too, so no CUDA is needed
    assert build_optimizer(model, train_cfg, torch.device("cuda")).param_groups[0]["fused"] is True
    assert build_optimizer(model, train_cfg, torch.device("cpu")).param_groups[0]["fused"] is None


def test_compile_mode_reaches_torch_compile_and_a_wrong_one_is_refused(album, tmp_path, monkeypatch):
    modes = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: modes.append(mode) or model)
    config = _tiny(album, losses=["mse"], **{"train.budget": "1", "train.compile": True,
                                            "train.compile_mode": "max-autotune-no-cudagraphs"})
    run_grid(config, out=tmp_path / "runs", device="cpu", log=lambda m: None)
    assert modes == ["max-autotune-no-cudagraphs"]
    with pytest.raises(ConfigError, match="train.compile_mode: Input should be 'default'"):
        _tiny(album, **{"train.compile_mode": "fast"})


def test_conv_impl_changes_the_run_id_only_when_gemm():
    plain = load_config("tiny")
    # At their defaults the fields added since are left out, so earlier runs keep their ids.
    before = plain.model_dump(mode="json", exclude={"loss_options", "model_options"})
    del before["train"]["compile_mode"], before["train"]["conv_impl"], before["model"]["name"]
    assert plain.fingerprint() == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()[:8]
    assert load_config("tiny", {"train.conv_impl": "native"}).fingerprint() == plain.fingerprint()
    assert load_config("tiny", {"train.conv_impl": "gemm"}).fingerprint() != plain.fingerprint()
    with pytest.raises(ConfigError, match=r"^train.conv_impl: Input should be 'native' or 'gemm'$"):
        load_config("tiny", {"train.conv_impl": "fast"})


def test_the_step_function_puts_the_model_in_the_configured_conv_impl():
    config = load_config("tiny", {"train.conv_impl": "gemm"})
    model = build_model(config.model, config.data.window)
    assert step_function(model, config.train) is model
    assert {layer.conv_impl for layer in [*model.encoder, *model.decoder]} == {"gemm"}


def test_a_gemm_run_trains_the_same_model_in_matrix_multiplies(album, tmp_path):
    losses = {}
    for impl in ("native", "gemm"):
        config = _tiny(album, losses=["mse"], **{"train.budget": "3", "train.conv_impl": impl})
        run_dir = run_grid(config, out=tmp_path / impl, device="cpu", log=lambda m: None)
        assert f"conv_impl: {impl}" in (run_dir / "config.yaml").read_text()
        losses[impl] = pd.read_parquet(run_dir / "jobs" / "mse-seed0" / TRAIN_LOG_FILE)["loss"]
    # Same seed, same initial weights, same first batch: the same first loss.
    assert losses["gemm"].iloc[0] == pytest.approx(losses["native"].iloc[0], rel=1e-5)
    assert losses["gemm"].map(math.isfinite).all()


KILLER = textwrap.dedent("""
    import os, sys, signal
    from pathlib import Path
    import torch
    from earshot.benchmark.data.audio import load_folder
    from earshot.benchmark.config import load_config
    from earshot.benchmark.data.windows import split_by_file
    from earshot.benchmark.train.loop import train_job

    album, job_dir, kill_at = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    config = load_config("tiny", {"data.path": album, "train.checkpoint_every": 5})
    audio = load_folder(Path(album), 11025, 2048, log=lambda m: None)
    split = split_by_file(audio, 0.25, 0)
    def die(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
    train_job(job_dir, config, "bark", 0, split.train, torch.device("cpu"), on_step=die)
""")


def test_kill_9_then_the_same_command_finishes_with_the_same_weights(album, tmp_path):
    config = load_config("tiny", {"data.path": str(album), "train.checkpoint_every": 5})
    split = split_by_file(load_folder(album, 11025, 2048, log=lambda m: None), 0.25, 0)
    train_job(tmp_path / "straight", config, "bark", 0, split.train, torch.device("cpu"))

    killed = tmp_path / "killed"
    proc = subprocess.run([sys.executable, "-c", KILLER, str(album), str(killed), "13"], cwd=ROOT,
                          capture_output=True, timeout=120)
    assert proc.returncode == -9
    assert torch.load(killed / CHECKPOINT_FILE, weights_only=False)["step"] == 10
    assert not (killed / DONE_FILE).exists()
    outcome = train_job(killed, config, "bark", 0, split.train, torch.device("cpu"))
    assert outcome.status == "done" and outcome.steps == 20

    straight = torch.load(tmp_path / "straight" / CHECKPOINT_FILE, weights_only=False)
    resumed = torch.load(killed / CHECKPOINT_FILE, weights_only=False)
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    log = pd.read_parquet(killed / TRAIN_LOG_FILE)
    assert list(log["step"]) == list(range(1, 21))
    straight_log = pd.read_parquet(tmp_path / "straight" / TRAIN_LOG_FILE)
    assert list(log["loss"]) == list(straight_log["loss"])


@pytest.fixture
def nan_loss():
    REGISTRY[_NaNAfterFiveSteps.name] = _NaNAfterFiveSteps
    yield _NaNAfterFiveSteps.name
    del REGISTRY[_NaNAfterFiveSteps.name]


def test_a_nan_loss_fails_that_job_keeps_its_checkpoint_and_the_others_go_on(album, tmp_path, nan_loss):
    config = _tiny(album, losses=["test-nan-after-5", "mse"], **{"train.checkpoint_every": 2})
    lines = []
    run_dir = run_grid(config, out=tmp_path / "runs", device="cpu", log=lines.append)
    record = json.loads((run_dir / "run.json").read_text())
    failed = record["jobs"]["test-nan-after-5-seed0"]
    assert failed["status"] == "failed" and "nan" in failed["message"].lower()
    assert record["jobs"]["mse-seed0"]["status"] == "done"
    job_dir = run_dir / "jobs" / "test-nan-after-5-seed0"
    state = torch.load(job_dir / CHECKPOINT_FILE, weights_only=False)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert (job_dir / FAILED_FILE).exists() and not (job_dir / DONE_FILE).exists()
    assert any("FAILED" in line for line in lines)


def test_budgets_in_epochs_and_minutes(album, tmp_path):
    config = _tiny(album, losses=["mse"], **{"train.budget": "2e", "data.windows_per_epoch": 12})
    run_dir = run_grid(config, out=tmp_path / "e", device="cpu", log=lambda m: None)
    log = pd.read_parquet(run_dir / "jobs" / "mse-seed0" / TRAIN_LOG_FILE)
    assert log["step"].max() == 6 and list(log["epoch"].unique()) == [1, 2]
    # Minutes: the steps the calibration gave (tests/benchmark/test_budget.py checks the count).
    config = _tiny(album, losses=["mse"], **{"train.budget": "0.02m"})
    run_dir = run_grid(config, out=tmp_path / "m", device="cpu", log=lambda m: None)
    log = pd.read_parquet(run_dir / "jobs" / "mse-seed0" / TRAIN_LOG_FILE)
    steps = json.loads((run_dir / "run.json").read_text())["calibration"]["steps"]
    assert log["step"].max() == steps >= 1


runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["--losses", "mse,nope"], "unknown loss 'nope'"),
    (["--preset", "huge"], "unknown preset 'huge'"),
    (["--set", "train.lrr=1"], "train.lrr: unknown key"),
    (["--set", "train.batch=zero"], "train.batch"),
    (["--budget", "soon"], "budget 'soon'"),
    (["--executor", "slurm"], "--executor 'slurm'"),
    (["--pack", "many"], "--pack 'many': expected auto, off or a number"),
])
def test_mistaken_commands_fail_before_training_with_one_line(album, tmp_path, args, message):
    result = runner.invoke(app, ["run", "--preset", "tiny", "--data", str(album), "--out", str(tmp_path / "r"),
                                 "--quiet", *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob(CHECKPOINT_FILE))


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_cuda_is_refused(album, tmp_path):
    result = runner.invoke(app, ["run", "--preset", "tiny", "--data", str(album), "--device", "cuda",
                                 "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "no CUDA device" in result.output


def test_unwritable_output_directory_is_refused(album, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = runner.invoke(app, ["run", "--preset", "tiny", "--data", str(album), "--out", str(blocker / "runs")])
    assert result.exit_code == 2 and "not writable" in result.output


def test_an_existing_run_id_with_another_config_needs_resume(album, tmp_path):
    base = ["run", "--preset", "tiny", "--data", str(album), "--out", str(tmp_path / "r"), "--run-id", "mine",
            "--losses", "mse", "--quiet"]
    assert runner.invoke(app, base).exit_code == 0
    changed = runner.invoke(app, [*base, "--set", "train.lr=0.01"])
    assert changed.exit_code == 2 and "train.lr" in changed.output and "--resume" in changed.output
    resumed = runner.invoke(app, [*base, "--set", "train.lr=0.01", "--resume"])
    assert resumed.exit_code == 0 and "already trained" in resumed.output
    missing = runner.invoke(app, [*base[:-3], "--run-id", "other", "--resume"])
    assert missing.exit_code == 2 and "no run other" in missing.output


def test_with_several_gpus_each_job_takes_a_free_gpu_and_no_gpu_runs_two(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    # Job 0 is long: with GPUs fixed up front (job i on GPU i % 3), job 3 would start on
    # GPU 0 while job 0 still runs there, and GPU 1 or 2 would idle.
    seconds = {f"job{i}": s for i, s in enumerate([0.6, 0.05, 0.1, 0.05, 0.15, 0.05, 0.1])}
    runs, lock = [], threading.Lock()

    def fake_train_one(job, loss, seed, device):
        start = time.monotonic()
        time.sleep(seconds[job])
        with lock:
            runs.append((str(device), job, start, time.monotonic()))
        return {"job": job, "status": "done", "steps": 1, "seconds": seconds[job], "message": ""}

    jobs = [(job, "mse", 0) for job in seconds]
    outcomes = _local_jobs(jobs, torch.device("cuda"), fake_train_one, lambda m: None)

    assert [o["job"] for o in outcomes] == list(seconds)
    assert sorted(job for _, job, _, _ in runs) == sorted(seconds)
    assert {device for device, *_ in runs} == {"cuda:0", "cuda:1", "cuda:2"}
    for device in ("cuda:0", "cuda:1", "cuda:2"):
        spans = sorted((start, end) for d, _, start, end in runs if d == device)
        assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), device


@pytest.mark.ray
def test_the_ray_executor_gives_the_same_run_directory(album, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    config = _tiny(album, losses=["mse", "bark"])
    local = run_grid(config, out=tmp_path / "local", device="cpu", log=lambda m: None)
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        remote = run_grid(config, out=tmp_path / "ray", device="cpu", executor="ray", log=lambda m: None)
    finally:
        ray.shutdown()
    record = json.loads((remote / "run.json").read_text())
    assert {j["status"] for j in record["jobs"].values()} == {"done"}
    assert sorted(p.name for p in (remote / "jobs").iterdir()) == sorted(p.name for p in (local / "jobs").iterdir())
    # Ray tasks run torch with one thread, so sums run in another order: MSE's weights agree
    # to float noise; the bark loss's log amplifies that noise, so its losses agree loosely.
    a = torch.load(local / "jobs" / "mse-seed0" / CHECKPOINT_FILE, weights_only=False)["model"]
    b = torch.load(remote / "jobs" / "mse-seed0" / CHECKPOINT_FILE, weights_only=False)["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
    local_log = pd.read_parquet(local / "jobs" / "bark-seed0" / TRAIN_LOG_FILE)
    ray_log = pd.read_parquet(remote / "jobs" / "bark-seed0" / TRAIN_LOG_FILE)
    assert list(local_log["step"]) == list(ray_log["step"])
    assert abs(local_log["loss"].iloc[-1] - ray_log["loss"].iloc[-1]) < 0.05 * abs(local_log["loss"].iloc[-1])
