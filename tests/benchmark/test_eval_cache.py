"""The evaluation cache: a re-evaluation redoes only what is new or changed, proved by counting
model loads and metric computations (never by timing)."""

from __future__ import annotations

import collections
import dataclasses
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

import earshot.benchmark.evaluate.metrics as metrics_package
import earshot.benchmark.evaluate.reconstruct as reconstruct_module
from earshot.benchmark.cli.app import app
from earshot.benchmark.evaluate.metrics import METRICS
from earshot.benchmark.evaluate.reconstruct import evaluate_run
from earshot.results.rundir import RunDir

QUIET = {"device": "cpu", "workers": 1, "log": lambda m: None}


@dataclasses.dataclass
class Counts:
    loads: list[str]  # the jobs whose model was loaded, in order
    metrics: collections.Counter  # metric name → computations
    by_job: collections.Counter  # job → metric computations

    @property
    def computed(self) -> int:
        return sum(self.metrics.values())


@pytest.fixture
def counted(monkeypatch) -> Counts:
    """Evaluation with its metrics in this process (a thread, not a spawned pool, so that the
    counters see them), counting every model load and every metric computation."""
    counts = Counts([], collections.Counter(), collections.Counter())
    real_load, real_compute = reconstruct_module.load_trained, metrics_package.compute_metric

    def load(job_dir, device):
        counts.loads.append(Path(job_dir).name)
        return real_load(job_dir, device)

    def compute(name, reference, degraded, sample_rate):
        counts.metrics[name] += 1
        return real_compute(name, reference, degraded, sample_rate)

    real_task = reconstruct_module._metrics_task

    def task(job, *args):
        before = counts.computed
        rows = real_task(job, *args)
        counts.by_job[job] += counts.computed - before
        return rows

    monkeypatch.setattr(reconstruct_module, "load_trained", load)
    monkeypatch.setattr(metrics_package, "compute_metric", compute)
    monkeypatch.setattr(reconstruct_module, "_metrics_task", task)
    monkeypatch.setattr(reconstruct_module, "metric_pool", lambda workers, *where: ThreadPoolExecutor(1))
    return counts


@pytest.fixture
def fake_metrics(counted, monkeypatch) -> Counts:
    """``counted``, with every metric a constant 1.0: for tests about what is redone, not its values."""
    def compute(name, reference, degraded, sample_rate):
        counted.metrics[name] += 1
        return 1.0, None

    monkeypatch.setattr(metrics_package, "compute_metric", compute)
    return counted


def _stored(run_dir: Path) -> pd.DataFrame:
    return RunDir(run_dir).read_metrics()


def test_a_second_evaluation_loads_no_model_and_computes_no_metric(tiny_run, tiny_run_copy, counted):
    frame = evaluate_run(tiny_run_copy, **QUIET)
    assert counted.loads == [] and counted.computed == 0
    # The table is the one the full evaluation wrote, row for row.
    pd.testing.assert_frame_equal(frame, _stored(tiny_run))
    pd.testing.assert_frame_equal(_stored(tiny_run_copy), _stored(tiny_run))


def test_a_bumped_metric_version_recomputes_that_metric_alone_from_the_stored_wavs(
        tiny_run, tiny_run_copy, counted, monkeypatch):
    monkeypatch.setitem(METRICS, "snr", dataclasses.replace(METRICS["snr"], version=METRICS["snr"].version + 1))
    frame = evaluate_run(tiny_run_copy, **QUIET)
    original = _stored(tiny_run)
    assert counted.loads == []
    assert dict(counted.metrics) == {"snr": int((original["metric"] == "snr").sum())}
    # Measured again from the wavs a listener hears, the values are the ones measured at reconstruction.
    pd.testing.assert_frame_equal(frame, original)
    # And the new version is remembered: a third evaluation computes nothing.
    evaluate_run(tiny_run_copy, **QUIET)
    assert counted.metrics["snr"] == int((original["metric"] == "snr").sum())


