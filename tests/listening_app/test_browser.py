"""The player in a real browser (Debian's chromium through Playwright) against a real server."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path

import pytest

import numpy as np
import typer
from typer.testing import CliRunner

from earshot import listening_app
from earshot.listening_app import store
from earshot.listening_app.audio import read_wav_bytes
from earshot.listening_app.cli import listen_app
from tests.listening_app.conftest import ROOT, Server, make_test

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium "
                                                                                   "(apt-get install chromium)")]
CONNECTED = '[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
#: Runs of base64 (the blinded audio) are left out of the scan: any short name turns up in
#: megabytes of random base64 by chance. What the audio itself gives away is tested apart.
BASE64_RUN = re.compile(rb"[A-Za-z0-9+/=]{120,}")
#: A base64 wav file ("RIFF" encodes as "UklGR") as the player's arguments carry it.
BASE64_WAV = re.compile(rb"UklGR[A-Za-z0-9+/]{200,}={0,2}")
SHOTS = Path("/tmp/earshot-shots")


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
    """Everything that would tell a rater which stimulus is which, and where the server keeps its files."""
    excerpts = json.loads((run_dir / "excerpts.json").read_text())
    jobs = [p.name for p in (run_dir / "recon").iterdir()]
    names = jobs + ["anchor-low", "anchor-mid", "recon/", "reference/", test.name, test.run_id, str(run_dir)]
    names += [str(ROOT), str(Path(listening_app.__file__).parent)]  # the app's install path
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


def record(page) -> list[bytes]:
    """Every HTTP body and websocket frame the page receives from now on, in order."""
    seen: list[bytes] = []
    page.on("response", lambda r: seen.append(r.url.encode() + b"\n" + body_of(r)))
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: seen.append(f if isinstance(f, bytes)
                                                                                     else f.encode())))
    return seen


def open_trial(page, server: Server, token: str):
    page.goto(f"{server.url}/?token={token}")
    page.wait_for_selector(CONNECTED)
    page.get_by_text("I agree").click()
    page.get_by_role("button", name="Start").click()
    player(page)  # the training page's
    page.get_by_role("button", name="Continue to the test").click()
    page.get_by_text("Trial 1 of").wait_for()


def player(page, previous: str | None = None):
    """The player's frame once its audio is decoded; after a submit, the next trial's one."""
    page.wait_for_function("""previous => [...document.querySelectorAll('iframe')].some(f => {
        const b = f.contentDocument && f.contentDocument.body;
        return b && b.dataset.ready === '1' && b.dataset.nonce !== previous; })""", arg=previous or "",
                           timeout=20_000)
    return page.frame_locator("iframe").last


def admin_tables_drawn(admin, analysis) -> None:
    """Wait until the admin page shows every table of the test's analysis (each by its caption's
    start, as often as the analysis has it: a table again without flagged raters shares it), drawn."""
    from earshot.results.present import Table

    starts = [part.caption[:40] for _, part in analysis.parts if isinstance(part, Table)]
    assert starts
    for start in set(starts):
        admin.get_by_text(start).nth(starts.count(start) - 1).wait_for(timeout=20_000)
    admin.wait_for_function("document.querySelectorAll('[data-testid=\"stSkeleton\"]').length === 0")


def nonce_of(frame) -> str:
    return frame.locator("body").get_attribute("data-nonce")


def play_all(page, frame):
    for letter in frame.locator("button.choice").all_inner_texts()[1:]:  # each one heard for a moment
        frame.get_by_role("button", name=letter, exact=True).click()
        page.wait_for_timeout(150)
    frame.get_by_role("button", name="Pause").click()


def rate_and_submit(page, frame, play: bool = True, top: int = 100):
    if play:
        play_all(page, frame)
    sliders = frame.locator("input[type=range]")
    for i in range(sliders.count()):
        sliders.nth(i).fill(str(top) if i == 0 else str(20 + 10 * i))
    frame.get_by_role("button", name="Submit and continue").click()


def missing(frame) -> list[str]:
    """What the player says the trial still lacks, line by line."""
    return frame.locator("#missing li").all_inner_texts()


def test_a_rater_session_plays_switches_submits_resumes_and_leaks_nothing(browser, served, run_dir):
    db, test, server = served
    rater = store.add_rater(db, test.name)
    context = browser.new_context(viewport={"width": 1000, "height": 1100})
    page = context.new_page()
    seen = record(page)
    open_trial(page, server, rater.token)
    frame = player(page)
    frame.get_by_role("button", name="Submit and continue").click()  # nothing played or rated: not sent
    assert frame.locator("#status").inner_text() == "not sent: see what is missing above"
    assert store.export_frame(db, test.name).empty
    seen.append(page.content().encode())

    rate_and_submit(page, frame)
    page.get_by_text("Trial 2 of 2").wait_for(timeout=20_000)
    submitted = store.export_frame(db, test.name)
    assert len(submitted) == 5 and (submitted["play_count"] >= 1).all() and (submitted["play_seconds"] > 0).any()
    assert (submitted["score"] == 100).sum() == 1

    page.reload()  # a new session: resume comes from the database through the token
    page.wait_for_selector(CONNECTED)
    page.get_by_text("Trial 2 of 2").wait_for(timeout=20_000)
    frame = player(page)
    frame.get_by_role("button", name="Play").click()
    box = frame.locator("#wave").bounding_box()  # drag over the reference's waveform: a loop region
    page.mouse.move(box["x"] + 100, box["y"] + 40)
    page.mouse.down()
    page.mouse.move(box["x"] + 400, box["y"] + 40, steps=5)
    page.mouse.up()
    assert frame.locator("#loop").inner_text().startswith("loop ")
    page.keyboard.press("b")
    assert frame.locator("button.choice.active").inner_text() == "B"
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "trial-2.png"), full_page=True)
    rate_and_submit(page, frame)
    page.get_by_text("Thank you").wait_for(timeout=20_000)
    page.get_by_text("THANKS-7").wait_for()
    page.screenshot(path=str(SHOTS / "finished.png"), full_page=True)
    seen.append(page.content().encode())
    context.close()

    assert len(store.ratings_frame(db, test.name).query(f"rater == '{rater.name}'")) == 10
    found = sorted({name for blob in seen for name in leaks(blob, secrets_of(run_dir, db, test))})
    assert found == [], f"the browser received {found}"
    assert len(seen) > 20  # the scan saw the session's traffic, not nothing


def test_each_play_button_sits_above_its_own_slider(browser, served):
    db, test, server = served
    rater = store.add_rater(db, test.name)
    page = browser.new_page(viewport={"width": 1000, "height": 1100})
    open_trial(page, server, rater.token)
    frame = player(page)
    buttons, sliders = frame.locator("#sliders button.choice"), frame.locator("input[type=range]")
    assert buttons.all_inner_texts() == ["Reference", "A", "B", "C", "D", "E"]
    for i in range(sliders.count()):
        button, slider = buttons.nth(i + 1).bounding_box(), sliders.nth(i).bounding_box()
        centre = lambda box: box["x"] + box["width"] / 2  # noqa: E731
        assert abs(centre(button) - centre(slider)) < 2 and button["y"] < slider["y"]
    assert "A, B, C" in frame.locator("#hint").inner_text()
    page.close()


def test_what_a_trial_lacks_is_shown_live_and_gone_once_fixed(browser, served):
    db, test, server = served
    rater = store.add_rater(db, test.name)
    page = browser.new_page(viewport={"width": 1000, "height": 1100})
    open_trial(page, server, rater.token)
    frame = player(page)
    assert missing(frame) == ["Rate every stimulus; not rated yet: A, B, C, D, E.",
                              "Play every stimulus before you submit; not played yet: A, B, C, D, E.",
                              "Rate at least one stimulus 100: one of them is the hidden reference."]
    frame.get_by_role("button", name="Submit and continue").click()
    assert "refused" in frame.locator("#missing").get_attribute("class")  # now in red
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "trial-missing.png"), full_page=True)
    play_all(page, frame)
    assert missing(frame) == ["Rate every stimulus; not rated yet: A, B, C, D, E.",
                              "Rate at least one stimulus 100: one of them is the hidden reference."]
    sliders = frame.locator("input[type=range]")
    for i in range(sliders.count()):
        sliders.nth(i).fill(str(20 + 10 * i))
    assert missing(frame) == ["Rate at least one stimulus 100: one of them is the hidden reference."]
    sliders.nth(2).fill("100")
    assert missing(frame) == [] and frame.locator("#status").inner_text() == ""
    assert page.locator('[data-testid="stAlert"]').count() == 0  # and no stale box on the page either
    page.screenshot(path=str(SHOTS / "trial-complete.png"), full_page=True)
    frame.get_by_role("button", name="Submit and continue").click()
    page.get_by_text("Trial 2 of 2").wait_for(timeout=20_000)
    assert page.locator('[data-testid="stAlert"]').count() == 0
    page.close()


def test_no_trial_plays_audio_that_correlates_with_the_training_pages(browser, served):
    """The training page names every version; no trial may play any of them again."""
    db, test, server = served
    rater = store.add_rater(db, test.name)
    page = browser.new_page()
    seen = record(page)
    page.goto(f"{server.url}/?token={rater.token}")
    page.wait_for_selector(CONNECTED)
    page.get_by_text("I agree").click()
    page.get_by_role("button", name="Start").click()
    frame = player(page)
    assert "A, B" not in frame.locator("#hint").inner_text()  # letters do not switch versions here
    page.screenshot(path=str(SHOTS / "training.png"), full_page=True)
    trained = len(seen)
    for expected in ("Trial 1 of 2", "Trial 2 of 2", "Thank you"):
        previous = nonce_of(frame)
        if expected == "Trial 1 of 2":
            page.get_by_role("button", name="Continue to the test").click()
        else:
            rate_and_submit(page, frame)
        page.get_by_text(expected).wait_for(timeout=20_000)
        if expected != "Thank you":
            frame = player(page, previous)
    page.close()

    def received(blobs: list[bytes]) -> list[np.ndarray]:
        found = dict.fromkeys(m.group() for blob in blobs for m in BASE64_WAV.finditer(blob))
        return [read_wav_bytes(base64.b64decode(b))[0] for b in found]

    training, trials = received(seen[:trained]), received(seen[trained:])
    assert (len(training), len(trials)) == (6, 12)  # reference + 5 versions; 2 trials of the same
    worst = max(similarity(t, s) for t in training for s in trials)
    assert worst < 0.9, f"a trial stimulus correlates {worst:.2f} with a training stimulus"
    # The measure finds what it looks for: the open and the hidden reference of one page are one sound.
    assert max(similarity(training[0], t) for t in training[1:]) > 0.99


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The largest normalised cross-correlation of two signals over every lag (1 for the same sound)."""
    n = len(a) + len(b)
    spectrum = np.fft.rfft(a, n) * np.conj(np.fft.rfft(b, n))
    return float(np.abs(np.fft.irfft(spectrum, n)).max() / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_submit_from_a_window_left_behind_is_refused_and_the_rater_told(browser, served):
    db, test, server = served
    rater = store.add_rater(db, test.name)
    first = browser.new_page(viewport={"width": 1000, "height": 1100})
    open_trial(first, server, rater.token)
    second = browser.new_page(viewport={"width": 1000, "height": 1100})  # the same link, opened again
    second.goto(f"{server.url}/test?token={rater.token}")
    second.get_by_text("Trial 1 of 2").wait_for(timeout=20_000)
    behind = player(second)
    rate_and_submit(first, player(first))
    first.get_by_text("Trial 2 of 2").wait_for(timeout=20_000)
    kept = store.export_frame(db, test.name).query(f"rater == '{rater.name}'")["score"].tolist()

    rate_and_submit(second, behind, top=100)
    told = ("Trial 1 was already submitted from another window; your answers here were not saved "
            "(the ones from the other window are kept). You are now on trial 2 of 2.")
    second.get_by_text(told).wait_for(timeout=20_000)
    second.get_by_text("Trial 2 of 2", exact=True).wait_for()
    SHOTS.mkdir(exist_ok=True)
    second.screenshot(path=str(SHOTS / "trial-second-window.png"), full_page=True)
    assert store.export_frame(db, test.name).query(f"rater == '{rater.name}'")["score"].tolist() == kept
    first.close()
    second.close()


def test_tests_are_by_invitation_until_the_admin_lets_raters_register(browser, served, run_dir):
    db, test, server = served
    door = make_test(db, run_dir, "door")
    page = browser.new_page(viewport={"width": 1000, "height": 1000})
    page.goto(f"{server.url}/?test={door.name}")
    page.wait_for_selector(CONNECTED)
    page.get_by_text("This test is by invitation: open it with the link from your invitation.").wait_for()
    assert page.get_by_label("Your name or participant id").count() == 0
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "start-invitation-only.png"), full_page=True)
    invited = store.add_rater(db, door.name)
    page.goto(f"{server.url}/?token={invited.token}")
    page.get_by_text("I agree to take part; my ratings are stored under this invitation.").wait_for()
    assert page.get_by_text("the name or id I give").count() == 0  # an invited rater gives none
    page.screenshot(path=str(SHOTS / "start-invited.png"), full_page=True)
    page.goto(f"{server.url}/?test={door.name}")

    admin = browser.new_page(viewport={"width": 1200, "height": 1600})
    admin.goto(f"{server.url}/admin")
    admin.wait_for_selector(CONNECTED)
    admin.get_by_label("Password", exact=True).fill(server.password)
    admin.get_by_role("button", name="Log in").click()
    admin.get_by_text("Raters", exact=True).wait_for()
    admin.get_by_role("combobox").first.click()
    admin.get_by_role("option", name=door.name).click()
    # The switch of the door test, once the page shows that test (its key names it).
    admin.locator(f".st-key-admin_self_registration-{door.name}").get_by_text("Self-registration").click()
    deadline = time.monotonic() + 30
    while not store.get_test(db, door.name).settings.self_registration:
        assert time.monotonic() < deadline, "the switch did not reach the database"
        admin.wait_for_timeout(100)
    assert not store.get_test(db, test.name).settings.self_registration  # the other test's stays off

    page.reload()
    page.wait_for_selector(CONNECTED)
    page.get_by_label("Your name or participant id").fill("Grace")
    page.get_by_text("the name or id I give").click()
    page.screenshot(path=str(SHOTS / "start-self-registration.png"), full_page=True)
    page.get_by_role("button", name="Start").click()
    page.get_by_text("Training").first.wait_for()
    (grace,) = [r for r in store.progress_frame(db, door.name).itertuples() if r.name == "Grace"]
    assert grace.self_registered

    admin.reload()
    admin.wait_for_selector(CONNECTED)
    admin.get_by_label("Password", exact=True).fill(server.password)
    admin.get_by_role("button", name="Log in").click()
    admin.get_by_role("combobox").first.click()
    admin.get_by_role("option", name=door.name).click()
    # The raters table (a canvas grid, its cells kept in the page for screen readers) marks her.
    admin.locator("td[role=gridcell]", has_text="self-registered").wait_for(state="attached")
    admin.screenshot(path=str(SHOTS / "admin.png"), full_page=True)
    page.close()
    admin.close()


def test_the_component_folder_holds_its_page_and_scripts_and_nothing_else():
    from earshot.listening_app import testtypes
    from earshot.listening_app.player import FOLDER

    names = sorted(p.name for p in FOLDER.rglob("*"))  # everything in it is public
    assert names == sorted(["index.html", *(f"{t}.js" for t in testtypes.TYPES if t != "mushra")])
    page = (FOLDER / "index.html").read_text(encoding="utf-8")
    assert all(f'<script src="{name}"></script>' in page for name in names if name.endswith(".js"))


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
