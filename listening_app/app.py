"""The Streamlit entry point: ``streamlit run listening_app/app.py`` (via ``earshot listen serve``).

Only navigation lives here; each page is a thin script in ``views/`` over plain modules, and
``flow.py`` decides which page a rater belongs on.
"""

from __future__ import annotations

import streamlit as st

from earshot.listening_app import flow

# Streamlit runs this file as a script; the pages import the installed ``earshot`` package.
# Page paths below are relative to this file, as st.Page expects.

st.set_page_config(page_title="Listening test", layout="centered")
# The rater's pages come from the declared flow (its first page is the default); admin stands apart.
pages = [st.Page(f"views/{page}.py", title=title, url_path=url_path, default=index == 0)
         for index, (page, (title, url_path)) in enumerate(flow.PAGES.items())]
pages.append(st.Page("views/admin.py", title="Admin", url_path="admin"))
st.navigation(pages, position="hidden").run()