def test_a_new_job_is_evaluated_alone(tiny_run, tiny_run_copy, counted):
    run = RunDir(tiny_run_copy)
    done = run.job("bark-seed1").done_file
    record = done.read_text()
    done.unlink()  # as if bark-seed1 were still training
    without = evaluate_run(tiny_run_copy, **QUIET)
    assert "bark-seed1" not in set(without["job"]) and counted.loads == [] and counted.computed == 0
    done.write_text(record)  # it finishes
    frame = evaluate_run(tiny_run_copy, **QUIET)
    original = _stored(tiny_run)
    assert counted.loads == ["bark-seed1"]
    assert dict(counted.by_job) == {"bark-seed1": int((original["job"] == "bark-seed1").sum())}
    pd.testing.assert_frame_equal(frame, original)


def test_a_retrained_checkpoint_is_reconstructed_and_measured_again(tiny_run_copy, fake_metrics):
    checkpoint = RunDir(tiny_run_copy).job("mse-seed0").checkpoint
    state = torch.load(checkpoint, weights_only=False)
    first = next(iter(state["model"]))
    state["model"][first] = state["model"][first] * 1.01
    torch.save(state, checkpoint)
    before = _stored(tiny_run_copy)
    frame = evaluate_run(tiny_run_copy, **QUIET)
    assert fake_metrics.loads == ["mse-seed0"]
    assert dict(fake_metrics.by_job) == {"mse-seed0": int((before["job"] == "mse-seed0").sum())}
    others = frame["job"] != "mse-seed0"
    pd.testing.assert_frame_equal(frame[others], before[others])
    assert (frame.loc[~others, "value"] == 1.0).all()


def test_force_redoes_everything(tiny_run_copy, fake_metrics):
    rows = len(_stored(tiny_run_copy))
    frame = evaluate_run(tiny_run_copy, force=True, **QUIET)
    assert sorted(fake_metrics.loads) == ["bark-seed0", "bark-seed1", "mse-seed0", "mse-seed1"]
    assert fake_metrics.computed == rows == len(frame)


def test_edited_held_out_audio_redoes_everything(tiny_run_copy, tmp_path, fake_metrics):
    run = RunDir(tiny_run_copy)
    old_album = run.read_config()["data"]["path"]
    album = Path(shutil.copytree(old_album, tmp_path / "album"))
    run.write_config(run.config_file.read_text().replace(old_album, str(album)))
    evaluate_run(tiny_run_copy, **QUIET)  # a new data path: everything once
    fake_metrics.loads.clear()
    evaluate_run(tiny_run_copy, **QUIET)
    assert fake_metrics.loads == []
    # The same path and settings, but a held-out file's samples changed.
    held_out = album / run.read_excerpts()[0]["source"]
    audio, rate = sf.read(held_out, dtype="float32")
    sf.write(held_out, 0.5 * audio, rate)
    evaluate_run(tiny_run_copy, **QUIET)
    assert sorted(fake_metrics.loads) == ["bark-seed0", "bark-seed1", "mse-seed0", "mse-seed1"]


def test_earshot_run_on_a_finished_evaluated_run_trains_and_evaluates_nothing(tiny_run_copy, counted):
    config = RunDir(tiny_run_copy).read_config()
    result = CliRunner().invoke(app, ["run", "--preset", "tiny", "--data", config["data"]["path"], "--seeds", "2",
                                      "--out", str(tiny_run_copy.parent), "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.count("already trained") == 4
    assert counted.loads == [] and counted.computed == 0
    assert "metrics unchanged since the last evaluation" in result.output


def test_eval_force_on_the_command_line(tiny_run_copy, fake_metrics):
    result = CliRunner().invoke(app, ["eval", str(tiny_run_copy), "--device", "cpu", "--workers", "1", "--force"])
    assert result.exit_code == 0, result.output
    assert len(fake_metrics.loads) == 4 and fake_metrics.computed == len(_stored(tiny_run_copy))
