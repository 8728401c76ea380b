"""The listening app's server: ``streamlit run``, telling visitors nothing of the server's files.

Streamlit (1.67) sends every visitor the absolute path of the app's script (``main_script_path``
in each session's first message), and no option turns that off; the browser only hashes it
into an anonymous app id, so a fixed name serves as well. It also answers any visitor who asks
for git information with the repository, branch and lists of files, when the app is installed
from a checkout. ``python -m earshot.listening_app.serve run APP [options]`` is ``streamlit run``
with both withheld; ``earshot listen serve`` runs it.
"""

from __future__ import annotations

import sys

#: What visitors are told the app's script is instead of its path.
SCRIPT_NAME = "listening-test"


def withhold_server_layout() -> None:
    """Patch Streamlit's sessions so that no message to a browser names the server's files.

    Raises:
        RuntimeError: this Streamlit no longer has the methods patched (a new version): the
            server is not started rather than started telling visitors its paths.
    """
    from streamlit.runtime.app_session import AppSession

    for name in ("_create_new_session_message", "_handle_git_information_request"):
        if not callable(getattr(AppSession, name, None)):
            raise RuntimeError(f"streamlit {_version()}: AppSession.{name} is gone; earshot's server cannot "
                               "withhold the app's path from visitors with this version")
    create = AppSession._create_new_session_message

    def new_session_message(self, *args, **kwargs):
        msg = create(self, *args, **kwargs)
        msg.new_session.main_script_path = SCRIPT_NAME
        return msg

    AppSession._create_new_session_message = new_session_message
    AppSession._handle_git_information_request = lambda self: None


def _version() -> str:
    import streamlit

    return streamlit.__version__


def main(argv: list[str]) -> None:
    from streamlit.web.cli import main as streamlit_main

    withhold_server_layout()
    streamlit_main(args=argv, prog_name="streamlit")


if __name__ == "__main__":
    main(sys.argv[1:])
