"""Distances between short-time spectra: LSD, multi-resolution STFT, MCD, and the error's flatness."""

from __future__ import annotations

import functools

import numpy as np
import scipy.fft
import scipy.signal

from earshot.benchmark.evaluate.metrics.signals import SAMPLE_RATE, MetricError, prepare
from earshot.losses.freq import MRSTFT_FFT_SIZES, MRSTFT_POWER_FLOOR

# STFT settings shared by lsd, mcd and error_flatness.
STFT_SIZE = 512  # samples (46 ms at 11 025 Hz), periodic Hann
STFT_HOP = 128  # samples

LSD_FLOOR_DB = -80.0  # dB re the reference's loudest STFT bin; both spectra are
#   floored there so near-silent bins do not dominate the distance


# Mel cepstral distortion.
MCD_MEL_BANDS = 40  # triangular HTK-mel filters from 0 Hz to Nyquist
MCD_COEFFICIENTS = 24  # cepstral coefficients c1..c24 (c0, the level, is left out)
MCD_FLOOR_DB = -80.0  # dB re the reference's loudest mel band in any frame

# Error flatness.
FLATNESS_FRAME_DB = -40.0  # dB re the loudest error frame: quieter frames are ignored
FLATNESS_IDENTICAL_DB = -100.0  # dB re the reference's energy: error below is "none"


