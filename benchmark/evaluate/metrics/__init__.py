"""Objective metrics: how far a reconstruction is from its reference.

A metric is one plain function, ``metric(reference, degraded, sample_rate) -> float``,
on 1-D float numpy arrays of the same length (mono, several seconds). It raises
:class:`MetricError` with a reason for a known failure (silent, clipped or NaN
audio, a clip too short for the metric, a library's own refusal); it never
returns a plausible-looking number for audio it cannot judge.

One layer up, :data:`METRICS` declares in one place which metric applies to which
category of material, which direction is better and what the unit is;
:func:`compute_metric` turns every failure into ``(nan, reason)`` and
:func:`compute_all` runs the metrics of a category. Batching and process pools
live above this module.

Optional packages (pesq, pystoi, visqol-python, speechmos, and ``losses.bark``
for the bark distance) are imported inside the function that needs them; a
missing one makes its metrics report "skipped: ..." while the others run
(:func:`available_metrics`).
"""

from __future__ import annotations

import functools
import importlib
import logging
import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import scipy.fft
import scipy.signal

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------
# Constants (units in the names or comments)
# ---------------------------------------------------------------------------

SAMPLE_RATE = 11_025  # Hz, earshot's default rate

CATEGORIES = ("speech", "drums", "music", "mix", "other")

# Sanity checks on the signals.
SILENCE_RMS_DBFS = -100.0  # dB re full scale: an RMS below this is "silent"
CLIP_LEVEL = 0.999  # |x| at or above this counts as a clipped sample
CLIP_MAX_FRACTION = 0.01  # more than 1 % clipped samples: "clipped"

# Decibel results are clamped to +-this, so an identical pair gives a finite best
# value (a float32 round trip alone is ~140 dB) and means over items stay finite.
DB_LIMIT = 100.0  # dB

# High-frequency energy (Welch power spectrum).
HF_WELCH_SEGMENT = 1024  # samples (93 ms at 11 025 Hz), Hann, 50 % overlap
HF_REFERENCE_MIN_DB = -60.0  # dB re the reference's total energy: less above the
#   cutoff than this means "no high-frequency content" (only resampling residue)

# PESQ (ITU-T P.862) accepts only these rates; shorter clips raise in the C code.
PESQ_WB_RATE = 16_000  # Hz, wide band (P.862.2)
PESQ_NB_RATE = 8_000  # Hz, narrow band (P.862.1 mapping)
PESQ_MIN_SECONDS = 0.25  # s

# STOI: pystoi needs 30 frames of 256 samples with hop 128 at 10 kHz after it drops
# frames 40 dB below the loudest, i.e. at least (30 - 1) * 128 + 256 = 3968 samples.
STOI_MIN_SECONDS = 0.4  # s
STOI_TOO_SHORT_SENTINEL = 1e-5  # what pystoi returns (with a warning) when too short

# STFT settings shared by lsd, mcd and error_flatness.
STFT_SIZE = 512  # samples (46 ms at 11 025 Hz), periodic Hann
STFT_HOP = 128  # samples

LSD_FLOOR_DB = -80.0  # dB re the reference's loudest STFT bin; both spectra are
#   floored there so near-silent bins do not dominate the distance

# Multi-resolution STFT, auraloss's defaults scaled to 11 kHz and 2048-sample windows.
MRSTFT_FFT_SIZES = (512, 256, 128)  # samples; hop = size / 4, Hann window = size
MRSTFT_POWER_FLOOR = 1e-8  # |X|^2 floor, as auraloss (magnitude floor 1e-4)

# Mel cepstral distortion.
MCD_MEL_BANDS = 40  # triangular HTK-mel filters from 0 Hz to Nyquist
MCD_COEFFICIENTS = 24  # cepstral coefficients c1..c24 (c0, the level, is left out)
MCD_FLOOR_DB = -80.0  # dB re the reference's loudest mel band in any frame

# Error flatness.
FLATNESS_FRAME_DB = -40.0  # dB re the loudest error frame: quieter frames are ignored
FLATNESS_IDENTICAL_DB = -100.0  # dB re the reference's energy: error below is "none"

# Bark distance (the seed's perceptual feature space, losses.bark).
BARK_WINDOW = 2048  # samples: the seed's training window, for which BarkFeatures
#   keeps its filters' spectra precomputed (5-10x faster than one pass over the clip)
BARK_BATCH = 16  # windows per forward pass: 2 x 16 x 512 x 1281 float32 features, ~84 MB

# ViSQOL (v3): speech mode runs at 16 kHz, audio mode at 48 kHz; both fail under ~1 s.
VISQOL_SPEECH_RATE = 16_000  # Hz
VISQOL_AUDIO_RATE = 48_000  # Hz
VISQOL_MIN_SECONDS = 1.0  # s

# DNSMOS (P.835): its models take 9.01 s at 16 kHz; speechmos tiles shorter clips.
DNSMOS_RATE = 16_000  # Hz
DNSMOS_MIN_SECONDS = 1.0  # s: shorter clips would be tiled ten times or more


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


