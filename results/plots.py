"""Figures for the report (matplotlib, Agg): drawing only, the numbers come from elsewhere.

Colours are the Okabe–Ito palette (Okabe & Ito, "Color Universal Design", 2008), which
stays distinguishable under the common colour-vision deficiencies; each loss keeps its
colour in every figure. Every axis says what it shows and in which unit.
"""

from __future__ import annotations

import io
import math

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # no display: the report is written to files

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.signal  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000"]
KIND_COLOURS = {"reference": "#000000", "anchor": "#999999"}  # controls in neutral greys

FIGURE_DPI = 100  # px per inch: the report's PNGs stay small (tens of kB)
SPECTROGRAM_FFT = 512  # samples (46 ms at 11 025 Hz), Hann, 75 % overlap
SPECTROGRAM_HOP = 128  # samples
SPECTROGRAM_RANGE_DB = 80.0  # dB below the reference's loudest bin shown; quieter is black

plt.rcParams.update({"font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "figure.dpi": FIGURE_DPI,
                     "axes.spines.top": False, "axes.spines.right": False})


def loss_colours(losses: list[str]) -> dict[str, str]:
    """A fixed colour per loss, in the run's loss order."""
    return {name: OKABE_ITO[i % len(OKABE_ITO)] for i, name in enumerate(losses)}


