"""Jobs compared that trained different numbers of steps are named in eval's output and the report."""

from __future__ import annotations

from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.results.present import training_note
from earshot.results.report import write_report
from earshot.results.rundir import RunDir
from earshot.results.training import job_training, unequal_training

runner = CliRunner()
JOBS = {"mse-seed0": {"loss": "mse", "seed": 0, "status": "done", "steps": 1153, "seconds": 120.0},
        "bark-seed0": {"loss": "bark", "seed": 0, "status": "done", "steps": 167, "seconds": 120.0},
        "bark-seed1": {"loss": "bark", "seed": 1, "status": "failed", "steps": 167, "seconds": 80.0},
        "mel-seed0": {"loss": "mel", "seed": 0, "status": "pending"}}
NOTE = ("not equally trained: bark-seed0, bark-seed1 (failed) trained 167 steps; mse-seed0 1153. "
        "A difference between these losses is partly a difference in training.")


def test_jobs_that_trained_different_steps_are_named_fewest_first():
    assert list(job_training(JOBS)["job"]) == ["mse-seed0", "bark-seed0", "bark-seed1"]  # a pending job has no steps
    assert training_note(unequal_training(JOBS)) == NOTE
    assert training_note(unequal_training(JOBS, ["bark"])) is None  # the bark jobs alone trained alike
    assert training_note(unequal_training({})) is None
    equal = {job: {**info, "steps": 20} for job, info in JOBS.items()}
    assert unequal_training(equal).empty


def _unequal(run_dir):
    def change(record):
        record["jobs"]["bark-seed0"]["steps"] = 167

    RunDir(run_dir).update_record(change)


EXPECTED = "not equally trained: mse-seed0, mse-seed1, bark-seed1 trained 20 steps; bark-seed0 167."


def test_eval_and_the_report_say_when_jobs_trained_different_steps(tiny_run_copy):
    result = runner.invoke(app, ["eval", str(tiny_run_copy), "--device", "cpu", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "not equally trained" not in result.output
    _unequal(tiny_run_copy)
    result = runner.invoke(app, ["eval", str(tiny_run_copy), "--device", "cpu", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert f"note: {EXPECTED}" in result.output  # whole, on one line, under the hypotheses
    assert result.output.index("hypothes") < result.output.index(EXPECTED)
    report = write_report(tiny_run_copy, format="md", ratings=None).read_text()
    assert report.count(f"> **note:** {EXPECTED}") == 2  # the run's jobs, and under the hypotheses
