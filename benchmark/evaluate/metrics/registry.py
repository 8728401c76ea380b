"""The table of metrics: which applies to which category, which direction is better, the unit.

:data:`METRICS` declares it in one place; :func:`compute_metric` turns every
failure into ``(nan, reason)`` and :func:`compute_all` runs the metrics of a
category. Optional packages (pesq, pystoi, visqol-python, speechmos, and
``losses.bark`` for the bark distance) are imported inside the function that
needs them; a missing one makes its metrics report "skipped: ..." while the
others run (:func:`available_metrics`).
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from earshot.benchmark.data.audio import CATEGORIES, OTHER
from earshot.benchmark.evaluate.metrics.bark import bark_distance
from earshot.benchmark.evaluate.metrics.level import hf_energy_ratio_db_2k, hf_energy_ratio_db_4k, hf_fraction_2k
from earshot.benchmark.evaluate.metrics.mos import dnsmos, visqol_audio, visqol_speech
from earshot.benchmark.evaluate.metrics.signals import SAMPLE_RATE, MetricError
from earshot.benchmark.evaluate.metrics.spectral import error_flatness, lsd, mcd, mrstft
from earshot.benchmark.evaluate.metrics.speech import estoi, pesq_nb, pesq_wb, stoi
from earshot.benchmark.evaluate.metrics.waveform import si_sdr, snr
from earshot.losses.freq import MRSTFT_FFT_SIZES

logger = logging.getLogger(__name__)

SPEECH_LIKE = frozenset({"speech", "mix"})
ALL_CATEGORIES = frozenset(CATEGORIES)


@dataclass(frozen=True)
class MetricSpec:
    """How to run and read one metric.

    ``higher_is_better`` is None for descriptive metrics with no better direction
    (the high-frequency fraction, the error's flatness) and for the HF ratios,
    whose ideal is 0 dB (``ideal``: the best value, for metrics with no better
    direction; None otherwise). ``requires`` are the modules the function imports;
    ``install`` says how to get them. ``version`` keys the evaluation cache: whoever
    changes what the metric computes (its code, a constant, the library it wraps)
    bumps it, and the next ``earshot eval`` recomputes that metric alone.
    """

    name: str
    function: Callable[[np.ndarray, np.ndarray, int], float]
    categories: frozenset[str]
    higher_is_better: bool | None
    unit: str
    description: str
    requires: tuple[str, ...] = ()
    install: str = ""
    ideal: float | None = None
    version: int = 1


_PESQ = dict(requires=("pesq", "soxr"), install="pip install pesq")
_STOI = dict(requires=("pystoi",), install="pip install pystoi")
_VISQOL_INSTALL = "pip install 'visqol-python[accel,lattice]'"
_DNSMOS = dict(
    requires=("speechmos.dnsmos", "soxr"),  # speechmos imports onnxruntime, librosa, requests
    install="pip install speechmos onnxruntime librosa requests",
)

# ViSQOL's audio mode is its mode for anything that is not clean speech: music,
# drums, speech over music (mix, which also gets the speech metrics) and other.
NON_SPEECH = ALL_CATEGORIES - {"speech"}

METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("hf_energy_ratio_db_2k", hf_energy_ratio_db_2k, ALL_CATEGORIES, None, "dB",
                   "energy above 2 kHz, reconstruction vs reference (0 dB ideal, < 0 lost)",
                   ideal=0.0),
        MetricSpec("hf_energy_ratio_db_4k", hf_energy_ratio_db_4k, ALL_CATEGORIES, None, "dB",
                   "energy above 4 kHz, reconstruction vs reference (0 dB ideal, < 0 lost)",
                   ideal=0.0),
        MetricSpec("hf_fraction_2k", hf_fraction_2k, ALL_CATEGORIES, None, "fraction",
                   "fraction of the reconstruction's energy above 2 kHz"),
        MetricSpec("pesq_wb", pesq_wb, SPEECH_LIKE, True, "MOS-LQO",
                   "PESQ wide band at 16 kHz (ITU-T P.862.2)", **_PESQ),
        MetricSpec("pesq_nb", pesq_nb, SPEECH_LIKE, True, "MOS-LQO",
                   "PESQ narrow band at 8 kHz (ITU-T P.862.1)", **_PESQ),
        MetricSpec("stoi", stoi, SPEECH_LIKE, True, "0-1",
                   "short-time objective intelligibility", **_STOI),
        MetricSpec("estoi", estoi, SPEECH_LIKE, True, "0-1",
                   "extended STOI", **_STOI),
        MetricSpec("si_sdr", si_sdr, ALL_CATEGORIES, True, "dB",
                   "scale-invariant signal-to-distortion ratio (clamped to +-100 dB)"),
        MetricSpec("snr", snr, ALL_CATEGORIES, True, "dB",
                   "signal-to-noise ratio (clamped to +-100 dB)"),
        MetricSpec("lsd", lsd, ALL_CATEGORIES, False, "dB",
                   "log-spectral distance"),
        MetricSpec("mrstft", mrstft, ALL_CATEGORIES, False, "",
                   f"multi-resolution STFT distance (FFT {'/'.join(map(str, MRSTFT_FFT_SIZES))})"),
        MetricSpec("mcd", mcd, ALL_CATEGORIES, False, "dB",
                   "mel cepstral distortion, c1..c24 of 40 mel bands"),
        MetricSpec("error_flatness", error_flatness, ALL_CATEGORIES, None, "0-1",
                   "spectral flatness of the error: high = noise-like, low = tonal"),
        MetricSpec("bark_distance", bark_distance, ALL_CATEGORIES, False, "",
                   "MSE of the seed's bark features (the bark loss over the clip)",
                   requires=("torch", "earshot.losses.bark"), install="losses/bark.py (part of earshot)"),
        MetricSpec("visqol_speech", visqol_speech, SPEECH_LIKE, True, "MOS-LQO",
                   "ViSQOL v3 speech mode at 16 kHz",
                   requires=("visqol", "ai_edge_litert", "soxr"), install=_VISQOL_INSTALL),
        MetricSpec("visqol_audio", visqol_audio, NON_SPEECH, True, "MOS-LQO",
                   "ViSQOL v3 audio mode at 48 kHz",
                   requires=("visqol", "soxr"), install=_VISQOL_INSTALL),
        MetricSpec("dnsmos", dnsmos, SPEECH_LIKE, True, "MOS",
                   "DNSMOS P.835 overall quality of the reconstruction (non-intrusive)", **_DNSMOS),
    )
}


def metric_catalog() -> dict[str, dict]:
    """What a reader of a run needs to know about each metric, as plain JSON.

    Written into the run directory beside ``metrics.parquet``, so that ``results``
    learns a metric's direction, unit and categories from the run, not from this module.
    """
    return {name: {"higher_is_better": spec.higher_is_better, "ideal": spec.ideal, "unit": spec.unit,
                   "categories": sorted(spec.categories), "description": spec.description}
            for name, spec in METRICS.items()}


@functools.cache
def _missing(requires: tuple[str, ...]) -> str | None:
    """Why the modules cannot be imported, or None when they all can."""
    for module in requires:
        try:
            importlib.import_module(module)
        except Exception as error:  # an ImportError, or a broken install failing at import
            return f"{module} is not importable ({type(error).__name__}: {error})"
    return None


def available_metrics() -> dict[str, str | None]:
    """Which metrics can run here.

    Returns:
        Metric name → None when it can run, else the reason it will be skipped
        (the module that fails to import and how to install it).
    """
    return {name: skip_reason(name) for name in METRICS}


def skip_reason(name: str) -> str | None:
    """Why metric ``name`` is skipped here ("skipped: <module> is not importable …; <install>"), or
    None when it can run. Imports only that metric's modules. Raises KeyError: unknown metric."""
    spec = METRICS[name]
    missing = _missing(spec.requires)
    return None if missing is None else f"skipped: {missing}; {spec.install}"


def metrics_for(category: str) -> list[str]:
    """Names of the metrics that apply to a category, in table order.

    Raises:
        ValueError: unknown category.
    """
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r} (known: {', '.join(CATEGORIES)})")
    return [name for name, spec in METRICS.items() if category in spec.categories]


