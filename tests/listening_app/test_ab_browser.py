"""An A/B preference test in a real browser: prepared from a run (with an attention check), taken by two
raters, exported, analysed and reported."""

from __future__ import annotations

import pytest

from earshot.listening_app import ab, store
from earshot.listening_app.prepare import prepare_test
from earshot.listening_app.settings import TestSettings
from earshot.listening_app.trial import next_trial
from earshot.results.ab import analyze_ab, attention_passed
from earshot.results.analyses import analyze_test
from tests.listening_app.conftest import Server
from tests.listening_app.test_browser import (CHROMIUM, CONNECTED, SHOTS, admin_tables_drawn, browser, leaks,  # noqa: F401
                                              missing, player, record, secrets_of)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]
LIKED = "mse-seed0"


@pytest.fixture(scope="module")
def served_ab(tmp_path_factory, run_dir):
    db = f"sqlite:///{tmp_path_factory.mktemp('ab-browser') / 'listening.sqlite'}"
    prepare_test(run_dir, db, items=8, seconds=2.0, name="ab-9c2f", test_type="ab",
                 settings=TestSettings(completion_code="AB-DONE", attention=1))
    store.set_status(db, "ab-9c2f", "open")
    test = store.get_test(db, "ab-9c2f")
    server = Server(db).start()
    yield db, test, server
    server.kill()
    store.dispose_engines()


def take_test(page, server, db, test, rater, keen: bool, shot: str | None = None) -> None:
    """Consent, training, then every trial: play A and B, prefer (keen: mse-seed0 and the reference;
    careless: no preference, and the low anchor on the attention check), submit."""
    page.goto(f"{server.url}/?token={rater.token}")
    page.wait_for_selector(CONNECTED)
    page.get_by_text("I agree").click()
    page.get_by_role("button", name="Start").click()
    training = player(page)
    assert training.locator("button.choice").all_inner_texts() == ["Reference", "System 1", "System 2"]
    if shot:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / f"training-{shot}"), full_page=True)
    page.get_by_role("button", name="Continue to the test").click()
    page.get_by_text("Trial 1 of").wait_for()
    total = len([i for i in store.test_items(db, test.id) if not i.training])
    previous = None
    for number in range(1, total + 1):
        page.get_by_text(f"Trial {number} of").wait_for(timeout=20_000)
        frame = player(page, previous)
        previous = frame.locator("body").get_attribute("data-nonce")
        assert frame.locator("button.choice").all_inner_texts() == ["A", "B"]
        assert frame.locator("#answers button").all_inner_texts() == ["I prefer A", "I prefer B", "No preference"]
        if number == 1:  # nothing played or answered: the player says what is missing and sends nothing
            frame.get_by_role("button", name="Submit and continue").click()
            assert missing(frame) == ["Say which you prefer, A or B, or that you have no preference.",
                                      "Play A and B before you submit; not played yet: A, B."]
            if shot:
                page.screenshot(path=str(SHOTS / f"missing-{shot}"), full_page=True)
        for letter in "AB":
            frame.get_by_role("button", name=letter, exact=True).click()
            page.wait_for_timeout(150)
        frame.get_by_role("button", name="Pause").click()
        item, _, _ = next_trial(db, rater, test)
        a, b = ab.assignment(store.item_stimuli(db, item.id), rater.token, test.settings.order_seed, item.id)
        wanted = ((LIKED if not item.attention else "reference") if keen else
                  ("anchor-low" if item.attention else None))
        choice = "No preference" if wanted is None else f"I prefer {'A' if a.condition == wanted else 'B'}"
        frame.get_by_role("button", name=choice).click()
        if shot and number == 1:
            page.screenshot(path=str(SHOTS / shot), full_page=True)
        frame.get_by_role("button", name="Submit and continue").click()
    page.get_by_text("AB-DONE").wait_for(timeout=20_000)


def test_two_raters_take_an_ab_test_blind_and_their_answers_are_exported_analysed_and_reported(
        browser, served_ab, run_dir, tmp_path):
    from earshot.results.report import build_sections, render_markdown

    db, test, server = served_ab
    items = [i for i in store.test_items(db, test.id) if not i.training]
    assert sum(i.attention for i in items) == 1
    seen = []
    for name, keen in (("keen", True), ("careless", False)):
        rater = store.add_rater(db, test.name, name)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        recorded = record(page)
        take_test(page, server, db, test, rater, keen, shot="ab-trial.png" if keen else None)
        recorded.append(page.content().encode())
        context.close()
        seen += recorded

    exported = store.export_frame(db, test.name)
    assert len(exported) == 2 * len(items) and (exported["type"] == "ab").all()
    assert (exported["play_count"] >= 2).all()
    attention = exported[exported["a"].isin(["reference", "anchor-low"])]
    assert {r: attention_passed(rows) for r, rows in attention.groupby("rater")} == {"keen": True, "careless": False}
    careless = exported[(exported["rater"] == "careless") & ~exported.index.isin(attention.index)]
    assert (careless["answer"] == "none").all()
    result = analyze_ab(exported, test.name, [LIKED, "bark-seed0"])
    (pair,) = result.pairs.itertuples()
    trials = len(items) - 1
    assert (pair.pair, pair.trials, pair.prefer_first, pair.prefer_second, pair.no_preference) == (
        f"{LIKED} vs bark-seed0", 2 * trials, trials, 0, trials)
    # keen's wins plus half of careless's ties: mse-seed0 1.5 trials' worth for every 0.5 of bark-seed0.
    assert result.scale["condition"].tolist() == [LIKED, "bark-seed0"]

    admin = browser.new_page(viewport={"width": 1280, "height": 3200})
    admin.goto(f"{server.url}/admin")
    admin.wait_for_selector(CONNECTED)
    admin.get_by_label("Password", exact=True).fill(server.password)
    admin.get_by_role("button", name="Log in").click()
    admin.get_by_text("Live summary (preference shares per pair, Bradley–Terry scale)").wait_for(timeout=20_000)
    admin.get_by_text(f"{2 * len(items)} answers from 2 raters").wait_for()
    admin_tables_drawn(admin, analyze_test(exported, test.name))  # every table, drawn for the screenshot
    admin.screenshot(path=str(SHOTS / "ab-admin.png"), full_page=True)
    admin.close()

    run, sections = build_sections(run_dir, ratings=[(test.name, exported)])
    text = render_markdown(run, sections, tmp_path)
    assert f"test {test.name} (A/B preference)" in text and "careless failed an attention check" in text
    assert f"| {LIKED} vs bark-seed0 | 2 | {trials} / 0 | {trials} (50.0 %) | 100.0 % [" in text

    found = sorted({n for blob in seen for n in leaks(blob, secrets_of(run_dir, db, test))})
    assert found == [], f"the browser received {found}"
    assert len(seen) > 20
