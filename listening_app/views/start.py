"""Start page: instructions, the scale, who you are, consent, a calibration tone."""

import streamlit as st

from earshot.listening_app import flow, store, testtypes
from earshot.listening_app.audio import calibration_tone
from earshot.listening_app.state import db_url
from earshot.listening_app.ui import SCALE, go, token_from_url

st.title("Listening test")
intro = st.empty()  # MUSHRA's account of the task, until the test is known to be of a type with its own
with intro.container():
    st.markdown(
        "You will hear short excerpts of audio processed in several ways. Each page (a *trial*) has an "
        "open **Reference** and several versions labelled **A, B, C…**; one of them is the reference "
        "itself, hidden. Rate how close each version sounds to the reference on a 0–100 scale: rate "
        "the hidden reference 100. Play every version; you can switch between them while playing (they "
        "stay in sync), and drag over the waveform to loop a passage. Use headphones in a quiet room.")
    st.table({"Rating": [s for s, _ in SCALE], "Range": [r for _, r in SCALE]})

token = token_from_url()
position = flow.locate(db_url(), token)
if position.rater is None and token:
    st.error("This invitation link is not valid. Check that you copied all of it, or ask for a new one.")
    st.stop()
participant = None  # a crowd platform's id, from the URL parameter the test names
if position.rater is not None:
    rater, test = position.rater, position.test
    participant = store.clean_participant_id(st.query_params.get(test.settings.participant_param))
    st.info(f"You are taking part as **{rater.name}**.")
else:
    wanted = st.query_params.get("test")
    open_tests = [t for t in store.list_tests(db_url()) if t.status == "open"]
    candidates = [t for t in open_tests if t.name == wanted] if wanted else open_tests
    if len(candidates) != 1 or not candidates[0].settings.self_registration:
        st.warning("This test is by invitation: open it with the link from your invitation.")
        st.stop()
    test = candidates[0]
    participant = store.clean_participant_id(st.query_params.get(test.settings.participant_param))
    if participant is not None:
        back = store.rater_by_participant(db_url(), test.id, participant)
        if back is not None:  # the platform's link again: resume where they left off
            go(flow.current(flow.locate(db_url(), back.token)).page, back.token)
        st.info(f"You are taking part as participant **{participant}**.")
    else:
        st.text_input("Your name or participant id", key="start_name", max_chars=200)

if testtypes.get(test.type).introduction:
    intro.markdown(testtypes.get(test.type).introduction)
if test.status != "open":
    st.warning("This test is closed.")
    st.stop()

if not test.settings.level_check:  # with it, the next page sets the level and asks to keep it
    with st.expander("Set a comfortable level (calibration tone)"):
        st.caption("A steady 1 kHz tone: set your volume so it is clearly audible but comfortable, then keep it.")
        st.audio(calibration_tone(test.sample_rate), format="audio/wav")

if position.rater is not None:
    consent = "I agree to take part; my ratings are stored under this invitation."
elif participant is not None:
    consent = "I agree to take part; my ratings are stored with my participant id."
else:
    consent = "I agree to take part; my ratings are stored with the name or id I give."
st.checkbox(consent, key="start_consent")
if st.button("Start", key="start_go", type="primary"):
    if not st.session_state.start_consent:
        st.error("Tick the consent box to start.")
        st.stop()
    if position.rater is None:
        try:
            rater = store.add_rater(db_url(), test.name, participant or st.session_state.get("start_name") or "",
                                    self_registered=True, participant_id=participant)
        except store.StoreError as error:
            st.error(str(error))
            st.stop()
    else:
        store.record_participant(db_url(), rater.id, participant)
    store.record_consent(db_url(), rater.id)
    go(flow.after("calibration", flow.Position(rater, test)).page, rater.token)
