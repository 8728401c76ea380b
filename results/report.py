"""The run report: what was run, what the metrics say, what listeners heard.

:func:`build_sections` turns a run (and, when there is one, its listening test) into
format-neutral sections of paragraphs, notes, tables, images and audio; the renderers
write them as one self-contained HTML file (every PNG and wav inlined as a base64 data
URI, no external link, script or font), as Markdown with PNGs beside it, or as the
main tables in LaTeX (booktabs). Anything missing (a failed job, no metrics, no
listening test, a test with no ratings) becomes a visible note, never an exception.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from earshot.results import aggregate, listening, plots
from earshot.results.store import RunData, load_run

EXAMPLE_ITEMS = 3  # items shown with spectrograms and players (one per category first)
PER_ITEM_METRICS = ("si_sdr", "lsd", "hf_energy_ratio_db_2k", "stoi", "visqol_audio")  # per-item tables shown
FORMATS = ("html", "md", "latex")


# ---------------------------------------------------------------------------
# Format-neutral content
# ---------------------------------------------------------------------------


@dataclass
class Table:
    """A table of already formatted cells; ``bold`` marks (row, column) cells, e.g. the best value."""

    columns: list[str]
    rows: list[list[str]]
    caption: str = ""
    bold: set[tuple[int, int]] = field(default_factory=set)
    main: bool = True  # part of the LaTeX output
    align_numbers: bool = True  # HTML: right-align numeric cells (not in key-value tables)
    collapsed: bool = False  # HTML: inside a <details>


@dataclass
class Image:
    png: bytes
    name: str  # file stem for the Markdown output
    alt: str


@dataclass
class Audio:
    wav: bytes
    label: str
    path: str  # relative to the run, for the Markdown output


@dataclass
class Section:
    anchor: str
    title: str
    blocks: list = field(default_factory=list)  # str (paragraph), Note, Table, Image, Audio, Sub

    def add(self, block) -> None:
        self.blocks.append(block)


@dataclass
class Note:
    """Something missing (the default label) or worth a warning, shown prominently."""

    text: str
    label: str = "missing"


@dataclass
class Sub:
    """A sub-heading inside a section."""

    text: str


def fmt(value, digits: int = 3) -> str:
    """A number for a table: 3 significant digits, '–' for NaN/None."""
    if value is None:
        return "–"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return "–"
    if number != 0 and (abs(number) >= 1e5 or abs(number) < 1e-3):
        return f"{number:.{digits - 1}e}"
    return f"{number:.{digits}g}" if abs(number) < 10 ** digits else f"{number:.0f}"


def fmt_ci(mean, low, high) -> str:
    if not np.isfinite(low if low is not None else np.nan):
        return fmt(mean)
    return f"{fmt(mean)} [{fmt(low)}, {fmt(high)}]"


def fmt_p(p) -> str:
    if p is None or not np.isfinite(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def p_text(p) -> str:
    """'p = 0.012' or 'p < 0.001', for sentences."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def frame_table(frame: pd.DataFrame, caption: str = "", formats: dict | None = None, **options) -> Table:
    """A DataFrame as a :class:`Table`, numbers through :func:`fmt` unless ``formats`` says otherwise."""
    formats = formats or {}
    rows = []
    for _, row in frame.iterrows():
        cells = []
        for column in frame.columns:
            value = row[column]
            if column in formats:
                cells.append(formats[column](value))
            elif isinstance(value, (bool, np.bool_)):
                cells.append("yes" if value else "no")
            elif isinstance(value, (int, np.integer)):
                cells.append(str(int(value)))
            elif isinstance(value, (float, np.floating)):
                cells.append(fmt(value))
            else:
                cells.append("" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value))
        rows.append(cells)
    return Table([str(c) for c in frame.columns], rows, caption, **options)


# ---------------------------------------------------------------------------
# Listening tests: where the ratings come from
# ---------------------------------------------------------------------------


def default_db_url() -> str:
    """The listening app's database: ``$EARSHOT_DB``, else its SQLite file."""
    from earshot.listening_app.store import default_db_url as listening_default

    return listening_default()


