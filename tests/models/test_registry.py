"""A user's own model through the registry the gated conv autoencoder comes through, checked on a random
batch before training, each failure in one line naming it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from earshot.benchmark.cli.app import app
from earshot.benchmark.config import load_config
from earshot.models import (MODELS, GatedConvAutoencoder, PluginModel, UnknownModelError, build_model, check_model,
                            count_parameters, model_from_args)

runner = CliRunner()
WINDOW = 2048

CODEC = """
import torch
from torch import nn

class Codec(nn.Module):
    def __init__(self, window, head_channels=1, latent=8):
        super().__init__()
        self.latent = latent
        self.down = nn.Linear(window, latent)
        self.up = nn.Linear(latent, head_channels * window)
        self.shape = (head_channels, window)

    def encode(self, x):
        return self.down(x[:, 0])

    def decode(self, code):
        return self.up(code).view(-1, *self.shape)

    def forward(self, x):
        return self.decode(self.encode(x))
"""

#: (what to change in CODEC, the fragment its one-line message must hold)
BROKEN = {
    "wrong output shape": (("return self.decode(self.encode(x))", "return self.decode(self.encode(x))[..., ::2]"),
                           "forward of (2, 1, 2048) returned (2, 1, 1024), expected (2, 1, 2048) "
                           "(batch, head_channels, window)"),
    "no encode": (("def encode(self, x):", "def _encode(self, x):"), "Codec defines no encode"),
    "constructor fails": (("self.latent = latent", "self.latent = latent // 0"),
                          "cannot build it with window=2048, head_channels=1: ZeroDivisionError: "),
    "latent mismatch": (("self.latent = latent", "self.latent = latent + 1"),
                        "its latent is 9 but encode gives 8 values per window"),
    "forward fails": (("return self.decode(self.encode(x))", "return self.decode(self.encode(x[:, :, :5]))"),
                      "forward failed on a random batch of shape (2, 1, 2048): RuntimeError: "),
}


def _codec(folder: Path, change: tuple[str, str] = ("", "")) -> str:
    path = folder / "codec.py"
    path.write_text(CODEC.replace(*change) if change[0] else CODEC)
    return f"{path}:Codec"


def test_the_gated_conv_model_comes_through_the_same_door():
    assert MODELS.resolve("gated-conv") is GatedConvAutoencoder
    assert MODELS.builtin_names() == ["gated-conv"]
    config = load_config("tiny")
    model = build_model(config.model, WINDOW, 1)
    assert isinstance(model, GatedConvAutoencoder) and model.latent == config.model.latent
    with pytest.raises(UnknownModelError, match=r"^model_options\.channels: the gated-conv model takes its settings"):
        build_model(config.model, WINDOW, 1, {"channels": 3})


def test_a_user_model_is_driven_like_the_built_in_one(tmp_path):
    spec = _codec(tmp_path)
    model = check_model(spec, WINDOW, 3, {"latent": 5})
    assert isinstance(model, PluginModel) and model.latent == 5
    windows = torch.randn(4, WINDOW)
    assert model(windows).shape == (4, 3, WINDOW) and model.encode(windows).shape == (4, 5)
    rebuilt = model_from_args(model.init_args)
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt(windows), model(windows))
    assert count_parameters(model) == (WINDOW + 1) * 5 + (5 + 1) * 3 * WINDOW
    with pytest.raises(UnknownModelError, match=r"^model_options\.width: model .*codec\.py:Codec takes no such "
                                                r"option \(known: latent\)$"):
        check_model(spec, WINDOW, 1, {"width": 3})


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_model_is_refused_in_one_line_naming_it(case, tmp_path):
    change, expected = BROKEN[case]
    spec = _codec(tmp_path, change)
    with pytest.raises(UnknownModelError) as raised:
        check_model(spec, WINDOW, 1)
    assert str(raised.value).startswith(f"model {spec}: ") and "\n" not in str(raised.value)
    assert expected in str(raised.value)


def test_models_check_and_run_refuse_a_wrong_shape_before_training(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _codec(tmp_path, BROKEN["wrong output shape"][0])
    checked = runner.invoke(app, ["models", "check", "./codec.py:Codec", "--preset", "tiny"])
    assert checked.exit_code == 2 and len(checked.output.strip().splitlines()) == 1
    assert checked.output.startswith("error: model ./codec.py:Codec: forward of (2, 1, 2048) returned (2, 1, 1024)")
    ran = runner.invoke(app, ["run", "--preset", "tiny", "--model", "./codec.py:Codec", "--out", "runs", "-q"])
    assert ran.exit_code == 2 and ran.output == checked.output and not (tmp_path / "runs").exists()


def test_models_lists_the_installed_example_and_checks_it(example_plugin):
    listed = runner.invoke(app, ["models"])
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.output.splitlines() if "\t" in line}
    assert rows["gated-conv"][1] == "built-in" and rows["tiny-codec"][1:] == [
        "plugin", "strided conv frames → linear code → transposed conv", "earshot-example-plugin 0.1.0"]
    checked = runner.invoke(app, ["models", "check", "tiny-codec", "--preset", "tiny",
                                  "--set", "model_options.latent=16"])
    assert checked.exit_code == 0, checked.output
    rows = {line.split("\t")[0]: line.split("\t")[1] for line in checked.output.splitlines() if "\t" in line}
    assert rows["model"] == "tiny-codec (earshot-example-plugin 0.1.0)"
    assert rows["latent rate"] == "172 values/s (16 per 1024-sample hop: 2048-sample windows overlapped by half, at 11025 Hz)"
    assert "× the gated-conv model on preset tiny" in rows["training step"]


def test_bench_times_a_user_model(tmp_path, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    _codec(tmp_path)
    result = runner.invoke(app, ["bench", "--preset", "tiny", "--device", "cpu", "--model", "./codec.py:Codec",
                                 "--losses", "mse,bark", "--steps", "1", "--json", "bench.json"])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "bench.json").read_text())
    assert figures["model"] == "./codec.py:Codec" and figures["model_gflop_per_window"] is None
    assert figures["parameters"] == (2048 + 1) * 8 + (8 + 1) * 2048
    assert set(figures["losses"]) == {"mse", "bark"} and figures["losses"]["mse"]["to_mse"] == 1.0
