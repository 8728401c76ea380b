"""A ranking test in a real browser: prepared from a run with an attention trial, taken by two raters
(one by dragging, one with the keyboard alone), exported, analysed and reported."""

from __future__ import annotations

import pytest

from earshot.listening_app import store
from earshot.listening_app.prepare import prepare_test
from earshot.listening_app.settings import TestSettings
from earshot.listening_app.trial import next_trial, stimulus_order
from earshot.results.analyses import analyze_test
from earshot.results.ranking import analyze_ranking, attention_passed
from tests.listening_app.conftest import Server
from tests.listening_app.test_browser import (CHROMIUM, CONNECTED, SHOTS, admin_tables_drawn, browser, leaks,  # noqa: F401
                                              missing, player, record, secrets_of)

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium")]
BEST_FIRST = ["reference", "mse-seed0", "bark-seed0", "anchor-low"]


@pytest.fixture(scope="module")
def served_ranking(tmp_path_factory, run_dir):
    db = f"sqlite:///{tmp_path_factory.mktemp('ranking-browser') / 'listening.sqlite'}"
    prepare_test(run_dir, db, items=3, seconds=2.0, name="rank-8c2e", test_type="ranking",
                 settings=TestSettings(completion_code="RANK-DONE", attention=1))
    store.set_status(db, "rank-8c2e", "open")
    test = store.get_test(db, "rank-8c2e")
    assert sum(i.attention for i in store.test_items(db, test.id)) == 1
    server = Server(db).start()
    yield db, test, server
    server.kill()
    store.dispose_engines()


def letters_of(db, test, rater, item) -> dict[str, str]:
    """condition -> the letter this rater sees it under (the server's own draw, never sent)."""
    found = [s for s in store.item_stimuli(db, item.id) if item.attention or s.kind != "reference"]
    drawn = stimulus_order(found, rater.token, test.settings.order_seed, item.id)
    return {s.condition: chr(ord("A") + n) for n, s in enumerate(drawn)}


def row(frame, where: str, letter: str):
    return frame.locator(f'{where} .rankrow:has(button.choice:text-is("{letter}"))')


def drop_last(frame, letter: str) -> None:
    """Drag a row from the pool to the end of the order (just above the order's bottom edge)."""
    box = frame.locator("#ranked").bounding_box()
    row(frame, "#pool", letter).drag_to(frame.locator("#ranked"), target_position={"x": 20, "y": box["height"] - 4})


def take_test(page, server, db, test, rater, careful: bool, shot: str | None = None) -> None:
    """Consent, training, then every trial: play each version, put them in order and submit. The careful
    rater drags rows into the order; the careless one uses the keyboard alone and ranks worst first."""
    page.goto(f"{server.url}/?token={rater.token}")
    page.wait_for_selector(CONNECTED)
    page.get_by_text("I agree").click()
    page.get_by_role("button", name="Start").click()
    training = player(page)
    assert training.locator("button.choice").all_inner_texts() == ["Reference", "System 1", "System 2"]
    page.get_by_role("button", name="Continue to the test").click()
    page.get_by_text("Trial 1 of").wait_for()
    total = len([i for i in store.test_items(db, test.id) if not i.training])
    previous = None
    for number in range(1, total + 1):
        page.get_by_text(f"Trial {number} of").wait_for(timeout=20_000)
        frame = player(page, previous)
        previous = frame.locator("body").get_attribute("data-nonce")
        item, _, _ = next_trial(db, rater, test)
        letters = letters_of(db, test, rater, item)
        assert frame.locator("#pool button.choice").all_inner_texts() == sorted(letters.values())
        if number == 1:
            frame.get_by_role("button", name="Submit and continue").click()
            unplaced = ", ".join(sorted(letters.values()))
            assert missing(frame) == [f"Put every version in order; not placed yet: {unplaced}.",
                                      f"Play every version before you submit; not played yet: {unplaced}."]
            if shot:
                page.screenshot(path=str(SHOTS / f"missing-{shot}"), full_page=True)
        for letter in sorted(letters.values()):
            frame.get_by_role("button", name=letter, exact=True).click()
            page.wait_for_timeout(120)
        frame.get_by_role("button", name="Pause").click()
        wanted = [letters[c] for c in BEST_FIRST if c in letters]
        if careful:  # drag each into the order; the second is dropped on top of the first, then fixed with ▲ ▼
            for letter in wanted:
                drop_last(frame, letter)
            if len(wanted) > 1:
                row(frame, "#ranked", wanted[-1]).drag_to(row(frame, "#ranked", wanted[0]),
                                                          target_position={"x": 5, "y": 2})
                assert frame.locator("#ranked button.choice").all_inner_texts()[0] == wanted[-1]
                frame.get_by_role("button", name=f"Remove {wanted[-1]} from the order").click()
                drop_last(frame, wanted[-1])
        else:  # the keyboard alone: Place each (worst first, but the worst last), then Enter on its ▲ to the top
            worst_first = wanted[::-1]
            for letter in worst_first[1:] + worst_first[:1]:
                frame.get_by_role("button", name=f"Place {letter} last in the order").focus()
                page.keyboard.press("Enter")
            for _ in range(len(wanted) - 1):  # the focus stays on the row's ▲ as the rows are redrawn
                assert frame.locator(":focus").get_attribute("aria-label") == f"move {worst_first[0]} up"
                page.keyboard.press("Enter")
            wanted = worst_first
        assert frame.locator("#ranked button.choice").all_inner_texts() == wanted
        assert missing(frame) == []
        if shot and (number == 1 or item.attention):
            page.screenshot(path=str(SHOTS / (shot if number == 1 else "ranking-attention.png")), full_page=True)
        frame.get_by_role("button", name="Submit and continue").click()
    page.get_by_text("RANK-DONE").wait_for(timeout=20_000)


