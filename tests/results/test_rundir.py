"""The run directory has one owner: results/rundir.py. Its layout, its writers, its PCM, and old runs.

- every path and file name of a run is spelled in ``results/rundir.py`` only (an AST check over
  every module of the five packages and ``earshot/``);
- a run written before ``run.json`` recorded a layout version (``tests/fixtures/run-layout1``,
  made by the code at commit 107aba2) still opens, evaluates and reports.
"""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from typer.testing import CliRunner

from earshot.results import rundir
from earshot.results.rundir import LAYOUT, JobDir, RunDir, atomic_path, pcm16, write_wav
from tests.helpers import RATE, write_folder

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "losses", "benchmark", "results", "listening_app", "earshot")
OWNER = ROOT / "results" / "rundir.py"
OLD_RUN = ROOT / "tests" / "fixtures" / "run-layout1"
# What the old run's album held (tests.helpers.write_folder is deterministic).
OLD_ALBUM = {"speech": [2.5, 2.0, 1.5], "music": [2.5, 2.0, 1.5]}

FILE_NAMES = {rundir.CONFIG_FILE, rundir.ENVIRONMENT_FILE, rundir.RUN_FILE, rundir.CHECKPOINT_FILE,
              rundir.TRAIN_LOG_FILE, rundir.DONE_FILE, rundir.FAILED_FILE, rundir.EXCERPTS_FILE, rundir.HYPOTHESES_FILE,

              rundir.METRICS_FILE, rundir.METRIC_INFO_FILE, rundir.EVAL_CACHE_FILE, rundir.SYSTEMS_FILE}
FOLDER_NAMES = {rundir.JOBS_DIR, rundir.REFERENCE_DIR, rundir.RECON_DIR, rundir.REPORT_DIR}
PATH_CALLS = {"Path", "PurePath", "joinpath", "join"}


# --- one owner ----------------------------------------------------------------------------------