def to_png(figure) -> bytes:
    """The figure as PNG bytes; the figure is closed (figures hold memory until closed)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(figure)
    return buffer.getvalue()


def training_curves(logs: pd.DataFrame, losses: list[str], smooth_steps: int = 1):
    """One panel per loss: the training loss against step, mean over seeds, min–max band.

    Losses live on different scales (a sample MSE vs a log-Bark MSE), so each has its own
    panel and y axis. ``smooth_steps`` > 1 applies a running mean over that many logged steps.
    """
    names = [n for n in losses if n in set(logs.get("loss_name", pd.Series(dtype=str)))]
    colours = loss_colours(losses)
    columns = max(1, min(3, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, name in zip(axes.flat, names):
        per_seed = logs[logs["loss_name"] == name].pivot_table(index="step", columns="seed", values="loss")
        if smooth_steps > 1:
            per_seed = per_seed.rolling(smooth_steps, min_periods=1).mean()
        mean = per_seed.mean(axis=1)
        ax.fill_between(per_seed.index, per_seed.min(axis=1), per_seed.max(axis=1), color=colours[name],
                        alpha=0.25, linewidth=0, label=f"min–max over {per_seed.shape[1]} seed(s)")
        ax.plot(mean.index, mean.values, color=colours[name], linewidth=1.3, label="mean over seeds")
        positive = bool((per_seed.to_numpy()[np.isfinite(per_seed.to_numpy())] > 0).all())
        if positive:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("training step")
        ax.set_ylabel(f"{name} loss (its own units{', log scale' if positive else ''})")
        ax.legend(frameon=False, fontsize=7)
    if not names:
        axes[0, 0].text(0.5, 0.5, "no training logs", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_axis_off()
    figure.tight_layout()
    return figure


def metric_bars(summary: pd.DataFrame, categories: list[str], losses: list[str], metrics: list[str],
                metric_info: dict[str, dict]):
    """A small panel per metric: per category, each loss's mean as a bar with its 95 % interval.

    Arguments:
        summary: :func:`results.aggregate.metric_summary` rows (metric, category, loss, mean, ci_low, ci_high).
        categories: categories in panel order (e.g. ``all`` first).
        losses: losses in bar order (one colour each).
        metrics: metric names in panel order.
        metric_info: the run's metric catalog (``RunData.metric_info``): per metric its
            ``unit``, ``higher_is_better`` and ``ideal``.
    """
    names = [m for m in metrics if m in set(summary["metric"])]
    colours = loss_colours(losses)
    columns = 4
    rows = max(1, math.ceil(len(names) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.3 * columns, 2.5 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    width = 0.8 / max(1, len(losses))
    missing_interval = False
    for ax, metric in zip(axes.flat, names):
        rows_for = summary[summary["metric"] == metric]
        shown = [c for c in categories if c in set(rows_for["category"])]
        x = np.arange(len(shown))
        for j, loss in enumerate(losses):
            table = rows_for[rows_for["loss"] == loss].set_index("category").reindex(shown)
            mean = table["mean"].to_numpy(float)
            lows, highs = table["ci_low"].to_numpy(float), table["ci_high"].to_numpy(float)
            where = x + (j - (len(losses) - 1) / 2) * width
            ax.bar(where, np.nan_to_num(mean), width, color=colours[loss], label=loss)
            # Whiskers only where there is an interval: a single-item category has none, and a
            # zero-width bar would claim a certainty nobody measured.
            has = np.isfinite(lows) & np.isfinite(highs) & (highs > lows)
            missing_interval |= bool((np.isfinite(mean) & ~has).any())
            if has.any():
                ax.errorbar(where[has], mean[has], yerr=[np.clip(mean - lows, 0, None)[has],
                                                         np.clip(highs - mean, 0, None)[has]],
                            fmt="none", ecolor="black", capsize=2, linewidth=0.8)
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, shown, fontsize=7)
        info = metric_info.get(metric) or {}
        unit = info.get("unit")
        ideal = "" if info.get("ideal") is None else f" ({info['ideal']:g}{' ' + unit if unit else ''} ideal)"
        ax.set_title(metric + {True: " (↑ better)", False: " (↓ better)"}.get(info.get("higher_is_better"), ideal))
        ax.set_ylabel(unit or "no unit")
    if names:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="upper center", ncol=len(losses), frameon=False,
                      bbox_to_anchor=(0.5, 1.0 + 0.12 / rows))
    figure.tight_layout()
    if missing_interval:
        figure.text(0.5, 0.0, "bars without whiskers: too few values for an interval (e.g. a category with one "
                    "item and one seed)", ha="center", va="top", fontsize=7, color="#444444")
    return figure


def spectrogram_row(signals: dict[str, np.ndarray], sample_rate: int, title: str):
    """Spectrograms side by side (reference first), one shared dB scale re the first's peak."""
    names = list(signals)
    figure, axes = plt.subplots(1, len(names), figsize=(2.6 * len(names), 2.4), squeeze=False, sharey=True)
    peak = None
    image = None
    for ax, name in zip(axes[0], names):
        x = np.asarray(signals[name], dtype=float)
        if x.size < SPECTROGRAM_FFT:
            ax.text(0.5, 0.5, "too short", ha="center", transform=ax.transAxes)
            continue
        f, t, power = scipy.signal.spectrogram(x, fs=sample_rate, window="hann", nperseg=SPECTROGRAM_FFT,
                                               noverlap=SPECTROGRAM_FFT - SPECTROGRAM_HOP, mode="psd")
        db = 10 * np.log10(power + 1e-20)
        if peak is None:
            peak = float(db.max())
        image = ax.pcolormesh(t, f / 1000, db - peak, shading="auto", cmap="magma",
                              vmin=-SPECTROGRAM_RANGE_DB, vmax=0, rasterized=True)
        ax.set_title(name)
        ax.set_xlabel("time (s)")
    axes[0, 0].set_ylabel("frequency (kHz)")
    if image is not None:
        bar = figure.colorbar(image, ax=axes[0].tolist(), fraction=0.02, pad=0.01)
        bar.set_label("dB re reference peak")
    return figure


def _condition_colour(condition: str, kind: str, colours: dict[str, str]) -> str:
    return KIND_COLOURS.get(kind) or colours.get(condition, OKABE_ITO[0])


def mushra_means(summary: pd.DataFrame, colours: dict[str, str]):
    """Mean MUSHRA score per condition with its 95 % interval (systems, then controls)."""
    figure, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(summary) + 1.5), 3.2))
    x = np.arange(len(summary))
    for i, row in enumerate(summary.itertuples()):
        colour = _condition_colour(row.condition, row.kind, colours)
        # The summary's interval is already cut to the scale; none (too few raters) or a zero-width
        # one (every rating equal) draws the point alone, never a flat bar.
        low, high = float(row.ci_low), float(row.ci_high)
        err = None
        if np.isfinite(low) and np.isfinite(high) and high > low:
            err = [[max(0.0, row.mean - low)], [max(0.0, high - row.mean)]]
        ax.errorbar([i], [row.mean], yerr=err, fmt="o", color=colour, capsize=4, markersize=6)
    ax.set_xticks(x, summary["condition"], rotation=30, ha="right")
    ax.set_ylim(0, 104)  # room for a point at 100 and its marker
    for edge in (20, 40, 60, 80):
        ax.axhline(edge, color="#dddddd", linewidth=0.6, zorder=0)
    for middle, label in zip((10, 30, 50, 70, 90), ("Bad", "Poor", "Fair", "Good", "Excellent")):
        ax.text(len(summary) - 0.4, middle, label, fontsize=7, color="#777777", va="center")
    ax.set_xlim(-0.6, len(summary) - 0.4 + 0.9)
    ax.set_ylabel("MUSHRA score (0–100)")
    ax.set_xlabel("condition")
    title = "mean over raters (each averaged over items) with 95 % t-interval"
    notes = []
    if (~np.isfinite(summary["ci_low"].astype(float))).any():
        notes.append("no bar: too few raters for an interval")
    if summary.get("ci_clipped", pd.Series(dtype=bool)).astype(bool).any():
        notes.append("bars cut at the 0–100 scale")
    ax.set_title(title + ("\n(" + "; ".join(notes) + ")" if notes else ""))
    figure.tight_layout()
    return figure


