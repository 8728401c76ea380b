"""The rater's side of a test, as plain functions: order, blind views, submission checks.

Nothing here imports Streamlit. A rater's order of trials and of stimuli within a trial
is derived from their token, so it is the same on every device and after every reload;
what the browser receives (letters, opaque keys, blinded audio) is made fresh for each
session and maps back to stimuli only through the server-side :class:`TrialView`.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import secrets
import string
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from earshot.listening_app import store
from earshot.listening_app.audio import blinded_wav
from earshot.listening_app.rules import ItemPlan
from earshot.listening_app.settings import TestSettings

#: A component value larger than this is refused unread: 12 stimuli need well under 4 kB.
MAX_VALUE_BYTES = 16_384
#: Longest plausible listening time reported for one stimulus of one trial, seconds.
MAX_PLAY_SECONDS = 6 * 3600
KIND_LABELS = {"reference": "Reference (hidden in trials)", "anchor-low": "Low anchor", "anchor-mid": "Mid anchor"}


def seeded_rng(*parts: object) -> np.random.Generator:
    """A generator fixed by ``parts`` (test seed, rater token, item…): the same draw on every reload and device."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def trial_order(items: list[store.ItemInfo], token: str, order_seed: int,
                subset: tuple[int, ...] | None = None) -> list[store.ItemInfo]:
    """The rater's order of the test's (non-training) items: random per rater, stable per token.

    ``subset``: the rater's own items (``RaterInfo.items``) when the test gives each rater some of
    them; the attention checks are every rater's, mixed in at random places.
    """
    rated = [i for i in items if not i.training and (subset is None or i.attention or i.id in subset)]
    order = seeded_rng("items", order_seed, token).permutation(len(rated))
    return [rated[k] for k in order]


def rater_order(db_url: str | None, rater: store.RaterInfo, test: store.TestInfo) -> list[store.ItemInfo]:
    """The trials of ``rater`` in their order."""
    return trial_order(store.test_items(db_url, test.id), rater.token, test.settings.order_seed, rater.items)


def stimulus_order(found: list[store.StimulusInfo], token: str, order_seed: int, item_id: int) -> list[store.StimulusInfo]:
    order = seeded_rng("stimuli", order_seed, token, item_id).permutation(len(found))
    return [found[k] for k in order]


def pair_items(excerpt: dict, stimuli: list[store.NewStimulus], conditions: list[str]) -> list[store.NewItem]:
    """One trial per pair of conditions (ABX, A/B): the pair's two stimuli, level-matched as in a MUSHRA trial."""
    by_condition = {s.condition: s for s in stimuli}
    return [store.NewItem(f"{excerpt['item']}: {a} vs {b}", excerpt["category"], [by_condition[a], by_condition[b]],
                          excerpt=excerpt["item"])
            for a, b in itertools.combinations(conditions, 2)]


def trial_number(db_url: str | None, rater: store.RaterInfo, test: store.TestInfo, item_id: int) -> int:
    """The 1-based place of an item in the rater's order of trials."""
    return [i.id for i in rater_order(db_url, rater, test)].index(item_id) + 1


def rule_messages(settings: TestSettings) -> dict[str, str]:
    """What a trial still lacks before it may be submitted, per rule that applies, ``{}`` standing for
    the letters: the player shows these live and :func:`check_submission` refuses with the same."""
    messages = {"unrated": "Rate every stimulus; not rated yet: {}."}
    if settings.must_play_all:
        messages["unplayed"] = "Play every stimulus before you submit; not played yet: {}."
    if settings.require_100:
        messages["no100"] = "Rate at least one stimulus 100: one of them is the hidden reference."
    return messages


def next_trial(db_url: str | None, rater: store.RaterInfo, test: store.TestInfo) -> tuple[store.ItemInfo | None, int, int]:
    """(first unsubmitted item in the rater's order or None, trials submitted, trials in all)."""
    order = rater_order(db_url, rater, test)
    done = store.submitted_items(db_url, rater.id)
    remaining = [i for i in order if i.id not in done]
    return (remaining[0] if remaining else None), len(order) - len(remaining), len(order)


