"""Audio for the listening test: anchors, loudness matching, wav bytes, blinding.

Plain numpy/scipy functions, so test preparation and the app share them and tests can
check them without a server.
"""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from scipy import signal

from listening_app.settings import STANDARD_BANDWIDTH_HZ, STANDARD_LOW_ANCHOR_HZ, STANDARD_MID_ANCHOR_HZ

#: Order of the anchors' Butterworth low-pass: steep enough that the anchor's band edge is
#: clearly audible, applied forward and backward (zero phase), so the anchor stays aligned
#: with the reference and switching does not jump in time.
ANCHOR_FILTER_ORDER = 8
#: Level of the per-session blinding gain, dB (uniform in ±). Far below the ~0.3 dB
#: just-noticeable level difference, but it changes every sample value.
BLIND_GAIN_DB = 0.05
#: Peak a loudness-matched item may reach: the whole item is turned down together above it.
MAX_PEAK = 0.99


def anchor_cutoffs(sample_rate: int) -> tuple[float, float]:
    """(low, mid) anchor cut-offs in Hz for material at ``sample_rate``.

    BS.1534-3's anchors are 3.5 kHz and 7 kHz low-passes of 20 kHz material. Where the
    material's Nyquist frequency lies below a cut-off, the standard's anchors would be the
    reference itself, so both are scaled to the same fraction of the material's bandwidth
    (3.5/20 and 7/20 of Nyquist: 964.7 Hz and 1929.4 Hz at 11 025 Hz).
    """
    nyquist = sample_rate / 2
    if nyquist > STANDARD_MID_ANCHOR_HZ:
        return STANDARD_LOW_ANCHOR_HZ, STANDARD_MID_ANCHOR_HZ
    return (nyquist * STANDARD_LOW_ANCHOR_HZ / STANDARD_BANDWIDTH_HZ,
            nyquist * STANDARD_MID_ANCHOR_HZ / STANDARD_BANDWIDTH_HZ)


def lowpass(audio: np.ndarray, sample_rate: int, cutoff_hz: float) -> np.ndarray:
    """Zero-phase Butterworth low-pass (the anchors)."""
    sos = signal.butter(ANCHOR_FILTER_ORDER, cutoff_hz, btype="low", fs=sample_rate, output="sos")
    return signal.sosfiltfilt(sos, audio).astype(np.float32)


def rms(audio: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))


def loudness_gains_db(reference: np.ndarray, others: list[np.ndarray]) -> list[float]:
    """Gains (dB) that bring each of ``others`` to the reference's RMS level.

    RMS rather than BS.1770 loudness: at 11 025 Hz the K-weighting's high-shelf sits
    near Nyquist, and the stimuli of one item share one spectrum shape closely enough that
    RMS matching is within a fraction of a dB of it. A silent stimulus gets 0 dB.
    """
    target = rms(reference)
    gains = []
    for audio in others:
        level = rms(audio)
        gains.append(0.0 if level == 0 or target == 0 else float(20 * np.log10(target / level)))
    return gains


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM wav of a float signal in [-1, 1] (clipped)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(audio, -1, 1), sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return audio, rate


def blinded_wav(data: bytes, rng: np.random.Generator) -> bytes:
    """The same stimulus with an inaudible random gain and TPDF dither, re-encoded.

    Done per session and per stimulus, so two stimuli with equal audio (the labelled and
    the hidden reference) never arrive as equal bytes, and no stimulus's bytes are stable
    across sessions: a browser cannot find the hidden reference by comparing bytes.
    """
    audio, rate = read_wav_bytes(data)
    gain = 10 ** (rng.uniform(-BLIND_GAIN_DB, BLIND_GAIN_DB) / 20)
    lsb = 1 / 32768
    dither = (rng.uniform(-0.5, 0.5, audio.shape) + rng.uniform(-0.5, 0.5, audio.shape)) * lsb
    return wav_bytes(audio * gain + dither, rate)


def calibration_tone(sample_rate: int, seconds: float = 3.0, hz: float = 1000.0, dbfs: float = -20.0) -> bytes:
    """A sine at -20 dBFS for setting a comfortable listening level before the test."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 10 ** (dbfs / 20) * np.sqrt(2) * np.sin(2 * np.pi * min(hz, sample_rate / 4) * t)
    fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.02)  # no clicks at the ends
    return wav_bytes((tone * fade).astype(np.float32), sample_rate)
