"""Crowd sessions in the store and the rater's order: balanced subsets, attention checks, participant ids,
completion codes and the level check, for every test type through the TestType interface."""

from __future__ import annotations

from collections import Counter

import pytest

from earshot.listening_app import flow, store
from earshot.listening_app.abx import check_submission as abx_check
from earshot.listening_app.abx import make_view as abx_view
from earshot.listening_app.prepare import PrepareError, prepare_test
from earshot.listening_app.settings import TestSettings
from earshot.listening_app.trial import next_trial, rater_order, trial_order
from tests.listening_app.conftest import make_test
from tests.listening_app.test_store import full_ratings


def rated_items(db_url, test) -> list[store.ItemInfo]:
    return [i for i in store.test_items(db_url, test.id) if not i.training and not i.attention]


def test_every_item_is_rated_about_equally_often_and_each_rater_keeps_their_order(db_url, run_dir):
    test = make_test(db_url, run_dir, items_per_rater=2, self_registration=True, training=False)
    items = rated_items(db_url, test)
    assert len(items) == 3  # the tiny run's excerpts: a subset of 2 is not the whole test
    raters = [store.add_rater(db_url, test.name) for _ in range(4)]
    raters += [store.add_rater(db_url, test.name, f"crowd-{k}", self_registered=True) for k in range(3)]
    counts = Counter(i for r in raters for i in r.items)
    assert all(len(set(r.items)) == 2 for r in raters)
    assert set(counts) <= {i.id for i in items}
    handed_out = [counts.get(i.id, 0) for i in items]
    assert max(handed_out) - min(handed_out) <= 1 and sum(handed_out) == 14
    for rater in raters:
        order = [i.id for i in rater_order(db_url, rater, test)]
        assert sorted(order) == sorted(rater.items)
        store.dispose_engines()  # as after a restart or on another device: only the database remembers
        again = store.rater_by_token(db_url, rater.token)
        assert again.items == rater.items and [i.id for i in rater_order(db_url, again, test)] == order
        assert next_trial(db_url, again, test)[2] == 2
    # Each order is the rater's own, drawn from their token, not the subset's: raters holding the same
    # subset meet it in both orders (fixed tokens, so the check cannot fail by chance as 7 raters' could).
    all_items = store.test_items(db_url, test.id)
    orders = {tuple(i.id for i in trial_order(all_items, f"token-{k}", test.settings.order_seed, raters[0].items))
              for k in range(20)}
    assert orders == {tuple(raters[0].items), tuple(reversed(raters[0].items))}


def test_a_submit_outside_the_raters_subset_is_refused(db_url, run_dir):
    test = make_test(db_url, run_dir, items_per_rater=2, training=False)
    rater = store.add_rater(db_url, test.name)
    other = next(i for i in rated_items(db_url, test) if i.id not in rater.items)
    with pytest.raises(store.StoreError, match="not one of yours"):
        store.submit_trial(db_url, rater.token, other.id, full_ratings(db_url, other.id), 1.0)
    mine = rater.items[0]
    store.submit_trial(db_url, rater.token, mine, full_ratings(db_url, mine), 1.0)
    assert next_trial(db_url, rater, test)[1:] == (1, 2)


def test_a_subset_larger_than_the_test_is_refused_when_preparing(db_url, run_dir):
    with pytest.raises(PrepareError, match="--items-per-rater 50: the test has"):
        prepare_test(run_dir, db_url, items=4, seconds=2.0, name="big",
                     settings=TestSettings(items_per_rater=50))
    with pytest.raises(PrepareError, match=r"--attention 9: at most \d, one per item"):
        prepare_test(run_dir, db_url, items=4, seconds=2.0, name="many", settings=TestSettings(attention=9))


def test_attention_checks_are_in_every_raters_order_beside_their_subset(db_url, run_dir):
    test = make_test(db_url, run_dir, items_per_rater=2, attention=2)  # opens: the checks keep their own rule
    checks = [i for i in store.test_items(db_url, test.id) if i.attention]
    assert len(checks) == 2
    for check in checks:  # the hidden reference and the low anchor, rated against the reference
        assert sorted(s.condition for s in store.item_stimuli(db_url, check.id)) == [store.ANCHOR_LOW, store.REFERENCE]
    orders = []
    for _ in range(12):  # 12 raters all given one placement of the 6: a chance of 6 in 6^12
        rater = store.add_rater(db_url, test.name)
        order = rater_order(db_url, rater, test)
        assert len(order) == 4 and {i.id for i in checks} <= {i.id for i in order}
        orders.append([i.attention for i in order])
    assert len({tuple(o) for o in orders}) > 1  # mixed in at random places, not always first or last
    rater = store.add_rater(db_url, test.name)
    check = checks[0]
    store.submit_trial(db_url, rater.token, check.id, full_ratings(db_url, check.id, score=10.0), 1.0)
    frame = store.export_frame(db_url, test.name)
    assert frame["attention"].tolist() == [True, True]
    assert store.ratings_frame(db_url, test.name).empty  # the test's own ratings only
    assert set(frame["condition"]) == {store.REFERENCE, store.ANCHOR_LOW}


