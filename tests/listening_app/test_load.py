"""30 raters submitting at once: nothing lost, nothing duplicated, latency reported.

Once against the store directly (its locking), once through a running Streamlit server
(its sessions and script threads too), on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np

from earshot.listening_app import store
from earshot.listening_app.trial import trial_order
from tests.listening_app.conftest import Server, make_test
from tests.listening_app.streamlit_client import RaterClient
from tests.listening_app.test_store import full_ratings

RATERS = 30


def test_thirty_raters_submitting_concurrently_lose_and_duplicate_nothing(db_url, run_dir):
    test = make_test(db_url, run_dir)
    items = [i for i in store.test_items(db_url, test.id) if not i.training]
    raters = [store.add_rater(db_url, test.name) for _ in range(RATERS)]
    ratings = {item.id: full_ratings(db_url, item.id) for item in items}
    latencies: list[float] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(RATERS)

    def rater_session(rater: store.RaterInfo) -> None:
        try:
            barrier.wait()  # everyone submits at the same moment
            for item in trial_order(items, rater.token, 0):
                start = time.perf_counter()
                store.submit_trial(db_url, rater.token, item.id, ratings[item.id], 1.0)
                latencies.append(time.perf_counter() - start)
                # The same trial again, as a double click would send it: refused, not doubled.
                try:
                    store.submit_trial(db_url, rater.token, item.id, ratings[item.id], 1.0)
                except store.StoreError:
                    pass
                else:
                    raise AssertionError("a replayed submit was accepted")
        except BaseException as error:  # noqa: BLE001 - reported below, with the others
            errors.append(error)

    threads = [threading.Thread(target=rater_session, args=(r,)) for r in raters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    frame = store.ratings_frame(db_url, test.name)
    per_trial = len(ratings[items[0].id])
    assert len(frame) == RATERS * len(items) * per_trial
    assert not frame.duplicated(["rater", "item", "condition"]).any()
    p95 = float(np.percentile(latencies, 95)) * 1000
    print(f"\n{db_url.split(':')[0]}: {len(latencies)} concurrent submits by {RATERS} raters, "
          f"p95 latency {p95:.0f} ms, median {np.median(latencies) * 1000:.0f} ms")


def _answer(args: dict, hidden_reference_first: bool = True) -> dict:
    """A complete, valid trial: every stimulus played once, one rated 100."""
    keys = [s["key"] for s in args["stimuli"]]
    return {"nonce": args["nonce"], "scores": {k: 100 if i == 0 else 40 + i for i, k in enumerate(keys)},
            "seconds": {k: 3.0 for k in keys}, "plays": {k: 1 for k in keys}}


async def rater_session(client: RaterClient, number: int, token: str, barrier: asyncio.Barrier,
                        burst: list[float], spread: list[float]) -> str:
    """One rater from the start page to the end: the first trial's submit at the barrier (its
    latency into ``burst``), the others after 0.5–3 s of "listening" (into ``spread``), each
    submit replayed once. Returns the page the rater ends on."""
    rng = np.random.default_rng(number)
    page = await client.open("", {"token": token})
    page = await client.rerun({"start_consent": True}, triggers=("start_go",))
    assert page.page == "training", page.texts
    page = await client.rerun(triggers=("training_done",))
    await barrier.wait()  # everyone submits the first trial at the same instant
    latencies = burst
    while page.page == "test":
        answer = _answer(page.components[0][1])
        start = time.perf_counter()
        following = await client.submit_player(answer)
        latencies.append(time.perf_counter() - start)
        assert following.page == "finished" or following.components[0][1]["nonce"] != answer["nonce"], \
            following.texts
        # The same submit again, as a retry sends it: ignored or refused, never written twice.
        replayed = await client.replay_player()
        assert replayed.page == following.page
        page, latencies = following, spread
        await asyncio.sleep(rng.uniform(0.5, 3.0))
    return page.page


def assert_every_rating_once(db_url: str, test: store.TestInfo, raters: int) -> None:
    frame = store.ratings_frame(db_url, test.name)
    items = [i for i in store.test_items(db_url, test.id) if not i.training]
    stimuli = len(store.item_stimuli(db_url, items[0].id))
    assert len(frame) == raters * len(items) * stimuli
    assert not frame.duplicated(["rater", "item", "condition"]).any()
    assert (frame.groupby(["rater", "item"])["score"].max() == 100).all()


def ms(values: list[float], q: float) -> str:
    return f"{np.percentile(values, q) * 1000:.0f} ms"


def test_thirty_raters_against_the_running_server_lose_and_duplicate_nothing(db_url, run_dir):
    """30 raters, each on its own websocket session of one ``earshot listen serve`` process.

    They go through the start and training pages; then all submit their first trial at the
    same instant (the worst case), and the later trials after a random 0.5–3 s of "listening"
    each (30 raters at ~17 submits/s, far busier than real raters at about one trial a minute).
    Each submit is followed by a replay of it (a double click, a retry). The database holds
    every rating exactly once, and every rater reaches the completion page.
    """
    test = make_test(db_url, run_dir)
    tokens = [store.add_rater(db_url, test.name).token for _ in range(RATERS)]
    server = Server(db_url).start()
    burst: list[float] = []
    spread: list[float] = []

    async def one(number: int, token: str, barrier: asyncio.Barrier) -> str:
        async with RaterClient(server.url) as client:
            return await rater_session(client, number, token, barrier, burst, spread)

    async def everyone() -> list[str]:
        barrier = asyncio.Barrier(RATERS)
        return await asyncio.gather(*(one(n, token, barrier) for n, token in enumerate(tokens)))

    try:
        final_pages = asyncio.run(everyone())
    finally:
        server.kill()
    assert final_pages == ["finished"] * RATERS
    assert_every_rating_once(db_url, test, RATERS)

    print(f"\n{db_url.split(':')[0]} via the Streamlit server, submit to next trial drawn: {len(spread)} submits "
          f"at ~17/s, p95 {ms(spread, 95)} (median {ms(spread, 50)}); {len(burst)} at the same instant, "
          f"p95 {ms(burst, 95)} (median {ms(burst, 50)})")
