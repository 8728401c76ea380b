"""Objective metrics: how far a reconstruction is from its reference.

A metric is one plain function, ``metric(reference, degraded, sample_rate) -> float``,
on 1-D float numpy arrays of the same length (see ``signals``). One module per family:

- ``signals``: :class:`MetricError`, :func:`check_signals`, the helpers every metric shares;
- ``level``: energy above a cutoff (HF energy ratios, HF fraction);
- ``waveform``: SI-SDR, SNR;
- ``spectral``: LSD, multi-resolution STFT, MCD, the error's flatness;
- ``speech``: PESQ, STOI/ESTOI;
- ``bark``: the seed's bark-feature distance;
- ``mos``: ViSQOL v3, DNSMOS;
- ``registry``: :data:`METRICS`, the one table of which metric applies to which
  category, its unit and whether higher is better; :func:`compute_metric`,
  :func:`compute_all`, :func:`available_metrics`, :func:`metric_catalog`;
- ``pool``: the process pool evaluation runs them in.

Every public name is importable from this package.
"""

from earshot.benchmark.evaluate.metrics.bark import BARK_BATCH, BARK_WINDOW, bark_distance
from earshot.benchmark.evaluate.metrics.level import (
    HF_REFERENCE_MIN_DB,
    HF_WELCH_SEGMENT,
    hf_energy_ratio_db,
    hf_energy_ratio_db_2k,
    hf_energy_ratio_db_4k,
    hf_fraction_2k,
)
from earshot.benchmark.evaluate.metrics.mos import (
    DNSMOS_MIN_SECONDS,
    DNSMOS_RATE,
    VISQOL_AUDIO_RATE,
    VISQOL_MIN_SECONDS,
    VISQOL_SPEECH_RATE,
    dnsmos,
    visqol_audio,
    visqol_speech,
)
from earshot.benchmark.evaluate.metrics.pool import init_metric_worker, metric_pool
from earshot.benchmark.evaluate.metrics.registry import (
    ALL_CATEGORIES,
    CATEGORIES,
    METRICS,
    NON_SPEECH,
    SPEECH_LIKE,
    MetricSpec,
    available_metrics,
    compute_all,
    compute_metric,
    metric_catalog,
    metrics_for,
)
from earshot.benchmark.evaluate.metrics.signals import (
    CLIP_LEVEL,
    CLIP_MAX_FRACTION,
    DB_LIMIT,
    SAMPLE_RATE,
    SILENCE_RMS_DBFS,
    MetricError,
    check_signals,
)
from earshot.benchmark.evaluate.metrics.spectral import (
    FLATNESS_FRAME_DB,
    FLATNESS_IDENTICAL_DB,
    LSD_FLOOR_DB,
    MCD_COEFFICIENTS,
    MCD_FLOOR_DB,
    MCD_MEL_BANDS,
    MRSTFT_FFT_SIZES,
    MRSTFT_POWER_FLOOR,
    STFT_HOP,
    STFT_SIZE,
    error_flatness,
    lsd,
    mcd,
    mel_filter_bank,
    mrstft,
)
from earshot.benchmark.evaluate.metrics.speech import (
    PESQ_MIN_SECONDS,
    PESQ_NB_RATE,
    PESQ_WB_RATE,
    STOI_MIN_SECONDS,
    STOI_TOO_SHORT_SENTINEL,
    estoi,
    pesq_nb,
    pesq_wb,
    stoi,
)
from earshot.benchmark.evaluate.metrics.waveform import si_sdr, snr

__all__ = [
    "ALL_CATEGORIES", "BARK_BATCH", "BARK_WINDOW", "CATEGORIES", "CLIP_LEVEL", "CLIP_MAX_FRACTION", "DB_LIMIT",
    "DNSMOS_MIN_SECONDS", "DNSMOS_RATE", "FLATNESS_FRAME_DB", "FLATNESS_IDENTICAL_DB", "HF_REFERENCE_MIN_DB",
    "HF_WELCH_SEGMENT", "LSD_FLOOR_DB", "MCD_COEFFICIENTS", "MCD_FLOOR_DB", "MCD_MEL_BANDS", "METRICS",
    "MRSTFT_FFT_SIZES", "MRSTFT_POWER_FLOOR", "MetricError", "MetricSpec", "NON_SPEECH", "PESQ_MIN_SECONDS",
    "PESQ_NB_RATE", "PESQ_WB_RATE", "SAMPLE_RATE", "SILENCE_RMS_DBFS", "SPEECH_LIKE", "STFT_HOP", "STFT_SIZE",
    "STOI_MIN_SECONDS", "STOI_TOO_SHORT_SENTINEL", "VISQOL_AUDIO_RATE", "VISQOL_MIN_SECONDS", "VISQOL_SPEECH_RATE",
    "available_metrics", "bark_distance", "check_signals", "compute_all", "compute_metric", "dnsmos",
    "error_flatness", "estoi", "hf_energy_ratio_db", "hf_energy_ratio_db_2k", "hf_energy_ratio_db_4k",
    "hf_fraction_2k", "init_metric_worker", "lsd", "mcd", "mel_filter_bank", "metric_catalog", "metric_pool",
    "metrics_for", "mrstft", "pesq_nb", "pesq_wb", "si_sdr", "snr", "stoi", "visqol_audio", "visqol_speech",
]