@dataclass(frozen=True)
class TestType:
    """One kind of listening test, as the app, preparation and the CLI need it.

    Each type lives in its own module beside this one (``mushra.py``, ``abx.py``…) and is listed in
    ``testtypes.py``; its page in the player is ``player_frontend/<mode>.js`` (MUSHRA's is built in).
    The rater flow, the database's trials and the blindness rules are shared by all.
    """

    name: str
    title: str
    summary: str  # one line, for --help and the CLI
    instructions: str  # above the player on every trial page
    training_text: str  # the training page's, which plays every condition labelled
    # (excerpt, its level-matched stimuli, the conditions) -> the excerpt's trial items
    make_items: Callable[[dict, list[store.NewStimulus], list[str]], list[store.NewItem]]
    # (plans, sample rate, low and mid anchor cut-offs) -> what keeps the test from opening
    check_items: Callable[[list[ItemPlan], int, float, float], list[str]]
    # (db_url, rater, test, item, now) -> a fresh blind view of a trial
    make_view: Callable[..., "TrialView"]
    # (view, the player's value, settings) -> (the answer to save or None, what is missing or wrong)
    check_submission: Callable[["TrialView", Any, TestSettings], tuple[Any, list[str]]]
    # (db_url, token, item id, answer, seconds spent) -> trial id, in one transaction
    save: Callable[[str | None, str, int, Any, float], int]
    # conditions -> why this type cannot test them, or None
    check_conditions: Callable[[list[str]], str | None]
    # (conditions, items, trials per rater) -> what `listen prepare` made, one line
    describe: Callable[[list[str], int, int], str]
    training_systems_only: bool = False  # its trials play systems only, so training shows no anchors
    # (excerpt, its level-matched stimuli with the reference and both anchors, conditions) -> trials
    # whose answer is known (NewItem.attention): the clean reference against the low anchor, which a
    # rater who listens cannot get wrong; None where the type has none yet
    make_attention: Callable[[dict, list[store.NewStimulus], list[str]], list[store.NewItem]] | None = None
    introduction: str | None = None  # the start page's account of the task; None: MUSHRA's, with its scale


@dataclass
class TrialView:
    """One session's blind view of one trial: kept on the server (session state).

    ``keys`` are opaque random strings made for this session only; ``stimulus_ids`` maps
    them back. The browser sees letters, keys and blinded audio, nothing else.
    """

    item_id: int
    nonce: str
    letters: list[str]
    keys: list[str]
    stimulus_ids: dict[str, int]
    labels: dict[str, str]  # key -> what the training page may show ("Low anchor"); empty in trials
    component_args: dict
    shown_at: float


def make_view(db_url: str | None, rater: store.RaterInfo, test: store.TestInfo, item: store.ItemInfo,
              now: float, training: bool = False, systems_only: bool = False) -> TrialView:
    """A fresh blind view of ``item`` for this session (new keys, new blinding every call).

    ``systems_only``: the training page of a type whose trials play no anchors shows the reference and
    the systems only.
    """
    found = stimulus_order(store.item_stimuli(db_url, item.id), rater.token, test.settings.order_seed, item.id)
    if training:  # the training page shows stimuli labelled, in a fixed, readable order
        rank = {"reference": 0, "anchor-mid": 2, "anchor-low": 3}
        found = sorted(found, key=lambda s: rank.get(s.condition, 1))
    reference = next(s for s in found if s.kind == "reference")
    audio = store.stimulus_audio(db_url, [s.id for s in found])
    if training and systems_only:  # the reference heads the page, alone
        found = [s for s in found if s.kind == "system"]
    rng = np.random.default_rng(secrets.randbits(64))
    keys = [secrets.token_hex(6) for _ in found]
    letters = list(string.ascii_uppercase[:len(found)])
    labels: dict[str, str] = {}
    if training:
        system_number = 0
        for key, s in zip(keys, found):
            if s.kind == "system":
                system_number += 1
                labels[key] = f"System {system_number}"
            else:
                labels[key] = KIND_LABELS[s.condition]
    nonce = secrets.token_hex(8)
    args = {
        "nonce": nonce,
        "mode": "training" if training else "trial",
        "rules": {} if training else rule_messages(test.settings),
        "reference": base64.b64encode(blinded_wav(audio[reference.id], rng)).decode(),
        "stimuli": [{"key": k, "label": labels.get(k, letter),
                     "audio": base64.b64encode(blinded_wav(audio[s.id], rng)).decode()}
                    for k, letter, s in zip(keys, letters, found)],
    }
    return TrialView(item.id, nonce, letters, keys, {k: s.id for k, s in zip(keys, found)}, labels, args, now)