def _stft_power(x: np.ndarray, fft_size: int, hop: int) -> np.ndarray:
    """Power spectrogram |X|^2, shape (frames, fft_size // 2 + 1).

    Centred frames with reflect padding, as ``torch.stft(center=True)`` (and so
    auraloss) frames a signal.
    """
    if x.shape[-1] <= fft_size // 2:
        raise MetricError(f"too short for an STFT of {fft_size} samples")
    padded = np.pad(x, fft_size // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, fft_size)[::hop]
    window = scipy.signal.get_window("hann", fft_size)  # periodic Hann
    spectrum = scipy.fft.rfft(frames * window, axis=-1)
    return spectrum.real**2 + spectrum.imag**2


def lsd(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Log-spectral distance, in dB.

    Per STFT frame, the RMS over frequency of the difference of the two power
    spectra in dB; then the mean over frames. Both spectra are floored at
    ``LSD_FLOOR_DB`` below the reference's loudest bin, so bins the reference
    barely has (silence, above its bandwidth) cannot dominate.

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz (unused: frames are ``STFT_SIZE`` samples at any rate).

    Returns:
        dB, 0 for identical signals; lower is better.

    Raises:
        MetricError: see :func:`check_signals`; shorter than half an STFT frame.

    Reference: Gray & Markel, "Distance measures for speech processing", IEEE
    TASSP 24(5), 1976; as used for bandwidth extension by Kuleshov et al.,
    "Audio super resolution using neural networks", ICLR workshop 2017.
    """
    reference, degraded = prepare(reference, degraded)
    ref_power = _stft_power(reference, STFT_SIZE, STFT_HOP)
    deg_power = _stft_power(degraded, STFT_SIZE, STFT_HOP)
    floor = ref_power.max() * 10.0 ** (LSD_FLOOR_DB / 10.0)
    difference_db = 10.0 * (np.log10(np.maximum(ref_power, floor)) - np.log10(np.maximum(deg_power, floor)))
    return float(np.mean(np.sqrt(np.mean(difference_db**2, axis=-1))))


def mrstft(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Multi-resolution STFT distance, as auraloss's ``MultiResolutionSTFTLoss``.

    For each FFT size in ``MRSTFT_FFT_SIZES`` (hop = size/4, Hann window of the
    full size): spectral convergence ``‖|R| − |D|‖_F / ‖|R|‖_F`` plus the mean
    absolute difference of log magnitudes; the mean over resolutions. Sizes are
    auraloss's 22-44 kHz defaults scaled down for 11 kHz audio.

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz (unused: sizes are in samples).

    Returns:
        Unitless, 0 for identical signals; lower is better.

    Raises:
        MetricError: see :func:`check_signals`; shorter than half the largest FFT.

    Reference: Yamamoto et al., "Parallel WaveGAN", ICASSP 2020 (multi-resolution
    STFT loss); Steinmetz & Reiss, "auraloss", DMRN+15, 2020.
    """
    reference, degraded = prepare(reference, degraded)
    distances = []
    for fft_size in MRSTFT_FFT_SIZES:
        hop = fft_size // 4
        # auraloss clamps the power before the square root: magnitudes >= 1e-4.
        ref_mag = np.sqrt(np.maximum(_stft_power(reference, fft_size, hop), MRSTFT_POWER_FLOOR))
        deg_mag = np.sqrt(np.maximum(_stft_power(degraded, fft_size, hop), MRSTFT_POWER_FLOOR))
        convergence = np.linalg.norm(ref_mag - deg_mag) / np.linalg.norm(ref_mag)
        log_magnitude = np.mean(np.abs(np.log(ref_mag) - np.log(deg_mag)))
        distances.append(convergence + log_magnitude)
    return float(np.mean(distances))


@functools.cache
def mel_filter_bank(sample_rate: int, fft_size: int, bands: int) -> np.ndarray:
    """Triangular filters on the HTK mel scale from 0 Hz to Nyquist.

    Arguments:
        sample_rate: Hz.
        fft_size: samples; the bank applies to ``fft_size // 2 + 1`` bins.
        bands: number of filters.

    Returns:
        Array (bands, fft_size // 2 + 1), each triangle peaking at 1.

    Reference: mel(f) = 2595·log10(1 + f/700), O'Shaughnessy, "Speech
    communication: human and machine", 1987.
    """
    nyquist = sample_rate / 2
    mel_edges = np.linspace(0.0, 2595.0 * np.log10(1.0 + nyquist / 700.0), bands + 2)
    hz_edges = 700.0 * (10.0 ** (mel_edges / 2595.0) - 1.0)
    bins = np.linspace(0.0, nyquist, fft_size // 2 + 1)
    lower, centre, upper = hz_edges[:-2, None], hz_edges[1:-1, None], hz_edges[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    bank = np.maximum(0.0, np.minimum(rising, falling))
    bank.setflags(write=False)  # shared through the cache
    return bank


def mcd(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Mel cepstral distortion, in dB.

    Power spectrogram → ``MCD_MEL_BANDS`` mel bands → natural log of the mel
    amplitude (both floored at ``MCD_FLOOR_DB`` below the reference's loudest mel
    band) → orthonormal DCT-II → coefficients c1..c``MCD_COEFFICIENTS``; per frame
    ``(10 / ln 10)·sqrt(2·Σ_d (c_d − c'_d)²)``, then the mean over all frames. The
    signals are aligned, so no dynamic time warping. The cepstrum is an MFCC-style
    one, not SPTK's mel-generalised cepstrum: compare values within earshot, not
    with published MCDs.

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz (places the mel filters).

    Returns:
        dB, 0 for identical signals; lower is better.

    Raises:
        MetricError: see :func:`check_signals`; shorter than half an STFT frame.

    Reference: Kubichek, "Mel-cepstral distance measure for objective speech
    quality assessment", IEEE PACRIM 1993.
    """
    reference, degraded = prepare(reference, degraded)
    bank = mel_filter_bank(sample_rate, STFT_SIZE, MCD_MEL_BANDS)
    ref_mel = _stft_power(reference, STFT_SIZE, STFT_HOP) @ bank.T
    deg_mel = _stft_power(degraded, STFT_SIZE, STFT_HOP) @ bank.T
    floor = ref_mel.max() * 10.0 ** (MCD_FLOOR_DB / 10.0)
    # 0.5 · ln(power) = ln(amplitude): the scale the 10/ln10·√2 constant assumes.
    ref_cepstrum = scipy.fft.dct(0.5 * np.log(np.maximum(ref_mel, floor)), type=2, norm="ortho", axis=-1)
    deg_cepstrum = scipy.fft.dct(0.5 * np.log(np.maximum(deg_mel, floor)), type=2, norm="ortho", axis=-1)
    difference = ref_cepstrum[:, 1 : MCD_COEFFICIENTS + 1] - deg_cepstrum[:, 1 : MCD_COEFFICIENTS + 1]
    per_frame = (10.0 / np.log(10.0)) * np.sqrt(2.0 * np.sum(difference**2, axis=-1))
    return float(np.mean(per_frame))


def error_flatness(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Spectral flatness of the error signal (degraded − reference).

    Per STFT frame, the geometric over the arithmetic mean of the error's power
    spectrum (DC left out); the mean over frames within ``FLATNESS_FRAME_DB`` of
    the loudest error frame. Near 0.56 for white noise (the flatness of a
    periodogram of white noise is e^(−γ)), near 0 for tonal error. It tells the
    seed's "staticy" (flat) from "vocoder-like" (tonal) artefacts; it is
    descriptive, with no better direction.

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz (unused: frames are ``STFT_SIZE`` samples at any rate).

    Returns:
        A ratio in [0, 1].

    Raises:
        MetricError: see :func:`check_signals`; identical signals (error energy
            below ``FLATNESS_IDENTICAL_DB`` of the reference's).

    Reference: Johnston, "Transform coding of audio signals using perceptual
    noise criteria", IEEE JSAC 6(2), 1988 (spectral flatness measure).
    """
    reference, degraded = prepare(reference, degraded)
    error = degraded - reference
    if np.sum(error**2) <= np.sum(reference**2) * 10.0 ** (FLATNESS_IDENTICAL_DB / 10.0):
        raise MetricError("identical signals (no error to measure)")
    power = _stft_power(error, STFT_SIZE, STFT_HOP)[:, 1:]
    frame_energy = power.mean(axis=-1)
    loud = frame_energy >= frame_energy.max() * 10.0 ** (FLATNESS_FRAME_DB / 10.0)
    power, frame_energy = power[loud], frame_energy[loud]
    # A bin of exactly zero would send the geometric mean to 0; floor it far below
    # the frame's mean so it barely moves the result.
    floored = np.maximum(power, 1e-12 * frame_energy[:, None])
    geometric = np.exp(np.mean(np.log(floored), axis=-1))
    return float(np.mean(geometric / frame_energy))
