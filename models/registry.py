"""The model registry: the gated conv autoencoder and a user's own model, through one door.

A model maps windows ``(batch, 1, window)`` to a decoder head ``(batch, head_channels, window)``
and exposes ``encode`` (windows → code) and ``decode`` (code → head). It is built as
``Class(window=..., head_channels=..., **model_options)`` (and ``sample_rate=...`` when its
constructor takes it). Its code size per window is its ``latent`` attribute, or else measured
from ``encode``. The harness feeds every model ``(batch, window)``; :class:`PluginModel` adds the
channel axis a plugin expects.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, Mapping

import torch
from torch import nn

from earshot.models.autoencoder import GatedConvAutoencoder, build_gated_conv
from earshot.models.plugins import PluginError, Registry

DEFAULT_MODEL = "gated-conv"


class UnknownModelError(ValueError):
    """A model name, reference or option that cannot be used (one-line message)."""


def _check_model_class(label: str, cls: type) -> None:
    missing = [m for m in ("encode", "decode") if not callable(getattr(cls, m, None))]
    if cls.forward is nn.Module.forward:
        missing.insert(0, "forward")
    if missing:
        raise PluginError(f"model {label}: {cls.__name__} defines no {', '.join(missing)} (a model maps "
                          "(batch, 1, window) to (batch, head_channels, window) with forward, encode and decode)")


# Every model comes through this registry: earshot's own, installed plugins (entry-point group
# ``earshot.models``) and references (``module:Class``, ``file.py:Class``).
MODELS = Registry("model", "earshot.models", UnknownModelError, check_class=_check_model_class)
MODELS.register(GatedConvAutoencoder, DEFAULT_MODEL)


class PluginModel(nn.Module):
    """A user's model as the harness drives it: ``(batch, window)`` in, head out; ``encode``/``decode``
    passed through; ``latent`` its code size per window; ``init_args`` what rebuilds it."""

    def __init__(self, model: nn.Module, name: str, window: int, head_channels: int,
                 options: Mapping[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.window, self.head_channels = window, head_channels
        self.init_args = {"name": name, "window": window, "head_channels": head_channels, "options": dict(options)}
        latent = getattr(model, "latent", None)
        if latent is None:
            with torch.no_grad():
                latent = self.model.encode(torch.zeros(1, 1, window)).numel()
        self.latent = int(latent)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.unsqueeze(1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encode(x.unsqueeze(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.model.decode(code)

    def set_conv_impl(self, impl: str) -> "PluginModel":
        if impl != "native":
            raise ValueError(f"train.conv_impl {impl!r} applies to the built-in {DEFAULT_MODEL} model only")
        return self


def check_model_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``model_options`` for model ``name`` as a dict, every key one its constructor takes."""
    options = dict(options or {})
    if name == DEFAULT_MODEL:
        if options:
            raise UnknownModelError(f"model_options.{next(iter(options))}: the {DEFAULT_MODEL} model takes its "
                                    "settings from the model section (model.latent, model.encoder_channels, ...)")
        return options
    cls = MODELS.resolve(name)
    params = inspect.signature(cls.__init__).parameters
    if cls.__init__ is not nn.Module.__init__ and any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return options
    known = [p for p in params if p not in ("self", "window", "head_channels", "sample_rate")]
    for key in options:
        if key not in known:
            raise UnknownModelError(f"model_options.{key}: model {name} takes no such option "
                                    f"(known: {', '.join(known) or 'none'})")
    return options


def build_model(model_config, window: int, head_channels: int = 1, options: Mapping[str, Any] | None = None,
                sample_rate: int | None = None) -> nn.Module:
    """The model a ``ModelConfig`` names (``model.name``; the gated conv autoencoder by default) for a loss's head.

    Raises:
        UnknownModelError: an unknown model, a bad option or a constructor that fails, in one line.
    """
    name = getattr(model_config, "name", DEFAULT_MODEL)
    if name == DEFAULT_MODEL:
        check_model_options(name, options)
        return build_gated_conv(model_config, window, head_channels)
    return build_plugin_model(name, window, head_channels, options, sample_rate)


