"""An A/B preference test: preparation, the blind view, the store's checks, the trial page, export and analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from earshot.listening_app import ab, store, testtypes
from earshot.listening_app.cli import listen_app
from earshot.listening_app.prepare import PrepareError, prepare_test
from earshot.listening_app.rules import ItemPlan, check_test
from earshot.listening_app.settings import TestSettings
from earshot.results.listening import RATINGS_TABLE_COLUMNS
from tests.listening_app.test_app import app, texts

CONDITIONS = ["mse-seed0", "bark-seed0"]


def make_ab(db_url: str, run_dir: Path, name: str = "ab", **settings) -> store.TestInfo:
    prepare_test(run_dir, db_url, items=8, seconds=2.0, name=name, settings=TestSettings(**settings), test_type="ab")
    store.set_status(db_url, name, "open")
    return store.get_test(db_url, name)


def trial_items(db_url: str, test: store.TestInfo) -> list[store.ItemInfo]:
    return [i for i in store.test_items(db_url, test.id) if not i.training]


def answer_value(view, answer="A", submit_id=1, **changes) -> dict:
    value = {"nonce": view.nonce, "submit_id": submit_id, "answer": answer,
             "seconds": {k: 1.5 for k in view.keys}, "plays": {k: 1 for k in view.keys}}
    value.update(changes)
    return value


def prefer(db_url: str, rater: store.RaterInfo, item: store.ItemInfo, condition: str | None,
           order_seed: int = 0) -> None:
    """Submit the rater's preference for ``condition`` (None: no preference), as the server drew A and B."""
    a, b = ab.assignment(store.item_stimuli(db_url, item.id), rater.token, order_seed, item.id)
    said = "none" if condition is None else ("A" if a.condition == condition else "B")
    store.submit_pair(db_url, rater.token, item.id, store.PairAnswer(a.id, b.id, said, 2, 4.0), 5.0)


def test_prepare_makes_one_trial_per_excerpt_and_pair_and_refuses_what_it_cannot_test(sqlite_url, run_dir):
    test = make_ab(sqlite_url, run_dir)
    assert test.type == "ab" and test.status == "open" and test.settings.no_preference
    items = trial_items(sqlite_url, test)
    assert items and len({i.name for i in items}) == len(items)
    for item in items:
        found = store.item_stimuli(sqlite_url, item.id)
        assert sorted(s.condition for s in found) == sorted(CONDITIONS) and {s.kind for s in found} == {"system"}
    assert check_test(sqlite_url, test.name) == []
    with pytest.raises(PrepareError, match="at least 2"):
        prepare_test(run_dir, sqlite_url, items=2, seconds=2.0, name="one", conditions=["mse"], test_type="ab")
    plans = [ItemPlan("x", ["mse-seed0", "reference"], ["system", "reference"], [100, 100]),
             ItemPlan("y", ["mse-seed0", "bark-seed0"], ["system", "system"], [100, 90])]
    assert testtypes.get("ab").check_items(plans, 1000, 100.0, 200.0) == [
        "x: an A/B trial needs exactly two different systems", "y: stimuli differ in length, so switching would not "
        "stay in sync"]
    assert "cannot be told from 'no preference'" in ab.check_conditions(["none", "mse-seed0"])


def test_the_attention_check_plays_the_reference_against_the_low_anchor_and_may_open(sqlite_url, run_dir):
    stimuli = [store.NewStimulus(c, k, b"", 0.0, 100) for c, k in (("reference", "reference"),
                                                                    ("anchor-low", "anchor"), ("anchor-mid", "anchor"),
                                                                    ("mse-seed0", "system"), ("bark-seed0", "system"))]
    (item,) = ab.make_attention({"item": "speech-0", "category": "speech"}, stimuli, CONDITIONS)
    assert item.attention and item.excerpt == "speech-0"
    assert [s.condition for s in item.stimuli] == ["reference", "anchor-low"]
    plan = ItemPlan(item.name, [s.condition for s in item.stimuli], [s.kind for s in item.stimuli], [100, 100])
    assert ab.check_ab_items([plan], 1000) == []