@dataclass
class Checked:
    """The outcome of checking a submitted value: ratings to write, or what is wrong."""

    ratings: list[store.Rating]
    problems: list[str]


def bounded_number(value, low: float, high: float) -> float | None:
    """A number the browser sent, when it is one and within [low, high]; else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and low <= value <= high else None


def value_problem(view: TrialView, value, dicts: tuple[str, ...] = ("seconds", "plays")) -> str | None:
    """Why the player's value cannot be read as an answer to this session's trial, or None.

    The value comes from a browser, so its size, shape (``dicts`` are its fields that must be
    objects) and nonce are checked before anything in it is read.
    """
    try:
        size = len(json.dumps(value))
    except (TypeError, ValueError):
        return "the player sent a value that is not valid"
    if size > MAX_VALUE_BYTES:
        return "the player sent a value that is too large"
    if not isinstance(value, dict) or not all(isinstance(value.get(f), dict) for f in dicts):
        return "the player sent a value that is not valid"
    if value.get("nonce") != view.nonce:
        return "this answer belongs to another trial or session: reload the page"
    return None


def play_record(value: dict, key: str) -> tuple[int, float] | None:
    """(plays, seconds listened) of one stimulus as the player reported them; None when not plausible."""
    played = bounded_number(value["seconds"].get(key, 0), 0, MAX_PLAY_SECONDS)
    count = value["plays"].get(key, 0)
    if played is None or isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 100_000:
        return None
    return count, played


def check_submission(view: TrialView, value, settings: TestSettings) -> Checked:
    """Turn the player's value into ratings, or say exactly what is missing or wrong.

    The value comes from a browser, so it is treated as hostile: size, shape and types are
    checked, and keys must be exactly this session's keys for this trial.
    """
    unreadable = value_problem(view, value, ("scores", "seconds", "plays"))
    if unreadable:
        return Checked([], [unreadable])
    scores, seconds, plays = value["scores"], value["seconds"], value["plays"]
    if not set(scores) | set(seconds) | set(plays) <= set(view.keys):
        return Checked([], ["the player sent ratings for stimuli that are not in this trial"])
    problems, result = [], []
    for key, letter in zip(view.keys, view.letters):
        score = bounded_number(scores.get(key), 0, 100)
        if key in scores and score is None:
            return Checked([], [f"the rating of {letter} is not a number from 0 to 100"])
        record = play_record(value, key)
        if record is None:
            return Checked([], [f"the play record of {letter} is not valid"])
        count, played = record
        result.append(store.Rating(view.stimulus_ids[key], score if score is not None else math.nan, count, played))
    messages = rule_messages(settings)
    unrated = [letter for letter, r in zip(view.letters, result) if math.isnan(r.score)]
    if unrated:
        problems.append(messages["unrated"].format(", ".join(unrated)))
    unplayed = [letter for letter, r in zip(view.letters, result) if r.play_count == 0]
    if "unplayed" in messages and unplayed:
        problems.append(messages["unplayed"].format(", ".join(unplayed)))
    if "no100" in messages and not any(r.score == 100 for r in result):
        problems.append(messages["no100"])
    return Checked(result if not problems else [], problems)
