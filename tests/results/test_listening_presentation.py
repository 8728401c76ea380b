"""How a listening test's statistics are shown, on a two-rater test and on a twenty-rater one: no
interval from too few raters, nothing outside the 0–100 scale, contrasts only, one order for every
difference, no scientific notation, and what cannot be computed said once."""

from __future__ import annotations

import math
import re

import matplotlib
import numpy as np
import pandas as pd
import pytest

from earshot.results import plots, present
from earshot.results.correlation import metric_rating_correlation
from earshot.results.listening import MIN_INTERVAL_RATERS, analyze_ratings, condition_summary
from earshot.results.stats import correlation_ci

SYSTEMS = {"mse-seed0": 35.0, "bark-seed0": 60.0}  # bark rated higher; "bark" < "mse" alphabetically
ITEMS = ["speech-0", "speech-1", "music-0", "drums-0"]
SCIENTIFIC = re.compile(r"\d[eE][+-]?\d")


def _ratings(raters: int, spread: float = 10.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for r in range(raters):
        for item in ITEMS:
            for condition, level in SYSTEMS.items():
                rows.append((f"r{r:02d}", item, condition, float(np.clip(level + rng.normal(0, spread), 0, 100))))
            rows.append((f"r{r:02d}", item, "reference", 100.0))
            rows.append((f"r{r:02d}", item, "anchor-low", float(np.clip(4 + rng.normal(0, 6), 0, 100))))
            rows.append((f"r{r:02d}", item, "anchor-mid", float(np.clip(30 + rng.normal(0, spread), 0, 100))))
    return pd.DataFrame(rows, columns=["rater", "item", "condition", "score"])


def _tables(result) -> list[present.Table]:
    tables = [present.screening_table(result.screening), *present.mushra_tables(result.summary),
              present.pairwise_table(result.pairwise)]
    if result.mixed is not None and len(result.mixed["fixed"]):
        tables.append(present.mixed_model_table(result.mixed["fixed"]))
    return tables


def _numbers_in_brackets(cell: str) -> list[float]:
    inside = re.search(r"\[([^\]]*)\]", cell)
    return [float(x) for x in inside.group(1).split(",")] if inside else []


@pytest.mark.parametrize("raters", [2, 20])
def test_every_shown_interval_lies_on_the_scale_and_too_few_raters_is_said_once(raters):
    result = analyze_ratings(_ratings(raters, spread=25.0), "t", system_order=list(SYSTEMS))
    mushra = present.mushra_tables(result.summary)
    cells = [row[4:6] for table in mushra for row in table.rows]
    sentence = present.too_few_raters_sentence(result.summary)
    if raters < MIN_INTERVAL_RATERS:
        # The t-interval of 2 raters (critical value 12.7) would run far past 0–100: the mean alone.
        assert all("[" not in cell for pair in cells for cell in pair), cells
        assert sentence is not None and "every condition (2 raters" in sentence
        assert result.summary[["ci_low", "ci_high", "crossed_low", "crossed_high"]].isna().all().all()
    else:
        assert sentence is None
        assert all("[" in cell for pair in cells for cell in pair)
    for pair in cells:
        for cell in pair:
            assert all(0.0 <= bound <= 100.0 for bound in _numbers_in_brackets(cell)), cell


def test_a_t_interval_past_the_scale_is_cut_and_marked():
    # Three raters, one far below the others: mean 85, t-interval about [31, 139].
    rows = [(r, "i", "mse-seed0", s) for r, s in (("a", 95.0), ("b", 100.0), ("c", 60.0))]
    rows += [(r, "i", "reference", 100.0) for r in "abc"]
    summary = condition_summary(pd.DataFrame(rows, columns=["rater", "item", "condition", "score"]))
    row = summary.set_index("condition").loc["mse-seed0"]
    assert row["ci_high"] == 100.0 and row["ci_clipped"] and 0 < row["ci_low"] < row["mean"]
    systems, controls = present.mushra_tables(summary)
    assert systems.rows[0][4] == f"85.0 [{present.score(row['ci_low'])}, 100.0]*"
    assert "cut at its end" in systems.caption
    assert not controls.rows[0][4].endswith("*") and "cut at" not in controls.caption
    figure = plots.mushra_means(summary, {})
    segments = [np.asarray(segment, float) for collection in figure.axes[0].collections
                if hasattr(collection, "get_segments") for segment in collection.get_segments()]
    assert segments and all(0.0 <= y <= 100.0 for segment in segments for y in segment[:, 1])
    assert "cut at the 0–100 scale" in figure.axes[0].get_title()
    matplotlib.pyplot.close(figure)


@pytest.mark.parametrize("raters", [2, 20])
def test_one_difference_order_wherever_the_ratings_come_from(raters):
    ratings = _ratings(raters)
    # A run lists its systems in job order (mse first here), a ratings file alphabetically (bark first):
    # both write every difference higher-rated − lower-rated, with the same sign and effect size.
    from_run = analyze_ratings(ratings, "t", system_order=["mse-seed0", "bark-seed0"])
    from_file = analyze_ratings(ratings, "t")
    pairwise = [present.pairwise_table(r.pairwise) for r in (from_run, from_file)]
    assert pairwise[0].rows == pairwise[1].rows
    difference, _, mean, *_, r = pairwise[0].rows[0]
    assert difference == "bark-seed0 − mse-seed0" and float(mean) > 0 and float(r) > 0
    mixed = [present.mixed_model_table(r.mixed["fixed"]) for r in (from_run, from_file)]
    assert mixed[0].rows == mixed[1].rows
    # Contrasts only: the baseline's own mean against 0 is no comparison and is not shown.
    assert [row[0] for row in mixed[0].rows] == ["bark-seed0 − mse-seed0"]
    assert "baseline" not in " ".join(c for table in mixed for row in table.rows for c in row)
    assert float(mixed[0].rows[0][1].split()[0]) > 0


@pytest.mark.parametrize("raters", [2, 20])
def test_no_scientific_notation_in_any_listening_table(raters):
    result = analyze_ratings(_ratings(raters, spread=3.0), "t", system_order=list(SYSTEMS))
    if raters == 20:
        assert result.pairwise["pvalue"].iloc[0] < 1e-4  # small enough for a float to print as 1e-05
    texts = [present.screening_sentence(result.screening), present.friedman_sentence(result.friedman)]
    for table in _tables(result):
        texts += [table.caption, *table.columns, *(cell for row in table.rows for cell in row)]
    assert not [t for t in texts if SCIENTIFIC.search(t)]


@pytest.mark.parametrize("value, expected", [(0.000137, "0.000137"), (1.37e-7, "0.000000137"), (123456.0, "123456"),
                                             (2.0, "2"), (2.5, "2.5"), (0.0, "0"), (-0.00042, "-0.00042")])
def test_descriptive_numbers_are_never_scientific(value, expected):
    assert present.number(value) == expected


@pytest.mark.parametrize("raters", [2, 20])
def test_a_correlation_that_cannot_be_computed_is_said_once(raters):
    ratings = analyze_ratings(_ratings(raters), "t").analysed
    metrics = pd.DataFrame([(job, item, metric, value + (1.0 if job == "bark-seed0" else 0.0) + 0.1 * i)
                            for job in SYSTEMS for i, item in enumerate(ITEMS)
                            for metric, value in (("si_sdr", 5.0), ("stoi", 0.8))
                            if not (metric == "stoi" and not item.startswith("speech"))],
                           columns=["job", "item", "metric", "value"])
    info = {"si_sdr": {"unit": "dB", "higher_is_better": True}, "stoi": {"unit": "0-1", "higher_is_better": True}}
    table = metric_rating_correlation(metrics, ratings, info)
    gaps = present.correlation_gaps(table)
    # Two systems: no system-level correlation for any metric, one sentence for them all.
    assert [g for g in gaps if g.startswith("system-level")] == [
        "system-level correlation not computed for every metric: fewer than 3 rated systems (n = 2)."]
    # stoi exists for the 2 speech items only: 4 (system, item) pairs, computed; a metric with
    # fewer would be named in one item-level sentence.
    shown = present.correlation_table(table)
    assert shown is not None and {row[2] for row in shown.rows} == {"item"}
    assert present.MISSING not in {row[4] for row in shown.rows}
    for row in shown.rows:  # Kendall's interval wherever Spearman's is shown
        assert ("[" in row[4]) == ("[" in row[6]), row


@pytest.mark.parametrize("n", range(3, 12))
@pytest.mark.parametrize("r", [-0.9, -0.3, 0.0, 0.5, 0.95])
def test_kendall_and_spearman_intervals_come_together(n, r):
    spearman, kendall = correlation_ci(r, n, "spearman"), correlation_ci(r, n, "kendall")
    assert math.isnan(spearman[0]) == math.isnan(kendall[0])


def test_bars_without_an_interval_draw_no_whisker():
    summary = pd.DataFrame([
        {"metric": "si_sdr", "category": "speech", "loss": "mse", "mean": 5.0, "ci_low": 4.0, "ci_high": 6.0},
        {"metric": "si_sdr", "category": "drums", "loss": "mse", "mean": 3.0, "ci_low": math.nan, "ci_high": math.nan},
        {"metric": "si_sdr", "category": "music", "loss": "mse", "mean": 4.0, "ci_low": 4.0, "ci_high": 4.0}])
    figure = plots.metric_bars(summary, ["speech", "drums", "music"], ["mse"], ["si_sdr"],
                               {"si_sdr": {"unit": "dB", "higher_is_better": True}})
    ax = figure.axes[0]
    whiskers = [c for c in ax.containers if isinstance(c, matplotlib.container.ErrorbarContainer)]
    assert len(whiskers) == 1 and len(whiskers[0].lines[2][0].get_segments()) == 1  # speech's only
    assert any("without whiskers" in t.get_text() for t in figure.texts)
    matplotlib.pyplot.close(figure)
    two = condition_summary(_ratings(2))
    figure = plots.mushra_means(two, {})
    assert all(len(c.get_segments()) == 0 for c in figure.axes[0].collections if hasattr(c, "get_segments"))
    assert "too few raters" in figure.axes[0].get_title()
    matplotlib.pyplot.close(figure)
