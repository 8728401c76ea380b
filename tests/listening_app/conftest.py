"""Fixtures for the listening test: the session's tiny run, databases, a server, PostgreSQL."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from earshot.listening_app import store
from earshot.listening_app.cli import server_command
from earshot.listening_app.prepare import prepare_test
from earshot.listening_app.settings import TestSettings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def run_dir(tiny_run) -> Path:
    """The session's tiny run (tests/conftest.py), which a test only prepares listening tests from
    (seed 0: conditions mse-seed0 and bark-seed0)."""
    return tiny_run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    yield f"sqlite:///{tmp_path / 'listening.sqlite'}"
    store.dispose_engines()


def make_test(db_url: str, run_dir: Path, name: str = "t", open_it: bool = True, **settings) -> store.TestInfo:
    prepare_test(run_dir, db_url, items=8, seconds=2.0, name=name, settings=TestSettings(**settings))
    if open_it:
        store.set_status(db_url, name, "open")
    return store.get_test(db_url, name)


class FakeClock:
    """A clock a test moves by hand: waits are asserted as decided, never slept."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def admin_guard(monkeypatch):
    """A fresh admin log-in guard per test (the server process shares one), on a :class:`FakeClock`."""
    from earshot.listening_app import login

    guard = login.LoginGuard(FakeClock())
    monkeypatch.setattr(login, "GUARD", guard)
    return guard


# ------------------------------------------------------------------ PostgreSQL


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on a temp dir and a free port; stopped at the end.

    initdb refuses to run as root, so as root the server runs as the ``postgres`` user
    (Debian's package creates it).
    """
    pytest.importorskip("psycopg", reason="the PostgreSQL driver is not installed: pip install 'psycopg[binary]'")
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries not found (/usr/lib/postgresql/*/bin): apt-get install postgresql")
    as_user: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="earshot-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no 'postgres' user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    subprocess.run(as_user + [str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
                   check=True, capture_output=True)
    subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-w", "-l", str(folder / "log"), "-o",
                              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        store.dispose_engines()
        subprocess.run(as_user + [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


_pg_databases = iter(range(1, 10_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database of each kind (a new database per test on the PostgreSQL server)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'listening.sqlite'}"
        store.dispose_engines()
        return
    server = request.getfixturevalue("postgres_server")
    import sqlalchemy as sa

    name = f"t{next(_pg_databases)}"
    admin = sa.create_engine(store._normalise_url(server), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    admin.dispose()
    yield server.rsplit("/", 1)[0] + "/" + name
    store.dispose_engines()


# ------------------------------------------------------------------ the server


class Server:
    """``streamlit run listening_app/app.py`` in its own process group, stopped for sure."""

    def __init__(self, db_url: str, port: int | None = None, password: str = "secret"):
        self.db_url, self.port, self.password = db_url, port or free_port(), password
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Server":
        env = dict(os.environ, EARSHOT_DB=self.db_url, EARSHOT_ADMIN_PASSWORD=self.password)
        self.process = subprocess.Popen(
            server_command(self.port, "127.0.0.1"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(self.url + "/_stcore/health", timeout=1).read() == b"ok":
                    return self
            except OSError:
                time.sleep(0.3)
        self.kill()
        raise RuntimeError("the Streamlit server did not start within 60 s")

    def kill(self) -> None:
        """SIGKILL the whole process group: what a crash looks like to the database."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None
