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
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from earshot.results import adequacy, analyses, aggregate, listening, plots, present
from earshot.results.bitrate import DEFAULT_LATENT_BITS
from earshot.results.hypotheses import Declaration, declared_for_run

from earshot.results.present import Table, number
from earshot.results.rundir import SCORE_RUN_KIND, write_text_atomic
from earshot.results.store import RunData, load_run
from earshot.results.training import unequal_training

EXAMPLE_ITEMS = 3  # items shown with spectrograms and players (one per category first)
PER_ITEM_METRICS = ("si_sdr", "lsd", "hf_energy_ratio_db_2k", "stoi", "visqol_audio")  # per-item tables shown
FORMATS = ("html", "md", "latex")


# ---------------------------------------------------------------------------
# Format-neutral content
# ---------------------------------------------------------------------------


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
    seconds: float  # shown beside the player: a browser shows 0:00 until it has read the file

    @property
    def caption(self) -> str:
        return f"{self.label} ({present.number(self.seconds)} s)"


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


# ---------------------------------------------------------------------------
# Listening tests: where the ratings come from
# ---------------------------------------------------------------------------


def listening_tests(ratings: str | Path | list[tuple[str, pd.DataFrame]] | None) -> list[tuple[str, pd.DataFrame]]:
    """The listening tests as ``[(name, ratings frame)]``.

    ``ratings`` is a ratings file (CSV, long or webMUSHRA: one test named after the file), or
    ``[(test name, frame)]`` with frames in the columns of
    :data:`earshot.results.listening.RATINGS_TABLE_COLUMNS` (what ``earshot listen export``
    writes), or None (no listening test). ``results`` never opens the listening database.

    Raises:
        results.listening.RatingsError: a ratings file that cannot be read.
    """
    if ratings is None:
        return []
    if isinstance(ratings, (str, Path)):
        path = Path(ratings)
        frame = listening.read_ratings(path)
        if "type" in frame.columns and frame["type"].nunique() > 1:  # an export of tests of both types
            return [(f"{path.name} ({kind})", part) for kind, part in frame.groupby("type", sort=True)]
        return [(path.name, frame)]
    return [(str(name), frame) for name, frame in ratings]


# ---------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------


def _run_section(run: RunData) -> Section:
    section = Section("run", "What was run")
    cfg = run.config
    data, model, train, ev = (cfg.get(k) or {} for k in ("data", "model", "train", "eval"))
    section.add(f"Run {run.run_id} in {run.path}.")
    for text in run.missing:
        section.add(Note(text))
    if run.run.get("kind") == SCORE_RUN_KIND:
        return _scored_run_section(run, section)
    config_rows = [
        ["preset", str(cfg.get("preset", "–"))],
        ["losses", ", ".join(cfg.get("losses") or []) or "–"],
        ["seeds per loss", str(cfg.get("seeds", "–"))],
        ["sample rate", f"{data.get('sample_rate', '–')} Hz"],
        ["window", f"{data.get('window', '–')} samples"],
        ["data", str(data.get("path") or "the built-in corpus")],
        *(present.model_rows(run.run["model"]) if run.run.get("model") else []),
        *([["encoder channels / latent", f"{model.get('encoder_channels', '–')} / {model.get('latent', '–')}"],
           ["decoder channels", str(model.get("decoder_channels", "–"))]]
          if model.get("name", "gated-conv") == "gated-conv" else [["model options", str(cfg.get("model_options") or "none")]]),
        *[[f"plugin {term}", present.plugin_origin(record)] for term, record in (run.run.get("plugins") or {}).items()],
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
        rows.append([category, number(seconds[category] / 60), str(tests)])
    rows.append(["all", number(sum(seconds.values()) / 60), str(len(test_files))])
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
                 number(j.get("seconds")), str(j.get("message") or "")] for job, j in jobs.items()]
        section.add(Table(["job", "loss", "seed", "status", "steps", "training time (s)", "message"], rows,
                          "training per job"))
        unequal = present.training_note(unequal_training(jobs))
        if unequal:
            section.add(Note(unequal, "note"))
        for job, j in jobs.items():
            if j.get("status") != "done":
                section.add(Note(f"job {job} is {j.get('status')}: {j.get('message') or 'no message'}; "
                                 f"its results are missing from the tables below"))
    else:
        section.add(Note("no jobs recorded in run.json"))
    total = sum(float(j.get("seconds") or 0) for j in jobs.values())
    if jobs:
        section.add(f"Training time summed over jobs: {number(total)} s"
                    + (f"; wall time of the last training invocation: {number(run.run['train_seconds'])} s "
                       f"(a resumed run only counts what it trained)." if run.run.get("train_seconds") is not None
                       else "."))

    section.add(Sub("Environment"))
    env = run.environment
    rows = [["python", str(env.get("python", "–"))], ["platform", str(env.get("platform", "–"))],
            ["device", f"{env.get('device', '–')} ({env.get('device_name', '–')})"],
            ["CPUs", str(env.get("cpu_count", "–"))], ["git commit", str(env.get("git_commit", "–"))]]
    rows += [[name, str(version)] for name, version in (env.get("packages") or {}).items()]
    section.add(Table(["", "version"], rows, run.dir.environment_file.name, main=False, align_numbers=False))
    return section


