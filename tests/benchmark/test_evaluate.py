"""Reconstruction by overlap-add, excerpt selection, and a tiny run's metrics.parquet."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from earshot.benchmark.data.audio import AudioFile
from earshot.benchmark.cli.app import app
from earshot.benchmark.evaluate.metrics import metric_catalog
from earshot.benchmark.evaluate.reconstruct import METRIC_COLUMNS, evaluate_run, reconstruct, select_excerpts
from earshot.losses import build_loss
from earshot.results.rundir import write_wav
from tests.helpers import RATE, copy_trained, tone_mix, write_folder


class _Identity(torch.nn.Module):
    def forward(self, x):
        return x.unsqueeze(1)


class _Halve(torch.nn.Module):
    def forward(self, x):
        return 0.5 * x.unsqueeze(1)


@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("n", [2048, 5000, 20_000])
def test_a_perfect_model_reconstructs_the_signal_exactly(normalize, n):
    audio = tone_mix(n / RATE)[:n]
    out = reconstruct(_Identity(), build_loss("mse", RATE), audio, 2048, normalize, 7, torch.device("cpu"))
    assert out.shape == audio.shape
    np.testing.assert_allclose(out, audio, atol=1e-5)


def test_each_window_scale_is_restored():
    # A model that halves its (normalised) input halves the signal, whatever each window's peak.
    audio = tone_mix(2.0) * np.linspace(0.05, 1.0, int(2.0 * RATE), dtype=np.float32)
    out = reconstruct(_Halve(), build_loss("mse", RATE), audio, 2048, True, 16, torch.device("cpu"))
    np.testing.assert_allclose(out, 0.5 * audio, atol=1e-5)


def _file(relative, category, audio):
    return AudioFile(path=None, relative=relative, category=category, audio=audio)


def test_excerpts_are_deterministic_per_category_and_skip_silence():
    loud = tone_mix(5.0)
    quiet = np.concatenate([np.zeros(2 * RATE, np.float32), tone_mix(3.0)])
    files = [_file("speech/b.wav", "speech", loud), _file("speech/a.wav", "speech", quiet),
             _file("drums/x.wav", "drums", tone_mix(1.0))]
    excerpts = select_excerpts(files, 2.0, 3, RATE)
    speech = [e for e in excerpts if e.category == "speech"]
    assert [e.item for e in speech] == ["speech-01", "speech-02", "speech-03"]
    # Round-robin over files sorted by path; a's first two seconds are silent and passed over.
    assert [(e.source, e.start) for e in speech] == [("speech/a.wav", 2 * RATE), ("speech/b.wav", 0),
                                                    ("speech/b.wav", 2 * RATE)]
    drums = [e for e in excerpts if e.category == "drums"]
    assert len(drums) == 1 and drums[0].samples == RATE  # shorter than an excerpt: all of it
    assert select_excerpts(files, 2.0, 3, RATE) == excerpts


def test_wav_writing_clips_and_quantises_what_the_listener_hears(tmp_path):
    heard = write_wav(tmp_path / "x.wav", np.array([0.5, 1.5, -2.0, np.nan], np.float32), RATE)
    data, rate = sf.read(tmp_path / "x.wav", dtype="float32")
    assert rate == RATE and sf.info(tmp_path / "x.wav").subtype == "PCM_16"
    np.testing.assert_array_equal(data, heard)
    assert heard[1] < 1.0 and heard[2] == -1.0 and heard[3] == 0.0


@pytest.fixture(scope="module")
def two_worker_evaluation(tiny_run, tmp_path_factory):
    """The session's run as training left it, copied and evaluated afresh by two metric workers
    (the session's was one): the copy's directory and the table evaluate_run returned."""
    run_dir = copy_trained(tiny_run, tmp_path_factory.mktemp("eval") / "runs" / tiny_run.name)
    return run_dir, evaluate_run(run_dir, device="cpu", workers=2, log=lambda m: None)


def test_a_tiny_run_gives_a_tidy_metrics_table(two_worker_evaluation):
    run_dir, metrics = two_worker_evaluation
    assert list(metrics.columns) == METRIC_COLUMNS
    stored = pd.read_parquet(run_dir / "metrics.parquet")
    pd.testing.assert_frame_equal(stored, metrics)
    # The trained jobs and the linear baseline (PCA with as many components as the code).
    assert set(metrics["job"]) == {"mse-seed0", "mse-seed1", "bark-seed0", "bark-seed1", "pca-16"}
    assert set(metrics["category"]) == {"speech", "drums", "music"}
    # Every value is a number or NaN with a reason, never both, never neither.
    assert (metrics["value"].isna() == metrics["error"].notna()).all()
    speech = metrics[metrics["category"] == "speech"]
    assert {"pesq_wb", "stoi", "hf_energy_ratio_db_2k", "error_flatness"} <= set(speech["metric"])
    assert "pesq_wb" not in set(metrics[metrics["category"] == "drums"]["metric"])
    excerpts = json.loads((run_dir / "excerpts.json").read_text())
    names = sorted(p.name for p in (run_dir / "reference").iterdir())
    assert names == sorted(f"{e['item']}.wav" for e in excerpts)
    for job in ("mse-seed0", "bark-seed1", "pca-16"):
        assert sorted(p.name for p in (run_dir / "recon" / job).iterdir()) == names
    # What results needs to know about each metric travels with the metrics, in table order.
    info = json.loads((run_dir / "metrics_info.json").read_text())
    assert list(info) == list(metric_catalog()) and set(metrics["metric"]) <= set(info)
    assert info["si_sdr"]["higher_is_better"] is True and info["lsd"]["unit"] == "dB"
    assert info["hf_energy_ratio_db_2k"]["ideal"] == 0.0 and info["pesq_wb"]["categories"] == ["mix", "speech"]
    assert json.loads((run_dir / "run.json").read_text())["layout"] == 2


def test_evaluation_is_deterministic(tiny_run, two_worker_evaluation):
    a = pd.read_parquet(tiny_run / "metrics.parquet")  # one worker, when the session's run was built
    b = two_worker_evaluation[1]
    pd.testing.assert_frame_equal(a, b)


def test_eval_on_other_audio_and_the_cli(tiny_run_copy, tmp_path):
    run_dir = tiny_run_copy
    other = write_folder(tmp_path / "other album", {"speech": [2.5]})
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--data", str(other), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "declared hypotheses" in result.output and "hf_energy_ratio_db_2k" in result.output

    metrics = pd.read_parquet(run_dir / "eval-other album" / "metrics.parquet")
    assert set(metrics["item"]) == {"speech-01"}
    bad = CliRunner().invoke(app, ["eval", str(tmp_path)])
    assert bad.exit_code == 2 and "not a run directory" in bad.output
