"""A MOS / ACR test: preparation with gold questions, the blind view, the checks, the trial page, export,
analysis, the admin page and the report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from earshot.listening_app import mos, store
from earshot.listening_app.cli import listen_app
from earshot.listening_app.prepare import prepare_test
from earshot.listening_app.settings import TestSettings
from earshot.results.listening import RATINGS_TABLE_COLUMNS
from tests.listening_app.test_app import app, texts

CONDITIONS = ["mse-seed0", "bark-seed0"]


def make_mos(db_url: str, run_dir: Path, name: str = "mos", attention: int = 2, items: int = 2,
             **settings) -> store.TestInfo:
    prepare_test(run_dir, db_url, items=items, seconds=2.0, name=name, settings=TestSettings(**settings),
                 test_type="mos", attention=attention)
    store.set_status(db_url, name, "open")
    return store.get_test(db_url, name)


def trial_items(db_url: str, test: store.TestInfo) -> list[store.ItemInfo]:
    return [i for i in store.test_items(db_url, test.id) if not i.training]


def rate_value(view, score=4, submit_id=1, **changes) -> dict:
    value = {"nonce": view.nonce, "submit_id": submit_id, "scores": {view.keys[0]: score},
             "seconds": {view.keys[0]: 2.0}, "plays": {view.keys[0]: 1}}
    value.update(changes)
    return value


def test_prepare_makes_one_trial_per_excerpt_and_condition_and_gold_questions_of_the_reference_and_low_anchor(
        sqlite_url, run_dir):
    test = make_mos(sqlite_url, run_dir)
    assert test.type == "mos" and test.status == "open"
    items = trial_items(sqlite_url, test)
    plays = {i.name: [(s.condition, s.kind) for s in store.item_stimuli(sqlite_url, i.id)] for i in items}
    assert all(len(found) == 1 for found in plays.values())
    systems = [i for i in items if not i.attention]
    assert len(systems) == 2 * len(CONDITIONS)  # the tiny run: 3 excerpts, one kept for training
    assert sorted(plays[i.name][0][0] for i in systems) == sorted(CONDITIONS * 2)
    gold = [i for i in items if i.attention]
    assert sorted(plays[i.name][0] for i in gold) == [("anchor-low", "anchor"), ("reference", "reference")]
    # The training page plays every version of an excerpt no trial uses, labelled.
    training = {s.condition for s in store.item_stimuli(sqlite_url, test.training_item_id)}
    assert {"reference", "anchor-low", *CONDITIONS} <= training


def test_the_rules_want_one_stimulus_per_trial_and_a_system_to_rate():
    from earshot.listening_app.rules import ItemPlan

    ok = ItemPlan("a: mse", ["mse"], ["system"], [100])
    assert mos.check_mos_items([ok, ItemPlan("a: gold", ["reference"], ["reference"], [100])], 100) == []
    assert "exactly one stimulus" in mos.check_mos_items([ok, ItemPlan("b", ["mse", "bark"], ["system"] * 2,
                                                                       [100, 100])], 100)[0]
    assert "low anchor" in mos.check_mos_items([ok, ItemPlan("c", ["anchor-mid"], ["anchor"], [100])], 100)[0]
    assert mos.check_mos_items([ItemPlan("g", ["reference"], ["reference"], [100])], 100) == [
        "the test has no system to rate"]


def test_the_view_is_blind_one_recording_with_the_p800_scale_fresh_keys_every_time(sqlite_url, run_dir):
    test = make_mos(sqlite_url, run_dir, name="secret-name")
    rater = store.add_rater(sqlite_url, test.name)
    for item in trial_items(sqlite_url, test):
        first = mos.make_view(sqlite_url, rater, test, item, 0.0)
        again = mos.make_view(sqlite_url, rater, test, item, 1.0)
        assert first.stimulus_ids[first.keys[0]] == again.stimulus_ids[again.keys[0]]
        assert set(first.keys).isdisjoint(again.keys) and first.nonce != again.nonce
        args = first.component_args
        assert args["mode"] == "mos" and args["reference"] is None and len(args["stimuli"]) == 1
        assert args["scale"] == [[5, "Excellent"], [4, "Good"], [3, "Fair"], [2, "Poor"], [1, "Bad"]]
        assert args["stimuli"][0]["audio"] != again.component_args["stimuli"][0]["audio"]  # blinded afresh
        # Every value but the audio ("reference", the protocol's key, holds nothing: asserted above).
        sent = json.dumps([v for k, v in args.items() if k not in ("reference", "stimuli")]
                          + [{k: v for k, v in s.items() if k != "audio"} for s in args["stimuli"]])
        # Nothing names the condition, nor whether the trial is a gold question.
        for secret in [*CONDITIONS, "mse", "bark", "reference", "anchor", "gold", item.name, test.name, str(run_dir)]:
            assert secret not in sent


def test_a_submission_is_checked_as_hostile(sqlite_url, run_dir):
    test = make_mos(sqlite_url, run_dir)
    rater = store.add_rater(sqlite_url, test.name)
    view = mos.make_view(sqlite_url, rater, test, trial_items(sqlite_url, test)[0], 0.0)
    key = view.keys[0]
    ratings, problems = mos.check_submission(view, rate_value(view, 4), test.settings)
    assert problems == [] and ratings == [store.Rating(view.stimulus_ids[key], 4.0, 1, 2.0)]
    for value, said in [
        ("5", "not valid"), ({"scores": {}}, "not valid"),
        (rate_value(view, nonce="0" * 16), "another trial or session"),
        (rate_value(view, scores={"f00": 4}), "not in this trial"),
        (rate_value(view, scores={key: 4, "f00": 3}), "not in this trial"),
        (rate_value(view, plays={"f00": 1}), "not in this trial"),
        (rate_value(view, padding="x" * 20_000), "too large"),
        (rate_value(view, 0), "from 1 (Bad) to 5"), (rate_value(view, 6), "from 1 (Bad) to 5"),
        (rate_value(view, 3.5), "from 1 (Bad) to 5"), (rate_value(view, True), "from 1 (Bad) to 5"),
        (rate_value(view, "4"), "from 1 (Bad) to 5"), (rate_value(view, float("nan")), "from 1 (Bad) to 5"),
        (rate_value(view, plays={key: -1}), "play record"), (rate_value(view, seconds={key: "long"}), "play record"),
        (rate_value(view, scores={}), "Choose how good"),
        (rate_value(view, plays={}), "Play the recording before you rate it."),
    ]:
        ratings, problems = mos.check_submission(view, value, test.settings)
        assert ratings == [] and said in " ".join(problems), (value, problems)
    lenient = test.settings.model_copy(update={"must_play_all": False})
    assert mos.check_submission(view, rate_value(view, 2, plays={}), lenient)[1] == []


def test_the_store_refuses_a_rating_that_does_not_fit_and_a_second_submit(sqlite_url, run_dir):
    test = make_mos(sqlite_url, run_dir)
    rater = store.add_rater(sqlite_url, test.name)
    first, second = trial_items(sqlite_url, test)[:2]
    (own,) = store.item_stimuli(sqlite_url, first.id)
    (other,) = store.item_stimuli(sqlite_url, second.id)
    with pytest.raises(store.StoreError, match="do not match"):
        mos.TYPE.save(sqlite_url, rater.token, first.id, [store.Rating(other.id, 4, 1, 1.0)], 2.0)
    for score in (0.0, 4.5, 6.0, 50.0):
        with pytest.raises(store.StoreError, match="whole number from 1 to 5"):
            mos.TYPE.save(sqlite_url, rater.token, first.id, [store.Rating(own.id, score, 1, 1.0)], 2.0)
    with pytest.raises(store.StoreError, match="takes MOS answers, not MUSHRA ones"):
        store.submit_trial(sqlite_url, rater.token, first.id, [store.Rating(own.id, 4, 1, 1.0)], 2.0)
    mos.TYPE.save(sqlite_url, rater.token, first.id, [store.Rating(own.id, 5, 2, 3.0)], 4.0)
    with pytest.raises(store.StoreError, match="submitted already"):
        mos.TYPE.save(sqlite_url, rater.token, first.id, [store.Rating(own.id, 1, 2, 3.0)], 4.0)
    frame = store.export_frame(sqlite_url, test.name)
    assert list(frame.columns) == RATINGS_TABLE_COLUMNS and len(frame) == 1
    row = frame.iloc[0]
    assert (row["type"], row["condition"], row["score"], row["play_count"]) == ("mos", own.condition, 5.0, 2)
    assert row["item"] == first.name.split(":")[0]


def send(at: AppTest, value) -> AppTest:
    view = next(v for k, v in at.session_state["earshot"].views.items() if k > 0)
    at.session_state[f"player-{view.nonce}"] = value
    return at.run()


def test_the_trial_page_writes_one_rating_per_submit_refuses_bad_ones_and_resumes_after_a_reload(
        sqlite_url, run_dir, monkeypatch):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_mos(sqlite_url, run_dir)
    total = len(trial_items(sqlite_url, test))
    rater = store.add_rater(sqlite_url, test.name)
    store.record_consent(sqlite_url, rater.id)
    at = app(rater.token, "views/trial.py")
    assert "rate **how good it sounds**" in texts(at)
    view = next(v for k, v in at.session_state["earshot"].views.items() if k > 0)
    assert view.component_args["mode"] == "mos"

    send(at, rate_value(view, scores={}, plays={}))
    assert "Choose how good the recording sounds, from Excellent to Bad." in texts(at)
    assert "Play the recording before you rate it." in texts(at)
    send(at, rate_value(view, 7, submit_id=2))
    assert "from 1 (Bad) to 5 (Excellent)" in texts(at)
    send(at, rate_value(view, 4, submit_id=3, nonce="f" * 16))
    assert "another trial or session" in texts(at)
    assert store.export_frame(sqlite_url, test.name).empty

    send(at, rate_value(view, 4, submit_id=4))
    assert not at.exception and f"Trial 2 of {total}" in str(at.get("progress")[0].proto)
    saved = store.export_frame(sqlite_url, test.name)
    assert saved["score"].tolist() == [4.0]
    at.session_state[f"player-{view.nonce}"] = rate_value(view, 1, submit_id=5)  # a replay
    at.run()
    assert store.export_frame(sqlite_url, test.name)["score"].tolist() == [4.0]
    # A reload (a new session, another device) resumes at trial 2, with new keys.
    again = app(rater.token, "views/trial.py")
    assert f"Trial 2 of {total}" in str(again.get("progress")[0].proto)
    resumed = next(v for k, v in again.session_state["earshot"].views.items() if k > 0)
    assert resumed.item_id != view.item_id and resumed.keys != view.keys


def rate_all(db_url: str, test: store.TestInfo, rater: store.RaterInfo, careless: bool = False) -> None:
    """Rate every trial: mse-seed0 4, bark-seed0 2, the reference 5 and the low anchor 1 (careless: 4)."""
    for item in trial_items(db_url, test):
        (found,) = store.item_stimuli(db_url, item.id)
        score = {"mse-seed0": 4, "bark-seed0": 2, "reference": 5, "anchor-low": 4 if careless else 1}[found.condition]
        mos.TYPE.save(db_url, rater.token, item.id, [store.Rating(found.id, score, 1, 2.0)], 3.0)


def test_prepare_and_analyze_from_the_command_line(sqlite_url, run_dir):
    runner = CliRunner()
    made = runner.invoke(listen_app, ["prepare", str(run_dir), "--type", "mos", "--items", "2", "--seconds", "2",
                                      "--name", "cli-mos", "--attention", "2", "--open", "--db", sqlite_url])
    assert made.exit_code == 0, made.output
    shown = " ".join(made.output.split())
    assert ("MOS (ACR) test cli-mos: 4 trials (2 items × 2 conditions: mse-seed0, bark-seed0), one recording per page "
            "rated from Excellent to Bad") in shown and "each rater: 4 trials + 2 attention checks" in shown
    test = store.get_test(sqlite_url, "cli-mos")
    for name in ("r1", "r2"):
        rate_all(sqlite_url, test, store.add_rater(sqlite_url, test.name, name), careless=name == "r2")
    listed = runner.invoke(listen_app, ["list", "--db", sqlite_url])
    assert "cli-mos\tMOS (ACR)\topen" in listed.output
    from earshot.benchmark.cli.app import app as earshot_app

    analysed = CliRunner().invoke(earshot_app, ["listen", "analyze", "cli-mos", "--db", sqlite_url, "--json"])
    assert analysed.exit_code == 0, analysed.output
    document = json.loads(analysed.stdout)
    (conditions,) = [t for t in document["tables"] if t["key"] == "mos-conditions"]
    assert [r[:5] for r in conditions["rows"]] == [["mse-seed0", "2", "2", "4", "4.00"],
                                                    ["bark-seed0", "2", "2", "4", "2.00"]]
    assert document["tests"]["cli-mos"]["flagged"] == ["r2"]
    (gold,) = [t for t in document["tables"] if t["key"] == "mos-raters"]
    assert gold["rows"] == [["r1", "4", "2 of 2", "no"], ["r2", "4", "1 of 2", "yes"]]
    plain = runner.invoke(listen_app, ["prepare", str(run_dir), "--type", "mos", "--items", "2", "--seconds", "2",
                                       "--name", "plain", "--db", sqlite_url])
    assert "4 trials (2 items × 2 conditions: mse-seed0, bark-seed0)," in " ".join(plain.output.split())
    refused = runner.invoke(listen_app, ["prepare", str(run_dir), "--type", "mos", "--attention", "9", "--db",
                                         sqlite_url])
    assert refused.exit_code != 0 and "--attention 9: at most 2, one per item" in " ".join(refused.output.split())
    assert "Traceback" not in refused.output


def test_the_admin_page_shows_the_mos_and_the_gold_questions(sqlite_url, run_dir, monkeypatch):
    from tests.listening_app.test_admin import _log_in

    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    monkeypatch.setenv("EARSHOT_ADMIN_PASSWORD", "pw")
    test = make_mos(sqlite_url, run_dir)
    rate_all(sqlite_url, test, store.add_rater(sqlite_url, test.name, "ann"))
    rate_all(sqlite_url, test, store.add_rater(sqlite_url, test.name, "bob"), careless=True)
    at = _log_in(app(page="views/admin.py"))
    assert not at.exception
    headings = [h.value for h in at.subheader]
    assert "Live summary (mean opinion score per condition, gold questions)" in headings
    assert not any("Post-screening" in h for h in headings)
    frames = {tuple(df.value.columns[:2]): df.value for df in at.dataframe}
    means = frames["condition", "raters"]
    assert means["condition"].tolist() == CONDITIONS
    assert means["MOS of unflagged [95 % CI]"].tolist() == ["4.00", "2.00"]
    gold = frames["rater", "ratings"]
    assert gold.values.tolist() == [["ann", "4", "2 of 2", "no"], ["bob", "4", "1 of 2", "yes"]]
    assert "rater bob failed 1 of 2 gold questions" in " ".join(c.value for c in at.caption)


def test_the_report_shows_a_mos_test_with_its_metrics_against_ears(sqlite_url, run_dir, tmp_path):
    from earshot.results.report import build_sections, render_markdown

    test = make_mos(sqlite_url, run_dir)
    rate_all(sqlite_url, test, store.add_rater(sqlite_url, test.name, "ann"))
    rate_all(sqlite_url, test, store.add_rater(sqlite_url, test.name, "bob"), careless=True)
    run, sections = build_sections(run_dir, ratings=[("mos", store.export_frame(sqlite_url, "mos"))])
    text = render_markdown(run, sections, tmp_path)
    assert "test mos (MOS (ACR))" in text
    assert "| mse-seed0 | 2 | 2 | 4 | 4.00 | 1 | 4.00 |" in text
    assert "| bob | 4 | 1 of 2 | **yes** |" in text
    assert "Metrics against ears" in text


def test_an_exported_csv_is_analysed_as_the_database_is(sqlite_url, run_dir, tmp_path):
    from earshot.results.listening import read_ratings
    from earshot.results.mos import analyze_mos

    test = make_mos(sqlite_url, run_dir)
    rate_all(sqlite_url, test, store.add_rater(sqlite_url, test.name, "ann"), careless=True)
    exported = store.export_frame(sqlite_url, test.name)
    exported.to_csv(tmp_path / "mos.csv", index=False)
    from_file, from_db = analyze_mos(read_ratings(tmp_path / "mos.csv"), "t"), analyze_mos(exported, "t")
    assert from_file.summary.equals(from_db.summary) and from_file.raters.equals(from_db.raters)
    assert from_db.raters["flagged"].tolist() == [True]


def test_the_start_page_explains_the_acr_task_not_mushras(sqlite_url, run_dir, monkeypatch):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_mos(sqlite_url, run_dir)
    at = app(store.add_rater(sqlite_url, test.name).token)
    assert not at.exception
    shown = texts(at)
    assert "5 Excellent, 4 Good, 3 Fair, 2 Poor, 1 Bad" in shown and "no reference" in shown
    assert "0–100" not in shown and "hidden reference" not in shown and not at.table
