"""A MOS / ACR test in a real browser: prepared with gold questions, taken by two raters (one fails a gold
question), exported, analysed and reported."""

from __future__ import annotations

import pytest

from earshot.listening_app import store
from earshot.listening_app.prepare import prepare_test
from earshot.listening_app.settings import TestSettings
from earshot.listening_app.trial import next_trial
from earshot.results.analyses import analyze_test
from earshot.results.mos import analyze_mos
from tests.listening_app.conftest import Server
from tests.listening_app.test_browser import (CHROMIUM, CONNECTED, SHOTS, admin_tables_drawn, browser, leaks,  # noqa: F401
                                              missing, player, record, secrets_of)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]
#: What each rater answers, by the condition the server knows the trial plays (the browser never does).
KEEN = {"mse-seed0": "4", "bark-seed0": "2", "reference": "5", "anchor-low": "1"}
CARELESS = {**KEEN, "anchor-low": "4"}  # rates the low anchor Good: fails that gold question


@pytest.fixture(scope="module")
def served_mos(tmp_path_factory, run_dir):
    db = f"sqlite:///{tmp_path_factory.mktemp('mos-browser') / 'listening.sqlite'}"
    prepare_test(run_dir, db, items=8, seconds=2.0, name="mos-3c9a", test_type="mos", attention=2,
                 settings=TestSettings(completion_code="MOS-DONE"))
    store.set_status(db, "mos-3c9a", "open")
    test = store.get_test(db, "mos-3c9a")
    server = Server(db).start()
    yield db, test, server
    server.kill()
    store.dispose_engines()


def playing_condition(db, test, rater) -> str:
    item, _, _ = next_trial(db, rater, test)
    (stimulus,) = store.item_stimuli(db, item.id)
    return stimulus.condition


def take_test(page, server, db, test, rater, answers: dict[str, str], shot: str | None = None) -> None:
    """Consent, training, then every trial: play the recording, choose a rating, submit."""
    page.goto(f"{server.url}/?token={rater.token}")
    page.wait_for_selector(CONNECTED)
    page.get_by_text("5 Excellent, 4 Good, 3 Fair, 2 Poor, 1 Bad").wait_for()
    if shot:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"start-{shot}"), full_page=True)
    page.get_by_text("I agree").click()
    page.get_by_role("button", name="Start").click()
    training = player(page)
    # The training page labels every version the trials play alone, and the anchors.
    labels = training.locator("button.choice").all_inner_texts()
    assert labels[:2] == ["Reference", "Reference (hidden in trials)"] and "Low anchor" in labels
    page.get_by_role("button", name="Continue to the test").click()
    page.get_by_text("Trial 1 of").wait_for()
    trials = len([i for i in store.test_items(db, test.id) if not i.training])
    previous = None
    for number in range(1, trials + 1):
        page.get_by_text(f"Trial {number} of").wait_for(timeout=20_000)
        frame = player(page, previous)
        previous = frame.locator("body").get_attribute("data-nonce")
        radios = frame.get_by_role("radio")
        assert radios.count() == 5
        assert frame.locator("fieldset.acr label").all_inner_texts() == [
            "5 Excellent", "4 Good", "3 Fair", "2 Poor", "1 Bad"]
        assert all(radios.nth(k).is_disabled() for k in range(5))  # play first, then rate
        if number == 1:  # nothing played or rated: the player says what is missing and sends nothing
            frame.get_by_role("button", name="Submit and continue").click()
            assert missing(frame) == ["Play the recording before you rate it.",
                                      "Choose how good the recording sounds, from Excellent to Bad."]
            if shot:
                SHOTS.mkdir(exist_ok=True)
                page.screenshot(path=str(SHOTS / f"missing-{shot}"), full_page=True)
        frame.get_by_role("button", name="Play").click()
        page.wait_for_timeout(300)
        frame.get_by_role("button", name="Pause").click()
        assert not radios.first.is_disabled()
        said = answers[playing_condition(db, test, rater)]
        frame.get_by_role("radio", name=said).check()
        assert missing(frame) == []
        if shot and number == 1:
            page.screenshot(path=str(SHOTS / shot), full_page=True)
        frame.get_by_role("button", name="Submit and continue").click()
    page.get_by_text("MOS-DONE").wait_for(timeout=20_000)


def test_two_raters_take_a_mos_test_blind_and_the_gold_questions_flag_the_careless_one(browser, served_mos, run_dir,
                                                                                       tmp_path):
    db, test, server = served_mos
    trials = len([i for i in store.test_items(db, test.id) if not i.training])
    seen = []
    for name, answers in (("keen", KEEN), ("careless", CARELESS)):
        rater = store.add_rater(db, test.name, name)
        context = browser.new_context(viewport={"width": 1280, "height": 800})  # a laptop's screen
        page = context.new_page()
        recorded = record(page)
        take_test(page, server, db, test, rater, answers, shot="mos-trial.png" if name == "keen" else None)
        if name == "keen":
            page.screenshot(path=str(SHOTS / "mos-finished.png"), full_page=True)
        recorded.append(page.content().encode())
        context.close()
        seen += recorded

    exported = store.export_frame(db, test.name)
    assert len(exported) == 2 * trials and (exported["type"] == "mos").all()
    assert (exported["play_count"] >= 1).all() and (exported["play_seconds"] > 0).all()
    for name, answers in (("keen", KEEN), ("careless", CARELESS)):
        mine = exported[exported["rater"] == name]
        assert [str(int(s)) for s in mine["score"]] == [answers[c] for c in mine["condition"]]
    result = analyze_mos(exported, test.name, ["mse-seed0", "bark-seed0"])
    assert result.raters.set_index("rater")["flagged"].to_dict() == {"careless": True, "keen": False}
    summary = result.summary.set_index("condition")
    assert summary["mos"].to_dict() == {"mse-seed0": 4.0, "bark-seed0": 2.0}
    assert summary["screened_raters"].tolist() == [1, 1]

    from earshot.results.report import build_sections, render_markdown

    run, sections = build_sections(run_dir, ratings=[(test.name, exported)])
    text = render_markdown(run, sections, tmp_path)
    (SHOTS / "mos-report.md").write_text(text)
    assert f"test {test.name} (MOS (ACR))" in text and "| careless | 4 | 1 of 2 | **yes** |" in text

    admin = browser.new_page(viewport={"width": 1280, "height": 2600})
    admin.goto(f"{server.url}/admin")
    admin.wait_for_selector(CONNECTED)
    admin.get_by_label("Password", exact=True).fill(server.password)
    admin.get_by_role("button", name="Log in").click()
    admin.get_by_text("Live summary (mean opinion score per condition, gold questions)").wait_for(timeout=20_000)
    admin.get_by_text("rater careless failed 1 of 2 gold questions").wait_for()
    admin_tables_drawn(admin, analyze_test(exported, test.name))  # every table, drawn for the screenshot
    admin.screenshot(path=str(SHOTS / "mos-admin.png"), full_page=True)
    admin.close()
    found = sorted({n for blob in seen for n in leaks(blob, secrets_of(run_dir, db, test))})
    assert found == [], f"the browser received {found}"
    assert len(seen) > 10
