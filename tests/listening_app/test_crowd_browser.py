"""A crowd session in a real browser: two raters join through a platform's participant-id URL, set their level,
take their balanced subset with an attention check mixed in (one fails it), see their completion codes;
the export carries ids, codes, devices and the attention column, and ``listen analyze`` flags the failing rater."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from earshot.listening_app import store
from earshot.listening_app.prepare import prepare_test
from earshot.listening_app.settings import TestSettings
from earshot.listening_app.trial import next_trial, stimulus_order
from tests.listening_app.conftest import Server
from tests.listening_app.test_browser import (CHROMIUM, CONNECTED, SHOTS, browser, leaks, play_all,  # noqa: F401
                                              player, record, secrets_of)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]
NAME = "crowd-2b9c"


@pytest.fixture(scope="module")
def served_crowd(tmp_path_factory, run_dir):
    db = f"sqlite:///{tmp_path_factory.mktemp('crowd-browser') / 'listening.sqlite'}"
    prepare_test(run_dir, db, items=8, seconds=2.0, name=NAME,
                 settings=TestSettings(self_registration=True, items_per_rater=1, attention=1, level_check=True))
    store.set_status(db, NAME, "open")
    server = Server(db).start()
    yield db, store.get_test(db, NAME), server
    server.kill()
    store.dispose_engines()


def scores_for(db, test, rater, attentive: bool) -> list[int]:
    """The sliders' values in the trial's letter order (the server's own order, which the browser never
    sees): a listener's, or, on an attention check, an inattentive rater's 100 for everything."""
    item = next_trial(db, rater, test)[0]
    found = stimulus_order(store.item_stimuli(db, item.id), rater.token, test.settings.order_seed, item.id)
    if item.attention and not attentive:
        return [100] * len(found)
    marks = {"reference": 100, "anchor-low": 10, "anchor-mid": 35}
    return [marks.get(s.condition, 70) for s in found]


def take_test(page, server, db, test, participant: str, attentive: bool, shots: bool) -> str:
    """Join through the platform's URL, consent, set the level, skip through training, rate every trial;
    returns the completion code the finished page shows."""
    page.goto(f"{server.url}/?PROLIFIC_PID={participant}")
    page.wait_for_selector(CONNECTED)
    page.get_by_text(f"You are taking part as participant {participant}").wait_for()
    if shots:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "crowd-start.png"), full_page=True)
    page.get_by_text("I agree").click()
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Set your listening level").wait_for(timeout=20_000)
    level = player(page)
    confirm = level.get_by_role("button", name="I have set a comfortable level and will keep it")
    confirm.click()  # not played yet: refused by the player, with the reason
    assert level.locator("#missing li").all_inner_texts() == ["Play the calibration signal and set your volume first."]
    level.get_by_role("button", name="Play the calibration signal").click()
    page.wait_for_timeout(300)
    level.get_by_role("button", name="Pause").click()
    if shots:
        SHOTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SHOTS / "crowd-level.png"), full_page=True)
    confirm.click()
    page.get_by_role("button", name="Continue to the test").click()  # the training page
    rater = store.rater_by_participant(db, test.id, participant)
    total = next_trial(db, rater, test)[2]
    previous = None
    for number in range(1, total + 1):
        page.get_by_text(f"Trial {number} of {total}").wait_for(timeout=20_000)
        frame = player(page, previous)
        previous = frame.locator("body").get_attribute("data-nonce")
        play_all(page, frame)
        sliders = frame.locator("input[type=range]")
        for i, score in enumerate(scores_for(db, test, rater, attentive)):
            sliders.nth(i).fill(str(score))
        frame.get_by_role("button", name="Submit and continue").click()
    page.get_by_text("Your completion code").wait_for(timeout=20_000)
    if shots:
        page.screenshot(path=str(SHOTS / "crowd-done.png"), full_page=True)
    return page.locator('[data-testid="stCode"]').inner_text().strip()


def test_two_crowd_raters_one_inattentive_are_exported_and_the_inattentive_one_is_flagged(browser, served_crowd,
                                                                                          run_dir, tmp_path):
    db, test, server = served_crowd
    seen, codes = [], {}
    for participant, attentive in (("P-ann-61", True), ("P-bob-62", False)):
        context = browser.new_context(viewport={"width": 1000, "height": 900})
        page = context.new_page()
        recorded = record(page)
        codes[participant] = take_test(page, server, db, test, participant, attentive, shots=attentive)
        recorded.append(page.content().encode())
        # The platform's link again, in a new session: back on the finished page, not a second rater.
        page.goto(f"{server.url}/?PROLIFIC_PID={participant}")
        page.get_by_text("Your completion code").wait_for(timeout=20_000)
        context.close()
        seen += recorded

    raters = {r.participant_id: r for r in (store.rater_by_participant(db, test.id, p) for p in codes)}
    assert {p: r.completion_code for p, r in raters.items()} == codes and len(set(codes.values())) == 2
    exported = store.export_frame(db, test.name)
    assert set(exported["participant_id"]) == set(codes) and set(exported["completion_code"]) == set(codes.values())
    assert (exported["sample_rate"] >= 8000).all() and exported["user_agent"].str.contains("Chrome").all()
    checks = exported[exported["attention"]]
    assert sorted(checks["rater"].unique()) == ["P-ann-61", "P-bob-62"] and set(checks["condition"]) == {
        "reference", "anchor-low"}
    # Each rater rated one of the two items (the balanced subset) and the check: 5 + 2 ratings.
    assert exported.groupby("rater").size().tolist() == [7, 7]
    assert exported[~exported["attention"]].groupby("item")["rater"].nunique().tolist() == [1, 1]

    from earshot.benchmark.cli.app import app as earshot_app

    analysed = CliRunner().invoke(earshot_app, ["listen", "analyze", NAME, "--db", db])
    assert analysed.exit_code == 0, analysed.output
    out = " ".join(analysed.output.split())
    assert "failed an attention check (0 of 1 passed)" in out and "excluded: P-bob-62" in out
    from earshot.results.report import build_sections, render_markdown

    run, sections = build_sections(run_dir, ratings=[(NAME, exported)])
    text = render_markdown(run, sections, tmp_path)
    assert f"test {NAME} (MUSHRA)" in text and "failed an attention check (0 of 1 passed)" in text
    admin = browser.new_page(viewport={"width": 1200, "height": 1600})
    admin.goto(f"{server.url}/admin")
    admin.wait_for_selector(CONNECTED)
    admin.get_by_label("Password", exact=True).fill(server.password)
    admin.get_by_role("button", name="Log in").click()
    admin.get_by_text("Post-screening (ITU-R BS.1534-3)").wait_for(timeout=20_000)
    admin.get_by_text("excluded: P-bob-62").wait_for()
    admin.wait_for_function("document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0")
    admin.screenshot(path=str(SHOTS / "crowd-admin.png"), full_page=True)
    admin.locator('[data-testid="stDataFrame"]').last.screenshot(path=str(SHOTS / "crowd-admin-screening.png"))
    admin.close()
    found = sorted({n for blob in seen for n in leaks(blob, secrets_of(run_dir, db, test))})
    assert found == [], f"the browser received {found}"
