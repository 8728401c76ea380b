"""The loss interface and the registry by name.

A loss is a small ``nn.Module``: settings in ``__init__``, the loss in
``forward(head, target)``. It also says which decoder head it needs
(``head_channels``, and ``head_kind`` for what those channels mean) and how to
turn that head back into a waveform (``decode``), so training and evaluation
never need to know which loss they hold.

``build_loss`` takes a registered name or a weighted sum of them
(``"mse+0.1*bark"``, see ``losses.combine``), and per-loss keyword options
keyed by registered name (``{"adversarial": {"warmup_steps": 100}}``), the
``loss_options`` section of a run's config.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar, Mapping

import torch
from torch import nn


class Loss(nn.Module):
    """Base class of every earshot loss.

    Shapes: ``head`` is the decoder output ``(batch, head_channels, samples)``;
    ``target`` is the waveform ``(batch, samples)``.

    Subclasses take their settings as keyword arguments after ``sample_rate``,
    each with a default; ``build_loss`` passes the run's ``loss_options`` to them.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    head_channels: ClassVar[int] = 1
    # What the head's channels mean; terms of a weighted sum must agree on it.
    head_kind: ClassVar[str] = "waveform"

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate

    @classmethod
    def head_spec(cls, **options: Any) -> tuple[str, int]:
        """(head kind, head channels) this loss would need with ``options``, without building it."""
        return cls.head_kind, cls.head_channels

    @classmethod
    def missing_requirements(cls, **options: Any) -> list[str]:
        """What this loss with ``options`` needs that this machine lacks (a package, a model's
        weights), each as one line naming it and the command that installs it; [] when it can run.

        Checked for every loss of a run before its first job trains; the default needs nothing.
        """
        return []

    def decode(self, head: torch.Tensor) -> torch.Tensor:
        """Waveform ``(batch, samples)`` from the decoder head."""
        return head[:, 0]

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def extra_step(self, head: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """Hook the trainer calls after each generator step (a discriminator's update).

        Returns values to log; the default does nothing.
        """
        return {}


REGISTRY: dict[str, type[Loss]] = {}


def register(cls: type[Loss]) -> type[Loss]:
    """Class decorator: add a loss to the registry under ``cls.name``."""
    if not cls.name or cls.name in REGISTRY:
        raise ValueError(f"loss name {cls.name!r} is empty or already registered")
    REGISTRY[cls.name] = cls
    return cls


class UnknownLossError(ValueError):
    """A loss name, expression or option that cannot be built (one-line message)."""


def loss_option_names(cls: type[Loss]) -> list[str]:
    """The keyword options a registered loss's constructor takes (besides ``sample_rate``)."""
    params = inspect.signature(cls.__init__).parameters
    return [p for p, spec in params.items()
            if p not in ("self", "sample_rate") and spec.kind in (spec.POSITIONAL_OR_KEYWORD, spec.KEYWORD_ONLY)]


def check_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` for loss ``name`` as a dict, after checking every key is one of its options."""
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownLossError(f"loss_options: unknown loss {name!r} (known: {known})")
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise UnknownLossError(f"loss_options.{name}: expected a mapping of option: value, got {options!r}")
    known = loss_option_names(REGISTRY[name])
    for key in options:
        if key not in known:
            raise UnknownLossError(f"loss_options.{name}.{key}: unknown option (known: {', '.join(known) or 'none'})")
    return dict(options)


def check_all_options(options: Mapping[str, Mapping[str, Any]] | None) -> None:
    """Check every section of a run's ``loss_options``; raises ``UnknownLossError``."""
    for name, section in (options or {}).items():
        check_options(name, section)


def build_one(name: str, sample_rate: int, options: Mapping[str, Mapping[str, Any]] | None = None) -> Loss:
    """A registered loss by its name, with its section of ``options`` (keyed by loss name)."""
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownLossError(f"unknown loss {name!r} (known: {known})")
    kwargs = check_options(name, (options or {}).get(name))
    try:
        return REGISTRY[name](sample_rate=sample_rate, **kwargs)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, UnknownLossError):
            raise
        raise UnknownLossError(f"loss {name!r}: {exc}") from None


def build_loss(name: str, sample_rate: int, options: Mapping[str, Mapping[str, Any]] | None = None) -> Loss:
    """A loss from a registry name or a weighted sum of names (``"mse+0.1*bark"``).

    Args:
        name: a registered name, or terms ``[weight*]name`` joined by ``+``.
        sample_rate: samples per second.
        options: keyword options per registered loss name, e.g.
            ``{"dmol": {"mixtures": 5}}``; sections for losses not in ``name``
            are ignored, unknown keys are refused.

    Raises:
        UnknownLossError: an unknown name or option, a malformed expression or
            terms that need different decoder heads, in one line.
    """
    from earshot.losses.combine import build_expression

    return build_expression(name, sample_rate, options)


def missing_requirements(expression: str, options: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """What the terms of a loss expression need that this machine lacks, one line each
    (:meth:`Loss.missing_requirements`); [] when it can run.

    Raises:
        UnknownLossError: a malformed expression or an unknown name or option.
    """
    from earshot.losses.combine import parse_expression

    missing = []
    for _, name in parse_expression(expression):
        kwargs = check_options(name, (options or {}).get(name))
        missing += [line for line in REGISTRY[name].missing_requirements(**kwargs) if line not in missing]
    return missing


def describe_losses() -> list[tuple[str, str, int]]:
    """(name, one-line description, head channels) for every registered loss."""
    return [(n, REGISTRY[n].description, REGISTRY[n].head_channels) for n in sorted(REGISTRY)]
