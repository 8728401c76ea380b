"""Session state, initialised in one typed place.

Only what may be lost is kept here: the blind views of the current session (their keys
are per session on purpose) and which submits were already handled. Who the rater is
and how far they got always come from the database, via the token in the URL
(``flow.locate``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import streamlit as st

from earshot.listening_app.trial import TrialView

STATE_KEY = "earshot"
ADMIN_PASSWORD_ENV = "EARSHOT_ADMIN_PASSWORD"


@dataclass
class AppState:
    views: dict[int, TrialView] = field(default_factory=dict)  # item id -> this session's view
    handled: set[tuple[str, int]] = field(default_factory=set)  # (nonce, submit id) already processed
    last_error: list[str] = field(default_factory=list)
    notice: str = ""  # said once on the next page drawn (a submit from a window that was behind)
    admin: bool = False
    level_nonce: str = ""  # the level-check page's player, made once per session


def app_state() -> AppState:
    if STATE_KEY not in st.session_state:
        st.session_state[STATE_KEY] = AppState()
    return st.session_state[STATE_KEY]


def db_url() -> str:
    """The database the server was started with (``earshot listen serve`` sets the env)."""
    from earshot.listening_app.store import default_db_url

    return default_db_url()


def admin_password() -> str | None:
    """From ``$EARSHOT_ADMIN_PASSWORD`` or ``st.secrets``; None turns the admin page off."""
    if os.environ.get(ADMIN_PASSWORD_ENV):
        return os.environ[ADMIN_PASSWORD_ENV]
    try:
        return st.secrets.get("earshot_admin_password") or st.secrets.get(ADMIN_PASSWORD_ENV)
    except Exception:  # no secrets.toml at all: Streamlit raises rather than returning empty
        return None
