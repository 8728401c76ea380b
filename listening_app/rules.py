"""ITU-R BS.1534-3 rules (each other test type keeps its own in its module), checked on the server before a
test is written and opened.

The rules work on plain data (per item: the kinds and lengths of its stimuli), so test
preparation checks them before anything is written and ``set_status(..., "open")``
checks them again on what the database holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from earshot.listening_app.settings import MAX_STIMULI_PER_TRIAL, MAX_STIMULUS_SECONDS


@dataclass(frozen=True)
class ItemPlan:
    """What the rules need to know about one trial."""

    name: str
    conditions: list[str]
    kinds: list[str]
    samples: list[int]


def timing_problems(plan: ItemPlan, sample_rate: int) -> list[str]:
    """The rules every type's trial keeps: one length for all its stimuli (switching stays in sync), not too long."""
    problems = []
    if len(set(plan.samples)) > 1:
        problems.append(f"{plan.name}: stimuli differ in length, so switching would not stay in sync")
    if plan.samples and max(plan.samples) / sample_rate > MAX_STIMULUS_SECONDS + 1e-9:
        problems.append(f"{plan.name}: {max(plan.samples) / sample_rate:.1f} s, longer than "
                        f"{MAX_STIMULUS_SECONDS:.0f} s")
    return problems


def check_items(plans: list[ItemPlan], sample_rate: int, anchor_low_hz: float, anchor_mid_hz: float) -> list[str]:
    """Every BS.1534 rule the plan breaks, one line each; empty when it may open."""
    from earshot.listening_app.store import ANCHOR_LOW, ANCHOR_MID, REFERENCE

    problems = []
    if not plans:
        problems.append("the test has no items")
    if not 0 < anchor_low_hz < anchor_mid_hz < sample_rate / 2:
        problems.append(f"anchor cut-offs {anchor_low_hz:.1f} Hz and {anchor_mid_hz:.1f} Hz must rise and lie "
                        f"below Nyquist ({sample_rate / 2:.1f} Hz)")
    for plan in plans:
        if len(plan.kinds) > MAX_STIMULI_PER_TRIAL:
            problems.append(f"{plan.name}: {len(plan.kinds)} stimuli, BS.1534 allows at most {MAX_STIMULI_PER_TRIAL}")
        for needed in (REFERENCE, ANCHOR_LOW, ANCHOR_MID):
            if plan.conditions.count(needed) != 1:
                problems.append(f"{plan.name}: needs exactly one {needed}")
        if "system" not in plan.kinds:
            problems.append(f"{plan.name}: no system under test")
        problems.extend(timing_problems(plan, sample_rate))
    return problems


def check_test(db_url: str | None, name: str) -> list[str]:
    """The rules of the stored test's type, checked on its trials (the training item is never one)."""
    from earshot.listening_app import store, testtypes

    info = store.get_test(db_url, name)
    plans = []
    for item in store.test_items(db_url, info.id):
        if item.training or item.attention:  # an attention check is built to its own rule (TestType.make_attention)
            continue
        found = store.item_stimuli(db_url, item.id)
        plans.append(ItemPlan(item.name, [s.condition for s in found], [s.kind for s in found],
                              [s.samples for s in found]))
    return testtypes.get(info.type).check_items(plans, info.sample_rate, info.anchor_low_hz, info.anchor_mid_hz)
