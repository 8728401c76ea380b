"""Each page's Python side, headless (AppTest shows the player as an UnknownElement)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import typer
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from earshot.listening_app import flow, store
from earshot.listening_app.cli import listen_app
from tests.listening_app.test_store import full_ratings
from tests.listening_app.conftest import make_test

APP = str(Path(__file__).resolve().parents[2] / "listening_app" / "app.py")
TIMEOUT = 30


@pytest.fixture
def opened(sqlite_url, run_dir, monkeypatch):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    monkeypatch.delenv("EARSHOT_ADMIN_PASSWORD", raising=False)
    return sqlite_url, make_test(sqlite_url, run_dir, completion_code="DONE-42")


def app(token: str | None = None, page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if token:
        at.query_params["token"] = token
    at.run()  # st.navigation registers the pages (custom url paths) on the first run
    if page:
        at.switch_page(page).run()
    return at


def url_token(at: AppTest) -> str:
    value = at.query_params["token"]
    return value[0] if isinstance(value, list) else value


def texts(at: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("markdown", "error", "warning", "info", "success", "title", "code")
                    for e in getattr(at, kind))


def test_start_page_explains_the_scale_and_refuses_a_forged_token(opened):
    at = app(store.new_token())
    assert not at.exception
    assert "not valid" in texts(at) and "Excellent" in str(at.table[0].value)


def test_start_needs_consent_then_goes_to_training_with_the_token(opened):
    db, test = opened
    rater = store.add_rater(db, test.name)
    at = app(rater.token)
    at.button(key="start_go").click().run()
    assert "Tick the consent box" in texts(at)
    at.checkbox(key="start_consent").check().run()
    at.button(key="start_go").click().run()
    assert not at.exception
    assert store.rater_by_token(db, rater.token).consented
    assert "Training" in texts(at) and url_token(at) == rater.token


def test_a_typed_name_joins_a_self_registration_test_marked_as_self_registered(sqlite_url, run_dir, monkeypatch,
                                                                               tmp_path):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_test(sqlite_url, run_dir, "open-door", self_registration=True)
    at = app()
    assert "the name or id I give" in at.checkbox(key="start_consent").label
    at.text_input(key="start_name").input("Grace").run()
    at.checkbox(key="start_consent").check().run()
    at.button(key="start_go").click().run()
    assert not at.exception
    token = url_token(at)
    rater = store.rater_by_token(sqlite_url, token)
    assert rater.name == "Grace" and rater.self_registered
    invited = store.add_rater(sqlite_url, test.name, "Ada")
    progress = store.progress_frame(sqlite_url, test.name).set_index("name")
    assert progress.loc["Grace", "self_registered"] and not progress.loc["Ada", "self_registered"]
    assert not invited.self_registered
    for rater in (rater, invited):  # the export marks her too
        item = store.test_items(sqlite_url, test.id)[0]
        store.submit_trial(sqlite_url, rater.token, item.id, full_ratings(sqlite_url, item.id), 1.0)
    app_cli = typer.Typer()
    app_cli.add_typer(listen_app, name="listen")
    out = tmp_path / "ratings.csv"
    result = CliRunner().invoke(app_cli, ["listen", "export", test.name, "--out", str(out), "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    exported = pd.read_csv(out).groupby("rater")["self_registered"].agg(set)
    assert exported.to_dict() == {"Ada": {False}, "Grace": {True}}


def test_tests_are_invitation_only_by_default_and_an_invited_rater_gives_no_name(opened):
    db, test = opened
    assert not test.settings.self_registration
    at = app()  # no token
    assert "link from your invitation" in texts(at) and not at.text_input and not at.checkbox
    rater = store.add_rater(db, test.name)
    at = app(rater.token)
    assert not at.text_input
    consent = at.checkbox(key="start_consent").label
    assert consent == "I agree to take part; my ratings are stored under this invitation."
    with pytest.raises(store.StoreError, match="invited raters only"):  # a start page left open: refused by the store
        store.add_rater(db, test.name, "Mallory", self_registered=True)
    assert list(store.progress_frame(db, test.name)["name"]) == [rater.name]


def test_trial_page_shows_progress_and_the_player_and_resumes_from_the_database(opened):
    db, test = opened
    rater = store.add_rater(db, test.name)
    store.record_consent(db, rater.id)
    at = app(rater.token, "views/trial.py")
    assert not at.exception
    assert "Trial 1 of 2" in str(at.get("progress")[0].proto) and len(at.get("component_instance")) == 1
    item = store.test_items(db, test.id)[0]
    store.submit_trial(db, rater.token, item.id, full_ratings(db, item.id), 1.0)
    at = app(rater.token, "views/trial.py")  # a reload: a fresh session
    assert "Trial 2 of 2" in str(at.get("progress")[0].proto)


def test_trial_page_without_consent_sends_the_rater_to_the_start(opened):
    db, test = opened
    rater = store.add_rater(db, test.name)
    at = app(rater.token, "views/trial.py")
    assert "start page" in texts(at) and not at.get("component_instance")


def test_finished_page_shows_the_completion_code(opened):
    db, test = opened
    rater = store.add_rater(db, test.name)
    store.record_consent(db, rater.id)
    for item in store.test_items(db, test.id):
        if not item.training:
            store.submit_trial(db, rater.token, item.id, full_ratings(db, item.id), 1.0)
    at = app(rater.token, "views/done.py")
    assert not at.exception
    assert "DONE-42" in texts(at) and "All 2 trials" in texts(at)


def test_admin_page_is_off_without_a_password(opened):
    at = app(page="views/admin.py")
    assert "admin page is off" in texts(at)


def test_admin_logs_in_closes_a_test_and_invites(opened, monkeypatch, admin_guard):
    db, test = opened
    monkeypatch.setenv("EARSHOT_ADMIN_PASSWORD", "pw")
    at = app(page="views/admin.py")
    at.text_input(key="admin_password").input("wrong").run()
    at.button(key="admin_login").click().run()
    assert "Wrong password" in texts(at)
    admin_guard.clock.now += 1  # past the wait a wrong password starts
    at.text_input(key="admin_password").input("pw").run()
    at.button(key="admin_login").click().run()
    assert not at.exception
    assert "Post-screening (ITU-R BS.1534-3)" in str([h.value for h in at.subheader])
    assert not store.get_test(db, test.name).settings.self_registration
    at.toggle(key=f"admin_self_registration-{test.name}").set_value(True).run()
    assert store.get_test(db, test.name).settings.self_registration  # the start page now takes a typed name
    store.add_rater(db, test.name, "Grace", self_registered=True)
    at.run()
    (raters,) = [d.value for d in at.dataframe if "joined by" in d.value.columns]
    assert raters.set_index("rater").loc["Grace", "joined by"] == "self-registered"
    at.button(key="admin_invite").click().run()
    assert "?token=" in texts(at)
    at.button(key="admin_close").click().run()
    assert store.get_test(db, test.name).status == "closed"
    at.button(key="admin_open").click().run()
    assert store.get_test(db, test.name).status == "open"


def player_value(view, score_of=lambda i: 100 if i == 0 else 30, **changes):
    value = {"nonce": view.nonce, "submit_id": 1, "scores": {k: score_of(i) for i, k in enumerate(view.keys)},
             "seconds": {k: 1.5 for k in view.keys}, "plays": {k: 1 for k in view.keys}}
    value.update(changes)
    return value


def send(at: AppTest, value) -> AppTest:
    """What the player's submit does: set the component's value (by its key) and rerun."""
    view = next(iter(at.session_state["earshot"].views.values()))
    at.session_state[f"player-{view.nonce}"] = value
    return at.run()


def test_trial_page_writes_a_valid_submit_and_refuses_tampered_or_replayed_ones(opened):
    db, test = opened
    rater = store.add_rater(db, test.name)
    store.record_consent(db, rater.id)
    at = app(rater.token, "views/trial.py")
    view = next(iter(at.session_state["earshot"].views.values()))

    send(at, player_value(view, score_of=lambda i: 101))
    assert "not a number from 0 to 100" in texts(at) and store.ratings_frame(db).empty
    send(at, player_value(view, submit_id=2, nonce="f" * 16))
    assert "another trial or session" in texts(at) and store.ratings_frame(db).empty
    send(at, player_value(view, submit_id=3, plays={k: 0 for k in view.keys}))
    assert "not played yet: A, B, C, D, E." in texts(at) and store.ratings_frame(db).empty

    send(at, player_value(view, submit_id=4))
    assert not at.exception and "Trial 2 of 2" in str(at.get("progress")[0].proto)
    assert len(store.ratings_frame(db)) == 5
    at.session_state[f"player-{view.nonce}"] = player_value(view, submit_id=5)  # a replay of the old trial
    at.run()
    assert len(store.ratings_frame(db)) == 5 and "Trial 2 of 2" in str(at.get("progress")[0].proto)


def test_live_summary_and_screening_per_rater():
    import pandas as pd

    from earshot.listening_app.summary import live_view

    rows = []
    for rater, reference_scores in (("a", [100, 100]), ("b", [100, 95]), ("c", [80, 70])):
        for item, reference in zip(("x", "y"), reference_scores):
            rows.append({"test": "t", "rater": rater, "item": item, "condition": "reference", "score": reference,
                         "kind": "reference"})
            score = {"a": 40 if item == "x" else 60, "b": 50, "c": 70}[rater]
            rows.append({"test": "t", "rater": rater, "item": item, "condition": "mse-seed0", "score": score,
                         "kind": "system"})
    frame = pd.DataFrame(rows)
    view = live_view(frame, "t")
    screening = view.raters.frame().set_index("rater")
    assert list(screening["excluded"]) == ["no", "no", "yes"]
    assert "hidden reference below 90 on 2 of 2 items" in screening.loc["c", "reason"]
    assert "3 before, 2 after; excluded: c." in view.screening
    # The means are over the raters who passed: a and b, each averaged over items first (50, 50).
    systems = view.summary[0].frame().set_index("condition")
    assert systems.loc["mse-seed0", "raters"] == "2"
    # Two raters: their t-interval (1 df) would run to 114.6; the mean alone, and the page says why.
    assert systems.loc["mse-seed0", "mean [95 % t-CI]"] == "50.0"
    reference = view.summary[1].frame().set_index("condition")
    assert reference.loc["reference", "mean [95 % t-CI]"] == "98.8"  # 100 and 97.5
    assert "Too few raters for a 95 % interval: every condition (2 raters" in view.too_few
    empty = live_view(frame.iloc[:0], "t")
    assert empty.raters is None and not empty.summary and empty.notes == ["t: no ratings yet"]


def test_a_token_only_test_offers_no_name_field_and_a_closed_test_takes_no_trials(sqlite_url, run_dir, monkeypatch):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_test(sqlite_url, run_dir, "tokens")
    at = app()
    assert "link from your invitation" in texts(at) and not at.text_input
    rater = store.add_rater(sqlite_url, test.name)
    store.record_consent(sqlite_url, rater.id)
    store.set_status(sqlite_url, test.name, "closed")
    at = app(rater.token, "views/trial.py")
    assert "closed" in texts(at) and not at.get("component_instance")


def page_of(at: AppTest) -> str:
    """Which of the flow's pages the app shows, by what each one draws first."""
    if at.get("progress"):
        return "trial"
    titles = {"Listening test": "start", "Training": "training", "Thank you": "done"}
    return titles[at.title[0].value]


