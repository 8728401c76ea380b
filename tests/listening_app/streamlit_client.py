"""A headless rater: speaks Streamlit's websocket protocol to a running ``earshot listen serve``.

A browser per simulated rater is too heavy for 30 raters on a 2-core machine; this
client sends the same protobuf messages the Streamlit frontend sends (a rerun with the
query string, the page and the widget values) and reads the elements the server renders,
so the load test goes through the real server: its sessions, script threads and database.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg


@dataclass
class Page:
    """What one script run rendered: widgets by their key, component args, messages shown."""

    page: str
    query: dict[str, str]
    widgets: dict[str, str] = field(default_factory=dict)  # user key -> widget id
    components: list[tuple[str, dict]] = field(default_factory=list)  # (widget id, args)
    texts: list[str] = field(default_factory=list)  # alerts and markdown, for error messages


class RaterClient:
    """One rater's browser tab, without the browser."""

    def __init__(self, base_url: str, timeout: float = 60.0, load_page: bool = False):
        """``load_page``: first load the page over HTTP, as a browser does, and send the cookies it
        sets (a proxy's stickiness cookie) with the websocket."""
        self.load_page = load_page
        self.cookies: dict[str, str] = {}
        self.ws_url = base_url.replace("http://", "ws://").rstrip("/") + "/_stcore/stream"
        self.origin = base_url.rstrip("/")
        self.timeout = timeout
        self.ws = None
        self.page_hashes: dict[str, str] = {}  # url path ("" for the start page) -> script hash
        self.page_names: dict[str, str] = {}  # script hash -> url path
        self.current: Page | None = None
        self._submits = itertools.count(1)
        self._last_submit: bytes | None = None

    async def __aenter__(self) -> "RaterClient":
        if self.load_page:
            self.cookies = await asyncio.to_thread(self._page_cookies)
        cookie = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"], origin=self.origin,
                                           max_size=None, open_timeout=self.timeout,
                                           additional_headers={"Cookie": cookie} if cookie else None)
        return self

    def _page_cookies(self) -> dict[str, str]:
        with urllib.request.urlopen(self.origin + "/", timeout=self.timeout) as response:
            response.read()
            return dict(header.split(";", 1)[0].strip().split("=", 1)
                        for header in response.headers.get_all("Set-Cookie") or ())

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()

    async def open(self, page: str, query: dict[str, str]) -> Page:
        """Load ``/page?query``, as typing the URL does."""
        return await self._rerun(page, query, {})

    async def rerun(self, values: dict[str, object] | None = None, triggers: tuple[str, ...] = ()) -> Page:
        """Interact with the current page: set widgets (by user key or id), click buttons."""
        states = {}
        for key, value in (values or {}).items():
            states[self.current.widgets.get(key, key)] = ("value", value)
        for key in triggers:
            if key not in self.current.widgets:  # say what the rater saw instead: the clue to a flake
                raise KeyError(f"no widget {key!r} on page {self.current.page!r}; it shows {self.current.texts}")
            states[self.current.widgets[key]] = ("trigger", True)
        return await self._rerun(self.current.page, self.current.query, states)

    async def submit_player(self, value: dict) -> Page:
        """The player component's value: what its submit button sends."""
        component_id, _ = self.current.components[0]
        return await self._rerun(self.current.page, self.current.query,
                                 {component_id: ("json", dict(value, submit_id=next(self._submits)))})

    async def replay_player(self) -> Page:
        """Send the last player submit again, byte for byte: a retry or a double click."""
        await self.ws.send(self._last_submit)
        return await self._read_run(self.current.page, self.current.query)

    async def _rerun(self, page: str, query: dict[str, str], states: dict[str, tuple[str, object]]) -> Page:
        msg = BackMsg()
        rerun = msg.rerun_script
        rerun.query_string = "&".join(f"{k}={v}" for k, v in query.items())
        if page in self.page_hashes:
            rerun.page_script_hash = self.page_hashes[page]
        rerun.page_name = page
        for widget_id, (kind, value) in states.items():
            state = rerun.widget_states.widgets.add()
            state.id = widget_id
            if kind == "trigger":
                state.trigger_value = True
            elif kind == "json":
                state.json_value = json.dumps(value)
            elif isinstance(value, bool):
                state.bool_value = value
            elif isinstance(value, str):
                state.string_value = value
            else:
                state.double_value = float(value)
        sent = msg.SerializeToString()
        if any(kind == "json" for kind, _ in states.values()):
            self._last_submit = sent
        await self.ws.send(sent)
        return await self._read_run(page, query)

    async def _read_run(self, page: str, query: dict[str, str]) -> Page:
        """Read forward messages until a script run finishes (following page switches)."""
        result = Page(page, dict(query))
        deadline = time.monotonic() + self.timeout
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), max(0.1, deadline - time.monotonic()))
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            kind = msg.WhichOneof("type")
            if kind == "ref_hash":
                raise RuntimeError("the server sent a cached-message reference; this client keeps no cache")
            if kind == "navigation":
                for app_page in msg.navigation.app_pages:
                    self.page_hashes[app_page.url_pathname] = app_page.page_script_hash
                    self.page_names[app_page.page_script_hash] = app_page.url_pathname
                if msg.navigation.page_script_hash in self.page_names:
                    result.page = self.page_names[msg.navigation.page_script_hash]
            elif kind == "page_info_changed":
                result.query = {k: v[-1] for k, v in parse_qs(msg.page_info_changed.query_string).items()}
            elif kind == "new_session":
                # A new script run (after st.switch_page, a run of another page): start afresh.
                result = Page(self.page_names.get(msg.new_session.page_script_hash, result.page), result.query)
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                self._collect(msg.delta.new_element, result)
            elif kind == "script_finished":
                if msg.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    continue  # st.rerun / st.switch_page: another run follows on this socket
                self.current = result
                return result

    @staticmethod
    def _collect(element, page: Page) -> None:
        kind = element.WhichOneof("type")
        body = getattr(element, kind)
        if kind == "component_instance":
            page.components.append((body.id, json.loads(body.json_args)))
        elif kind in ("alert", "markdown"):
            page.texts.append(body.body)
        elif kind == "exception":  # a page that raised: its error names the cause of a short page
            page.texts.append(f"{body.type}: {body.message}")
        widget_id = getattr(body, "id", "")
        if widget_id.startswith("$$ID-") and widget_id.count("-") >= 2:
            page.widgets[widget_id.split("-", 2)[2]] = widget_id