def test_an_abx_attention_check_plays_the_reference_against_the_low_anchor(db_url, run_dir):
    made = prepare_test(run_dir, db_url, items=2, seconds=2.0, name="abx-crowd", test_type="abx", attention=1,
                        conditions=["mse", "bark"], settings=TestSettings(must_play_all=False))
    store.set_status(db_url, made.name, "open")
    test = store.get_test(db_url, made.name)
    assert made.attention == 1 and test.settings.attention == 1  # recorded in the design
    rater = store.add_rater(db_url, test.name)
    check = next(i for i in rater_order(db_url, rater, test) if i.attention)
    view = abx_view(db_url, rater, test, check, 0.0)
    answer, problems = abx_check(view, {"nonce": view.nonce, "seconds": {}, "plays": {}, "answer": "A"}, test.settings)
    assert problems == []
    store.submit_abx(db_url, rater.token, check.id, answer, 1.0)
    row = store.export_frame(db_url, test.name).iloc[0]
    assert bool(row["attention"]) and {row["a"], row["b"]} == {store.REFERENCE, store.ANCHOR_LOW}


def test_participant_ids_and_completion_codes_reach_the_export(db_url, run_dir):
    test = make_test(db_url, run_dir, self_registration=True)
    crowd = store.add_rater(db_url, test.name, "PID-abc", self_registered=True, participant_id=" PID-abc ")
    invited = store.add_rater(db_url, test.name)
    store.record_participant(db_url, invited.id, "PID-xyz")
    store.record_participant(db_url, invited.id, "PID-other")  # a rater's first id is kept
    assert crowd.participant_id == "PID-abc"
    assert store.rater_by_participant(db_url, test.id, "PID-abc").token == crowd.token
    assert store.rater_by_participant(db_url, test.id, "nobody") is None
    codes = {crowd.completion_code, store.rater_by_token(db_url, invited.token).completion_code}
    assert len(codes) == 2 and all(len(c) == 10 and set(c) <= set(store.CODE_ALPHABET) for c in codes)
    store.record_level(db_url, crowd.id, 48000, "Mozilla/5.0 (X11) Firefox/120")
    store.record_level(db_url, crowd.id, 44100, "again")  # once: the first report is kept
    assert store.rater_by_token(db_url, crowd.token).level_set
    for forged, message in ((True, "sample rate"), (12, "sample rate"), (48000.5, "sample rate")):
        with pytest.raises(store.StoreError, match=message):
            store.record_level(db_url, invited.id, forged, "ua")
    for rater in (crowd, invited):
        item = next_trial(db_url, rater, test)[0]
        store.submit_trial(db_url, rater.token, item.id, full_ratings(db_url, item.id), 1.0)
    frame = store.export_frame(db_url, test.name)
    by_rater = frame.groupby("rater").first()
    assert by_rater.loc["PID-abc", "participant_id"] == "PID-abc"
    assert by_rater.loc[invited.name, "participant_id"] == "PID-xyz"
    assert set(by_rater["completion_code"]) == codes
    assert by_rater.loc["PID-abc", "sample_rate"] == 48000
    assert by_rater.loc["PID-abc", "user_agent"] == "Mozilla/5.0 (X11) Firefox/120"
    assert by_rater.loc[invited.name, "sample_rate"] is None or str(by_rater.loc[invited.name, "sample_rate"]) == "<NA>"
    assert not frame["attention"].any()


def test_a_fixed_completion_code_is_every_raters(db_url, run_dir):
    test = make_test(db_url, run_dir, completion_code="C1A2B3")
    assert {store.add_rater(db_url, test.name).completion_code for _ in range(3)} == {"C1A2B3"}


def test_the_level_check_comes_after_consent_and_before_training(db_url, run_dir):
    test = make_test(db_url, run_dir, level_check=True)
    rater = store.add_rater(db_url, test.name)
    store.record_consent(db_url, rater.id)
    position = flow.locate(db_url, rater.token)
    assert flow.current(position).name == "level"
    assert flow.route("training", position) == "level" and flow.route("trial", position) == "level"
    store.record_level(db_url, rater.id, 44100, "ua")
    position = flow.locate(db_url, rater.token)
    assert flow.current(position).name == "trials"  # training is practice: never required, always open
    assert flow.route("level", position) is None and flow.route("training", position) is None
    assert flow.after("level", position).name == "training"
    plain = make_test(db_url, run_dir, "plain")  # without the setting the flow is as it was
    other = store.add_rater(db_url, plain.name)
    store.record_consent(db_url, other.id)
    assert flow.route("training", flow.locate(db_url, other.token)) is None
    assert flow.after("calibration", flow.locate(db_url, other.token)).name == "training"