def mushra_boxes(ratings: pd.DataFrame, order: list[str], colours: dict[str, str], screened: bool = True):
    """Box plots of every rating per condition, the ratings drawn over them."""
    figure, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(order) + 1.5), 3.2))
    kinds = ratings.groupby("condition")["kind"].first()
    data = [ratings.loc[ratings["condition"] == c, "score"].to_numpy(float) for c in order]
    boxes = ax.boxplot(data, patch_artist=True, widths=0.6, showfliers=False)
    rng = np.random.default_rng(0)  # fixed jitter: the same figure every time
    for i, (patch, condition) in enumerate(zip(boxes["boxes"], order)):
        colour = _condition_colour(condition, kinds.get(condition, "system"), colours)
        patch.set_facecolor(colour)
        patch.set_alpha(0.35)
        ax.scatter(i + 1 + rng.uniform(-0.15, 0.15, data[i].size), data[i], s=6, color=colour, zorder=3)
    ax.set_xticks(np.arange(1, len(order) + 1), order, rotation=30, ha="right")
    ax.set_ylim(-2, 102)
    ax.set_ylabel("MUSHRA score (0–100)")
    ax.set_xlabel("condition")
    ax.set_title("every rating (after post-screening)" if screened else "every rating (UNSCREENED: no rater passed)")
    figure.tight_layout()
    return figure


def quality_vs_bitrate(summary: pd.DataFrame, bitrates: pd.DataFrame, metrics: list[str],
                       metric_info: dict[str, dict], category: str):
    """A panel per metric: each system with a known bitrate as one point (its mean, with its 95 % interval)
    at its bitrate (log axis), labelled; trained losses (nominal bitrates) hollow, others filled."""
    known = bitrates[np.isfinite(bitrates["kbps"].astype(float))]
    rows_for = summary[(summary["category"] == category) & summary["loss"].isin(known["system"])]
    names = [m for m in metrics if m in set(rows_for["metric"])]
    colours = loss_colours(list(known["system"]))
    columns = min(4, max(1, len(names)))
    rows = max(1, math.ceil(len(names) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.7 * rows), squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, names):
        by_system = rows_for[rows_for["metric"] == metric].set_index("loss")
        for r in known.to_dict("records"):
            if r["system"] not in by_system.index:
                continue
            s = by_system.loc[r["system"]]
            mean = float(s["mean"])
            low = np.nan_to_num(max(0.0, mean - float(s["ci_low"])))
            high = np.nan_to_num(max(0.0, float(s["ci_high"]) - mean))
            nominal = r["basis"] == "nominal"
            ax.errorbar([r["kbps"]], [mean], yerr=[[low], [high]], fmt="o", color=colours[r["system"]],
                        markerfacecolor="white" if nominal else colours[r["system"]], capsize=2, linewidth=0.8,
                        label=r["system"])
            ax.annotate(r["system"], (r["kbps"], mean), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel("kbit/s", fontsize=7)
        info = metric_info.get(metric) or {}
        ax.set_ylabel(info.get("unit") or "no unit", fontsize=7)
        ax.set_title(metric + {True: " (↑ better)", False: " (↓ better)"}.get(info.get("higher_is_better"), ""),
                     fontsize=8)
        ax.tick_params(labelsize=7)
    figure.suptitle(f"{category}: quality vs bitrate (hollow: nominal latent rate)", fontsize=9)
    figure.tight_layout()
    return figure


def preference_scale(scale: pd.DataFrame, colours: dict[str, str]):
    """The Bradley–Terry scale per system with its interval, highest first (``results.ab.SCALE_COLUMNS``)."""
    figure, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(scale) + 1.5), 3.2))
    for i, row in enumerate(scale.itertuples()):
        err = [[row.scale - row.ci_low], [row.ci_high - row.scale]] if np.isfinite(row.ci_low) else None
        ax.errorbar([i], [row.scale], yerr=err, fmt="o", color=colours.get(row.condition, OKABE_ITO[0]), capsize=4,
                    markersize=6)
    ax.axhline(0, color="#dddddd", linewidth=0.8, zorder=0)
    ax.set_xticks(np.arange(len(scale)), scale["condition"], rotation=30, ha="right")
    ax.set_xlim(-0.6, len(scale) - 0.4)
    ax.set_ylabel("Bradley–Terry scale (logits)")
    ax.set_xlabel("system")
    ax.set_title("log strength, centred; 95 % Wald intervals")
    figure.tight_layout()
    return figure


