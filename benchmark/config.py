"""Typed configuration: presets shipped as YAML, validated with pydantic.

Defaults live here and only here; a preset overrides some of them, and the CLI
overrides any field with ``--set section.key=value``. The resolved config is what
a run records.
"""

from __future__ import annotations

import hashlib
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

class ConfigError(ValueError):
    """A configuration problem, with a one-line message naming the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    path: str | None = None  # None: the built-in corpus
    corpus_minutes: float = Field(10.0, gt=0)
    sample_rate: int = Field(11025, ge=4000, le=96000)
    window: int = Field(2048, ge=64)
    test_fraction: float = Field(0.25, ge=0.0, lt=1.0)
    split_seed: int = 0
    normalize_windows: bool = True  # the seed divides each window by its own max |x|
    min_window_rms: float = Field(1e-3, ge=0.0)  # near-silent windows are left out
    windows_per_epoch: int = Field(100_000, ge=1)


class ModelConfig(_Section):
    # The model: gated-conv (the seed's autoencoder, set up by the keys below), an installed plugin's
    # name, module.path:Class or path/to/file.py:Class (then configured by model_options).
    name: str = "gated-conv"
    # Encoder: a first conv*sigmoid(gate) layer, then gated layers; lists run input → code.
    encoder_channels: list[int] = [256, 512, 512, 512, 512]
    encoder_kernels: list[int] = [16, 8, 8, 8, 4]
    encoder_strides: list[int] = [8, 4, 4, 4, 2]
    encoder_padding: list[int] = [4, 2, 2, 2, 0]
    latent: int = Field(128, ge=1)
    # Decoder gated layers, code → output; kernels/strides/padding mirror the encoder.
    decoder_channels: list[int] = [512, 512, 512, 256]
    pixel_norm: bool = True
    gating: Literal["tanh-sigmoid", "sigmoid", "none"] = "tanh-sigmoid"
    init_std: float = Field(0.02, gt=0)

    @model_validator(mode="after")
    def _lengths_agree(self) -> "ModelConfig":
        n = len(self.encoder_channels)
        for key in ("encoder_kernels", "encoder_strides", "encoder_padding"):
            if len(getattr(self, key)) != n:
                raise ValueError(f"model.{key} has {len(getattr(self, key))} entries, model.encoder_channels has {n}")
        if len(self.decoder_channels) != n - 1:
            raise ValueError(f"model.decoder_channels needs {n - 1} entries (one per gated encoder layer)")
        return self


class TrainConfig(_Section):
    lr: float = Field(5e-5, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    batch: int = Field(32, ge=1)
    budget: str = "200e"  # steps ("5000"), epochs ("200e") or minutes ("3m")
    checkpoint_every: int = Field(500, ge=1)
    log_every: int = Field(10, ge=1)
    grad_clip: float | None = None
    bf16: bool = True  # CUDA only: bf16 autocast
    tf32: bool = True  # CUDA only: TF32 matmuls and convolutions
    compile: bool = False
    # torch.compile's mode when compile is true; None is torch's own default.
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] | None = None
    # How the strided convolutions run: torch's convolutions, or matrix multiplies (same
    # parameters and results; meant for GPUs, slower on the CPU). See models.autoencoder.
    conv_impl: Literal["native", "gemm"] = "native"

    @field_validator("budget")
    @classmethod
    def _budget_parses(cls, value: str) -> str:
        parse_budget(value)
        return value


class EvalConfig(_Section):
    excerpt_seconds: float = Field(8.0, gt=0)
    excerpts_per_category: int = Field(3, ge=1)
    batch: int = Field(64, ge=1)
    workers: int | None = None  # metric process pool; None: the CPU count


class RunConfig(_Section):
    preset: str = "custom"
    # Registered names or weighted sums of them ("mse+0.1*bark"); see losses.combine.
    losses: list[str] = ["mse", "bark"]
    seeds: int = Field(1, ge=1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    # Keyword options per registered loss, e.g. {adversarial: {warmup_steps: 100}};
    # they apply wherever that loss is built, alone or in a sum.
    loss_options: dict[str, dict[str, Any]] = {}
    # Keyword options of a plugin model (model.name), e.g. {channels: 32}.
    model_options: dict[str, Any] = {}
    # Named lists of losses a preset offers (`earshot run --grid NAME`), besides the
    # built-in `all-losses`. Not part of a run's recorded config: the chosen grid becomes its `losses`.
    grids: dict[str, list[str]] = Field(default_factory=dict, exclude=True)

    def fingerprint(self) -> str:
        """Short hash of everything that changes what a run computes."""
        tree = self.model_dump(mode="json")
        # Fields added after the first runs are left out at their defaults, so those runs keep their ids.
        for key in ("loss_options", "model_options"):
            if not tree[key]:
                del tree[key]
        if tree["model"]["name"] == "gated-conv":
            del tree["model"]["name"]
        for key, default in (("compile_mode", None), ("conv_impl", "native")):
            if tree["train"][key] == default:
                del tree["train"][key]
        blob = json.dumps(tree, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:8]


# The grid every preset offers: every loss earshot ships, one job each, in the registry's order;
# with "+plugins", every installed plugin loss after them. Read from the registry when chosen.
ALL_LOSSES_GRID = "all-losses"
ALL_LOSSES_AND_PLUGINS_GRID = "all-losses+plugins"


def select_grid(config: RunConfig, name: str) -> RunConfig:
    """The config with ``losses`` set to the grid ``name``: ``all-losses``, ``all-losses+plugins`` or one
    of the preset's ``grids``.

    Raises:
        ConfigError: no such grid, or the grid lists no losses.
    """
    from earshot.losses import REGISTRY  # imports torch: only when a grid is chosen

    grids = {**config.grids, ALL_LOSSES_GRID: REGISTRY.builtin_names(),
             ALL_LOSSES_AND_PLUGINS_GRID: [*REGISTRY.builtin_names(), *REGISTRY.plugin_names()]}
    if name not in grids:
        raise ConfigError(f"--grid {name!r}: unknown grid (known: {', '.join(sorted(grids))})")
    if not grids[name]:
        raise ConfigError(f"--grid {name!r}: the grid lists no losses")
    return config.model_copy(update={"losses": list(grids[name])})


_BUDGET = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(steps?|e|epochs?|m|min|h)?\s*$")


def parse_budget(text: str) -> tuple[str, float]:
    """``"5000"`` → ("steps", 5000); ``"200e"`` → ("epochs", 200); ``"3m"`` → ("minutes", 3)."""
    match = _BUDGET.match(str(text))
    if not match:
        raise ValueError(f"budget {text!r} is not N (steps), Ne (epochs), Nm (minutes) or Nh (hours)")
    value, unit = float(match.group(1)), (match.group(2) or "steps")
    if value <= 0:
        raise ValueError(f"budget {text!r} must be positive")
    if unit.startswith("step"):
        return "steps", value
    if unit.startswith("e"):
        return "epochs", value
    if unit == "h":
        return "minutes", value * 60
    return "minutes", value


def preset_names() -> list[str]:
    files = resources.files("earshot.benchmark.presets").iterdir()
    return sorted(p.name[:-5] for p in files if p.name.endswith(".yaml"))


def _format_error(err: ValidationError) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "config"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{key}: {message}"


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``"train.lr=1e-4"`` → ("train.lr", 1e-4); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. train.lr=1e-4")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def load_config(preset: str = "quick", overrides: dict[str, Any] | None = None,
                preset_file: Path | None = None) -> RunConfig:
    """The resolved config: defaults, then the preset, then the overrides.

    Raises:
        ConfigError: an unknown preset, key or a bad value, in one line.
    """
    if preset_file is not None:
        try:
            tree = yaml.safe_load(Path(preset_file).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"{preset_file}: cannot read ({exc.__class__.__name__})") from None
    else:
        if preset not in preset_names():
            raise ConfigError(f"unknown preset {preset!r} (known: {', '.join(preset_names())})")
        text = resources.files("earshot.benchmark.presets").joinpath(f"{preset}.yaml").read_text()
        tree = yaml.safe_load(text) or {}
        tree.setdefault("preset", preset)
    if not isinstance(tree, dict):
        raise ConfigError(f"preset {preset!r}: top level must be a mapping")
    for key, value in (overrides or {}).items():
        _set_dotted(tree, key, value)
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def config_from_dict(tree: dict) -> RunConfig:
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as err:
        raise ConfigError(_format_error(err)) from None


def dump_config(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
