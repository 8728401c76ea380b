"""Intrusive speech metrics from their reference implementations: PESQ and STOI/ESTOI.

pesq and pystoi are optional packages, imported inside the functions that need them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from earshot.benchmark.evaluate.metrics.signals import SAMPLE_RATE, MetricError, prepare, require_duration, resample

# PESQ (ITU-T P.862) accepts only these rates; shorter clips raise in the C code.
PESQ_WB_RATE = 16_000  # Hz, wide band (P.862.2)
PESQ_NB_RATE = 8_000  # Hz, narrow band (P.862.1 mapping)
PESQ_MIN_SECONDS = 0.25  # s

# STOI: pystoi needs 30 frames of 256 samples with hop 128 at 10 kHz after it drops
# frames 40 dB below the loudest, i.e. at least (30 - 1) * 128 + 256 = 3968 samples.
STOI_MIN_SECONDS = 0.4  # s
STOI_TOO_SHORT_SENTINEL = 1e-5  # what pystoi returns (with a warning) when too short


def _pesq(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, rate: int, mode: str) -> float:
    reference, degraded = prepare(reference, degraded)
    import pesq

    require_duration(reference, sample_rate, PESQ_MIN_SECONDS, "PESQ")
    ref = resample(reference, sample_rate, rate)
    deg = resample(degraded, sample_rate, rate)
    # The C code signals failure by exceptions of three kinds (measured with
    # pesq 0.0.4): NoUtterancesError for a reference without speech,
    # BufferTooShortError under 0.25 s, and a bare ValueError ("cannot convert
    # float NaN to integer") for an all-zero degraded signal.
    try:
        value = pesq.pesq(rate, ref, deg, mode)
    except pesq.NoUtterancesError as error:
        raise MetricError("PESQ found no utterances in the reference") from error
    except pesq.BufferTooShortError as error:
        raise MetricError("too short for PESQ (under 0.25 s)") from error
    except (pesq.PesqError, ValueError) as error:
        raise MetricError(f"PESQ failed: {error}") from error
    if not math.isfinite(value):
        raise MetricError("PESQ returned a non-finite value")
    return float(value)


def pesq_wb(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (MOS-LQO), both signals resampled to 16 kHz with soxr.

    At 11 025 Hz both signals are empty above 5.5 kHz. PESQ judges against the
    reference, so identical signals still score 4.64, but scores do not compare
    with published wide-band ones measured on full 16 kHz material.

    Arguments:
        reference: original speech, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz.

    Returns:
        MOS-LQO, about 1.0 to 4.64 (identical signals); higher is better.

    Raises:
        MetricError: see :func:`check_signals`; under 0.25 s; no speech in the
            reference; any other error from the pesq library.

    Reference: ITU-T P.862 (2001) and P.862.2 (2007); Rix et al., "Perceptual
    evaluation of speech quality (PESQ)", ICASSP 2001.
    """
    return _pesq(reference, degraded, sample_rate, PESQ_WB_RATE, "wb")


def pesq_nb(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Narrow-band PESQ (MOS-LQO, P.862.1 mapping), both signals resampled to 8 kHz.

    Arguments:
        reference: original speech, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz.

    Returns:
        MOS-LQO, about 1.0 to 4.55 (identical signals); higher is better.

    Raises:
        MetricError: as :func:`pesq_wb`.

    Reference: ITU-T P.862 (2001) and P.862.1 (2003).
    """
    return _pesq(reference, degraded, sample_rate, PESQ_NB_RATE, "nb")


def _stoi(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, extended: bool) -> float:
    reference, degraded = prepare(reference, degraded)
    from pystoi import stoi as pystoi_stoi

    name = "ESTOI" if extended else "STOI"
    require_duration(reference, sample_rate, STOI_MIN_SECONDS, name)
    # pystoi answers a clip with fewer than 30 non-silent frames with 1e-5 and a
    # warning; catch both so that case becomes a reason, not a number.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(pystoi_stoi(reference, degraded, sample_rate, extended=extended))
    too_short = any("Not enough STFT frames" in str(w.message) for w in caught)
    if too_short or value == STOI_TOO_SHORT_SENTINEL:
        raise MetricError(f"too few non-silent frames for {name} (needs about {STOI_MIN_SECONDS} s of sound)")
    if not math.isfinite(value):
        raise MetricError(f"{name} returned a non-finite value")
    return value


def stoi(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Short-time objective intelligibility (pystoi; it resamples to 10 kHz itself).

    Arguments:
        reference: original speech, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz.

    Returns:
        About 0 to 1 (identical signals); higher is better.

    Raises:
        MetricError: see :func:`check_signals`; under ``STOI_MIN_SECONDS`` or
            too few frames within 40 dB of the loudest.

    Reference: Taal et al., "An algorithm for intelligibility prediction of
    time-frequency weighted noisy speech", IEEE TASLP 19(7), 2011.
    """
    return _stoi(reference, degraded, sample_rate, extended=False)


def estoi(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Extended STOI (pystoi), which also penalises distortions that modulate across bands.

    Arguments:
        reference: original speech, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz.

    Returns:
        About 0 to 1 (identical signals); higher is better.

    Raises:
        MetricError: as :func:`stoi`.

    Reference: Jensen & Taal, "An algorithm for predicting the intelligibility of
    speech masked by modulated noise maskers", IEEE/ACM TASLP 24(11), 2016.
    """
    return _stoi(reference, degraded, sample_rate, extended=True)
