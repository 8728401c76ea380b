"""Checking a loss before any job trains: it builds, and on a random batch of the run's shape its
forward returns a finite scalar that carries a gradient back to the decoder head."""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch

from earshot.losses.base import UnknownLossError, build_one, head_spec, options_key


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {text[0]}" if text else exc.__class__.__name__


def check_loss(term: str, sample_rate: int, window: int, options: Mapping[str, Mapping[str, Any]] | None = None,
               batch: int = 2, seed: int = 0) -> float:
    """Build the loss ``term`` (a name or reference) and run forward and backward once on a random
    batch: head ``(batch, head_channels, window)``, target ``(batch, window)``. Returns its value.

    Raises:
        UnknownLossError: one line naming the loss and what is wrong.
    """
    loss = build_one(term, sample_rate, options)
    kind, channels = head_spec(term, **dict((options or {}).get(options_key(term)) or {}))
    generator = torch.Generator().manual_seed(seed)
    target = (torch.rand(batch, window, generator=generator) * 2 - 1) * 0.5
    head = (torch.randn(batch, channels, window, generator=generator) * 0.1).requires_grad_(True)
    shape = f"head {tuple(head.shape)}, target {tuple(target.shape)}"
    try:
        value = loss(head, target)
    except Exception as exc:  # noqa: BLE001 (a user's forward can raise anything)
        raise UnknownLossError(f"loss {term}: forward failed on a random batch ({shape}): {_first_line(exc)}") \
            from None
    if not isinstance(value, torch.Tensor):
        raise UnknownLossError(f"loss {term}: forward returned {type(value).__name__}, not a torch tensor")
    if value.numel() != 1:
        raise UnknownLossError(f"loss {term}: forward returned shape {tuple(value.shape)}, not a scalar "
                               "(reduce it, e.g. with .mean())")
    number = float(value.detach().float())
    if not math.isfinite(number):
        raise UnknownLossError(f"loss {term}: forward returned {number} on a random batch ({shape})")
    if not value.requires_grad:
        raise UnknownLossError(f"loss {term}: forward's value carries no gradient (computed without the head, "
                               "under no_grad, or through .detach()/.item()/numpy)")
    try:
        value.reshape(()).backward()
    except Exception as exc:  # noqa: BLE001
        raise UnknownLossError(f"loss {term}: backward failed: {_first_line(exc)}") from None
    if head.grad is None or not torch.isfinite(head.grad).all():
        what = "no gradient" if head.grad is None else "a non-finite gradient"
        raise UnknownLossError(f"loss {term}: the decoder head gets {what} from it")
    return number