def _sqlite_file(db_url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, None for other databases."""
    match = re.match(r"^sqlite:///(.+)$", db_url)
    return Path(match.group(1)) if match else None


def load_listening_tests(run_dir: Path, ratings: str | Path | None = None, db_url: str | None = None,
                         test: str | None = None) -> tuple[list[tuple[str, pd.DataFrame]], list[str]]:
    """The listening tests of a run as ``[(name, ratings)]``, and notes on what was not found.

    A ratings file (long CSV or webMUSHRA) wins over the database. The database is read
    through ``listening_app.store`` (imported here, so ``results`` works without the app);
    a missing SQLite file is not created.
    """
    if ratings is not None:
        path = Path(ratings)
        return [(path.name, listening.read_ratings(path))], []
    db_url = db_url or default_db_url()
    sqlite_file = _sqlite_file(db_url)
    if sqlite_file is not None and not sqlite_file.is_file():
        return [], [f"no listening test: no database at {sqlite_file} (run the listening app, or pass --ratings FILE)"]
    try:
        from earshot.listening_app.store import ratings_frame, tests_for_run
    except ImportError as exc:
        return [], [f"no listening test: the listening app's store cannot be imported ({exc})"]
    try:
        names = [test] if test else list(tests_for_run(db_url, run_dir))
        if not names:
            return [], [f"no listening test has been created from this run in {db_url}"]
        return [(name, ratings_frame(db_url, name)) for name in names], []
    except Exception as exc:  # a database from another version, a locked file: say so, keep the report
        return [], [f"no listening test: reading {db_url} failed ({exc.__class__.__name__}: {exc})"]


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def _run_section(run: RunData) -> Section:
    section = Section("run", "What was run")
    cfg = run.config_dict
    data, model, train, ev = (cfg.get(k) or {} for k in ("data", "model", "train", "eval"))
    section.add(f"Run {run.run_id} in {run.path}.")
    for text in run.missing:
        section.add(Note(text))
    config_rows = [
        ["preset", str(cfg.get("preset", "–"))],
        ["losses", ", ".join(cfg.get("losses") or []) or "–"],
        ["seeds per loss", str(cfg.get("seeds", "–"))],
        ["sample rate", f"{data.get('sample_rate', '–')} Hz"],
        ["window", f"{data.get('window', '–')} samples"],
        ["data", str(data.get("path") or "the built-in corpus")],
        ["encoder channels / latent", f"{model.get('encoder_channels', '–')} / {model.get('latent', '–')}"],
        ["decoder channels", str(model.get("decoder_channels", "–"))],
        ["learning rate / batch", f"{train.get('lr', '–')} / {train.get('batch', '–')}"],
        ["budget per job", str(train.get("budget", "–"))],
        ["excerpts", f"{ev.get('excerpts_per_category', '–')} per category × {ev.get('excerpt_seconds', '–')} s"],
    ]
    section.add(Sub("Configuration"))
    section.add(Table(["setting", "value"], config_rows, "the resolved config (config.yaml)",
                          align_numbers=False))

    section.add(Sub("Data"))
    info = run.run.get("data") or {}
    split = run.run.get("split") or {}
    seconds = info.get("seconds") or {}
    test_files = split.get("test") or []
    rows = []
    for category in sorted(seconds):
        tests = sum(1 for f in test_files if str(f).split("/")[0] == category)
        rows.append([category, fmt(seconds[category] / 60), str(tests)])
    rows.append(["all", fmt(sum(seconds.values()) / 60), str(len(test_files))])
    section.add(f"{info.get('files', '–')} files from {info.get('root', '–')}; split by file: "
                f"{len(split.get('train') or [])} train, {len(test_files)} test.")
    section.add(Table(["category", "minutes", "test files"], rows, "audio per category", bold={(len(rows) - 1, 0)}))
    skipped = info.get("skipped") or []
    if skipped:
        section.add(Note(f"{len(skipped)} file(s) skipped while loading the data"))
        section.add(Table(["file", "reason"], [[str(s.get("file")), str(s.get("reason"))] for s in skipped],
                          "skipped files", main=False))
    else:
        section.add("No file was skipped.")

    section.add(Sub("Jobs"))
    jobs = run.jobs
    if jobs:
        rows = [[job, str(j.get("loss")), str(j.get("seed")), str(j.get("status")), str(j.get("steps", "–")),
                 fmt(j.get("seconds")), str(j.get("message") or "")] for job, j in jobs.items()]
        section.add(Table(["job", "loss", "seed", "status", "steps", "training time (s)", "message"], rows,
                          "training per job"))
        for job, j in jobs.items():
            if j.get("status") != "done":
                section.add(Note(f"job {job} is {j.get('status')}: {j.get('message') or 'no message'}; "
                                 f"its results are missing from the tables below"))
    else:
        section.add(Note("no jobs recorded in run.json"))
    total = sum(float(j.get("seconds") or 0) for j in jobs.values())
    if jobs:
        section.add(f"Training time summed over jobs: {fmt(total)} s"
                    + (f"; wall time of the last training invocation: {fmt(run.run['train_seconds'])} s "
                       f"(a resumed run only counts what it trained)." if run.run.get("train_seconds") is not None
                       else "."))

    section.add(Sub("Environment"))
    env = run.environment
    rows = [["python", str(env.get("python", "–"))], ["platform", str(env.get("platform", "–"))],
            ["device", f"{env.get('device', '–')} ({env.get('device_name', '–')})"],
            ["CPUs", str(env.get("cpu_count", "–"))], ["git commit", str(env.get("git_commit", "–"))]]
    rows += [[name, str(version)] for name, version in (env.get("packages") or {}).items()]
    section.add(Table(["", "version"], rows, "environment.json", main=False, align_numbers=False))
    return section


def _training_section(run: RunData) -> Section:
    section = Section("training", "Training curves")
    if run.logs.empty:
        section.add(Note("no training logs found"))
        return section
    section.add("Training loss against step per loss: the line is the mean over seeds, the band spans the "
                "seeds' minimum and maximum. Each loss has its own y axis: their units differ.")
    steps = int(run.logs["step"].max())
    smooth = max(1, steps // 200)  # about 200 points per curve, so noise does not hide the trend
    if smooth > 1:
        section.add(f"Curves are a running mean over {smooth} logged steps.")
    section.add(Image(plots.to_png(plots.training_curves(run.logs, run.losses, smooth)), "training",
                      "training loss per loss function"))
    return section


def _metric_tables(run: RunData, summary: pd.DataFrame, categories: list[str], order: list[str]) -> list:
    from earshot.benchmark.evaluate.metrics import METRICS

    blocks = []
    losses = [name for name in run.losses if name in set(summary["loss"])]
    for category in categories:
        rows_for = summary[summary["category"] == category]
        if rows_for.empty:
            continue
        blocks.append(Sub(f"{category}" + (" (every category pooled)" if category == aggregate.ALL else "")))
        rows, bold = [], set()
        for metric in [m for m in order if m in set(rows_for["metric"])]:
            spec = METRICS.get(metric)
            by_loss = rows_for[rows_for["metric"] == metric].set_index("loss")
            means = by_loss["mean"].reindex(losses)
            best = aggregate.best_loss(means, spec.higher_is_better if spec else None, metric)
            direction = {True: "↑", False: "↓"}.get(spec.higher_is_better if spec else None,
                                                    "→0" if "_db" in metric else "")
            cells = [metric, (spec.unit if spec else "") or "–", direction]
            for j, loss in enumerate(losses):
                if loss in by_loss.index:
                    r = by_loss.loc[loss]
                    cells.append(fmt_ci(r["mean"], r["ci_low"], r["ci_high"]))
                else:
                    cells.append("missing")
                if loss == best:
                    bold.add((len(rows), 3 + j))
            rows.append(cells)
        caption = (f"{category}: mean [95 % hierarchical-bootstrap interval] over seeds × items; best per row in "
                   f"bold (↑ higher better, ↓ lower better, →0 closest to 0 dB; unmarked: descriptive)")
        blocks.append(Table(["metric", "unit", "better", *losses], rows, caption, bold=bold))
    return blocks


def _metrics_section(run: RunData) -> tuple[Section, pd.DataFrame]:
    from earshot.benchmark.evaluate.metrics import METRICS

    section = Section("metrics", "Objective metrics")
    metrics = run.metrics
    if metrics.empty:
        section.add(Note("no metrics: the run has not been evaluated (earshot eval RUN)"))
        return section, pd.DataFrame(columns=aggregate.SUMMARY_COLUMNS)
    errors = metrics[metrics["error"].notna()]
    if len(errors):
        common = errors["error"].astype(str).value_counts()
        section.add(Note(f"{len(errors)} of {len(metrics)} metric values could not be computed and are left out "
                         f"(most common reason: {common.index[0]})", "note"))
    losses_with_metrics = set(metrics["loss"])
    for loss in run.losses:
        if loss not in losses_with_metrics:
            section.add(Note(f"loss {loss}: no metrics (no finished job)"))
    section.add("Means over seeds × items with 95 % intervals from a hierarchical bootstrap (seeds resampled, then "
                "items within each seed; 2000 resamples, seeded), so the spread between training seeds is part of "
                "the interval.")
    summary = aggregate.metric_summary(metrics)
    order = aggregate.metric_order(metrics)
    categories = [aggregate.ALL] + sorted(set(metrics["category"]))
    losses = [name for name in run.losses if name in losses_with_metrics]
    for block in _metric_tables(run, summary, categories, order):
        section.add(block)
    units = {name: spec.unit for name, spec in METRICS.items()}
    directions = {name: spec.higher_is_better for name, spec in METRICS.items()}
    section.add(Sub("Bar charts"))
    section.add("Per metric: each loss's mean per category (all = pooled) with its 95 % interval as the error bar; "
                "n/a categories (a metric that does not apply) have no bar.")
    section.add(Image(plots.to_png(plots.metric_bars(summary, categories, losses, order, units, directions)),
                      "metrics", "metric means with 95 % intervals per category"))

    differences = aggregate.all_paired_differences(metrics, losses)
    if not differences.empty:
        section.add(Sub("Paired differences between losses"))
        section.add("a − b on the same seed and item, pooled over categories, with the hierarchical bootstrap "
                    "interval; an interval that excludes 0 is in bold.")
        pooled = differences[differences["category"] == aggregate.ALL]
        rows, bold = [], set()
        for _, r in pooled.iterrows():
            if r["pairs"] == 0:
                continue
            if np.isfinite(r["ci_low"]) and (r["ci_low"] > 0 or r["ci_high"] < 0):
                bold.add((len(rows), 3))
            rows.append([r["metric"], f"{r['a']} − {r['b']}", str(r["pairs"]),
                         fmt_ci(r["mean"], r["ci_low"], r["ci_high"])])
        section.add(Table(["metric", "difference", "pairs", "mean [95 % CI]"], rows,
                          "paired differences, every category pooled", bold=bold))

    per_item = [m for m in PER_ITEM_METRICS if m in order]
    if per_item:
        section.add(Sub("Per item"))
        for metric in per_item:
            wide = aggregate.per_item_table(metrics, metric)
            wide = wide.reindex(columns=[l for l in losses if l in wide.columns]).reset_index()
            section.add(frame_table(wide, f"{metric} per item, mean over seeds", main=False, collapsed=True))
    return section, summary


def _claims_section(run: RunData) -> Section:
    from earshot.results.claims import check_claims

    section = Section("claims", "The seed's claims")
    if run.metrics.empty:
        section.add(Note("no metrics, so the claims cannot be checked"))
        return section
    claims = check_claims(run.metrics)
    section.add("Each claim is the paired difference bark − mse per (seed, item) with a 95 % Student-t interval; "
                "supported when the interval lies wholly on the claimed side of 0, contradicted when wholly on "
                "the other, else inconclusive.")
    rows = [[c["statement"], c["metric"], str(c["pairs"]), fmt_ci(c["mean"], c["ci_low"], c["ci_high"]),
             c["verdict"]] for _, c in claims.iterrows()]
    bold = {(i, 4) for i, r in enumerate(rows) if r[4] != "inconclusive"}
    section.add(Table(["claim", "metric", "pairs", "bark − mse [95 % CI]", "verdict"], rows, "the seed's claims",
                      bold=bold))
    if set(claims["pairs"]) == {0}:
        section.add(Note("no (seed, item) pair has both bark and mse: the run lacks one of them"))
    return section


def _read_wav(path: Path) -> tuple[np.ndarray, int, bytes] | None:
    import soundfile as sf

    try:
        raw = path.read_bytes()
        audio, rate = sf.read(io.BytesIO(raw), dtype="float32", always_2d=False)
    except (OSError, RuntimeError, ValueError):  # missing or corrupt file: the caller notes it
        return None
    return audio, rate, raw


def example_items(run: RunData, count: int = EXAMPLE_ITEMS) -> list[str]:
    """Up to ``count`` excerpt items, one per category first (in excerpt order)."""
    items = [e["item"] for e in run.excerpts]
    chosen, seen = [], set()
    for excerpt in run.excerpts:
        if excerpt["category"] not in seen and len(chosen) < count:
            chosen.append(excerpt["item"])
            seen.add(excerpt["category"])
    chosen += [i for i in items if i not in chosen][: max(0, count - len(chosen))]
    return chosen


def example_job(run: RunData, loss: str) -> str | None:
    """The done job of a loss with the lowest seed (the one whose audio is shown), or None."""
    done = [(j.get("seed", 0), job) for job, j in run.jobs.items()
            if j.get("loss") == loss and j.get("status") == "done"]
    return min(done)[1] if done else None


def _examples_section(run: RunData) -> Section:
    section = Section("listen", "Spectrograms and audio")
    items = example_items(run)
    if not items:
        section.add(Note("no excerpts (excerpts.json is missing or empty)"))
        return section
    section.add("For a few held-out excerpts: the reference and each loss's reconstruction (its lowest finished "
                "seed), spectrograms on one dB scale relative to the reference's peak, and players.")
    for item in items:
        section.add(Sub(item))
        ref = _read_wav(run.reference_wav(item))
        if ref is None:
            section.add(Note(f"{item}: reference/{item}.wav is missing"))
            continue
        signals = {"reference": ref[0]}
        players = [Audio(ref[2], f"{item}: reference", f"reference/{item}.wav")]
        for loss in run.losses:
            job = example_job(run, loss)
            recon = _read_wav(run.recon_wav(job, item)) if job else None
            if recon is None:
                section.add(Note(f"{item}: no reconstruction by {loss} (no finished job with its audio)"))
                continue
            signals[f"{loss} ({job})"] = recon[0]
            players.append(Audio(recon[2], f"{item}: {loss} ({job})", f"recon/{job}/{item}.wav"))
        section.add(Image(plots.to_png(plots.spectrogram_row(signals, ref[1], item)), f"spectrogram-{item}",
                          f"spectrograms of {item}"))
        for player in players:
            section.add(player)
    return section


def _listening_section(run: RunData, tests: list[tuple[str, pd.DataFrame]], notes: list[str],
                       screening_options: dict | None = None) -> Section:
    section = Section("listening", "Listening test (MUSHRA)")
    for text in notes:
        section.add(Note(text))
    if not tests:
        if not notes:
            section.add(Note("no listening test"))
        return section
    colours = plots.loss_colours(sorted({j for j in run.jobs} | {c for _, r in tests if len(r)
                                                                 for c in r["condition"]}))
    # Colour a job like its loss, so mse-seed0 and mse in the metric plots match.
    loss_colour = plots.loss_colours(run.losses)
    for job, info in run.jobs.items():
        if info.get("loss") in loss_colour:
            colours[job] = loss_colour[info["loss"]]
    for name, ratings in tests:
        section.add(Sub(f"test {name}"))
        result = listening.analyze_ratings(ratings, name, system_order=list(run.jobs),
                                           **(screening_options or {}))
        for text in result.notes:
            section.add(Note(text, "missing" if "rater " in text and " of " in text else "note"))
        if result.screening is None:
            continue
        scr = result.screening
        section.add(f"Post-screening: {scr.rules}. Raters: {scr.n_before} before, {scr.n_after} after"
                    + (f"; excluded: {', '.join(scr.excluded)}." if scr.excluded else "; none excluded."))
        raters = scr.raters[["rater", "items", "reference_below", "reference_items", "mid_anchor_above",
                             "mid_anchor_items", "excluded", "reason"]]
        section.add(frame_table(raters, "post-screening per rater (ITU-R BS.1534-3 §4.1.2)",
                                bold={(i, 6) for i in range(len(raters)) if raters["excluded"].iloc[i]}))
        if result.summary.empty:
            continue
        summary = result.summary
        for kind_set, caption in ((("system",), "systems"), (("reference", "anchor"), "hidden reference and anchors")):
            part = summary[summary["kind"].isin(kind_set)]
            if len(part):
                rows = [[r["condition"], r["kind"], str(r["raters"]), str(r["ratings"]),
                         fmt_ci(r["mean"], r["ci_low"], r["ci_high"]), fmt(r["median"])] for _, r in part.iterrows()]
                section.add(Table(["condition", "kind", "raters", "ratings", "mean [95 % t-CI]", "median"], rows,
                                  f"MUSHRA scores, {caption}: mean over raters of each rater's mean over items"))
        section.add(Image(plots.to_png(plots.mushra_means(summary, colours)), f"mushra-means-{name}",
                          "MUSHRA means with 95 % intervals"))
        order = list(summary["condition"])
        section.add(Image(plots.to_png(plots.mushra_boxes(result.analysed, order, colours,
                                                                screened=scr.n_after > 0)), f"mushra-boxes-{name}",
                          "MUSHRA ratings per condition"))
        fr = result.friedman
        if fr.get("note"):
            section.add(Note(f"Friedman test not computed: {fr['note']}"))
        else:
            section.add(f"Friedman test over the {fr['conditions']} systems with {fr['blocks']} raters as blocks: "
                        f"χ² = {fmt(fr['statistic'])}, {p_text(fr['pvalue'])}, "
                        f"Kendall's W = {fmt(fr['kendalls_w'])}.")
        if len(result.pairwise):
            pw = result.pairwise
            rows = [[r["a"], r["b"], str(r["n"]), fmt(r["mean_difference"]), fmt(r["statistic"]), fmt_p(r["pvalue"]),
                     fmt_p(r["p_holm"]), "yes" if r["significant"] else "no", fmt(r["rank_biserial"])]
                    for _, r in pw.iterrows()]
            section.add(Table(["a", "b", "raters", "mean a − b", "W", "p", "p (Holm)", "significant",
                               "r (rank-biserial)"],
                              rows, "pairwise Wilcoxon signed-rank tests between systems, Holm-corrected, α = 0.05",
                              bold={(i, 7) for i, r in enumerate(rows) if r[7] == "yes"}))
        mixed = result.mixed
        if mixed is not None:
            if len(mixed["fixed"]):
                section.add(frame_table(mixed["fixed"], "linear mixed model score ~ condition + (1|rater) + (1|item) "
                                        "(statsmodels MixedLM, REML)", formats={"pvalue": fmt_p}, main=False))
                v = mixed["variance"]
                section.add(f"Variance components: rater {fmt(v['rater'])}, item {fmt(v['item'])}, "
                            f"residual {fmt(v['residual'])} (score²).")
            if mixed["note"]:
                section.add(Note(mixed["note"], "note"))
        _correlation_blocks(section, run, result.analysed)
    return section


def _correlation_blocks(section: Section, run: RunData, ratings: pd.DataFrame) -> None:
    from earshot.results.correlation import metric_rating_correlation

    section.add(Sub("Metrics against ears"))
    if run.metrics.empty:
        section.add(Note("no metrics to correlate with the ratings"))
        return
    table = metric_rating_correlation(run.metrics, ratings)
    if table.empty:
        section.add(Note("no rated condition matches a job of this run"))
        return
    systems = table.loc[table["level"] == "system", "n"]
    if len(systems) and systems.max() < 3:
        section.add(Note(f"system-level correlation needs at least 3 rated systems (this test has {systems.max()})"))
    rows = []
    for _, r in table.iterrows():
        direction = {True: "↑", False: "↓"}.get(r["higher_is_better"], "")
        rows.append([r["metric"], direction, r["level"], str(r["n"]),
                     fmt_ci(r["spearman"], r["spearman_low"], r["spearman_high"]), fmt_p(r["spearman_p"]),
                     fmt_ci(r["kendall"], r["kendall_low"], r["kendall_high"]), fmt_p(r["kendall_p"])])
    section.add(Table(["metric", "better", "level", "n", "Spearman ρ [95 % CI]", "p", "Kendall τ [95 % CI]", "p"],
                      rows,
                      "rank correlation of each metric with MUSHRA scores: system level = per condition means, item "
                      "level = per condition × item; 95 % Fisher-z intervals (– where n is too small). A good ↓ "
                      "metric correlates negatively."))


def build_sections(run_dir: str | Path, ratings: str | Path | None = None, db_url: str | None = None,
                   test: str | None = None, screening_options: dict | None = None,
                   with_listening: bool = True) -> tuple[RunData, list[Section]]:
    """Everything in the report, format-neutral."""
    run = load_run(run_dir)
    sections = [_run_section(run), _training_section(run)]
    metrics_section, _ = _metrics_section(run)
    sections += [metrics_section, _claims_section(run), _examples_section(run)]
    if with_listening:
        tests, notes = load_listening_tests(run.path, ratings, db_url, test)
    else:
        tests, notes = [], ["listening test not included (--no-listening)"]
    sections.append(_listening_section(run, tests, notes, screening_options))
    return run, sections


# ---------------------------------------------------------------------------
# Renderers
# ---------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;
color:#1a1a1a;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:2px solid #0072B2;padding-bottom:.2em;margin-top:2em}
h3{margin:1.4em 0 .4em}table{border-collapse:collapse;margin:.5em 0 1em;font-size:.86em}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
th{border-bottom:2px solid #444;background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
caption{caption-side:top;text-align:left;font-size:.95em;color:#444;padding:.3em 0}
.note{background:#fff4e0;border-left:4px solid #E69F00;padding:.4em .8em;margin:.5em 0}
img{max-width:100%;height:auto;display:block;margin:.5em 0}
figure.audio{display:inline-block;margin:.3em 1em .3em 0;font-size:.85em}
figure.audio figcaption{color:#444}nav ul{columns:2}strong{color:#000}
details{margin:.3em 0}summary{cursor:pointer;color:#0072B2}
"""

_NUMERIC = re.compile(r"^[−\-+]?[\d.]+(e[−\-+]?\d+)?( \[.*\])?$|^–$|^< 0\.001$")


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = []
    for i, row in enumerate(table.rows):
        cells = []
        for j, cell in enumerate(row):
            text = html.escape(cell)
            if (i, j) in table.bold:
                text = f"<strong>{text}</strong>"
            cls = ' class="num"' if table.align_numbers and _NUMERIC.match(cell) else ""
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    markup = f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    if table.collapsed:
        return f"<details><summary>{html.escape(table.caption or 'table')}</summary>{markup}</details>"
    return markup


def render_html(run: RunData, sections: list[Section]) -> str:
    """One self-contained HTML page: images and audio as base64 data URIs."""
    parts = [f"<h1>earshot report: {html.escape(run.run_id)}</h1>",
             "<p>What does the loss function do to the sound? Objective metrics and listening tests for every "
             "loss of this run.</p>",
             "<nav><ul>" + "".join(f'<li><a href="#{s.anchor}">{html.escape(s.title)}</a></li>' for s in sections)
             + "</ul></nav>"]
    for section in sections:
        parts.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>')
        for block in section.blocks:
            if isinstance(block, str):
                parts.append(f"<p>{html.escape(block)}</p>")
            elif isinstance(block, Note):
                parts.append(f'<p class="note"><strong>{html.escape(block.label)}:</strong> '
                             f'{html.escape(block.text)}</p>')
            elif isinstance(block, Sub):
                parts.append(f"<h3>{html.escape(block.text)}</h3>")
            elif isinstance(block, Table):
                parts.append(_html_table(block))
            elif isinstance(block, Image):
                data = base64.b64encode(block.png).decode("ascii")
                parts.append(f'<img alt="{html.escape(block.alt)}" src="data:image/png;base64,{data}">')
            elif isinstance(block, Audio):
                data = base64.b64encode(block.wav).decode("ascii")
                parts.append(f'<figure class="audio"><figcaption>{html.escape(block.label)}</figcaption>'
                             f'<audio controls preload="none" src="data:audio/wav;base64,{data}"></audio></figure>')
        parts.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>earshot report: {html.escape(run.run_id)}</title>"
            f"<style>{CSS}</style></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _markdown_images(text: str) -> set[str]:
    """The PNG file names a Markdown report links (``![alt](name.png)``, beside it)."""
    return set(re.findall(r"^!\[[^\]]*\]\(([A-Za-z0-9_.-]+\.png)\)$", text, flags=re.MULTILINE))


def render_markdown(run: RunData, sections: list[Section], out_dir: Path) -> str:
    """Markdown with the PNGs written beside it in ``out_dir``; audio as links into the run."""
    lines = [f"# earshot report: {run.run_id}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                lines += [block, ""]
            elif isinstance(block, Note):
                lines += [f"> **{block.label}:** {block.text}", ""]
            elif isinstance(block, Sub):
                lines += [f"### {block.text}", ""]
            elif isinstance(block, Table):
                if block.caption:
                    lines += [f"*{block.caption}*", ""]
                lines.append("| " + " | ".join(_md_cell(c) for c in block.columns) + " |")
                lines.append("|" + "---|" * len(block.columns))
                for i, row in enumerate(block.rows):
                    cells = [f"**{_md_cell(c)}**" if (i, j) in block.bold else _md_cell(c) for j, c in enumerate(row)]
                    lines.append("| " + " | ".join(cells) + " |")
                lines.append("")
            elif isinstance(block, Image):
                name = re.sub(r"[^A-Za-z0-9_.-]+", "-", block.name) + ".png"
                (out_dir / name).write_bytes(block.png)
                lines += [f"![{block.alt}]({name})", ""]
            elif isinstance(block, Audio):
                lines += [f"- [{block.label}](../{block.path})"]
        lines.append("")
    return "\n".join(lines)


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "−": "$-$", "–": "--", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "→": r"$\to$", "χ": r"$\chi$",
                  "ρ": r"$\rho$", "τ": r"$\tau$", "α": r"$\alpha$", "×": r"$\times$", "²": r"$^2$", "≥": r"$\geq$",
                  "<": r"$<$", ">": r"$>$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


#: A text column whose longest cell is longer than this wraps, in a column of LATEX_WRAP_WIDTH.
LATEX_WRAP_CHARS = 40
LATEX_WRAP_WIDTH = r"0.4\linewidth"


def render_latex(run: RunData, sections: list[Section]) -> str:
    """The main tables as LaTeX (booktabs), one ``table`` environment each, for a paper.

    Long text columns (a claim, a reason) wrap; a table still wider than the text is shrunk
    to fit, never one that already fits.
    """
    lines = [f"% earshot report: {latex_escape(run.run_id)}. Needs \\usepackage{{booktabs,array,graphicx}}.", ""]
    for section in sections:
        tables = [b for b in section.blocks if isinstance(b, Table) and b.main]
        if not tables:
            continue
        lines.append(f"% --- {latex_escape(section.title)} ---")
        for table in tables:
            spec = "".join(_latex_column(table, j) for j in range(len(table.columns)))
            lines += ["\\begin{table}[htbp]", "\\centering", "\\small",
                      f"\\caption{{{latex_escape(table.caption)}}}",
                      "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%",
                      f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                      " & ".join(latex_escape(c) for c in table.columns) + " \\\\", "\\midrule"]
            for i, row in enumerate(table.rows):
                cells = [f"\\textbf{{{latex_escape(c)}}}" if (i, j) in table.bold else latex_escape(c)
                         for j, c in enumerate(row)]
                lines.append(" & ".join(cells) + " \\\\")
            lines += ["\\bottomrule", "\\end{tabular}}", "\\end{table}", ""]
    return "\n".join(lines)


def _latex_column(table: Table, j: int) -> str:
    cells = [row[j] for row in table.rows if j < len(row)]
    if cells and all(_NUMERIC.match(c) for c in cells):
        return "r"
    if max((len(str(c)) for c in cells), default=0) > LATEX_WRAP_CHARS:
        return f">{{\\raggedright\\arraybackslash}}p{{{LATEX_WRAP_WIDTH}}}"
    return "l"


def write_report(run_dir: str | Path, format: str = "html", ratings: str | Path | None = None,
                 db_url: str | None = None, test: str | None = None, screening_options: dict | None = None,
                 with_listening: bool = True) -> Path:
    """Write ``RUN/report/index.html`` (or ``index.md`` with PNGs, or ``index.tex``); returns its path.

    Raises:
        FileNotFoundError: not a run directory.
        ValueError: unknown format.
        results.listening.RatingsError: a ratings file that cannot be read.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown report format {format!r} (one of {', '.join(FORMATS)})")
    run, sections = build_sections(run_dir, ratings, db_url, test, screening_options, with_listening)
    out_dir = run.path / "report"
    out_dir.mkdir(parents=True, exist_ok=True)
    if format == "html":
        target = out_dir / "index.html"
        text = render_html(run, sections)
    elif format == "md":
        target = out_dir / "index.md"
        previous = _markdown_images(target.read_text(encoding="utf-8")) if target.exists() else set()
        text = render_markdown(run, sections, out_dir)
        for stale in previous - _markdown_images(text):  # only PNGs an earlier report of ours linked
            (out_dir / stale).unlink(missing_ok=True)
    else:
        target = out_dir / "index.tex"
        text = render_latex(run, sections)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)  # atomic: a reader never sees half a report
    return target
