"""Completion page: thanks, and the completion code if the test has one."""

import streamlit as st

from earshot.listening_app.state import app_state
from earshot.listening_app.ui import enter

position = enter("done")
test = position.test
st.title("Thank you")
state = app_state()
if state.notice:  # a last submit from a window that was behind
    st.warning(state.notice)
    state.notice = ""
st.success(f"All {position.total} trials are submitted. You can close this page.")
code = position.rater.completion_code or test.settings.completion_code  # raters from before codes were theirs
if code:
    st.markdown("Your completion code (if you came from a study platform, enter it there):")
    st.code(code, language=None)