def test_a_is_drawn_per_rater_stable_per_token_and_nothing_names_a_condition(sqlite_url, run_dir):
    test = make_ab(sqlite_url, run_dir, name="secret-name")
    item = trial_items(sqlite_url, test)[0]
    found = store.item_stimuli(sqlite_url, item.id)
    drawn = [ab.assignment(found, f"token-{i}", 0, item.id)[0].id for i in range(40)]
    assert 10 <= drawn.count(found[0].id) <= 30  # either condition is A, for about half the raters
    rater = store.add_rater(sqlite_url, test.name)
    first = ab.make_view(sqlite_url, rater, test, item, 0.0)
    again = ab.make_view(sqlite_url, rater, test, item, 1.0)
    assert [first.stimulus_ids[k] for k in first.keys] == [again.stimulus_ids[k] for k in again.keys]
    assert set(first.keys).isdisjoint(again.keys)
    # Everything but the audio (base64 can spell any short word by chance; the audio differs per view).
    sent = json.dumps({**first.component_args, "stimuli": [{k: v for k, v in s.items() if k != "audio"}
                                                           for s in first.component_args["stimuli"]]})
    for secret in [*CONDITIONS, "mse", "bark", item.name, test.name, str(run_dir)]:
        assert secret not in sent
    assert [s["label"] for s in first.component_args["stimuli"]] == ["A", "B"]
    assert first.component_args["mode"] == "ab" and first.component_args["reference"] is None
    assert first.component_args["stimuli"][0]["audio"] != again.component_args["stimuli"][0]["audio"]


def test_the_check_refuses_incomplete_forged_and_oversized_values(sqlite_url, run_dir):
    test = make_ab(sqlite_url, run_dir)
    rater = store.add_rater(sqlite_url, test.name)
    view = ab.make_view(sqlite_url, rater, test, trial_items(sqlite_url, test)[0], 0.0)
    forced = test.settings.model_copy(update={"no_preference": False})
    check = ab.check_submission
    assert check(view, answer_value(view, answer=None), test.settings)[1] == [
        "Say which you prefer, A or B, or that you have no preference."]
    assert check(view, answer_value(view, plays={view.keys[1]: 2}), test.settings)[1] == [
        "Play A and B before you submit; not played yet: A."]
    assert check(view, answer_value(view, nonce="0" * 16), test.settings)[1] == [
        "this answer belongs to another trial or session: reload the page"]
    assert "not in this trial" in check(view, answer_value(view, plays={"forged": 1}), test.settings)[1][0]
    assert check(view, answer_value(view, answer="X"), test.settings)[1] == ["the answer must be A, B or no preference"]
    assert check(view, answer_value(view, answer="none"), forced)[1] == [
        "the answer must be A or B (this test asks for a choice)"]
    for bad in ({view.keys[0]: True}, {view.keys[0]: -1}, {view.keys[0]: 1.5}):
        assert check(view, answer_value(view, plays=bad), test.settings)[1] == ["the play record of A is not valid"]
    assert check(view, answer_value(view, seconds={view.keys[0]: float("inf")}), test.settings)[0] is None
    assert check(view, answer_value(view, padding="x" * 20_000), test.settings)[1] == [
        "the player sent a value that is too large"]
    for not_a_value in ([], "A", answer_value(view, plays=[1, 1])):
        assert check(view, not_a_value, test.settings)[1] == ["the player sent a value that is not valid"]
    answer, problems = check(view, answer_value(view, answer="none"), test.settings)
    assert problems == [] and answer == store.PairAnswer(view.stimulus_ids[view.keys[0]],
                                                         view.stimulus_ids[view.keys[1]], "none", 2, 3.0)


