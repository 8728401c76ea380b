"""Small Streamlit helpers the pages share: who the rater is, from the token in the URL."""

from __future__ import annotations

import streamlit as st

from earshot.listening_app import store
from earshot.listening_app.state import db_url

SCALE = [("Excellent", "80–100"), ("Good", "60–80"), ("Fair", "40–60"), ("Poor", "20–40"), ("Bad", "0–20")]


def token_from_url() -> str | None:
    token = st.query_params.get("token")
    return token if isinstance(token, str) and token else None


def current_rater() -> tuple[store.RaterInfo, store.TestInfo] | None:
    """The rater of the token in the URL and their test, or None (unknown or no token)."""
    rater = store.rater_by_token(db_url(), token_from_url())
    if rater is None:
        return None
    test = next(t for t in store.list_tests(db_url()) if t.id == rater.test_id)
    return rater, test


def require_rater() -> tuple[store.RaterInfo, store.TestInfo]:
    """The rater, or a message and a way back to the start page (the page stops here)."""
    found = current_rater()
    if found is None or not found[0].consented:
        st.warning("Start the test from its start page (use your invitation link).")
        if st.button("Go to the start page", key="to_start"):
            st.switch_page("views/start.py", query_params=st.query_params.to_dict())
        st.stop()
    return found


def go(page: str, token: str) -> None:
    """Switch page keeping the token in the URL: a reload there resumes from the database."""
    st.switch_page(f"views/{page}.py", query_params={"token": token})