def _prepare(reference: np.ndarray, degraded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _energy_ratio_db(numerator: float, denominator: float) -> float:
    """10·log10(numerator / denominator), clamped to ±DB_LIMIT (0 or inf included)."""
    if numerator <= 0.0:
        return -DB_LIMIT
    if denominator <= 0.0:
        return DB_LIMIT
    return _clamp_db(10.0 * math.log10(numerator / denominator))


def _resample(x: np.ndarray, sample_rate: int, target_rate: int) -> np.ndarray:
    if sample_rate == target_rate:
        return x
    import soxr

    return soxr.resample(x, sample_rate, target_rate)


def _require_duration(x: np.ndarray, sample_rate: int, minimum: float, metric: str) -> None:
    seconds = x.shape[-1] / sample_rate
    if seconds < minimum:
        raise MetricError(f"too short for {metric} ({seconds:.2f} s < {minimum} s)")


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


# ---------------------------------------------------------------------------
# High-frequency energy
# ---------------------------------------------------------------------------


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
    reference, degraded = _prepare(reference, degraded)
    _check_cutoff(cutoff_hz, sample_rate)
    ref_high, ref_total = _band_energy(reference, sample_rate, cutoff_hz)
    deg_high, _ = _band_energy(degraded, sample_rate, cutoff_hz)
    if ref_high <= ref_total * 10.0 ** (HF_REFERENCE_MIN_DB / 10.0):
        raise MetricError(f"reference has no energy above {cutoff_hz:g} Hz")
    return _energy_ratio_db(deg_high, ref_high)


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
    reference, degraded = _prepare(reference, degraded)
    cutoff_hz = 2000.0
    _check_cutoff(cutoff_hz, sample_rate)
    high, total = _band_energy(degraded, sample_rate, cutoff_hz)
    return high / total


# ---------------------------------------------------------------------------
# PESQ, STOI
# ---------------------------------------------------------------------------


def _pesq(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, rate: int, mode: str) -> float:
    reference, degraded = _prepare(reference, degraded)
    import pesq

    _require_duration(reference, sample_rate, PESQ_MIN_SECONDS, "PESQ")
    ref = _resample(reference, sample_rate, rate)
    deg = _resample(degraded, sample_rate, rate)
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
    reference, degraded = _prepare(reference, degraded)
    from pystoi import stoi as pystoi_stoi

    name = "ESTOI" if extended else "STOI"
    _require_duration(reference, sample_rate, STOI_MIN_SECONDS, name)
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


# ---------------------------------------------------------------------------
# Sample-domain distances
# ---------------------------------------------------------------------------


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
    reference, degraded = _prepare(reference, degraded)
    gain = np.dot(degraded, reference) / np.dot(reference, reference)
    target = gain * reference
    return _energy_ratio_db(float(np.sum(target**2)), float(np.sum((target - degraded) ** 2)))


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
    reference, degraded = _prepare(reference, degraded)
    return _energy_ratio_db(float(np.sum(reference**2)), float(np.sum((degraded - reference) ** 2)))


# ---------------------------------------------------------------------------
# Spectral distances
# ---------------------------------------------------------------------------


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
    reference, degraded = _prepare(reference, degraded)
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
    reference, degraded = _prepare(reference, degraded)
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
    reference, degraded = _prepare(reference, degraded)
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
    reference, degraded = _prepare(reference, degraded)
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


# ---------------------------------------------------------------------------
# Bark-space distance (the seed's perceptual feature space)
# ---------------------------------------------------------------------------


@functools.cache
def _bark_features(sample_rate: int):
    from earshot.losses.bark import BarkFeatures

    return BarkFeatures(sample_rate=sample_rate).eval()


def bark_distance(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Mean squared difference of the seed's bark features (``losses.bark.BarkFeatures``).

    The features are the seed's perceptual loss space: 512 bark-spaced FIR bands,
    ReLU, ``log(1 + 10000·x)``. The clip is cut into the seed's ``BARK_WINDOW``
    windows without overlap, the last one aligned to the clip's end (so every
    sample counts, the last few twice), each filtered as the training loss filters
    a window; the result is the bark loss averaged over the clip.

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz.

    Returns:
        Mean squared error in log-feature units, 0 for identical signals; lower is better.

    Raises:
        MetricError: see :func:`check_signals`.
    """
    reference, degraded = _prepare(reference, degraded)
    import torch

    features = _bark_features(sample_rate)
    samples = reference.shape[-1]
    window = min(BARK_WINDOW, samples)
    starts = list(range(0, samples - window + 1, window))
    if starts[-1] + window < samples:
        starts.append(samples - window)
    ref_windows = np.stack([reference[s : s + window] for s in starts]).astype(np.float32)
    deg_windows = np.stack([degraded[s : s + window] for s in starts]).astype(np.float32)
    squared_error, count = 0.0, 0
    with torch.no_grad():
        for first in range(0, len(starts), BARK_BATCH):
            batch = slice(first, first + BARK_BATCH)
            pair = torch.from_numpy(np.concatenate([ref_windows[batch], deg_windows[batch]]))
            ref_features, deg_features = features(pair).chunk(2)
            difference = ref_features - deg_features
            # Accumulate in float64: 10^7 float32 squares would lose digits.
            squared_error += float(torch.sum(difference * difference, dtype=torch.float64))
            count += difference.numel()
    return squared_error / count


# ---------------------------------------------------------------------------
# ViSQOL, DNSMOS (optional packages; models ship in their wheels)
# ---------------------------------------------------------------------------


@functools.cache
def _visqol_api(mode: str):
    from visqol import VisqolApi

    api = VisqolApi()
    # Speech mode: insist on the deep-lattice mapper (ViSQOL v3's default); its
    # automatic fallback to a polynomial would change the scale between installs.
    api.create(mode=mode, use_lattice_model=True if mode == "speech" else None)
    return api


def _visqol(reference: np.ndarray, degraded: np.ndarray, sample_rate: int, mode: str, rate: int) -> float:
    reference, degraded = _prepare(reference, degraded)
    _require_duration(reference, sample_rate, VISQOL_MIN_SECONDS, "ViSQOL")
    api = _visqol_api(mode)
    ref = _resample(reference, sample_rate, rate).astype(np.float64)
    deg = _resample(degraded, sample_rate, rate).astype(np.float64)
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
    reference, degraded = _prepare(reference, degraded)
    from speechmos import dnsmos as speechmos_dnsmos

    _require_duration(degraded, sample_rate, DNSMOS_MIN_SECONDS, "DNSMOS")
    # speechmos refuses samples outside [-1, 1]; resampling can overshoot a little.
    deg = np.clip(_resample(degraded, sample_rate, DNSMOS_RATE), -1.0, 1.0).astype(np.float32)
    try:
        value = float(speechmos_dnsmos.run(deg, DNSMOS_RATE)["ovrl_mos"])
    except ValueError as error:
        raise MetricError(f"DNSMOS failed: {error}") from error
    if not math.isfinite(value):
        raise MetricError("DNSMOS returned a non-finite value")
    return value


# ---------------------------------------------------------------------------
# The table: which metric applies to what, and how to read it
# ---------------------------------------------------------------------------

SPEECH_LIKE = frozenset({"speech", "mix"})
ALL_CATEGORIES = frozenset(CATEGORIES)


@dataclass(frozen=True)
class MetricSpec:
    """How to run and read one metric.

    ``higher_is_better`` is None for descriptive metrics with no better direction
    (the high-frequency fraction, the error's flatness) and for the HF ratios,
    whose ideal is 0 dB (``ideal``: the best value, for metrics with no better
    direction; None otherwise). ``requires`` are the modules the function imports;
    ``install`` says how to get them.
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


_PESQ = dict(requires=("pesq", "soxr"), install="pip install pesq")
_STOI = dict(requires=("pystoi",), install="pip install pystoi")
_VISQOL_INSTALL = "pip install 'visqol-python[accel,lattice]'"
_DNSMOS = dict(
    requires=("speechmos.dnsmos", "soxr"),  # speechmos imports onnxruntime, librosa, requests
    install="pip install speechmos onnxruntime librosa requests",
)

# ViSQOL's audio mode is its mode for anything that is not clean speech: music,
# drums, speech over music (mix, which also gets the speech metrics) and other.
NON_SPEECH = frozenset({"music", "drums", "mix", "other"})

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
                   "multi-resolution STFT distance (FFT 512/256/128)"),
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
    result = {}
    for name, spec in METRICS.items():
        missing = _missing(spec.requires)
        result[name] = None if missing is None else f"skipped: {missing}; {spec.install}"
    return result


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
    missing = _missing(spec.requires)
    if missing is not None:
        return math.nan, f"skipped: {missing}; {spec.install}"
    try:
        return float(spec.function(reference, degraded, sample_rate)), None
    except MetricError as error:
        return math.nan, str(error) or "metric failed"
    except Exception as error:
        logger.warning("metric %s raised unexpectedly", name, exc_info=True)
        return math.nan, f"unexpected {type(error).__name__}: {error}"


def compute_all(
    reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE, category: str = "other"
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


# Threads each library would otherwise start per process: in a pool of one process per
# core they only contend with each other.
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS")


def init_metric_worker() -> None:
    """Make a pool worker single-threaded: before the metric libraries load, and DNSMOS's sessions."""
    import os

    for name in _THREAD_ENV:
        os.environ[name] = "1"
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    try:
        import onnxruntime
        from speechmos import dnsmos as speechmos_dnsmos
    except ImportError:
        return
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    folder = os.path.join(os.path.dirname(speechmos_dnsmos.__file__), "dnsmos_models")
    model = speechmos_dnsmos.DNSMOS.__new__(speechmos_dnsmos.DNSMOS)
    model.primary_model_path = os.path.join(folder, "sig_bak_ovr.onnx")
    model.onnx_sess = onnxruntime.InferenceSession(model.primary_model_path, options)
    model.p808_onnx_sess = onnxruntime.InferenceSession(os.path.join(folder, "model_v8.onnx"), options)
    speechmos_dnsmos.dnsmos = model  # speechmos.run() reuses this module-level instance


def metric_pool(workers: int):
    """A process pool for metrics: spawned (forking after torch has run can hang), single-threaded workers."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=init_metric_worker)