def _layout_spellings(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every place a module spells a run's file or folder name as a path."""
    found = []
    for node in ast.walk(tree):
        # A file name, whole; a path that starts with a run's folder; the eval-<folder> prefix.
        # (f-strings are walked too: f"recon/{job}" holds the constant "recon/".)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value
            if text in FILE_NAMES or text.startswith(rundir.EVAL_PREFIX) or \
                    any(text.startswith(folder + "/") for folder in FOLDER_NAMES):
                found.append((node.lineno, repr(text)))
        # A folder name joined as a path part: run / "recon", Path(run, "jobs"), os.path.join(..., "report").
        operands = []
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            operands = [node.left, node.right]
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            operands = list(node.args) if name in PATH_CALLS else []
        for operand in operands:
            if isinstance(operand, ast.Constant) and operand.value in FOLDER_NAMES:
                found.append((operand.lineno, f"path part {operand.value!r}"))
    return found


def _modules():
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path != OWNER:
                yield path


def test_no_module_but_rundir_spells_a_run_path():
    offences = [f"{path.relative_to(ROOT)}:{line}: {what}" for path in _modules()
                for line, what in _layout_spellings(ast.parse(path.read_text(), str(path)))]
    assert not offences, "run paths belong to results/rundir.py (RunDir):\n" + "\n".join(offences)


@pytest.mark.parametrize("source", [
    'run_dir / "metrics.parquet"', 'Path(run, "recon", job)', 'out / "report"', 'f"eval-{name}"',
    'f"reference/{item}.wav"', 'os.path.join(root, "jobs")', 'job_dir.with_name("done.json")',
])
def test_the_check_finds_a_hand_joined_path(source):
    assert _layout_spellings(ast.parse(source))


@pytest.mark.parametrize("source", [
    '"no excerpts.json: evaluate the run first"', 'kind == "reference"', '{"reference": 0}', '"report: done"',
])
def test_the_check_leaves_prose_and_condition_names_alone(source):
    assert not _layout_spellings(ast.parse(source))


def test_no_reader_decides_a_metric_direction_by_its_name():
    # Direction, ideal and unit come from the run's metrics_info.json, not from "_db" in a name.
    for path in sorted((ROOT / "results").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and node.left.value == "_db":
                pytest.fail(f"{path.relative_to(ROOT)}:{node.lineno}: '_db' in a metric name")


# --- the layout ---------------------------------------------------------------------------------


def test_the_layout(tmp_path):
    run = RunDir(tmp_path / "r")
    assert not run.exists()
    assert run.job("mse-seed0").checkpoint == tmp_path / "r" / "jobs" / "mse-seed0" / "checkpoint.pt"
    assert run.reference_wav("speech-01") == tmp_path / "r" / "reference" / "speech-01.wav"
    assert run.recon_wav("mse-seed0", "speech-01") == tmp_path / "r" / "recon" / "mse-seed0" / "speech-01.wav"
    assert run.relative(run.recon_wav("mse-seed0", "speech-01")) == "recon/mse-seed0/speech-01.wav"
    assert run.evaluation() is run
    other = run.evaluation(Path("/data/other album"))
    assert other.metrics_file == tmp_path / "r" / "eval-other album" / "metrics.parquet"
    assert other.recon_wav("a", "b") == tmp_path / "r" / "eval-other album" / "recon" / "a" / "b.wav"
    assert run.report_file("md") == tmp_path / "r" / "report" / "index.md"


def test_run_json_records_the_layout_version_and_updates_in_place(tmp_path):
    run = RunDir(tmp_path / "r")
    run.write_config("preset: tiny\n")
    assert run.exists() and run.read_config() == {"preset": "tiny"}
    assert run.read_record() == {"jobs": {}}
    run.update_record(lambda record: record.update(run_id="r1"))
    run.update_record(lambda record: record["jobs"].update({"mse-seed0": {"status": "done"}}))
    assert json.loads(run.run_file.read_text()) == {"run_id": "r1", "jobs": {"mse-seed0": {"status": "done"}},
                                                    "layout": LAYOUT}
    assert run.layout == LAYOUT and run.run_id == "r1"
    assert not list(run.path.glob("*.tmp"))


def test_finished_jobs_are_those_with_done_json(tmp_path):
    run = RunDir(tmp_path)
    run.job("b-seed0").write_done({"steps": 3, "seconds": 1.0})
    run.job("a-seed0").write_done({"steps": 3, "seconds": 1.0})
    run.job("c-seed0").write_failed({"message": "nan", "step": 2})
    assert [job.name for job in run.finished_jobs()] == ["a-seed0", "b-seed0"]
    failed = run.job("c-seed0")
    assert not failed.is_done and failed.failed_file.is_file()
    failed.clear_failed()
    assert not failed.failed_file.exists()


def test_an_interrupted_write_leaves_the_previous_file(tmp_path):
    job = JobDir(tmp_path / "job")
    job.write_log(pd.DataFrame({"step": [1]}))
    with pytest.raises(RuntimeError):
        with atomic_path(job.train_log) as tmp:
            tmp.write_bytes(b"half a parquet")
            raise RuntimeError("killed")
    assert list(job.read_log()["step"]) == [1]
    assert sorted(p.name for p in job.path.iterdir()) == ["train_log.parquet"]


def test_metric_info_is_written_for_an_evaluated_run_that_lacks_it(tmp_path):
    run = RunDir(tmp_path)
    catalog = {"si_sdr": {"higher_is_better": True, "ideal": None, "unit": "dB"}}
    assert not run.ensure_metric_info(lambda: catalog)  # not evaluated: nothing to describe
    run.write_metrics(pd.DataFrame({"metric": ["si_sdr"], "value": [1.0]}))
    assert run.ensure_metric_info(lambda: catalog) and run.read_metric_info() == catalog
    assert not run.ensure_metric_info(lambda: {})  # never overwritten


# --- 16-bit PCM: one scaling for every wav earshot writes ---------------------------------------


def test_pcm16_scales_by_2_to_the_15_and_rounds():
    audio = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -2.0, 1 / 32768, 0.6 / 32768, 0.4 / 32768, np.nan, np.inf,
                      -np.inf], np.float32)
    assert pcm16(audio).tolist() == [0, 16384, -16384, 32767, -32768, 32767, -32768, 1, 1, 0, 0, 32767, -32768]
    assert pcm16(audio).dtype == np.dtype("<i2")


