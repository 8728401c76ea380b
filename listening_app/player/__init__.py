"""The MUSHRA player: a static Streamlit component (``index.html``), no build step.

This folder is served to browsers as it is: it must only ever hold code.
"""

from __future__ import annotations

from pathlib import Path

FOLDER = Path(__file__).parent

_component = None


def player(args: dict, key: str):
    """Render the player with a :class:`listening_app.trial.TrialView`'s args; its value is the submit."""
    global _component
    import streamlit.components.v1 as components

    if _component is None:
        _component = components.declare_component("earshot_player", path=str(FOLDER))
    return _component(**args, key=key, default=None)
