"""Admin page: tests, raters and progress, open/close, invitations, downloads, live summary.

Off unless a password is set ($EARSHOT_ADMIN_PASSWORD or st.secrets): it shows condition
names, which raters must never see.
"""

import io
import math

import streamlit as st

from earshot.listening_app import store, testtypes
from earshot.listening_app.links import app_address, invitation_link
from earshot.listening_app.login import GUARD
from earshot.listening_app.state import admin_password, app_state, db_url
from earshot.listening_app.summary import live_view, system_order
from earshot.results import present

ADMIN_PATH = "admin"  # this page's url path (app.py)

st.title("Listening tests: admin")
password = admin_password()
state = app_state()
if password is None:
    st.info("The admin page is off: set EARSHOT_ADMIN_PASSWORD (or earshot_admin_password in "
            ".streamlit/secrets.toml) and restart the server.")
    st.stop()
if not state.admin:
    address = st.context.ip_address  # the connection's own address, not a header; None when local
    client = address if isinstance(address, str) and address else "localhost"
    typed = st.text_input("Password", type="password", key="admin_password")
    if st.button("Log in", key="admin_login"):
        attempt = GUARD.attempt(client, typed, password)
        if attempt.outcome == "ok":
            state.admin = True
            st.rerun()
        if attempt.outcome == "wrong":
            st.error(f"Wrong password. The next attempt is accepted in {math.ceil(attempt.wait_s)} s "
                     f"(the wait doubles with each wrong password).")
        else:
            st.error(f"Too many wrong passwords from this address ({attempt.failures} in a row): "
                     f"try again in {math.ceil(attempt.wait_s)} s. This attempt was not checked.")
    st.stop()

all_tests = store.list_tests(db_url())
if not all_tests:
    st.info("No tests yet: make one with `earshot listen prepare RUN`.")
    st.stop()
st.dataframe(present.tests_table([{"name": t.name, "type": t.type, "title": testtypes.get(t.type).title,
                                    "status": t.status, "run_id": t.run_id,
                                    "loudness": t.loudness,
                                    "anchor_low_hz": t.anchor_low_hz, "anchor_mid_hz": t.anchor_mid_hz}
                                   for t in all_tests]).frame(), hide_index=True, key="admin_tests")
name = st.selectbox("Test", [t.name for t in all_tests], key="admin_test")
test = store.get_test(db_url(), name)
with st.expander("Settings of this test"):
    st.dataframe(present.settings_table(test.settings.readable()).frame(), hide_index=True, key="admin_settings")

col_open, col_close = st.columns(2)
if col_open.button("Open", key="admin_open", disabled=test.status == "open"):
    try:
        store.set_status(db_url(), name, "open")
        st.rerun()
    except store.StoreError as error:
        st.error(str(error))
if col_close.button("Close", key="admin_close", disabled=test.status == "closed"):
    store.set_status(db_url(), name, "closed")
    st.rerun()

st.toggle("Self-registration: anyone who opens this server's start page may join under a typed name "
          "(off: invitation links only)", value=test.settings.self_registration, key=f"admin_self_registration-{name}",
          on_change=lambda: store.update_settings(db_url(), name, self_registration=st.session_state[
              f"admin_self_registration-{name}"]))

st.subheader("Raters")
progress = store.progress_frame(db_url(), name)
progress.insert(1, "joined by", progress.pop("self_registered").map({True: "self-registered", False: "invitation"}))
st.dataframe(present.raters_table(progress).frame(), hide_index=True, key="admin_progress")

st.subheader("Invitations")
# The address this page was opened at is the one raters can reach too (host, port, path prefix).
base = st.text_input("Server address", value=app_address(st.context.url, ADMIN_PATH), key="admin_base")
label = st.text_input("Rater label (optional)", key="admin_label")
if st.button("New invitation link", key="admin_invite"):
    rater = store.add_rater(db_url(), name, label or None)
    st.code(invitation_link(base, rater.token), language=None)

st.subheader("Ratings")
export = store.export_frame(db_url(), name)
st.caption(f"{len(export)} {'answers' if test.type in ('abx', 'ab') else 'ratings'} from "
           f"{export['rater'].nunique() if len(export) else 0} raters")
st.download_button("Download CSV", export.to_csv(index=False), file_name=f"{name}.csv", mime="text/csv",
                   key="admin_csv")
buffer = io.BytesIO()
export.to_parquet(buffer, index=False)
st.download_button("Download parquet", buffer.getvalue(), file_name=f"{name}.parquet",
                   mime="application/octet-stream", key="admin_parquet")
view = live_view(export, name, system_order(test.run_dir))
st.subheader(view.heading)
for note in view.notes:
    st.caption(note)
if view.too_few:
    st.caption(view.too_few)
for number, table in enumerate(view.summary):  # every table: A/B has four with its attention checks
    st.caption(table.caption)
    st.dataframe(table.frame(), hide_index=True, key=f"admin_summary_{number}")
if test.type == "mushra":  # ABX has no reference to screen raters by
    st.subheader("Post-screening (ITU-R BS.1534-3)")
if view.raters is not None:
    st.caption(view.screening)
    st.dataframe(view.raters.frame(), hide_index=True, key="admin_screening")
