"""The seed experiment's perceptual loss: a bank of FIR filters on the Bark scale.

See zounds ``zounds/spectral/functional.py`` (``fir_filter_bank``) and
``zounds/spectral/frequencyscale.py`` (``BarkScale``, ``Bark``,
``equivalent_rectangular_bandwidth``), which the seed experiment used to build
its filters, and its loss: ``conv1d(x, filters, stride=2, padding=512)``, ReLU,
``log(1 + 10000 x)``, mean squared error.

Two losses are registered:

* ``bark``: faithful to the seed, filter gains included. ``firwin2`` samples each
  band's desired response on a grid of 513 points (10.77 Hz apart at 11 025 Hz)
  while the Gaussian it is asked for is only ``3 * ERB / 99`` Hz wide (1 Hz at
  100 Hz, 4 Hz at 1 kHz), so a band's gain is set by how near a grid point falls
  to its centre: peak gains rise with frequency on average (about 0.27 at 1 kHz,
  0.67 at 4 kHz, 0.76 at 5.2 kHz) and below about 1.3 kHz jump from band to band
  (from 4e-7 to 0.27 between neighbours below 300 Hz).
* ``bark-norm``: the same filters, each scaled to a peak gain of 1.

The features are computed in the frequency domain by default: the filters'
spectra are precomputed, only the stride-2 outputs are produced (by folding the
spectrum and taking an inverse FFT of half the size), and the target's features
are computed without autograd. ``method="direct"`` keeps the seed's ``conv1d``
as the reference.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn

from losses.base import Loss, register

N_BANDS = 512
TAPS = 512  # filter length, samples
STRIDE = 2  # hop between output frames, samples
PADDING = 512  # zeros conv1d adds at each end, samples
LOWEST_CENTRE_HZ = 50.0
TOP_MARGIN_HZ = 300.0  # the highest centre lies this far below Nyquist
ERB_SLOPE = 0.108  # equivalent rectangular bandwidth = slope * f + offset, Hz
ERB_OFFSET_HZ = 24.7
BARK_HZ = 600.0  # Bark = 6 asinh(f / 600 Hz)
BARK_SCALE = 6.0
GAUSSIAN_POINTS = 100  # desired-response samples across each band
GAUSSIAN_STD = 3.0  # in those samples, not Hz
LOG_GAIN = 10_000.0  # features are log(1 + LOG_GAIN * relu(filter output))
PEAK_FFT = 1 << 15  # FFT size for measuring peak gain: 0.34 Hz apart at 11 025 Hz
DEFAULT_WINDOW = 2048  # samples; the spectra for this length are precomputed
CPU_CHUNK_BYTES = 1 << 22  # one chunk's filtered spectra on a CPU: fits in cache
COMPLEX64_BYTES = 8

Method = Literal["fft", "direct"]


def hz_to_bark(hz: np.ndarray | float) -> np.ndarray:
    """Bark from Hz, ``6 asinh(f / 600)``. See zounds ``Bark.to_bark``."""
    return BARK_SCALE * np.arcsinh(np.asarray(hz, dtype=np.float64) / BARK_HZ)


def bark_to_hz(bark: np.ndarray | float) -> np.ndarray:
    """Hz from Bark, ``600 sinh(b / 6)``. See zounds ``Bark.to_hz``."""
    return BARK_HZ * np.sinh(np.asarray(bark, dtype=np.float64) / BARK_SCALE)


def bark_band_centres(sample_rate: int, n_bands: int = N_BANDS) -> np.ndarray:
    """Centre frequencies in Hz, ``(n_bands,)``, evenly spaced in Bark.

    See zounds ``BarkScale._compute_bands``: from 50 Hz to 300 Hz below Nyquist
    (5212.5 Hz at 11 025 Hz).

    Args:
        sample_rate: samples per second.
        n_bands: number of bands.
    """
    top = sample_rate / 2 - TOP_MARGIN_HZ
    if top <= LOWEST_CENTRE_HZ:
        raise ValueError(f"sample rate {sample_rate} Hz leaves no room for bands above {LOWEST_CENTRE_HZ} Hz")
    return bark_to_hz(np.linspace(hz_to_bark(LOWEST_CENTRE_HZ), hz_to_bark(top), n_bands))


def equivalent_rectangular_bandwidth(hz: np.ndarray) -> np.ndarray:
    """Bandwidth in Hz of the band centred on ``hz``, ``0.108 f + 24.7``."""
    return ERB_SLOPE * np.asarray(hz, dtype=np.float64) + ERB_OFFSET_HZ


def bark_filter_bank(sample_rate: int, n_bands: int = N_BANDS, taps: int = TAPS, normalise: bool = False) -> np.ndarray:
    """The seed's FIR filters, ``(n_bands, taps)`` float64, one Bark band per row.

    See zounds ``fir_filter_bank(BarkScale(FrequencyBand(50, nyquist - 300), 512),
    512, samplerate, gaussian(100, 3))``. Each band spans one ERB around its
    centre; ``firwin2`` (its defaults: 513-point design grid, Hamming window) is
    asked for a Gaussian across that span and zero at DC and Nyquist.

    Args:
        sample_rate: samples per second.
        n_bands: number of bands.
        taps: filter length in samples; even, so every filter is zero at Nyquist.
        normalise: scale each filter to a peak gain of 1 (``bark-norm``); the
            seed did not.
    """
    nyquist = sample_rate / 2
    centres = bark_band_centres(sample_rate, n_bands)
    widths = equivalent_rectangular_bandwidth(centres)
    gains = np.concatenate([[0.0], scipy.signal.windows.gaussian(GAUSSIAN_POINTS, std=GAUSSIAN_STD), [0.0]])
    # zounds clips a band to [0, Nyquist]; scipy now refuses Nyquist twice, so a
    # band that reaches it (sample rates above about 11.26 kHz) stops just below.
    highest = nyquist * (1 - 1e-6)
    bank = np.empty((n_bands, taps))
    for i, (centre, width) in enumerate(zip(centres, widths)):
        start, stop = max(0.0, centre - width / 2), min(highest, centre + width / 2)
        freqs = np.concatenate([[0.0], np.linspace(start, stop, GAUSSIAN_POINTS), [nyquist]])
        bank[i] = scipy.signal.firwin2(taps, freqs, gains, window="hamming", fs=sample_rate)
    if normalise:
        bank /= filter_peak_gains(bank)[:, None]
    return bank


def filter_peak_gains(bank: np.ndarray) -> np.ndarray:
    """Largest magnitude of each filter's frequency response, ``(n_bands,)``.

    Args:
        bank: filters ``(n_bands, taps)``.
    """
    # A dense grid: the main lobes are only about 30 Hz wide.
    return np.abs(np.fft.rfft(bank, n=max(PEAK_FFT, bank.shape[-1]), axis=-1)).max(axis=-1)


def n_frames(samples: int, taps: int = TAPS) -> int:
    """Frames the seed's ``conv1d(stride=2, padding=512)`` gives for ``samples``."""
    return (samples + 2 * PADDING - taps) // STRIDE + 1


