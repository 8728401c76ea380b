"""MUSHRA listening-test statistics: readers, post-screening, intervals and tests.

Ratings are a long table, one row per rating: ``rater, item, condition, score, kind``,
with ``kind`` one of ``system`` (a job of the run, e.g. ``mse-seed0``), ``reference``
(the hidden reference, condition ``reference``) or ``anchor`` (``anchor-low``,
``anchor-mid``; webMUSHRA's ``anchor35``, ``anchor70``). Scores are on the 0–100 MUSHRA
scale.

What follows ITU-R BS.1534-3 ("Method for the subjective assessment of intermediate
quality level of audio systems", 2015):

- post-screening (§4.1.2): an assessor who rates the hidden reference below 90 for more
  than 15 % of the items is excluded; so, commonly, is one who rates the mid anchor
  above 90 for more than 15 %. Exactly 15 % is kept. N before and after are reported.
- per condition (§9.3): mean and 95 % Student-t interval over assessors, each assessor
  first averaged over items, so an assessor is one independent observation.
  Beside it, a crossed bootstrap interval resamples assessors and items together: ratings
  of the same item are not independent either, and the t-interval takes the items as fixed.
- because MUSHRA scores are bounded and often skewed, the robust default is a Friedman
  test over the systems, then pairwise Wilcoxon signed-rank tests with Holm's
  correction (Mendonça & Delikaris-Manias, "Statistical tests with MUSHRA data", AES
  144, 2018), with a matched-pairs rank-biserial effect size.

Anchors and the hidden reference are summarised apart from the systems; the tests
compare systems only (the controls differ from them by construction).
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from earshot.results.stats import crossed_bootstrap_ci, holm, mean_ci, rank_biserial

REFERENCE = "reference"  # the hidden reference's condition name
ANCHOR_PREFIX = "anchor"  # every condition whose name starts with this is an anchor
MID_ANCHORS = ("anchor-mid", "anchor70")  # earshot's and webMUSHRA's mid anchor (7 kHz low-pass)
LOW_ANCHORS = ("anchor-low", "anchor35")  # 3.5 kHz low-pass

SCORE_MIN, SCORE_MAX = 0.0, 100.0  # the MUSHRA scale
#: Raters a condition needs for an interval of its mean: with two, the t-interval's critical value is
#: 12.7 and it runs far past the scale, and a bootstrap over two raters knows nothing of their spread.
MIN_INTERVAL_RATERS = 3

# BS.1534-3 post-screening defaults.
REFERENCE_THRESHOLD = 90.0  # score: the hidden reference rated below this counts against a rater
REFERENCE_MAX_FRACTION = 0.15  # of a rater's items; more than this excludes the rater
ANCHOR_THRESHOLD = 90.0  # score: the mid anchor rated above this counts against a rater
ANCHOR_MAX_FRACTION = 0.15
# An attention check (the hidden reference against the low anchor, nothing else): the reference
# must reach the post-screening threshold and the anchor lie at least this far below it, a grade and
# a half of the five-grade scale, which the 3.5 kHz anchor always does for a rater who listens.
ATTENTION_GAP = 30.0
FRACTION_TOLERANCE = 1e-9  # so that 3/20 is "exactly 15 %", whatever the float rounding

RATING_COLUMNS = ["rater", "item", "condition", "score", "kind"]  # what the statistics here use

#: The ratings table: how ratings cross from the listening app to ``results``, one row per
#: submitted rating. It is what ``earshot listen export`` writes and what the CLI hands the
#: report and ``listen analyze``; ``results`` never reads the listening database itself.
#:
#: - ``test``: the listening test's name; ``type``: ``mushra`` (one row per rating), ``abx`` (one
#:   row per trial: ``score`` is empty and ``condition`` is X's) or ``mos`` (one row per trial: its one
#:   stimulus' ACR score, 1-5; a trial of the reference or the low anchor is a gold question);
#: - ``rater``: the rater's name (or an anonymous id); ``self_registered``: true when the rater
#:   joined under a typed name on the start page, false for an invitation link;
#: - ``item``: the excerpt (the run's item name, e.g. ``speech-0``); ``category``: its category;
#: - ``condition``: the run's job for a system (``mse-seed0``), ``reference`` for the hidden
#:   reference, ``anchor-low`` / ``anchor-mid`` for the anchors; ``kind``: ``system``,
#:   ``reference`` or ``anchor``;
#: - ``score``: the MUSHRA score, 0–100 (MOS: 1–5);
#: - ``play_count``, ``play_seconds``: how often and how long the rater played this stimulus;
#: - ``gain_db``: the level-matching gain applied to the stimulus;
#: - ``seconds_spent``, ``submitted_at``, ``submissions``: the trial's time on page, its last
#:   submission (UTC) and how many times it was submitted;
#: - ABX only (empty for MUSHRA): ``a``, ``b``: the conditions played as A and as B; ``x``: the one X
#:   was; ``answer``: the one the rater said X was; ``correct``: whether they were right.
#: - A/B preference (``type`` ``ab``, one row per trial: ``score`` and ``x`` empty, ``condition`` is A's):
#:   ``a``, ``b`` as for ABX; ``answer``: the condition preferred, or ``none`` for no preference.
#: - ranking only: ``rank``, the stimulus' place in the rater's order of the trial, 1 = best
#:   (``score`` is empty; the labelled reference has no row, except in an attention trial).
#: - Crowd sessions: ``attention``: the trial was an attention check (a known answer, judged by
#:   ``results.attention``, never part of the test's analysis); ``participant_id``: the id a crowd
#:   platform passed in the start page's URL; ``completion_code``: the code the rater was shown at the
#:   end; ``sample_rate``, ``user_agent``: the rater's browser audio output rate (Hz) and user agent.
#:
#: Only ``rater, item, condition, score`` are required by the statistics (``kind`` is derived
#: from the condition's name when absent), so a hand-made long CSV works too.
RATINGS_TABLE_COLUMNS = ["test", "type", "rater", "self_registered", "item", "category", "condition", "kind", "score",
                         "play_count", "play_seconds", "gain_db", "seconds_spent", "submitted_at", "submissions",
                         "a", "b", "x", "answer", "correct", "rank",
                         "attention", "participant_id", "completion_code", "sample_rate", "user_agent"]
ABX_COLUMNS = ["a", "b", "x", "answer"]  # what an ABX row adds; ``correct`` is derived from them
PAIR_COLUMNS = ["a", "b", "answer"]  # what an A/B preference row adds
ANSWER_TYPES = {"abx": ABX_COLUMNS, "ab": PAIR_COLUMNS}  # rows with an answer and no score, by type
KIND_ORDER = {"system": 0, "reference": 1, "anchor": 2}


class RatingsError(ValueError):
    """A ratings file or table that cannot be read; the message names the row and column."""


# ---------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------


def condition_kind(condition: str) -> str:
    """``reference``, ``anchor`` or ``system`` from a condition's name."""
    name = str(condition)
    if name == REFERENCE:
        return "reference"
    if name.lower().startswith(ANCHOR_PREFIX):
        return "anchor"
    return "system"


