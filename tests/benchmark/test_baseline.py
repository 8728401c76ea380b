"""The linear baseline: PCA with as many components as the code, measured like a job."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from earshot.benchmark.config import config_from_dict
from earshot.benchmark.data.audio import AudioFile
from earshot.benchmark.evaluate import baseline as baseline_module
from earshot.benchmark.evaluate.baseline import (LinearBaseline, baseline_key, baseline_name, fit_pca,
                                                 held_out_objective, held_out_windows, top_eigenvectors)
from earshot.benchmark.evaluate.reconstruct import reconstruct
from earshot.results.rundir import RunDir
from tests.helpers import RATE

TONES = (220.0, 330.0, 550.0, 770.0)  # each sinusoid's windows span 2 dimensions: 8 in all


def tones(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.2 * sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in TONES)).astype(np.float32)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / np.sum((reference - estimate) ** 2)))


def test_pca_reconstructs_a_signal_in_its_span_almost_perfectly():
    window = 256
    train = [AudioFile(Path("a.wav"), "music/a.wav", "music", tones(2.0, seed=0))]
    pca = fit_pca(train, window, components=16, windows=2000)
    held_out = tones(1.0, seed=1)  # the same tones at other phases: every window lies in the fitted span
    recon = reconstruct(pca, pca, held_out, window, normalize=True, batch=64, device=torch.device("cpu"))
    inner = slice(window, held_out.size - window)  # the edges' windows are half zero padding, outside the span
    assert snr_db(held_out[inner], recon[inner]) > 40


def test_pca_is_the_best_linear_code_not_just_any():
    """Fewer components than the signal's dimensions lose energy: the fit is a projection, not an identity."""
    train = [AudioFile(Path("a.wav"), "music/a.wav", "music", tones(2.0, seed=0))]
    pca = fit_pca(train, 256, components=2, windows=2000)
    held_out = tones(1.0, seed=1)
    recon = reconstruct(pca, pca, held_out, 256, normalize=True, batch=64, device=torch.device("cpu"))
    assert snr_db(held_out[256:-256], recon[256:-256]) < 10
    basis = pca.basis.double()
    assert torch.allclose(basis @ basis.T, torch.eye(2, dtype=torch.float64), atol=1e-5)


def test_subspace_iteration_captures_what_a_full_eigendecomposition_does():
    generator = torch.Generator().manual_seed(0)
    spectrum = torch.logspace(0, -6, 300, dtype=torch.float64)  # a fast-decaying spectrum, as audio windows have
    q = torch.linalg.qr(torch.randn(300, 300, generator=generator, dtype=torch.float64)).Q
    covariance = q @ torch.diag(spectrum) @ q.T
    fast = top_eigenvectors(covariance, 12)
    exact = torch.linalg.eigh(covariance).eigenvectors[:, -12:].T
    captured = lambda basis: torch.trace(basis @ covariance @ basis.T) / torch.trace(covariance)  # noqa: E731
    assert float(captured(fast)) == pytest.approx(float(captured(exact)), rel=1e-6)


def test_the_baseline_is_a_system_of_the_run(tiny_run):
    """recon/pca-16/, metrics rows (job and loss pca-16, seed 0) on every item, the fit kept, adequacy.json."""
    run = RunDir(tiny_run)
    config = config_from_dict(run.read_config())
    name = baseline_name(config.model.latent)
    assert name == "pca-16"
    metrics = run.read_metrics()
    rows = metrics[metrics["job"] == name]
    assert set(rows["loss"]) == {name} and set(rows["seed"]) == {0}
    assert set(rows["item"]) == set(metrics.loc[metrics["job"] == "mse-seed0", "item"])
    assert set(rows["metric"]) == set(metrics.loc[metrics["job"] == "mse-seed0", "metric"])
    assert all(run.recon_wav(name, e["item"]).is_file() for e in run.read_excerpts())
    assert run.read_baseline(name)["key"] == baseline_key(config)
    record = run.read_adequacy()
    assert record["baseline"]["name"] == name and record["baseline"]["components"] == 16
    assert set(record["jobs"]) == {job.name for job in run.finished_jobs()}
    for job, entry in record["jobs"].items():
        assert entry["head"] == "waveform" and entry["windows"] > 0
        assert entry["model"] > 0 and entry["baseline"] > 0, job


def test_a_kept_fit_is_read_not_refitted(tiny_run, monkeypatch):
    def refit(*args, **kwargs):
        raise AssertionError("fitted again although the run keeps a fit under the same key")

    monkeypatch.setattr(baseline_module, "fit_pca", refit)
    run = RunDir(tiny_run)
    config = config_from_dict(run.read_config())
    pca = LinearBaseline(run, config, "cpu", log=lambda m: None).model()
    assert pca.components == config.model.latent


def test_the_fit_key_follows_what_the_fit_depends_on(tiny_run):
    config = config_from_dict(RunDir(tiny_run).read_config())
    assert baseline_key(config) == baseline_key(config.model_copy(deep=True))
    other_data = config.model_copy(update={"data": config.data.model_copy(update={"min_window_rms": 0.01})})
    other_code = config.model_copy(update={"model": config.model.model_copy(update={"latent": 8})})
    assert len({baseline_key(config), baseline_key(other_data), baseline_key(other_code)}) == 3


def test_held_out_objective_scores_the_model_and_the_baseline_with_the_jobs_own_loss():
    from earshot.losses import build_loss

    window = 256
    train = [AudioFile(Path("a.wav"), "music/a.wav", "music", tones(2.0, seed=0))]
    pca = fit_pca(train, window, components=16, windows=2000)
    windows = held_out_windows([tones(1.0, seed=1), np.zeros(100, np.float32)], window, True, 1e-3)
    assert windows.shape == (2 * RATE // window - 1, window)  # the short signal gives none
    mse = build_loss("mse", sample_rate=RATE)
    silent = lambda x: torch.zeros(x.shape[0], 1, x.shape[1])  # noqa: E731  (a model that outputs nothing)
    record = held_out_objective(silent, mse, pca, windows, batch=8, device=torch.device("cpu"))
    assert record["windows"] == windows.shape[0] and record["head"] == "waveform"
    assert record["baseline"] < 1e-6 < record["model"]
    mulaw = build_loss("mulaw-ce", sample_rate=RATE)  # a head of logits cannot score a waveform
    assert held_out_objective(silent, mulaw, pca, windows, 8, torch.device("cpu"))["model"] is None


def test_listen_prepare_takes_the_baseline_as_a_condition(tiny_run):
    from earshot.listening_app.prepare import PrepareError, resolve_jobs

    assert resolve_jobs(tiny_run, ["mse", "pca-16"], 0) == ["mse-seed0", "pca-16"]
    assert resolve_jobs(tiny_run, None, 0) == ["mse-seed0", "bark-seed0"]  # by default the trained losses only
    with pytest.raises(PrepareError, match="pca-16"):
        resolve_jobs(tiny_run, ["nope"], 0)