def test_crowd_settings_are_refused_with_the_options_name(db_url):
    for bad in ({"items_per_rater": 0}, {"attention": -1}, {"participant_param": "a b"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TestSettings(**bad)


def test_prepare_and_list_say_what_each_rater_is_given(sqlite_url, run_dir):
    from typer.testing import CliRunner

    from earshot.listening_app.cli import listen_app

    runner = CliRunner()
    made = runner.invoke(listen_app, ["prepare", str(run_dir), "--items", "8", "--seconds", "2", "--name", "crowd",
                                      "--no-training", "--items-per-rater", "2", "--attention", "1", "--level-check",
                                      "--completion-code", "PLAT-9", "--db", sqlite_url, "--open"])
    assert made.exit_code == 0, made.output
    assert "each rater: 2 of 3 trials (a balanced subset) + 1 attention check" in " ".join(made.output.split())
    listed = runner.invoke(listen_app, ["list", "--db", sqlite_url])
    assert "2 of 3 trials (a balanced subset) + 1 attention check" in " ".join(listed.output.split())
    settings = dict(store.get_test(sqlite_url, "crowd").settings.readable())
    assert settings["Items per rater"] == 2 and settings["Attention checks per rater"] == 1
    assert settings["Level check page"] is True and settings["Completion code"] == "PLAT-9"
    rater = store.add_rater(sqlite_url, "crowd")
    assert rater.completion_code == "PLAT-9"
    progress = store.progress_frame(sqlite_url, "crowd")
    assert progress["trials"].tolist() == [3]  # the rater's 2 trials and the check
    refused = runner.invoke(listen_app, ["prepare", str(run_dir), "--participant-param", "a b", "--db", sqlite_url])
    assert refused.exit_code == 2 and "--participant-param" in refused.output and "Traceback" not in refused.output


def test_without_a_level_check_the_first_trial_records_the_browser_once(sqlite_url, run_dir, monkeypatch):
    from tests.listening_app.test_app import app, player_value, send, trial_view

    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_test(sqlite_url, run_dir, training=False)
    rater = store.add_rater(sqlite_url, test.name)
    store.record_consent(sqlite_url, rater.id)
    at = app(rater.token, "views/trial.py")
    send(at, player_value(trial_view(at), device={"sample_rate": 48000, "user_agent": "Firefox/121"}))
    assert not at.exception and not at.error
    send(at, player_value(trial_view(at), submit_id=2, device={"sample_rate": 44100, "user_agent": "other"}))
    frame = store.export_frame(sqlite_url, test.name)
    assert len(frame) == 10 and set(frame["sample_rate"]) == {48000} and set(frame["user_agent"]) == {"Firefox/121"}
    other = store.add_rater(sqlite_url, test.name)  # a forged report is left unrecorded; the answer is kept
    store.record_consent(sqlite_url, other.id)
    at = app(other.token, "views/trial.py")
    send(at, player_value(trial_view(at), device={"sample_rate": "48k", "user_agent": 7}))
    assert not at.error and len(store.export_frame(sqlite_url, test.name)) == 15
    assert store.export_frame(sqlite_url, test.name)["sample_rate"].isna().sum() == 5


def test_the_level_page_records_the_confirmation_and_refuses_a_forged_device(sqlite_url, run_dir, monkeypatch):
    from tests.listening_app.test_app import app, texts

    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_test(sqlite_url, run_dir, level_check=True)
    rater = store.add_rater(sqlite_url, test.name)
    store.record_consent(sqlite_url, rater.id)
    # The flow sends a rater who has not set their level back to the level page.
    assert app(rater.token, "views/training.py").title[0].value == "Set your listening level"
    at = app(rater.token, "views/level.py")
    nonce = at.session_state["earshot"].level_nonce
    at.session_state[f"player-{nonce}"] = {"nonce": nonce, "confirmed": True,
                                           "device": {"sample_rate": "loud", "user_agent": "x"}}
    at.run()
    assert "did not report its audio settings" in texts(at)
    assert not store.rater_by_token(sqlite_url, rater.token).level_set
    at.session_state[f"player-{nonce}"] = {"nonce": "another", "confirmed": True,
                                           "device": {"sample_rate": 48000, "user_agent": "x"}}
    at.run()  # another session's confirmation is not this one's
    assert not store.rater_by_token(sqlite_url, rater.token).level_set
    at.session_state[f"player-{nonce}"] = {"nonce": nonce, "confirmed": True,
                                           "device": {"sample_rate": 48000, "user_agent": "Chrome/120"}}
    at.run()
    assert store.rater_by_token(sqlite_url, rater.token).level_set and at.title[0].value == "Training"
