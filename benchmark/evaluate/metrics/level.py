"""High-frequency energy: how much of the reference's top band the reconstruction keeps.

Energies come from a Welch power spectrum, not from one FFT of the whole clip (see
:func:`_band_energy`).
"""

from __future__ import annotations

import numpy as np
import scipy.signal

from earshot.benchmark.evaluate.metrics.signals import SAMPLE_RATE, MetricError, energy_ratio_db, prepare

# High-frequency energy (Welch power spectrum).
HF_WELCH_SEGMENT = 1024  # samples (93 ms at 11 025 Hz), Hann, 50 % overlap
HF_REFERENCE_MIN_DB = -60.0  # dB re the reference's total energy: less above the
#   cutoff than this means "no high-frequency content" (only resampling residue)


def _band_energy(x: np.ndarray, sample_rate: int, low_hz: float) -> tuple[float, float]:
    """(energy at and above low_hz, total energy) from a Welch power spectrum.

    Welch with a Hann window rather than one FFT of the whole clip: the clip's
    abrupt ends would otherwise leak broadband energy above the cutoff and hide
    how much a low-pass removed.
    """
    segment = min(HF_WELCH_SEGMENT, x.shape[-1])
    freqs, power = scipy.signal.welch(
        x, fs=sample_rate, window="hann", nperseg=segment, detrend=False, scaling="spectrum"
    )
    return float(power[freqs >= low_hz].sum()), float(power.sum())


def _check_cutoff(cutoff_hz: float, sample_rate: int) -> None:
    if cutoff_hz >= sample_rate / 2:
        raise MetricError(f"cutoff {cutoff_hz:g} Hz is at or above Nyquist ({sample_rate / 2:g} Hz)")


def hf_energy_ratio_db(
    reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE, cutoff_hz: float = 2000.0
) -> float:
    """The reconstruction's energy above a cutoff relative to the reference's, in dB.

    ``10·log10(E_deg / E_ref)`` with both energies summed over a Welch power
    spectrum from ``cutoff_hz`` to Nyquist. 0 dB: as much high-frequency energy as
    the reference; negative: lost (the seed's complaint about MSE); positive: added
    (noise, aliasing). Clamped to ±``DB_LIMIT``.

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz.
        cutoff_hz: lower edge of the band, Hz.

    Returns:
        dB; 0 is ideal.

    Raises:
        MetricError: see :func:`check_signals`; the reference has (almost) no
            energy above the cutoff (less than ``HF_REFERENCE_MIN_DB`` of its total).

    Reference: Welch, "The use of fast Fourier transform for the estimation of
    power spectra", IEEE Trans. Audio Electroacoust. 15(2), 1967.
    """
    reference, degraded = prepare(reference, degraded)
    _check_cutoff(cutoff_hz, sample_rate)
    ref_high, ref_total = _band_energy(reference, sample_rate, cutoff_hz)
    deg_high, _ = _band_energy(degraded, sample_rate, cutoff_hz)
    if ref_high <= ref_total * 10.0 ** (HF_REFERENCE_MIN_DB / 10.0):
        raise MetricError(f"reference has no energy above {cutoff_hz:g} Hz")
    return energy_ratio_db(deg_high, ref_high)


def hf_energy_ratio_db_2k(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """:func:`hf_energy_ratio_db` above 2 kHz."""
    return hf_energy_ratio_db(reference, degraded, sample_rate, cutoff_hz=2000.0)


def hf_energy_ratio_db_4k(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """:func:`hf_energy_ratio_db` above 4 kHz."""
    return hf_energy_ratio_db(reference, degraded, sample_rate, cutoff_hz=4000.0)


def hf_fraction_2k(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Fraction of the reconstruction's energy above 2 kHz (Welch power spectrum).

    Descriptive, with no better direction: compare it with the reference's own
    fraction (the same function with ``degraded=reference``).

    Arguments:
        reference: original signal, 1-D float (checked, otherwise unused).
        degraded: reconstruction, same length.
        sample_rate: Hz.

    Returns:
        A fraction in [0, 1].

    Raises:
        MetricError: see :func:`check_signals`.
    """
    reference, degraded = prepare(reference, degraded)
    cutoff_hz = 2000.0
    _check_cutoff(cutoff_hz, sample_rate)
    high, total = _band_energy(degraded, sample_rate, cutoff_hz)
    return high / total