def build_plugin_model(name: str, window: int, head_channels: int, options: Mapping[str, Any] | None = None,
                       sample_rate: int | None = None) -> PluginModel:
    cls = MODELS.resolve(name)
    kwargs = check_model_options(name, options)
    params = inspect.signature(cls.__init__).parameters
    if sample_rate is not None and "sample_rate" in params:
        kwargs = {"sample_rate": sample_rate, **kwargs}
    try:
        model = cls(window=window, head_channels=head_channels, **kwargs)
        return PluginModel(model, name, window, head_channels, kwargs)
    except Exception as exc:  # noqa: BLE001 (a user's constructor can raise anything)
        raise UnknownModelError(f"model {name}: cannot build it with window={window}, head_channels={head_channels}"
                                f"{''.join(f', {k}={v!r}' for k, v in kwargs.items())}: {_first_line(exc)}") from None


def model_from_args(init_args: Mapping[str, Any]) -> nn.Module:
    """The model a checkpoint's ``model_args`` describe (before its weights are loaded)."""
    if "name" in init_args and init_args["name"] != DEFAULT_MODEL:
        options = dict(init_args.get("options") or {})
        return build_plugin_model(init_args["name"], init_args["window"], init_args["head_channels"], options)
    return GatedConvAutoencoder(**{k: v for k, v in init_args.items() if k != "name"})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def check_model(name: str, window: int, head_channels: int, options: Mapping[str, Any] | None = None,
                sample_rate: int | None = None, batch: int = 2) -> PluginModel:
    """Build a plugin model and run it once on a random batch of the run's shape; returns it.

    Raises:
        UnknownModelError: one line naming the model and what is wrong (it cannot be built, forward
            fails or returns another shape, encode/decode fail or do not round-trip to the head's shape,
            a non-finite output).
    """
    model = build_plugin_model(name, window, head_channels, options, sample_rate)
    x = torch.randn(batch, 1, window) * 0.1
    expected = (batch, head_channels, window)
    try:
        head = model.model(x)
    except Exception as exc:  # noqa: BLE001
        raise UnknownModelError(f"model {name}: forward failed on a random batch of shape {tuple(x.shape)}: "
                                f"{_first_line(exc)}") from None
    if not isinstance(head, torch.Tensor) or tuple(head.shape) != expected:
        got = tuple(head.shape) if isinstance(head, torch.Tensor) else type(head).__name__
        raise UnknownModelError(f"model {name}: forward of {tuple(x.shape)} returned {got}, expected {expected} "
                                f"(batch, head_channels, window)")
    if not torch.isfinite(head).all():
        raise UnknownModelError(f"model {name}: forward returned non-finite values on a random batch")
    try:
        code = model.model.encode(x)
        decoded = model.model.decode(code)
    except Exception as exc:  # noqa: BLE001
        raise UnknownModelError(f"model {name}: encode/decode failed on a random batch: {_first_line(exc)}") from None
    if not isinstance(decoded, torch.Tensor) or tuple(decoded.shape) != expected:
        got = tuple(decoded.shape) if isinstance(decoded, torch.Tensor) else type(decoded).__name__
        raise UnknownModelError(f"model {name}: decode(encode(x)) returned {got}, expected {expected}")
    if code.numel() // batch != model.latent:
        raise UnknownModelError(f"model {name}: its latent is {model.latent} but encode gives "
                                f"{code.numel() // batch} values per window")
    if not math.isfinite(float(model.latent)) or model.latent < 1:
        raise UnknownModelError(f"model {name}: latent must be a positive int, not {model.latent!r}")
    return model


def latent_size(model: nn.Module) -> int:
    """Code values per window of a built model."""
    return int(model.latent)


def code_size(model_config, window: int, options: Mapping[str, Any] | None = None,
              sample_rate: int | None = None) -> int:
    """Code values per window of the model a ``ModelConfig`` names (a plugin is built once to ask it)."""
    name = getattr(model_config, "name", DEFAULT_MODEL)
    if name == DEFAULT_MODEL:
        return int(model_config.latent)
    return build_plugin_model(name, window, 1, options, sample_rate).latent
