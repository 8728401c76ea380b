"""Every kind of listening test the app serves, by name: a new type is one module beside ``abx.py``
(its ``TYPE``, a :class:`listening_app.trial.TestType`) and one line here."""

from __future__ import annotations

from earshot.listening_app import ab, abx, mos, mushra, ranking
from earshot.listening_app.trial import TestType

TYPES: dict[str, TestType] = {t.name: t for t in (mushra.TYPE, abx.TYPE, ab.TYPE, ranking.TYPE, mos.TYPE)}


def get(name: str) -> TestType:
    """The type called ``name``; a ValueError that lists the others for an unknown one."""
    if name not in TYPES:
        raise ValueError(f"--type {name!r}: use one of {', '.join(TYPES)}")
    return TYPES[name]
