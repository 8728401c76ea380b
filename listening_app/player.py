"""The MUSHRA player: a static Streamlit component (``player_frontend/index.html``), no build step.

The frontend folder is served to browsers as it is: it holds that one HTML file and
nothing else (no stimuli, no Python), which a test checks.
"""

from __future__ import annotations

import threading
from pathlib import Path

FOLDER = Path(__file__).with_name("player_frontend")

_component = None
# declare_component finds its caller's module with inspect.getmodule, which is not thread
# safe: raters' first script runs at the same moment made it fail ("module is None").
_declare_lock = threading.Lock()


def player(args: dict, key: str):
    """Render the player with a :class:`listening_app.trial.TrialView`'s args; its value is the submit."""
    global _component
    import streamlit.components.v1 as components

    with _declare_lock:
        if _component is None:
            _component = components.declare_component("earshot_player", path=str(FOLDER))
    return _component(**args, key=key, default=None)
