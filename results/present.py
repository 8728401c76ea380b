"""How results are shown: each kind of result as a table of display strings, one rule per quantity.

Every number that the report (HTML, Markdown, LaTeX), the CLI (``eval``, ``report``,
``compare``, ``listen analyze``) and the listening app's admin page show is formatted
here, into a :class:`Table` (or a sentence); the renderers lay cells out and format
nothing, so the same run prints the same strings everywhere.

The formatting rules, one per quantity:

- **a metric value** (a mean, an interval bound, a difference of two losses or of two
  runs): decimals by the metric's unit, :data:`UNIT_DECIMALS` (dB 2, MOS and MOS-LQO 2,
  0–1 scores and fractions 3), more when the mean is so small that it would show fewer
  than :data:`MIN_SIGNIFICANT_DIGITS` significant digits (an error flatness of 0.0061,
  not 0.006); a metric without one of these units shows :data:`SIGNIFICANT_DIGITS`
  significant digits of its mean;
- **an interval**: ``mean [low, high]``, both bounds at the mean's decimals; the mean
  alone when there is no interval (too few values);
- **a MUSHRA score** (0–100) and differences and variances of scores:
  :data:`SCORE_DECIMALS` decimal;
- **a correlation or effect size** (Spearman ρ, Kendall τ, rank-biserial r, Kendall's W):
  :data:`CORRELATION_DECIMALS` decimals; **a test statistic** (χ², Wilcoxon's W):
  :data:`STATISTIC_DECIMALS`;
- **a p-value**: 3 decimals, or ``< 0.001`` below that;
- **a count**: an integer; **a yes/no**: ``yes`` / ``no``; **a missing value**: ``–``;
- **a relative change** (a training loss's fall): a percentage with
  :data:`PERCENT_DECIMALS` decimal, ``12.3 %``;
- **words** (claims, verdicts, reasons, names) are never shortened;
- **anything else** (durations, minutes, sizes in the run's description):
  :func:`number`, 3 significant digits;
- **never** scientific notation: ``0.000137``, not ``1.37e-04``.

What a table needs to know about a metric (its unit, whether higher is better, its ideal
value) comes as ``metric_info``: the run's own record of the metric catalog
(``RunData.metric_info``), a dict metric → ``{"unit", "higher_is_better", "ideal", ...}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from earshot.results import adequacy, aggregate, listening

MISSING = "–"
UNIT_DECIMALS = {"dB": 2, "MOS": 2, "MOS-LQO": 2, "0-1": 3, "fraction": 3}
SIGNIFICANT_DIGITS = 3  # a metric of another unit (a unitless distance), and descriptive numbers
MIN_SIGNIFICANT_DIGITS = 2  # a metric with a unit never shows fewer of its mean
MAX_DECIMALS = 6  # a unitless metric's mean below 1e-4 still shows at most this many decimals
SCORE_DECIMALS = 1
CORRELATION_DECIMALS = 2
STATISTIC_DECIMALS = 2
P_DECIMALS = 3
P_FLOOR = 0.001  # below this a p-value prints as "< 0.001"
PERCENT_DECIMALS = 1

DIRECTION_MARKS = {True: "↑", False: "↓"}
IDEAL_ZERO_MARK = "→0"


@dataclass
class Table:
    """A table of display strings; ``bold`` marks (row, column) cells, e.g. the best value."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)
    main: bool = True  # part of the LaTeX output
    align_numbers: bool = True  # HTML: right-align numeric cells (not in key-value tables)
    collapsed: bool = False  # HTML: inside a <details>
    # The raw values each row's cells were formatted from, one JSON-ready dict per row (``--json``);
    # empty for a table of words.
    records: list[dict] = field(default_factory=list)

    def frame(self) -> pd.DataFrame:
        """The table as a DataFrame of strings (for ``st.dataframe``), columns as headed."""
        return pd.DataFrame(self.rows, columns=self.columns)

    def to_json(self) -> dict:
        """The table as JSON-ready data: caption, columns, rows of display strings, the bold
        ``[row, column]`` cells and the rows' raw ``records``."""
        return {"caption": self.caption, "columns": list(self.columns), "rows": [list(r) for r in self.rows],
                "bold": sorted([i, j] for i, j in self.bold), "records": json_value(self.records)}


def json_value(value):
    """``value`` as JSON can hold it: numpy scalars as Python numbers, NaN and infinity as None,
    times as ISO text, dicts and sequences element by element, anything else unknown as text."""
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, np.ndarray, pd.Series)):
        return [json_value(v) for v in value]
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return _finite(value)
    if pd.isna(value):  # pd.NA, NaT
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def records(frame: pd.DataFrame, columns: list[str] | None = None) -> list[dict]:
    """``frame``'s rows (only ``columns`` when given) as JSON-ready dicts, for :attr:`Table.records`."""
    part = frame if columns is None else frame[[c for c in columns if c in frame.columns]]
    return [json_value(row) for row in part.to_dict("records")]


# ---------------------------------------------------------------------------
# One rule per quantity
# ---------------------------------------------------------------------------


def _finite(value) -> float | None:
    try:
        as_float = float(value)
    except (TypeError, ValueError):
        return None
    return as_float if math.isfinite(as_float) else None


def fixed(value, decimals: int) -> str:
    """``value`` with ``decimals`` decimals; ``–`` for None, NaN or infinity."""
    finite = _finite(value)
    if finite is None:
        return MISSING
    text = f"{finite:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def significant_decimals(value, digits: int = SIGNIFICANT_DIGITS) -> int:
    """The decimals that show ``digits`` significant digits of ``value`` (0 for large values)."""
    finite = _finite(value)
    if finite is None or finite == 0:
        return digits - 1
    return int(min(MAX_DECIMALS, max(0, digits - 1 - math.floor(math.log10(abs(finite))))))


def interval(mean, low, high, decimals: int) -> str:
    """``mean [low, high]``, every number at ``decimals``; the mean alone without an interval."""
    if _finite(low) is None or _finite(high) is None:
        return fixed(mean, decimals)
    return f"{fixed(mean, decimals)} [{fixed(low, decimals)}, {fixed(high, decimals)}]"


def metric_decimals(metric: str, metric_info: dict, mean=None) -> int:
    """Decimals for a metric's values: by its unit (at least ``MIN_SIGNIFICANT_DIGITS`` of
    ``mean``), else ``SIGNIFICANT_DIGITS`` of ``mean``."""
    unit = (metric_info.get(metric) or {}).get("unit")
    if unit in UNIT_DECIMALS:
        return max(UNIT_DECIMALS[unit], significant_decimals(mean, MIN_SIGNIFICANT_DIGITS))
    return significant_decimals(mean)


