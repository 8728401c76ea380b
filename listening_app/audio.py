"""Audio for the listening test: anchors, loudness matching, wav bytes, blinding.

Plain numpy/scipy functions, so test preparation and the app share them and tests can
check them without a server.
"""

from __future__ import annotations

import hashlib
import io
import struct
import threading
from collections import OrderedDict

import numpy as np
import soundfile as sf
from scipy import signal

from earshot.listening_app.settings import STANDARD_BANDWIDTH_HZ, STANDARD_LOW_ANCHOR_HZ, STANDARD_MID_ANCHOR_HZ
from earshot.results.rundir import PCM16_SCALE, pcm16

#: Order of the anchors' Butterworth low-pass: steep enough that the anchor's band edge is
#: clearly audible, applied forward and backward (zero phase), so the anchor stays aligned
#: with the reference and switching does not jump in time.
ANCHOR_FILTER_ORDER = 8
#: Level of the per-session blinding gain, dB (uniform in ±). Far below the ~0.3 dB
#: just-noticeable level difference, but it changes every sample value.
BLIND_GAIN_DB = 0.05
#: Peak a loudness-matched item may reach: the whole item is turned down together above it.
MAX_PEAK = 0.99
#: How ``loudness_gains_db`` can match levels; the first is the default.
LOUDNESS_METHODS = ("bs1770", "rms")

# ITU-R BS.1770-4 K-weighting: the analog prototypes of the standard's 48 kHz filters
# (the constants libebur128 derives from that table).
KW_SHELF_HZ = 1681.974450955533
KW_SHELF_GAIN_DB = 3.999843853973347
KW_SHELF_Q = 0.7071752369554196
KW_SHELF_VB_EXPONENT = 0.4996667741545416
KW_HIGHPASS_HZ = 38.13547087602444
KW_HIGHPASS_Q = 0.5003270373238773
LOUDNESS_OFFSET_DB = -0.691  # BS.1770's calibration: a 997 Hz 0 dBFS sine reads -3.01 LUFS
GATE_BLOCK_S = 0.4
GATE_OVERLAP = 0.75
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


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


def _bilinear_biquad(f0: float, q: float, sample_rate: int) -> tuple[float, float, float]:
    """Bilinear-transform terms of a biquad pre-warped so the analog ``f0`` lands at ``f0``:
    K = tan(π f0 / fs), the denominator's K² + K/Q + 1, and K/Q."""
    # A centre at or above Nyquist makes tan() infinite or negative (an unstable filter); capping
    # it at 0.4 fs keeps it stable and only touches rates below 4.2 kHz (8 kHz is not affected).
    k = np.tan(np.pi * min(f0, 0.4 * sample_rate) / sample_rate)
    return k, 1 + k / q + k * k, k / q


