"""The rater's side as plain functions: orders, blind views, checking what the browser sends."""

from __future__ import annotations

import json
import math

import pytest

from earshot.listening_app import store
from earshot.listening_app.trial import check_submission, make_view, next_trial, trial_order
from tests.listening_app.conftest import make_test


@pytest.fixture
def trial(sqlite_url, run_dir):
    test = make_test(sqlite_url, run_dir)
    rater = store.add_rater(sqlite_url, test.name)
    item, _, _ = next_trial(sqlite_url, rater, test)
    return test, rater, make_view(sqlite_url, rater, test, item, now=0.0)


def good_value(view, **changes):
    value = {"nonce": view.nonce, "submit_id": 1, "scores": {k: 100 if i == 0 else 40 for i, k in enumerate(view.keys)},
             "seconds": {k: 3.0 for k in view.keys}, "plays": {k: 1 for k in view.keys}, "elapsed": 20.0}
    value.update(changes)
    return value


def test_orders_differ_between_raters_and_stay_the_same_for_one(sqlite_url, run_dir):
    test = make_test(sqlite_url, run_dir)
    items = store.test_items(sqlite_url, test.id)
    orders = {tuple(i.id for i in trial_order(items, store.new_token(), 0)) for _ in range(20)}
    assert len(orders) > 1
    assert trial_order(items, "same", 0) == trial_order(items, "same", 0)


def test_views_carry_no_names_and_new_keys_and_bytes_every_session(sqlite_url, run_dir, trial):
    test, rater, view = trial
    again = make_view(sqlite_url, rater, test, store.test_items(sqlite_url, test.id)[0], now=0.0)
    args = dict(view.component_args, reference="", stimuli=[dict(s, audio="") for s in view.component_args["stimuli"]])
    text = json.dumps(args)  # without the base64 audio, where any three letters turn up by chance
    for name in ("mse", "bark", "seed0", "anchor", "speech", "drums", "music", ".wav", test.run_id):
        assert name not in text
    assert [s["label"] for s in args["stimuli"]] == list("ABCDE")  # the open reference is the only one named
    audio = [s["audio"] for s in view.component_args["stimuli"]] + [view.component_args["reference"]]
    assert len(set(audio)) == len(audio)  # the hidden reference is not the labelled one's bytes
    assert not set(view.keys) & set(again.keys) and view.nonce != again.nonce


def test_a_complete_value_becomes_one_rating_per_stimulus(trial):
    test, _, view = trial
    checked = check_submission(view, good_value(view), test.settings)
    assert checked.problems == [] and len(checked.ratings) == len(view.keys)
    assert sorted(r.stimulus_id for r in checked.ratings) == sorted(view.stimulus_ids.values())


def test_the_rater_is_told_exactly_what_is_missing(trial):
    test, _, view = trial
    value = good_value(view)
    a, b = view.keys[:2]
    value["plays"][b] = 0
    del value["scores"][a]
    value["scores"] = {k: 50 for k in value["scores"]}
    problems = check_submission(view, value, test.settings).problems
    assert problems == ["Rate every stimulus; not rated yet: A.",
                        "Play every stimulus before you submit; not played yet: B.",
                        "Rate at least one stimulus 100: one of them is the hidden reference."]
    relaxed = test.settings.model_copy(update={"must_play_all": False, "require_100": False})
    value["scores"][a] = 10
    assert check_submission(view, value, relaxed).problems == []


@pytest.mark.parametrize(("unrated", "unplayed", "hundred", "expected"), [
    ([2, 4], [], 0, ["Rate every stimulus; not rated yet: C, E."]),
    ([], [0, 3], 1, ["Play every stimulus before you submit; not played yet: A, D."]),
    ([], [], None, ["Rate at least one stimulus 100: one of them is the hidden reference."]),
    # The only 100 left unrated: all three rules speak, in the order the rater reads them.
    ([0, 1, 2, 3, 4], [1], 0, ["Rate every stimulus; not rated yet: A, B, C, D, E.",
                               "Play every stimulus before you submit; not played yet: B.",
                               "Rate at least one stimulus 100: one of them is the hidden reference."]),
    # The 100 may be any stimulus, not the first; an unplayed one still blocks the submit.
    ([], [4], 3, ["Play every stimulus before you submit; not played yet: E."]),
])
def test_the_messages_name_the_letters_the_rater_sees(trial, unrated, unplayed, hundred, expected):
    test, _, view = trial
    value = good_value(view, scores={k: 100 if i == hundred else 40 for i, k in enumerate(view.keys)})
    for index in unrated:
        del value["scores"][view.keys[index]]
    for index in unplayed:
        value["plays"][view.keys[index]] = 0
    checked = check_submission(view, value, test.settings)
    assert checked.problems == expected and checked.ratings == []  # nothing is written while anything is missing


def test_relaxed_settings_drop_only_their_own_rule(trial):
    test, _, view = trial
    value = good_value(view, scores={k: 40 for k in view.keys}, plays={k: 0 for k in view.keys})
    no_play_rule = test.settings.model_copy(update={"must_play_all": False})
    assert check_submission(view, value, no_play_rule).problems == [
        "Rate at least one stimulus 100: one of them is the hidden reference."]
    no_100_rule = test.settings.model_copy(update={"require_100": False})
    assert check_submission(view, value, no_100_rule).problems == [
        "Play every stimulus before you submit; not played yet: A, B, C, D, E."]
    both_off = test.settings.model_copy(update={"must_play_all": False, "require_100": False})
    checked = check_submission(view, value, both_off)
    assert checked.problems == [] and [r.score for r in checked.ratings] == [40] * 5
    assert [r.play_count for r in checked.ratings] == [0] * 5


@pytest.mark.parametrize(("tamper", "message"), [
    ("score 101", "the rating of A is not a number from 0 to 100"),
    ("score NaN", "the rating of A is not a number from 0 to 100"),
    ("score text", "the rating of A is not a number from 0 to 100"),
    ("unknown key", "the player sent ratings for stimuli that are not in this trial"),
    ("other nonce", "this answer belongs to another trial or session: reload the page"),
    ("oversized", "the player sent a value that is too large"),
    ("not a dict", "the player sent a value that is not valid"),
    ("negative seconds", "the play record of A is not valid"),
    ("plays text", "the play record of A is not valid"),
])
def test_tampered_values_are_refused_with_a_message(trial, tamper, message):
    test, _, view = trial
    value = good_value(view)
    key = view.keys[0]
    if tamper == "score 101":
        value["scores"][key] = 101
    elif tamper == "score NaN":
        value["scores"][key] = math.nan
    elif tamper == "score text":
        value["scores"][key] = "100"
    elif tamper == "unknown key":
        value["scores"]["deadbeef"] = 50
    elif tamper == "other nonce":
        value["nonce"] = "0" * 16
    elif tamper == "oversized":
        value["padding"] = "x" * 100_000
    elif tamper == "not a dict":
        value = ["scores"]
    elif tamper == "negative seconds":
        value["seconds"][key] = -1
    elif tamper == "plays text":
        value["plays"][key] = "1"
    checked = check_submission(view, value, test.settings)
    assert checked.ratings == [] and checked.problems == [message]
