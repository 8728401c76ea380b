"""Losses on short-time spectra: multi-resolution STFT and multi-scale mel.

Both compare a waveform head with the target through ``torch.stft`` (centred
frames, reflect padding, periodic Hann windows), in float32 with autocast off.
The resolutions are scaled for the seed's 2048-sample windows at 11 025 Hz:
the published defaults (FFT up to 2048 at 22–44 kHz) would put a single frame
over a whole training window.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from earshot.losses.base import Loss, register

# The mrstft loss's resolutions, and the mrstft metric's (benchmark.evaluate.metrics imports them).
MRSTFT_FFT_SIZES = (512, 256, 128)  # samples: 46, 23 and 12 ms at 11 025 Hz; hop a quarter, Hann window the size
MRSTFT_POWER_FLOOR = 1e-8  # auraloss clamps |X|² here before the square root (its eps)

# DAC's mel loss uses windows 32…2048 with 5…320 bands (5 bands per 32 samples).
# At 11 025 Hz the same bands-per-window ratio leaves every band with at least
# two FFT bins inside it (checked by the tests); the 2048 window is left out as it spans
# a whole training window.
MEL_WINDOWS = (32, 64, 128, 256, 512, 1024)  # samples: 2.9 ms to 93 ms at 11 025 Hz
MEL_BANDS = (5, 10, 20, 40, 80, 160)
MEL_FLOOR = 1e-5  # DAC's clamp_eps: log10 of mel magnitudes below this is floored (-100 dB)

# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, log above.
SLANEY_HZ_PER_MEL = 200.0 / 3
SLANEY_LOG_HZ = 1000.0  # where the scale turns logarithmic
SLANEY_LOG_MEL = SLANEY_LOG_HZ / SLANEY_HZ_PER_MEL  # 15 mels
SLANEY_LOG_STEP = np.log(6.4) / 27.0  # mels per natural-log unit of Hz above 1 kHz


def hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mels from Hz. See librosa ``hz_to_mel(htk=False)``."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / SLANEY_HZ_PER_MEL
    log = SLANEY_LOG_MEL + np.log(np.maximum(hz, SLANEY_LOG_HZ) / SLANEY_LOG_HZ) / SLANEY_LOG_STEP
    return np.where(hz >= SLANEY_LOG_HZ, log, linear)


def mel_to_hz(mel: np.ndarray | float) -> np.ndarray:
    """Hz from Slaney mels. See librosa ``mel_to_hz(htk=False)``."""
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * SLANEY_HZ_PER_MEL
    log = SLANEY_LOG_HZ * np.exp(SLANEY_LOG_STEP * (np.maximum(mel, SLANEY_LOG_MEL) - SLANEY_LOG_MEL))
    return np.where(mel >= SLANEY_LOG_MEL, log, linear)


def mel_filter_bank(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                    fmax: float | None = None) -> np.ndarray:
    """Triangular Slaney-normalised mel filters, ``(n_mels, n_fft // 2 + 1)`` float64.

    The same numbers as ``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax)``
    (``htk=False``, ``norm="slaney"``), which DAC and auraloss use.
    """
    fmax = sample_rate / 2 if fmax is None else fmax
    bins_hz = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    bank = np.maximum(0.0, np.minimum(rising, falling))
    # Slaney normalisation: each triangle has unit area in Hz (constant energy per band).
    return bank * (2.0 / (edges[2:] - edges[:-2]))[:, None]


def empty_mel_bands(bank: np.ndarray) -> list[int]:
    """Indices of bands with no FFT bin inside them (all-zero rows)."""
    return [int(i) for i in np.flatnonzero(~(bank > 0).any(axis=1))]


def _stft_magnitude(x: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor, floor: float | None) -> torch.Tensor:
    """``|STFT(x)|``, ``(batch, n_fft // 2 + 1, frames)``; ``floor`` clamps |X|² first (auraloss)."""
    spec = torch.stft(x, n_fft, hop, n_fft, window, center=True, pad_mode="reflect", return_complex=True)
    if floor is None:
        return spec.abs()
    return torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=floor))


