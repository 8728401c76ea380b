"""The rater's side of a ranking trial, as plain functions: the items, the blind view, the check.

A ranking trial plays one excerpt's systems as letters beside the labelled reference; the rater puts
the letters in order, best (closest to the reference) first. Each stimulus' rank (1 = best) is stored
as its score in ``ratings``, and the store refuses ranks that are not 1..n each once. The reference
is played, never ranked, except in an attention trial, where it and the low anchor are ranked hidden
in place of two of the systems (so the trial looks like any other): a rater who listens puts the
reference above the anchor. Nothing here imports Streamlit.
"""

from __future__ import annotations

import base64
import secrets
import string
from dataclasses import dataclass

import numpy as np

from earshot.listening_app import store
from earshot.listening_app.audio import blinded_wav
from earshot.listening_app.rules import ItemPlan, timing_problems
from earshot.listening_app.settings import MAX_STIMULI_PER_TRIAL
from earshot.listening_app.trial import TestType, TrialView, play_record, stimulus_order, value_problem

#: What a normal trial plays but does not rank: the labelled reference.
UNRANKED = (store.REFERENCE,)


@dataclass
class RankingView(TrialView):
    """A ranking trial's blind view: which kinds of the item's stimuli it leaves unranked."""

    unrated_kinds: tuple[str, ...] = UNRANKED


@dataclass(frozen=True)
class RankingAnswer:
    """One trial's ranks (``Rating.score`` is the rank, 1 = best) and the kinds it left unranked."""

    ratings: list[store.Rating]
    unrated_kinds: tuple[str, ...]


def rule_messages(must_play_all: bool) -> dict[str, str]:
    """What a ranking trial still lacks before it may be submitted; the player shows these live."""
    messages = {"unranked": "Put every version in order; not placed yet: {}."}
    if must_play_all:
        messages["unplayed"] = "Play every version before you submit; not played yet: {}."
    return messages


def ranks_refused(scores: list[float]) -> str | None:
    """Why a trial's stored scores are not a ranking (1..n, each once), or None."""
    if sorted(scores) != list(range(1, len(scores) + 1)):
        return f"the ranks must be 1 to {len(scores)}, each once"
    return None


def make_view(db_url: str | None, rater: store.RaterInfo, test: store.TestInfo, item: store.ItemInfo,
              now: float) -> RankingView:
    """A fresh blind view: the ranked stimuli as letters in the rater's own order, the reference labelled."""
    found = store.item_stimuli(db_url, item.id)
    reference = next(s for s in found if s.kind == store.REFERENCE)
    unrated = () if item.attention else UNRANKED
    ranked = stimulus_order([s for s in found if s.kind not in unrated], rater.token, test.settings.order_seed,
                            item.id)
    audio = store.stimulus_audio(db_url, [s.id for s in found])
    rng = np.random.default_rng(secrets.randbits(64))
    keys = [secrets.token_hex(6) for _ in ranked]
    letters = list(string.ascii_uppercase[:len(ranked)])
    nonce = secrets.token_hex(8)
    args = {"nonce": nonce, "mode": "ranking", "rules": rule_messages(test.settings.must_play_all),
            "reference": base64.b64encode(blinded_wav(audio[reference.id], rng)).decode(),
            "stimuli": [{"key": k, "label": letter, "audio": base64.b64encode(blinded_wav(audio[s.id], rng)).decode()}
                        for k, letter, s in zip(keys, letters, ranked)]}
    return RankingView(item.id, nonce, letters, keys, {k: s.id for k, s in zip(keys, ranked)}, {}, args, now,
                       unrated_kinds=unrated)


def check_submission(view: RankingView, value, settings) -> tuple[RankingAnswer | None, list[str]]:
    """The player's value (``order``: this session's keys, best first) as ranks to store, or what is
    missing or wrong; the value is hostile: size, shape, types and this session's keys are checked."""
    unreadable = value_problem(view, value)
    if unreadable or not isinstance(value.get("order"), list):
        return None, [unreadable or "the player sent a value that is not valid"]
    seconds, plays, order = value["seconds"], value["plays"], value["order"]
    if not set(seconds) | set(plays) <= set(view.keys):
        return None, ["the player sent a play record for stimuli that are not in this trial"]
    if not all(isinstance(k, str) and k in view.keys for k in order) or len(set(order)) != len(order):
        return None, ["the player sent an order that is not one of this trial's stimuli, each once"]
    rank = {k: place for place, k in enumerate(order, start=1)}
    ratings, unranked, unplayed = [], [], []
    for key, letter in zip(view.keys, view.letters):
        record = play_record(value, key)
        if record is None:
            return None, [f"the play record of {letter} is not valid"]
        count, played = record
        if key not in rank:
            unranked.append(letter)
        if count == 0:
            unplayed.append(letter)
        ratings.append(store.Rating(view.stimulus_ids[key], float(rank.get(key, 0)), count, played))
    messages, problems = rule_messages(settings.must_play_all), []
    if unranked:
        problems.append(messages["unranked"].format(", ".join(unranked)))
    if "unplayed" in messages and unplayed:
        problems.append(messages["unplayed"].format(", ".join(unplayed)))
    if problems:
        return None, problems
    return RankingAnswer(ratings, view.unrated_kinds), []


