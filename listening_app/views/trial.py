"""One trial of any test type (MUSHRA's sliders, ABX's A, B and X…); a submit writes the whole trial at once.

The player's value (its submit) is read from session state before anything is drawn, so
a successful submit draws the next trial in the same script run rather than a second one:
under load that halves the work per submit. A submit may come from a trial this session
shows no longer (a second window already submitted it): the rater is told, never left guessing.
"""

import time

import streamlit as st

from earshot.listening_app import flow, store, testtypes
from earshot.listening_app.player import player
from earshot.listening_app.state import app_state, db_url
from earshot.listening_app.trial import trial_number
from earshot.listening_app.ui import follow, token_from_url


def checked_answer(view, value, test):
    """(what to store, problems) for a submit, by the test's type."""
    return testtypes.get(test.type).check_submission(view, value, test.settings)


def save(test, token, view, answer) -> None:
    testtypes.get(test.type).save(db_url(), token, view.item_id, answer, time.time() - view.shown_at)


def remember_device(rater, value) -> None:
    """What the browser said about itself with the rater's first trial (unless a level check recorded it)."""
    device = value.get("device")
    if isinstance(device, dict):
        try:
            store.record_device(db_url(), rater.id, device.get("sample_rate"), device.get("user_agent"))
        except store.StoreError:  # an implausible report is left unrecorded, never held against the answer
            pass


def received(state):
    """(view, value) of a submit not handled yet, from any trial this session has shown; else None."""
    for key, view in state.views.items():
        value = st.session_state.get(f"player-{view.nonce}")
        if key > 0 and isinstance(value, dict) and (view.nonce, value.get("submit_id")) not in state.handled:
            return view, value
    return None


position = flow.locate(db_url(), token_from_url())
state = app_state()
arrived = received(state) if position.consented and position.test.status == "open" else None
if arrived is not None:
    view, value = arrived
    state.handled.add((view.nonce, value.get("submit_id")))
    answer, problems = checked_answer(view, value, position.test)
    state.last_error = problems
    here = position.next_item is not None and view.item_id == position.next_item.id
    if not here:  # submitted from another window since this one showed it
        number = trial_number(db_url(), position.rater, position.test, view.item_id)
        del state.views[view.item_id]
        state.last_error = []
        replace = position.test.settings.resubmit == "overwrite" and not problems
        if replace:
            try:
                save(position.test, position.rater.token, view, answer)
            except store.StoreError:  # closed meanwhile: then nothing was replaced
                replace = False
        state.notice = (f"Trial {number} had been submitted from another window; your answers here replaced those."
                        if replace else
                        f"Trial {number} was already submitted from another window; your answers here were not "
                        "saved (the ones from the other window are kept).")
    elif not problems:
        try:
            save(position.test, position.rater.token, view, answer)
        except store.StoreError as error:
            state.last_error = [str(error)]
        else:
            del state.views[view.item_id]
            position = flow.progressed(db_url(), position)
            if position.submitted == 1:
                remember_device(position.rater, value)
follow("trial", position)
rater, test, item = position.rater, position.test, position.next_item
if test.status != "open":
    st.warning("This test is closed: nothing more can be submitted.")
    st.stop()

if state.notice:
    st.warning(f"{state.notice} You are now on trial {position.submitted + 1} of {position.total}.")
    state.notice = ""
st.progress(position.submitted / position.total, text=f"Trial {position.submitted + 1} of {position.total}")
kind = testtypes.get(test.type)
st.markdown(kind.instructions)
if item.id not in state.views:
    state.views[item.id] = kind.make_view(db_url(), rater, test, item, time.time())
view = state.views[item.id]
player(view.component_args, key=f"player-{view.nonce}")
for problem in state.last_error:
    st.error(problem)
