"""``earshot listen serve`` as a supervisor runs it: a SIGTERM stops the server and frees the port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.listening_app.conftest import free_port

EARSHOT = str(Path(sys.executable).with_name("earshot"))


def _healthy(port: int) -> bool:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).read() == b"ok"
    except OSError:
        return False


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As a restarted server binds: connections left in TIME_WAIT do not hold the port, a listener does.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_earshot_stops_the_server_and_frees_the_port(tmp_path, signum):
    port = free_port()
    process = subprocess.Popen([EARSHOT, "listen", "serve", "--db", f"sqlite:///{tmp_path / 'db.sqlite'}",
                                "--port", str(port), "--address", "127.0.0.1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _healthy(port):
            assert process.poll() is None, "the server exited before it was up"
            assert time.monotonic() < deadline, "the server did not start within 60 s"
            time.sleep(0.3)
        process.send_signal(signum)  # to earshot's own pid, as systemd or a container runtime does
        process.wait(30)
        assert not _healthy(port)
        deadline = time.monotonic() + 10
        while not _port_free(port):
            assert time.monotonic() < deadline, f"port {port} is still held after earshot stopped"
            time.sleep(0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