def save(db_url: str | None, token: str, item_id: int, answer: RankingAnswer, seconds: float) -> int:
    return store.submit_trial(db_url, token, item_id, answer.ratings, seconds, test_type="ranking",
                              scores_refused=ranks_refused, unrated_kinds=answer.unrated_kinds)


def check_ranking_items(plans: list[ItemPlan], sample_rate: int) -> list[str]:
    """What keeps a ranking test from opening: each trial has one reference and at least two systems of
    one length, no anchors; an attention trial adds the low anchor, ranked with the reference."""
    problems = [] if plans else ["the test has no items"]
    for plan in plans:
        anchors = [c for c, k in zip(plan.conditions, plan.kinds) if k == "anchor"]
        attention = anchors == [store.ANCHOR_LOW]
        if plan.conditions.count(store.REFERENCE) != 1:
            problems.append(f"{plan.name}: needs exactly one reference")
        if anchors and not attention:
            problems.append(f"{plan.name}: a ranking trial has no anchors (an attention trial, the low anchor only)")
        if not attention and plan.kinds.count("system") < 2:
            problems.append(f"{plan.name}: a ranking trial needs at least two systems")
        if len(set(plan.conditions)) != len(plan.conditions):
            problems.append(f"{plan.name}: a condition appears twice")
        ranked = len(plan.kinds) - (0 if attention else 1)
        if ranked > MAX_STIMULI_PER_TRIAL:
            problems.append(f"{plan.name}: {ranked} versions to rank, at most {MAX_STIMULI_PER_TRIAL}")
        problems.extend(timing_problems(plan, sample_rate))
    return problems


def _pick(stimuli: list[store.NewStimulus], names: list[str]) -> list[store.NewStimulus]:
    by_condition = {s.condition: s for s in stimuli}
    return [by_condition[n] for n in names]


def make_items(excerpt: dict, stimuli: list[store.NewStimulus], conditions: list[str]) -> list[store.NewItem]:
    """One trial per excerpt: its systems to rank, and the reference, played labelled."""
    return [store.NewItem(excerpt["item"], excerpt["category"], _pick(stimuli, [store.REFERENCE, *conditions]))]


def make_attention(excerpt: dict, stimuli: list[store.NewStimulus], conditions: list[str]) -> list[store.NewItem]:
    """An attention trial: the reference and the low anchor ranked in place of the last two systems, as
    many letters as any trial. Its own item name, so its ranks never join the excerpt's own trial."""
    return [store.NewItem(f"{excerpt['item']} (attention)", excerpt["category"],
                          _pick(stimuli, [store.REFERENCE, store.ANCHOR_LOW, *conditions[:-2]]), attention=True)]


def _conditions(conditions: list[str]) -> str | None:
    if len(conditions) < 2:
        return f"a ranking orders conditions: choose at least 2 with --conditions (has {len(conditions)})"
    if len(conditions) > MAX_STIMULI_PER_TRIAL:
        return (f"{len(conditions)} conditions to rank in every trial; at most {MAX_STIMULI_PER_TRIAL} (choose "
                "fewer with --conditions)")
    return None


TYPE = TestType(
    name="ranking", title="Ranking",
    summary="every condition of an excerpt put in order, best first, against the labelled reference",
    instructions=("Put the versions in order, **best first**: the best sounds most like the **Reference**. "
                  "Drag the letters into your order, or use each row's buttons."),
    training_text=("Listen to every version of this excerpt. Here they are **labelled**: the reference and the "
                   "systems under test. In the test, each trial plays the systems behind letters, beside the "
                   "reference, and you put them in order, best first. Nothing here is recorded."),
    make_items=make_items,
    check_items=lambda plans, rate, low_hz, mid_hz: check_ranking_items(plans, rate),
    make_view=make_view,
    check_submission=check_submission,
    save=save,
    check_conditions=_conditions,
    describe=lambda conditions, items, trials: (f"{trials} trials, each ranking {', '.join(conditions)} best first "
                                                "against the labelled reference"),
    training_systems_only=True,
    introduction=("You will hear short excerpts of audio processed in different ways. Each page (a *trial*) has "
                  "an open **Reference** and several versions labelled **A, B, C…**: listen to each and put them "
                  "in order, **best first**, the best being the one that sounds most like the reference. Drag "
                  "the rows, or use their buttons. Use headphones in a quiet room."),
    make_attention=make_attention,
)
