"""One door for every test type's analysis: the report, listen analyze and the admin page read it."""

from __future__ import annotations

import pandas as pd
import pytest

from earshot.results import analyses
from earshot.results.analyses import ANALYSES, analyze_test
from earshot.results.present import Table


def _abx_rows(rater: str, correct: int, trials: int) -> list[dict]:
    return [{"type": "abx", "rater": rater, "item": "x1", "a": "mse", "b": "bark", "x": "mse",
             "answer": "mse" if k < correct else "bark"} for k in range(trials)]


def test_a_mushra_table_takes_the_mushra_path_and_an_abx_one_its_registered_analysis():
    assert analyses.test_type(pd.DataFrame({"rater": ["r"], "score": [50.0]})) == "mushra"
    assert analyze_test(pd.DataFrame({"type": ["mushra"], "rater": ["r"], "score": [50.0]}), "t") is None
    found = analyze_test(pd.DataFrame(_abx_rows("r1", 9, 10)), "t")
    assert (found.type, found.title) == ("abx", "ABX") and "abx" in ANALYSES
    keys = [k for k, _ in found.parts]
    assert keys == ["abx-pairs", "abx-raters"] and all(isinstance(p, Table) for _, p in found.parts)
    assert found.parts[0][1].rows[0][2] == "9 of 10"


def test_an_unknown_test_type_is_named_in_one_line():
    with pytest.raises(ValueError, match=r"test t: no analysis for test type 'zzz'"):
        analyze_test(pd.DataFrame({"type": ["zzz"], "rater": ["r"]}), "t")