def compute_metric(
    name: str, reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE
) -> tuple[float, str | None]:
    """One metric, never raising for bad audio.

    Arguments:
        name: a key of :data:`METRICS`.
        reference: original signal, 1-D float.
        degraded: reconstruction, 1-D float.
        sample_rate: Hz.

    Returns:
        ``(value, None)``, or ``(nan, reason)`` for a failure or a skipped metric
        (reason starting with "skipped:"). An unexpected exception from a metric
        library is logged and returned as ``(nan, "unexpected <Type>: ...")`` so one
        bad clip cannot stop a whole evaluation.

    Raises:
        KeyError: unknown metric name.
        ValueError: arrays that are not 1-D (a caller's bug, not bad audio).
    """
    spec = METRICS[name]
    reference = np.asarray(reference)
    degraded = np.asarray(degraded)
    if reference.ndim != 1 or degraded.ndim != 1:
        raise ValueError(f"metrics take 1-D mono arrays, got shapes {reference.shape} and {degraded.shape}")
    skipped = skip_reason(name)
    if skipped is not None:
        return math.nan, skipped
    try:
        return float(spec.function(reference, degraded, sample_rate)), None
    except MetricError as error:
        return math.nan, str(error) or "metric failed"
    except Exception as error:
        logger.warning("metric %s raised unexpectedly", name, exc_info=True)
        return math.nan, f"unexpected {type(error).__name__}: {error}"


def compute_all(
    reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE, category: str = OTHER
) -> list[dict]:
    """Every metric that applies to a category, in table order.

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, 1-D float.
        sample_rate: Hz.
        category: one of :data:`CATEGORIES`.

    Returns:
        One ``{"metric": name, "value": float, "error": str | None}`` per metric;
        ``value`` is NaN exactly when ``error`` is set.

    Raises:
        ValueError: unknown category, or arrays that are not 1-D.
    """
    rows = []
    for name in metrics_for(category):
        value, error = compute_metric(name, reference, degraded, sample_rate)
        rows.append({"metric": name, "value": value, "error": error})
    return rows