def _scored_run_section(run: RunData, section: Section) -> Section:
    """What was run for a run made by ``earshot score``: the folders scored, nothing trained."""
    score = run.config.get("score") or {}
    data = run.config.get("data") or {}
    rows = [["made by", "earshot score: folders of decoded audio measured against references (nothing trained)"],
            ["references", str(data.get("path", "–"))], ["sample rate", f"{data.get('sample_rate', '–')} Hz"],
            ["largest delay searched", f"{number(score.get('max_delay_ms'))} ms"],
            ["partial", present.yes_no(score.get("partial"))]]
    rows += [[f"system {name}", str(folder)] for name, folder in (score.get("systems") or {}).items()]
    section.add(Sub("Configuration"))
    section.add(Table(["setting", "value"], rows, "how the folders were scored (config.yaml)", align_numbers=False))
    section.add(Sub("Data"))
    info = run.run.get("data") or {}
    seconds = info.get("seconds") or {}
    rows = [[category, number(seconds[category] / 60)] for category in sorted(seconds)]
    rows.append(["all", number(sum(seconds.values()) / 60)])
    section.add(f"{info.get('files', '–')} reference files from {info.get('root', '–')}, every one scored.")
    section.add(Table(["category", "minutes"], rows, "audio per category", bold={(len(rows) - 1, 0)}))
    skipped = info.get("skipped") or []
    if skipped:
        section.add(Note(f"{len(skipped)} reference file(s) skipped while loading"))
        section.add(Table(["file", "reason"], [[str(s.get("file")), str(s.get("reason"))] for s in skipped],
                          "skipped files", main=False))
    systems = {n: e for n, e in run.dir.read_systems().items() if e.get("kind") == "scored"}
    if systems:
        section.add(Sub("Systems"))
        section.add(present.scored_table([{"name": n, "items": e.get("items"), "delay_samples": e.get("delay_samples"),
                                           "delay_ms": e.get("delay_ms"), "cut_samples": e.get("cut_samples"),
                                           "padded_samples": e.get("padded_samples"),
                                           "longest_cut_ms": e.get("longest_cut_ms"),
                                           "skipped": e.get("skipped") or []} for n, e in systems.items()]))
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
    blocks = []
    losses = [name for name in run.losses if name in set(summary["loss"])]
    for category in categories:
        table = present.metric_summary_table(summary, category, losses, order, run.metric_info, run.metrics)
        if table is not None:
            blocks.append(Sub(f"{category}" + (" (every category pooled)" if category == aggregate.ALL else "")))
            blocks.append(table)
    return blocks


