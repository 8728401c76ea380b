"""MOS / ACR (ITU-T P.800 Absolute Category Rating) as a test type: one recording per page, no reference,
rated on the five-point scale from Excellent (5) to Bad (1).

Every condition of every excerpt is a trial of its own. The gold questions of ITU-T P.808 are this
type's attention trials (:func:`make_attention`): the clean reference alone, which a rater who listens
rates Good or Excellent, and the low anchor alone, which they rate Poor or Bad; ``results.mos`` screens
raters by them. Nothing here imports Streamlit.
"""

from __future__ import annotations

import base64
import secrets

import numpy as np

from earshot.listening_app import store
from earshot.listening_app.audio import blinded_wav
from earshot.listening_app.rules import ItemPlan, timing_problems
from earshot.listening_app.trial import TestType, TrialView, play_record, value_problem

#: ITU-T P.800 Annex B, the listening-quality scale: (score, label), best first as the page lists them.
SCALE = [(5, "Excellent"), (4, "Good"), (3, "Fair"), (2, "Poor"), (1, "Bad")]
LABEL = "Recording"  # the one stimulus' name on the page: it says nothing of what it is


def rule_messages(must_play_all: bool) -> dict[str, str]:
    """What an ACR trial still lacks before it may be submitted; the player shows these live."""
    messages = {"unrated": "Choose how good the recording sounds, from Excellent to Bad."}
    if must_play_all:
        messages["unplayed"] = "Play the recording before you rate it."
    return messages


def make_view(db_url: str | None, rater: store.RaterInfo, test: store.TestInfo, item: store.ItemInfo,
              now: float) -> TrialView:
    """A fresh blind view of an ACR trial: one key, one blinded copy of the item's one stimulus."""
    (stimulus,) = store.item_stimuli(db_url, item.id)
    audio = store.stimulus_audio(db_url, [stimulus.id])
    rng = np.random.default_rng(secrets.randbits(64))
    key, nonce = secrets.token_hex(6), secrets.token_hex(8)
    args = {"nonce": nonce, "mode": "mos", "rules": rule_messages(test.settings.must_play_all), "reference": None,
            "scale": [[score, label] for score, label in SCALE],
            "stimuli": [{"key": key, "label": LABEL,
                         "audio": base64.b64encode(blinded_wav(audio[stimulus.id], rng)).decode()}]}
    return TrialView(item.id, nonce, [LABEL], [key], {key: stimulus.id}, {}, args, now)


def check_submission(view: TrialView, value, settings) -> tuple[list[store.Rating], list[str]]:
    """The player's value as the one rating to store, or what is missing or wrong (the value is hostile:
    size, shape, types and this session's key are checked; the score must be a whole 1 to 5)."""
    unreadable = value_problem(view, value, ("scores", "seconds", "plays"))
    if unreadable:
        return [], [unreadable]
    scores, seconds, plays = value["scores"], value["seconds"], value["plays"]
    if not set(scores) | set(seconds) | set(plays) <= set(view.keys):
        return [], ["the player sent a rating for a recording that is not in this trial"]
    (key,) = view.keys
    score = scores.get(key)
    if score is not None and (isinstance(score, bool) or not isinstance(score, int) or score not in dict(SCALE)):
        return [], ["the rating must be a whole number from 1 (Bad) to 5 (Excellent)"]
    record = play_record(value, key)
    if record is None:
        return [], ["the play record of the recording is not valid"]
    count, played = record
    messages, problems = rule_messages(settings.must_play_all), []
    if "unplayed" in messages and count == 0:  # first, as the page says it: play, then rate
        problems.append(messages["unplayed"])
    if score is None:
        problems.append(messages["unrated"])
    if problems:
        return [], problems
    return [store.Rating(view.stimulus_ids[key], float(score), count, played)], []


def scores_refused(scores: list[float]) -> str | None:
    """The store's own check, inside the transaction: one score, a whole 1 to 5."""
    if len(scores) != 1 or scores[0] not in {float(s) for s, _ in SCALE}:
        return "an ACR rating must be a whole number from 1 to 5"
    return None


