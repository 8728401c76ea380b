"""A user's own loss and model through a whole run: training, evaluation, the report and a listening
test's preparation; the run records where each plugin came from, keeps a file plugin's copy, and
a resumed run uses that copy when the file has changed (or refuses with --strict). With Ray."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.benchmark.config import load_config
from earshot.models import build_model, count_parameters
from earshot.results.rundir import RunDir
from tests.helpers import EXAMPLES, write_folder

runner = CliRunner()
FILE_LOSS = "./my_loss.py:SpectralL1"
MODULE_SUM = "bark+0.5*earshot_example_plugin.losses:LogSpectralL1"
ENTRY_POINT = "log-spectral-l1"
#: A few seconds of each category the tiny preset evaluates.
ALBUM = {"speech": [2.0, 2.0], "drums": [2.0, 2.0], "music": [2.0, 2.0]}


@pytest.fixture
def project(tmp_path, monkeypatch, example_plugin) -> Path:
    """A researcher's folder: their one-file loss, their audio; the example plugin installed."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLES / "my_loss.py", tmp_path)
    write_folder(tmp_path / "album", ALBUM)
    return tmp_path


def _earshot(*args: str) -> str:
    """What the command printed, its lines joined again where the terminal wrapped them (checked to succeed)."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output.replace("\n", "")


def _refused(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
    return result.output


def _run_dir(output: str) -> RunDir:
    return RunDir(Path(output.split("run directory: ")[-1].split()[0]))


def _report_rows(run: RunDir) -> dict[str, str]:
    _earshot("report", str(run.path), "--format", "md")
    lines = run.report_file("md").read_text().splitlines()
    return {cells[1].strip(): cells[2].strip() for cells in (line.split("|") for line in lines) if len(cells) == 4}


def test_file_module_and_entry_point_losses_run_report_and_listen_and_resume_from_the_runs_copy(project):
    args = ["run", "--preset", "tiny", "--data", "album", "--out", "runs", "-q", "--budget", "4",
            "--losses", f"{FILE_LOSS},{MODULE_SUM},{ENTRY_POINT}", "--set", "loss_options.log-spectral-l1.n_fft=128",
            "--set", "eval.excerpt_seconds=1"]
    run = _run_dir(_earshot(*args))

    record = run.read_record()
    assert {job["status"] for job in record["jobs"].values()} == {"done"}
    plugins = record["plugins"]
    source = project / "my_loss.py"
    file_entry = plugins[FILE_LOSS]
    assert (file_entry["kind"], file_entry["path"]) == ("file", str(source))
    copy = run.plugin_copy(file_entry["sha256"], "my_loss.py")
    assert copy.read_bytes() == source.read_bytes()
    module_entry = plugins["earshot_example_plugin.losses:LogSpectralL1"]
    assert (module_entry["kind"], module_entry["package"], module_entry["version"]) == \
        ("module", "earshot-example-plugin", "0.1.0")
    assert (plugins[ENTRY_POINT]["kind"], plugins[ENTRY_POINT]["reference"], plugins[ENTRY_POINT]["package"]) == \
        ("entry point", "earshot_example_plugin.losses:LogSpectralL1", "earshot-example-plugin")
    metrics = pd.read_parquet(run.metrics_file)
    assert set(metrics["loss"]) == {FILE_LOSS, MODULE_SUM, ENTRY_POINT, "pca-16"}
    assert metrics.loc[metrics["metric"] == "snr", "value"].notna().all()

    rows = _report_rows(run)
    assert rows["model"].startswith("gated-conv (earshot ")
    assert rows["latent rate"] == "172 values/s (16 per 1024-sample hop: 2048-sample windows overlapped by half, at 11025 Hz)"
    assert rows[f"plugin {FILE_LOSS}"].startswith(f"loss from file {source} (sha256 {file_entry['sha256'][:12]}")
    assert rows[f"plugin {ENTRY_POINT}"].endswith("from earshot-example-plugin 0.1.0")

    listened = _earshot("listen", "prepare", str(run.path), "--db", str(project / "tests.db"), "--items", "1",
                        "--seconds", "1", "--name", "mine")
    assert "my_loss.py_SpectralL1-seed0" in listened and "log-spectral-l1-seed0" in listened

    # The file changes (here: it no longer imports). --strict refuses; otherwise the run's copy is used.
    source.write_text("def broken(:\n")
    changed = f"{source} has changed (sha256 {file_entry['sha256'][:8]} then"
    assert changed in _refused(*args, "--resume", "--strict")
    assert changed in _refused("eval", str(run.path), "--strict")
    run.job("my_loss.py_SpectralL1-seed0").done_file.unlink()  # as if the job had been killed at its last checkpoint
    resumed = _earshot(*args, "--resume", "--no-eval")
    assert changed in resumed and f"using the run's copy {copy}" in resumed
    assert run.job("my_loss.py_SpectralL1-seed0").is_done
    assert changed in _earshot("eval", str(run.path))
    assert run.read_record()["plugins"][FILE_LOSS] == file_entry  # the first record stays


def test_the_example_model_trains_evaluates_reports_and_listens(project):
    run = _run_dir(_earshot("run", "--preset", "tiny", "--data", "album", "--out", "runs", "-q", "--budget", "4",
                            "--model", "tiny-codec", "--losses", "mse", "--set", "model_options.latent=8",
                            "--set", "eval.excerpt_seconds=1"))
    assert run.read_record()["plugins"]["tiny-codec"]["package"] == "earshot-example-plugin"
    config = load_config("tiny", {"model.name": "tiny-codec"})
    parameters = count_parameters(build_model(config.model, config.data.window, 1, {"latent": 8}))
    rows = _report_rows(run)
    assert rows["model"] == "tiny-codec (earshot-example-plugin 0.1.0)"
    assert rows["parameters"] == f"{parameters:,} (1-channel head)"
    assert rows["latent rate"] == "86.1 values/s (8 per 1024-sample hop: 2048-sample windows overlapped by half, at 11025 Hz)"
    assert rows["model options"] == "{'latent': 8}"
    # the linear baseline has as many components as the plugin's code
    assert set(pd.read_parquet(run.metrics_file)["loss"]) == {"mse", "pca-8"}
    listened = _earshot("listen", "prepare", str(run.path), "--db", str(project / "tests.db"), "--items", "1",
                        "--seconds", "1", "--name", "codec")
    assert "mse-seed0" in listened


def test_a_plugin_installed_at_another_version_is_named_and_refused_with_strict(project):
    from earshot.benchmark.plugins import PluginChangedError, plugin_origins, use_recorded_plugins

    run = RunDir(project / "runs" / "old")
    recorded = plugin_origins(load_config("tiny", {"losses": [ENTRY_POINT]}))
    recorded[ENTRY_POINT]["version"] = "0.0.9"
    run.create()
    run.write_record({"jobs": {}, "plugins": recorded})
    said = []
    use_recorded_plugins(run, log=said.append)
    assert said == [f"loss {ENTRY_POINT}: the run recorded earshot-example-plugin 0.0.9, installed now is "
                    "earshot-example-plugin 0.1.0; using the installed one"]
    with pytest.raises(PluginChangedError, match=r"installed now is earshot-example-plugin 0\.1\.0; --strict refuses$"):
        use_recorded_plugins(run, strict=True)


@pytest.mark.ray
def test_plugins_run_on_ray_workers(project, monkeypatch):
    ray = pytest.importorskip("ray")
    from earshot.benchmark.train.runner import run_grid

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    config = load_config("tiny", {"data.path": "album", "losses": [FILE_LOSS, ENTRY_POINT], "train.budget": "3",
                                  "model.name": "tiny-codec"})
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        run = RunDir(run_grid(config, out=project / "runs", device="cpu", executor="ray", log=lambda m: None))
    finally:
        ray.shutdown()
    record = run.read_record()
    assert {job: entry["status"] for job, entry in record["jobs"].items()} == \
        {"my_loss.py_SpectralL1-seed0": "done", "log-spectral-l1-seed0": "done"}
    assert set(record["plugins"]) == {FILE_LOSS, ENTRY_POINT, "tiny-codec"}
    log = json.loads(json.dumps(run.job("log-spectral-l1-seed0").read_log()["step"].tolist()))
    assert log[-1] == 3
