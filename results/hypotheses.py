"""Declared hypotheses: what a run is meant to show, written down before it trains.

A hypotheses file is YAML: a list under ``hypotheses:``, each entry

- ``name``: short and unique;
- ``metric``: a metric of the catalog;
- ``treatment``, ``baseline``: two losses (or systems) of the run; the contrast is
  ``treatment − baseline`` on the same (seed, item);
- ``direction``: ``higher`` (the treatment scores higher), ``lower``, or
  ``closer-to-ideal`` (its values lie closer to the metric's ideal, e.g. 0 dB);
- ``categories`` (optional): the categories pooled, default every one the metric applies to;
- ``smallest_effect`` (optional, ≥ 0, in the metric's unit): the least difference that matters;
- ``statement`` (optional): the hypothesis in words (default: made from the fields).

The seed's three claims are the default set (:data:`SEED_HYPOTHESES_FILE`). The file is
checked against the metric catalog and the run's losses before anything trains
(:func:`validate`), and recorded in the run with its sha256 and time
(:meth:`earshot.results.rundir.RunDir.record_hypotheses`); :func:`declared_for_run` says which
set a report checks and when it was declared.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from earshot.results.rundir import RunDir

SEED_HYPOTHESES_FILE = Path(__file__).with_name("hypotheses-seed.yaml")

DIRECTIONS = ("higher", "lower", "closer-to-ideal")
DIRECTION_WORDS = {"higher": "higher than", "lower": "lower than", "closer-to-ideal": "closer to the ideal than"}


class HypothesisError(ValueError):
    """A hypotheses file that cannot be used; the message is one line naming the file, the hypothesis
    and the bad value."""


class Hypothesis(BaseModel):
    """One declared hypothesis (see the module docstring for the fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    metric: str
    treatment: str
    baseline: str
    direction: Literal["higher", "lower", "closer-to-ideal"]
    categories: tuple[str, ...] | None = None
    smallest_effect: float | None = Field(default=None, ge=0)
    statement: str | None = None

    @model_validator(mode="after")
    def _two_systems(self) -> "Hypothesis":
        if self.treatment == self.baseline:
            raise ValueError(f"treatment and baseline are both {self.treatment!r}")
        return self

    def describe(self, unit: str | None = None) -> str:
        """The hypothesis in words: its ``statement``, else one made from the fields; with the
        smallest effect that matters when one is declared."""
        text = self.statement or (f"{self.treatment} scores {DIRECTION_WORDS[self.direction]} {self.baseline} "
                                  f"on {self.metric}" + (f" ({', '.join(self.categories)})" if self.categories else ""))
        if self.smallest_effect:
            text += f", by at least {self.smallest_effect:g}{' ' + unit if unit else ''}"
        return text


@dataclass(frozen=True)
class Declaration:
    """A set of hypotheses and where it comes from.

    ``when`` says how it was declared: ``before training`` and ``after training started`` for
    a set recorded in the run, ``after the fact`` for a file given to ``eval``/``report`` (not
    the one recorded), ``nowhere (the run records none)`` for the seed's default on a run that
    recorded no set.
    """

    hypotheses: tuple[Hypothesis, ...]
    source: str
    sha256: str
    declared_at: str | None  # ISO 8601, UTC; None for the default of a run that recorded none
    when: str

    def describe(self) -> str:
        """One sentence: which file, its hash, when it was declared."""
        at = f" at {self.declared_at}" if self.declared_at else ""
        return (f"{len(self.hypotheses)} hypotheses from {self.source} (sha256 {self.sha256[:12]}), "
                f"declared {self.when}{at}")


def sha256(text: str) -> str:
    """The hex sha256 of ``text`` as UTF-8: the hash :meth:`RunDir.record_hypotheses` records."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse(text: str, source: str) -> tuple[Hypothesis, ...]:
    """The hypotheses of a file's ``text``; ``source`` names the file in errors.

    Raises:
        HypothesisError: not YAML, not a list of hypotheses, a missing or unknown field, a bad
            direction, a repeated name.
    """
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise HypothesisError(f"{source}: not YAML ({' '.join(str(exc).split())})") from None
    entries = loaded.get("hypotheses") if isinstance(loaded, dict) else loaded
    if not isinstance(entries, list) or not entries:
        raise HypothesisError(f"{source}: expected a non-empty list of hypotheses under 'hypotheses:'")
    hypotheses, names = [], set()
    for number, entry in enumerate(entries, 1):
        label = repr(entry.get("name")) if isinstance(entry, dict) and entry.get("name") else f"#{number}"
        if not isinstance(entry, dict):
            raise HypothesisError(f"{source}: hypothesis {label}: expected a mapping of fields, got {entry!r}")
        try:
            hypothesis = Hypothesis(**entry)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            value = f" (got {error['input']!r})" if where and error["type"] != "missing" else ""
            message = error["msg"].removeprefix("Value error, ")
            raise HypothesisError(f"{source}: hypothesis {label}: "
                                  f"{where + ': ' if where else ''}{message}{value}") from None
        if hypothesis.name in names:
            raise HypothesisError(f"{source}: hypothesis {label}: the name is used twice")
        names.add(hypothesis.name)
        hypotheses.append(hypothesis)
    return tuple(hypotheses)


def read(path: str | Path) -> tuple[tuple[Hypothesis, ...], str]:
    """The hypotheses of a file and its text. Raises HypothesisError (also for a missing file)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HypothesisError(f"{path}: cannot read the hypotheses file ({exc.__class__.__name__})") from None
    return parse(text, str(path)), text


def validate(hypotheses: tuple[Hypothesis, ...], source: str, metric_info: dict[str, dict],
             losses: list[str] | None = None) -> None:
    """Check every hypothesis against the metric catalog and the run's losses.

    Arguments:
        hypotheses: as :func:`parse` returns them.
        source: the file's name, for the message.
        metric_info: metric → ``{"categories", "ideal", ...}`` (the catalog, or a run's record).
        losses: the run's losses and systems; None skips the loss check (the seed's default set on
            a run without ``bark``: its hypotheses are then inconclusive, not refused).

    Raises:
        HypothesisError: one line naming ``source``, the hypothesis and the bad value: an unknown
            metric, loss or category, or ``closer-to-ideal`` on a metric without an ideal.
    """
    for h in hypotheses:
        where = f"{source}: hypothesis {h.name!r}"
        if h.metric not in metric_info:
            raise HypothesisError(f"{where}: unknown metric {h.metric!r} (known: {', '.join(metric_info)})")
        info = metric_info[h.metric]
        if h.direction == "closer-to-ideal" and info.get("ideal") is None:
            raise HypothesisError(f"{where}: direction closer-to-ideal, but metric {h.metric} has no ideal value "
                                  f"(use higher or lower)")
        if losses is not None:
            for role, name in (("treatment", h.treatment), ("baseline", h.baseline)):
                if name not in losses:
                    raise HypothesisError(f"{where}: unknown {role} loss {name!r} (this run has: {', '.join(losses)})")
        applies = list(info.get("categories") or [])
        for category in h.categories or ():
            if applies and category not in applies:
                raise HypothesisError(f"{where}: unknown category {category!r} for metric {h.metric} "
                                      f"(it applies to: {', '.join(applies)})")


def declared_for_run(run_dir: str | Path, given: str | Path | None = None) -> Declaration:
    """The hypotheses a report of the run checks.

    ``given`` (a file passed to ``eval``/``report``) wins and is said to be declared after the
    fact; else the set recorded in the run; else the seed's default, said to be recorded nowhere.

    Raises:
        HypothesisError: ``given``, or the recorded file, cannot be read.
    """
    if given is not None:
        hypotheses, text = read(given)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return Declaration(hypotheses, str(given), sha256(text), now, "after the fact")
    recorded = RunDir(run_dir).read_hypotheses()
    if recorded is not None:
        text, entry = recorded
        when = "before training" if entry.get("before_training", True) else "after training started"
        return Declaration(parse(text, str(entry.get("source") or "hypotheses")), str(entry.get("source")),
                           str(entry.get("sha256")), entry.get("declared_at"), when)
    hypotheses, text = read(SEED_HYPOTHESES_FILE)
    return Declaration(hypotheses, "the seed's default set", sha256(text), None, "nowhere (the run records none)")
