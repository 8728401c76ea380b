"""MOS predictors from optional packages: ViSQOL v3 and DNSMOS (their models ship in their wheels)."""

from __future__ import annotations

import functools
import math

import numpy as np

from earshot.benchmark.evaluate.metrics.signals import SAMPLE_RATE, MetricError, prepare, require_duration, resample

# ViSQOL (v3): speech mode runs at 16 kHz, audio mode at 48 kHz; both fail under ~1 s.
VISQOL_SPEECH_RATE = 16_000  # Hz
VISQOL_AUDIO_RATE = 48_000  # Hz
VISQOL_MIN_SECONDS = 1.0  # s

# DNSMOS (P.835): its models take 9.01 s at 16 kHz; speechmos tiles shorter clips.
DNSMOS_RATE = 16_000  # Hz
DNSMOS_MIN_SECONDS = 1.0  # s: shorter clips would be tiled ten times or more


@functools.cache
def _visqol_api(mode: str):
    from visqol import VisqolApi

    api = VisqolApi()
    # Speech mode: insist on the deep-lattice mapper (ViSQOL v3's default); its
    # automatic fallback to a polynomial would change the scale between installs.
    api.create(mode=mode, use_lattice_model=True if mode == "speech" else None)
    return api


def _visqol(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, mode: str, rate: int) -> float:
    reference, degraded = prepare(reference, degraded)
    require_duration(reference, sample_rate, VISQOL_MIN_SECONDS, "ViSQOL")
    api = _visqol_api(mode)
    ref = resample(reference, sample_rate, rate).astype(np.float64)
    deg = resample(degraded, sample_rate, rate).astype(np.float64)
    try:
        value = float(api.measure_from_arrays(ref, deg, rate).moslqo)
    except (ValueError, IndexError, ZeroDivisionError, FloatingPointError) as error:
        # Measured: a short clip raises IndexError in speech mode and ValueError
        # ("spectrum size smaller than minimum patch size") in audio mode.
        raise MetricError(f"ViSQOL failed: {type(error).__name__}: {error}") from error
    if not math.isfinite(value):
        raise MetricError("ViSQOL returned a non-finite value")
    return value


def visqol_speech(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """ViSQOL v3 in speech mode (16 kHz, deep-lattice mapping to MOS-LQO).

    Arguments:
        reference: original speech, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz; resampled to 16 kHz with soxr.

    Returns:
        MOS-LQO, 1 to about 4.7 (identical signals); higher is better.

    Raises:
        MetricError: see :func:`check_signals`; under ``VISQOL_MIN_SECONDS``;
            errors from visqol-python.

    Reference: Chinen et al., "ViSQOL v3: an open source production ready
    objective speech and audio metric", QoMEX 2020.
    """
    return _visqol(reference, degraded, sample_rate, "speech", VISQOL_SPEECH_RATE)


def visqol_audio(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """ViSQOL v3 in audio mode (48 kHz, SVR mapping to MOS-LQO), for music and other sound.

    At 11 025 Hz both signals are empty above 5.5 kHz, and audio mode's scale is
    compressed here (measured on the tests' synthetic speech: 4.73 identical,
    4.25 with white noise at 20 dB SNR, 3.53 at 0 dB): scores rank conditions but
    do not compare with published full-band numbers.

    Arguments:
        reference: original audio, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz; resampled to 48 kHz with soxr.

    Returns:
        MOS-LQO, 1 to about 4.73 (identical signals); higher is better.

    Raises:
        MetricError: as :func:`visqol_speech`.

    Reference: Chinen et al., "ViSQOL v3", QoMEX 2020; Hines et al., "ViSQOLAudio",
    JASA 137(6), 2015.
    """
    return _visqol(reference, degraded, sample_rate, "audio", VISQOL_AUDIO_RATE)


def dnsmos(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """DNSMOS P.835 overall quality (OVRL) of the reconstruction alone (speechmos).

    Non-intrusive: the reference is only checked (silent reference → NaN, as for
    every metric), not compared with.

    Arguments:
        reference: original speech, 1-D float (checked only).
        degraded: reconstruction, same length.
        sample_rate: Hz; resampled to 16 kHz with soxr.

    Returns:
        OVRL MOS, about 1 to 5; higher is better.

    Raises:
        MetricError: see :func:`check_signals`; under ``DNSMOS_MIN_SECONDS``;
            errors from speechmos.

    Reference: Reddy et al., "DNSMOS P.835: a non-intrusive perceptual objective
    speech quality metric to evaluate noise suppressors", ICASSP 2022.
    """
    reference, degraded = prepare(reference, degraded)
    from speechmos import dnsmos as speechmos_dnsmos

    require_duration(degraded, sample_rate, DNSMOS_MIN_SECONDS, "DNSMOS")
    # speechmos refuses samples outside [-1, 1]; resampling can overshoot a little.
    deg = np.clip(resample(degraded, sample_rate, DNSMOS_RATE), -1.0, 1.0).astype(np.float32)
    try:
        value = float(speechmos_dnsmos.run(deg, DNSMOS_RATE)["ovrl_mos"])
    except ValueError as error:
        raise MetricError(f"DNSMOS failed: {error}") from error
    if not math.isfinite(value):
        raise MetricError("DNSMOS returned a non-finite value")
    return value
