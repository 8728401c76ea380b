"""Training page: every stimulus of the test's training item (no trial plays it), labelled, so raters
learn the range first."""

import time

import streamlit as st

from earshot.listening_app import flow, store, testtypes
from earshot.listening_app.player import player
from earshot.listening_app.state import app_state, db_url
from earshot.listening_app.trial import make_view
from earshot.listening_app.ui import enter, go

position = enter("training")
rater, test = position.rater, position.test
state = app_state()
st.title("Training")
kind = testtypes.get(test.type)
st.markdown(kind.training_text)
# The test's own training item, which no trial plays: a trial's excerpt heard here labelled would
# name its letters.
item = next(i for i in store.test_items(db_url(), test.id) if i.id == test.training_item_id)
key = -item.id  # training views are kept apart from trial views
if key not in state.views:
    state.views[key] = make_view(db_url(), rater, test, item, time.time(), training=True,
                                 systems_only=kind.training_systems_only)
player(state.views[key].component_args, key=f"player-{state.views[key].nonce}")
if st.button("Continue to the test", key="training_done", type="primary"):
    go(flow.after("training", position).page, rater.token)
