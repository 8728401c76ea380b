"""Sample-domain distances: SI-SDR and SNR, in dB."""

from __future__ import annotations

import numpy as np

from earshot.benchmark.evaluate.metrics.signals import SAMPLE_RATE, energy_ratio_db, prepare


def si_sdr(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Scale-invariant signal-to-distortion ratio, in dB.

    The reference is scaled by the least-squares gain ``a = <deg, ref> / <ref, ref>``;
    SI-SDR = 10·log10(‖a·ref‖² / ‖a·ref − deg‖²). A gain change costs nothing; any
    other change, including a phase shift the ear does not hear, does. No mean is
    removed (audio here is zero-mean to within a DC the model may add, which counts).

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz (unused; the signature is every metric's).

    Returns:
        dB, clamped to ±``DB_LIMIT`` (identical signals give +100); higher is better.

    Raises:
        MetricError: see :func:`check_signals`.

    Reference: Le Roux et al., "SDR - half-baked or well done?", ICASSP 2019.
    """
    reference, degraded = prepare(reference, degraded)
    gain = np.dot(degraded, reference) / np.dot(reference, reference)
    target = gain * reference
    return energy_ratio_db(float(np.sum(target**2)), float(np.sum((target - degraded) ** 2)))


def snr(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Signal-to-noise ratio, in dB: 10·log10(‖ref‖² / ‖deg − ref‖²).

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz (unused; the signature is every metric's).

    Returns:
        dB, clamped to ±``DB_LIMIT`` (identical signals give +100); higher is better.

    Raises:
        MetricError: see :func:`check_signals`.
    """
    reference, degraded = prepare(reference, degraded)
    return energy_ratio_db(float(np.sum(reference**2)), float(np.sum((degraded - reference) ** 2)))
