"""``earshot listen serve --processes N``: N app processes over PostgreSQL behind nginx.

Raters go through the proxy as browsers do (the page first, its cookie on the websocket), all
submit their first trial at the same instant, and the database holds every rating once; each
browser's requests stay on one process and the processes share the raters; a signal (or
earshot's own death) leaves no process behind.

The burst's size is set for CI; a measurement run sets it (see docs/performance.md):
``EARSHOT_SCALE_RATERS=60 EARSHOT_SCALE_PROCESSES=4 pytest -s -k burst tests/listening_app/test_scale.py``.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from earshot.listening_app import store
from earshot.listening_app import proxy
from earshot.listening_app.proxy import ROUTE_COOKIE, nginx_config
from tests.listening_app.conftest import free_port, make_test
from tests.listening_app.streamlit_client import RaterClient
from tests.listening_app.test_browser import (CHROMIUM, CONNECTED, SHOTS, browser, open_trial,  # noqa: F401
                                              player, rate_and_submit)
from tests.listening_app.test_load import assert_every_rating_once, ms, rater_session
from tests.listening_app.test_serve import _port_free

EARSHOT = str(Path(sys.executable).with_name("earshot"))
RATERS = int(os.environ.get("EARSHOT_SCALE_RATERS", "12"))
PROCESSES = int(os.environ.get("EARSHOT_SCALE_PROCESSES", "2"))

needs_nginx = pytest.mark.skipif(not any(os.access(p, os.X_OK) for p in ("/usr/sbin/nginx", "/usr/bin/nginx")),
                                 reason="nginx is not installed (apt-get install nginx)")
postgresql = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "/_stcore/health", timeout=1).read() == b"ok"
    except OSError:
        return False


class CrowdServer:
    """``earshot listen serve --processes N`` as a user starts it, with its proxy folder kept."""

    def __init__(self, db_url: str, processes: int, folder: Path):
        self.port, self.folder, self.processes = free_port(), folder, processes
        self.url = f"http://127.0.0.1:{self.port}"
        command = [EARSHOT, "listen", "serve", "--db", db_url, "--port", str(self.port), "--address", "127.0.0.1",
                   "--processes", str(processes)] + (["--proxy-dir", str(folder)] if processes > 1 else [])
        self.log = folder.with_name("serve.log")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, env=dict(os.environ, EARSHOT_ADMIN_PASSWORD="secret"),
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while not _healthy(self.url):
            if self.process.poll() is not None:
                raise AssertionError(f"earshot listen serve exited: {self.log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("earshot listen serve did not answer within 120 s")
            time.sleep(0.3)

    def app_ports(self) -> dict[str, int]:
        """Each process's number (the cookie's value) and local port, from the generated config."""
        config = (self.folder / "nginx.conf").read_text()
        return {n: int(p) for n, p in re.findall(r"upstream earshot_(\d+) \{ server 127\.0\.0\.1:(\d+); \}", config)}

    def nginx_pid(self) -> int:
        return int((self.folder / "nginx.pid").read_text())

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and every process below it, from /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # gone meanwhile
        return 0.0
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK") + sum(_cpu_seconds(int(c)) for c in children)


class _MeasuredBarrier(asyncio.Barrier):
    """The raters' barrier, noting the server's and the clients' CPU time as the burst starts."""

    def __init__(self, parties: int, server_pid: int):
        super().__init__(parties)
        self.server_pid, self.start = server_pid, None

    async def wait(self) -> int:
        index = await super().wait()
        if self.start is None:
            self.start = (time.perf_counter(), _cpu_seconds(self.server_pid), time.process_time())
        return index


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie is gone too (nobody of ours reaps the test's grandchildren)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _assert_each_request_on_its_process(server: CrowdServer, ports: dict[str, int]) -> list[str]:
    """Every request that carried the cookie went to the process it names; the log's lines."""
    log = (server.folder / "access.log").read_text().splitlines()
    for line in log:
        route = re.search(r"route=(\S+)", line).group(1)
        if route != "-":
            assert f"upstream=127.0.0.1:{ports[route]} " in line, line
    return log


def _assert_nothing_left(server: CrowdServer, ports: dict[str, int], nginx_pid: int) -> None:
    deadline = time.monotonic() + 15
    left = lambda: [p for p in [server.port, *ports.values()] if not _port_free(p)] + \
        ([nginx_pid] if not _gone(nginx_pid) else [])
    while left():
        assert time.monotonic() < deadline, f"still held after earshot stopped (ports, nginx pid): {left()}"
        time.sleep(0.2)


def test_several_processes_on_sqlite_are_refused_in_one_line(tmp_path):
    result = subprocess.run([EARSHOT, "listen", "serve", "--db", str(tmp_path / "db.sqlite"), "--processes", "2"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "--processes 2" in result.stderr and "SQLite" in result.stderr and "postgresql://" in result.stderr


@needs_nginx
@postgresql
def test_a_taken_port_is_named_before_any_process_starts(db_url, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([EARSHOT, "listen", "serve", "--db", db_url, "--processes", "2", "--port", str(port),
                                 "--address", "127.0.0.1", "--proxy-dir", str(tmp_path / "proxy")],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: --port {port}: cannot listen on 127.0.0.1:{port} (Address already in use)"
    assert not (tmp_path / "proxy" / "app-1.log").exists()  # nothing was started


def test_without_nginx_several_processes_say_how_to_get_it(monkeypatch):
    monkeypatch.setattr(proxy.shutil, "which", lambda name: None)
    monkeypatch.setattr(proxy.os, "access", lambda path, mode: False)
    with pytest.raises(proxy.ProxyError, match=r"nginx not found: .*apt-get install nginx"):
        proxy.find_nginx()


def test_the_proxy_config_keeps_each_browser_on_one_process_and_names_no_path_to_it(tmp_path):
    config = nginx_config(tmp_path, "0.0.0.0", 8501, [41001, 41002, 41003])
    assert "listen 0.0.0.0:8501;" in config
    # A cookie names a process by number; an unknown or missing one goes to the next in turn.
    assert f"map $cookie_{ROUTE_COOKIE} $earshot_backend" in config and "default earshot_any;" in config
    for n, port in enumerate([41001, 41002, 41003], 1):
        assert f"upstream earshot_{n} {{ server 127.0.0.1:{port}; }}" in config
        assert f'"earshot_any 127.0.0.1:{port}" "{ROUTE_COOKIE}={n}; Path=/; HttpOnly; SameSite=Lax";' in config
    assert "ip_hash" not in config
    assert "proxy_set_header Upgrade $http_upgrade;" in config and "proxy_http_version 1.1;" in config
    # Everything nginx writes stays in the folder.
    for directive in ("pid", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path"):
        assert re.search(rf"^\s*{directive} {re.escape(str(tmp_path))}/", config, re.M), directive
    assert "listen [::]:8501;" in nginx_config(tmp_path, "::", 8501, [41001])


@needs_nginx
@pytest.mark.slow
@postgresql
def test_a_burst_of_raters_through_the_proxy_loses_nothing_and_every_process_serves(db_url, run_dir, tmp_path):
    """RATERS raters, each a browser (page, then websocket with the page's cookies), through
    ``--processes PROCESSES``; all submit their first trial at the same instant, the rest
    spread out, each submit replayed once. Then SIGTERM, as a supervisor stops it."""
    test = make_test(db_url, run_dir)
    tokens = [store.add_rater(db_url, test.name).token for _ in range(RATERS)]
    server = CrowdServer(db_url, PROCESSES, tmp_path / "proxy")
    burst: list[float] = []
    spread: list[float] = []
    routes: list[str | None] = []

    async def one(number: int, token: str, barrier: asyncio.Barrier) -> str:
        async with RaterClient(server.url, load_page=True) as client:
            routes.append(client.cookies.get(ROUTE_COOKIE))
            return await rater_session(client, number, token, barrier, burst, spread)

    burst_cost: list[float] = []

    async def burst_ended(barrier: _MeasuredBarrier) -> None:
        while len(burst) < RATERS:
            await asyncio.sleep(0.005)
        wall, server_cpu, client_cpu = barrier.start
        burst_cost.extend([time.perf_counter() - wall, _cpu_seconds(server.process.pid) - server_cpu,
                           time.process_time() - client_cpu])

    async def everyone() -> list[str]:
        barrier = _MeasuredBarrier(RATERS, server.process.pid)
        pages = await asyncio.gather(burst_ended(barrier),
                                     *(one(n, token, barrier) for n, token in enumerate(tokens)))
        return pages[1:]

    try:
        final_pages = asyncio.run(everyone())
        if PROCESSES > 1:
            ports, nginx_pid = server.app_ports(), server.nginx_pid()
        server.process.send_signal(signal.SIGTERM)  # to earshot's own pid, as systemd does
        assert server.process.wait(60) == 0
    finally:
        server.kill()
    assert final_pages == ["finished"] * RATERS
    assert_every_rating_once(db_url, test, RATERS)
    print(f"\n{PROCESSES} process(es), {RATERS} raters: {len(burst)} submits at the same instant, p95 "
          f"{ms(burst, 95)} (median {ms(burst, 50)}); {len(spread)} spread out, p95 {ms(spread, 95)} "
          f"(median {ms(spread, 50)})")
    wall, server_cpu, client_cpu = burst_cost
    print(f"the burst took {wall:.2f} s: CPU {server_cpu:.2f} s in the server ({server_cpu / RATERS * 1000:.0f} ms a "
          f"submit), {client_cpu:.2f} s in the test's clients; load average {os.getloadavg()[0]:.1f}")
    if PROCESSES == 1:  # today's single process: no proxy to look at
        return
    _assert_nothing_left(server, ports, nginx_pid)
    # Every browser got a process; each process got raters.
    assert set(routes) == set(ports), routes
    # Each browser's websocket (and every request it made with its cookie) went to its own process.
    streams = [line for line in _assert_each_request_on_its_process(server, ports) if "/_stcore/stream" in line]
    assert len(streams) == RATERS and all(" 101 " in line for line in streams), streams


@needs_nginx
@pytest.mark.slow
@postgresql
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (apt-get install chromium)")
def test_two_browsers_through_the_proxy_each_stay_on_one_process_rate_and_resume(browser, db_url, run_dir, tmp_path):
    """Chromium loads the page, its scripts, the player's frame and the websocket through nginx:
    all on the process its cookie names; a reload comes back to the same process and resumes."""
    test = make_test(db_url, run_dir)
    raters = [store.add_rater(db_url, test.name) for _ in range(2)]
    server = CrowdServer(db_url, 2, tmp_path / "proxy")
    routes = []
    try:
        for n, rater in enumerate(raters, 1):
            context = browser.new_context(viewport={"width": 1000, "height": 1100})
            page = context.new_page()
            open_trial(page, server, rater.token)
            rate_and_submit(page, player(page))
            page.get_by_text("Trial 2 of").wait_for(timeout=20_000)
            page.reload()
            page.wait_for_selector(CONNECTED)
            page.get_by_text("Trial 2 of").wait_for(timeout=20_000)
            player(page)
            SHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SHOTS / f"proxy-rater-{n}.png"), full_page=True)
            routes.append({c["name"]: c["value"] for c in context.cookies()}[ROUTE_COOKIE])
            context.close()
        ports = server.app_ports()
        # nginx logs a websocket when it closes: each browser's first and reloaded page.
        deadline = time.monotonic() + 20
        while (server.folder / "access.log").read_text().count("/_stcore/stream") < 4:
            assert time.monotonic() < deadline, "nginx did not log the four websockets"
            time.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(60) == 0
    finally:
        server.kill()
    # Which process a new browser gets is nginx's turn, which any cookieless request also takes (the
    # burst test shows the processes shared); what must hold is that each browser stays on its own.
    assert set(routes) <= set(ports), routes
    log = _assert_each_request_on_its_process(server, ports)
    streams = [line for line in log if "/_stcore/stream" in line]
    assert sorted(re.search(r"route=(\S+)", line).group(1) for line in streams) == sorted(routes * 2)
    assert all(" 101 " in line for line in streams)
    assert all(any("/component/" in line and f"route={r}" in line for line in log) for r in routes)  # the frame too
    frame = store.ratings_frame(db_url, test.name)
    assert frame.groupby("rater")["item"].nunique().tolist() == [1, 1]


@needs_nginx
@pytest.mark.slow
@postgresql
@pytest.mark.parametrize("how", ["SIGINT", "SIGKILL", "an app process dies"])
def test_a_stopped_earshot_leaves_no_process_behind(db_url, tmp_path, how):
    """Ctrl-C stops every app process and nginx; even earshot killed outright takes them along;
    an app process that dies stops the rest, with a line saying so, for a supervisor to restart."""
    server = CrowdServer(db_url, 2, tmp_path / "proxy")
    try:
        ports, nginx_pid = server.app_ports(), server.nginx_pid()
        if how == "an app process dies":
            children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
            apps = [int(c) for c in children if b"listening_app.serve" in Path(f"/proc/{c}/cmdline").read_bytes()]
            assert len(apps) == 2
            os.kill(apps[1], signal.SIGKILL)
            assert server.process.wait(60) == 2
            assert re.search(r"^error: app process [12] stopped \(code -9\); stopping the others$",
                             server.log.read_text(), re.M), server.log.read_text()[-2000:]
        else:
            server.process.send_signal(getattr(signal, how))
            server.process.wait(60)
        _assert_nothing_left(server, ports, nginx_pid)
    finally:
        server.kill()
