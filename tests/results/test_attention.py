"""Attention checks in the analysis: each type's rule, MUSHRA's screening, ABX with and without flagged raters."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from earshot.results import attention, present
from earshot.results.abx import attention_passed as abx_passed
from earshot.results.analyses import analyze_test
from earshot.results.listening import analyze_ratings, attention_passed, read_long_csv
from tests.results.test_abx import _answers


def _check(reference: float, anchor: float, rater: str = "r", item: str = "e1") -> pd.DataFrame:
    return pd.DataFrame([{"rater": rater, "item": item, "condition": "reference", "score": reference,
                          "type": "mushra", "attention": True},
                         {"rater": rater, "item": item, "condition": "anchor-low", "score": anchor,
                          "type": "mushra", "attention": True}])


@pytest.mark.parametrize("reference, anchor, passed", [
    (95, 65, True),  # 65 = 95 - 30: exactly the gap
    (95, 66, False),  # the anchor too close to the reference
    (90, 0, True),  # the threshold itself passes
    (89, 0, False),  # the reference below 90
    (100, 100, False),  # both rated the same: not listening
])
def test_mushra_attention_rule(reference, anchor, passed):
    assert attention_passed(_check(reference, anchor)) is passed


def test_abx_attention_rule_is_x_named_right():
    row = {"rater": "r", "item": "e1", "type": "abx", "a": "reference", "b": "anchor-low", "x": "anchor-low"}
    assert abx_passed(pd.DataFrame([{**row, "answer": "anchor-low"}]))
    assert not abx_passed(pd.DataFrame([{**row, "answer": "reference"}]))


def _mushra(rater: str, scores: dict[str, float], items=("e1", "e2")) -> list[dict]:
    return [{"rater": rater, "item": item, "condition": c, "score": s, "type": "mushra", "attention": False}
            for item in items for c, s in scores.items()]


def test_a_mushra_rater_who_fails_a_check_is_excluded_by_screening_and_the_table_says_so():
    good = {"reference": 100, "anchor-mid": 50, "anchor-low": 20, "mse": 80}
    frame = pd.DataFrame(_mushra("ann", good) + _mushra("bob", {**good, "mse": 40})
                         + _mushra("cat", {**good, "mse": 60}))
    frame = pd.concat([frame, _check(100, 10, "ann"), _check(100, 10, "bob"), _check(100, 95, "bob", "e2"),
                       _check(95, 20, "cat")], ignore_index=True)
    result = analyze_ratings(frame, "t", with_mixed_model=False)
    assert result.screening.excluded == ["bob"] and result.screening.n_after == 2
    bob = result.screening.raters.set_index("rater").loc["bob"]
    assert bob["reason"] == "failed an attention check (1 of 2 passed)"
    # mse's mean over ann and cat, by hand: (80 + 60) / 2 = 70; the checks' ratings never enter it
    summary = result.summary.set_index("condition")
    assert summary.loc["mse", "mean"] == pytest.approx(70.0)
    assert summary.loc["reference", "mean"] == pytest.approx(100.0)  # cat's 95 was a check's
    table = present.screening_table(result.screening)
    assert table.columns[4] == present.ATTENTION_COLUMN
    rows = {row[0]: row for row in table.rows}
    assert rows["bob"][4] == "1 of 2" and rows["bob"][5] == "yes" and rows["ann"][4] == "1 of 1"
    assert "attention check" in result.screening.rules


def test_abx_is_shown_with_and_without_raters_who_failed_a_check():
    # r1: 8 of 10 right, r2: 3 of 10; r2 fails its check. Pooled: 11 of 20; without r2: 8 of 10.
    frame = pd.DataFrame(_answers("r1", 8, 10) + _answers("r2", 3, 10)).assign(attention=False)
    check = {"test": "t", "type": "abx", "item": "check", "condition": "reference", "score": math.nan,
             "a": "reference", "b": "anchor-low", "x": "reference", "attention": True}
    frame = pd.concat([frame, pd.DataFrame([{**check, "rater": "r1", "answer": "reference"},
                                            {**check, "rater": "r2", "answer": "anchor-low"}])], ignore_index=True)
    result = analyze_test(frame, "t")
    parts = dict(result.parts)
    assert [row[1:] for row in parts["attention"].rows] == [["1 of 1", "no"], ["0 of 1", "yes"]]
    pooled = parts["abx-pairs"].records[0]
    assert (pooled["trials"], pooled["correct"]) == (20, 11)  # the checks are not a pair of the test
    attentive = parts["abx-pairs-attentive"]
    assert (attentive.records[0]["trials"], attentive.records[0]["correct"]) == (10, 8)
    assert "without the raters who failed an attention check (r2)" in attentive.caption
    assert any("r2 failed an attention check" in note for note in result.notes)
    assert result.numbers["attention"] == {"failed": ["r2"]}


def test_a_check_of_a_type_without_a_rule_is_refused_by_name():
    with pytest.raises(ValueError, match="test type 'nosuch'"):
        attention.attention_raters(pd.DataFrame([{"rater": "r", "item": "e", "type": "nosuch", "attention": True}]))


def test_the_attention_column_survives_a_csv_round_trip(tmp_path):
    frame = pd.concat([pd.DataFrame(_mushra("ann", {"reference": 100, "mse": 70})), _check(100, 95, "ann")])
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, index=False)
    back = read_long_csv(path)
    assert back["attention"].tolist() == [False] * 4 + [True, True]
    assert attention.failed_raters(back) == ["ann"]


def test_a_subset_design_is_noted_once_not_once_per_rater():
    from earshot.results.listening import completeness_notes, normalise_ratings

    full = {"reference": 100, "anchor-low": 20, "mse": 70}
    subsets = pd.DataFrame(_mushra("ann", full, ("e1", "e2")) + _mushra("bob", full, ("e2", "e3"))
                           + _mushra("cat", {"reference": 100, "mse": 60}, ("e3", "e1")))
    assert completeness_notes(normalise_ratings(subsets)) == [
        "each rater rated a subset of the 3 items (2 to 2); their means use what they rated",
        "rater cat: 4 of 6 ratings of their 2 items"]
    # Someone rated every item: the others are unfinished, each said so.
    everyone = pd.concat([subsets, pd.DataFrame(_mushra("dan", full, ("e1", "e2", "e3")))])
    notes = completeness_notes(normalise_ratings(everyone))
    assert len(notes) == 3 and notes[0].startswith("rater ann: 6 of 9 ratings (2 of 3 items)")
