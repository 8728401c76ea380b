"""The admin page: invitation links from the address it was opened at, a growing wait after wrong
passwords (decided, logged, never slept), and settings and tables in words people read."""

from __future__ import annotations

import logging

import pytest

from earshot.listening_app import store
from earshot.listening_app.links import DEFAULT_ADDRESS, app_address, invitation_link
from earshot.listening_app.login import FORGET_AFTER_S, MAX_WAIT_S, LoginGuard, wait_after
from tests.listening_app.conftest import FakeClock, make_test
from tests.listening_app.test_app import app, texts


@pytest.fixture
def admin(sqlite_url, run_dir, monkeypatch):
    monkeypatch.setenv("EARSHOT_DB", sqlite_url)
    monkeypatch.setenv("EARSHOT_ADMIN_PASSWORD", "pw")
    return sqlite_url, make_test(sqlite_url, run_dir, "adm", completion_code="DONE-42")


def _opened_at(url: str | None):
    at = app()
    if url is not None:
        at.context = {"url": url}
    at.switch_page("views/admin.py").run()
    return at


def _log_in(at, password: str = "pw"):
    at.text_input(key="admin_password").input(password).run()
    at.button(key="admin_login").click().run()
    return at


# ------------------------------------------------------------------ invitation links


@pytest.mark.parametrize("url, address", [
    ("http://listen.example.org:8600/admin", "http://listen.example.org:8600"),
    ("https://example.org/earshot/admin/", "https://example.org/earshot"),  # served under a path prefix
    ("http://10.0.0.5:8501/", "http://10.0.0.5:8501"),
    (None, DEFAULT_ADDRESS), ("", DEFAULT_ADDRESS), ("file:///tmp/admin", DEFAULT_ADDRESS),
])
def test_the_app_address_is_where_the_admin_page_was_opened(url, address):
    assert app_address(url, "admin") == address


def test_invitation_links_point_at_the_address_the_admin_page_was_opened_at(admin):
    db, test = admin
    at = _log_in(_opened_at("http://listen.example.org:8600/admin"))
    assert not at.exception
    assert at.text_input(key="admin_base").value == "http://listen.example.org:8600"
    at.button(key="admin_invite").click().run()
    link = at.code[0].value
    rater = store.progress_frame(db, test.name)["token"].iloc[-1]
    assert link == invitation_link("http://listen.example.org:8600", rater) == (
        f"http://listen.example.org:8600/?token={rater}")


# ------------------------------------------------------------------ wrong passwords


def test_the_wait_doubles_with_each_wrong_password_up_to_a_cap():
    assert [wait_after(n) for n in range(7)] == [0, 1, 2, 4, 8, 16, 32]
    assert wait_after(40) == MAX_WAIT_S


def test_wrong_passwords_lock_a_client_out_for_longer_each_time(caplog):
    clock = FakeClock()
    guard = LoginGuard(clock)
    caplog.set_level(logging.INFO, logger="earshot.listening_app.admin")
    for failures in range(1, 6):
        clock.now += guard.wait_s("1.2.3.4")  # waits out the last one, and tries again
        attempt = guard.attempt("1.2.3.4", "guess", "pw")
        assert (attempt.outcome, attempt.failures, attempt.wait_s) == ("wrong", failures, wait_after(failures))
    assert guard.wait_s("1.2.3.4") == 16.0  # five wrong in a row: 16 s before the next is read
    # While the wait lasts even the right password is refused, unread; the wait does not restart.
    clock.now += 10
    refused = guard.attempt("1.2.3.4", "pw", "pw")
    assert (refused.outcome, refused.wait_s, refused.failures) == ("refused", 6.0, 5)
    assert guard.attempt("5.6.7.8", "pw", "pw").outcome == "ok"  # another client is not held up
    clock.now += 6
    assert guard.attempt("1.2.3.4", "pw", "pw").outcome == "ok" and guard.wait_s("1.2.3.4") == 0
    assert guard.attempt("1.2.3.4", "x", "pw").failures == 1  # a success starts the count afresh
    # Every attempt is logged with the client's address.
    messages = [r.getMessage() for r in caplog.records]
    assert sum("wrong admin password from 1.2.3.4" in m for m in messages) == 6
    assert any("1.2.3.4 refused: 5 wrong passwords in a row" in m for m in messages)
    assert sum("admin logged in from" in m for m in messages) == 2


def test_a_client_quiet_for_long_starts_afresh():
    clock = FakeClock()
    guard = LoginGuard(clock)
    for _ in range(3):
        clock.now += guard.wait_s("c")
        guard.attempt("c", "x", "pw")
    clock.now += FORGET_AFTER_S + 1
    assert guard.attempt("c", "x", "pw").failures == 1


def test_the_admin_page_refuses_log_ins_while_a_client_waits(admin, admin_guard):
    at = _log_in(_opened_at("http://127.0.0.1:8501/admin"), "wrong")
    assert "Wrong password. The next attempt is accepted in 1 s" in texts(at)
    _log_in(at, "pw")  # at once: refused without being read
    assert "try again in 1 s" in texts(at) and not at.dataframe
    admin_guard.clock.now += 1
    _log_in(at, "pw")
    assert not at.exception and at.dataframe  # in: the tests table


# ------------------------------------------------------------------ readable tables


def test_settings_and_tables_are_in_words(admin):
    db, test = admin
    rater = store.add_rater(db, test.name, "ann")
    store.record_consent(db, rater.id)
    at = _log_in(_opened_at("http://127.0.0.1:8501/admin"))
    assert not at.exception
    frames = {tuple(df.value.columns[:2]): df.value for df in at.dataframe}
    settings = dict(frames["setting", "value"].values.tolist())
    assert settings["Completion code"] == "DONE-42" and settings["Every stimulus must be played"] == "yes"
    assert settings["Raters come in by"] == "invitation link or typed name"
    assert settings["Stimulus length (s)"] == "2"
    page = texts(at) + " ".join(str(c) for df in at.dataframe for c in df.value.columns)
    assert "completion_code" not in page and "= None" not in page and "= True" not in page
    raters = frames["rater", "invited (UTC)"]
    assert list(raters.columns[:4]) == ["rater", "invited (UTC)", "consented (UTC)", "trials done"]
    assert raters.values.tolist()[0][3] == "0 of 3"
    for frame in at.dataframe:
        assert not [c for c in frame.value.columns if "_" in str(c)], list(frame.value.columns)