def test_two_raters_rank_blind_and_their_ranks_are_exported_analysed_and_reported(
        browser, served_ranking, run_dir, tmp_path):
    from earshot.results.report import build_sections, render_markdown

    db, test, server = served_ranking
    SHOTS.mkdir(exist_ok=True)
    seen = []
    for name, careful in (("careful", True), ("careless", False)):
        rater = store.add_rater(db, test.name, name)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        recorded = record(page)
        take_test(page, server, db, test, rater, careful, shot="ranking-trial.png" if careful else None)
        recorded.append(page.content().encode())
        context.close()
        seen += recorded

    exported = store.export_frame(db, test.name)
    items = [i for i in store.test_items(db, test.id) if not i.training]
    assert len(exported) == 2 * 2 * len(items)  # two ranked per trial, the attention trial's too
    assert (exported["type"] == "ranking").all() and exported["score"].isna().all()
    assert (exported["play_count"] >= 1).all()
    attention = exported[exported["attention"]]
    passed = {name: attention_passed(rows) for name, rows in attention.groupby("rater")}
    assert passed == {"careful": True, "careless": False}
    careful = exported[(exported["rater"] == "careful") & ~exported.index.isin(attention.index)]
    assert (careful.set_index("condition")["rank"].groupby(level=0).unique().map(list).to_dict()
            == {"mse-seed0": [1], "bark-seed0": [2]})
    result = analyze_ranking(exported, test.name)
    assert result.friedman["blocks"] == 2 * (len(items) - 1) and result.means["mean_rank"].tolist() == [1.5, 1.5]
    run, sections = build_sections(run_dir, ratings=[(test.name, exported)])
    text = render_markdown(run, sections, tmp_path)
    assert f"test {test.name} (Ranking)" in text and "Friedman test over the 2 conditions" in text
    assert "careless failed an attention check" in text

    admin = browser.new_page(viewport={"width": 1280, "height": 2600})
    admin.goto(f"{server.url}/admin")
    admin.wait_for_selector(CONNECTED)
    admin.get_by_label("Password", exact=True).fill(server.password)
    admin.get_by_role("button", name="Log in").click()
    admin.get_by_text("Live summary (mean rank per condition, Friedman test)").wait_for(timeout=20_000)
    admin_tables_drawn(admin, analyze_test(exported, test.name))  # every table, drawn for the screenshot
    admin.screenshot(path=str(SHOTS / "ranking-admin.png"), full_page=True)
    admin.close()
    found = sorted({n for blob in seen for n in leaks(blob, secrets_of(run_dir, db, test))})
    assert found == [], f"the browser received {found}"