def k_weighting_sos(sample_rate: int) -> np.ndarray:
    """BS.1770-4 K-weighting (pre-filter high shelf, then RLB high-pass) at any sample rate.

    Both stages are the bilinear transforms of the analog prototypes behind the standard's
    48 kHz table (as in libebur128 and pyloudnorm), so at 48 kHz they reproduce the table.
    """
    k, a0, kq = _bilinear_biquad(KW_SHELF_HZ, KW_SHELF_Q, sample_rate)
    vh = 10 ** (KW_SHELF_GAIN_DB / 20)
    vb = vh ** KW_SHELF_VB_EXPONENT
    shelf = [(vh + vb * kq + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * kq + k * k) / a0,
             1.0, 2 * (k * k - 1) / a0, (1 - kq + k * k) / a0]
    k, a0, kq = _bilinear_biquad(KW_HIGHPASS_HZ, KW_HIGHPASS_Q, sample_rate)
    # The standard's high-pass numerator is (1, -2, 1) unnormalised; -0.691 dB is calibrated to it.
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - kq + k * k) / a0]
    return np.array([shelf, highpass])


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Gated integrated loudness of a mono signal, LUFS (ITU-R BS.1770-4); -inf for silence.

    Mean squares of 400 ms blocks with 75 % overlap, K-weighted; blocks below -70 LUFS are
    dropped, then those more than 10 LU below the loudness of the rest. A signal shorter
    than one block has no blocks to gate, so its loudness is the ungated mean square of the
    whole K-weighted signal.
    """
    if len(audio) == 0:
        return float("-inf")
    weighted = signal.sosfilt(k_weighting_sos(sample_rate), np.asarray(audio, dtype=np.float64))
    block = int(round(GATE_BLOCK_S * sample_rate))
    if len(weighted) < block:
        powers = np.array([np.mean(np.square(weighted))])
    else:
        energy = np.concatenate([[0.0], np.cumsum(np.square(weighted))])
        hop = GATE_BLOCK_S * (1 - GATE_OVERLAP) * sample_rate
        starts = np.round(np.arange(int((len(weighted) - block) // hop) + 1) * hop).astype(int)
        powers = (energy[starts + block] - energy[starts]) / block
        with np.errstate(divide="ignore"):
            levels = LOUDNESS_OFFSET_DB + 10 * np.log10(powers)
        powers = powers[levels > ABSOLUTE_GATE_LUFS]
        if len(powers) == 0:
            return float("-inf")
        relative_gate = LOUDNESS_OFFSET_DB + 10 * np.log10(np.mean(powers)) + RELATIVE_GATE_LU
        powers = powers[LOUDNESS_OFFSET_DB + 10 * np.log10(powers) > relative_gate]
    mean_power = float(np.mean(powers))
    return LOUDNESS_OFFSET_DB + 10 * np.log10(mean_power) if mean_power > 0 else float("-inf")


def loudness_gains_db(reference: np.ndarray, others: list[np.ndarray], sample_rate: int,
                      method: str = "bs1770") -> list[float]:
    """Gains (dB) that bring each of ``others`` to the reference's level.

    ``bs1770``: ITU-R BS.1770-4 integrated loudness, which weights the spectrum roughly as
    hearing does, so a dull anchor and a bright reconstruction are matched in loudness, not
    in signal power (RMS can be off by a dB or more between such stimuli). ``rms``: plain
    RMS, as earlier tests were prepared. A silent stimulus (or reference) gets 0 dB.
    """
    if method not in LOUDNESS_METHODS:
        raise ValueError(f"loudness method {method!r}: use one of {', '.join(LOUDNESS_METHODS)}")
    target = _level_db(reference, sample_rate, method)
    gains = []
    for audio in others:
        level = _level_db(audio, sample_rate, method)
        gains.append(0.0 if np.isinf(level) or np.isinf(target) else float(target - level))
    return gains


def _level_db(audio: np.ndarray, sample_rate: int, method: str) -> float:
    if method == "bs1770":
        return integrated_loudness(audio, sample_rate)
    level = rms(audio)
    return float(20 * np.log10(level)) if level > 0 else float("-inf")


def wav_bytes(audio: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM wav of a float signal in [-1, 1] (clipped); frames × channels if 2-D.

    Written with numpy rather than soundfile: every trial a rater sees encodes each of its
    stimuli afresh (the blinding), and libsndfile's virtual-file calls were most of that cost.
    """
    pcm = pcm16(audio)
    channels = 1 if pcm.ndim == 1 else pcm.shape[1]
    data = pcm.tobytes()
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, channels,
                         sample_rate, sample_rate * channels * 2, channels * 2, 16, b"data", len(data))
    return header + data


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return audio, rate


_DECODED: OrderedDict[bytes, tuple[np.ndarray, int]] = OrderedDict()
_DECODED_LOCK = threading.Lock()
#: Decoded stimuli kept in memory: a whole test of 8 items × 12 stimuli fits.
DECODED_CACHE_SIZE = 128


def _decoded(data: bytes) -> tuple[np.ndarray, int]:
    """``read_wav_bytes`` for stored stimuli, which never change: decoded once per process."""
    key = hashlib.blake2b(data, digest_size=16).digest()  # by content, so reused row ids can't alias
    with _DECODED_LOCK:
        if key in _DECODED:
            _DECODED.move_to_end(key)
            return _DECODED[key]
    found = read_wav_bytes(data)
    found[0].setflags(write=False)
    with _DECODED_LOCK:
        _DECODED[key] = found
        while len(_DECODED) > DECODED_CACHE_SIZE:
            _DECODED.popitem(last=False)
    return found


def blinded_wav(data: bytes, rng: np.random.Generator) -> bytes:
    """The same stimulus with an inaudible random gain and TPDF dither, re-encoded.

    Done per session and per stimulus, so two stimuli with equal audio (the labelled and
    the hidden reference) never arrive as equal bytes, and no stimulus's bytes are stable
    across sessions: a browser cannot find the hidden reference by comparing bytes.
    """
    audio, rate = _decoded(data)
    gain = np.float32(10 ** (rng.uniform(-BLIND_GAIN_DB, BLIND_GAIN_DB) / 20))
    # TPDF dither of ±1 LSB: the difference of two uniforms (float32: this runs per stimulus per trial).
    dither = rng.random(audio.shape, dtype=np.float32)
    dither -= rng.random(audio.shape, dtype=np.float32)
    dither *= np.float32(1 / PCM16_SCALE)
    return wav_bytes(audio * gain + dither, rate)


def calibration_tone(sample_rate: int, seconds: float = 3.0, hz: float = 1000.0, dbfs: float = -20.0) -> bytes:
    """A sine at -20 dBFS for setting a comfortable listening level before the test."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    tone = 10 ** (dbfs / 20) * np.sqrt(2) * np.sin(2 * np.pi * min(hz, sample_rate / 4) * t)
    fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.02)  # no clicks at the ends
    return wav_bytes((tone * fade).astype(np.float32), sample_rate)