def ranking_means(means: pd.DataFrame, colours: dict[str, str]):
    """Mean rank per condition (1 = best, at the top) with its 95 % interval, best first."""
    figure, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(means) + 1.5), 3.2))
    for i, row in enumerate(means.itertuples()):
        low, high = float(row.ci_low), float(row.ci_high)
        err = None
        if np.isfinite(low) and np.isfinite(high) and high > low:
            err = [[max(0.0, row.mean_rank - low)], [max(0.0, high - row.mean_rank)]]
        ax.errorbar([i], [row.mean_rank], yerr=err, fmt="o", color=colours.get(row.condition, OKABE_ITO[0]),
                    capsize=4, markersize=6)
    ax.set_xticks(np.arange(len(means)), means["condition"], rotation=30, ha="right")
    ax.set_ylim(len(means) + 0.3, 0.7)  # rank 1, the best, at the top
    ax.set_yticks(np.arange(1, len(means) + 1))
    ax.set_ylabel("mean rank (1 = best)")
    ax.set_xlabel("condition")
    ax.set_title("mean over raters (each averaged over items)\nwith 95 % bootstrap interval (raters × items)",
                 fontsize=9)
    figure.tight_layout()
    return figure


def mos_means(summary: pd.DataFrame, colours: dict[str, str]):
    """MOS per condition with its 95 % interval (``results.mos`` summary): every rater (filled) and, where
    the gold questions flagged someone, the unflagged raters (hollow) beside it."""
    figure, ax = plt.subplots(figsize=(max(4.0, 0.8 * len(summary) + 1.5), 3.2))
    screened = bool((summary["screened_raters"] < summary["raters"]).any())
    for i, row in enumerate(summary.itertuples()):
        colour = _condition_colour(row.condition, "system", colours)
        for shift, mean, low, high, fill in ((-0.12 if screened else 0.0, row.mos, row.ci_low, row.ci_high, colour),
                                             (0.12, row.screened_mos, row.screened_ci_low, row.screened_ci_high,
                                              "white")):
            if not np.isfinite(float(mean)):
                continue
            err = None
            if np.isfinite(float(low)) and np.isfinite(float(high)) and high > low:
                err = [[max(0.0, mean - low)], [max(0.0, high - mean)]]
            ax.errorbar([i + shift], [mean], yerr=err, fmt="o", color=colour, markerfacecolor=fill, capsize=4,
                        markersize=6)
            if not screened:
                break
    ax.set_xticks(np.arange(len(summary)), summary["condition"], rotation=30, ha="right")
    ax.set_ylim(0.8, 5.2)
    ax.set_yticks([1, 2, 3, 4, 5], ["1 Bad", "2 Poor", "3 Fair", "4 Good", "5 Excellent"], fontsize=7)
    ax.grid(axis="y", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_xlim(-0.6, len(summary) - 0.4)
    ax.set_ylabel("MOS (ACR)")
    ax.set_xlabel("condition")
    notes = ["hollow: flagged raters left out"] if screened else []
    if (~np.isfinite(summary["ci_low"].astype(float))).any():
        notes.append("no bar: too few raters or items")
    ax.set_title("MOS, 95 % interval over raters and items"
                 + ("\n(" + "; ".join(notes) + ")" if notes else ""), fontsize=9)
    figure.tight_layout()
    return figure
