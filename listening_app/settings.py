"""The settings of a listening test: a validated schema, stored as JSON with the test.

A test is declared, not programmed (as webMUSHRA does it), but the rules it declares are
enforced on the server: the browser never decides whether a trial may be submitted.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

#: ITU-R BS.1534-3: at most 12 conditions (hidden reference and anchors included) per trial.
MAX_STIMULI_PER_TRIAL = 12
#: BS.1534-3 asks for stimuli of at most about 10-12 s: longer ones tire the memory.
MAX_STIMULUS_SECONDS = 12.0
#: The standard's anchors, for material that reaches 20 kHz.
STANDARD_LOW_ANCHOR_HZ = 3500.0
STANDARD_MID_ANCHOR_HZ = 7000.0
STANDARD_BANDWIDTH_HZ = 20000.0


class TestSettings(BaseModel):
    """What a test asks of its raters; every field has the strict MUSHRA default."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)
    __test__ = False  # not a pytest class, despite its name

    self_registration: bool = Field(
        False, title="Raters may register themselves",
        description="anyone who opens the server may join under a typed name; otherwise invitation links only")
    must_play_all: bool = Field(True, title="Every stimulus must be played", description="every stimulus must be played before a trial can be submitted")
    require_100: bool = Field(True, title="One stimulus per trial must be rated 100", description="at least one stimulus of a trial must be rated 100")
    resubmit: Literal["refuse", "overwrite"] = Field(
        "refuse", title="A second submit of a trial", description="a second submit of the same trial: refused, or it replaces the first")
    completion_code: str | None = Field(
        None, max_length=40, title="Completion code",
        description="one code shown to every rater on the last page (as a crowd platform issues it); none: a random code per rater")
    training: bool = Field(True, title="Training page", description="show a training page with every stimulus of one item, labelled")
    seconds: float = Field(8.0, gt=0, le=MAX_STIMULUS_SECONDS, title="Stimulus length (s)", description="stimulus length, seconds")
    order_seed: int = Field(0, title="Order seed", description="mixed into every rater's random order, so a test can be re-randomised")
    no_preference: bool = Field(
        True, title="'No preference' offered (A/B tests)",
        description="an A/B preference trial may be answered 'no preference'; otherwise the rater must choose")
    # Crowd sessions: a subset per rater, attention trials, the platform's participant id, a level check.
    items_per_rater: int | None = Field(
        None, ge=1, title="Items per rater",
        description="each rater rates this many of the items, a balanced subset (none: every item)")
    attention: int = Field(0, ge=0, title="Attention checks per rater",
                           description="trials with a known answer mixed into every rater's order")
    participant_param: str = Field(
        "PROLIFIC_PID", pattern=r"^[A-Za-z0-9_.\-]{1,64}$", title="Participant id URL parameter",
        description="the start page reads a crowd platform's participant id from this URL parameter")
    level_check: bool = Field(False, title="Level check page",
                              description="before the test the rater sets a comfortable level on the calibration "
                                          "signal and confirms they will keep it")

    def readable(self) -> list[tuple[str, object]]:
        """Each setting as (label, value) for people: a field's title (its name, spaced, when it has
        none) and its value, the choices of a ``Literal`` in words."""
        out = []
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            out.append((info.title or name.replace("_", " ").capitalize(), CHOICE_WORDS.get(name, {}).get(value, value)))
        return out


#: The choices of the ``Literal`` settings, as the admin page says them.
CHOICE_WORDS: dict[str, dict[str, str]] = {
    "resubmit": {"refuse": "refused", "overwrite": "replaces the first"},
    "completion_code": {None: "a random code per rater"},
    "items_per_rater": {None: "every item"},
}
