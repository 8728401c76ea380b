"""A rater's way through a test, declared once: start → consent → calibration → (level check) → training →
trials → done.

Each step names the page that shows it and says, from what the database holds about the
rater, whether they are past it; session state never decides it. The pages ask
:func:`route` whether a rater belongs on them and :func:`after` where a button leads.
Nothing here imports Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from earshot.listening_app import store
from earshot.listening_app.trial import next_trial


@dataclass(frozen=True)
class Position:
    """Where a rater stands, as the database has it; ``rater`` is None for an unknown or missing token."""

    rater: store.RaterInfo | None
    test: store.TestInfo | None
    next_item: store.ItemInfo | None = None
    submitted: int = 0
    total: int = 0

    @property
    def consented(self) -> bool:
        return self.rater is not None and self.rater.consented


@dataclass(frozen=True)
class Step:
    """One step: the page (``views/<page>.py``) that shows it and when a rater is past it."""

    name: str
    page: str
    passed: Callable[[Position], bool]
    applies: Callable[[Position], bool] = lambda position: True
    revisit: bool = False  # a rater past it may open its page again (not a trial: each is submitted once)


STEPS: tuple[Step, ...] = (
    Step("start", "start", passed=lambda p: p.rater is not None, revisit=True),
    Step("consent", "start", passed=lambda p: p.consented, revisit=True),
    # The tone is offered above the consent box; the Start button confirms both.
    Step("calibration", "start", passed=lambda p: p.consented, revisit=True),
    # A crowd rater sets their level on the calibration signal and confirms they will keep it; the
    # player reports the browser's output sample rate and user agent with the confirmation.
    Step("level", "level", passed=lambda p: p.rater is not None and p.rater.level_set, revisit=True,
         applies=lambda p: p.test is not None and p.test.settings.level_check),
    # Practice, never recorded: a rater who may rate is past it, so resuming never sends them back.
    # It plays the test's training item; a test stored without one (made before there was one) has none.
    Step("training", "training", passed=lambda p: p.consented, revisit=True,
         applies=lambda p: p.test is not None and p.test.settings.training and p.test.training_item_id is not None),
    Step("trials", "trial", passed=lambda p: p.consented and p.total > 0 and p.next_item is None),
    Step("done", "done", passed=lambda p: False),
)

#: Each rater page in the flow's order: (title, url path) for st.Page.
PAGES: dict[str, tuple[str, str]] = {
    "start": ("Start", "start"),
    "level": ("Level check", "level"),
    "training": ("Training", "training"),
    "trial": ("Test", "test"),
    "done": ("Finished", "finished"),
}


def locate(db_url: str | None, token: str | None) -> Position:
    """The rater of ``token`` and how far they got; an empty Position for an unknown token."""
    rater = store.rater_by_token(db_url, token)
    if rater is None:
        return Position(None, None)
    test = next(t for t in store.list_tests(db_url) if t.id == rater.test_id)
    return progressed(db_url, Position(rater, test))


def progressed(db_url: str | None, position: Position) -> Position:
    """``position`` with its trials read again from the database (after a submit)."""
    item, submitted, total = next_trial(db_url, position.rater, position.test)
    return replace(position, next_item=item, submitted=submitted, total=total)


def step(name: str) -> Step:
    """The step called ``name``; raises KeyError for a name the flow does not declare."""
    for declared in STEPS:
        if declared.name == name:
            return declared
    raise KeyError(name)


def current(position: Position) -> Step:
    """The first step that applies to this rater and that they are not past."""
    return next(s for s in STEPS if s.applies(position) and not s.passed(position))


def after(name: str, position: Position) -> Step:
    """The step a rater moves on to from step ``name``: the next one that applies to their test.

    Raises ValueError after the last step.
    """
    index = STEPS.index(step(name))
    following = next((s for s in STEPS[index + 1:] if s.applies(position)), None)
    if following is None:
        raise ValueError(f"no step follows {name!r}")
    return following


def route(page: str, position: Position) -> str | None:
    """The page a rater who opened ``page`` belongs on instead, or None when they may stay.

    A rater goes back to the first step they are not past when it comes before the page's
    steps, and forward to it when they are past every step of a page that records something.
    """
    here = STEPS.index(current(position))
    shown = [i for i, s in enumerate(STEPS) if s.page == page and s.applies(position)]
    if not shown or here < shown[0] or (here > shown[-1] and not STEPS[shown[-1]].revisit):
        return STEPS[here].page
    return None
