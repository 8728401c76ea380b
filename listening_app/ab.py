"""The rater's side of an A/B preference trial, as plain functions: which condition is A, the blind view, the check.

Nothing here imports Streamlit. One excerpt, two systems as A and B, no reference: the rater says
which they prefer, or, where the test offers it (``TestSettings.no_preference``), that they have no
preference. Which stimulus is A is drawn from the rater's token and the test's order seed, so a
reload or another device shows the same trial, and across raters each condition is A about half
the time; it never leaves the server except as audio.
"""

from __future__ import annotations

import base64
import secrets

import numpy as np

from earshot.listening_app import store
from earshot.listening_app.audio import blinded_wav
from earshot.listening_app.rules import ItemPlan, timing_problems
from earshot.listening_app.trial import TestType, TrialView, pair_items, play_record, seeded_rng, value_problem

LETTERS = ["A", "B"]
NO_PREFERENCE = "none"  # what the store and the export say for "no preference"


def assignment(stimuli: list[store.StimulusInfo], token: str, order_seed: int, item_id: int
               ) -> tuple[store.StimulusInfo, store.StimulusInfo]:
    """(A, B) for this rater's trial of an item: its two stimuli in a random order, stable per token."""
    a, b = (stimuli[k] for k in seeded_rng("ab", order_seed, token, item_id).permutation(2))
    return a, b


def rule_messages(must_play_all: bool, no_preference: bool) -> dict[str, str]:
    """What an A/B trial still lacks before it may be submitted; the player shows these live."""
    messages = {"unanswered": ("Say which you prefer, A or B, or that you have no preference." if no_preference
                               else "Say which you prefer, A or B.")}
    if must_play_all:
        messages["unplayed"] = "Play A and B before you submit; not played yet: {}."
    return messages


def make_view(db_url: str | None, rater: store.RaterInfo, test: store.TestInfo, item: store.ItemInfo,
              now: float) -> TrialView:
    """A fresh blind view of an A/B trial: two keys, two separately blinded stimuli."""
    a, b = assignment(store.item_stimuli(db_url, item.id), rater.token, test.settings.order_seed, item.id)
    audio = store.stimulus_audio(db_url, [a.id, b.id])
    rng = np.random.default_rng(secrets.randbits(64))
    keys = [secrets.token_hex(6) for _ in LETTERS]
    nonce = secrets.token_hex(8)
    settings = test.settings
    args = {"nonce": nonce, "mode": "ab", "rules": rule_messages(settings.must_play_all, settings.no_preference),
            "no_preference": settings.no_preference, "reference": None,
            "stimuli": [{"key": k, "label": letter, "audio": base64.b64encode(blinded_wav(audio[s.id], rng)).decode()}
                        for k, letter, s in zip(keys, LETTERS, (a, b))]}
    return TrialView(item.id, nonce, list(LETTERS), keys, {k: s.id for k, s in zip(keys, (a, b))}, {}, args, now)


def check_submission(view: TrialView, value, settings) -> tuple[store.PairAnswer | None, list[str]]:
    """The player's value as an answer to store, or what is missing or wrong (the value is hostile:
    size, shape, types and this session's keys are checked)."""
    unreadable = value_problem(view, value)
    if unreadable:
        return None, [unreadable]
    seconds, plays = value["seconds"], value["plays"]
    if not set(seconds) | set(plays) <= set(view.keys):
        return None, ["the player sent a play record for stimuli that are not in this trial"]
    answer = value.get("answer")
    allowed = ("A", "B", NO_PREFERENCE) if settings.no_preference else ("A", "B")
    if answer is not None and answer not in allowed:
        return None, ["the answer must be A, B or no preference" if settings.no_preference else
                      "the answer must be A or B (this test asks for a choice)"]
    total_plays, total_seconds, unplayed = 0, 0.0, []
    for key, letter in zip(view.keys, view.letters):
        record = play_record(value, key)
        if record is None:
            return None, [f"the play record of {letter} is not valid"]
        count, played = record
        total_plays, total_seconds = total_plays + count, total_seconds + played
        if count == 0:
            unplayed.append(letter)
    messages, problems = rule_messages(settings.must_play_all, settings.no_preference), []
    if answer is None:
        problems.append(messages["unanswered"])
    if "unplayed" in messages and unplayed:
        problems.append(messages["unplayed"].format(", ".join(unplayed)))
    if problems:
        return None, problems
    a, b = (view.stimulus_ids[k] for k in view.keys)
    return store.PairAnswer(a, b, answer, total_plays, total_seconds), []


def check_ab_items(plans: list[ItemPlan], sample_rate: int) -> list[str]:
    """What keeps an A/B test from opening: each trial two different systems (or, an attention check,
    the reference and the low anchor) of one length."""
    problems = [] if plans else ["the test has no items"]
    for plan in plans:
        systems = len(set(plan.conditions)) == 2 and set(plan.kinds) == {"system"}
        attention = sorted(plan.conditions) == sorted([store.ANCHOR_LOW, store.REFERENCE])
        if len(plan.conditions) != 2 or not (systems or attention):
            problems.append(f"{plan.name}: an A/B trial needs exactly two different systems")
        problems.extend(timing_problems(plan, sample_rate))
    return problems


def make_attention(excerpt: dict, stimuli: list[store.NewStimulus], conditions: list[str]) -> list[store.NewItem]:
    """The attention check: the clean reference against the low anchor; a rater who listens prefers the reference."""
    by_condition = {s.condition: s for s in stimuli}
    return [store.NewItem(f"{excerpt['item']}: attention", excerpt["category"],
                          [by_condition[store.REFERENCE], by_condition[store.ANCHOR_LOW]], excerpt=excerpt["item"],
                          attention=True)]


def check_conditions(conditions: list[str]) -> str | None:
    if len(conditions) < 2:
        return (f"A/B preference compares pairs of conditions: choose at least 2 with --conditions "
                f"(has {len(conditions)})")
    if NO_PREFERENCE in conditions:  # the export's answer column says "none" for no preference
        return f"a condition named {NO_PREFERENCE!r} cannot be told from 'no preference' in the export: rename it"
    return None


def _describe(conditions: list[str], items: int, trials: int) -> str:
    pairs = len(conditions) * (len(conditions) - 1) // 2
    return (f"{trials} trials ({items} items × {pairs} pair{'s' if pairs != 1 else ''} of {', '.join(conditions)}); "
            "which is A is drawn for each rater and trial")


TYPE = TestType(
    name="ab", title="A/B preference",
    summary="pairs of conditions, no reference: the rater says which they prefer (a Bradley–Terry scale over all)",
    instructions="Listen to **A** and **B** and say which you **prefer**. There is no reference: trust your ears.",
    training_text=("Listen to every version of this excerpt. Here they are **labelled**: the reference and the "
                   "systems under test. In the test, each trial plays two of the systems as **A** and **B**, with no "
                   "reference, and you say which one you prefer. Nothing here is recorded."),
    make_items=pair_items,
    check_items=lambda plans, rate, low_hz, mid_hz: check_ab_items(plans, rate),
    make_view=make_view,
    check_submission=check_submission,
    save=lambda db_url, token, item_id, answer, seconds: store.submit_pair(db_url, token, item_id, answer, seconds),
    check_conditions=check_conditions,
    describe=_describe,
    training_systems_only=True,
    introduction=("You will hear short excerpts of audio processed in different ways. Each page (a *trial*) has "
                  "two versions, **A** and **B**, and no reference: listen to both, as often as you like, and say "
                  "which one you **prefer**. There are no right answers; trust your ears. Use headphones in a "
                  "quiet room."),
    make_attention=make_attention,
)
