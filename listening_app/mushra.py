"""MUSHRA (ITU-R BS.1534-3) as a test type: every condition of an excerpt, the hidden reference and two
anchors, each rated 0–100 against the labelled reference. The machinery is in ``trial.py``, which
every type shares; this module says what makes MUSHRA MUSHRA."""

from __future__ import annotations

from earshot.listening_app import store
from earshot.listening_app.rules import check_items
from earshot.listening_app.settings import MAX_STIMULI_PER_TRIAL
from earshot.listening_app.trial import TestType, check_submission, make_view


def _items(excerpt: dict, stimuli: list[store.NewStimulus], conditions: list[str]) -> list[store.NewItem]:
    return [store.NewItem(excerpt["item"], excerpt["category"], stimuli)]


def attention_items(excerpt: dict, stimuli: list[store.NewStimulus], conditions: list[str]) -> list[store.NewItem]:
    """An attention check of an excerpt: the hidden reference and the low anchor rated against the
    reference (a rater who listens rates one 100 and the other far lower); the same for every type
    that compares two stimuli."""
    by_condition = {s.condition: s for s in stimuli}
    return [store.NewItem(f"{excerpt['item']}: attention", excerpt["category"],
                          [by_condition[store.REFERENCE], by_condition[store.ANCHOR_LOW]],
                          excerpt=excerpt["item"], attention=True)]


def _check(view, value, settings):
    checked = check_submission(view, value, settings)
    return checked.ratings, checked.problems


def _conditions(conditions: list[str]) -> str | None:
    per_trial = len(conditions) + 3
    if per_trial <= MAX_STIMULI_PER_TRIAL:
        return None
    return (f"{len(conditions)} conditions + reference + 2 anchors = {per_trial} stimuli per trial; BS.1534 allows at "
            f"most {MAX_STIMULI_PER_TRIAL} (choose at most {MAX_STIMULI_PER_TRIAL - 3} with --conditions)")


TYPE = TestType(
    name="mushra", title="MUSHRA",
    summary="every condition rated 0-100 against the reference, with a hidden reference and two anchors (BS.1534)",
    instructions="Compare each version with the **Reference** and rate it: *Excellent* means you hear no difference.",
    training_text=("Listen to every version of this excerpt. Here they are **labelled**: the reference, the two "
                   "anchors (deliberately muffled versions) and the systems under test. In the test itself, the "
                   "same kinds of versions appear hidden behind letters. Nothing here is recorded."),
    make_items=_items,
    check_items=check_items,
    make_view=make_view,
    check_submission=_check,
    save=lambda db_url, token, item_id, answer, seconds: store.submit_trial(db_url, token, item_id, answer, seconds),
    check_conditions=_conditions,
    describe=lambda conditions, items, trials: (f"{items} trials, conditions {', '.join(conditions)} + hidden "
                                                "reference + two anchors"),
    make_attention=attention_items,
)
