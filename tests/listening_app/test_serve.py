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


def test_the_server_tells_visitors_no_path_and_refuses_a_streamlit_it_cannot_patch(monkeypatch):
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.runtime.app_session import AppSession

    from earshot.listening_app import serve
    from earshot.listening_app.cli import server_command

    assert server_command(8501, "localhost")[1:4] == ["-m", "earshot.listening_app.serve", "run"]

    def new_session_message(self, *args, **kwargs):  # what Streamlit sends: the script's absolute path
        msg = ForwardMsg()
        msg.new_session.main_script_path = "/srv/earshot/listening_app/app.py"
        return msg

    monkeypatch.setattr(AppSession, "_create_new_session_message", new_session_message)
    monkeypatch.setattr(AppSession, "_handle_git_information_request", lambda self: "repository and files")
    serve.withhold_server_layout()
    assert AppSession._create_new_session_message(None).new_session.main_script_path == serve.SCRIPT_NAME
    assert AppSession._handle_git_information_request(None) is None
    monkeypatch.delattr(AppSession, "_handle_git_information_request")
    with pytest.raises(RuntimeError, match="_handle_git_information_request is gone"):
        serve.withhold_server_layout()