@register
class MultiResolutionSTFTLoss(Loss):
    """Spectral convergence plus log-magnitude L1, averaged over STFT resolutions.

    See [Yamamoto et al., 2020](https://arxiv.org/abs/1910.11480) (Parallel
    WaveGAN) and auraloss ``MultiResolutionSTFTLoss``, whose numbers this
    reproduces at the same settings: per resolution
    ``‖|Y|−|X|‖_F / ‖|Y|‖_F`` (Frobenius norms over the whole batch, as auraloss)
    plus ``mean |log|Y| − log|X||``, with ``|X|² `` clamped at 1e-8; then the mean
    over resolutions.

    Args:
        sample_rate: samples per second (the resolutions are in samples).
        fft_sizes: FFT sizes; hop is a quarter and the Hann window the FFT size.
        sc_weight: weight of spectral convergence.
        log_mag_weight: weight of the log-magnitude L1.

    Shapes: ``head`` ``(batch, 1, samples)``, ``target`` ``(batch, samples)``;
    ``samples`` must exceed half the largest FFT size (reflect padding).
    """

    name = "mrstft"
    description = ("multi-resolution STFT: spectral convergence + log-magnitude L1 "
                   f"(FFT {'/'.join(map(str, MRSTFT_FFT_SIZES))})")

    def __init__(self, sample_rate: int, fft_sizes: Sequence[int] = MRSTFT_FFT_SIZES, sc_weight: float = 1.0,
                 log_mag_weight: float = 1.0) -> None:
        super().__init__(sample_rate)
        self.fft_sizes = [int(n) for n in fft_sizes]
        if not self.fft_sizes or any(n < 4 for n in self.fft_sizes):
            raise ValueError(f"fft_sizes must be a non-empty list of sizes of at least 4, not {fft_sizes!r}")
        self.sc_weight, self.log_mag_weight = float(sc_weight), float(log_mag_weight)
        for n in self.fft_sizes:
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def extra_repr(self) -> str:
        return f"fft_sizes={self.fft_sizes}, sc_weight={self.sc_weight}, log_mag_weight={self.log_mag_weight}"

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=head.device.type, enabled=False):
            x, y = head[:, 0].float(), target.detach().float()
            total = x.new_zeros(())
            for n in self.fft_sizes:
                window = getattr(self, f"window_{n}")
                x_mag = _stft_magnitude(x, n, n // 4, window, MRSTFT_POWER_FLOOR)
                with torch.no_grad():
                    y_mag = _stft_magnitude(y, n, n // 4, window, MRSTFT_POWER_FLOOR)
                if self.sc_weight:
                    total = total + self.sc_weight * torch.linalg.vector_norm(y_mag - x_mag) / torch.linalg.vector_norm(y_mag)
                if self.log_mag_weight:
                    total = total + self.log_mag_weight * F.l1_loss(torch.log(x_mag), torch.log(y_mag))
            return total / len(self.fft_sizes)


class MultiScaleMel(nn.Module):
    """Log mel magnitudes at several window sizes, for ``MelLoss`` and the GAN's reconstruction term.

    Args:
        sample_rate: samples per second.
        windows: window (= FFT) sizes in samples; hop is a quarter.
        bands: mel bands per window size.
        fmin, fmax: the mel range in Hz (``fmax`` None: Nyquist).

    Raises ``ValueError`` if any band of any scale would have no FFT bin in it
    (its log would be the floor everywhere and carry no gradient; auraloss's
    own mel setting at 64 bands and FFT 128 at 11 025 Hz is such a case).
    """

    def __init__(self, sample_rate: int, windows: Sequence[int] = MEL_WINDOWS, bands: Sequence[int] = MEL_BANDS,
                 fmin: float = 0.0, fmax: float | None = None) -> None:
        super().__init__()
        self.windows, self.bands = [int(w) for w in windows], [int(b) for b in bands]
        if not self.windows or len(self.windows) != len(self.bands):
            raise ValueError(f"windows {list(windows)} and bands {list(bands)} must be non-empty and of equal length")
        for window, n_mels in zip(self.windows, self.bands):
            bank = mel_filter_bank(sample_rate, window, n_mels, fmin, fmax)
            empty = empty_mel_bands(bank)
            if empty:
                raise ValueError(f"mel: {n_mels} bands at window {window} and {sample_rate} Hz leave band(s) "
                                 f"{empty[:5]} with no FFT bin; use fewer bands or a longer window")
            self.register_buffer(f"bank_{window}", torch.from_numpy(bank).float(), persistent=False)
            self.register_buffer(f"window_{window}", torch.hann_window(window), persistent=False)

    def scales(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Mel magnitudes per scale, each ``(batch, bands, frames)``; ``x`` is ``(batch, samples)``."""
        out = []
        for window in self.windows:
            mag = _stft_magnitude(x, window, window // 4, getattr(self, f"window_{window}"), None)
            out.append(torch.matmul(getattr(self, f"bank_{window}"), mag))
        return out

    def distance(self, x: torch.Tensor, y: torch.Tensor, log_weight: float = 1.0, mag_weight: float = 0.0) -> torch.Tensor:
        """DAC's mel distance: Σ over scales of L1 of log10 mel (+ optional L1 of mel), float32."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            with torch.no_grad():
                y_scales = self.scales(y.detach().float())
            total = x.new_zeros(())
            for x_mel, y_mel in zip(self.scales(x), y_scales):
                if log_weight:
                    total = total + log_weight * F.l1_loss(x_mel.clamp(min=MEL_FLOOR).log10(),
                                                           y_mel.clamp(min=MEL_FLOOR).log10())
                if mag_weight:
                    total = total + mag_weight * F.l1_loss(x_mel, y_mel)
            return total


@register
class MelLoss(Loss):
    """Multi-scale mel L1 on ``log10(clamp(mel, 1e-5))``, summed over scales.

    See [Kumar et al., 2023](https://arxiv.org/abs/2306.06546) (DAC,
    ``MelSpectrogramLoss``: windows 32…2048, 5…320 bands, hop a quarter,
    magnitude mel, ``mag_weight`` 0), scaled to 11 025 Hz: windows 32…1024 with
    5…160 bands, none of them empty (see ``MEL_WINDOWS``). Own Slaney mel
    filters, equal to librosa's.

    Args:
        sample_rate: samples per second.
        windows: window sizes in samples.
        bands: mel bands per window.
        log_weight: weight of the log-mel L1.
        mag_weight: weight of the linear mel L1 (DAC's default 0).

    Shapes: ``head`` ``(batch, 1, samples)``, ``target`` ``(batch, samples)``.
    """

    name = "mel"
    description = "multi-scale log-mel L1 (DAC style; windows 32-1024, 5-160 bands at 11 kHz)"

    def __init__(self, sample_rate: int, windows: Sequence[int] = MEL_WINDOWS, bands: Sequence[int] = MEL_BANDS,
                 log_weight: float = 1.0, mag_weight: float = 0.0) -> None:
        super().__init__(sample_rate)
        self.mel = MultiScaleMel(sample_rate, windows, bands)
        self.log_weight, self.mag_weight = float(log_weight), float(mag_weight)

    def extra_repr(self) -> str:
        return (f"windows={self.mel.windows}, bands={self.mel.bands}, "
                f"log_weight={self.log_weight}, mag_weight={self.mag_weight}")

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.mel.distance(head[:, 0], target, self.log_weight, self.mag_weight)
