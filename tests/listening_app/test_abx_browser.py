"""An ABX test in a real browser: prepared from a run with an attention check, taken by two raters (one
fails the check), exported, analysed and reported."""

from __future__ import annotations

import pytest

from earshot.listening_app import abx, store
from earshot.listening_app.prepare import prepare_test
from earshot.listening_app.settings import TestSettings
from earshot.results.abx import analyze_abx
from tests.listening_app.conftest import Server
from tests.listening_app.test_browser import (CHROMIUM, CONNECTED, SHOTS, admin_tables_drawn, browser, leaks,  # noqa: F401
                                              missing, player, record, secrets_of)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]


@pytest.fixture(scope="module")
def served_abx(tmp_path_factory, run_dir):
    db = f"sqlite:///{tmp_path_factory.mktemp('abx-browser') / 'listening.sqlite'}"
    prepare_test(run_dir, db, items=8, seconds=2.0, name="abx-5d1e", test_type="abx",
                 settings=TestSettings(completion_code="ABX-DONE", attention=1))
    store.set_status(db, "abx-5d1e", "open")
    test = store.get_test(db, "abx-5d1e")
    server = Server(db).start()
    yield db, test, server
    server.kill()
    store.dispose_engines()


def take_test(page, server, db, test, rater, right: bool, shot: str | None = None) -> None:
    """Consent, training, then every trial: play A, B and X, answer (right, or "X is A" but on the
    attention check, answered wrong), submit."""
    page.goto(f"{server.url}/?token={rater.token}")
    page.wait_for_selector(CONNECTED)
    page.get_by_text("I agree").click()
    page.get_by_role("button", name="Start").click()
    training = player(page)
    # ABX trials play systems only: the training page labels the reference and each system.
    assert training.locator("button.choice").all_inner_texts() == ["Reference", "System 1", "System 2"]
    if shot:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"training-{shot}"), full_page=True)
    page.get_by_role("button", name="Continue to the test").click()
    page.get_by_text("Trial 1 of").wait_for()
    items = {i.id: i for i in store.test_items(db, test.id)}
    previous = None
    for number in range(1, len([i for i in items.values() if not i.training]) + 1):
        page.get_by_text(f"Trial {number} of").wait_for(timeout=20_000)
        frame = player(page, previous)
        previous = frame.locator("body").get_attribute("data-nonce")
        assert frame.locator("button.choice").all_inner_texts() == ["A", "B", "X"]
        if number == 1:  # nothing played or answered: the player says what is missing and sends nothing
            frame.get_by_role("button", name="Submit and continue").click()
            assert missing(frame) == ["Say whether X is A or B.", "Play A, B and X before you submit; not played "
                                                                  "yet: A, B, X."]
            if shot:
                page.screenshot(path=str(SHOTS / f"missing-{shot}"), full_page=True)
        for letter in "ABX":
            frame.get_by_role("button", name=letter, exact=True).click()
            page.wait_for_timeout(150)
        frame.get_by_role("button", name="Pause").click()
        said = "A"
        item = current_item(db, test, rater)
        if right or item.attention:  # the server's own draw, which the browser never sees
            a, _, x = abx.assignment(store.item_stimuli(db, item.id), rater.token, test.settings.order_seed, item.id)
            said = "A" if (x.id == a.id) == right else "B"
        frame.get_by_role("button", name=f"X is {said}").click()
        if shot and number == 1:
            page.screenshot(path=str(SHOTS / shot), full_page=True)
        frame.get_by_role("button", name="Submit and continue").click()
    page.get_by_text("ABX-DONE").wait_for(timeout=20_000)


def current_item(db, test, rater) -> store.ItemInfo:
    from earshot.listening_app.trial import next_trial

    item, _, _ = next_trial(db, rater, test)
    return item


def test_two_raters_take_an_abx_test_blind_and_their_answers_are_exported_analysed_and_reported(
        browser, served_abx, run_dir, tmp_path):
    from earshot.results.analyses import analyze_test
    from earshot.results.report import build_sections, render_markdown

    db, test, server = served_abx
    trials = len([i for i in store.test_items(db, test.id) if not i.training])
    seen = []
    for name, right in (("keen", True), ("guessing", False)):
        rater = store.add_rater(db, test.name, name)
        context = browser.new_context(viewport={"width": 1000, "height": 900})
        page = context.new_page()
        recorded = record(page)
        take_test(page, server, db, test, rater, right, shot="abx-trial.png" if right else None)
        if right:
            page.screenshot(path=str(SHOTS / "abx-finished.png"), full_page=True)
        recorded.append(page.content().encode())
        context.close()
        seen += recorded

    exported = store.export_frame(db, test.name)
    assert len(exported) == 2 * trials and (exported["type"] == "abx").all()
    assert (exported["play_count"] >= 3).all() and exported["attention"].sum() == 2
    keen = exported[exported["rater"] == "keen"]
    assert keen["correct"].all()
    guessing = exported[(exported["rater"] == "guessing") & ~exported["attention"]]
    assert (guessing["answer"] == guessing["a"]).all()
    assert not exported[(exported["rater"] == "guessing") & exported["attention"]]["correct"].any()
    checked = exported[~exported["attention"]]
    result = analyze_abx(checked, test.name)
    per_rater = result.raters.set_index("rater")
    assert per_rater.loc["keen", "correct"] == trials - 1
    assert per_rater.loc["guessing", "correct"] == int(guessing["correct"].sum())
    assert result.pairs["trials"].tolist() == [2 * (trials - 1)]
    # The attention check: guessing flagged, the pairs shown again without them; so in the report.
    found = analyze_test(exported, test.name)
    assert found.numbers["attention"]["failed"] == ["guessing"]
    assert [k for k, _ in found.parts][:3] == ["attention", "abx-pairs", "abx-pairs-attentive"]
    run, sections = build_sections(run_dir, ratings=[(test.name, exported)])
    text = render_markdown(run, sections, tmp_path)
    assert f"test {test.name} (ABX)" in text and "guessing failed an attention check" in text
    admin = browser.new_page(viewport={"width": 1200, "height": 2600})
    admin.goto(f"{server.url}/admin")
    admin.wait_for_selector(CONNECTED)
    admin.get_by_label("Password", exact=True).fill(server.password)
    admin.get_by_role("button", name="Log in").click()
    admin.get_by_text("Live summary (proportion correct per pair, exact binomial tests)").wait_for(timeout=20_000)
    admin.get_by_text(f"{2 * trials} answers from 2 raters").wait_for()
    admin_tables_drawn(admin, analyze_test(exported, test.name))  # every table, drawn for the screenshot
    admin.screenshot(path=str(SHOTS / "abx-admin.png"), full_page=True)
    admin.close()
    found = sorted({n for blob in seen for n in leaks(blob, secrets_of(run_dir, db, test))})
    assert found == [], f"the browser received {found}"
    assert len(seen) > 20
