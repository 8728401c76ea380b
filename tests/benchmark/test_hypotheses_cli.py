"""Declared hypotheses through the CLI: refused before training, recorded before training, shown by
``eval`` and ``report`` (after the fact when given to them)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.benchmark.train import runner as train_runner
from earshot.results.hypotheses import sha256
from earshot.results.rundir import RunDir
from tests.helpers import write_folder

cli = CliRunner()

GOOD = """hypotheses:
  - name: bark keeps the level
    metric: snr
    treatment: bark
    baseline: mse
    direction: higher
    categories: [speech, drums]
"""


@pytest.fixture
def album(tmp_path):
    return write_folder(tmp_path / "album", {"speech": [2.0, 1.5, 1.5], "drums": [1.5, 1.2], "music": [1.5, 1.2]})


@pytest.mark.parametrize("change, bad", [
    ({"metric: snr": "metric: loudness"}, "unknown metric 'loudness'"),
    ({"treatment: bark": "treatment: l1"}, "unknown treatment loss 'l1' (this run has: mse, bark, pca-16)"),
    ({"[speech, drums]": "[speech, birdsong]"}, "unknown category 'birdsong' for metric snr"),
])
def test_run_refuses_a_bad_hypothesis_in_one_line_before_creating_the_run(album, tmp_path, change, bad):
    text = GOOD
    for old, new in change.items():
        text = text.replace(old, new)
    hyp = tmp_path / "hyp.yaml"
    hyp.write_text(text)
    out = tmp_path / "runs"
    result = cli.invoke(app, ["run", "--preset", "tiny", "--data", str(album), "--out", str(out), "--device", "cpu",
                              "--hypotheses", str(hyp), "--quiet", "--no-eval"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"error: {hyp}: hypothesis 'bark keeps the level': {bad}" + lines[0].split(bad, 1)[1]], lines
    assert not out.exists() or not any(out.iterdir())


def test_run_records_the_hypotheses_before_any_job_trains(album, tmp_path, monkeypatch):
    hyp = tmp_path / "hyp.yaml"
    hyp.write_text(GOOD)
    seen = []
    train_job = train_runner.train_job

    def recording(job_dir, *args, **kwargs):
        seen.append(RunDir(job_dir.parent.parent).read_record().get("hypotheses"))
        return train_job(job_dir, *args, **kwargs)

    monkeypatch.setattr(train_runner, "train_job", recording)
    result = cli.invoke(app, ["run", "--preset", "tiny", "--data", str(album), "--out", str(tmp_path / "runs"),
                              "--run-id", "r", "--device", "cpu", "--budget", "2", "--hypotheses", str(hyp),
                              "--quiet", "--no-eval"])
    assert result.exit_code == 0, result.output
    run = RunDir(tmp_path / "runs" / "r")
    entry = run.read_record()["hypotheses"]
    assert entry["sha256"] == sha256(GOOD) and entry["source"] == str(hyp) and entry["before_training"] is True
    assert run.hypotheses_file.read_text() == GOOD
    assert seen and all(s == entry for s in seen)  # every job started with the set already recorded


def test_run_accepts_a_hypothesis_against_the_linear_baseline(album, tmp_path):
    hyp = tmp_path / "hyp.yaml"
    hyp.write_text(GOOD.replace("baseline: mse", "baseline: pca-16"))  # the tiny preset's 16-dim code
    result = cli.invoke(app, ["run", "--preset", "tiny", "--losses", "bark", "--data", str(album), "--out",
                              str(tmp_path / "runs"), "--run-id", "r", "--device", "cpu", "--budget", "1",
                              "--hypotheses", str(hyp), "--quiet", "--no-eval"])
    assert result.exit_code == 0, result.output
    assert RunDir(tmp_path / "runs" / "r").hypotheses_file.read_text() == hyp.read_text()


def test_run_without_a_file_records_the_seed_default(album, tmp_path):
    result = cli.invoke(app, ["run", "--preset", "tiny", "--losses", "mse", "--data", str(album), "--out",
                              str(tmp_path / "runs"), "--run-id", "r", "--device", "cpu", "--budget", "1", "--quiet",
                              "--no-eval"])
    assert result.exit_code == 0, result.output  # the default's bark is not refused: its verdicts are inconclusive
    entry = RunDir(tmp_path / "runs" / "r").read_record()["hypotheses"]
    assert entry["source"] == "hypotheses-seed.yaml" and entry["before_training"] is True


def test_eval_and_report_show_the_recorded_set_or_one_given_after_the_fact(tiny_run_copy, tmp_path):
    run = RunDir(tiny_run_copy)
    run.record_hypotheses("declared.yaml", GOOD)
    shown = cli.invoke(app, ["eval", str(run.path), "--device", "cpu", "--workers", "1"])
    assert shown.exit_code == 0, shown.output
    assert "bark keeps the level" in shown.output and "after training started" in shown.output
    assert "declared.yaml" in shown.output

    later = tmp_path / "later.yaml"
    later.write_text(GOOD.replace("bark keeps the level", "bark is louder").replace("snr", "si_sdr"))
    given = cli.invoke(app, ["eval", str(run.path), "--device", "cpu", "--workers", "1", "--hypotheses", str(later)])
    assert given.exit_code == 0, given.output
    assert "bark is louder" in given.output and "declared after the fact" in given.output

    report = cli.invoke(app, ["report", str(run.path), "--format", "md", "--no-listening", "--hypotheses",
                              str(later)])
    assert report.exit_code == 0, report.output
    assert "bark is louder" in report.output
    page = run.report_file("md").read_text()
    assert "bark is louder" in page and "declared after the fact" in page
    assert run.read_record()["hypotheses"]["source"] == "declared.yaml"  # a later file is not recorded


def test_eval_refuses_a_bad_file_before_evaluating(tiny_run_copy, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("direction: higher", "direction: louder"))
    result = cli.invoke(app, ["eval", str(tiny_run_copy), "--hypotheses", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: hypothesis 'bark keeps the level': direction: Input should be" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
