"""The MUSHRA player: a static Streamlit component (``player_frontend/index.html``), no build step.

The frontend folder is served to browsers as it is: it holds that one HTML file and
nothing else (no stimuli, no Python), which a test checks.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).with_name("player_frontend")

_component = None


def player(args: dict, key: str):
    """Render the player with a :class:`listening_app.trial.TrialView`'s args; its value is the submit."""
    global _component
    import streamlit.components.v1 as components

    if _component is None:
        _component = components.declare_component("earshot_player", path=str(FOLDER))
    return _component(**args, key=key, default=None)
