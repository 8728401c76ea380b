"""The thin CLI commands: losses, config, data info, bench."""

from __future__ import annotations

import json
from importlib import metadata

import pytest
from typer.testing import CliRunner

from earshot.benchmark.bench import bench_training
from earshot.benchmark.cli.app import app
from earshot.benchmark.config import load_config
from earshot.losses import REGISTRY
from tests.helpers import write_folder

runner = CliRunner()


def table_rows(output: str) -> dict[str, list[str]]:
    """A table's rows as printed into a pipe (tab-separated, after its header), by first cell:
    ``{name: [cell, ...]}``."""
    lines = [line.split("\t") for line in output.splitlines() if "\t" in line]
    return {cells[0]: cells for cells in lines[1:]}


def test_losses_lists_every_registered_loss():
    result = runner.invoke(app, ["losses"])
    assert result.exit_code == 0
    for name in ("mse", "bark", "bark-norm"):
        assert name in result.output
    rows = table_rows(result.output)
    earshot = f"earshot {metadata.version('earshot')}"
    assert rows == {name: [name, str(cls.head_channels), cls.description, earshot] for name, cls in REGISTRY.items()}
    assert rows["mulaw-ce"][1] == "256" and rows["dmol"][1] == "30" and rows["mse"][1] == "1"


def test_losses_lists_a_newly_registered_loss():
    from earshot.losses import register
    from earshot.losses.time import MSELoss

    class Scaled(MSELoss):
        name, description = "test-scaled", "a loss registered by a user"

    register(Scaled)
    try:
        rows = table_rows(runner.invoke(app, ["losses"]).output)
    finally:
        del REGISTRY["test-scaled"]
    assert rows["test-scaled"][:3] == ["test-scaled", "1", "a loss registered by a user"]


#: Every command a user can type, by group (the README and the docs name them).
COMMANDS = {
    (): {"run", "eval", "losses", "models", "config", "bench", "report", "compare", "score", "baselines", "data",
         "listen"},
    ("data",): {"build", "info"},
    ("losses",): {"check"},
    ("models",): {"check"},
    ("listen",): {"prepare", "open", "close", "list", "invite", "export", "serve", "analyze"},
}


@pytest.mark.parametrize("group", sorted(COMMANDS))
def test_help_lists_every_command_and_each_has_its_own_help(group):
    import typer

    command = typer.main.get_command(app)
    for name in group:
        command = command.commands[name]
    assert set(command.commands) == COMMANDS[group]
    # The Commands panel of --help: "│ name   summary │", a wrapped summary indented under it.
    listed = {}
    for line in runner.invoke(app, [*group, "--help"]).output.splitlines():
        words = line.strip("│ ").split(maxsplit=1)
        if line.startswith("│ ") and line[2] != " " and not words[0].startswith("-"):
            listed[words[0]] = words[1] if len(words) > 1 else ""
    assert set(listed) == COMMANDS[group]
    for name in COMMANDS[group]:
        # Each has a summary in the listing, and its own --help that works.
        assert listed[name], name
        result = runner.invoke(app, [*group, name, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (name, result.output)


def test_config_prints_the_resolved_preset_with_overrides():
    result = runner.invoke(app, ["config", "--preset", "seed", "--set", "train.lr=1e-4", "--set", "seeds=3"])
    assert result.exit_code == 0
    assert "lr: 0.0001" in result.output and "seeds: 3" in result.output and "batch: 32" in result.output


def test_data_info_describes_a_folder_per_category(tmp_path):
    album = write_folder(tmp_path / "album", {"speech": [1.0] * 4, "drums": [1.0, 1.0]})
    (album / "broken.wav").write_bytes(b"nope")
    result = runner.invoke(app, ["data", "info", "--data", str(album)])
    assert result.exit_code == 0, result.output
    assert "skipped broken.wav" in result.output and "skipped files: 1" in result.output
    assert table_rows(result.output)["speech"] == ["speech", "4", "0.07", "3", "1", "0.02"]
    missing = runner.invoke(app, ["data", "info", "--data", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "not a folder" in missing.output


def test_bench_measures_every_loss_relative_to_mse(tmp_path):
    config = load_config("tiny")
    result = bench_training(config, device="cpu", steps=1, warmup=1, rounds=1, log=lambda m: None)
    assert set(result["losses"]) == set(REGISTRY) >= {"mse", "bark", "bark-norm"}
    assert result["losses"]["mse"]["to_mse"] == 1.0
    assert result["bark_to_mse"] == result["losses"]["bark"]["to_mse"] > 0
    assert all(row["windows_per_s"] > 0 and row["tflops"] is None for row in result["losses"].values())
    out = tmp_path / "bench.json"
    cli = runner.invoke(app, ["bench", "--preset", "tiny", "--device", "cpu", "--steps", "1", "--losses", "mse,bark",
                              "--json", str(out)])
    assert cli.exit_code == 0, cli.output
    written = json.loads(out.read_text())
    assert set(written["losses"]) == {"mse", "bark"} and "bark_to_mse" in written
    printed = table_rows(cli.output)  # the table's cells are the JSON's numbers
    for loss in ("mse", "bark"):
        row = written["losses"][loss]
        assert printed[loss][1:4] == [f"{row['windows_per_s']:.1f}", f"{row['step_ms']:.1f}", f"{row['to_mse']:.2f}"]
    bad = runner.invoke(app, ["bench", "--preset", "tiny", "--device", "cpu", "--losses", "nope"])
    assert bad.exit_code == 2 and "unknown loss 'nope'" in bad.output


def test_bench_profile_names_each_loss_top_operators(tmp_path):
    out = tmp_path / "profile.json"
    result = runner.invoke(app, ["bench", "--preset", "tiny", "--device", "cpu", "--profile", "--losses", "mse,bark",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "mse on" in result.output and "bark on" in result.output
    found = json.loads(out.read_text())["losses"]
    # The model's convolutions appear in every loss's step; shares are fractions of the step.
    assert any("convolution" in op["op"] for op in found["mse"]["top"])
    assert all(0 <= op["share"] <= 1 for row in found.values() for op in row["top"])


def test_bench_takes_weighted_sums_of_losses_as_run_does(tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--preset", "tiny", "--device", "cpu", "--steps", "1",
                                 "--losses", "mse+0.1*bark", "--json", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["losses"]
    assert set(rows) == {"mse", "mse+0.1*bark"} and rows["mse+0.1*bark"]["windows_per_s"] > 0
    bad = runner.invoke(app, ["bench", "--preset", "tiny", "--device", "cpu", "--losses", "mse+0.1*nope"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    assert bad.output.startswith("error: unknown loss 'nope' in 'mse+0.1*nope' (known:")


def test_bench_records_the_conv_impl_beside_the_compile_mode(tmp_path):
    out = tmp_path / "bench.json"
    result = runner.invoke(app, ["bench", "--preset", "tiny", "--device", "cpu", "--steps", "1", "--losses", "mse",
                                 "--set", "train.conv_impl=gemm", "--json", str(out)])
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text())
    assert written["conv_impl"] == "gemm" and written["compile_mode"] is None
    assert written["losses"]["mse"]["windows_per_s"] > 0
