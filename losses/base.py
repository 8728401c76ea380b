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
from typing import Any, ClassVar, Iterable, Mapping

import torch
from torch import nn

from earshot.models.plugins import PluginError, Registry, is_reference


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


class UnknownLossError(ValueError):
    """A loss name, expression or option that cannot be built (one-line message)."""


def _check_loss_class(label: str, cls: type) -> None:
    """What a plugin loss class must have before it is built: its own ``forward(head, target)``."""
    if cls.forward is nn.Module.forward:
        raise PluginError(f"loss {label}: {cls.__name__} defines no forward(head, target)")
    channels = getattr(cls, "head_channels", 1)
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise PluginError(f"loss {label}: head_channels must be a positive int, not {channels!r}")


# Every loss comes through this registry: earshot's own (``register``), installed plugins (entry-point
# group ``earshot.losses``) and references (``module:Class``, ``file.py:Class``); see earshot.models.plugins.
REGISTRY = Registry("loss", "earshot.losses", UnknownLossError, check_class=_check_loss_class)


def register(cls: type[Loss]) -> type[Loss]:
    """Class decorator: add a loss to the registry under ``cls.name``."""
    return REGISTRY.register(cls)


def loss_class(term: str) -> type:
    """The class a loss name or reference names (loading a plugin on first use); raises ``UnknownLossError``."""
    return REGISTRY.resolve(term)


def loss_option_names(cls: type[Loss]) -> list[str]:
    """The keyword options a registered loss's constructor takes (besides ``sample_rate``)."""
    params = inspect.signature(cls.__init__).parameters
    return [p for p, spec in params.items()
            if p not in ("self", "sample_rate") and spec.kind in (spec.POSITIONAL_OR_KEYWORD, spec.KEYWORD_ONLY)]


def options_key(term: str) -> str:
    """The section of ``loss_options`` that configures the loss ``term`` (a plugin by reference: its
    class's ``name``, else its class name)."""
    return REGISTRY.options_key(term)


def check_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """``options`` for loss ``name`` (a name or reference) as a dict, after checking every key is one of its options."""
    cls = REGISTRY.resolve(name)
    key = options_key(name)
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise UnknownLossError(f"loss_options.{key}: expected a mapping of option: value, got {options!r}")
    known = loss_option_names(cls)
    for option in options:
        if option not in known:
            raise UnknownLossError(f"loss_options.{key}.{option}: unknown option (known: {', '.join(known) or 'none'})")
    return dict(options)


def check_all_options(options: Mapping[str, Mapping[str, Any]] | None, expressions: Iterable[str] = ()) -> None:
    """Check every section of a run's ``loss_options`` (for the losses of ``expressions`` and every
    registered or installed one); raises ``UnknownLossError``."""
    from earshot.losses.combine import parse_expression

    used = {options_key(term): term for expression in expressions for _, term in parse_expression(expression)}
    for name, section in (options or {}).items():
        if name not in used and name not in REGISTRY.known():
            known = ", ".join(sorted(set(REGISTRY.known()) | set(used)))
            raise UnknownLossError(f"loss_options: unknown loss {name!r} (known: {known})")
        check_options(used.get(name, name), section)


def head_spec(term: str, **options: Any) -> tuple[str, int]:
    """(head kind, head channels) the loss ``term`` with ``options`` needs, without building it."""
    cls = REGISTRY.resolve(term)
    if hasattr(cls, "head_spec"):
        return cls.head_spec(**options)
    return getattr(cls, "head_kind", "waveform"), getattr(cls, "head_channels", 1)


def _with_loss_defaults(loss: nn.Module, name: str) -> nn.Module:
    """A loss that does not inherit ``Loss`` gets its defaults (decode, extra_step, head), so training
    and evaluation treat every loss alike."""
    for attr in ("decode", "extra_step"):
        if not hasattr(loss, attr):
            setattr(loss, attr, getattr(Loss, attr).__get__(loss))
    for attr, default in (("head_channels", 1), ("head_kind", "waveform"), ("name", name), ("description", "")):
        if not hasattr(loss, attr):
            setattr(loss, attr, default)
    return loss


def build_one(name: str, sample_rate: int, options: Mapping[str, Mapping[str, Any]] | None = None) -> Loss:
    """A loss by its name or reference, with its section of ``options`` (keyed by loss name)."""
    cls = REGISTRY.resolve(name)
    kwargs = check_options(name, (options or {}).get(options_key(name)))
    params = inspect.signature(cls.__init__).parameters
    takes_rate = "sample_rate" in params or (cls.__init__ is not nn.Module.__init__ and
                                             any(p.kind == p.VAR_KEYWORD for p in params.values()))
    try:
        loss = cls(sample_rate=sample_rate, **kwargs) if takes_rate else cls(**kwargs)
    except Exception as exc:  # noqa: BLE001 (a plugin's constructor can raise anything)
        if isinstance(exc, UnknownLossError):
            raise
        if not (isinstance(exc, (TypeError, ValueError)) or is_reference(name) or not REGISTRY.is_builtin(name)):
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        label = f"{name}: cannot build it" if is_reference(name) else repr(name)
        raise UnknownLossError(f"loss {label}: {first}") from None
    if not takes_rate:
        loss.sample_rate = sample_rate
    return _with_loss_defaults(loss, name)


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
        kwargs = check_options(name, (options or {}).get(options_key(name)))
        needs = getattr(REGISTRY.resolve(name), "missing_requirements", None)
        missing += [line for line in (needs(**kwargs) if needs else []) if line not in missing]
    return missing


def describe_losses() -> list[tuple[str, str, int | None, str]]:
    """(name, one-line description, head channels, origin) for every registered loss and installed
    plugin; a plugin that cannot be loaded is listed with why (its head None), so one broken
    install does not hide the rest."""
    rows = []
    for name in sorted(set(REGISTRY) | set(REGISTRY.plugin_names())):
        try:
            cls = REGISTRY.resolve(name)
        except UnknownLossError as exc:
            rows.append((name, f"cannot be used: {exc}", None, "an installed plugin"))
            continue
        rows.append((name, getattr(cls, "description", "") or (cls.__doc__ or "").strip().split("\n")[0],
                     getattr(cls, "head_channels", 1), REGISTRY.origin_of(name).describe()))
    return rows
