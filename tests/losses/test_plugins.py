"""A user's own loss: by file, module path or installed entry point, through the registry's one door.

Each way a plugin can be wrong is refused before any job trains with one line that names it
and what is wrong; name clashes are refused; the built-in losses stay the default grid.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.benchmark.config import load_config, select_grid
from earshot.losses import REGISTRY, UnknownLossError, build_loss, check_loss
from tests.helpers import EXAMPLES, put_on_path

runner = CliRunner()
RATE, WINDOW = 11025, 2048

GOOD = """
import torch
from torch import nn

class Fine(nn.Module):
    def forward(self, head, target):
        return (head[:, 0] - target).abs().mean()
"""

#: (file text, class, the fragment its one-line message must hold)
BROKEN = {
    "file does not import": ("import numpy\nraise RuntimeError('no GPU here')\n", "Fine",
                             "cannot import {path}: RuntimeError: no GPU here"),
    "syntax error": ("def broken(:\n", "Fine", "cannot import {path}: SyntaxError: "),
    "no such class": (GOOD, "Nope", "no class Nope in {path} (it defines: Fine)"),
    "not a torch module": ("class Fine:\n    def forward(self, head, target):\n        return 0\n", "Fine",
                           "Fine is not a torch module (a subclass of torch.nn.Module)"),
    "forward fails": (GOOD.replace("(head[:, 0] - target)", "(head[:, 0] - target[:, :10])"), "Fine",
                      "forward failed on a random batch (head (2, 1, 2048), target (2, 2048)): RuntimeError: "),
    "non-scalar": (GOOD.replace(".abs().mean()", ".abs()"), "Fine",
                   "forward returned shape (2, 2048), not a scalar"),
    "non-finite": (GOOD.replace(".abs().mean()", ".abs().mean() / 0 * 0"), "Fine", "forward returned nan"),
    "no gradient": (GOOD.replace("return (head[:, 0] - target)", "return (head[:, 0].detach() - target)"), "Fine",
                    "forward's value carries no gradient"),
    "no forward": ("from torch import nn\nclass Fine(nn.Module):\n    pass\n", "Fine",
                   "Fine defines no forward(head, target)"),
}


def _write(folder: Path, text: str, name: str = "user_loss.py") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_loss_file_is_refused_in_one_line_naming_it(case, tmp_path):
    text, cls, expected = BROKEN[case]
    path = _write(tmp_path, text, f"{case.replace(' ', '_').replace('-', '_')}.py")
    spec = f"{path}:{cls}"
    with pytest.raises(UnknownLossError) as raised:
        check_loss(spec, RATE, WINDOW)
    message = str(raised.value)
    assert message.startswith(f"loss {spec}: ") and "\n" not in message
    assert expected.format(path=path) in message


def test_a_module_that_does_not_import_is_named_with_its_first_line():
    with pytest.raises(UnknownLossError, match=r"^loss no_such_module_here\.losses:X: cannot import "
                                               r"no_such_module_here\.losses: ModuleNotFoundError: No module named "
                                               r"'no_such_module_here'$"):
        build_loss("mse+no_such_module_here.losses:X", RATE)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(UnknownLossError, match=r"^loss \./nowhere\.py:X: no such file .*nowhere\.py$"):
        check_loss("./nowhere.py:X", RATE, WINDOW)


@pytest.mark.parametrize("case", ["no such class", "non-scalar", "no gradient"])
def test_losses_check_and_run_print_the_same_one_line_error_and_train_nothing(case, tmp_path, monkeypatch):
    text, cls, expected = BROKEN[case]
    monkeypatch.chdir(tmp_path)
    _write(tmp_path, text)
    spec = f"./user_loss.py:{cls}"
    checked = runner.invoke(app, ["losses", "check", spec, "--preset", "tiny"])
    assert checked.exit_code == 2
    assert checked.output.strip().startswith(f"error: loss {spec}: ") and len(checked.output.strip().splitlines()) == 1
    assert expected.format(path="./user_loss.py") in checked.output
    ran = runner.invoke(app, ["run", "--preset", "tiny", "--losses", f"mse,{spec}", "--out", "runs", "-q"])
    assert ran.exit_code == 2 and ran.output == checked.output  # the same check, before anything is written
    assert not (tmp_path / "runs").exists()


def test_losses_check_prints_the_probes_gradient_and_step_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(EXAMPLES / "my_loss.py", tmp_path)
    result = runner.invoke(app, ["losses", "check", "./my_loss.py:SpectralL1", "--preset", "tiny",
                                 "--set", "loss_options.spectral-l1.n_fft=128"])
    assert result.exit_code == 0, result.output
    rows = {line.split("\t")[0]: line.split("\t")[1] for line in result.output.splitlines() if "\t" in line}
    assert rows["value on identical"].startswith("0 ")  # the same signal: no loss
    noise = float(rows["value on white noise"].split()[0])
    gain = float(rows["value on gain ×0.5"].split()[0])
    assert noise > gain > 0 and "gradient norm" in rows["value on low-pass 1 kHz"]
    assert rows["origin"].startswith(f"file {tmp_path / 'my_loss.py'} (sha256 ")
    assert "× mse on preset tiny" in rows["training step"]
    bad = runner.invoke(app, ["losses", "check", "./my_loss.py:SpectralL1", "--preset", "tiny",
                              "--set", "loss_options.spectral-l1.hop=3"])
    assert bad.exit_code == 2 and "loss_options.spectral-l1.hop: unknown option (known: n_fft)" in bad.output


def test_an_installed_plugin_is_listed_with_its_package_and_built_by_name(example_plugin):
    listed = runner.invoke(app, ["losses"])
    assert listed.exit_code == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.output.splitlines() if "\t" in line}
    assert rows["log-spectral-l1"][1:] == ["1", "L1 distance between log STFT magnitudes",
                                           "earshot-example-plugin 0.1.0"]
    loss = build_loss("mse+0.5*log-spectral-l1", RATE, {"log-spectral-l1": {"n_fft": 128}})
    assert loss.terms[1].n_fft == 128 and loss.terms[1].sample_rate == RATE
    # a class that does not inherit Loss gets its defaults: the waveform head, decode, extra_step
    assert loss.terms[1].extra_step(None, None) == {} and loss.head_channels == 1


def test_all_losses_stays_earshots_own_and_plugins_join_only_when_asked(example_plugin):
    config = load_config("tiny")
    assert select_grid(config, "all-losses").losses == REGISTRY.builtin_names()
    assert "log-spectral-l1" not in REGISTRY.builtin_names()
    assert select_grid(config, "all-losses+plugins").losses == [*REGISTRY.builtin_names(), "log-spectral-l1"]


def test_name_clashes_are_refused_in_one_line(tmp_path, monkeypatch, example_plugin):
    # A file loss that calls itself by a built-in's name.
    path = _write(tmp_path, GOOD.replace("class Fine(nn.Module):", "class Fine(nn.Module):\n    name = 'mse'"))
    with pytest.raises(UnknownLossError, match=r"its name 'mse' is taken by the loss from earshot .*; give the class "
                                               r"another name$"):
        build_loss(f"{path}:Fine", RATE)
    # An installed plugin that declares a built-in's name, and a second one declaring the plugin's name.
    other = tmp_path / "other-site"
    _write(other / "clash_plugin", GOOD, "__init__.py")
    put_on_path(monkeypatch, other, "clash-plugin", "2.0",
                {"earshot.losses": {"mse": "clash_plugin:Fine", "log-spectral-l1": "clash_plugin:Fine"}})
    for name, expected in (("mse", "loss 'mse' is earshot's own and also declared by the installed plugin "
                                   "clash-plugin (clash_plugin:Fine): rename its entry point"),
                           ("log-spectral-l1", "loss 'log-spectral-l1' is declared by several installed plugins")):
        result = runner.invoke(app, ["run", "--preset", "tiny", "--losses", name, "--out", str(tmp_path / "runs")])
        assert result.exit_code == 2 and expected in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_broken_installed_plugin_is_listed_with_why_and_hides_no_other_loss(tmp_path, monkeypatch):
    site = tmp_path / "site"
    _write(site / "broken_plugin", "raise ImportError('needs libfoo')\n", "__init__.py")
    put_on_path(monkeypatch, site, "broken-plugin", "1.0", {"earshot.losses": {"broken": "broken_plugin:Loss"}})
    result = runner.invoke(app, ["losses"])
    assert result.exit_code == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in result.output.splitlines() if "\t" in line}
    assert set(REGISTRY) < set(rows)
    assert rows["broken"][1:3] == ["–", "cannot be used: loss broken (entry point broken_plugin:Loss): cannot import "
                                        "broken_plugin: ImportError: needs libfoo"]