def trial_view(at: AppTest):
    """The trial's view in this session (training views are kept under negative item ids)."""
    (view,) = [v for key, v in at.session_state["earshot"].views.items() if key > 0]
    return view


@pytest.mark.parametrize("training", [True, False])
def test_a_rater_walks_the_declared_flow_from_start_to_done(sqlite_url, run_dir, monkeypatch, training):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_test(sqlite_url, run_dir, "walk", training=training, completion_code="WALK-1", self_registration=True)
    trials = sum(not i.training for i in store.test_items(sqlite_url, test.id))
    assert trials == (2 if training else 3)  # the run's third excerpt is the training item
    at = app()
    pages, steps = [page_of(at)], [flow.current(flow.locate(sqlite_url, None)).name]
    at.text_input(key="start_name").input("Ada").run()
    at.checkbox(key="start_consent").check().run()
    at.button(key="start_go").click().run()
    token = url_token(at)
    pages.append(page_of(at))
    if training:
        at.button(key="training_done").click().run()
        pages.append(page_of(at))
        # AppTest loses a component value set in a session that drew another page's component
        # (the training player) first; a browser does not (test_browser submits right after
        # training). So the trials go on after a reload, which must resume at the same place.
        at = app(token, "views/trial.py")
    for trial in range(1, trials + 1):
        steps.append(flow.current(flow.locate(sqlite_url, token)).name)
        assert f"Trial {trial} of {trials}" in str(at.get("progress")[0].proto)
        # A fresh session (a reload, another device) on the finished page resumes at this trial.
        again = app(token, "views/done.py")
        assert page_of(again) == "trial" and f"Trial {trial} of {trials}" in str(again.get("progress")[0].proto)
        send(at, player_value(trial_view(at), submit_id=trial))
        assert not at.exception and not at.error, texts(at)
        pages.append(page_of(at))
    steps.append(flow.current(flow.locate(sqlite_url, token)).name)

    assert pages == ["start"] + ["training"] * training + ["trial"] * trials + ["done"]
    # The pages reached, in order, show exactly the declared steps that apply to this test, in order.
    shown = [s.name for page in dict.fromkeys(pages) for s in flow.STEPS if s.page == page]
    # The level check is a crowd option, off here (test_crowd walks it).
    assert shown == [s.name for s in flow.STEPS if (training or s.name != "training") and s.name != "level"]
    assert steps == ["start"] + ["trials"] * trials + ["done"]
    assert "WALK-1" in texts(at) and len(store.export_frame(sqlite_url, test.name)) == 5 * trials
    assert page_of(app(token, "views/trial.py")) == "done"  # a finished rater is not shown a trial again


