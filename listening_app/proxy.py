"""Several app processes behind nginx: ``earshot listen serve --processes N``.

One Streamlit process runs its sessions' script runs one after another, so a burst of
submits waits in line. N processes (each on its own local port, all over one PostgreSQL
database) share the burst; nginx in front of them keeps each browser on one process, since a
Streamlit session (its websocket, its state, the media it serves) lives in one process only.

Stickiness is a cookie: a request without a valid ``earshot_route`` cookie goes to the next
process in turn and its response sets the cookie to that process's number; a request with
it goes to that process. ``ip_hash`` would put every rater behind one address (a lab, a
campus, a crowd platform's proxy) on one process, and the cookie reaches the websocket too,
which a browser opens with the page's cookies. The config, logs and nginx's temp files live
in one folder; no system nginx config is read or touched, and nginx runs in the foreground
as the current user.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

#: The cookie that names the process a browser stays on (a number, 1..N: nothing of the server's layout).
ROUTE_COOKIE = "earshot_route"
CONFIG_NAME = "nginx.conf"
ACCESS_LOG = "access.log"
ERROR_LOG = "error.log"
START_TIMEOUT = 90.0  # N Streamlit processes importing numpy and torch at once on a small machine
STOP_TIMEOUT = 15.0


class ProxyError(Exception):
    """A crowd server that cannot start or that stopped: the message is one line for the user."""


def find_nginx() -> str:
    """nginx's executable; Debian puts it in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx")
                                           if os.access(p, os.X_OK)), None)
    if found is None:
        raise ProxyError("nginx not found: --processes above 1 serves through nginx (Debian: apt-get install nginx)")
    return found


def free_local_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port(address: str, port: int) -> None:
    """Fail before starting anything when ``address:port`` cannot be listened on (taken, or not ours)."""
    try:
        found = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ProxyError(f"--address {address}: {error.strerror}") from None
    for family, kind, proto, _, where in found:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx binds
            try:
                s.bind(where)
            except OSError as error:
                raise ProxyError(f"--port {port}: cannot listen on {where[0]}:{port} ({error.strerror})") from None


