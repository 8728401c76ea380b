"""Completion page: thanks, and the completion code if the test has one."""

import streamlit as st

from earshot.listening_app.trial import next_trial
from earshot.listening_app.state import db_url
from earshot.listening_app.ui import go, require_rater

rater, test = require_rater()
item, done, total = next_trial(db_url(), rater, test)
if item is not None:
    go("trial", rater.token)
st.title("Thank you")
st.success(f"All {total} trials are submitted. You can close this page.")
if test.settings.completion_code:
    st.markdown("Your completion code:")
    st.code(test.settings.completion_code, language=None)