def test_the_store_refuses_an_answer_that_does_not_fit_the_trial_and_a_repeated_submit(sqlite_url, run_dir):
    test = make_ab(sqlite_url, run_dir, no_preference=False)
    rater = store.add_rater(sqlite_url, test.name, "ann")
    first, second = trial_items(sqlite_url, test)[:2]
    a, b = store.item_stimuli(sqlite_url, first.id)
    other = store.item_stimuli(sqlite_url, second.id)[0]
    for wrong in (store.PairAnswer(a.id, other.id, "A", 2, 1.0), store.PairAnswer(a.id, a.id, "A", 2, 1.0)):
        with pytest.raises(store.StoreError, match="does not match"):
            store.submit_pair(sqlite_url, rater.token, first.id, wrong, 2.0)
    with pytest.raises(store.StoreError, match="must be A or B"):  # this test asks for a choice
        store.submit_pair(sqlite_url, rater.token, first.id, store.PairAnswer(a.id, b.id, "none", 2, 1.0), 2.0)
    with pytest.raises(store.StoreError, match="unknown invitation token"):
        store.submit_pair(sqlite_url, "forged", first.id, store.PairAnswer(a.id, b.id, "A", 2, 1.0), 2.0)
    with pytest.raises(store.StoreError, match="takes AB answers, not ABX ones"):
        store.submit_abx(sqlite_url, rater.token, first.id, store.AbxAnswer(a.id, b.id, a.id, "A", 3, 1.0), 2.0)
    store.submit_pair(sqlite_url, rater.token, first.id, store.PairAnswer(a.id, b.id, "B", 2, 1.0), 2.0)
    with pytest.raises(store.StoreError, match="submitted already"):
        store.submit_pair(sqlite_url, rater.token, first.id, store.PairAnswer(a.id, b.id, "A", 2, 1.0), 2.0)
    frame = store.export_frame(sqlite_url, test.name)
    assert list(frame.columns) == RATINGS_TABLE_COLUMNS and len(frame) == 1
    row = frame.iloc[0]
    assert (row["type"], row["a"], row["b"], row["answer"], row["condition"], row["play_count"]) == (
        "ab", a.condition, b.condition, b.condition, a.condition, 2)
    assert row["item"] == first.name.split(":")[0] and row["x"] is None and pd.isna(row["correct"])


def test_answers_and_their_export_on_either_database(db_url, run_dir):
    test = make_ab(db_url, run_dir, no_preference=False)
    view = ab.make_view(db_url, store.add_rater(db_url, test.name), test, trial_items(db_url, test)[0], 0.0)
    assert view.component_args["no_preference"] is False  # the player offers no "No preference" button
    assert view.component_args["rules"]["unanswered"] == "Say which you prefer, A or B."
    store.update_settings(db_url, test.name, no_preference=True)
    for name, liked in (("ann", "mse-seed0"), ("bob", None)):
        rater = store.add_rater(db_url, test.name, name)
        for item in trial_items(db_url, test)[:2]:
            prefer(db_url, rater, item, liked)
    frame = store.export_frame(db_url, test.name)
    assert frame["rater"].tolist() == ["ann", "ann", "bob", "bob"]
    assert frame["answer"].tolist() == ["mse-seed0", "mse-seed0", "none", "none"]
    assert (frame["type"] == "ab").all() and frame["score"].isna().all() and frame["correct"].isna().all()


def test_an_answer_is_one_transaction_and_an_overwrite_replaces_it(sqlite_url, run_dir, monkeypatch):
    test = make_ab(sqlite_url, run_dir, resubmit="overwrite")
    rater = store.add_rater(sqlite_url, test.name)
    item = trial_items(sqlite_url, test)[0]
    a, b = store.item_stimuli(sqlite_url, item.id)
    real = store._trial_row

    def written_then_failing(*args):
        real(*args)
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(store, "_trial_row", written_then_failing)
    with pytest.raises(RuntimeError):
        store.submit_pair(sqlite_url, rater.token, item.id, store.PairAnswer(a.id, b.id, "A", 2, 1.0), 2.0)
    assert store.submitted_items(sqlite_url, rater.id) == set()  # the trial row went with the failed answer
    monkeypatch.setattr(store, "_trial_row", real)
    store.submit_pair(sqlite_url, rater.token, item.id, store.PairAnswer(a.id, b.id, "A", 2, 1.0), 2.0)
    store.submit_pair(sqlite_url, rater.token, item.id, store.PairAnswer(b.id, a.id, "none", 4, 3.0), 2.0)
    frame = store.export_frame(sqlite_url, test.name)
    assert frame[["a", "answer", "play_count", "submissions"]].values.tolist() == [[b.condition, "none", 4, 2]]


def send(at: AppTest, value) -> AppTest:
    view = next(v for k, v in at.session_state["earshot"].views.items() if k > 0)
    at.session_state[f"player-{view.nonce}"] = value
    return at.run()


