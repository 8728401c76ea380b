"""The rater's side of an ABX trial, as plain functions: which condition is A, B and X, the blind view, the check.

Nothing here imports Streamlit. Which of an item's two stimuli is played as A and which one X
repeats is drawn from the rater's token and the test's order seed, so a reload or another
device shows the same trial; it never leaves the server except as audio. X's audio is blinded
apart from A's and B's, so its bytes match neither.
"""

from __future__ import annotations

import base64
import secrets

import numpy as np

from earshot.listening_app import store
from earshot.listening_app.audio import blinded_wav
from earshot.listening_app.mushra import attention_items
from earshot.listening_app.rules import ItemPlan, timing_problems
from earshot.listening_app.trial import TestType, TrialView, pair_items, play_record, seeded_rng, value_problem

LETTERS = ["A", "B", "X"]


def assignment(stimuli: list[store.StimulusInfo], token: str, order_seed: int, item_id: int
               ) -> tuple[store.StimulusInfo, store.StimulusInfo, store.StimulusInfo]:
    """(A, B, X) for this rater's trial of an item: A and B its two stimuli in a random order, X one of them."""
    rng = seeded_rng("abx", order_seed, token, item_id)
    a, b = (stimuli[k] for k in rng.permutation(2))
    return a, b, (a if rng.random() < 0.5 else b)


def rule_messages(must_play_all: bool) -> dict[str, str]:
    """What an ABX trial still lacks before it may be submitted; the player shows these live."""
    messages = {"unanswered": "Say whether X is A or B."}
    if must_play_all:
        messages["unplayed"] = "Play A, B and X before you submit; not played yet: {}."
    return messages


def make_view(db_url: str | None, rater: store.RaterInfo, test: store.TestInfo, item: store.ItemInfo,
              now: float) -> TrialView:
    """A fresh blind view of an ABX trial: three keys, three separately blinded copies."""
    a, b, x = assignment(store.item_stimuli(db_url, item.id), rater.token, test.settings.order_seed, item.id)
    audio = store.stimulus_audio(db_url, [a.id, b.id])
    rng = np.random.default_rng(secrets.randbits(64))
    keys = [secrets.token_hex(6) for _ in LETTERS]
    nonce = secrets.token_hex(8)
    args = {"nonce": nonce, "mode": "abx", "rules": rule_messages(test.settings.must_play_all), "reference": None,
            "stimuli": [{"key": k, "label": letter, "audio": base64.b64encode(blinded_wav(audio[s.id], rng)).decode()}
                        for k, letter, s in zip(keys, LETTERS, (a, b, x))]}
    return TrialView(item.id, nonce, list(LETTERS), keys, {k: s.id for k, s in zip(keys, (a, b, x))}, {}, args, now)


def check_submission(view: TrialView, value, settings) -> tuple[store.AbxAnswer | None, list[str]]:
    """The player's value as an answer to store, or what is missing or wrong (the value is hostile:
    size, shape, types and this session's keys are checked)."""
    unreadable = value_problem(view, value)
    if unreadable:
        return None, [unreadable]
    seconds, plays = value["seconds"], value["plays"]
    if not set(seconds) | set(plays) <= set(view.keys):
        return None, ["the player sent a play record for stimuli that are not in this trial"]
    answer = value.get("answer")
    if answer is not None and answer not in ("A", "B"):
        return None, ["the answer must be A or B"]
    total_plays, total_seconds, unplayed = 0, 0.0, []
    for key, letter in zip(view.keys, view.letters):
        record = play_record(value, key)
        if record is None:
            return None, [f"the play record of {letter} is not valid"]
        count, played = record
        total_plays, total_seconds = total_plays + count, total_seconds + played
        if count == 0:
            unplayed.append(letter)
    messages, problems = rule_messages(settings.must_play_all), []
    if answer is None:
        problems.append(messages["unanswered"])
    if "unplayed" in messages and unplayed:
        problems.append(messages["unplayed"].format(", ".join(unplayed)))
    if problems:
        return None, problems
    ids = [view.stimulus_ids[k] for k in view.keys]
    return store.AbxAnswer(ids[0], ids[1], ids[2], answer, total_plays, total_seconds), []


def check_abx_items(plans: list[ItemPlan], sample_rate: int) -> list[str]:
    """What keeps an ABX test from opening: each trial needs two different systems of one length."""
    problems = [] if plans else ["the test has no items"]
    for plan in plans:
        if len(plan.conditions) != 2 or len(set(plan.conditions)) != 2 or set(plan.kinds) != {"system"}:
            problems.append(f"{plan.name}: an ABX trial needs exactly two different systems")
        problems.extend(timing_problems(plan, sample_rate))
    return problems


def _describe(conditions: list[str], items: int, trials: int) -> str:
    pairs = len(conditions) * (len(conditions) - 1) // 2
    return (f"{trials} trials ({items} items × {pairs} pair{'s' if pairs != 1 else ''} of {', '.join(conditions)}); "
            "X is A or B at random for each rater and trial")


TYPE = TestType(
    name="abx", title="ABX",
    summary="pairs of conditions: X is A or B at random, the rater says which (can they tell them apart at all?)",
    instructions="Listen to **A**, **B** and **X**. X is the same as either A or B: say which.",
    training_text=("Listen to every version of this excerpt. Here they are **labelled**: the reference and the "
                   "systems under test. In the test, each trial plays two of the systems as **A** and **B**, and one "
                   "of them again as **X**: you say which. Nothing here is recorded."),
    make_items=pair_items,
    check_items=lambda plans, rate, low_hz, mid_hz: check_abx_items(plans, rate),
    make_view=make_view,
    check_submission=check_submission,
    save=lambda db_url, token, item_id, answer, seconds: store.submit_abx(db_url, token, item_id, answer, seconds),
    check_conditions=lambda conditions: (None if len(conditions) >= 2 else
                                         f"ABX compares pairs of conditions: choose at least 2 with --conditions "
                                         f"(has {len(conditions)})"),
    describe=_describe,
    training_systems_only=True,
    introduction=("You will hear short excerpts of audio processed in different ways. Each page (a *trial*) has "
                  "three versions: **A**, **B** and **X**. X is the same as either A or B: listen to all three, as "
                  "often as you like, and say which one X is. Some differences are very small; when you cannot "
                  "tell, make your best guess. Use headphones in a quiet room."),
    # A and B the reference and the low anchor: told apart by anyone who listens.
    make_attention=attention_items,
)
