"""An ABX test: preparation, the blind view, the store's checks, the trial page, export and analysis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from earshot.listening_app import abx, store
from earshot.listening_app.cli import listen_app
from earshot.listening_app.prepare import PrepareError, prepare_test
from earshot.listening_app.settings import TestSettings
from earshot.results.listening import RATINGS_TABLE_COLUMNS
from tests.listening_app.conftest import make_test
from tests.listening_app.test_app import app, texts

CONDITIONS = ["mse-seed0", "bark-seed0"]


def make_abx(db_url: str, run_dir: Path, name: str = "abx", **settings) -> store.TestInfo:
    prepare_test(run_dir, db_url, items=8, seconds=2.0, name=name, settings=TestSettings(**settings), test_type="abx")
    store.set_status(db_url, name, "open")
    return store.get_test(db_url, name)


def trial_items(db_url: str, test: store.TestInfo) -> list[store.ItemInfo]:
    return [i for i in store.test_items(db_url, test.id) if not i.training]


def answer_value(view, answer="A", submit_id=1, **changes) -> dict:
    value = {"nonce": view.nonce, "submit_id": submit_id, "answer": answer,
             "seconds": {k: 1.5 for k in view.keys}, "plays": {k: 1 for k in view.keys}}
    value.update(changes)
    return value


def test_prepare_makes_one_trial_per_excerpt_and_pair_each_with_that_pairs_two_stimuli(sqlite_url, run_dir):
    test = make_abx(sqlite_url, run_dir)
    assert test.type == "abx" and test.status == "open"
    items = trial_items(sqlite_url, test)
    assert items and len({i.name for i in items}) == len(items)
    for item in items:
        found = store.item_stimuli(sqlite_url, item.id)
        assert sorted(s.condition for s in found) == sorted(CONDITIONS) and {s.kind for s in found} == {"system"}
    # The training page still plays every version of an excerpt no trial uses, labelled.
    training = [s.condition for s in store.item_stimuli(sqlite_url, test.training_item_id)]
    assert {"reference", "anchor-low", *CONDITIONS} <= set(training)
    with pytest.raises(PrepareError, match="at least 2"):
        prepare_test(run_dir, sqlite_url, items=2, seconds=2.0, name="one", conditions=["mse"], test_type="abx")


def test_x_is_a_or_b_at_random_per_rater_stable_per_token_and_nothing_names_a_condition(sqlite_url, run_dir):
    test = make_abx(sqlite_url, run_dir, name="secret-name")
    item = trial_items(sqlite_url, test)[0]
    found = store.item_stimuli(sqlite_url, item.id)
    drawn = [abx.assignment(found, f"token-{i}", 0, item.id) for i in range(40)]
    assert {a.id == x.id for a, _, x in drawn} == {True, False}  # X is sometimes A, sometimes B
    assert len({a.id for a, _, _ in drawn}) == 2  # and either condition is played as A
    rater = store.add_rater(sqlite_url, test.name)
    first = abx.make_view(sqlite_url, rater, test, item, 0.0)
    again = abx.make_view(sqlite_url, rater, test, item, 1.0)
    assert [first.stimulus_ids[k] for k in first.keys] == [again.stimulus_ids[k] for k in again.keys]
    assert set(first.keys).isdisjoint(again.keys)
    # Everything but the audio (base64 can spell any short word by chance; the audio is checked below).
    sent = json.dumps({**first.component_args, "stimuli": [{k: v for k, v in s.items() if k != "audio"}
                                                           for s in first.component_args["stimuli"]]})
    for secret in [*CONDITIONS, "mse", "bark", item.name, test.name, str(run_dir)]:
        assert secret not in sent
    audio = [s["audio"] for s in first.component_args["stimuli"]]
    assert len(set(audio)) == 3  # X's bytes match neither A's nor B's
    assert [s["label"] for s in first.component_args["stimuli"]] == ["A", "B", "X"]


def test_the_store_refuses_an_answer_that_does_not_fit_the_trial(sqlite_url, run_dir):
    test = make_abx(sqlite_url, run_dir)
    rater = store.add_rater(sqlite_url, test.name)
    first, second = trial_items(sqlite_url, test)[:2]
    a, b = store.item_stimuli(sqlite_url, first.id)
    other = store.item_stimuli(sqlite_url, second.id)[0]
    for wrong in (store.AbxAnswer(a.id, other.id, a.id, "A", 3, 1.0), store.AbxAnswer(a.id, a.id, a.id, "A", 3, 1.0),
                  store.AbxAnswer(a.id, b.id, other.id, "A", 3, 1.0)):
        with pytest.raises(store.StoreError, match="does not match"):
            store.submit_abx(sqlite_url, rater.token, first.id, wrong, 2.0)
    with pytest.raises(store.StoreError, match="A or B"):
        store.submit_abx(sqlite_url, rater.token, first.id, store.AbxAnswer(a.id, b.id, a.id, "X", 3, 1.0), 2.0)
    with pytest.raises(store.StoreError, match="takes ABX answers, not MUSHRA ones"):
        store.submit_trial(sqlite_url, rater.token, first.id, [store.Rating(a.id, 50, 1, 1), store.Rating(b.id, 50, 1, 1)], 2)
    store.submit_abx(sqlite_url, rater.token, first.id, store.AbxAnswer(a.id, b.id, b.id, "B", 3, 1.0), 2.0)
    with pytest.raises(store.StoreError, match="submitted already"):
        store.submit_abx(sqlite_url, rater.token, first.id, store.AbxAnswer(a.id, b.id, b.id, "A", 3, 1.0), 2.0)
    frame = store.export_frame(sqlite_url, test.name)
    assert list(frame.columns) == RATINGS_TABLE_COLUMNS and len(frame) == 1
    row = frame.iloc[0]
    assert (row["type"], row["a"], row["b"], row["x"], row["answer"], bool(row["correct"])) == (
        "abx", a.condition, b.condition, b.condition, b.condition, True)
    assert row["item"] == row["item"].split(":")[0] and row["condition"] == b.condition


def test_a_version_3_database_upgrades_its_tests_to_mushra(sqlite_url, run_dir):
    test = make_test(sqlite_url, run_dir)
    with store.engine_for(sqlite_url).begin() as conn:  # the database as version 3 left it
        conn.exec_driver_sql("DROP TABLE abx_answers")
        conn.exec_driver_sql("ALTER TABLE tests DROP COLUMN type")
        conn.exec_driver_sql("ALTER TABLE items DROP COLUMN excerpt")
        conn.execute(store.schema_version.update().values(version=3))
    store.dispose_engines()
    assert store.migrate(store.engine_for(sqlite_url)) == len(store.MIGRATIONS)
    assert store.get_test(sqlite_url, test.name).type == "mushra"
    assert "abx_answers" in sa.inspect(store.engine_for(sqlite_url)).get_table_names()
    assert set(store.export_frame(sqlite_url).columns) == set(RATINGS_TABLE_COLUMNS)


def send(at: AppTest, value) -> AppTest:
    view = next(v for k, v in at.session_state["earshot"].views.items() if k > 0)
    at.session_state[f"player-{view.nonce}"] = value
    return at.run()


def test_the_trial_page_writes_one_answer_per_submit_and_refuses_incomplete_forged_and_replayed_ones(
        sqlite_url, run_dir, monkeypatch):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_abx(sqlite_url, run_dir)
    total = len(trial_items(sqlite_url, test))
    rater = store.add_rater(sqlite_url, test.name)
    store.record_consent(sqlite_url, rater.id)
    at = app(rater.token, "views/trial.py")
    assert "X is the same as either A or B" in texts(at)
    view = next(v for k, v in at.session_state["earshot"].views.items() if k > 0)
    assert view.component_args["mode"] == "abx"

    send(at, answer_value(view, answer=None))
    assert "Say whether X is A or B." in texts(at)
    send(at, answer_value(view, submit_id=2, plays={view.keys[0]: 1}))
    assert "not played yet: B, X." in texts(at)
    send(at, answer_value(view, submit_id=3, answer="C"))
    assert "must be A or B" in texts(at)
    send(at, answer_value(view, submit_id=4, nonce="f" * 16))
    assert "another trial or session" in texts(at)
    assert store.export_frame(sqlite_url, test.name).empty

    send(at, answer_value(view, submit_id=5, answer="B"))
    assert not at.exception and f"Trial 2 of {total}" in str(at.get("progress")[0].proto)
    saved = store.export_frame(sqlite_url, test.name)
    assert len(saved) == 1 and saved["answer"][0] == saved["b"][0]
    at.session_state[f"player-{view.nonce}"] = answer_value(view, submit_id=6, answer="A")  # a replay
    at.run()
    assert store.export_frame(sqlite_url, test.name)["answer"].tolist() == saved["answer"].tolist()


def test_prepare_and_analyze_from_the_command_line(sqlite_url, run_dir):
    runner = CliRunner()
    made = runner.invoke(listen_app, ["prepare", str(run_dir), "--type", "abx", "--items", "2", "--seconds", "2",
                                      "--name", "cli-abx", "--open", "--db", sqlite_url])
    assert made.exit_code == 0, made.output
    assert "ABX test cli-abx: 2 trials (2 items × 1 pair of mse-seed0, bark-seed0)" in " ".join(made.output.split())
    test = store.get_test(sqlite_url, "cli-abx")
    for name, right in (("r1", True), ("r2", False)):
        rater = store.add_rater(sqlite_url, test.name, name)
        for item in trial_items(sqlite_url, test):
            a, b, x = abx.assignment(store.item_stimuli(sqlite_url, item.id), rater.token, 0, item.id)
            said = ("A" if x.id == a.id else "B") if right else ("B" if x.id == a.id else "A")
            store.submit_abx(sqlite_url, rater.token, item.id, store.AbxAnswer(a.id, b.id, x.id, said, 3, 4.0), 5.0)
    listed = runner.invoke(listen_app, ["list", "--db", sqlite_url])
    assert "cli-abx\tABX\topen" in listed.output and listed.output.rstrip().endswith("\t4")  # 2 raters × 2 trials
    bad = runner.invoke(listen_app, ["prepare", str(run_dir), "--type", "abc", "--db", sqlite_url])
    assert bad.exit_code != 0 and "--type 'abc'" in bad.output and "Traceback" not in bad.output
    from earshot.benchmark.cli.app import app as earshot_app

    analysed = CliRunner().invoke(earshot_app, ["listen", "analyze", "cli-abx", "--db", sqlite_url, "--json"])
    assert analysed.exit_code == 0, analysed.output
    document = json.loads(analysed.stdout)
    (pairs,) = [t for t in document["tables"] if t["key"] == "abx-pairs"]
    assert pairs["rows"][0][:3] == ["bark-seed0 vs mse-seed0", "0 of 2", "2 of 4"]
    per_rater = [t for t in document["tables"] if t["key"] == "abx-raters"][0]["rows"]
    assert [r[1:3] for r in per_rater] == [["r1", "2 of 2"], ["r2", "0 of 2"]]


def test_the_admin_page_shows_an_abx_tests_proportions_correct(sqlite_url, run_dir, monkeypatch):
    from tests.listening_app.test_admin import _log_in

    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    monkeypatch.setenv("EARSHOT_ADMIN_PASSWORD", "pw")
    test = make_abx(sqlite_url, run_dir)
    rater = store.add_rater(sqlite_url, test.name, "ann")
    for item in trial_items(sqlite_url, test):
        a, b, x = abx.assignment(store.item_stimuli(sqlite_url, item.id), rater.token, 0, item.id)
        store.submit_abx(sqlite_url, rater.token, item.id, store.AbxAnswer(a.id, b.id, x.id, "A", 3, 4.0), 5.0)
    at = _log_in(app(page="views/admin.py"))
    assert not at.exception
    headings = [h.value for h in at.subheader]
    assert "Live summary (proportion correct per pair, exact binomial tests)" in headings
    assert not any("Post-screening" in h for h in headings)
    frames = {tuple(df.value.columns[:2]): df.value for df in at.dataframe}
    pooled = frames["pair", "raters who told it apart"]
    assert pooled.values.tolist()[0][:2] == ["bark-seed0 vs mse-seed0", "0 of 1"]
    assert frames["pair", "rater"]["rater"].tolist() == ["ann"]
    assert frames["test", "type"].values.tolist()[0][:3] == ["abx", "ABX", "open"]


def test_the_report_shows_an_abx_test_beside_a_mushra_test(sqlite_url, run_dir, tmp_path):
    from earshot.results.report import build_sections, render_markdown

    test = make_abx(sqlite_url, run_dir)
    for name in ("ann", "bob"):
        rater = store.add_rater(sqlite_url, test.name, name)
        for item in trial_items(sqlite_url, test):
            a, b, x = abx.assignment(store.item_stimuli(sqlite_url, item.id), rater.token, 0, item.id)
            said = ("A" if x.id == a.id else "B") if name == "ann" else "A"
            store.submit_abx(sqlite_url, rater.token, item.id, store.AbxAnswer(a.id, b.id, x.id, said, 3, 4.0), 5.0)
    mushra = make_test(sqlite_url, run_dir, "mushra")
    rater = store.add_rater(sqlite_url, mushra.name, "ann")
    for item in trial_items(sqlite_url, mushra):
        store.submit_trial(sqlite_url, rater.token, item.id, [
            store.Rating(s.id, 100.0 if s.kind == "reference" else 40.0, 1, 1.0)
            for s in store.item_stimuli(sqlite_url, item.id)], 3.0)
    tests = [(name, store.export_frame(sqlite_url, name)) for name in ("abx", "mushra")]
    run, sections = build_sections(run_dir, ratings=tests)
    text = render_markdown(run, sections, tmp_path)
    assert "test abx (ABX)" in text and "test mushra (MUSHRA)" in text
    correct = len(trial_items(sqlite_url, test))
    # Two of two right is p = 1/4: too few trials for either rater to tell the pair apart.
    assert "| bark-seed0 vs mse-seed0 | 0 of 2 |" in text
    assert f"| bark-seed0 vs mse-seed0 | ann | {correct} of {correct} |" in text


def test_an_exported_csv_is_analysed_as_the_database_is(sqlite_url, run_dir, tmp_path):
    from earshot.results.abx import analyze_abx
    from earshot.results.listening import read_ratings

    test = make_abx(sqlite_url, run_dir)
    rater = store.add_rater(sqlite_url, test.name, "ann")
    for item in trial_items(sqlite_url, test):
        a, b, x = abx.assignment(store.item_stimuli(sqlite_url, item.id), rater.token, 0, item.id)
        store.submit_abx(sqlite_url, rater.token, item.id, store.AbxAnswer(a.id, b.id, x.id, "B", 3, 4.0), 5.0)
    exported = store.export_frame(sqlite_url, test.name)
    exported.to_csv(tmp_path / "abx.csv", index=False)
    from_file = analyze_abx(read_ratings(tmp_path / "abx.csv"), "t")
    from_db = analyze_abx(exported, "t")
    assert from_file.raters.equals(from_db.raters) and from_file.pairs.equals(from_db.pairs)
    broken = exported.drop(columns=["answer"])
    broken.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(ValueError, match=r"broken.csv: row 2: an ABX row needs column\(s\) answer"):
        read_ratings(tmp_path / "broken.csv")
