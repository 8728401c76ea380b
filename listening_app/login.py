"""The admin page's log-in: a growing wait per client after each wrong password, every attempt logged.

The wait is decided here, not slept: while it lasts a client's attempts are refused without
the password being compared, so opening a new tab or session does not reset it (the record
is per process, keyed by the client's address). A correct password clears it.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable, Literal

log = logging.getLogger("earshot.listening_app.admin")
if not log.handlers and not logging.getLogger().handlers:
    # Streamlit sets up only its own loggers: without a handler the server's log would keep the
    # warnings alone, bare, and never a successful log-in.
    _handler = logging.StreamHandler()
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(_handler)
    log.setLevel(logging.INFO)

FIRST_WAIT_S = 1.0  # after the first wrong password; doubles with each further one
MAX_WAIT_S = 300.0  # the wait never grows past this
FORGET_AFTER_S = 3600.0  # a client quiet this long after its last wrong password starts afresh


def wait_after(failures: int) -> float:
    """Seconds a client must wait after ``failures`` wrong passwords in a row: 1, 2, 4, 8, … up to
    :data:`MAX_WAIT_S`; 0 before the first."""
    if failures <= 0:
        return 0.0
    return min(MAX_WAIT_S, FIRST_WAIT_S * 2 ** min(failures - 1, 32))


@dataclass
class Attempt:
    """The outcome of one log-in attempt: ``ok``, ``wrong`` (and now wait) or ``refused`` (still waiting)."""

    outcome: Literal["ok", "wrong", "refused"]
    wait_s: float = 0.0  # before the next attempt is accepted
    failures: int = 0  # wrong passwords in a row from this client


@dataclass
class _Record:
    failures: int
    last: float  # clock time of the last wrong password
    until: float  # no attempt is accepted before this clock time


class LoginGuard:
    """Wrong-password records per client, shared by every session of the server process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()  # sessions run in their own threads

    def _current(self, client: str, now: float) -> _Record | None:
        record = self._records.get(client)
        if record is not None and now - record.last > FORGET_AFTER_S:
            del self._records[client]
            return None
        return record

    def wait_s(self, client: str) -> float:
        """Seconds before ``client`` may try again (0 when it may now)."""
        with self._lock:
            now = self.clock()
            record = self._current(client, now)
            return max(0.0, record.until - now) if record else 0.0

    def attempt(self, client: str, typed: str, password: str) -> Attempt:
        """Check ``typed`` for ``client``: refused unread while its wait lasts, else compared in
        constant time; a wrong one starts a longer wait."""
        with self._lock:
            now = self.clock()
            record = self._current(client, now)
            if record is not None and now < record.until:
                wait = record.until - now
                log.warning("admin log-in from %s refused: %d wrong passwords in a row, %.0f s left to wait",
                            client, record.failures, wait)
                return Attempt("refused", wait, record.failures)
            if hmac.compare_digest(typed.encode(), password.encode()):
                self._records.pop(client, None)
                log.info("admin logged in from %s", client)
                return Attempt("ok")
            failures = (record.failures if record else 0) + 1
            wait = wait_after(failures)
            self._records[client] = _Record(failures, now, now + wait)
            log.warning("wrong admin password from %s (%d in a row); next attempt accepted in %.0f s",
                        client, failures, wait)
            return Attempt("wrong", wait, failures)


#: The server process's guard (the admin page's sessions share it).
GUARD = LoginGuard()
