"""One MUSHRA trial: the player with its sliders; a submit writes the whole trial at once.

The player's value (its submit) is read from session state before anything is drawn, so
a successful submit draws the next trial in the same script run rather than a second one:
under load that halves the work per submit.
"""

import time

import streamlit as st

from earshot.listening_app import flow, store
from earshot.listening_app.player import player
from earshot.listening_app.state import app_state, db_url
from earshot.listening_app.trial import check_submission, make_view
from earshot.listening_app.ui import enter, follow

position = enter("trial")
rater, test = position.rater, position.test
state = app_state()
if test.status != "open":
    st.warning("This test is closed: nothing more can be submitted.")
    st.stop()
item = position.next_item
view = state.views.get(item.id) if item is not None else None
value = st.session_state.get(f"player-{view.nonce}") if view is not None else None
if isinstance(value, dict) and (view.nonce, value.get("submit_id")) not in state.handled:
    state.handled.add((view.nonce, value.get("submit_id")))
    checked = check_submission(view, value, test.settings)
    state.last_error = checked.problems
    if not checked.problems:
        try:
            store.submit_trial(db_url(), rater.token, item.id, checked.ratings, time.time() - view.shown_at)
        except store.StoreError as error:
            state.last_error = [str(error)]
        else:
            del state.views[item.id]
            position = flow.progressed(db_url(), position)
            follow("trial", position)
            item = position.next_item

st.progress(position.submitted / position.total, text=f"Trial {position.submitted + 1} of {position.total}")
st.markdown("Compare each version with the **Reference** and rate it: *Excellent* means you hear no difference.")
if item.id not in state.views:
    state.views[item.id] = make_view(db_url(), rater, test, item, time.time())
view = state.views[item.id]
player(view.component_args, key=f"player-{view.nonce}")
for problem in state.last_error:
    st.error(problem)
