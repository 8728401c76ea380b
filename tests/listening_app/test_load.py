"""30 raters submitting at once against one store: nothing lost, nothing duplicated."""

from __future__ import annotations

import threading
import time

import numpy as np

from listening_app import store
from listening_app.trial import trial_order
from tests.listening_app.conftest import make_test
from tests.listening_app.test_store import full_ratings

RATERS = 30


def test_thirty_raters_submitting_concurrently_lose_and_duplicate_nothing(db_url, run_dir):
    test = make_test(db_url, run_dir)
    items = store.test_items(db_url, test.id)
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
