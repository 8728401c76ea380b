"""Weighted sums of losses: ``"mse+0.1*bark"``.

Grammar (spaces are ignored)::

    expression := term ("+" term)*
    term       := [weight "*"] name
    weight     := a positive finite number (0.1, 10, 1e-3)
    name       := a registered loss name (mse, bark-norm, mulaw-ce, ...), an installed
                  plugin's name, or a reference (mylib.losses:SpectralL1, ./my_loss.py:SpectralL1)

There is no subtraction (names contain ``-``) and the weight goes before the
name only, so every expression reads one way. A plain name builds that loss
itself, unwrapped; anything else builds a ``WeightedSum``. Every term must
need the same decoder head (same kind and channel count): ``mse+0.1*bark`` is
fine, ``mse+mulaw-ce`` is refused, as one head cannot be both a waveform and
256 logits.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import nn

from earshot.models.plugins import is_reference
from earshot.losses.base import REGISTRY, Loss, UnknownLossError, build_one, check_options, head_spec, options_key


def parse_expression(expression: str) -> list[tuple[float, str]]:
    """``"mse+0.1*bark"`` → ``[(1.0, "mse"), (0.1, "bark")]``.

    Raises:
        UnknownLossError: an empty term, a bad weight, an unknown or repeated
            name, in one line that quotes the expression.
    """
    if not isinstance(expression, str):
        raise UnknownLossError(f"loss {expression!r}: expected a name or an expression such as 'mse+0.1*bark'")
    text = "".join(expression.split())
    if not text:
        raise UnknownLossError("empty loss name")
    terms: list[tuple[float, str]] = []
    for raw in text.split("+"):
        if not raw:
            raise UnknownLossError(f"empty term in {expression!r} (terms are [weight*]name joined by +)")
        if "*" in raw:
            weight_text, _, name = raw.partition("*")
            if "*" in name or not weight_text:
                raise UnknownLossError(f"bad term {raw!r} in {expression!r}: expected [weight*]name, e.g. 0.1*bark")
            try:
                weight = float(weight_text)
            except ValueError:
                if _is_number(name):
                    raise UnknownLossError(f"bad term {raw!r} in {expression!r}: the weight goes first "
                                           f"({name}*{weight_text})") from None
                raise UnknownLossError(f"bad weight {weight_text!r} in {expression!r}: expected a number") from None
            if not math.isfinite(weight) or weight <= 0:
                raise UnknownLossError(f"bad weight {weight_text!r} in {expression!r}: must be positive and finite")
        else:
            weight, name = 1.0, raw
        if not name:
            raise UnknownLossError(f"empty loss name in term {raw!r} of {expression!r}")
        if not is_reference(name) and name not in REGISTRY.known():
            where = f" in {expression!r}" if text != name else ""
            raise UnknownLossError(f"unknown loss {name!r}{where} (known: {', '.join(REGISTRY.known())}; or a "
                                   f"plugin by reference, module.path:ClassName or path/to/file.py:ClassName)")
        REGISTRY.resolve(name)  # a plugin that cannot load says why, in one line
        if any(name == other for _, other in terms):
            raise UnknownLossError(f"loss {name!r} appears twice in {expression!r}: give it one weight")
        terms.append((weight, name))
    return terms


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def check_expression(expression: str, options: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[str, int]:
    """Parse ``expression`` and check its options and heads without building it.

    Returns the (head kind, head channels) it needs.
    """
    terms = parse_expression(expression)
    specs = []
    for _, name in terms:
        kwargs = check_options(name, (options or {}).get(options_key(name)))
        try:
            specs.append((name, head_spec(name, **kwargs)))
        except (TypeError, ValueError) as exc:
            raise UnknownLossError(f"loss {name!r}: {exc}") from None
    first_name, first = specs[0]
    for name, spec in specs[1:]:
        if spec != first:
            raise UnknownLossError(
                f"cannot sum {first_name!r} (head: {_head(first)}) and {name!r} (head: {_head(spec)}) in "
                f"{expression!r}: every term must use the same decoder head")
    return first


def _head(spec: tuple[str, int]) -> str:
    kind, channels = spec
    return f"{kind}, {channels} channel{'s' if channels != 1 else ''}"


def build_expression(expression: str, sample_rate: int,
                     options: Mapping[str, Mapping[str, Any]] | None = None) -> Loss:
    """A registered loss (a plain name) or a ``WeightedSum`` (anything else)."""
    terms = parse_expression(expression)
    check_expression(expression, options)
    if len(terms) == 1 and terms[0][0] == 1.0 and "".join(expression.split()) == terms[0][1]:
        return build_one(terms[0][1], sample_rate, options)
    return WeightedSum(sample_rate, [(w, build_one(n, sample_rate, options)) for w, n in terms],
                       expression="".join(expression.split()))


class WeightedSum(Loss):
    """``Σ weight_i · loss_i`` over losses that share one decoder head.

    Decoding is the first term's (they share the head, so any term decodes it
    the same way for a waveform head). ``extra_step`` runs every term's and
    logs its values as ``<name>.<key>``. The terms are submodules, so their
    state (a discriminator, its optimiser) is in this module's ``state_dict``.

    Args:
        sample_rate: samples per second.
        terms: ``[(weight, built loss), ...]``.
        expression: the name it was built from, for ``repr`` and logs.

    Shapes: as ``Loss``.
    """

    name = "weighted-sum"  # not registered: built from expressions only
    description = "a weighted sum of registered losses"

    def __init__(self, sample_rate: int, terms: list[tuple[float, Loss]], expression: str = "") -> None:
        super().__init__(sample_rate)
        if not terms:
            raise UnknownLossError("a weighted sum needs at least one term")
        kinds = {(t.head_kind, t.head_channels) for _, t in terms}
        if len(kinds) != 1:
            raise UnknownLossError(f"cannot sum losses with different heads: {sorted(kinds)}")
        self.terms = nn.ModuleList([t for _, t in terms])
        self.weights = [float(w) for w, _ in terms]
        self.expression = expression or "+".join(f"{w:g}*{t.name}" for w, t in terms)
        self.head_channels = terms[0][1].head_channels
        self.head_kind = terms[0][1].head_kind

    def extra_repr(self) -> str:
        return f"expression={self.expression!r}, weights={self.weights}"

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = None
        for weight, term in zip(self.weights, self.terms):
            value = weight * term(head, target)
            total = value if total is None else total + value
        return total

    def decode(self, head: torch.Tensor) -> torch.Tensor:
        return self.terms[0].decode(head)

    def extra_step(self, head: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        logged = {}
        for term in self.terms:
            for key, value in term.extra_step(head, target).items():
                logged[f"{term.name}.{key}"] = value
        return logged
