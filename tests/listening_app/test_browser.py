"""The player in a real browser (Debian's chromium through Playwright) against a real server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from earshot.listening_app import store
from tests.listening_app.conftest import Server, make_test

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium "
                                                                                   "(apt-get install chromium)")]
CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
#: Runs of base64 (the blinded audio) are left out of the scan: any short name turns up in
#: megabytes of random base64 by chance. What the audio itself gives away is tested apart.
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=]{120,}")


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--autoplay-policy=no-user-gesture-required"])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory, run_dir):
    db = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'listening.sqlite'}"
    test = make_test(db, run_dir, "blind-7f3a", completion_code="THANKS-7")
    server = Server(db).start()
    yield db, test, server
    server.kill()
    store.dispose_engines()


def secrets_of(run_dir: Path, db: str, test: store.TestInfo) -> list[str]:
    """Everything that would tell a rater which stimulus is which."""
    excerpts = json.loads((run_dir / "excerpts.json").read_text())
    jobs = [p.name for p in (run_dir / "recon").iterdir()]
    names = jobs + ["anchor-low", "anchor-mid", "recon/", "reference/", test.name, test.run_id, str(run_dir)]
    names += [e["item"] for e in excerpts] + [Path(e["source"]).name for e in excerpts]
    return names


def leaks(blob: bytes, names: list[str]) -> list[str]:
    text = BASE64_RUN.sub(b"", blob).decode("latin-1").lower()
    found = [n for n in names if n.lower() in text]
    # Loss names as bare words, except in Streamlit's own static bundle (the same for every
    # app, and it happens to list texture names such as BUMP_BARK).
    if "/static/js/" not in text.split("\n", 1)[0]:
        found += [w for w in ("mse", "bark") if re.search(rf"\b{w}\b", text)]
    return found


def body_of(response) -> bytes:
    """A response's body; a page left before its body is read (a reload) gives none."""
    try:
        return response.body()
    except Exception:  # playwright raises a bare Error for bodies the browser dropped
        return b""


def open_trial(page, server: Server, token: str):
    page.goto(f"{server.url}/?token={token}")
    page.wait_for_selector(CONNECTED)
    page.get_by_text("I agree").click()
    page.get_by_role("button", name="Start").click()
    page.get_by_role("button", name="Continue to the test").click()
    page.get_by_text("Trial 1 of").wait_for()


def player(page, previous: str | None = None):
    """The player's frame once its audio is decoded; after a submit, the next trial's one."""
    page.wait_for_function("""previous => [...document.querySelectorAll('iframe')].some(f => {
        const b = f.contentDocument && f.contentDocument.body;
        return b && b.dataset.ready === '1' && b.dataset.nonce !== previous; })""", arg=previous or "",
                           timeout=20_000)
    return page.frame_locator("iframe").last


def nonce_of(frame) -> str:
    return frame.locator("body").get_attribute("data-nonce")


def rate_and_submit(page, frame, play: bool = True):
    letters = frame.locator("#choices button").all_inner_texts()[1:]
    if play:
        for letter in letters:  # switching while playing: each one is heard for a moment
            frame.get_by_role("button", name=letter, exact=True).click()
            page.wait_for_timeout(150)
        frame.get_by_role("button", name="Pause").click()
    sliders = frame.locator("input[type=range]")
    for i in range(sliders.count()):
        sliders.nth(i).fill("100" if i == 0 else str(20 + 10 * i))
    frame.get_by_role("button", name="Submit and continue").click()


def test_a_rater_session_plays_switches_submits_resumes_and_leaks_nothing(browser, served, run_dir):
    db, test, server = served
    rater = store.add_rater(db, test.name)
    context = browser.new_context(viewport={"width": 1000, "height": 1100})
    page = context.new_page()
    seen: list[bytes] = []
    page.on("response", lambda r: seen.append(r.url.encode() + b"\n" + body_of(r)))
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: seen.append(f if isinstance(f, bytes)
                                                                                     else f.encode())))
    open_trial(page, server, rater.token)
    frame = player(page)
    frame.get_by_role("button", name="Submit and continue").click()
    page.get_by_text("Play every stimulus before you submit; not played yet: A, B, C, D, E.").wait_for()
    page.get_by_text("Rate at least one stimulus 100").wait_for()
    Path("/tmp/earshot-shots").mkdir(exist_ok=True)
    page.screenshot(path="/tmp/earshot-shots/trial-missing.png", full_page=True)
    seen.append(page.content().encode())

    rate_and_submit(page, frame)
    page.get_by_text("Trial 2 of 3").wait_for(timeout=20_000)
    submitted = store.export_frame(db, test.name)
    assert len(submitted) == 5 and (submitted["play_count"] >= 1).all() and (submitted["play_seconds"] > 0).any()
    assert (submitted["score"] == 100).sum() == 1

    page.reload()  # a new session: resume comes from the database through the token
    page.wait_for_selector(CONNECTED)
    page.get_by_text("Trial 2 of 3").wait_for(timeout=20_000)
    frame = player(page)
    frame.get_by_role("button", name="Play").click()
    box = frame.locator("#wave").bounding_box()  # drag over the reference's waveform: a loop region
    page.mouse.move(box["x"] + 100, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 400, box["y"] + 40, steps=5)
    page.mouse.up()
    assert frame.locator("#loop").inner_text().startswith("loop ")
    page.keyboard.press("b")
    page.screenshot(path="/tmp/earshot-shots/trial-2.png", full_page=True)
    for expected in ("Trial 3 of 3", "Thank you"):
        previous = nonce_of(frame)
        rate_and_submit(page, frame)
        try:
            page.get_by_text(expected).wait_for(timeout=20_000)
        except Exception:
            page.screenshot(path="/tmp/earshot-shots/debug.png", full_page=True)
            raise
        if expected != "Thank you":
            frame = player(page, previous)
    page.get_by_text("THANKS-7").wait_for()
    page.screenshot(path="/tmp/earshot-shots/finished.png", full_page=True)
    seen.append(page.content().encode())
    context.close()

    assert len(store.ratings_frame(db, test.name)) == 15
    found = sorted({name for blob in seen for name in leaks(blob, secrets_of(run_dir, db, test))})
    assert found == [], f"the browser received {found}"
    assert len(seen) > 20  # the scan saw the session's traffic, not nothing


def test_the_component_folder_holds_its_page_and_nothing_else():
    from earshot.listening_app.player import FOLDER

    assert sorted(p.name for p in FOLDER.rglob("*")) == ["index.html"]  # everything in it is public


def test_killing_the_server_mid_session_loses_nothing_and_the_rater_resumes(browser, run_dir, tmp_path):
    db = f"sqlite:///{tmp_path / 'listening.sqlite'}"
    test = make_test(db, run_dir, "crash", training=False)
    rater = store.add_rater(db, test.name)
    server = Server(db).start()
    try:
        page = browser.new_page()
        page.goto(f"{server.url}/?token={rater.token}")
        page.wait_for_selector(CONNECTED)
        page.get_by_text("I agree").click()
        page.get_by_role("button", name="Start").click()
        frame = player(page)
        rate_and_submit(page, frame)
        page.get_by_text("Trial 2 of 3").wait_for(timeout=20_000)
        server.kill()  # SIGKILL, mid-session
        server.start()  # same port and database
        page.goto(f"{server.url}/test?token={rater.token}")
        page.get_by_text("Trial 2 of 3").wait_for(timeout=30_000)
        assert len(store.ratings_frame(db, test.name)) == 5
        page.close()
    finally:
        server.kill()