def test_the_trial_page_writes_one_answer_per_submit_refuses_bad_ones_and_resumes_after_a_reload(
        sqlite_url, run_dir, monkeypatch):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_ab(sqlite_url, run_dir)
    total = len(trial_items(sqlite_url, test))
    rater = store.add_rater(sqlite_url, test.name)
    store.record_consent(sqlite_url, rater.id)
    at = app(rater.token, "views/trial.py")
    assert "say which you **prefer**" in texts(at)
    view = next(v for k, v in at.session_state["earshot"].views.items() if k > 0)
    assert view.component_args["mode"] == "ab" and view.component_args["no_preference"] is True

    send(at, answer_value(view, answer=None))
    assert "Say which you prefer, A or B, or that you have no preference." in texts(at)
    send(at, answer_value(view, submit_id=2, plays={view.keys[0]: 1}))
    assert "not played yet: B." in texts(at)
    send(at, answer_value(view, submit_id=3, answer="C"))
    assert "must be A, B or no preference" in texts(at)
    send(at, answer_value(view, submit_id=4, nonce="f" * 16))
    assert "another trial or session" in texts(at)
    assert store.export_frame(sqlite_url, test.name).empty

    send(at, answer_value(view, submit_id=5, answer="none"))
    assert not at.exception and f"Trial 2 of {total}" in str(at.get("progress")[0].proto)
    saved = store.export_frame(sqlite_url, test.name)
    assert saved["answer"].tolist() == ["none"]
    at.session_state[f"player-{view.nonce}"] = answer_value(view, submit_id=6, answer="A")  # a replay
    at.run()
    assert store.export_frame(sqlite_url, test.name)["answer"].tolist() == ["none"]
    reloaded = app(rater.token, "views/trial.py")  # a fresh session: resumes from the database
    assert f"Trial 2 of {total}" in str(reloaded.get("progress")[0].proto)
    shown = next(v for k, v in reloaded.session_state["earshot"].views.items() if k > 0)
    assert shown.item_id != view.item_id


def test_prepare_and_analyze_from_the_command_line(sqlite_url, run_dir):
    runner = CliRunner()
    made = runner.invoke(listen_app, ["prepare", str(run_dir), "--type", "ab", "--items", "2", "--seconds", "2",
                                      "--name", "cli-ab", "--forced-choice", "--open", "--db", sqlite_url])
    assert made.exit_code == 0, made.output
    assert ("A/B preference test cli-ab: 2 trials (2 items × 1 pair of mse-seed0, bark-seed0)"
            in " ".join(made.output.split()))
    test = store.get_test(sqlite_url, "cli-ab")
    assert test.settings.no_preference is False
    for name, liked in (("r1", "mse-seed0"), ("r2", "bark-seed0")):
        rater = store.add_rater(sqlite_url, test.name, name)
        for item in trial_items(sqlite_url, test):
            prefer(sqlite_url, rater, item, liked)
    listed = runner.invoke(listen_app, ["list", "--db", sqlite_url])
    assert "cli-ab\tA/B preference\topen" in listed.output and listed.output.rstrip().endswith("\t4")
    from earshot.benchmark.cli.app import app as earshot_app

    analysed = CliRunner().invoke(earshot_app, ["listen", "analyze", "cli-ab", "--db", sqlite_url, "--json"])
    assert analysed.exit_code == 0, analysed.output
    document = json.loads(analysed.stdout)
    (pairs,) = [t for t in document["tables"] if t["key"] == "ab-pairs"]
    # In the run's order mse-seed0 comes first; 2 of 4 preferred it: p = 1.
    assert pairs["rows"][0] == ["mse-seed0 vs bark-seed0", "2", "2 / 2", "0 (0.0 %)", "50.0 % [15.0, 85.0]", "1.000",
                                "1.000", "–"]
    (scale,) = [t for t in document["tables"] if t["key"] == "ab-scale"]
    # Two wins each of four: scale 0; information 4 · 1/2 · 1/2 = 1, the centred scale half the
    # difference: se 1/2, interval ±1.96 · 0.5.
    assert [r[3] for r in scale["rows"]] == ["0.00 [-0.98, 0.98]", "0.00 [-0.98, 0.98]"]
    assert document["tests"]["cli-ab"]["bradley_terry"]["estimable"] is True