def _metrics_section(run: RunData) -> tuple[Section, pd.DataFrame]:
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
    order = aggregate.metric_order(metrics, run.metric_info)
    categories = [aggregate.ALL] + sorted(set(metrics["category"]))
    losses = [name for name in run.losses if name in losses_with_metrics]
    for block in _metric_tables(run, summary, categories, order):
        section.add(block)
    section.add(Sub("Bar charts"))
    section.add("Per metric: each loss's mean per category (all = pooled) with its 95 % interval as the error bar; "
                "n/a categories (a metric that does not apply) have no bar.")
    section.add(Image(plots.to_png(plots.metric_bars(summary, categories, losses, order, run.metric_info)),
                      "metrics", "metric means with 95 % intervals per category"))

    differences = aggregate.all_paired_differences(metrics, losses)
    if not differences.empty:
        section.add(Sub("Paired differences between losses"))
        section.add("a − b on the same seed and item, pooled over categories, with the hierarchical bootstrap "
                    "interval; an interval that excludes 0 is in bold.")
        section.add(present.paired_differences_table(differences, run.metric_info))

    per_item = [m for m in PER_ITEM_METRICS if m in order]
    if per_item:
        section.add(Sub("Per item"))
        for metric in per_item:
            wide = aggregate.per_item_table(metrics, metric)
            wide = wide.reindex(columns=[l for l in losses if l in wide.columns]).reset_index()
            section.add(present.per_item_table(wide, metric, run.metric_info))
    return section, summary


def _bitrate_section(run: RunData, latent_bits: int) -> Section:
    from earshot.results.bitrate import system_bitrates

    section = Section("bitrate", "Quality vs bitrate")
    metrics = run.metrics
    if metrics.empty:
        section.add(Note("no metrics: the run has not been evaluated (earshot eval RUN)"))
        return section
    names = [name for name in run.losses if name in set(metrics["loss"])]
    bitrates = system_bitrates(run.dir.read_systems(), names, latent_bits)
    unknown = list(bitrates.loc[bitrates["kbps"].isna(), "system"])
    if len(unknown) == len(bitrates):
        section.add(Note(f"no bitrate for {', '.join(unknown)}: a scored folder takes one with earshot score "
                         f"--bitrate NAME=KBPS; a run evaluated before systems.json was written records its losses' "
                         f"latent rates with earshot eval RUN --force"))
        return section
    section.add(f"Every system at its bitrate: a trained loss (and the PCA baseline) at its nominal latent rate, "
                f"latents per second as evaluated × {latent_bits} bits per latent (evaluation codes 50 %-overlapped "
                f"windows, one code per half-window hop, the latent rate under \"What was run\"; earshot report "
                f"--latent-bits changes the bits; the code is not quantised, so this is what storing it at that "
                f"precision would cost), a codec at the bitrate measured from its encoded files.")
    if unknown:
        section.add(Note(f"no bitrate for {', '.join(unknown)} (a scored folder takes one with "
                         f"earshot score --bitrate NAME=KBPS); left off the figure"))
    summary = aggregate.metric_summary(metrics)
    order = aggregate.metric_order(metrics, run.metric_info)
    categories = [aggregate.ALL] + sorted(set(metrics["category"]))
    section.add(present.bitrate_table(bitrates, summary, run.metric_info, aggregate.ALL, latent_bits))
    codecs = {n: e for n, e in run.dir.read_systems().items() if e.get("kind") == "codec" and n in names}
    if codecs:
        section.add(present.codec_table(codecs))
    for category in categories:
        section.add(Sub(f"{category}" + (" (every category pooled)" if category == aggregate.ALL else "")))
        section.add(Image(plots.to_png(plots.quality_vs_bitrate(summary, bitrates, order, run.metric_info, category)),
                          f"bitrate-{category}", f"quality vs bitrate, {category}"))
    return section


