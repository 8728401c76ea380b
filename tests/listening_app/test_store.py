"""The ratings store, on SQLite and on a throwaway PostgreSQL server."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from earshot.listening_app import store
from earshot.listening_app.trial import next_trial
from tests.listening_app.conftest import make_test


def full_ratings(db_url, item_id, score=50.0):
    found = store.item_stimuli(db_url, item_id)
    return [store.Rating(s.id, 100.0 if s.kind == "reference" else score, 1, 2.0) for s in found]


def count_rows(db_url, table) -> int:
    with store.engine_for(db_url).connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def test_schema_is_versioned_and_migrating_again_changes_nothing(db_url):
    engine = store.engine_for(db_url)
    assert store.migrate(engine) == len(store.MIGRATIONS)
    with engine.connect() as conn:
        assert conn.execute(sa.select(store.schema_version.c.version)).scalar_one() == len(store.MIGRATIONS)
        assert conn.execute(sa.select(sa.func.count()).select_from(store.schema_version)).scalar_one() == 1


def test_a_version_1_database_upgrades_and_keeps_its_tests(db_url, run_dir):
    """Tests made before migration 2 had no loudness column; they were matched by RMS."""
    test = make_test(db_url, run_dir)
    rater = store.add_rater(db_url, test.name)
    engine = store.engine_for(db_url)
    with engine.begin() as conn:  # the database as version 1 left it
        conn.exec_driver_sql("ALTER TABLE tests DROP COLUMN loudness")
        conn.execute(store.schema_version.update().values(version=1))
    store.dispose_engines()  # a new server process: it migrates on connect
    assert store.migrate(store.engine_for(db_url)) == len(store.MIGRATIONS)
    upgraded = store.get_test(db_url, test.name)
    assert upgraded.loudness == "rms" and upgraded.id == test.id
    assert store.rater_by_token(db_url, rater.token).id == rater.id
    assert test.loudness == "bs1770"  # what prepare records now


def test_a_version_2_database_keeps_each_tests_way_of_admitting_raters(db_url, run_dir):
    """Before migration 3 the setting was rater_id (token, name, token-or-name) and raters were
    not marked; a test that took typed names keeps taking them."""
    typed, tokens = make_test(db_url, run_dir, "typed"), make_test(db_url, run_dir, "tokens")
    rater = store.add_rater(db_url, typed.name, "Ada")
    engine = store.engine_for(db_url)
    with engine.begin() as conn:  # the database as version 2 left it
        conn.exec_driver_sql("ALTER TABLE raters DROP COLUMN self_registered")
        for test, old in ((typed, "token-or-name"), (tokens, "token")):
            settings = test.settings.model_dump(exclude={"self_registration"}) | {"rater_id": old}
            conn.execute(store.tests.update().where(store.tests.c.id == test.id).values(settings=json.dumps(settings)))
        conn.execute(store.schema_version.update().values(version=2))
    store.dispose_engines()
    assert store.migrate(store.engine_for(db_url)) == len(store.MIGRATIONS)
    assert store.get_test(db_url, "typed").settings.self_registration
    assert not store.get_test(db_url, "tokens").settings.self_registration
    assert not store.rater_by_token(db_url, rater.token).self_registered


def test_submit_writes_a_whole_trial_and_exports_every_rating(db_url, run_dir):
    test = make_test(db_url, run_dir)
    items = [i for i in store.test_items(db_url, test.id) if not i.training]
    raters = [store.add_rater(db_url, test.name), store.add_rater(db_url, test.name, "Ada")]
    for rater in raters:
        for item in items:
            store.submit_trial(db_url, rater.token, item.id, full_ratings(db_url, item.id), 12.5)
    frame = store.ratings_frame(db_url, test.name)
    assert list(frame.columns) == store.RATINGS_COLUMNS
    per_trial = len(store.item_stimuli(db_url, items[0].id))
    assert len(frame) == count_rows(db_url, store.ratings) == 2 * len(items) * per_trial
    assert set(frame["condition"]) == {"reference", "anchor-low", "anchor-mid", "mse-seed0", "bark-seed0"}
    assert set(frame["kind"]) == set(store.KINDS)
    assert set(frame["rater"]) == {"rater-001", "Ada"}
    assert set(frame["item"]) == {i.name for i in items}
    assert (frame.loc[frame["condition"] == "reference", "score"] == 100).all()
    assert store.tests_for_run(db_url, run_dir) == [test.name]
    assert store.ratings_frame(db_url, "no such test").empty
    export = store.export_frame(db_url, test.name)
    assert len(export) == len(frame) and (export["play_count"] == 1).all()


def test_a_second_submit_is_refused_or_overwrites_as_the_test_says(db_url, run_dir):
    refuse = make_test(db_url, run_dir, "refuse", resubmit="refuse")
    overwrite = make_test(db_url, run_dir, "overwrite", resubmit="overwrite")
    for test, expected in ((refuse, 50.0), (overwrite, 70.0)):
        rater = store.add_rater(db_url, test.name)
        item = store.test_items(db_url, test.id)[0]
        store.submit_trial(db_url, rater.token, item.id, full_ratings(db_url, item.id, 50.0), 1.0)
        if test.settings.resubmit == "refuse":
            with pytest.raises(store.StoreError, match="submitted already"):
                store.submit_trial(db_url, rater.token, item.id, full_ratings(db_url, item.id, 70.0), 1.0)
        else:
            store.submit_trial(db_url, rater.token, item.id, full_ratings(db_url, item.id, 70.0), 1.0)
        frame = store.ratings_frame(db_url, test.name)
        assert len(frame) == len(store.item_stimuli(db_url, item.id))  # no duplicate rows either way
        assert set(frame.loc[frame["kind"] != "reference", "score"]) == {expected}


@pytest.mark.parametrize("tamper, message", [
    ("score above 100", "outside 0-100"),
    ("negative score", "outside 0-100"),
    ("another test's item", "does not belong"),
    ("a missing stimulus", "do not match"),
    ("a stimulus twice", "do not match"),
    ("another item's stimulus", "do not match"),
    ("forged token", "unknown invitation token"),
    ("closed test", "closed"),
])
def test_tampered_submits_are_refused_and_write_nothing(db_url, run_dir, tamper, message):
    test = make_test(db_url, run_dir, "mine")
    other = make_test(db_url, run_dir, "other")
    rater = store.add_rater(db_url, test.name)
    item, second = store.test_items(db_url, test.id)[:2]
    ratings, token, item_id = full_ratings(db_url, item.id), rater.token, item.id
    if tamper == "score above 100":
        ratings[0] = store.Rating(ratings[0].stimulus_id, 101.0, 1, 1.0)
    elif tamper == "negative score":
        ratings[1] = store.Rating(ratings[1].stimulus_id, -1.0, 1, 1.0)
    elif tamper == "another test's item":
        item_id = store.test_items(db_url, other.id)[0].id
    elif tamper == "a missing stimulus":
        ratings = ratings[1:]
    elif tamper == "a stimulus twice":
        ratings = ratings[:-1] + [ratings[0]]
    elif tamper == "another item's stimulus":
        ratings[0] = full_ratings(db_url, second.id)[0]
    elif tamper == "forged token":
        token = store.new_token()
    elif tamper == "closed test":
        store.set_status(db_url, test.name, "closed")
    with pytest.raises(store.StoreError, match=message):
        store.submit_trial(db_url, token, item_id, ratings, 1.0)
    assert count_rows(db_url, store.trials) == 0 and count_rows(db_url, store.ratings) == 0


def test_resume_starts_at_the_first_unfinished_trial_of_the_raters_own_order(db_url, run_dir):
    test = make_test(db_url, run_dir)
    rater = store.add_rater(db_url, test.name)
    first, done, total = next_trial(db_url, rater, test)
    assert (done, total) == (0, sum(not i.training for i in store.test_items(db_url, test.id)))
    store.submit_trial(db_url, rater.token, first.id, full_ratings(db_url, first.id), 1.0)
    store.dispose_engines()  # a new process, as after a restart: only the database remembers
    second, done, _ = next_trial(db_url, store.rater_by_token(db_url, rater.token), test)
    assert done == 1 and second.id != first.id


def test_names_and_tokens_identify_raters_and_duplicates_are_refused(db_url, run_dir):
    test = make_test(db_url, run_dir)
    ada = store.add_rater(db_url, test.name, "Ada")
    assert store.rater_by_token(db_url, ada.token).name == "Ada"
    with pytest.raises(store.StoreError, match="taken"):
        store.add_rater(db_url, test.name, "Ada")
    for forged in (None, "", "x" * 500, store.new_token()):
        assert store.rater_by_token(db_url, forged) is None
    with pytest.raises(store.StoreError, match="exists already"):
        make_test(db_url, run_dir)


def test_sqlite_readers_do_not_wait_for_a_writer(sqlite_url, run_dir):
    import time

    test = make_test(sqlite_url, run_dir)
    engine = store.engine_for(sqlite_url)
    with store._writing(engine) as conn:  # a submit in progress holds the write lock
        conn.execute(store.tests.update().values(status="open"))
        start = time.perf_counter()
        assert store.ratings_frame(sqlite_url, test.name).empty
        assert store.get_test(sqlite_url, test.name).status == "open"
        assert time.perf_counter() - start < 5  # a reader taking the lock would wait 30 s
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == store.SQLITE_BUSY_TIMEOUT_MS


def test_a_test_that_breaks_bs1534_cannot_open(sqlite_url, run_dir):
    test = make_test(sqlite_url, run_dir, open_it=False)
    item = store.test_items(sqlite_url, test.id)[0]
    with store._writing(store.engine_for(sqlite_url)) as conn:
        conn.execute(store.stimuli.delete().where(store.stimuli.c.item_id == item.id,
                                                  store.stimuli.c.condition == store.ANCHOR_LOW))
    with pytest.raises(store.StoreError, match=f"cannot open: {item.name}: needs exactly one anchor-low"):
        store.set_status(sqlite_url, test.name, "open")
    assert store.get_test(sqlite_url, test.name).status == "closed"


def test_a_version_4_database_gains_the_crowd_columns_and_the_pair_answers_table(db_url, run_dir):
    """Migration 5: items.attention (false for every existing item), the raters' crowd columns (empty),
    pair_answers; the tests, items and raters already there are kept."""
    test = make_test(db_url, run_dir)
    rater = store.add_rater(db_url, test.name, "ann")
    with store.engine_for(db_url).begin() as conn:  # the database as version 4 left it
        conn.exec_driver_sql("DROP TABLE pair_answers")
        conn.exec_driver_sql("ALTER TABLE items DROP COLUMN attention")
        for column in ("participant_id", "completion_code", "sample_rate", "user_agent", "level_set", "items"):
            conn.exec_driver_sql(f"ALTER TABLE raters DROP COLUMN {column}")
        conn.execute(store.schema_version.update().values(version=4))
    store.dispose_engines()
    assert store.migrate(store.engine_for(db_url)) == len(store.MIGRATIONS) >= 5
    inspector = sa.inspect(store.engine_for(db_url))
    assert "pair_answers" in inspector.get_table_names()
    assert {"participant_id", "completion_code", "sample_rate", "user_agent", "level_set", "items"} <= {
        c["name"] for c in inspector.get_columns("raters")}
    items = store.test_items(db_url, test.id)
    assert items and not any(i.attention for i in items)
    assert store.rater_by_token(db_url, rater.token).name == "ann"
