"""Adequacy: a job still falling or below the linear baseline is undertrained, and hypotheses on it say so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from earshot.results import adequacy, present
from earshot.results.adequacy import (FLAT_RELATIVE_CHANGE, OBJECTIVE_LOSS, OBJECTIVE_SNR, assess, relative_change,
                                      undertrained_jobs, undertrained_losses)
from earshot.results.claims import UNDERTRAINED, check_hypotheses
from earshot.results.hypotheses import declared_for_run
from earshot.results.rundir import RunDir
from earshot.results.store import load_run


def log_of(values) -> pd.DataFrame:
    values = np.asarray(values, dtype=float)
    return pd.DataFrame({"step": np.arange(1, values.size + 1), "loss": values})


def falling(steps: int = 40) -> np.ndarray:
    return 1.0 / np.sqrt(np.arange(1, steps + 1))  # still 14 % lower over the last quarter than the one before


def test_relative_change_compares_the_last_quarter_with_the_one_before():
    rng = np.random.default_rng(0)
    assert relative_change(log_of(falling())) > FLAT_RELATIVE_CHANGE
    plateau = 0.5 + 0.01 * rng.standard_normal(40)  # noisy but flat
    assert abs(relative_change(log_of(plateau))) < FLAT_RELATIVE_CHANGE
    assert relative_change(log_of(np.linspace(1, 2, 40))) < 0  # rising: not "still falling"
    assert relative_change(log_of([1.0, 0.9, 0.8])) is None  # too few logged steps to tell
    # A loss below zero that keeps falling is still falling.
    assert relative_change(log_of(-2 - falling()[::-1])) > FLAT_RELATIVE_CHANGE


def rewrite_log(run_dir, job: str, values) -> None:
    log = RunDir(run_dir).job(job).read_log()
    frame = log.iloc[:0].reindex(range(len(values))).assign(step=np.arange(1, len(values) + 1), loss=values)
    RunDir(run_dir).job(job).write_log(frame)


def test_a_job_whose_training_loss_is_still_falling_is_undertrained(tiny_run_copy):
    rewrite_log(tiny_run_copy, "bark-seed0", falling())
    for job in ("bark-seed1", "mse-seed0", "mse-seed1"):
        rewrite_log(tiny_run_copy, job, np.full(40, 0.5))
    assessment = assess(load_run(tiny_run_copy)).set_index("job")
    row = assessment.loc["bark-seed0"]
    assert row["flattened"] is False or row["flattened"] == False  # noqa: E712 (numpy bool)
    assert row["undertrained"] and "training loss still falling" in row["reason"]
    assert assessment.loc["bark-seed1", "flattened"]
    assert "bark" in undertrained_losses(assessment.reset_index())
    assert "bark-seed0" in undertrained_jobs(assessment.reset_index())


def test_a_hypothesis_resting_on_an_undertrained_job_is_not_meaningful(tiny_run_copy):
    rewrite_log(tiny_run_copy, "bark-seed0", falling())
    run = load_run(tiny_run_copy)
    undertrained = undertrained_losses(assess(run))
    assert "bark" in undertrained
    checked = check_hypotheses(run.metrics, declared_for_run(run.path).hypotheses, run.metric_info,
                               undertrained=undertrained)
    assert len(checked) and set(checked["verdict"]) == {UNDERTRAINED}  # every default hypothesis is bark vs mse
    assert UNDERTRAINED == "not meaningful: undertrained"


def test_a_loss_is_compared_with_the_baseline_on_its_own_objective(tiny_run_copy):
    run_dir = RunDir(tiny_run_copy)
    record = run_dir.read_adequacy()
    record["jobs"]["bark-seed0"].update(model=2.0, baseline=1.0)  # worse than the linear code
    record["jobs"]["bark-seed1"].update(model=1.0, baseline=2.0)
    run_dir.write_adequacy(record)
    run = load_run(tiny_run_copy)
    assessment = assess(run).set_index("job")
    assert assessment.loc["bark-seed0", "objective"] == OBJECTIVE_LOSS
    assert assessment.loc["bark-seed0", "beats_baseline"] == False  # noqa: E712
    assert assessment.loc["bark-seed0", "undertrained"]
    assert "does not beat pca-16" in assessment.loc["bark-seed0", "reason"]
    assert assessment.loc["bark-seed1", "beats_baseline"] == True  # noqa: E712
    # mse is judged by SNR on the held-out excerpts, the baseline's on the same items.
    snr = run.metrics[run.metrics["metric"] == "snr"].groupby("job")["value"].mean()
    assert assessment.loc["mse-seed0", "objective"] == OBJECTIVE_SNR
    assert assessment.loc["mse-seed0", "model"] == pytest.approx(snr["mse-seed0"])
    assert assessment.loc["mse-seed0", "baseline"] == pytest.approx(snr["pca-16"])
    assert assessment.loc["mse-seed0", "beats_baseline"] == (snr["mse-seed0"] > snr["pca-16"])


def test_a_run_evaluated_before_the_baseline_marks_nothing_for_it(tiny_run_copy):
    RunDir(tiny_run_copy).adequacy_file.unlink()
    for job in ("bark-seed0", "bark-seed1", "mse-seed0", "mse-seed1"):
        rewrite_log(tiny_run_copy, job, np.full(40, 0.5))
    assessment = assess(load_run(tiny_run_copy))
    assert assessment["beats_baseline"].isna().all() and not assessment["undertrained"].any()
    assert present.undertrained_sentence(assessment) is None
    assert set(present.adequacy_table(assessment, {}).frame()["verdict"]) == {"not checked"}


def test_eval_and_the_report_mark_the_undertrained_job(tiny_run_copy):
    from typer.testing import CliRunner

    from earshot.benchmark.cli.app import app
    from earshot.results.report import build_sections

    rewrite_log(tiny_run_copy, "bark-seed0", falling())
    result = CliRunner().invoke(app, ["eval", str(tiny_run_copy), "--device", "cpu", "--workers", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    row = next(line for line in lines if line.startswith("bark-seed0\t"))
    assert row.split("\t")[-1] == "undertrained"
    # labelled once: "undertrained: <jobs and why>"
    assert any(line.startswith("undertrained: ") and "bark-seed0 (training loss still falling" in line
               and "Undertrained" not in line for line in lines)
    assert sum(line.endswith(f"\t{UNDERTRAINED}") for line in lines) == 3  # the three default hypotheses

    _, sections = build_sections(tiny_run_copy)
    section = next(s for s in sections if s.anchor == "adequacy")
    table = next(b for b in section.blocks if isinstance(b, present.Table))
    verdicts = dict(zip(table.frame()["job"], table.frame()["verdict"]))
    assert verdicts["bark-seed0"] == "undertrained"
    assert any(getattr(b, "label", None) == "undertrained" and "bark-seed0" in b.text for b in section.blocks)
    assert any(isinstance(b, str) and "pca-16 is a baseline, not a trained loss" in b for b in section.blocks)
    claims = next(s for s in sections if s.anchor == "claims")
    hypotheses = next(b for b in claims.blocks if isinstance(b, present.Table))
    assert set(hypotheses.frame()["verdict"]) == {UNDERTRAINED}
    assert adequacy.baseline_system(load_run(tiny_run_copy)) == "pca-16"