def _adequacy_section(run: RunData) -> Section:
    from earshot.results.claims import UNDERTRAINED

    section = Section("adequacy", "Are the models trained enough to compare?")
    assessment = adequacy.assess(run)
    baseline = adequacy.baseline_system(run)
    if baseline is None or assessment.empty:
        section.add(Note("no adequacy check: the run has no finished job or was evaluated before the linear "
                         "baseline existed (earshot eval RUN --force measures it)"))
        return section
    section.add(f"{baseline} is a baseline, not a trained loss: the best linear code of the model's size (PCA "
                f"with as many components as the model's code, fitted in seconds on the same normalised training "
                f"windows and reconstructed by the same overlap-add). It is measured and tabled beside the losses. "
                f"A job is undertrained when its training loss was still falling at the end (the median of the "
                f"last quarter of logged steps {present.percent(adequacy.FLAT_RELATIVE_CHANGE)} or more below "
                f"the quarter before) or when it does not beat {baseline} on its own objective (SNR for mse, "
                f"otherwise its own loss on the held-out windows). A hypothesis resting on an undertrained job "
                f"reads \"{UNDERTRAINED}\".")
    section.add(present.adequacy_table(assessment, run.metric_info))
    sentence = present.undertrained_sentence(assessment)
    if sentence:
        section.add(Note(sentence, "undertrained"))
    return section


def _claims_section(run: RunData, declaration: Declaration) -> Section:
    from earshot.results.claims import check_run

    section = Section("claims", "Declared hypotheses")
    section.add(f"The hypotheses checked: {declaration.describe()}.")
    if declaration.when == "after the fact":
        section.add(Note("these hypotheses were declared after the fact (given to this report), not recorded "
                         "in the run before training: read their verdicts as exploration"))
    if run.metrics.empty:
        section.add(Note("no metrics, so the hypotheses cannot be checked"))
        return section
    checked = check_run(run, declaration.hypotheses)
    section.add("Each hypothesis is the paired difference treatment − baseline per (seed, item) (for closer-to-ideal, "
                "how much closer to the ideal the treatment lies), with the same hierarchical-bootstrap interval "
                "as the metric tables. Its p-value is the bootstrap's (the smallest α whose 1 − α interval lies "
                "wholly beyond the smallest effect on the claimed side, or wholly on the other side of 0), "
                "Holm-adjusted over the declared set: supported or contradicted when the adjusted p < 0.05, "
                "else inconclusive. A verdict on systems whose jobs trained different numbers of steps says "
                "\"unequal training\", and the steps column names each system's count.")
    section.add(present.hypotheses_table(checked, declaration, run.metric_info))
    unequal = present.training_note(unequal_training(run.jobs, set(run.metrics["loss"])))
    if unequal:
        section.add(Note(unequal, "note"))
    for _, row in checked[checked["pairs"] == 0].iterrows():
        section.add(Note(f"{row['name']}: no (seed, item) pair has both {row['treatment']} and {row['baseline']} "
                         f"on {row['metric']}: the run lacks one of them"))
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
    """The done job of a loss with the lowest seed (the one whose audio is shown), the baseline system
    itself (it has no job), or None."""
    if loss == adequacy.baseline_system(run) or loss in run.dir.read_systems() and \
            not any(j.get("loss") == loss for j in run.jobs.values()):
        return loss  # a system trained by no job (the PCA baseline, a codec, a scored folder) is its own
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
            section.add(Note(f"{item}: {run.dir.relative(run.reference_wav(item))} is missing"))
            continue
        signals = {"reference": ref[0]}
        players = [Audio(ref[2], f"{item}: reference", run.dir.relative(run.reference_wav(item)),
                         len(ref[0]) / ref[1])]
        for loss in run.losses:
            job = example_job(run, loss)
            recon = _read_wav(run.recon_wav(job, item)) if job else None
            if recon is None:
                section.add(Note(f"{item}: no reconstruction by {loss} (no finished job with its audio)"))
                continue
            signals[f"{loss} ({job})"] = recon[0]
            players.append(Audio(recon[2], f"{item}: {loss} ({job})", run.dir.relative(run.recon_wav(job, item)),
                                 len(recon[0]) / recon[1]))
        section.add(Image(plots.to_png(plots.spectrogram_row(signals, ref[1], item)), f"spectrogram-{item}",
                          f"spectrograms of {item}"))
        for player in players:
            section.add(player)
    return section


