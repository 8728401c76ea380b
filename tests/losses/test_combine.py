"""Tests of weighted sums of losses, loss options, and how runs name and validate them.

See ``losses/combine.py`` and ``losses/base.py``.
"""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.benchmark.config import ConfigError, load_config, select_grid
from earshot.benchmark.train.runner import RunError, job_name, validate
from earshot.losses import REGISTRY, UnknownLossError, WeightedSum, build_loss, parse_expression
from tests.helpers import RATE, write_folder


def test_the_grammar():
    assert parse_expression("mse") == [(1.0, "mse")]
    assert parse_expression("mse+0.1*bark") == [(1.0, "mse"), (0.1, "bark")]
    assert parse_expression(" 2 * mel + 1e-3*mrstft ") == [(2.0, "mel"), (1e-3, "mrstft")]


@pytest.mark.parametrize("expression, message", [
    ("mse+x", "unknown loss 'x' in 'mse+x'"),
    ("nope", "unknown loss 'nope' (known:"),
    ("mse+", "empty term in 'mse+'"),
    ("+mse", "empty term"),
    ("mse++bark", "empty term"),
    ("", "empty loss name"),
    ("abc*mse", "bad weight 'abc' in 'abc*mse'"),
    ("bark*0.1", "the weight goes first (0.1*bark)"),
    ("0*mse", "must be positive and finite"),
    ("-1*mse", "bad weight '-1' in '-1*mse': must be positive and finite"),
    ("inf*mse", "must be positive and finite"),
    ("0.1*", "empty loss name"),
    ("1*2*mse", "bad term"),
    ("mse+mse", "appears twice"),
    ("mse+mulaw-ce", "cannot sum 'mse' (head: waveform, 1 channel) and 'mulaw-ce' (head: mu-law logits, 256"),
    ("mulaw-ce+dmol", "every term must use the same decoder head"),
])
def test_mistaken_expressions_fail_with_one_line(expression, message):
    with pytest.raises(UnknownLossError) as err:
        build_loss(expression, RATE)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_sum_is_the_weighted_sum_of_its_terms_and_decodes_as_they_do():
    target = torch.randn(2, 2048).clamp(-1, 1)
    head = torch.randn(2, 1, 2048)
    combined = build_loss("mse+0.5*mrstft", RATE)
    assert isinstance(combined, WeightedSum) and combined.head_channels == 1
    expected = build_loss("mse", RATE)(head, target) + 0.5 * build_loss("mrstft", RATE)(head, target)
    assert torch.allclose(combined(head, target), expected)
    assert torch.equal(combined.decode(head), head[:, 0])
    assert type(build_loss("mse", RATE)).__name__ == "MSELoss"  # a plain name stays unwrapped
    assert isinstance(build_loss("2*mse", RATE), WeightedSum)


def test_options_reach_every_term_and_unknown_options_are_refused():
    loss = build_loss("dmol", RATE, {"dmol": {"mixtures": 2}, "mel": {"log_weight": 2.0}})
    assert loss.head_channels == 6
    summed = build_loss("mse+mel", RATE, {"mel": {"mag_weight": 0.5}})
    assert summed.terms[1].mag_weight == 0.5
    assert build_loss("mse", sample_rate=RATE).name == "mse"  # the old call
    with pytest.raises(UnknownLossError, match=r"loss_options.mel.nope: unknown option \(known: windows"):
        build_loss("mel", RATE, {"mel": {"nope": 1}})
    with pytest.raises(UnknownLossError, match="loss 'dmol': mixtures must be >= 1"):
        build_loss("dmol", RATE, {"dmol": {"mixtures": 0}})


def test_job_names_are_readable_folder_names():
    assert job_name("mse", 0) == "mse-seed0"
    assert job_name("mse+0.1*bark", 2) == "mse+0.1xbark-seed2"
    assert job_name("mse + 0.1 * bark", 0) == "mse+0.1xbark-seed0"


def test_validate_accepts_expressions_and_refuses_clashes(tmp_path):
    ok = load_config("tiny", {"losses": ["mse+0.1*bark", "bark"], "loss_options": {"dmol": {"mixtures": 3}}})
    assert validate(ok, "cpu", tmp_path).type == "cpu"
    with pytest.raises(RunError, match="same job"):
        validate(load_config("tiny", {"losses": ["mse+0.1*bark", "mse + 0.1*bark"]}), "cpu", tmp_path)
    with pytest.raises(UnknownLossError, match="loss_options: unknown loss 'nope'"):
        validate(load_config("tiny", {"loss_options": {"nope": {}}}), "cpu", tmp_path)
    with pytest.raises(UnknownLossError, match="cannot sum"):
        validate(load_config("tiny", {"losses": ["mse+dmol"]}), "cpu", tmp_path)


def test_loss_options_change_the_run_id_only_when_set():
    plain = load_config("tiny")
    # Without options the id is the one runs had before options (or compile_mode, conv_impl) existed.
    assert plain.fingerprint() == "ff13d7c8"
    assert plain.fingerprint() != load_config("tiny", {"loss_options.dmol.mixtures": 3}).fingerprint()


def test_the_all_losses_grid_names_every_registered_loss():
    for preset in ("quick", "seed"):
        config = select_grid(load_config(preset), "all-losses")
        assert sorted(config.losses) == sorted(REGISTRY)
        assert "grids" not in config.model_dump()  # a run records the losses, not the grids
    with pytest.raises(ConfigError, match=r"--grid 'nope': unknown grid \(known: all-losses, all-losses\+plugins\)"):
        select_grid(load_config("quick"), "nope")


def test_the_cli_runs_a_sum_beside_a_plain_loss(tmp_path):
    album = write_folder(tmp_path / "album", {"speech": [1.5, 1.2], "music": [1.2]})
    runner = CliRunner()
    args = ["run", "--preset", "tiny", "--data", str(album), "--out", str(tmp_path / "runs"), "--device", "cpu",
            "--budget", "2", "--no-eval", "--quiet"]
    result = runner.invoke(app, [*args, "--losses", "mse+0.5*mel,mel"])
    assert result.exit_code == 0, result.output
    run = next((tmp_path / "runs").iterdir())
    assert sorted(p.name for p in (run / "jobs").iterdir()) == ["mel-seed0", "mse+0.5xmel-seed0"]
    bad = runner.invoke(app, [*args, "--losses", "mse+x"])
    assert bad.exit_code == 2 and "unknown loss 'x' in 'mse+x'" in bad.output
    both = runner.invoke(app, [*args, "--losses", "mse", "--grid", "all-losses"])
    assert both.exit_code == 2 and "give one of them" in both.output
    grid = runner.invoke(app, [*args, "--grid", "nope"])
    assert grid.exit_code == 2 and "--grid 'nope': unknown grid" in grid.output
