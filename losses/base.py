"""The loss interface and the registry by name.

A loss is a small ``nn.Module``: settings in ``__init__``, the loss in
``forward(head, target)``. It also says which decoder head it needs
(``head_channels``) and how to turn that head back into a waveform
(``decode``), so training and evaluation never need to know which loss they hold.
"""

from __future__ import annotations

from typing import Callable, ClassVar

import torch
from torch import nn


class Loss(nn.Module):
    """Base class of every earshot loss.

    Shapes: ``head`` is the decoder output ``(batch, head_channels, samples)``;
    ``target`` is the waveform ``(batch, samples)``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    head_channels: ClassVar[int] = 1

    def __init__(self, sample_rate: int) -> None:
        super().__init__()
        self.sample_rate = sample_rate

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
    pass


def build_loss(name: str, sample_rate: int) -> Loss:
    """A loss from its registry name."""
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise UnknownLossError(f"unknown loss {name!r} (known: {known})")
    return REGISTRY[name](sample_rate=sample_rate)


def describe_losses() -> list[tuple[str, str, int]]:
    """(name, one-line description, head channels) for every registered loss."""
    return [(n, REGISTRY[n].description, REGISTRY[n].head_channels) for n in sorted(REGISTRY)]