def _listening_section(run: RunData, tests: list[tuple[str, pd.DataFrame]], notes: list[str],
                       screening_options: dict | None = None) -> Section:
    section = Section("listening", "Listening tests")
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
        other = analyses.analyze_test(ratings, name, list(run.jobs))
        if other is not None:
            section.add(Sub(f"test {name} ({other.title})"))
            for text in other.notes:
                section.add(Note(text, "note"))
            for _, part in other.parts:
                section.add(part)
            for slug, draw, caption in other.figures:
                section.add(Image(plots.to_png(draw(colours)), f"{slug}-{name}", caption))
            if other.scores is not None:
                _correlation_blocks(section, run, other.scores, other.levels, other.scale)
            if other.discrimination is not None:
                _correlation_blocks(section, run, discrimination=other.discrimination)
            continue
        section.add(Sub(f"test {name} (MUSHRA)"))
        result = listening.analyze_ratings(ratings, name, system_order=list(run.jobs),
                                           **(screening_options or {}))
        for text in result.notes:
            section.add(Note(text, "missing" if "rater " in text and " of " in text else "note"))
        if result.screening is None:
            continue
        scr = result.screening
        section.add(present.screening_sentence(scr))
        section.add(present.screening_table(scr))
        if result.summary.empty:
            continue
        summary = result.summary
        few = present.too_few_raters_sentence(summary)
        if few:
            section.add(Note(few, "note"))
        for table in present.mushra_tables(summary):
            section.add(table)
        section.add(Image(plots.to_png(plots.mushra_means(summary, colours)), f"mushra-means-{name}",
                          "MUSHRA means with 95 % intervals"))
        order = list(summary["condition"])
        section.add(Image(plots.to_png(plots.mushra_boxes(result.analysed, order, colours,
                                                                screened=scr.n_after > 0)), f"mushra-boxes-{name}",
                          "MUSHRA ratings per condition"))
        friedman = present.friedman_sentence(result.friedman)
        section.add(Note(friedman) if result.friedman.get("note") else friedman)
        if len(result.pairwise):
            section.add(present.pairwise_table(result.pairwise))
        mixed = result.mixed
        if mixed is not None:
            if len(mixed["fixed"]):
                section.add(present.mixed_model_table(mixed["fixed"]))
                section.add(present.variance_sentence(mixed["variance"]))
            if mixed["note"]:
                section.add(Note(mixed["note"], "note"))
        _correlation_blocks(section, run, result.analysed)
    return section


def _correlation_blocks(section: Section, run: RunData, ratings: pd.DataFrame | None = None,
                        levels: tuple[str, ...] = ("system", "item"), scale: str = "MUSHRA scores",
                        discrimination: pd.DataFrame | None = None) -> None:
    """Metrics against the listeners: their scores (``ratings``), or how often pairs were told apart."""
    from earshot.results.correlation import metric_discrimination_correlation, metric_rating_correlation

    section.add(Sub("Metrics against ears"))
    if run.metrics.empty:
        section.add(Note("no metrics to correlate with the ratings"))
        return
    if discrimination is not None:
        table = metric_discrimination_correlation(run.metrics, discrimination, run.metric_info)
    else:
        table = metric_rating_correlation(run.metrics, ratings, run.metric_info, levels)
    if table.empty:
        section.add(Note("no rated condition matches a job of this run"))
        return
    for gap in present.correlation_gaps(table):
        section.add(Note(gap, "note"))
    shown = present.correlation_table(table, scale)
    if shown is not None:
        section.add(shown)