def _fft_size(samples: int, taps: int) -> int:
    """Smallest power of 2 for which circular filtering equals ``conv1d``.

    Output ``m`` needs the linear result at ``n = 2m`` with the kernel at lags
    ``[PADDING - taps + 1, PADDING]``; the next period's copies must miss every
    kept output, and the half-size inverse FFT must hold all the frames.
    """
    frames = n_frames(samples, taps)
    first_lag = PADDING - taps + 1
    need = max(samples + PADDING, STRIDE * (frames - 1) - first_lag + 1, STRIDE * frames, taps, 4)
    return 1 << (need - 1).bit_length()


def _circular_kernel(filters: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Filters laid out for circular convolution, ``(bands, n_fft)``.

    ``conv1d`` correlates: ``y[m] = sum_k x[2m + k - P] h[k]``, so lag ``d``
    carries ``h[P - d]``, the filter reversed and shifted; negative lags wrap.
    """
    taps = filters.shape[-1]
    lags = torch.arange(PADDING - taps + 1, PADDING + 1, device=filters.device)
    kernel = filters.new_zeros(filters.shape[0], n_fft)
    kernel[:, lags % n_fft] = filters[:, PADDING - lags]
    return kernel


def _folded_spectra(filters: torch.Tensor, n_fft: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The two halves of each filter's spectrum that the stride-2 fold needs.

    Keeping every second sample of a length-N signal halves its period; its
    spectrum is ``(Y[k] + Y[k + N/2]) / 2``, and for a real signal
    ``Y[k + N/2] = conj(Y[N/2 - k])``, so both terms come from the one-sided
    spectrum. Returns ``(low, high)``, each ``(bands, N/4 + 1)`` complex, with the
    1/2 folded in.
    """
    spectrum = torch.fft.rfft(_circular_kernel(filters, n_fft), dim=-1)
    quarter = n_fft // 4
    return spectrum[:, : quarter + 1] / 2, spectrum[:, quarter:].flip(-1).conj() / 2


def _bands_per_chunk(batch: int, bins: int, bands: int, device: torch.device) -> int:
    """How many bands the fast path filters at once.

    On a CPU the work is bound by memory traffic: a chunk whose spectrum fits in
    cache runs several times faster than all bands at once. A GPU does best with
    everything in one go.
    """
    if device.type != "cpu":
        return bands
    return max(1, min(bands, CPU_CHUNK_BYTES // (batch * bins * COMPLEX64_BYTES)))


class BarkFeatures(nn.Module):
    """The seed's Bark representation: filter, ReLU, ``log(1 + 10000 x)``.

    See the module docstring. The filters and their spectra for a 2048-sample
    window are buffers, not state: they follow ``.to()`` and stay out of
    ``state_dict`` (they are rebuilt from the sample rate).

    Args:
        sample_rate: samples per second.
        normalise: unit peak gain per filter instead of the seed's gains.
        method: ``"fft"`` (fast, default) or ``"direct"`` (the seed's ``conv1d``).
        n_bands: number of bands.
        taps: filter length in samples.

    Shapes: ``forward(x)`` takes ``(batch, samples)`` and returns
    ``(batch, n_bands, frames)``, ``frames = (samples + 2 * 512 - taps) // 2 + 1``
    (1281 for 2048 samples).
    """

    def __init__(
        self,
        sample_rate: int,
        normalise: bool = False,
        method: Method = "fft",
        n_bands: int = N_BANDS,
        taps: int = TAPS,
    ) -> None:
        super().__init__()
        if method not in ("fft", "direct"):
            raise ValueError(f"method must be 'fft' or 'direct', not {method!r}")
        self.sample_rate = sample_rate
        self.normalise = normalise
        self.method = method
        bank = bark_filter_bank(sample_rate, n_bands, taps, normalise)
        self.register_buffer("filters", torch.from_numpy(bank).float(), persistent=False)
        centres = torch.from_numpy(bark_band_centres(sample_rate, n_bands)).float()
        self.register_buffer("centres_hz", centres, persistent=False)
        self.default_fft = _fft_size(DEFAULT_WINDOW, taps)
        low, high = _folded_spectra(torch.from_numpy(bank), self.default_fft)
        self.register_buffer("spectrum_low", low.to(torch.complex64), persistent=False)
        self.register_buffer("spectrum_high", high.to(torch.complex64), persistent=False)

    def extra_repr(self) -> str:
        bands, taps = self.filters.shape
        return f"sample_rate={self.sample_rate}, bands={bands}, taps={taps}, normalise={self.normalise}, method={self.method!r}"

    def responses(self, x: torch.Tensor) -> torch.Tensor:
        """Filter outputs before the nonlinearity, ``(batch, bands, frames)``.

        Args:
            x: waveforms ``(batch, samples)``.
        """
        return self._compute(x, compress=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Log-compressed rectified filter outputs, ``(batch, bands, frames)``.

        Args:
            x: waveforms ``(batch, samples)``.
        """
        return self._compute(x, compress=True)

    def _compute(self, x: torch.Tensor, compress: bool) -> torch.Tensor:
        # float32 (float64 stays float64), with autocast off: bf16 must never
        # reach the FFTs, and a log of a bf16 filter output is too coarse.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = _as_float(x)
            if self.method == "direct":
                y = F.conv1d(x[:, None], self.filters.to(x.dtype)[:, None], stride=STRIDE, padding=PADDING)
                return compress_responses(y) if compress else y
            chunks = [compress_responses(y) if compress else y for _, y in self._fft_chunks(x)]
            return chunks[0] if len(chunks) == 1 else torch.cat(chunks, dim=1)

    def _fft_chunks(self, x: torch.Tensor):
        """Filter outputs of the fast path, a chunk of bands at a time.

        Yields ``(bands slice, responses (batch, chunk, frames))``; autograd
        follows if ``x`` needs it.
        """
        samples = x.shape[-1]
        bands, taps = self.filters.shape
        n_fft = _fft_size(samples, taps)
        frames = n_frames(samples, taps)
        quarter = n_fft // 4
        low, high = self._spectra(n_fft, x.dtype)
        spectrum = torch.fft.rfft(x, n=n_fft, dim=-1)
        x_low = spectrum[:, None, : quarter + 1]
        x_high = spectrum[:, None, quarter:].flip(-1).conj()
        step = _bands_per_chunk(x.shape[0], quarter + 1, bands, x.device)
        for start in range(0, bands, step):
            part = slice(start, start + step)
            folded = x_low * low[part] + x_high * high[part]
            yield part, torch.fft.irfft(folded, n=n_fft // 2, dim=-1)[..., :frames]

    def _spectra(self, n_fft: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        if n_fft == self.default_fft and dtype == torch.float32:
            return self.spectrum_low, self.spectrum_high
        # Other lengths are rare (evaluation on longer clips): build them here, in
        # float64 so that only the final cast rounds.
        low, high = _folded_spectra(self.filters.double(), n_fft)
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        return low.to(complex_dtype), high.to(complex_dtype)


def compress_responses(y: torch.Tensor) -> torch.Tensor:
    """The seed's nonlinearity, ``log(1 + 10000 relu(y))``, same shape as ``y``."""
    # log1p: the same function, more accurate near zero.
    return torch.log1p(LOG_GAIN * torch.relu(y))


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float64 else x.float()


class _FusedBarkMSE(torch.autograd.Function):
    """MSE between Bark features of ``x`` and fixed ``reference``, fast path.

    Forward filters a chunk of bands at a time and, while the chunk is in
    cache, also computes its share of the gradient with respect to ``x``;
    backward only scales that gradient. The adjoints, for a one-sided spectrum
    ``Z`` of ``h`` bins' signal and PyTorch's complex gradient convention:
    ``irfft(Z, n=h)`` gives ``rfft(g, n=h) * w / h`` (``w`` is 2 inside, 1 at
    DC and at h/2); ``rfft(x, n=N)`` gives ``N * irfft(G * v, n=N)`` (``v`` is
    1/2 inside, 1 at the ends), cut to ``x``'s length.

    Args (of ``apply``):
        x: reconstruction ``(batch, samples)``, float32 or float64.
        reference: target features ``(batch, bands, frames)``, no gradient.
        features: the ``BarkFeatures`` (fast path) that made ``reference``.
        need_grad: whether to compute the gradient (grad mode was on).

    Returns the scalar loss.
    """

    @staticmethod
    def forward(ctx, x, reference, features, need_grad):
        batch, samples = x.shape
        n_fft = _fft_size(samples, features.filters.shape[-1])
        half, quarter = n_fft // 2, n_fft // 4
        low, high = features._spectra(n_fft, x.dtype)
        total = x.new_zeros((), dtype=torch.float64)
        grad_low = grad_high = None
        for part, y in features._fft_chunks(x):
            rectified = torch.relu(y)
            diff = torch.log1p(LOG_GAIN * rectified).sub_(reference[:, part])
            total += diff.square().sum(dtype=torch.float64)
            if not need_grad:
                continue
            # d log(1 + a r) / dy = a / (1 + a r) where y > 0; relu'(0) = 0.
            grad_y = torch.where(rectified > 0, diff * (LOG_GAIN / (1 + LOG_GAIN * rectified)), 0.0)
            grad_folded = torch.fft.rfft(grad_y, n=half, dim=-1)
            chunk_low = (grad_folded * low[part].conj()).sum(dim=1)
            chunk_high = (grad_folded * high[part].conj()).sum(dim=1)
            grad_low = chunk_low if grad_low is None else grad_low + chunk_low
            grad_high = chunk_high if grad_high is None else grad_high + chunk_high
        count = reference.numel()
        if need_grad:
            bins = torch.full((quarter + 1,), 2.0 / half, dtype=x.dtype, device=x.device)
            bins[0] = bins[-1] = 1.0 / half
            grad_spectrum = torch.zeros(batch, half + 1, dtype=grad_low.dtype, device=x.device)
            grad_spectrum[:, : quarter + 1] += grad_low * bins
            grad_spectrum[:, quarter:] += (grad_high * bins).flip(-1).conj()
            grad_spectrum[:, 1:-1] *= 0.5
            grad_x = n_fft * torch.fft.irfft(grad_spectrum, n=n_fft, dim=-1)[:, :samples]
            # The mean's derivative, 2 * diff / count; diff carried the rest.
            ctx.save_for_backward(grad_x * (2.0 / count))
        return (total / count).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        (grad_x,) = ctx.saved_tensors
        return grad_loss * grad_x, None, None, None


class _BarkLossBase(Loss):
    """Mean squared error between Bark features of reconstruction and target.

    See the module docstring. The target's features are computed without
    autograd: only the reconstruction needs a gradient.

    Args:
        sample_rate: samples per second.
        method: ``"fft"`` (default) or ``"direct"`` (the seed's ``conv1d``).

    Shapes: ``head`` ``(batch, 1, samples)``, ``target`` ``(batch, samples)``;
    returns a scalar.
    """

    normalise: ClassVar[bool] = False

    def __init__(self, sample_rate: int, method: Method = "fft") -> None:
        super().__init__(sample_rate)
        self.features = BarkFeatures(sample_rate, normalise=self.normalise, method=method)

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=head.device.type, enabled=False):
            reconstruction = _as_float(head[:, 0])
            with torch.no_grad():
                reference = self.features(_as_float(target).to(reconstruction.dtype))
            if self.features.method == "direct":
                return F.mse_loss(self.features(reconstruction), reference)
            need_grad = torch.is_grad_enabled() and reconstruction.requires_grad
            return _FusedBarkMSE.apply(reconstruction, reference, self.features, need_grad)


@register
class BarkLoss(_BarkLossBase):
    """The seed's perceptual loss, faithful to its filters' uneven gains."""

    name = "bark"
    description = "MSE of log Bark-scale FIR filter outputs (the seed's loss, its uneven filter gains kept)"
    normalise = False


@register
class BarkNormLoss(_BarkLossBase):
    """The seed's perceptual loss with every filter scaled to unit peak gain."""

    name = "bark-norm"
    description = "MSE of log Bark-scale FIR filter outputs, every filter at unit peak gain"
    normalise = True
