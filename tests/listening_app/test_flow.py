"""The rater flow as plain data and functions, without Streamlit: steps, where a rater is, routing."""

from __future__ import annotations

from dataclasses import replace

import pytest

from earshot.listening_app import flow, store
from earshot.listening_app.settings import TestSettings
from tests.listening_app.conftest import make_test
from tests.listening_app.test_store import full_ratings

ITEM = store.ItemInfo(7, "speech-01", "speech", 0, False)


def position(consented: bool | None, submitted: int = 0, total: int = 3, training: bool = True) -> flow.Position:
    """A rater who has not started (None), has not consented (False) or has, with trials submitted."""
    test = store.TestInfo(1, "t", "/runs/r", "r", TestSettings(training=training), "open", 16000, 3500.0, 7000.0,
                          "bs1770", training_item_id=9 if training else None)
    if consented is None:
        return flow.Position(None, None)
    rater = store.RaterInfo(1, 1, "tok", "Ada", consented)
    return flow.Position(rater, test, ITEM if submitted < total else None, submitted, total)


def test_the_steps_are_declared_in_order_and_the_pages_follow_them():
    assert [s.name for s in flow.STEPS] == ["start", "consent", "calibration", "level", "training", "trials", "done"]
    pages = [s.page for s in flow.STEPS]
    assert list(flow.PAGES) == list(dict.fromkeys(pages))  # app.py's pages, in the flow's order
    assert flow.step("trials").page == "trial"
    with pytest.raises(KeyError):
        flow.step("survey")


@pytest.mark.parametrize(("where", "expected"), [
    (position(None), "start"),
    (position(False), "consent"),
    (position(True, 0), "trials"),  # training records nothing: resuming never sends a rater back to it
    (position(True, 2), "trials"),
    (position(True, 3), "done"),
])
def test_a_rater_is_at_the_first_step_they_are_not_past(where, expected):
    assert flow.current(where).name == expected


def test_each_step_leads_to_the_next_that_applies_to_the_test():
    assert [flow.after(s.name, position(True)).name for s in flow.STEPS[:-1] if s.name != "level"] == \
        ["consent", "calibration", "training", "trials", "done"]  # no level check: a crowd option (test_crowd)
    assert flow.after("calibration", position(True, training=False)).name == "trials"
    # Stored before tests had a training item of their own: no training page (it would play a trial's audio).
    older = position(True)
    older = replace(older, test=replace(older.test, training_item_id=None))
    assert flow.after("calibration", older).name == "trials" and flow.route("training", older) == "trial"
    with pytest.raises(ValueError, match="no step follows 'done'"):
        flow.after("done", position(True))


@pytest.mark.parametrize(("page", "where", "expected"), [
    # Not started or not consented: every page but the start page sends the rater back there.
    ("start", position(None), None), ("training", position(None), "start"), ("trial", position(None), "start"),
    ("done", position(None), "start"), ("trial", position(False), "start"), ("done", position(False), "start"),
    # Consented: training and trials are open; the finished page waits for the last trial.
    ("training", position(True), None), ("trial", position(True, 1), None), ("done", position(True, 1), "trial"),
    # Finished: the trial page moves on to the finished page; training and start may be revisited.
    ("trial", position(True, 3), "done"), ("done", position(True, 3), None), ("training", position(True, 3), None),
    ("start", position(True, 3), None),
    # A test without training has no training page.
    ("training", position(True, training=False), "trial"),
])
def test_route_sends_a_rater_to_the_page_of_their_step(page, where, expected):
    assert flow.route(page, where) == expected


def test_locate_reads_the_position_from_the_database(sqlite_url, run_dir):
    test = make_test(sqlite_url, run_dir)
    assert flow.locate(sqlite_url, None) == flow.Position(None, None)
    assert flow.locate(sqlite_url, store.new_token()).rater is None
    rater = store.add_rater(sqlite_url, test.name, "Ada")
    assert flow.current(flow.locate(sqlite_url, rater.token)).name == "consent"
    store.record_consent(sqlite_url, rater.id)
    found = flow.locate(sqlite_url, rater.token)
    assert (found.test.name, found.submitted, found.total, flow.current(found).name) == (test.name, 0, 2, "trials")
    for item in (i for i in store.test_items(sqlite_url, test.id) if not i.training):
        store.submit_trial(sqlite_url, rater.token, item.id, full_ratings(sqlite_url, item.id), 1.0)
    found = flow.progressed(sqlite_url, found)  # a submit's effect, without reading the rater again
    assert (found.next_item, found.submitted, flow.current(found).name) == (None, 2, "done")
    assert flow.locate(sqlite_url, rater.token) == found