def normalise_ratings(frame: pd.DataFrame) -> pd.DataFrame:
    """The long ratings table with the standard columns and types; ``kind`` filled in.

    Accepts the listening app's ``ratings_frame`` (which has a ``test`` column too) or a
    hand-made table. Raises :class:`RatingsError` for a missing column.
    """
    missing = [c for c in ("rater", "item", "condition", "score") if c not in frame.columns]
    if missing:
        raise RatingsError(f"ratings table: missing column(s) {', '.join(missing)}")
    # ABX and A/B rows (an answer, no score) belong to their own modules; MUSHRA statistics read scores only.
    out = frame[~frame["type"].isin(list(ANSWER_TYPES))].copy() if "type" in frame.columns else frame.copy()
    for column in ("rater", "item", "condition"):
        out[column] = out[column].astype(str)
    out["score"] = pd.to_numeric(out["score"], errors="coerce").astype(float)
    if "kind" not in out.columns:
        out["kind"] = out["condition"].map(condition_kind)
    else:
        out["kind"] = out["kind"].fillna(out["condition"].map(condition_kind)).astype(str)
    keep = RATING_COLUMNS + [c for c in out.columns if c not in RATING_COLUMNS]
    return out[keep].reset_index(drop=True)


def _read_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.reader(handle))
    except OSError as exc:
        raise RatingsError(f"{path}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise RatingsError(f"{path}: not a text CSV file ({exc.__class__.__name__})") from None
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise RatingsError(f"{path}: empty file (no header row)")
    return [cell.strip() for cell in rows[0]], rows[1:]


def _cell(path: Path, line: int, header: list[str], row: list[str], column: str) -> str:
    index = header.index(column)
    if index >= len(row):
        raise RatingsError(f"{path}: row {line}, column '{column}': missing (the row has {len(row)} "
                           f"of {len(header)} fields)")
    value = row[index].strip()
    if not value:
        raise RatingsError(f"{path}: row {line}, column '{column}': empty")
    return value


def _score(path: Path, line: int, text: str, column: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RatingsError(f"{path}: row {line}, column '{column}': {text!r} is not a number") from None
    if not (SCORE_MIN <= value <= SCORE_MAX):
        raise RatingsError(f"{path}: row {line}, column '{column}': {text} is outside the MUSHRA scale "
                           f"{SCORE_MIN:g}-{SCORE_MAX:g}")
    return value


def read_long_csv(path: str | Path) -> pd.DataFrame:
    """A long ratings CSV: ``rater, item, condition, score`` (more columns are kept); an export of
    ``earshot listen export`` with ABX or A/B rows (``type`` ``abx``, ``ab``) keeps them, with ``a, b, x, answer``,
    and ranking rows (``type`` ``ranking``) with their ``kind`` and ``rank``.

    The hidden reference is condition ``reference``, anchors start with ``anchor``.
    Row numbers in errors are the file's line numbers (the header is row 1).

    Raises:
        RatingsError: unreadable file, a missing column, an empty cell, a score that is
            not a number or is outside 0–100.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    required = ["rater", "item", "condition", "score"]
    missing = [c for c in required if c not in header]
    if missing:
        raise RatingsError(f"{path}: row 1 (header): missing column(s) {', '.join(missing)} "
                           f"(a long ratings CSV has rater, item, condition, score)")
    records = []
    abx = "type" in header
    checks = "attention" in header
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines, e.g. a trailing newline twice
        record = {c: _cell(path, number, header, row, c) for c in ("rater", "item", "condition")}
        kind = _cell(path, number, header, row, "type") if abx else "mushra"
        if kind in ANSWER_TYPES:
            # An ABX or A/B answer (``listen export``): no score, the conditions played and the one named.
            needed = ANSWER_TYPES[kind]
            missing = [c for c in needed if c not in header]
            if missing:
                what = "an ABX row" if kind == "abx" else "an A/B row"
                raise RatingsError(f"{path}: row {number}: {what} needs column(s) {', '.join(missing)}")
            record.update({c: _cell(path, number, header, row, c) for c in needed}, type=kind, score=math.nan)
        elif kind == "ranking":
            if "rank" not in header:
                raise RatingsError(f"{path}: row {number}: a ranking row needs column(s) rank")
            record.update(type="ranking", score=math.nan, kind=_cell(path, number, header, row, "kind")
                          if "kind" in header else condition_kind(record["condition"]),
                          rank=_rank(path, number, _cell(path, number, header, row, "rank")))
        else:
            record["score"] = _score(path, number, _cell(path, number, header, row, "score"), "score")
            if abx:  # a type whose rows are scores (MOS: 1-5) keeps its name; anything else is MUSHRA
                record["type"] = "mos" if _cell(path, number, header, row, "type") == "mos" else "mushra"
        if checks:  # an attention check's answer, which the analysis keeps apart
            at = header.index("attention")
            record["attention"] = at < len(row) and row[at].strip().lower() in ("true", "1", "yes")
        records.append(record)
    flags = ["attention"] if checks else []
    columns = required + (["type", *ABX_COLUMNS, "kind", "rank"] if abx else []) + flags
    frame = pd.DataFrame(records, columns=columns)
    if abx and frame["type"].isin([*ANSWER_TYPES, "ranking"]).any():
        return frame.drop(columns=[c for c in ("kind", "rank") if frame[c].isna().all()])
    if abx and (frame["type"] == "mos").any():
        return normalise_ratings(frame[[*required, "type", *flags]])
    return normalise_ratings(frame[required + flags])


def _rank(path: Path, line: int, text: str) -> int:
    try:
        value = int(float(text))
    except (ValueError, OverflowError):
        raise RatingsError(f"{path}: row {line}, column 'rank': {text!r} is not a number") from None
    if value < 1 or value != float(text):
        raise RatingsError(f"{path}: row {line}, column 'rank': {text} is not a rank (1, 2, 3…)")
    return value


WEBMUSHRA_REQUIRED = ("trial_id", "rating_stimulus", "rating_score")


def read_webmushra_csv(path: str | Path) -> pd.DataFrame:
    """webMUSHRA's ``results/<test>/mushra.csv``.

    Its header is ``session_test_id``, the participant fields the test asked for, then
    ``trial_id, rating_stimulus, rating_score, rating_time, rating_comment`` (newer
    versions add ``session_uuid``); see webMUSHRA's ``service/write.php``. The rater is
    ``session_uuid`` when present, else the participant fields joined (so two sessions of
    one named participant are one rater); the item is ``trial_id``; the condition is
    ``rating_stimulus`` (hidden reference ``reference``, anchors ``anchor35``,
    ``anchor70``).

    Raises:
        RatingsError: as :func:`read_long_csv`, naming the webMUSHRA column.
    """
    path = Path(path)
    header, rows = _read_rows(path)
    missing = [c for c in WEBMUSHRA_REQUIRED if c not in header]
    if missing:
        raise RatingsError(f"{path}: row 1 (header): missing column(s) {', '.join(missing)} "
                           f"(a webMUSHRA mushra.csv has trial_id, rating_stimulus, rating_score)")
    if "session_uuid" in header:
        rater_columns = ["session_uuid"]
    else:
        start = header.index("session_test_id") + 1 if "session_test_id" in header else 0
        rater_columns = header[start:header.index("trial_id")]
        if not rater_columns:
            raise RatingsError(f"{path}: row 1 (header): no session_uuid and no participant columns "
                               f"before trial_id, so raters cannot be told apart")
    records = []
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        rater = "/".join(_cell(path, number, header, row, c) for c in rater_columns)
        records.append({"rater": rater, "item": _cell(path, number, header, row, "trial_id"),
                        "condition": _cell(path, number, header, row, "rating_stimulus"),
                        "score": _score(path, number, _cell(path, number, header, row, "rating_score"),
                                        "rating_score")})
    return normalise_ratings(pd.DataFrame(records, columns=["rater", "item", "condition", "score"]))


def read_ratings(path: str | Path) -> pd.DataFrame:
    """A ratings CSV in either format, told apart by its header (webMUSHRA has ``rating_stimulus``)."""
    path = Path(path)
    header, _ = _read_rows(path)
    if "rating_stimulus" in header:
        return read_webmushra_csv(path)
    return read_long_csv(path)


def attention_passed(rows: pd.DataFrame) -> bool:
    """Whether one rater passed one MUSHRA attention check (its rows: the hidden reference and the low
    anchor): the reference at least :data:`REFERENCE_THRESHOLD` and the anchor at least
    :data:`ATTENTION_GAP` below it."""
    scores = pd.to_numeric(rows["score"], errors="coerce")
    conditions = rows["condition"].astype(str)
    reference = scores[conditions == REFERENCE]
    anchors = scores[conditions.str.lower().str.startswith(ANCHOR_PREFIX)]
    if reference.empty or anchors.empty or reference.isna().any() or anchors.isna().any():
        return False
    return bool(reference.min() >= REFERENCE_THRESHOLD and anchors.max() <= reference.min() - ATTENTION_GAP)


# ---------------------------------------------------------------------------
# Post-screening
# ---------------------------------------------------------------------------


@dataclass
class Screening:
    """The outcome of post-screening: the kept ratings and why each rater went or stayed."""

    ratings: pd.DataFrame  # kept raters only
    raters: pd.DataFrame  # one row per rater: counts, fractions, excluded, reason
    n_before: int
    n_after: int
    excluded: list[str]
    rules: str  # the rules applied, in words, for the report


def _fraction_per_rater(ratings: pd.DataFrame, conditions: tuple[str, ...] | str,
                        flag) -> pd.DataFrame:
    names = (conditions,) if isinstance(conditions, str) else conditions
    rows = ratings[ratings["condition"].isin(names)]
    per_item = rows.groupby(["rater", "item"])["score"].mean().reset_index()  # repeated trials: their mean
    per_item["flag"] = flag(per_item["score"])
    counted = per_item.groupby("rater")["flag"].agg(["sum", "count"])
    return counted.rename(columns={"sum": "flagged", "count": "items"})


def post_screen(ratings: pd.DataFrame, reference_threshold: float = REFERENCE_THRESHOLD,
                reference_max_fraction: float = REFERENCE_MAX_FRACTION,
                anchor_threshold: float | None = ANCHOR_THRESHOLD,
                anchor_max_fraction: float = ANCHOR_MAX_FRACTION,
                mid_anchor: str | tuple[str, ...] = MID_ANCHORS,
                attention: pd.DataFrame | None = None) -> Screening:
    """Exclude raters per ITU-R BS.1534-3 §4.1.2.

    A rater is excluded who rates the hidden reference below ``reference_threshold`` for
    more than ``reference_max_fraction`` of the items they rated it on, or (unless
    ``anchor_threshold`` is None) the mid anchor above ``anchor_threshold`` for more than
    ``anchor_max_fraction`` of theirs. A fraction exactly at the limit is kept. A rater
    who never rated the hidden reference cannot be screened and is kept, with a note.

    ``attention``: the raters' attention checks (``results.attention.attention_raters``); a rater who
    failed any is excluded too, and the table says how many they passed.
    """
    ratings = normalise_ratings(ratings)
    raters = sorted(ratings["rater"].unique())
    table = pd.DataFrame(index=pd.Index(raters, name="rater"))
    table["items"] = ratings.groupby("rater")["item"].nunique()
    ref = _fraction_per_rater(ratings, REFERENCE, lambda s: s < reference_threshold)
    table["reference_items"] = ref["items"]
    table["reference_below"] = ref["flagged"]
    table["reference_below_fraction"] = ref["flagged"] / ref["items"]
    anchor = _fraction_per_rater(ratings, mid_anchor, lambda s: s > (anchor_threshold or SCORE_MAX))
    table["mid_anchor_items"] = anchor["items"]
    table["mid_anchor_above"] = anchor["flagged"]
    table["mid_anchor_above_fraction"] = anchor["flagged"] / anchor["items"]
    table = table.fillna({"reference_items": 0, "reference_below": 0, "mid_anchor_items": 0,
                          "mid_anchor_above": 0})
    for column in ("items", "reference_items", "reference_below", "mid_anchor_items", "mid_anchor_above"):
        table[column] = table[column].astype(int)

    reasons = []
    for rater, row in table.iterrows():
        why = []
        if row["reference_items"] == 0:
            why.append("not screened: never rated the hidden reference")
        elif row["reference_below_fraction"] > reference_max_fraction + FRACTION_TOLERANCE:
            why.append(f"hidden reference below {reference_threshold:g} on {int(row['reference_below'])} of "
                       f"{int(row['reference_items'])} items ({100 * row['reference_below_fraction']:.0f} % > "
                       f"{100 * reference_max_fraction:g} %)")
        if (anchor_threshold is not None and row["mid_anchor_items"] > 0
                and row["mid_anchor_above_fraction"] > anchor_max_fraction + FRACTION_TOLERANCE):
            why.append(f"mid anchor above {anchor_threshold:g} on {int(row['mid_anchor_above'])} of "
                       f"{int(row['mid_anchor_items'])} items ({100 * row['mid_anchor_above_fraction']:.0f} % > "
                       f"{100 * anchor_max_fraction:g} %)")
        reasons.append("; ".join(why))
    failed: set[str] = set()
    if attention is not None and len(attention):
        checks = attention.set_index("rater")
        table["attention_checks"] = checks["checks"].reindex(table.index)
        table["attention_passed"] = checks["passed"].reindex(table.index)
        for i, rater in enumerate(table.index):
            if rater in checks.index and checks.loc[rater, "failed"]:
                failed.add(rater)
                row = checks.loc[rater]
                note = f"failed an attention check ({int(row['passed'])} of {int(row['checks'])} passed)"
                reasons[i] = "; ".join([r for r in [reasons[i]] if r and not r.startswith("not screened")] + [note])
    table["reason"] = reasons
    table["excluded"] = [(bool(r) and not r.startswith("not screened")) or rater in failed
                         for rater, r in zip(table.index, reasons)]
    excluded = [str(r) for r in table.index[table["excluded"]]]
    kept = ratings[~ratings["rater"].isin(excluded)].reset_index(drop=True)
    rules = (f"excluded: hidden reference < {reference_threshold:g} on more than "
             f"{100 * reference_max_fraction:g} % of items")
    if anchor_threshold is not None:
        rules += f", or mid anchor > {anchor_threshold:g} on more than {100 * anchor_max_fraction:g} % of items"
    rules += " (ITU-R BS.1534-3 §4.1.2)"
    if attention is not None and len(attention):
        rules += (f"; and every rater who failed an attention check (hidden reference < {REFERENCE_THRESHOLD:g}, "
                  f"or the low anchor less than {ATTENTION_GAP:g} below it)")
    return Screening(ratings=kept, raters=table.reset_index(), n_before=len(raters),
                     n_after=len(raters) - len(excluded), excluded=excluded, rules=rules)


# ---------------------------------------------------------------------------
# Per-condition means and tests
# ---------------------------------------------------------------------------


def _ensure(ratings: pd.DataFrame) -> pd.DataFrame:
    """Hand-made tables may lack ``kind`` or have string scores: normalise them once."""
    if "kind" in ratings.columns and pd.api.types.is_float_dtype(ratings["score"]):
        return ratings
    return normalise_ratings(ratings)


def conditions_in_order(ratings: pd.DataFrame, system_order: list[str] | None = None) -> list[str]:
    """Systems (in ``system_order``, e.g. the run's job order, then alphabetically), the
    hidden reference, then anchors (alphabetically)."""
    ratings = _ensure(ratings)
    kinds = ratings.groupby("condition")["kind"].first()
    rank = {name: i for i, name in enumerate(system_order or [])}
    return sorted(kinds.index, key=lambda c: (KIND_ORDER.get(kinds[c], 3), rank.get(c, len(rank)), c))


def rater_means(ratings: pd.DataFrame) -> pd.DataFrame:
    """rater × condition: each rater's mean score over the items they rated."""
    return ratings.pivot_table(index="rater", columns="condition", values="score", aggfunc="mean")


def condition_summary(ratings: pd.DataFrame, confidence: float = 0.95,
                      system_order: list[str] | None = None) -> pd.DataFrame:
    """Mean per condition over raters (each rater averaged over items first), with two intervals.

    ``ci_low, ci_high``: BS.1534-3's Student-t interval over the raters' means (items taken
    as fixed). ``crossed_low, crossed_high``: the crossed bootstrap over raters and items
    together (:func:`results.stats.crossed_bootstrap_ci`, seeded), which also counts the
    spread between items, so its conclusions extend to other items of the same kind.

    Both intervals are NaN below :data:`MIN_INTERVAL_RATERS` raters. A t-interval reaching past
    the 0–100 scale is cut at its end (the mean cannot lie outside it, so the cut interval
    covers at least as often) and ``ci_clipped`` says so.

    Returns:
        Columns ``condition, kind, raters, ratings, mean, ci_low, ci_high, ci_clipped,
        crossed_low, crossed_high, median``, systems first, then the hidden reference and anchors.
    """
    ratings = _ensure(ratings) if len(ratings) else ratings
    columns = ["condition", "kind", "raters", "ratings", "mean", "ci_low", "ci_high", "ci_clipped", "crossed_low",
               "crossed_high", "median"]
    if ratings.empty:
        return pd.DataFrame(columns=columns)
    means = rater_means(ratings)
    kinds = ratings.groupby("condition")["kind"].first()
    counts = ratings.groupby("condition")["score"].count()
    rows = []
    for condition in conditions_in_order(ratings, system_order):
        per_rater = means[condition].dropna()
        mean, low, high = mean_ci(per_rater.values, confidence)
        scores = ratings[ratings["condition"] == condition].pivot_table(index="rater", columns="item",
                                                                          values="score", aggfunc="mean")
        _, crossed_low, crossed_high = crossed_bootstrap_ci(scores.to_numpy(dtype=float), confidence)
        if per_rater.size < MIN_INTERVAL_RATERS:
            low = high = crossed_low = crossed_high = math.nan
        clipped = bool(low < SCORE_MIN or high > SCORE_MAX)  # False for NaN
        if clipped:
            low, high = max(low, SCORE_MIN), min(high, SCORE_MAX)
        rows.append({"condition": condition, "kind": kinds[condition], "raters": int(per_rater.size),
                     "ratings": int(counts[condition]), "mean": mean, "ci_low": low, "ci_high": high,
                     "ci_clipped": clipped, "crossed_low": crossed_low, "crossed_high": crossed_high,
                     "median": float(per_rater.median()) if per_rater.size else math.nan})
    return pd.DataFrame(rows, columns=columns)


def _blocks(ratings: pd.DataFrame, conditions: list[str], blocks: str) -> pd.DataFrame:
    """block × condition table of scores, complete blocks only."""
    rows = ratings[ratings["condition"].isin(conditions)]
    if blocks == "rater":
        wide = rows.pivot_table(index="rater", columns="condition", values="score", aggfunc="mean")
    elif blocks == "trial":
        wide = rows.pivot_table(index=["rater", "item"], columns="condition", values="score", aggfunc="mean")
    else:
        raise ValueError(f"blocks must be 'rater' or 'trial', not {blocks!r}")
    return wide.reindex(columns=conditions)


def friedman_test(ratings: pd.DataFrame, conditions: list[str] | None = None, blocks: str = "rater") -> dict:
    """Friedman's rank test that the conditions do not differ, with Kendall's W.

    Blocks are raters (each rater's mean over items, the default: raters are the
    independent units) or ``"trial"`` (rater × item). Blocks missing a condition are
    dropped. See Friedman, JASA 32 (1937); W = χ² / (n (k − 1)).

    Returns:
        ``statistic, pvalue, kendalls_w, blocks, conditions`` and ``note`` (why it could
        not be computed; empty when it was).
    """
    ratings = _ensure(ratings) if len(ratings) else ratings
    conditions = conditions or [c for c in conditions_in_order(ratings)
                                if condition_kind(c) == "system"]
    result = {"statistic": math.nan, "pvalue": math.nan, "kendalls_w": math.nan, "blocks": 0,
              "conditions": len(conditions), "note": ""}
    if len(conditions) < 3:
        result["note"] = f"needs at least 3 systems (has {len(conditions)}); see the pairwise test"
        return result
    wide = _blocks(ratings, conditions, blocks).dropna()
    result["blocks"] = len(wide)
    if len(wide) < 2:
        result["note"] = f"needs at least 2 complete {blocks}s (has {len(wide)})"
        return result
    statistic, pvalue = stats.friedmanchisquare(*(wide[c].to_numpy() for c in conditions))
    result.update(statistic=float(statistic), pvalue=float(pvalue),
                  kendalls_w=float(statistic) / (len(wide) * (len(conditions) - 1)))
    return result


def pairwise_wilcoxon(ratings: pd.DataFrame, conditions: list[str] | None = None, blocks: str = "rater",
                      alpha: float = 0.05) -> pd.DataFrame:
    """Wilcoxon signed-rank test for every pair of systems, Holm-corrected, with effect sizes.

    Each pair uses the blocks (raters, or rater × item trials) that rated both. Zero
    differences are dropped (Wilcoxon's own rule); scipy picks the exact distribution for
    small samples without ties. See Wilcoxon, Biometrics Bull. 1 (1945); Holm (1979);
    the effect size is the matched-pairs rank-biserial correlation (Kerby 2014), positive
    when ``a`` scores higher.

    Returns:
        Columns ``a, b, n, mean_difference, median_difference, statistic, pvalue,
        p_holm, significant, rank_biserial``.
    """
    ratings = _ensure(ratings) if len(ratings) else ratings
    conditions = conditions or [c for c in conditions_in_order(ratings) if condition_kind(c) == "system"]
    wide = _blocks(ratings, conditions, blocks)
    rows = []
    for a, b in itertools.combinations(conditions, 2):
        pair = wide[[a, b]].dropna()
        d = (pair[a] - pair[b]).to_numpy()
        statistic = pvalue = math.nan
        if np.count_nonzero(d) >= 1:
            result = stats.wilcoxon(pair[a], pair[b], zero_method="wilcox", alternative="two-sided")
            statistic, pvalue = float(result.statistic), float(result.pvalue)
        rows.append({"a": a, "b": b, "n": len(pair), "mean_difference": float(d.mean()) if d.size else math.nan,
                     "median_difference": float(np.median(d)) if d.size else math.nan,
                     "statistic": statistic, "pvalue": pvalue, "rank_biserial": rank_biserial(pair[a], pair[b])})
    table = pd.DataFrame(rows, columns=["a", "b", "n", "mean_difference", "median_difference", "statistic",
                                        "pvalue", "rank_biserial"])
    table.insert(7, "p_holm", holm(table["pvalue"].to_numpy()) if len(table) else [])
    table.insert(8, "significant", table["p_holm"] < alpha)
    return table


def mixed_model(ratings: pd.DataFrame, conditions: list[str] | None = None) -> dict:
    """Linear mixed model: score ~ condition, crossed random intercepts for rater and item.

    Fitted with statsmodels' MixedLM, one group holding every rating and the rater and
    item intercepts as variance components (the statsmodels way to cross random effects;
    Baayen, Davidson & Bates, J. Mem. Lang. 59, 2008). The first condition is the
    baseline; the other coefficients are differences from it. Only those contrasts are
    returned: the intercept's test (the baseline's mean against 0) answers no question.

    Returns:
        ``fixed`` (DataFrame: a, b, estimate, ci_low, ci_high, pvalue; one row per contrast
        ``a − b``, b the baseline), ``variance`` (dict: rater, item, residual), ``note``
        (empty, or why it was not fitted).
    """
    ratings = _ensure(ratings) if len(ratings) else ratings
    conditions = conditions or [c for c in conditions_in_order(ratings) if condition_kind(c) == "system"]
    out = {"fixed": pd.DataFrame(), "variance": {}, "note": ""}
    rows = ratings[ratings["condition"].isin(conditions)].copy()
    if len(conditions) < 2 or rows["rater"].nunique() < 2 or rows["item"].nunique() < 2:
        out["note"] = "needs at least 2 systems, 2 raters and 2 items"
        return out
    try:
        import warnings

        import statsmodels.formula.api as smf
    except ImportError:
        out["note"] = "statsmodels is not installed (pip install statsmodels)"
        return out
    rows["condition"] = pd.Categorical(rows["condition"], categories=conditions)
    rows["group"] = 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence chatter; the note below says if it failed
            model = smf.mixedlm("score ~ C(condition)", rows, groups="group", re_formula="0",
                                vc_formula={"rater": "0 + C(rater)", "item": "0 + C(item)"})
            fit = model.fit(reml=True, method=["lbfgs", "powell"])  # powell when lbfgs stalls at a boundary
    except Exception as exc:  # singular designs, non-convergence: report, never crash the report
        out["note"] = f"the mixed model could not be fitted ({exc.__class__.__name__}: {exc})"
        return out
    ci = fit.conf_int()
    names = [n for n in fit.fe_params.index if n != "Intercept"]
    fixed = pd.DataFrame({"a": [n.replace("C(condition)[T.", "").rstrip("]") for n in names],
                          "b": conditions[0], "estimate": fit.fe_params[names].values,
                          "ci_low": ci.loc[names, 0].values, "ci_high": ci.loc[names, 1].values,
                          "pvalue": fit.pvalues[names].values})
    vc = dict(zip(model.exog_vc.names, np.asarray(fit.vcomp, dtype=float)))
    out.update(fixed=fixed, variance={"rater": float(vc.get("rater", math.nan)),
                                      "item": float(vc.get("item", math.nan)),
                                      "residual": float(fit.scale)})
    if not fit.converged:
        out["note"] = "the mixed model did not converge; treat its estimates with care"
    return out


# ---------------------------------------------------------------------------
# One call for the report
# ---------------------------------------------------------------------------


@dataclass
class ListeningAnalysis:
    """Everything the report shows about one listening test."""

    name: str
    screening: Screening | None
    summary: pd.DataFrame  # condition_summary after screening
    friedman: dict
    pairwise: pd.DataFrame
    mixed: dict | None
    notes: list[str] = field(default_factory=list)  # what is missing, in words
    analysed: pd.DataFrame | None = None  # the ratings behind the tables (screened, unless nobody passed)


def completeness_notes(ratings: pd.DataFrame) -> list[str]:
    """One line per rater who did not rate every item × condition of the test."""
    if ratings.empty:
        return []
    items = ratings["item"].nunique()
    conditions = ratings["condition"].nunique()
    expected = items * conditions
    notes = []
    per_rater = ratings.groupby("rater")["item"].nunique()
    if per_rater.max() < items:
        # Nobody rated every item: a design that gives each rater a subset (a crowd test). Said once;
        # a rater is noted only where they skipped conditions of their own items.
        notes.append(f"each rater rated a subset of the {items} items ({per_rater.min()} to {per_rater.max()}); "
                     "their means use what they rated")
        for rater, rows in ratings.groupby("rater"):
            have = len(rows[["item", "condition"]].drop_duplicates())
            if have < rows["item"].nunique() * conditions:
                notes.append(f"rater {rater}: {have} of {rows['item'].nunique() * conditions} ratings of their "
                             f"{rows['item'].nunique()} items")
        return notes
    for rater, rows in ratings.groupby("rater"):
        have = len(rows[["item", "condition"]].drop_duplicates())
        if have < expected:
            notes.append(f"rater {rater}: {have} of {expected} ratings ({rows['item'].nunique()} of {items} "
                         f"items); their means use what they rated")
    return notes


def ranked_systems(summary: pd.DataFrame) -> list[str]:
    """The systems of a :func:`condition_summary`, highest mean first (ties keep the summary's order).

    Every difference between systems is written in this order, ``higher − lower``: the pairwise
    tests and the mixed model's contrasts alike, wherever the ratings came from (a run lists its
    systems in job order, a ratings file alphabetically), so one pair always reads one way.
    """
    if summary.empty:
        return []
    systems = summary[summary["kind"] == "system"].reset_index(drop=True)
    means = systems["mean"].astype(float).fillna(-math.inf)
    return [str(systems.loc[i, "condition"]) for i in sorted(systems.index, key=lambda i: (-means[i], i))]


def analyze_ratings(ratings: pd.DataFrame, name: str = "listening test", blocks: str = "rater",
                    with_mixed_model: bool = True, system_order: list[str] | None = None,
                    **screening_options) -> ListeningAnalysis:
    """Post-screen, summarise and test one listening test's ratings.

    Arguments:
        ratings: the long ratings table (see the module docstring).
        name: the test's name, for the report.
        blocks: the unit of the tests, ``"rater"`` (default) or ``"trial"``.
        with_mixed_model: also fit :func:`mixed_model`.
        system_order: the order systems are listed and tested in (default alphabetical).
        screening_options: passed to :func:`post_screen` (thresholds, fractions).
    """
    from earshot.results import attention as checks  # it reads this module's rule

    ratings, check_rows = checks.split(ratings)  # attention checks are never part of the analysis
    attention = checks.attention_raters(check_rows)
    ratings = normalise_ratings(ratings) if len(ratings) else pd.DataFrame(columns=RATING_COLUMNS)
    ratings = ratings[np.isfinite(ratings["score"].astype(float))] if len(ratings) else ratings
    if ratings.empty:
        return ListeningAnalysis(name, None, condition_summary(ratings), {"note": "no ratings"}, pd.DataFrame(),
                                 None, [f"{name}: no ratings yet"])
    notes = completeness_notes(ratings)
    screening = post_screen(ratings, attention=attention, **screening_options)
    kept = screening.ratings
    if screening.n_after == 0:
        # Still show the data, clearly marked: a test whose every rater fails the screening
        # usually says something about the test (level, anchors) that the numbers help find.
        notes.append("every rater was excluded by post-screening; the tables below use every rater, UNSCREENED")
        kept = ratings
    summary = condition_summary(kept, system_order=system_order)
    systems = ranked_systems(summary)
    if len(systems) == 0 and len(kept):
        notes.append("no system (job) conditions were rated")
    friedman = friedman_test(kept, systems, blocks) if len(kept) else {"note": "no ratings after screening"}
    pairwise = pairwise_wilcoxon(kept, systems, blocks) if len(kept) else pd.DataFrame()
    # The lowest-rated system as the baseline: its contrasts then read like the pairwise table's.
    mixed = mixed_model(kept, systems[::-1]) if with_mixed_model and len(kept) else None
    return ListeningAnalysis(name, screening, summary, friedman, pairwise, mixed, notes, kept)