def build_sections(run_dir: str | Path, ratings: str | Path | list[tuple[str, pd.DataFrame]] | None = None,
                   listening_notes: list[str] | None = None, screening_options: dict | None = None,
                   declaration: Declaration | None = None,
                   latent_bits: int = DEFAULT_LATENT_BITS) -> tuple[RunData, list[Section]]:
    """Everything in the report, format-neutral; ``ratings`` as :func:`listening_tests` takes them,
    ``listening_notes`` say what the caller could not find (shown in the listening section),
    ``declaration`` the hypotheses checked (default: :func:`hypotheses.declared_for_run`),
    ``latent_bits`` the bits per latent of the trained losses' nominal bitrates."""

    run = load_run(run_dir)
    sections = [_run_section(run), _training_section(run)]
    metrics_section, _ = _metrics_section(run)
    sections += [metrics_section, _bitrate_section(run, latent_bits), _adequacy_section(run),
                 _claims_section(run, declaration or declared_for_run(run.path)),
                 _examples_section(run)]

    sections.append(_listening_section(run, listening_tests(ratings), list(listening_notes or []),
                                       screening_options))
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
                parts.append(f'<figure class="audio"><figcaption>{html.escape(block.caption)}</figcaption>'
                             f'<audio controls preload="metadata" src="data:audio/wav;base64,{data}"></audio></figure>')
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
                lines += [f"- [{block.caption}](../{block.path})"]
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


def write_report(run_dir: str | Path, format: str = "html",
                 ratings: str | Path | list[tuple[str, pd.DataFrame]] | None = None,
                 listening_notes: list[str] | None = None, screening_options: dict | None = None,
                 declaration: Declaration | None = None, latent_bits: int = DEFAULT_LATENT_BITS) -> Path:
    """Write ``RUN/report/index.html`` (or ``index.md`` with PNGs, or ``index.tex``); returns its path.

    ``ratings``: a ratings file, or ``[(test name, ratings frame)]`` in the columns of
    ``earshot listen export`` (see :func:`listening_tests`); None: no listening test.
    ``listening_notes``: what the caller could not find, shown in the listening section.
    ``declaration``: the hypotheses checked; None: those recorded in the run, else the seed's.

    Raises:
        FileNotFoundError: not a run directory.
        ValueError: unknown format.
        results.listening.RatingsError: a ratings file that cannot be read.
        results.hypotheses.HypothesisError: the run's recorded hypotheses cannot be read.
    """
    if format not in FORMATS:
        raise ValueError(f"unknown report format {format!r} (one of {', '.join(FORMATS)})")
    run, sections = build_sections(run_dir, ratings, listening_notes, screening_options, declaration, latent_bits)
    return write_sections(run, sections, format)


def write_sections(run: RunData, sections: list[Section], format: str = "html") -> Path:
    """Write the report :func:`build_sections` built (a caller that also shows its tables builds it
    once) in ``format``; returns its path. Raises ValueError for an unknown format."""
    if format not in FORMATS:
        raise ValueError(f"unknown report format {format!r} (one of {', '.join(FORMATS)})")
    out_dir = run.dir.report_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    if format == "html":
        target = run.dir.report_file("html")
        text = render_html(run, sections)
    elif format == "md":
        target = run.dir.report_file("md")
        previous = _markdown_images(target.read_text(encoding="utf-8")) if target.exists() else set()
        text = render_markdown(run, sections, out_dir)
        for stale in previous - _markdown_images(text):  # only PNGs an earlier report of ours linked
            (out_dir / stale).unlink(missing_ok=True)
    else:
        target = run.dir.report_file("tex")
        text = render_latex(run, sections)
    write_text_atomic(target, text)  # a reader never sees half a report
    return target