def metric_value(metric: str, value, metric_info: dict) -> str:
    return fixed(value, metric_decimals(metric, metric_info, value))


def metric_interval(metric: str, mean, low, high, metric_info: dict) -> str:
    return interval(mean, low, high, metric_decimals(metric, metric_info, mean))


def score(value) -> str:
    """A MUSHRA score, or a difference of scores."""
    return fixed(value, SCORE_DECIMALS)


def score_interval(mean, low, high) -> str:
    return interval(mean, low, high, SCORE_DECIMALS)


def correlation(value) -> str:
    return fixed(value, CORRELATION_DECIMALS)


def statistic(value) -> str:
    return fixed(value, STATISTIC_DECIMALS)


def p_value(p) -> str:
    """``0.012``, ``< 0.001``, or ``–``."""
    finite = _finite(p)
    if finite is None:
        return MISSING
    return f"< {P_FLOOR:g}" if finite < P_FLOOR else f"{finite:.{P_DECIMALS}f}"


def p_text(p) -> str:
    """``p = 0.012`` or ``p < 0.001``, for sentences."""
    text = p_value(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def yes_no(value) -> str:
    return "yes" if bool(value) else "no"


def count(value) -> str:
    finite = _finite(value)
    return MISSING if finite is None else str(int(finite))


def number(value, digits: int = SIGNIFICANT_DIGITS) -> str:
    """A descriptive number (minutes, seconds): ``digits`` significant digits, ``–`` when missing."""
    if value is None:
        return MISSING
    try:
        finite = float(value)
    except (TypeError, ValueError):
        return str(value)  # a value recorded as text ("5000 steps"): shown as it is
    if not math.isfinite(finite):
        return MISSING
    if abs(finite) >= 10 ** digits:
        return f"{finite:.0f}"
    # Never scientific notation: a small value gets the decimals its significant digits need.
    decimals = 0 if finite == 0 else max(0, digits - 1 - math.floor(math.log10(abs(finite))))
    text = f"{finite:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def direction(metric: str, metric_info: dict) -> str:
    """↑ (higher is better), ↓ (lower is better), →0 (closest to its ideal 0 is best) or ''."""
    info = metric_info.get(metric) or {}
    mark = DIRECTION_MARKS.get(info.get("higher_is_better"), "")
    if not mark and info.get("ideal") == 0:
        return IDEAL_ZERO_MARK
    return mark


# ---------------------------------------------------------------------------
# Objective metrics
# ---------------------------------------------------------------------------


def metric_summary_table(summary: pd.DataFrame, category: str, losses: list[str], order: list[str],
                         metric_info: dict, metrics: pd.DataFrame) -> Table | None:
    """One category of :func:`aggregate.metric_summary`: a row per metric, a ``mean [CI]`` column
    per loss and a ``best`` column (:func:`aggregate.best_in_row` on the tidy ``metrics``): the
    clearly best loss, in bold, or the tied losses; None when the category has no rows."""
    rows_for = summary[summary["category"] == category]
    if rows_for.empty:
        return None
    rows, bold, raw = [], set(), []
    for metric in [m for m in order if m in set(rows_for["metric"])]:
        info = metric_info.get(metric) or {}
        by_loss = rows_for[rows_for["metric"] == metric].set_index("loss")
        verdict = aggregate.best_in_row(metrics, metric, losses, info.get("higher_is_better"), info.get("ideal"),
                                        category)
        cells = [metric, info.get("unit") or MISSING, direction(metric, metric_info)]
        for j, loss in enumerate(losses):
            if loss in by_loss.index:
                r = by_loss.loc[loss]
                cells.append(metric_interval(metric, r["mean"], r["ci_low"], r["ci_high"], metric_info))
            else:
                cells.append("missing")
            if loss == verdict.best:
                bold.add((len(rows), 3 + j))
        cells.append(best_text(verdict))
        rows.append(cells)
        raw.append({"metric": metric, "unit": info.get("unit"), "higher_is_better": info.get("higher_is_better"),
                    "ideal": info.get("ideal"), "best": verdict.best, "tied": list(verdict.tied),
                    "losses": {loss: by_loss.loc[loss, ["mean", "ci_low", "ci_high"]].to_dict()
                               for loss in losses if loss in by_loss.index}})
    caption = (f"{category}: mean [95 % hierarchical-bootstrap interval] over seeds × items; a loss is best (in "
               f"bold) only where its paired difference from every other loss excludes 0, otherwise the row "
               f"names the tied losses (↑ higher better, ↓ lower better, →0 closest to 0 dB item by item; "
               f"unmarked: descriptive)")
    return Table(["metric", "unit", "better", *losses, "best"], rows, caption, bold=bold, records=json_value(raw))


def best_text(verdict: aggregate.RowBest) -> str:
    """A row's :class:`aggregate.RowBest` in words: the best loss, ``tied: a, b``, or – (nothing to rank)."""
    if verdict.best:
        return verdict.best
    return "tied: " + ", ".join(verdict.tied) if verdict.tied else MISSING


def paired_differences_table(differences: pd.DataFrame, metric_info: dict) -> Table:
    """The pooled rows of :func:`aggregate.all_paired_differences`; an interval excluding 0 in bold."""
    pooled = differences[differences["category"] == aggregate.ALL]
    rows, bold = [], set()
    for _, r in pooled.iterrows():
        if r["pairs"] == 0:
            continue
        low, high = _finite(r["ci_low"]), _finite(r["ci_high"])
        if low is not None and high is not None and (low > 0 or high < 0):
            bold.add((len(rows), 3))
        rows.append([r["metric"], f"{r['a']} − {r['b']}", count(r["pairs"]),
                     metric_interval(r["metric"], r["mean"], r["ci_low"], r["ci_high"], metric_info)])
    return Table(["metric", "difference", "pairs", "mean [95 % CI]"], rows,
                 "paired differences, every category pooled", bold=bold, records=records(pooled[pooled["pairs"] != 0]))


def per_item_table(wide: pd.DataFrame, metric: str, metric_info: dict) -> Table:
    """:func:`aggregate.per_item_table` (reset to ``category, item`` columns): a metric per item and loss."""
    keys = [c for c in ("category", "item") if c in wide.columns]
    losses = [c for c in wide.columns if c not in keys]
    rows = [[str(r[k]) for k in keys] + [metric_value(metric, r[loss], metric_info) for loss in losses]
            for _, r in wide.iterrows()]
    return Table([*keys, *map(str, losses)], rows, f"{metric} per item, mean over seeds", main=False, collapsed=True,
                 records=records(wide))


HYPOTHESES_COLUMNS = ["hypothesis", "statement", "declared", "metric", "contrast", "steps", "pairs",
                      "mean [95 % CI]", "p (Holm)", "verdict"]


def declared_text(declaration) -> str:
    """When a :class:`hypotheses.Declaration` was declared, in words: ``before training, <time>``."""
    return declaration.when + (f", {declaration.declared_at}" if declaration.declared_at else "")


def steps_text(steps: dict[str, list[int]] | None) -> str:
    """The training steps behind a contrast: one count when its systems trained alike, else each
    system's (``bark 167 · mse 1153``); – when neither system was trained (baselines)."""
    if not steps:
        return MISSING
    distinct = {s for counts in steps.values() for s in counts}
    if len(distinct) == 1:
        return count(distinct.pop())
    return " · ".join(f"{name} {'/'.join(count(s) for s in counts)}" for name, counts in steps.items())


def hypotheses_table(checked: pd.DataFrame, declaration, metric_info: dict) -> Table:
    """:func:`claims.check_hypotheses` as a table: each hypothesis, its statement, when it was declared,
    the metric (and categories), the contrast, the steps its systems trained (each system's where
    they differ), its 95 % interval, the Holm-adjusted p and the verdict (in bold when not
    inconclusive)."""
    declared = declared_text(declaration)
    rows = [[str(c["name"]), str(c["statement"]), declared,
             c["metric"] + ("" if c["categories"] == "all" else f" ({c['categories']})"), str(c["contrast"]),
             steps_text(c["steps"]), count(c["pairs"]),
             metric_interval(c["metric"], c["mean"], c["ci_low"], c["ci_high"], metric_info),
             p_value(c["p_holm"]), str(c["verdict"])]
            for _, c in checked.iterrows()]
    verdict_col = HYPOTHESES_COLUMNS.index("verdict")
    bold = {(i, verdict_col) for i, r in enumerate(rows) if r[verdict_col] != "inconclusive"}
    caption = (f"declared hypotheses: {declaration.describe()}; each contrast on the same (seed, item) with the "
               f"tables' hierarchical-bootstrap interval, p Holm-adjusted over the {len(rows)} declared")
    return Table(HYPOTHESES_COLUMNS, rows, caption, bold=bold,
                 records=records(checked.assign(declared=declaration.when, declared_at=declaration.declared_at,
                                                source=declaration.source, sha256=declaration.sha256)))


def training_note(unequal: pd.DataFrame) -> str | None:
    """A sentence naming the jobs' step counts when the jobs compared trained different numbers of
    steps (:func:`earshot.results.training.unequal_training`); None when they trained alike.

    Jobs that trained the same steps are named together, fewest steps first: ``bark-seed0 trained
    167 steps; mse-seed0 (failed) 1153. …``.
    """
    if unequal.empty:
        return None
    groups = []
    for steps, group in unequal.groupby("steps", sort=True):
        names = ", ".join(f"{r['job']} ({r['status']})" if r["status"] != "done" else str(r["job"])
                          for _, r in group.iterrows())
        groups.append(f"{names} {'trained ' if not groups else ''}{count(steps)}{' steps' if not groups else ''}")
    return (f"not equally trained: {'; '.join(groups)}. A difference between these losses is partly a "
            f"difference in training.")


def compare_table(comparison: pd.DataFrame, category: str, run_a: str, run_b: str, order: list[str],
                  metric_info: dict) -> Table:
    """One category of :func:`aggregate.compare_runs`: each loss's mean [CI] in A and B, and B − A
    with its (normal-approximation) interval."""
    rows = comparison[comparison["category"] == category]
    rank = {name: i for i, name in enumerate(order)}
    rows = rows.assign(_order=rows["metric"].map(rank).fillna(len(rank))).sort_values(["_order", "loss"])
    cells = [[r["metric"], r["loss"],
              metric_interval(r["metric"], r["mean_a"], r["ci_low_a"], r["ci_high_a"], metric_info),
              metric_interval(r["metric"], r["mean_b"], r["ci_low_b"], r["ci_high_b"], metric_info),
              interval(r["difference"], r["diff_ci_low"], r["diff_ci_high"],
                       metric_decimals(r["metric"], metric_info, r["mean_a"]))]
             for _, r in rows.iterrows()]
    return Table(["metric", "loss", f"A: {run_a}", f"B: {run_b}", "B − A"], cells,
                 f"{category}: mean [95 % CI] over seeds × items", records=records(rows.drop(columns="_order")))


def percent(fraction) -> str:
    """A fraction as a percentage: ``0.123`` → ``12.3 %``; ``–`` when missing."""
    finite = _finite(fraction)
    return MISSING if finite is None else f"{fixed(100 * finite, PERCENT_DECIMALS)} %"


ADEQUACY_VERDICTS = {True: "undertrained", False: "adequate"}


def _adequacy_verdict(row) -> str:
    if row["undertrained"]:
        return ADEQUACY_VERDICTS[True]
    known = row["flattened"] is not None and row["beats_baseline"] is not None
    return ADEQUACY_VERDICTS[False] if known else "not checked"


def adequacy_table(assessment: pd.DataFrame, metric_info: dict) -> Table:
    """:func:`adequacy.assess`: per job its steps, how much its loss still fell over the last quarter,
    whether it beats the linear baseline on its own objective, and its verdict (undertrained in bold)."""
    baseline = next((str(b) for b in assessment["baseline_system"] if b), "baseline") if len(assessment) else "baseline"
    rows = []
    for _, r in assessment.iterrows():
        snr = r["objective"] == adequacy.OBJECTIVE_SNR
        value = (lambda v: metric_value(adequacy.SNR_METRIC, v, metric_info)) if snr else number
        rows.append([r["job"], count(r["steps"]), percent(r["relative_change"]),
                     MISSING if r["flattened"] is None else yes_no(r["flattened"]), r["objective"] or MISSING,
                     value(r["model"]), value(r["baseline"]),
                     MISSING if r["beats_baseline"] is None else yes_no(r["beats_baseline"]), _adequacy_verdict(r)])
    caption = (f"adequacy per job: flattened when its training loss fell by less than "
               f"{percent(adequacy.FLAT_RELATIVE_CHANGE)} over the last quarter of "
               f"training (medians of the logged loss); beats {baseline} (PCA with as many components as the "
               f"code) on its own objective on the held-out audio; undertrained when either fails")
    return Table(["job", "steps", "loss fell (last quarter)", "flattened", "objective", "model", baseline,
                  "beats baseline", "verdict"], rows, caption,
                 bold={(i, 8) for i, row in enumerate(rows) if row[8] == ADEQUACY_VERDICTS[True]},
                 records=records(assessment))


def undertrained_sentence(assessment: pd.DataFrame) -> str | None:
    """Which jobs are undertrained and why, and what that means for the hypotheses; None when none is.
    Renderers label it "undertrained"."""
    marked = assessment[assessment["undertrained"].astype(bool)] if len(assessment) else assessment
    if not len(marked):
        return None
    jobs = "; ".join(f"{r['job']} ({r['reason']})" for _, r in marked.iterrows())
    return (f"{jobs}. Their differences from other losses say more about training than about the "
            f"loss, so a hypothesis resting on them reads \"not meaningful: undertrained\"; train longer "
            f"(a larger --budget) before reading them.")


# ---------------------------------------------------------------------------
# Listening tests
# ---------------------------------------------------------------------------


def screening_sentence(screening) -> str:
    """The post-screening rules and its outcome, N before and after, in one sentence."""
    return (f"Post-screening: {screening.rules}. Raters: {screening.n_before} before, {screening.n_after} after"
            + (f"; excluded: {', '.join(screening.excluded)}." if screening.excluded else "; none excluded."))


SCREENING_COLUMNS = ["rater", "items rated", "hidden reference low", "mid anchor high", "excluded", "reason"]
ATTENTION_COLUMN = "attention checks passed"


def _of(part, whole) -> str:
    """``2 of 8``; ``–`` when there was nothing to count."""
    return MISSING if not _finite(whole) else f"{count(part)} of {count(whole)}"


def screening_table(screening) -> Table:
    """Post-screening per rater: on how many items the hidden reference was rated low and the mid
    anchor high (thresholds in the caption), excluded (bold when yes) and why."""
    raters = screening.raters
    checked = "attention_checks" in raters.columns  # a crowd test with attention checks
    rows = [[str(r["rater"]), count(r["items"]), _of(r["reference_below"], r["reference_items"]),
             _of(r["mid_anchor_above"], r["mid_anchor_items"]),
             *([_of(r["attention_passed"], r["attention_checks"])] if checked else []),
             yes_no(r["excluded"]), str(r["reason"]) or MISSING]
            for _, r in raters.iterrows()]
    columns = SCREENING_COLUMNS[:4] + ([ATTENTION_COLUMN] if checked else []) + SCREENING_COLUMNS[4:]
    excluded = columns.index("excluded")
    caption = ("post-screening per rater (ITU-R BS.1534-3 §4.1.2): items whose hidden reference was rated below the "
               "threshold, and whose mid anchor above it, of the items that had one"
               + ("; attention checks passed of those answered" if checked else ""))
    return Table(columns, rows, caption, bold={(i, excluded) for i, row in enumerate(rows) if row[excluded] == "yes"},
                 records=records(raters))


MUSHRA_GROUPS = ((("system",), "systems"), (("reference", "anchor"), "hidden reference and anchors"))


CLIPPED_MARK = "*"  # after an interval cut at an end of the 0–100 scale


def mushra_interval(mean, low, high, clipped: bool = False) -> str:
    """A MUSHRA mean with its interval (the mean alone without one: :func:`too_few_raters_sentence`
    says why, once), marked ``*`` when the interval was cut at an end of the scale."""
    return score_interval(mean, low, high) + (CLIPPED_MARK if clipped and _finite(low) is not None else "")


def too_few_raters_sentence(summary: pd.DataFrame) -> str | None:
    """Which conditions have too few raters for an interval, said once; None when every one has enough."""
    if summary.empty:
        return None
    few = summary[summary["raters"] < listening.MIN_INTERVAL_RATERS]
    if few.empty:
        return None
    names = "every condition" if len(few) == len(summary) else ", ".join(few["condition"])
    raters = (f"{count(few['raters'].iloc[0])} rater{'s' if few['raters'].iloc[0] != 1 else ''}"
              if few["raters"].nunique() == 1 else f"fewer than {listening.MIN_INTERVAL_RATERS} raters")
    return (f"Too few raters for a 95 % interval: {names} ({raters}; an interval needs at least "
            f"{listening.MIN_INTERVAL_RATERS}), so the tables show the mean alone.")


def mushra_tables(summary: pd.DataFrame) -> list[Table]:
    """:func:`listening.condition_summary` as one table for the systems and one for the controls."""
    tables = []
    for kinds, caption in MUSHRA_GROUPS:
        part = summary[summary["kind"].isin(kinds)] if len(summary) else summary
        if len(part):
            rows = [[r["condition"], r["kind"], count(r["raters"]), count(r["ratings"]),
                     mushra_interval(r["mean"], r["ci_low"], r["ci_high"], bool(r.get("ci_clipped", False))),
                     mushra_interval(r["mean"], r["crossed_low"], r["crossed_high"]), score(r["median"])]
                    for _, r in part.iterrows()]
            clipped = (f"; {CLIPPED_MARK}: the t-interval reached past the 0–100 scale and is cut at its end"
                       if part.get("ci_clipped", pd.Series(dtype=bool)).astype(bool).any() else "")
            tables.append(Table(["condition", "kind", "raters", "ratings", "mean [95 % t-CI]",
                                 "mean [95 % raters × items]", "median"], rows,
                                f"MUSHRA scores, {caption}: mean over raters of each rater's mean over items; "
                                f"t-CI over raters (ITU-R BS.1534-3), and a crossed bootstrap resampling raters "
                                f"and items together (wider: it also counts the spread between items){clipped}",
                                records=records(part)))
    return tables


def friedman_sentence(friedman: dict, blocks: str = "rater") -> str:
    """The Friedman test in one sentence, or why it was not computed."""
    if friedman.get("note"):
        return f"Friedman test not computed: {friedman['note']}"
    return (f"Friedman test over the {friedman['conditions']} systems with {friedman['blocks']} {blocks}s as "
            f"blocks: χ² = {statistic(friedman['statistic'])}, {p_text(friedman['pvalue'])}, "
            f"Kendall's W = {correlation(friedman['kendalls_w'])}.")


def difference(a: str, b: str) -> str:
    """A difference's name, ``a − b``: the one way every difference between systems is written."""
    return f"{a} − {b}"


DIFFERENCE_ORDER = "each pair written higher-rated − lower-rated (by mean), so a difference and r > 0 favour the first"


def pairwise_table(pairwise: pd.DataFrame, blocks: str = "rater") -> Table:
    """Pairwise Wilcoxon tests (Holm): a significant pair's ``yes`` in bold."""
    rows = [[difference(r["a"], r["b"]), count(r["n"]), score(r["mean_difference"]), statistic(r["statistic"]),
             p_value(r["pvalue"]), p_value(r["p_holm"]), yes_no(r["significant"]), correlation(r["rank_biserial"])]
            for _, r in pairwise.iterrows()]
    return Table(["difference", f"{blocks}s", "mean", "W", "p", "p (Holm)", "significant", "r (rank-biserial)"],
                 rows, f"pairwise Wilcoxon signed-rank tests between systems, Holm-corrected, α = 0.05; "
                       f"{DIFFERENCE_ORDER}",
                 bold={(i, 6) for i, row in enumerate(rows) if row[6] == "yes"}, records=records(pairwise))


def mixed_model_table(fixed_effects: pd.DataFrame) -> Table:
    """The mixed model's contrasts (each system against the lowest-rated): estimate [95 % CI] in
    score points, p."""
    rows = [[difference(r["a"], r["b"]), score_interval(r["estimate"], r["ci_low"], r["ci_high"]),
             p_value(r["pvalue"])] for _, r in fixed_effects.iterrows()]
    return Table(["difference", "estimate [95 % CI]", "p"], rows,
                 "linear mixed model score ~ condition + (1|rater) + (1|item) (statsmodels MixedLM, REML): each "
                 "system against the lowest-rated, in score points", main=False, records=records(fixed_effects))


def variance_sentence(variance: dict) -> str:
    return (f"Variance components: rater {score(variance.get('rater'))}, item {score(variance.get('item'))}, "
            f"residual {score(variance.get('residual'))} (score²).")


def proportion_interval(proportion, low, high) -> str:
    """A proportion correct as a percentage with its interval: ``75.0 % [42.8, 94.5]``."""
    if _finite(proportion) is None:
        return MISSING
    text = percent(proportion)
    return text if _finite(low) is None else f"{text} [{fixed(100 * low, PERCENT_DECIMALS)}, {fixed(100 * high, PERCENT_DECIMALS)}]"


def abx_pairs_table(pairs: pd.DataFrame, alpha: float = 0.05) -> Table:
    """ABX pooled over raters, one row per pair: how many raters could tell it apart, correct of trials,
    proportion [95 % CI], one-sided p and Holm's; a pair told apart (by Holm's p) in bold."""
    rows = [[str(r["pair"]), f"{count(r['raters_told_apart'])} of {count(r['raters'])}",
             f"{count(r['correct'])} of {count(r['trials'])}", proportion_interval(r["proportion"], r["ci_low"], r["ci_high"]),
             p_value(r["pvalue"]), p_value(r["p_holm"]), yes_no(r["told_apart"])] for _, r in pairs.iterrows()]
    return Table(["pair", "raters who told it apart", "correct", "proportion correct [95 % CI]", "p", "p (Holm)",
                  "told apart"],
                 rows, f"ABX, every rater's trials pooled: proportion of trials where X was named right, exact "
                       f"Clopper–Pearson interval, exact one-sided binomial test against chance (50 %), Holm-corrected "
                       f"over the pairs, α = {alpha:g}; a rater told a pair apart when their own test says so",
                 bold={(i, 6) for i, row in enumerate(rows) if row[6] == "yes"}, records=records(pairs))


def abx_raters_table(raters: pd.DataFrame, alpha: float = 0.05) -> Table:
    """ABX per rater and pair: correct of trials, proportion [95 % CI], one-sided p, told apart."""
    rows = [[str(r["pair"]), str(r["rater"]), f"{count(r['correct'])} of {count(r['trials'])}",
             proportion_interval(r["proportion"], r["ci_low"], r["ci_high"]), p_value(r["pvalue"]),
             yes_no(r["told_apart"])] for _, r in raters.iterrows()]
    return Table(["pair", "rater", "correct", "proportion correct [95 % CI]", "p", "told apart"], rows,
                 f"ABX per rater: exact one-sided binomial test against chance (50 %), α = {alpha:g}",
                 bold={(i, 5) for i, row in enumerate(rows) if row[5] == "yes"}, records=records(raters))


def correlation_gaps(table: pd.DataFrame) -> list[str]:
    """One sentence per level and reason for the correlations :func:`correlation_table` leaves out."""
    if table.empty or "not_computed" not in table.columns:
        return []
    sentences = []
    for (level, reason), rows in table[table["not_computed"].astype(bool)].groupby(["level", "not_computed"],
                                                                                      sort=False):
        which = "every metric" if len(rows) == (table["level"] == level).sum() else ", ".join(rows["metric"])
        n = rows["n"].unique()
        pairs = f" (n = {count(n[0])})" if len(n) == 1 else ""
        sentences.append(f"{level}-level correlation not computed for {which}: {reason}{pairs}.")
    return sentences


def correlation_table(table: pd.DataFrame, scale: str = "MUSHRA scores") -> Table | None:
    """:func:`correlation.metric_rating_correlation`: ρ and τ with Fisher-z intervals and p per metric and
    level, for the rows that could be computed (:func:`correlation_gaps` says why the others were not);
    None when none could."""
    if "not_computed" in table.columns:
        table = table[~table["not_computed"].astype(bool)]
    if table.empty:
        return None
    rows = [[r["metric"], DIRECTION_MARKS.get(r["higher_is_better"], ""), r["level"], count(r["n"]),
             interval(r["spearman"], r["spearman_low"], r["spearman_high"], CORRELATION_DECIMALS),
             p_value(r["spearman_p"]),
             interval(r["kendall"], r["kendall_low"], r["kendall_high"], CORRELATION_DECIMALS),
             p_value(r["kendall_p"])]
            for _, r in table.iterrows()]
    if set(table["level"]) == {"pair"}:
        caption = ("rank correlation, over the pairs of systems compared, of each metric's absolute difference "
                   "between the two with the proportion of trials the pair was told apart; 95 % Fisher-z "
                   "intervals (none below n = 5). A metric that predicts what listeners hear correlates "
                   "positively, whichever way it points.")
    else:
        caption = (f"rank correlation of each metric with {scale}: system level = per condition means, item "
                   "level = per condition × item; 95 % Fisher-z intervals (none below n = 5). A good ↓ "
                   "metric correlates negatively.")
    return Table(["metric", "better", "level", "n", "Spearman ρ [95 % CI]", "p", "Kendall τ [95 % CI]", "p"], rows,
                 caption, records=records(table))


# ---------------------------------------------------------------------------
# The listening app's admin page
# ---------------------------------------------------------------------------


def value_text(value) -> str:
    """A setting's or a record's value for people: yes/no, ``none``, a number by :func:`number`,
    a time to the minute (UTC), text as it is."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return "none"
    if isinstance(value, (bool, np.bool_)):
        return yes_no(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return number(value)
    if isinstance(value, pd.Timestamp) or hasattr(value, "strftime"):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


def settings_table(settings: list[tuple[str, object]]) -> Table:
    """A test's settings, one (label, value) per row (``TestSettings.readable()``)."""
    return Table(["setting", "value"], [[label, value_text(value)] for label, value in settings], "settings",
                 align_numbers=False, records=[{"setting": label, "value": json_value(value)}
                                               for label, value in settings])


def tests_table(tests: list[dict]) -> Table:
    """The listening tests of a database: name, type (its ``title`` where given), status, run, anchors (MUSHRA's), loudness matching,
    and the ratings (ABX: answers) stored where a test's dict has ``ratings``."""
    with_ratings = any("ratings" in t for t in tests)
    with_crowd = any(t.get("per_rater") for t in tests)  # a crowd design: subsets, attention checks
    rows = [[str(t["name"]), str(t.get("title") or t.get("type", "mushra").upper()), str(t["status"]), str(t["run_id"]),
             f"{number(t['anchor_low_hz'])} / {number(t['anchor_mid_hz'])}" if t.get("type", "mushra") == "mushra"
             else MISSING, str(t["loudness"]), *([count(t.get("ratings"))] if with_ratings else []),
             *([t.get("per_rater") or "every trial"] if with_crowd else [])] for t in tests]
    return Table(["test", "type", "status", "run", "anchors (Hz)", "loudness matched by",
                  *(["ratings"] if with_ratings else []), *(["each rater"] if with_crowd else [])], rows,
                 "listening tests", records=json_value(tests))


RATER_COLUMNS = {"name": "rater", "created": "invited (UTC)", "consented": "consented (UTC)"}


def raters_table(progress: pd.DataFrame) -> Table:
    """A test's raters and their progress (the listening store's progress frame): name, when invited
    and when they consented (``no`` before), ``submitted of trials``, then any further column
    with its name spaced and its values by :func:`value_text`."""
    known = ["name", "created", "consented", "submitted", "trials", "token"]
    extra = [c for c in progress.columns if c not in known]
    rows = []
    for _, r in progress.iterrows():
        consented = r.get("consented")
        rows.append([str(r["name"]), value_text(r["created"]),
                     "no" if consented is None or pd.isna(consented) else value_text(consented),
                     f"{count(r['submitted'])} of {count(r['trials'])}", *[value_text(r[c]) for c in extra]])
    return Table([RATER_COLUMNS["name"], RATER_COLUMNS["created"], RATER_COLUMNS["consented"], "trials done",
                  *[c.replace("_", " ") for c in extra]], rows, "raters",
                 records=records(progress.drop(columns=[c for c in ("token",) if c in progress.columns])))


# --- losses and models: `earshot losses`, `earshot models`, their `check` -------------------------


def registry_table(rows: list[tuple[str, str, str, str]], what: str) -> Table:
    """``earshot losses`` / ``earshot models``: (name, head or kind, description, origin) per entry."""
    second = "head" if what == "loss" else "kind"
    return Table([what, second, "description", "from"], [list(row) for row in rows],
                 align_numbers=False, records=[dict(zip([what, second, "description", "from"], row)) for row in rows])


def plugin_check_table(result: dict) -> Table:
    """``earshot losses check`` / ``earshot models check``: what was checked and measured, one row each."""
    rows = [] if "parameters" in result else [["origin", result["origin"]]]  # a model's row names it
    if "head" in result:
        rows.append(["decoder head", result["head"]])
    if "parameters" in result:
        rows += model_rows(result)
    for probe, row in result.get("probes", {}).items():
        rows.append([f"value on {probe}", f"{number(row['value'])} (gradient norm {number(row['grad_norm'])})"])
    rows.append(["training step", f"{number(result['step_ms'])} ms, {number(result['to_mse'])} × "
                 f"{'mse' if result['role'] == 'loss' else 'the gated-conv model'} on preset {result['preset']}"])
    return Table(["check", "result"], rows, f"{result['role']} {result['spec']}: every check passed",
                 align_numbers=False, records=[json_value(result)])


def model_rows(model: dict) -> list[list[str]]:
    """The model's rows of a run's configuration: name and origin, parameters per decoder head, latent rate."""
    parameters = model.get("parameters") or {}
    heads = ", ".join(f"{int(n):,} ({h}-channel head)" for h, n in parameters.items()) or MISSING
    latent, per_second = model.get("latent"), model.get("latent_per_second")
    hop = model.get("hop")
    per = (f"{latent} per {hop}-sample hop: {model.get('window')}-sample windows overlapped by half" if hop else
           f"{latent} per {model.get('window')}-sample window")  # runs recorded before the hop was
    rate = (f"{number(per_second)} values/s ({per}, at {model.get('sample_rate')} Hz)"
            if latent is not None and per_second is not None else MISSING)
    return [["model", f"{model.get('name', MISSING)} ({model.get('origin', MISSING)})"], ["parameters", heads],
            ["latent rate", rate]]


def plugin_origin(record: dict) -> str:
    """Where a run's plugin came from, as ``run.json`` records it: its file and sha256, or its package and version."""
    if record.get("kind") == "file":
        return f"{record.get('role', 'loss')} from file {record.get('path')} (sha256 {str(record.get('sha256'))[:12]})"
    package = record.get("package") or f"module {str(record.get('reference', '')).split(':')[0]}"
    return f"{record.get('role', 'loss')} {record.get('reference')} from {package} {record.get('version') or ''}".rstrip()


# ---------------------------------------------------------------------------
# Systems beside the losses: codecs, scored folders, the bitrate axis
# ---------------------------------------------------------------------------

BITRATE_TABLE_METRICS = ("si_sdr", "lsd", "mrstft", "stoi", "pesq_wb", "visqol_audio")  # the table's columns
KBPS_DECIMALS = 2


def kbps(value) -> str:
    """A bitrate in kbit/s, 2 decimals; – when unknown."""
    return fixed(value, KBPS_DECIMALS)


def codec_table(entries: dict[str, dict]) -> Table:
    """The codec baselines made: bitrate asked and measured, the delay removed, the command lines and versions."""
    rows = [[name, kbps(e.get("bitrate_asked_kbps")), kbps(e.get("bitrate_kbps")), str(e.get("bits_measured") or MISSING),
             count(e.get("delay_samples")), number(e.get("delay_ms")), " ; ".join(e.get("commands") or []),
             ", ".join(f"{k} {v}" if not str(v).startswith(k) else str(v) for k, v in (e.get("versions") or {}).items())]
            for name, e in entries.items()]
    return Table(["system", "asked kbit/s", "measured kbit/s", "bits counted", "delay (samples)", "delay (ms)",
                  "commands", "versions"], rows,
                 "codec baselines: each excerpt encoded and decoded by the codec's own tools; the bitrate measured "
                 "from the encoded files, the codec's constant delay found by cross-correlation and removed",
                 align_numbers=False, records=json_value([{"system": n, **e} for n, e in entries.items()]))


def scored_table(scored: list[dict]) -> Table:
    """What scoring did to each folder: files measured, the delay removed, the length differences trimmed."""
    rows = [[s["name"], count(s["items"]), count(s["delay_samples"]), number(s["delay_ms"]), count(s["cut_samples"]),
             count(s["padded_samples"]), number(s["longest_cut_ms"]), count(len(s["skipped"]))] for s in scored]
    return Table(["system", "files", "delay (samples)", "delay (ms)", "samples trimmed", "samples padded",
                  "largest length difference (ms)", "bad files left out"], rows,
                 "scored folders: one constant delay per system (cross-correlation) removed, then each file cut to "
                 "the shorter of it and its reference (padded with silence where a run's excerpt is longer)",
                 records=json_value(scored))


def bitrate_table(bitrates: pd.DataFrame, summary: pd.DataFrame, metric_info: dict, category: str,
                  latent_bits: int) -> Table:
    """Systems sorted by bitrate, with how each bitrate was obtained and the headline metrics' ``mean [CI]``
    (:data:`BITRATE_TABLE_METRICS` that the run has) in ``category``."""
    rows_for = summary[summary["category"] == category]
    metrics = [m for m in BITRATE_TABLE_METRICS if m in set(rows_for["metric"])]
    basis_words = {"nominal": f"nominal ({latent_bits} bits per latent)", "measured": "measured",
                   "given": "given", "unknown": MISSING}
    rows, raw = [], []
    for r in bitrates.to_dict("records"):
        cells = [r["system"], r["kind"], kbps(r["kbps"]), basis_words.get(r["basis"], r["basis"])]
        found = {}
        for metric in metrics:
            hit = rows_for[(rows_for["metric"] == metric) & (rows_for["loss"] == r["system"])]
            if hit.empty:
                cells.append(MISSING)
                continue
            h = hit.iloc[0]
            cells.append(metric_interval(metric, h["mean"], h["ci_low"], h["ci_high"], metric_info))
            found[metric] = {"mean": h["mean"], "ci_low": h["ci_low"], "ci_high": h["ci_high"]}
        rows.append(cells)
        raw.append({**r, "metrics": found})
    columns = ["system", "kind", "kbit/s", "bitrate"] + [f"{m} {direction(m, metric_info)}".strip() for m in metrics]
    caption = (f"{category}: every system by bitrate, lowest first. A trained loss's bitrate is nominal: its code's "
               f"latents per second × {latent_bits} bits (the code is neither quantised nor entropy-coded); a "
               f"codec's is measured from its encoded files")
    return Table(columns, rows, caption, records=json_value(raw))


def bench_table(result: dict) -> Table:
    """``earshot bench``: per loss its windows/s, step time, ratio to mse, peak memory and TFLOP/s (CUDA)."""
    rows = [[name, fixed(row["windows_per_s"], 1), fixed(row["step_ms"], 1), fixed(row["to_mse"], 2),
             fixed(row["peak_mb"], 0), "" if row["tflops"] is None else fixed(row["tflops"], 1)]
            for name, row in result["losses"].items()]
    return Table(["loss", "windows/s", "step ms", "× mse", "peak MB", "TFLOP/s"], rows,
                 f"{result['preset']} on {result['device_name']}, batch {result['batch']}",
                 records=json_value(list(result["losses"].values())))


def profile_table(loss: str, row: dict, found: dict) -> Table:
    """``earshot bench --profile``: one loss's costliest operators per training step."""
    kernels = "" if row["kernels_per_step"] is None else f", {row['kernels_per_step']:.0f} kernels per step"
    return Table(["operator", "ms/step", "share", "calls/step"],
                 [[op["op"][:60], fixed(op["ms_per_step"], 2), percent(op["share"]), fixed(op["calls_per_step"], 0)]
                  for op in row["top"]],
                 f"{loss} on {found['device_name']}, batch {found['batch']}{kernels}", records=json_value(row["top"]))


def data_table(categories: list[dict], root, sample_rate: int) -> Table:
    """``earshot data``: per category (and ``all``, in bold) its files and minutes, and the split's."""
    rows = [[c["category"], count(c["files"]), fixed(c["minutes"], 2), count(c["train_files"]), count(c["test_files"]),
             fixed(c["test_minutes"], 2)] for c in categories]
    return Table(["category", "files", "minutes", "train files", "test files", "test minutes"], rows,
                 f"{root} at {sample_rate} Hz", bold={(len(rows) - 1, j) for j in range(6)} if rows else set(),
                 records=json_value(categories))


def pack_bench_table(result: dict) -> Table:
    """``earshot bench --pack``: the grid's windows/s one job at a time and packed, each way's ratio."""
    base = result["windows_per_s"]["one_at_a_time"]
    return Table(["way", "windows/s", "× one at a time"],
                 [[name.replace("_", " "), fixed(rate, 1), fixed(rate / base, 2)]
                  for name, rate in result["windows_per_s"].items()],
                 f"{result['jobs']} jobs of {result['preset']} on {result['device_name']}, batch {result['batch']}")


def ab_pairs_table(pairs: pd.DataFrame, alpha: float = 0.05) -> Table:
    """A/B preference per pair of systems: the answers each way, no preference (count and share), the
    first's share of the decided trials [95 % CI], two-sided p and Holm's; the preferred system in bold."""
    rows = [[str(r["pair"]), count(r["raters"]), f"{count(r['prefer_first'])} / {count(r['prefer_second'])}",
             f"{count(r['no_preference'])} ({percent(r['no_preference_share'])})",
             proportion_interval(r["share_first"], r["ci_low"], r["ci_high"]), p_value(r["pvalue"]),
             p_value(r["p_holm"]), str(r["preferred"]) or MISSING] for _, r in pairs.iterrows()]
    return Table(["pair (first vs second)", "raters", "prefer first / second", "no preference",
                  "first preferred [95 % CI]", "p", "p (Holm)", "preferred"], rows,
                 f"A/B preference, every rater's trials pooled: the first system's share of the trials with a "
                 f"preference, Wilson score interval, exact two-sided binomial test against 50 %, Holm-corrected "
                 f"over the pairs, α = {alpha:g}",
                 bold={(i, 7) for i, row in enumerate(rows) if row[7] != MISSING}, records=records(pairs))


def ab_scale_table(scale: pd.DataFrame) -> Table:
    """The Bradley–Terry scale, highest first: comparisons, wins, scale [95 % CI] in logits."""
    rows = [[str(r["condition"]), count(r["comparisons"]), fixed(r["wins"], 1),
             interval(r["scale"], r["ci_low"], r["ci_high"], CORRELATION_DECIMALS)] for _, r in scale.iterrows()]
    return Table(["system", "comparisons", "wins", "Bradley–Terry scale [95 % CI]"], rows,
                 "Bradley–Terry scale (log strength, centred to mean 0; a difference of 1 is odds of e : 1 of being "
                 "preferred), maximum likelihood; no preference counts half a win to each side; Wald intervals from "
                 "the observed information, every trial counted as independent", records=records(scale))


# ---------------------------------------------------------------------------
# Ranking tests (results.ranking)
# ---------------------------------------------------------------------------

RANK_DECIMALS = 2


def rank_interval(mean, low, high) -> str:
    """A mean rank (1 = best) with its interval: ``1.25 [1.00, 1.60]``."""
    return interval(mean, low, high, RANK_DECIMALS)


def ranking_means_table(means: pd.DataFrame) -> Table:
    """Mean rank per condition, best first; the best in bold."""
    rows = [[str(r["condition"]), count(r["raters"]), count(r["trials"]),
             rank_interval(r["mean_rank"], r["ci_low"], r["ci_high"]), f"{count(r['first'])} of {count(r['trials'])}"]
            for _, r in means.iterrows()]
    return Table(["condition", "raters", "trials", "mean rank [95 % CI]", "ranked best"], rows,
                 "ranking, 1 = best: mean over raters of each rater's mean rank over items; 95 % crossed bootstrap "
                 "interval resampling raters and items together", bold={(0, 3)} if rows else set(),
                 records=records(means))


def ranking_friedman_sentence(friedman: dict) -> str:
    """The Friedman test of a ranking test in one sentence, or why it was not computed."""
    if friedman.get("note"):
        return f"Friedman test not computed: {friedman['note']}"
    return (f"Friedman test over the {friedman['conditions']} conditions with {friedman['blocks']} trials "
            f"(rater × item) as blocks: χ² = {statistic(friedman['statistic'])} with "
            f"{friedman['conditions'] - 1} df, {p_text(friedman['pvalue'])}, "
            f"Kendall's W = {correlation(friedman['kendalls_w'])}.")


def ranking_pairwise_table(pairwise: pd.DataFrame, alpha: float = 0.05) -> Table:
    """Pairwise Wilcoxon signed-rank tests of a ranking (Holm): a significant pair's ``yes`` in bold."""
    rows = [[difference(r["a"], r["b"]), count(r["n"]), fixed(r["mean_difference"], RANK_DECIMALS),
             statistic(r["statistic"]), p_value(r["pvalue"]), p_value(r["p_holm"]), yes_no(r["significant"]),
             correlation(r["rank_biserial"])] for _, r in pairwise.iterrows()]
    return Table(["difference", "trials", "mean rank difference", "W", "p", "p (Holm)", "significant",
                  "r (rank-biserial)"], rows,
                 f"pairwise Wilcoxon signed-rank tests over the trials, Holm-corrected, α = {alpha:g}; each pair "
                 "written better-ranked − worse-ranked, so a negative rank difference and r > 0 favour the first",
                 bold={(i, 6) for i, row in enumerate(rows) if row[6] == "yes"}, records=records(pairwise))


# ---------------------------------------------------------------------------
# MOS / ACR (results.mos)
# ---------------------------------------------------------------------------

MOS_DECIMALS = 2


def mos_interval(mean, low, high, clipped: bool = False) -> str:
    """A MOS with its interval (the MOS alone without one), marked ``*`` when cut at an end of the 1–5 scale."""
    return interval(mean, low, high, MOS_DECIMALS) + (CLIPPED_MARK if clipped and _finite(low) is not None else "")


def mos_table(summary: pd.DataFrame, gold: bool) -> Table:
    """MOS per system condition with its 95 % interval over raters and items, for every rater and, when the
    test had gold questions, without the raters they flagged."""
    rows = []
    for _, r in summary.iterrows():
        row = [str(r["condition"]), count(r["raters"]), count(r["items"]), count(r["ratings"]),
               mos_interval(r["mos"], r["ci_low"], r["ci_high"], bool(r["clipped"]))]
        if gold:
            row += [count(r["screened_raters"]),
                    mos_interval(r["screened_mos"], r["screened_ci_low"], r["screened_ci_high"],
                                 bool(r["screened_clipped"]))]
        rows.append(row)
    columns = ["condition", "raters", "items", "ratings", "MOS [95 % CI]"]
    if gold:
        columns += ["unflagged raters", "MOS of unflagged [95 % CI]"]
    clipped = (f"; {CLIPPED_MARK}: the interval reached past the 1–5 scale and is cut at its end"
               if summary[["clipped", "screened_clipped"]].astype(bool).any().any() else "") if len(summary) else ""
    unflagged = "; beside it, the MOS of the raters whom the gold questions did not flag" if gold else ""
    return Table(columns, rows,
                 "mean opinion score (ITU-T P.800 ACR: 5 Excellent, 4 Good, 3 Fair, 2 Poor, 1 Bad) per condition; "
                 "the 95 % interval counts raters and items as samples (two-way cluster-robust standard error, "
                 f"t with min(raters, items) − 1 degrees of freedom){unflagged}{clipped}", records=records(summary))


def mos_raters_table(raters: pd.DataFrame, high: float, low: float) -> Table:
    """Gold questions per rater: passed of asked, flagged (bold when yes)."""
    rows = [[str(r["rater"]), count(r["ratings"]), _of(r["gold_passed"], r["gold"]), yes_no(r["flagged"])]
            for _, r in raters.iterrows()]
    return Table(["rater", "ratings", "gold questions passed", "flagged"], rows,
                 f"gold questions per rater (ITU-T P.808): the clean reference must be rated at least {high:g} and "
                 f"the low anchor at most {low:g}; a rater who fails any is flagged, never dropped",
                 bold={(i, 3) for i, row in enumerate(rows) if row[3] == "yes"}, records=records(raters))


# --- attention checks (results.attention): every test type ----------------------------------------


def attention_table(checks: pd.DataFrame) -> Table:
    """Per rater, the attention checks passed of those answered, and whether they are flagged (failed any)."""
    rows = [[str(r["rater"]), f"{count(r['passed'])} of {count(r['checks'])}", yes_no(bool(r["failed"]))]
            for _, r in checks.iterrows()]
    return Table(["rater", ATTENTION_COLUMN, "flagged"], rows,
                 "attention checks per rater (trials with a known answer, not part of the analysis); a rater who "
                 "failed any is flagged", bold={(i, 2) for i, row in enumerate(rows) if row[2] == "yes"},
                 records=records(checks))


def attention_sentence(failed: list[str]) -> str:
    """Who failed an attention check, and that they are flagged, not dropped."""
    return (f"flagged: {', '.join(failed)} failed an attention check; the tables show every rater, and the first "
            "again without them")


def without_raters(table: Table, raters: list[str]) -> Table:
    """``table`` recomputed without ``raters``, its caption saying so."""
    return Table(table.columns, table.rows, f"{table.caption}, without the raters who failed an attention check "
                 f"({', '.join(raters)})", table.bold, table.main, table.align_numbers, table.collapsed, table.records)