def check_mos_items(plans: list[ItemPlan], sample_rate: int) -> list[str]:
    """What keeps an ACR test from opening: each trial one stimulus (a system, or for a gold question the
    reference or the low anchor), and at least one system to rate."""
    problems = [] if plans else ["the test has no items"]
    for plan in plans:
        if len(plan.conditions) != 1:
            problems.append(f"{plan.name}: an ACR trial plays exactly one stimulus")
        elif plan.kinds[0] != "system" and plan.conditions[0] not in (store.REFERENCE, store.ANCHOR_LOW):
            problems.append(f"{plan.name}: an ACR trial plays a system, or for a gold question the reference or the "
                            "low anchor")
        problems.extend(timing_problems(plan, sample_rate))
    if plans and not any(plan.kinds == ["system"] for plan in plans):
        problems.append("the test has no system to rate")
    return problems


def make_items(excerpt: dict, stimuli: list[store.NewStimulus], conditions: list[str]) -> list[store.NewItem]:
    """One trial per condition: that condition's stimulus alone, level-matched as in a MUSHRA trial."""
    by_condition = {s.condition: s for s in stimuli}
    return [store.NewItem(f"{excerpt['item']}: {condition}", excerpt["category"], [by_condition[condition]],
                          excerpt=excerpt["item"])
            for condition in conditions]


def make_attention(excerpt: dict, stimuli: list[store.NewStimulus], conditions: list[str]) -> list[store.NewItem]:
    """P.808's gold questions for one excerpt: the clean reference alone (its answer: Good or Excellent)
    and the low anchor alone (Poor or Bad), each a trial like any other to the rater."""
    by_condition = {s.condition: s for s in stimuli}
    return [store.NewItem(f"{excerpt['item']}: gold {condition}", excerpt["category"], [by_condition[condition]],
                          excerpt=excerpt["item"], attention=True)
            for condition in (store.REFERENCE, store.ANCHOR_LOW)]


def _describe(conditions: list[str], items: int, trials: int) -> str:
    gold = trials - items * len(conditions)  # the attention trials prepare added
    return (f"{trials} trials ({items} items × {len(conditions)} condition{'s' if len(conditions) != 1 else ''}: "
            f"{', '.join(conditions)}" + (f"; {gold} gold question{'s' if gold != 1 else ''}" if gold else "")
            + "), one recording per page rated from Excellent to Bad")


TYPE = TestType(
    name="mos", title="MOS (ACR)",
    summary="one recording per page rated Excellent to Bad (ITU-T P.800 ACR), the mean opinion score per condition",
    instructions=("Listen to the recording and rate **how good it sounds**, from *Excellent* to *Bad*. "
                  "There is no reference to compare with: judge the recording as it is."),
    training_text=("Listen to every version of this excerpt. Here they are **labelled**: the reference, the "
                   "anchors (deliberately muffled versions) and the systems under test. In the test, each page plays "
                   "one version, unlabelled, and you rate how good it sounds, from *Excellent* to *Bad*. Nothing "
                   "here is recorded."),
    make_items=make_items,
    check_items=lambda plans, rate, low_hz, mid_hz: check_mos_items(plans, rate),
    make_view=make_view,
    check_submission=check_submission,
    save=lambda db_url, token, item_id, answer, seconds: store.submit_trial(
        db_url, token, item_id, answer, seconds, test_type="mos", scores_refused=scores_refused),
    check_conditions=lambda conditions: None if conditions else "MOS rates conditions: choose at least 1",
    describe=_describe,
    make_attention=make_attention,
    introduction=("You will hear short recordings of audio, **one per page** (a *trial*). Listen to each and rate "
                  "how good it sounds: **5 Excellent, 4 Good, 3 Fair, 2 Poor, 1 Bad**. There is no reference to "
                  "compare with: judge each recording as it is, by its own sound. Play it before you rate it; you "
                  "may play it again. Use headphones in a quiet room."),
)