def test_the_admin_page_shows_an_ab_tests_preferences_and_scale(sqlite_url, run_dir, monkeypatch):
    from tests.listening_app.test_admin import _log_in

    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    monkeypatch.setenv("EARSHOT_ADMIN_PASSWORD", "pw")
    test = make_ab(sqlite_url, run_dir)
    for name, liked in (("ann", "mse-seed0"), ("bob", None)):
        rater = store.add_rater(sqlite_url, test.name, name)
        for item in trial_items(sqlite_url, test):
            prefer(sqlite_url, rater, item, liked)
    at = _log_in(app(page="views/admin.py"))
    assert not at.exception
    headings = [h.value for h in at.subheader]
    assert "Live summary (preference shares per pair, Bradley–Terry scale)" in headings
    assert not any("Post-screening" in h for h in headings)
    frames = {df.value.columns[0]: df.value for df in at.dataframe}
    pairs = frames["pair (first vs second)"]
    n = len(trial_items(sqlite_url, test))
    assert pairs.values.tolist()[0][:4] == ["mse-seed0 vs bark-seed0", "2", f"{n} / 0", f"{n} (50.0 %)"]
    assert frames["system"]["system"].tolist() == ["mse-seed0", "bark-seed0"]


def test_the_admin_page_shows_every_table_of_an_ab_test_with_an_attention_check(sqlite_url, run_dir, monkeypatch):
    # Four tables: the attention checks, the pairs, the pairs without the flagged rater, the scale.
    from tests.listening_app.test_admin import _log_in

    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    monkeypatch.setenv("EARSHOT_ADMIN_PASSWORD", "pw")
    test = make_ab(sqlite_url, run_dir, attention=1)
    for name, liked in (("ann", "mse-seed0"), ("bob", None)):
        rater = store.add_rater(sqlite_url, test.name, name)
        for item in trial_items(sqlite_url, test):
            prefer(sqlite_url, rater, item, ("reference" if liked else "anchor-low") if item.attention else liked)
    at = _log_in(app(page="views/admin.py"))
    assert not at.exception
    assert any("bob failed an attention check" in c.value for c in at.caption)
    frames = [df.value for df in at.dataframe]
    by_first_column = {}
    for frame in frames:
        by_first_column.setdefault(frame.columns[0], []).append(frame)
    assert by_first_column["rater"][-1]["rater"].tolist() == ["ann", "bob"]  # the attention table
    every, attentive = by_first_column["pair (first vs second)"]
    n = len(trial_items(sqlite_url, test)) - 1
    assert every.values.tolist()[0][1:4] == ["2", f"{n} / 0", f"{n} (50.0 %)"]
    assert attentive.values.tolist()[0][1:4] == ["1", f"{n} / 0", "0 (0.0 %)"]
    assert by_first_column["system"][0]["system"].tolist() == ["mse-seed0", "bark-seed0"]


def test_the_report_shows_an_ab_test_its_figure_and_the_metrics_against_its_scale(sqlite_url, run_dir, tmp_path):
    from earshot.results.report import build_sections, render_markdown

    test = make_ab(sqlite_url, run_dir)
    items = trial_items(sqlite_url, test)
    for name in ("ann", "bob"):
        rater = store.add_rater(sqlite_url, test.name, name)
        for k, item in enumerate(items):
            prefer(sqlite_url, rater, item, "mse-seed0" if k % 3 else "bark-seed0")
    run, sections = build_sections(run_dir, ratings=[("ab", store.export_frame(sqlite_url, "ab"))])
    text = render_markdown(run, sections, tmp_path)
    assert "test ab (A/B preference)" in text and "Bradley–Terry scale" in text
    assert "| mse-seed0 vs bark-seed0 | 2 |" in text
    assert "ab-scale-ab" in text and "Metrics against ears" in text


def test_an_exported_csv_is_analysed_as_the_database_is(sqlite_url, run_dir, tmp_path):
    from earshot.results.ab import analyze_ab
    from earshot.results.listening import read_ratings

    test = make_ab(sqlite_url, run_dir)
    rater = store.add_rater(sqlite_url, test.name, "ann")
    for k, item in enumerate(trial_items(sqlite_url, test)):
        prefer(sqlite_url, rater, item, [None, "mse-seed0", "bark-seed0"][k % 3])
    exported = store.export_frame(sqlite_url, test.name)
    exported.to_csv(tmp_path / "ab.csv", index=False)
    from_file = analyze_ab(read_ratings(tmp_path / "ab.csv"), "t", CONDITIONS)
    from_db = analyze_ab(exported, "t", CONDITIONS)
    assert from_file.pairs.equals(from_db.pairs) and from_file.scale.equals(from_db.scale)
    broken = exported.drop(columns=["answer"])
    broken.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(ValueError, match=r"broken.csv: row 2: an A/B row needs column\(s\) answer"):
        read_ratings(tmp_path / "broken.csv")