def test_write_wav_returns_what_reading_the_file_gives(tmp_path):
    audio = np.array([0.25, 1.5, -2.0, np.nan, 0.123456], np.float32)
    heard = write_wav(tmp_path / "deep" / "x.wav", audio, RATE)
    back, rate = sf.read(tmp_path / "deep" / "x.wav", dtype="float32")
    assert rate == RATE and sf.info(tmp_path / "deep" / "x.wav").subtype == "PCM_16"
    np.testing.assert_array_equal(back, heard)


def test_the_listening_app_encodes_with_the_same_scaling():
    from earshot.listening_app.audio import read_wav_bytes, wav_bytes

    audio = np.random.default_rng(1).uniform(-1.2, 1.2, 500).astype(np.float32)
    decoded, _ = read_wav_bytes(wav_bytes(audio, RATE))
    np.testing.assert_array_equal(decoded, pcm16(audio).astype(np.float32) / rundir.PCM16_SCALE)


# --- a layout-1 run (before run.json recorded a version) ----------------------------------------


@pytest.fixture
def old_run(tmp_path) -> Path:
    """A writable copy of the layout-1 fixture."""
    return Path(shutil.copytree(OLD_RUN, tmp_path / "legacy-run", ignore=shutil.ignore_patterns("README.md")))


def test_an_old_run_opens(old_run):
    from earshot.results.store import load_run

    run = RunDir(old_run)
    assert run.exists() and run.layout == 1 and run.run_id == "legacy-run"
    assert [job.name for job in run.finished_jobs()] == ["bark-seed0", "mse-seed0"]
    assert run.read_metric_info() is None
    data = load_run(old_run)
    assert data.losses == ["mse", "bark"] and data.sample_rate == RATE
    assert set(data.metrics["job"]) == {"mse-seed0", "bark-seed0"} and len(data.logs)
    assert data.metric_info == {}
    assert any("metrics_info.json is missing" in note for note in data.missing)


def test_an_old_run_evaluates(old_run, tmp_path):
    from earshot.benchmark.evaluate.reconstruct import evaluate_run

    album = write_folder(tmp_path / "album", OLD_ALBUM)
    before = pd.read_parquet(old_run / "metrics.parquet")
    metrics = evaluate_run(old_run, device="cpu", data=album, workers=1, log=lambda m: None)
    out = RunDir(old_run).evaluation(album)
    assert set(metrics["job"]) == {"mse-seed0", "bark-seed0"}
    assert sorted(out.reconstructed_jobs()) == ["bark-seed0", "mse-seed0"]
    assert out.read_metric_info()["hf_energy_ratio_db_2k"]["ideal"] == 0.0
    pd.testing.assert_frame_equal(pd.read_parquet(old_run / "metrics.parquet"), before)  # the run's own: untouched


def test_an_old_run_reports_as_a_new_one_through_the_cli(old_run, tmp_path, monkeypatch):
    from earshot.benchmark.cli.app import app
    from earshot.benchmark.evaluate.metrics import metric_catalog
    from earshot.results.report import write_report

    monkeypatch.setenv("EARSHOT_DB", f"sqlite:///{tmp_path / 'absent' / 'listening.sqlite'}")
    # The library alone: it reports, without directions it cannot know.
    plain = write_report(old_run, format="md").read_text()
    assert "metrics_info.json is missing" in plain
    # The CLI first writes the metric catalog into the run, so the old run reports as a new one.
    result = CliRunner().invoke(app, ["report", str(old_run), "--format", "md", "--no-listening"])
    assert result.exit_code == 0, result.output
    assert RunDir(old_run).read_metric_info() == json.loads(json.dumps(metric_catalog()))
    text = RunDir(old_run).report_file("md").read_text()
    assert "metrics_info.json is missing" not in text
    assert "| si_sdr | dB | ↑ |" in text and "| lsd | dB | ↓ |" in text
    assert "(../recon/mse-seed0/speech-01.wav)" in text
