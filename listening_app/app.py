"""The Streamlit entry point: ``streamlit run listening_app/app.py`` (via ``earshot listen serve``).

Only navigation lives here; each page is a thin script in ``views/`` over plain modules.
"""

from __future__ import annotations

import streamlit as st

# Streamlit runs this file as a script; the pages import the installed ``earshot`` package.
# Page paths below are relative to this file, as st.Page expects.

st.set_page_config(page_title="Listening test", layout="centered")
pages = [
    st.Page("views/start.py", title="Start", url_path="start", default=True),
    st.Page("views/training.py", title="Training", url_path="training"),
    st.Page("views/trial.py", title="Test", url_path="test"),
    st.Page("views/done.py", title="Finished", url_path="finished"),
    st.Page("views/admin.py", title="Admin", url_path="admin"),
]
st.navigation(pages, position="hidden").run()
