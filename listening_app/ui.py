"""Small Streamlit helpers the pages share: who the rater is (the token in the URL), where they go."""

from __future__ import annotations

import streamlit as st

from earshot.listening_app import flow
from earshot.listening_app.state import db_url

SCALE = [("Excellent", "80–100"), ("Good", "60–80"), ("Fair", "40–60"), ("Poor", "20–40"), ("Bad", "0–20")]


def token_from_url() -> str | None:
    token = st.query_params.get("token")
    return token if isinstance(token, str) and token else None


def enter(page: str) -> flow.Position:
    """The rater's position once the flow lets them onto ``page``; otherwise the page stops here.

    A rater who belongs elsewhere is switched there; one who has not started (no valid
    token, or no consent yet) gets a message and a way back to the start page.
    """
    position = flow.locate(db_url(), token_from_url())
    follow(page, position)
    return position


def follow(page: str, position: flow.Position) -> None:
    """Stay on ``page`` if the flow says the rater belongs there; otherwise the page stops here."""
    target = flow.route(page, position)
    if target == flow.STEPS[0].page:
        st.warning("Start the test from its start page (use your invitation link).")
        if st.button("Go to the start page", key="to_start"):
            st.switch_page("views/start.py", query_params=st.query_params.to_dict())
        st.stop()
    if target is not None:
        go(target, position.rater.token)


def go(page: str, token: str) -> None:
    """Switch page keeping the token in the URL: a reload there resumes from the database."""
    st.switch_page(f"views/{page}.py", query_params={"token": token})
