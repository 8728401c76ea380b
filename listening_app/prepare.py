"""Test preparation: from a run directory to a stored, blind MUSHRA or ABX test.

Items are spread across the run's categories; each item's stimuli are the chosen jobs'
reconstructions, the hidden reference and the two anchors, all cut to the same length and
loudness-matched to the reference. The training page plays an item of its own that no trial
uses: the labelled training audio would otherwise name every letter of that trial. An ABX test
stores one item per excerpt and pair of conditions, holding those two stimuli. The audio
is copied into the database, so nothing a test plays lies in any folder a web server serves.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from earshot.listening_app import store, testtypes
from earshot.listening_app.audio import LOUDNESS_METHODS, MAX_PEAK, anchor_cutoffs, loudness_gains_db, lowpass, wav_bytes
from earshot.listening_app.rules import ItemPlan
from earshot.listening_app.settings import TestSettings
from earshot.results.rundir import RunDir


class PrepareError(ValueError):
    """A test that cannot be made from this run with these options: one line for the user."""


@dataclass
class Prepared:
    """What ``prepare_test`` made, for the CLI to report."""

    name: str
    items: list[str]
    conditions: list[str]
    anchor_low_hz: float
    anchor_mid_hz: float
    loudness: str  # how the stimuli were level-matched: "bs1770" or "rms"
    gains_db: dict[str, dict[str, float]] = field(default_factory=dict)  # item -> condition -> gain
    training_item: str | None = None  # played on the training page only, never a trial
    note: str = ""  # what the user should know about the choice of items (one trial fewer than asked)
    type: str = "mushra"
    trials: int = 0  # the items, or for ABX the items × pairs (attention checks apart)
    attention: int = 0  # attention checks, in every rater's order
    items_per_rater: int | None = None  # each rater's balanced subset of the trials; None: every trial


def select_items(excerpts: list[dict], count: int) -> list[dict]:
    """``count`` excerpts taken round-robin over the categories, so each is represented."""
    by_category: dict[str, list[dict]] = defaultdict(list)
    for excerpt in excerpts:
        by_category[excerpt["category"]].append(excerpt)
    chosen: list[dict] = []
    queues = [list(v) for _, v in sorted(by_category.items())]
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    return chosen


def split_training_item(excerpts: list[dict], count: int, training_item: str | None
                        ) -> tuple[list[dict], dict | None, str]:
    """The trial items and the training item, which is never one of them; and a note for the user.

    ``training_item`` names the run's item to train on; without it, it is the excerpt that the
    round-robin over categories would take after the trials, or, when the run has none to spare,
    the last trial item (the test then has one trial fewer than asked).
    """
    if training_item is not None:
        chosen = next((e for e in excerpts if e["item"] == training_item), None)
        if chosen is None:
            raise PrepareError(f"--training-item {training_item!r} is not an item of the run; its items: "
                               + ", ".join(e["item"] for e in excerpts))
        rest = [e for e in excerpts if e is not chosen]
        if not rest:
            raise PrepareError(f"the run has one item, {training_item!r}: it cannot be both the training item and a "
                               "trial (add --no-training, or evaluate more excerpts)")
        return select_items(rest, count), chosen, ""
    ordered = select_items(excerpts, count + 1)
    if len(ordered) < 2:
        raise PrepareError("the run has one item: it cannot be both the training item and a trial (add --no-training,"
                           " or evaluate more excerpts)")
    trials, training = ordered[:-1], ordered[-1]
    if len(ordered) <= count:  # nothing to spare: the training item would have been a trial
        return trials, training, (f"the run has {len(excerpts)} items: {len(trials)} trials, and "
                                  f"{training['item']} for training only (--no-training makes it a trial)")
    return trials, training, ""


def resolve_jobs(run_dir: Path, losses: list[str] | None, seed: int) -> list[str]:
    """Job names (``mse-seed0``) for the chosen losses at one seed, checked against the run."""
    run = RunDir(run_dir)
    reconstructed = set(run.reconstructed_jobs())
    recorded = run.read_record().get("jobs", {})
    done = {name: job for name, job in recorded.items() if name in reconstructed}
    if losses is None:
        losses = list(dict.fromkeys(job["loss"] for job in done.values()))
    chosen = []
    for loss in losses:
        matches = [name for name, job in done.items() if job["loss"] == loss and int(job["seed"]) == seed]
        if not matches and loss in reconstructed and loss not in recorded:
            matches = [loss]  # a system trained by no job (the linear baseline pca-<k>): one, seedless
        if not matches:
            have = sorted({f"{j['loss']} (seed {j['seed']})" for j in done.values()} | (reconstructed - set(recorded)))
            raise PrepareError(f"no evaluated job for loss {loss!r} at seed {seed}; the run has: {', '.join(have)}")
        chosen.append(matches[0])
    return chosen


def _read(path: Path, samples: int) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(path, dtype="float32", always_2d=False)
    return audio[:samples], rate


def prepare_test(run_dir: Path, db_url: str | None = None, items: int = 8, conditions: list[str] | None = None,
                 seed: int = 0, seconds: float | None = None, name: str | None = None,
                 settings: TestSettings | None = None, loudness: str = "bs1770",
                 training_item: str | None = None, test_type: str = "mushra", attention: int | None = None) -> Prepared:
    """Make a test from a run and store it (closed); ``earshot listen open`` opens it.

    ``loudness``: match every stimulus to the reference's BS.1770-4 integrated loudness
    (``bs1770``) or its RMS (``rms``). ``training_item``: the run's item the training page
    plays (see :func:`split_training_item`); refused when the test has no training page.
    ``attention``: that many trials with a known answer (the type's ``make_attention``), one on each of
    the first items, mixed into every rater's order; None: as ``settings.attention`` says.
    """
    run = RunDir(run_dir)
    if loudness not in LOUDNESS_METHODS:
        raise PrepareError(f"loudness method {loudness!r}: use one of {', '.join(LOUDNESS_METHODS)}")
    if not run.excerpts_file.exists():
        raise PrepareError(f"{run.path}: no {run.excerpts_file.name}: evaluate the run first (earshot eval {run.path})")
    settings = settings or TestSettings()
    if attention is not None:
        settings = settings.model_copy(update={"attention": attention})
        TestSettings.model_validate(settings.model_dump())  # the range check
    if seconds is not None:
        settings = settings.model_copy(update={"seconds": seconds})
        TestSettings.model_validate(settings.model_dump())  # the range check
    try:
        kind = testtypes.get(test_type)
    except ValueError as error:
        raise PrepareError(str(error)) from None
    jobs = resolve_jobs(run.path, conditions, seed)
    refused = kind.check_conditions(jobs)
    if refused:
        raise PrepareError(refused)
    excerpts = run.read_excerpts()
    if not excerpts:
        raise PrepareError(f"{run.path}: the run has no excerpts")
    if training_item is not None and not settings.training:
        raise PrepareError("--training-item: the test has no training page (--no-training)")
    if settings.training:
        chosen, training, note = split_training_item(excerpts, items, training_item)
    else:
        chosen, training, note = select_items(excerpts, items), None, ""
    rate = int(run.read_config()["data"]["sample_rate"])
    run_id = run.run_id
    low_hz, mid_hz = anchor_cutoffs(rate)
    samples = int(round(settings.seconds * rate))

    if settings.attention and kind.make_attention is None:
        raise PrepareError(f"--attention: {kind.title} tests have no attention checks yet")
    if settings.attention > len(chosen):
        raise PrepareError(f"--attention {settings.attention}: at most {len(chosen)}, one per item of the test")

    new_items, gains_report, checks = [], {}, []
    for excerpt in chosen + ([training] if training else []):
        new_stimuli = _stimuli(run, excerpt["item"], jobs, rate, samples, loudness, low_hz, mid_hz)
        gains_report[excerpt["item"]] = {s.condition: s.gain_db for s in new_stimuli}
        if excerpt is training:  # every condition, labelled on the training page, whatever the type
            new_items.append(store.NewItem(excerpt["item"], excerpt["category"], new_stimuli, training=True))
        else:
            new_items.extend(kind.make_items(excerpt, new_stimuli, jobs))
            if len(checks) < settings.attention:  # one check on each of the first items, the type's kinds in turn
                made = kind.make_attention(excerpt, new_stimuli, jobs)  # (MOS: a high and a low gold question)
                checks.append(made[len(checks) % len(made)])
    problems = kind.check_items([ItemPlan(i.name, [s.condition for s in i.stimuli], [s.kind for s in i.stimuli],
                                          [s.samples for s in i.stimuli]) for i in new_items if not i.training],
                                rate, low_hz, mid_hz)
    if problems:
        raise PrepareError("; ".join(problems))
    trials = len([i for i in new_items if not i.training])
    if settings.items_per_rater is not None and settings.items_per_rater > trials:
        raise PrepareError(f"--items-per-rater {settings.items_per_rater}: the test has {trials} trials")
    new_items.extend(checks)
    if name is None:
        digest = hashlib.sha256(json.dumps([run_id, jobs, [c["item"] for c in chosen],
                                            training["item"] if training else None,
                                            settings.model_dump(), loudness]
                                           + ([test_type] if test_type != "mushra" else [])).encode()).hexdigest()[:6]
        name = f"{run_id}-{test_type if test_type != 'mushra' else 'listen'}-{digest}"
    store.create_test(db_url, name, run.path, run_id, settings, rate, low_hz, mid_hz, new_items, loudness, test_type)
    return Prepared(name, [c["item"] for c in chosen], jobs, low_hz, mid_hz, loudness, gains_report,
                    training["item"] if training else None, note, test_type, trials, len(checks),
                    settings.items_per_rater)


def _stimuli(run: RunDir, item: str, jobs: list[str], rate: int, samples: int, loudness: str, low_hz: float,
             mid_hz: float) -> list[store.NewStimulus]:
    """One excerpt's stimuli: the reference, the two anchors and each job's reconstruction, cut to one
    length and level-matched to the reference."""
    reference, ref_rate = _read(run.reference_wav(item), samples)
    if ref_rate != rate:
        raise PrepareError(f"{item}: reference at {ref_rate} Hz, the run's rate is {rate} Hz")
    length = len(reference)
    signals = {store.REFERENCE: ("reference", reference),
               store.ANCHOR_LOW: ("anchor", lowpass(reference, rate, low_hz)),
               store.ANCHOR_MID: ("anchor", lowpass(reference, rate, mid_hz))}
    for job in jobs:
        recon, _ = _read(run.recon_wav(job, item), length)
        if len(recon) < length:
            recon = np.pad(recon, (0, length - len(recon)))
        signals[job] = ("system", recon)
    gains = dict(zip(signals, loudness_gains_db(reference, [s for _, s in signals.values()], rate, loudness)))
    matched = {c: s * 10 ** (gains[c] / 20) for c, (_, s) in signals.items()}
    # One common turn-down keeps every stimulus unclipped and still level-matched.
    peak = max(float(np.abs(s).max()) for s in matched.values())
    common_db = 20 * np.log10(MAX_PEAK / peak) if peak > MAX_PEAK else 0.0
    return [store.NewStimulus(condition, kind, wav_bytes(matched[condition] * 10 ** (common_db / 20), rate),
                              round(gains[condition] + common_db, 3), length)
            for condition, (kind, _) in signals.items()]
