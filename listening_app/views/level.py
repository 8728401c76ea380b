"""Level check (a test with ``level_check``): the rater sets a comfortable level on the calibration
signal and confirms they will keep it; the player sends the browser's output sample rate and user
agent with the confirmation, recorded once with the rater."""

import base64
import secrets

import streamlit as st

from earshot.listening_app import flow, store
from earshot.listening_app.audio import calibration_tone
from earshot.listening_app.player import player
from earshot.listening_app.state import app_state, db_url
from earshot.listening_app.ui import enter, go

position = enter("level")
rater, test = position.rater, position.test
state = app_state()
if not state.level_nonce:
    state.level_nonce = secrets.token_hex(8)
key = f"player-{state.level_nonce}"
value = st.session_state.get(key)
if isinstance(value, dict) and value.get("nonce") == state.level_nonce and value.get("confirmed") is True:
    device = value.get("device") if isinstance(value.get("device"), dict) else {}
    try:
        store.record_level(db_url(), rater.id, device.get("sample_rate"), device.get("user_agent"))
    except store.StoreError as error:
        st.error(f"Your browser did not report its audio settings ({error}): reload the page and try again.")
    else:
        state.level_nonce = ""  # handled: a visit back draws a fresh player rather than confirming again
        go(flow.after("level", position).page, rater.token)

st.title("Set your listening level")
st.markdown(
    "Put on your headphones and play the calibration signal. Set your computer's volume so that it is "
    "**clearly audible and comfortable**, then confirm. **Keep this volume for the whole test**: do not change it "
    "between trials.")
if rater.level_set:
    st.info("You have set your level already; you can play the signal again to check it.")
args = {"nonce": state.level_nonce, "mode": "level",
        "rules": {"unplayed": "Play the calibration signal and set your volume first."}, "reference": None,
        "stimuli": [{"key": secrets.token_hex(6), "label": "Play the calibration signal",
                     "audio": base64.b64encode(calibration_tone(test.sample_rate)).decode()}]}
player(args, key=key)
if rater.level_set and st.button("Continue", key="level_done", type="primary"):
    go(flow.after("level", position).page, rater.token)