def nginx_config(folder: Path, address: str, port: int, app_ports: list[int]) -> str:
    """nginx's whole config: listen on ``address:port``, each browser kept on one of ``app_ports``."""
    numbers = range(1, len(app_ports) + 1)
    each = "\n".join(f"    upstream earshot_{n} {{ server 127.0.0.1:{p}; }}" for n, p in zip(numbers, app_ports))
    every = "\n".join(f"        server 127.0.0.1:{p};" for p in app_ports)
    by_cookie = "\n".join(f"        {n} earshot_{n};" for n in numbers)
    # Only a response to a request routed in turn sets the cookie, to the process that answered.
    new_cookie = "\n".join(f'        "earshot_any 127.0.0.1:{p}" "{ROUTE_COOKIE}={n}; Path=/; HttpOnly; SameSite=Lax";'
                           for n, p in zip(numbers, app_ports))
    temp = {kind: folder / "temp" / kind for kind in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    listen = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    # As root nginx's workers would switch to "nobody", who cannot use this folder: keep them as the user.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return f"""# Written by earshot listen serve --processes {len(app_ports)}; removed or rewritten at each start.
{user}daemon off;
master_process on;
# One worker: it takes turns over the processes strictly, and holds thousands of websockets.
worker_processes 1;
pid {folder / "nginx.pid"};
error_log {folder / ERROR_LOG} warn;

events {{
    worker_connections 4096;
}}

http {{
    log_format earshot '$remote_addr [$time_local] "$request" $status $body_bytes_sent '
                       'upstream=$upstream_addr route=$cookie_{ROUTE_COOKIE} time=$request_time';
    access_log {folder / ACCESS_LOG} earshot;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
    server_tokens off;
    client_max_body_size 200m;  # Streamlit's own upload limit

    upstream earshot_any {{
{every}
    }}
{each}

    map $cookie_{ROUTE_COOKIE} $earshot_backend {{
        default earshot_any;
{by_cookie}
    }}
    map "$earshot_backend $upstream_addr" $earshot_set_cookie {{
        default "";
{new_cookie}
    }}
    map $http_upgrade $earshot_connection {{
        default upgrade;
        "" close;
    }}

    server {{
        listen {listen};
        location / {{
            proxy_pass http://$earshot_backend;
            # Streamlit's websocket: HTTP/1.1 with the upgrade headers passed on.
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $earshot_connection;
            # Streamlit checks a websocket's Origin against the Host the browser used.
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            # A rater listening for minutes sends nothing on the websocket; keep it open.
            proxy_read_timeout 24h;
            proxy_send_timeout 24h;
            proxy_buffering off;
            add_header Set-Cookie $earshot_set_cookie always;
        }}
    }}
}}
"""


def _die_with_parent() -> None:
    """In a child before exec: receive SIGTERM when earshot itself dies, even by SIGKILL (Linux)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _healthy(url: str) -> bool:
    try:
        return urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok"
    except OSError:
        return False


class _Stop(Exception):
    """A SIGINT, SIGTERM or SIGHUP reached earshot: stop everything."""


@dataclass
class CrowdServer:
    """N app processes and nginx, started together and stopped together.

    Every child runs in its own process group (a Ctrl-C reaches earshot, which stops them in
    order) and gets SIGTERM from the kernel if earshot dies without stopping them.
    """

    app_command: Callable[[int], list[str]]  # the app's command on a local port
    env: dict[str, str]
    processes: int
    address: str
    port: int
    folder: Path
    nginx: str
    apps: list[subprocess.Popen] = field(default_factory=list)
    app_ports: list[int] = field(default_factory=list)
    proxy: subprocess.Popen | None = None
    _errors_from: int = 0

    def start(self) -> None:
        check_port(self.address, self.port)
        for kind in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.folder / "temp" / kind).mkdir(parents=True, exist_ok=True)
        self.app_ports = [free_local_port() for _ in range(self.processes)]
        for n, port in enumerate(self.app_ports, 1):
            # Streamlit's banner names the local port, which raters must not use: it goes to a log.
            with open(self.folder / f"app-{n}.log", "ab") as log:
                self.apps.append(subprocess.Popen(self.app_command(port), env=self.env, stdout=log,
                                                  start_new_session=True, preexec_fn=_die_with_parent))
        deadline = time.monotonic() + START_TIMEOUT
        for n, (app, port) in enumerate(zip(self.apps, self.app_ports), 1):
            while not _healthy(f"http://127.0.0.1:{port}"):
                if app.poll() is not None:
                    raise ProxyError(f"app process {n} exited (code {app.returncode}) while starting; "
                                     "its messages are above")
                if time.monotonic() > deadline:
                    raise ProxyError(f"app process {n} did not start within {START_TIMEOUT:.0f} s")
                time.sleep(0.3)
        config = self.folder / CONFIG_NAME
        log = self.folder / ERROR_LOG
        self._errors_from = log.stat().st_size if log.exists() else 0  # a kept folder's log has older runs
        config.write_text(nginx_config(self.folder, self.address, self.port, self.app_ports))
        self.proxy = subprocess.Popen([self.nginx, "-p", str(self.folder), "-c", str(config),
                                       "-e", str(self.folder / ERROR_LOG)],
                                      stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent)
        local = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.address, self.address)
        host = f"[{local}]" if ":" in local else local
        while not _healthy(f"http://{host}:{self.port}"):
            if self.proxy.poll() is not None:
                raise ProxyError(f"nginx exited (code {self.proxy.returncode}): {self._nginx_error()}")
            if time.monotonic() > deadline:
                raise ProxyError(f"nginx did not answer on {self.address}:{self.port} within {START_TIMEOUT:.0f} s")
            time.sleep(0.2)

    def watch(self) -> None:
        """Return never; raise :class:`ProxyError` when a process stops by itself."""
        while True:
            for n, app in enumerate(self.apps, 1):
                if app.poll() is not None:
                    raise ProxyError(f"app process {n} stopped (code {app.returncode}); stopping the others")
            if self.proxy.poll() is not None:
                raise ProxyError(f"nginx stopped (code {self.proxy.returncode}): {self._nginx_error()}")
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM to nginx and every app process, SIGKILL to whatever is left after a while."""
        children = ([self.proxy] if self.proxy else []) + self.apps
        for child in children:
            if child.poll() is None:
                try:
                    os.killpg(child.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the whole group: nginx's worker, anything a process started
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()

    def _nginx_error(self) -> str:
        try:
            with open(self.folder / ERROR_LOG, "rb") as log:
                log.seek(self._errors_from)
                lines = [ln for ln in log.read().decode(errors="replace").splitlines()
                         if "[emerg]" in ln or "[alert]" in ln or "[crit]" in ln]
        except OSError:
            lines = []
        # "2026/12/07 05:32:18 [emerg] 6659#6659: unknown log format ..." -> the message
        return re.sub(r"^.*?\] \d+#\d+: ", "", lines[0]) if lines else f"see {self.folder / ERROR_LOG}"


def serve_crowd(app_command: Callable[[int], list[str]], env: dict[str, str], processes: int, address: str,
                port: int, folder: Path | None = None, say: Callable[[str], None] = print) -> int:
    """Run until a signal: N app processes behind nginx on ``address:port``; the exit status.

    ``folder`` keeps the config and logs (``access.log`` names the process of every request);
    by default they go to a temporary folder removed at the end.

    Raises:
        ProxyError: nginx is missing, a process did not start or stopped by itself; everything
            started has been stopped.
    """
    nginx = find_nginx()
    keep = folder is not None
    folder = Path(folder).resolve() if keep else Path(tempfile.mkdtemp(prefix="earshot-serve-"))
    folder.mkdir(parents=True, exist_ok=True)
    server = CrowdServer(app_command, env, processes, address, port, folder, nginx)

    def stop(signum, frame):
        raise _Stop

    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        server.start()
        say(f"earshot: {processes} app processes behind nginx at http://{address}:{port} "
            f"(config and logs: {folder}); Ctrl-C stops all")
        sys.stdout.flush()
        server.watch()  # returns never: a signal or a stopped process ends it
    except _Stop:
        return 0
    finally:
        # A second Ctrl-C must not cut the stopping short and leave processes behind.
        for s in previous:
            signal.signal(s, signal.SIG_IGN)
        server.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
