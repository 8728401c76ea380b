"""What every metric shares: the contract, the sanity checks on a pair, and helpers.

A metric is one plain function, ``metric(reference, degraded, sample_rate) -> float``,
on 1-D float numpy arrays of the same length (mono, several seconds). It raises
:class:`MetricError` with a reason for a known failure (silent, clipped or NaN
audio, a clip too short for the metric, a library's own refusal); it never
returns a plausible-looking number for audio it cannot judge.
"""

from __future__ import annotations

import math

import numpy as np

SAMPLE_RATE = 11_025  # Hz, earshot's default rate

# Sanity checks on the signals.
SILENCE_RMS_DBFS = -100.0  # dB re full scale: an RMS below this is "silent"
CLIP_LEVEL = 0.999  # |x| at or above this counts as a clipped sample
CLIP_MAX_FRACTION = 0.01  # more than 1 % clipped samples: "clipped"

# Decibel results are clamped to +-this, so an identical pair gives a finite best
# value (a float32 round trip alone is ~140 dB) and means over items stay finite.
DB_LIMIT = 100.0  # dB


class MetricError(Exception):
    """A metric cannot judge this pair; the message is the reason, for the results table."""


# ---------------------------------------------------------------------------
# Sanity checks and shared helpers
# ---------------------------------------------------------------------------


def check_signals(reference: np.ndarray, degraded: np.ndarray) -> None:
    """Check that a (reference, degraded) pair can be measured at all.

    Every metric runs this first, so a silent, clipped or NaN reconstruction gets
    NaN with the same reason from every metric.

    Arguments:
        reference: the original signal, 1-D.
        degraded: the reconstruction, 1-D.

    Raises:
        MetricError: empty signals, different lengths, NaN/Inf in either signal, a
            silent reference or reconstruction (RMS below ``SILENCE_RMS_DBFS``),
            or a clipped reconstruction (more than ``CLIP_MAX_FRACTION`` of its
            samples at ``|x| >= CLIP_LEVEL``).
    """
    if reference.size == 0 or degraded.size == 0:
        raise MetricError("signals are empty")
    if reference.shape != degraded.shape:
        raise MetricError(
            f"reference and reconstruction lengths differ "
            f"({reference.shape[-1]} vs {degraded.shape[-1]} samples)"
        )
    if not np.all(np.isfinite(reference)):
        raise MetricError("reference contains NaN/Inf")
    if not np.all(np.isfinite(degraded)):
        raise MetricError("reconstruction contains NaN/Inf")
    silence_rms = 10.0 ** (SILENCE_RMS_DBFS / 20.0)
    if _rms(reference) < silence_rms:
        raise MetricError("reference is silent")
    if _rms(degraded) < silence_rms:
        raise MetricError("reconstruction is silent")
    clipped = float(np.mean(np.abs(degraded) >= CLIP_LEVEL))
    if clipped > CLIP_MAX_FRACTION:
        raise MetricError(
            f"reconstruction is clipped ({100 * clipped:.1f} % of samples at |x| >= {CLIP_LEVEL})"
        )


def prepare(reference: np.ndarray, degraded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair as float64 arrays, after :func:`check_signals`.

    float64 because sums of squares over 10^5 float32 samples lose the digits an
    identical-signal check needs.
    """
    reference = np.asarray(reference, dtype=np.float64)
    degraded = np.asarray(degraded, dtype=np.float64)
    if reference.ndim != 1 or degraded.ndim != 1:
        raise ValueError(
            f"metrics take 1-D mono arrays, got shapes {reference.shape} and {degraded.shape}"
        )
    check_signals(reference, degraded)
    return reference, degraded


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def _clamp_db(value: float) -> float:
    return float(min(max(value, -DB_LIMIT), DB_LIMIT))


def energy_ratio_db(numerator: float, denominator: float) -> float:
    """10·log10(numerator / denominator), clamped to ±DB_LIMIT (0 or inf included)."""
    if numerator <= 0.0:
        return -DB_LIMIT
    if denominator <= 0.0:
        return DB_LIMIT
    return _clamp_db(10.0 * math.log10(numerator / denominator))


def resample(x: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    if sample_rate == target_rate:
        return x
    import soxr

    return soxr.resample(x, sample_rate, target_rate)


def require_duration(x: np.ndarray, sample_rate: int, minimum: float, metric: str) -> None:
    seconds = x.shape[-1] / sample_rate
    if seconds < minimum:
        raise MetricError(f"too short for {metric} ({seconds:.2f} s < {minimum} s)")