@pytest.mark.parametrize("resubmit", ["refuse", "overwrite"])
def test_a_window_left_behind_says_what_became_of_its_answers(sqlite_url, run_dir, monkeypatch, resubmit):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    test = make_test(sqlite_url, run_dir, "twice", resubmit=resubmit)
    rater = store.add_rater(sqlite_url, test.name)
    store.record_consent(sqlite_url, rater.id)
    ahead, behind = app(rater.token, "views/trial.py"), app(rater.token, "views/trial.py")
    send(ahead, player_value(trial_view(ahead), score_of=lambda i: 100 if i == 0 else 30))
    assert "Trial 2 of 2" in str(ahead.get("progress")[0].proto)
    send(behind, player_value(trial_view(behind), score_of=lambda i: 100 if i == 0 else 70))
    assert not behind.exception and not behind.error
    said = " ".join(w.value for w in behind.warning)
    if resubmit == "refuse":
        assert "Trial 1 was already submitted from another window; your answers here were not saved" in said
    else:
        assert "Trial 1 had been submitted from another window; your answers here replaced those." in said
    assert "You are now on trial 2 of 2." in said and "Trial 2 of 2" in str(behind.get("progress")[0].proto)
    kept = store.export_frame(sqlite_url, test.name)
    assert len(kept) == 5 and set(kept["score"]) == {100, 30 if resubmit == "refuse" else 70}
    behind.run()  # said once
    assert not behind.warning


@pytest.mark.parametrize("kind, phrase", [("abx", "X is the same as either A or B"),
                                          ("ab", "There are no right answers"),
                                          ("ranking", "put them in order")])
def test_the_start_page_explains_each_types_own_task_not_mushras(kind, phrase, sqlite_url, run_dir, monkeypatch):
    from earshot.listening_app.prepare import prepare_test

    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    prepare_test(run_dir, sqlite_url, items=2, seconds=2.0, name=f"intro-{kind}", test_type=kind)
    store.set_status(sqlite_url, f"intro-{kind}", "open")
    at = app(store.add_rater(sqlite_url, f"intro-{kind}").token)
    assert not at.exception
    shown = texts(at)
    assert phrase in shown and "0–100" not in shown and "hidden reference" not in shown and not at.table
