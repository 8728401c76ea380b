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

The features are computed in the frequency domain by default (``method="fft"``):
the filters' spectra are precomputed, only the stride-2 outputs are produced
(folding the spectrum so the inverse FFT is half the size), the FFT size is the
smallest with no prime factor above 5 (2560 for a 2048-sample window), and on a
CPU the bands go a cache-sized chunk at a time. The loss computes its gradient
during that same pass, and never one for the target. ``method="direct"`` keeps
the seed's ``conv1d`` as the reference; the two agree to float32 rounding, but
that rounding matters near 0, where ``log(1 + 10000 x)`` has slope 10000 and
ReLU's derivative jumps: there, gradient entries of either method can differ
from exact arithmetic by up to the largest entry.
"""

from __future__ import annotations

from typing import ClassVar, Iterator, Literal

import numpy as np
import scipy.signal
import torch
import torch.nn.functional as F
from torch import nn

from earshot.losses.base import Loss, register

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
CPU_CHUNK_BYTES = 1 << 20  # a chunk of filtered spectra on a CPU: about one L2 cache (measured best)
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


def _signal_frames(samples: int, taps: int) -> tuple[int, int]:
    """``(first, stop)``: the frames whose filter window overlaps the signal.

    The others see only padding and are exactly 0 from ``conv1d``; the FFT
    leaves rounding noise there instead, which ReLU and the 10000x slope of
    the log near 0 would turn into a spurious gradient, so they are set to 0.
    """
    first = max(0, -((PADDING - taps + 1) // -STRIDE))  # ceil division
    stop = min(n_frames(samples, taps), (samples - 1 + PADDING) // STRIDE + 1)
    return first, stop


def _fft_size(samples: int, taps: int) -> int:
    """Smallest FFT size for which circular filtering equals ``conv1d``.

    Output ``m`` is the linear result at ``n = 2m``, whose kernel spans lags
    ``[PADDING - taps + 1, PADDING]``. For the frames ``_signal_frames`` keeps,
    the copies from the next and the previous period must both miss, and the
    half-size inverse FFT must hold them. The size is a multiple of 4 (the
    stride-2 fold halves it; its one-sided spectrum then has N/4 + 1 bins) with
    no prime factor above 5: 2560 for 2048 samples, where a power of 2 would be
    4096, which measured 1.3 times slower on the 2-core CPU and on an H100.
    """
    first, stop = _signal_frames(samples, taps)
    first_lag = PADDING - taps + 1
    need = max(
        samples + PADDING - STRIDE * first,  # next period's copy of the last input
        STRIDE * (stop - 1) - first_lag + 1,  # previous period's copy of the first
        STRIDE * stop,
        taps,
    )
    size = -(-need // 4) * 4
    while not _is_5_smooth(size):
        size += 4
    return size


def _is_5_smooth(n: int) -> bool:
    for prime in (2, 3, 5):
        while n % prime == 0:
            n //= prime
    return n == 1


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


def _bands_per_chunk(rows: int, bins: int, bands: int, device: torch.device) -> int:
    """How many bands the fast path filters at once.

    On a CPU the work is bound by memory traffic: a chunk whose spectra fit in
    cache runs several times faster than all bands at once. A GPU does best with
    everything in one go (chunks of 4 to 16 MiB were 1.7 to 7 times slower on an
    H100).
    """
    if device.type != "cpu":
        return bands
    return max(1, min(bands, CPU_CHUNK_BYTES // (rows * bins * COMPLEX64_BYTES)))


class BarkFeatures(nn.Module):
    """The seed's Bark representation: filter, ReLU, ``log(1 + 10000 x)``.

    See the module docstring. The filters, their centres and their spectra for
    a 2048-sample window are buffers, not state: they follow ``.to()`` and stay
    out of ``state_dict`` (they are rebuilt from the sample rate).

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
        # From the float32 filters, so both methods filter with the same numbers.
        low, high = _folded_spectra(self.filters.double(), self.default_fft)
        self.register_buffer("spectrum_low", low.to(torch.complex64), persistent=False)
        self.register_buffer("spectrum_high", high.to(torch.complex64), persistent=False)

    def extra_repr(self) -> str:
        bands, taps = self.filters.shape
        return (
            f"sample_rate={self.sample_rate}, bands={bands}, taps={taps}, "
            f"normalise={self.normalise}, method={self.method!r}"
        )

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
        # reach the FFTs, and the log of a bf16 filter output is too coarse.
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = _as_float(x)
            if self.method == "direct":
                # On CUDA this runs in TF32 where cuDNN allows it (PyTorch's default):
                # features 3% off float64 on an H100, against 7e-5 for the fast path.
                y = F.conv1d(x[:, None], self.filters.to(x.dtype)[:, None], stride=STRIDE, padding=PADDING)
                return compress_responses(y) if compress else y
            samples, (bands, taps) = x.shape[-1], self.filters.shape
            first, stop = _signal_frames(samples, taps)
            frames = n_frames(samples, taps)
            if torch.is_grad_enabled() and x.requires_grad:
                pad = (first, frames - stop)
                parts = [F.pad(compress_responses(y) if compress else y, pad) for _, y in self._fft_chunks(x)]
                return torch.cat(parts, dim=1)
            out = x.new_zeros(x.shape[0], bands, frames)
            for part, y in self._fft_chunks(x):
                out[:, part, first:stop] = compress_responses(y) if compress else y
            return out

    def _fft_chunks(
        self, x: torch.Tensor, spectra: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> Iterator[tuple[slice, torch.Tensor]]:
        """Filter outputs of the fast path, a chunk of bands at a time.

        Yields ``(bands slice, responses (batch, chunk, stop - first))`` for the
        frames ``_signal_frames`` keeps (the rest are 0); autograd follows if
        ``x`` needs it. ``spectra``: ``_spectra``'s answer, if already at hand.
        """
        samples = x.shape[-1]
        bands, taps = self.filters.shape
        n_fft = _fft_size(samples, taps)
        first, stop = _signal_frames(samples, taps)
        quarter = n_fft // 4
        low, high = spectra if spectra is not None else self._spectra(n_fft, x.dtype)
        spectrum = torch.fft.rfft(x, n=n_fft, dim=-1)
        x_low = spectrum[:, None, : quarter + 1]
        x_high = spectrum[:, None, quarter:].flip(-1).conj()
        step = _bands_per_chunk(x.shape[0], quarter + 1, bands, x.device)
        for start in range(0, bands, step):
            part = slice(start, start + step)
            folded = torch.addcmul(x_low * low[part], x_high, high[part])
            yield part, torch.fft.irfft(folded, n=n_fft // 2, dim=-1)[..., first:stop]

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
    """MSE between the Bark features of ``x`` and of ``target``: the fast path.

    Forward filters both signals a chunk of bands at a time and, while the
    chunk is in cache, also computes its share of the gradient with respect to
    ``x``; backward only scales that gradient. The adjoints, for PyTorch's
    complex gradient convention: ``irfft(Z, n=h)[first:stop]`` gives
    ``rfft(g shifted by first, n=h) * w / h`` (``w`` is 2 inside, 1 at DC and
    at h/2); ``rfft(x, n=N)`` gives ``N * irfft(G * v, n=N)`` (``v`` is 1/2
    inside, 1 at the ends), cut to ``x``'s length.

    Args (of ``apply``):
        x: reconstruction ``(batch, samples)``, float32 or float64.
        target: waveform ``(batch, samples)``, same dtype; gets no gradient.
        features: the ``BarkFeatures`` (fast path) to compare with.
        need_grad: whether to compute the gradient (grad mode was on).

    Returns the scalar loss.
    """

    @staticmethod
    def forward(ctx, x, target, features, need_grad):
        batch, samples = x.shape
        bands, taps = features.filters.shape
        n_fft = _fft_size(samples, taps)
        half, quarter = n_fft // 2, n_fft // 4
        first, stop = _signal_frames(samples, taps)
        low, high = features._spectra(n_fft, x.dtype)
        total = x.new_zeros((), dtype=torch.float64)
        grad_low = grad_high = None
        # One pass over the bands for both signals; frames outside
        # [first, stop) are 0 for both and add nothing.
        for part, y in features._fft_chunks(torch.cat([x, target]), (low, high)):
            rectified = torch.relu(y)
            compressed = torch.log1p(LOG_GAIN * rectified)
            diff = compressed[:batch] - compressed[batch:]
            total += torch.dot(diff.flatten(), diff.flatten()).to(torch.float64)
            if not need_grad:
                continue
            # d log(1 + a relu(y)) / dy = a / (1 + a y) where y > 0, else 0 (as
            # autograd has relu'(0)); threshold_backward is relu's own backward.
            mine = rectified[:batch]
            grad_y = torch.ops.aten.threshold_backward(diff.mul_(LOG_GAIN).div_(mine.mul(LOG_GAIN).add_(1)), mine, 0)
            grad_folded = torch.fft.rfft(F.pad(grad_y, (first, 0)), n=half, dim=-1)
            chunk_low = (grad_folded * low[part].conj()).sum(dim=1)
            chunk_high = (grad_folded * high[part].conj()).sum(dim=1)
            grad_low = chunk_low if grad_low is None else grad_low.add_(chunk_low)
            grad_high = chunk_high if grad_high is None else grad_high.add_(chunk_high)
        count = batch * bands * n_frames(samples, taps)
        if need_grad:
            bins = torch.full((quarter + 1,), 2.0 / half, dtype=x.dtype, device=x.device)
            bins[0] = bins[-1] = 1.0 / half
            grad_spectrum = torch.zeros(batch, half + 1, dtype=grad_low.dtype, device=x.device)
            grad_spectrum[:, : quarter + 1] += grad_low * bins
            grad_spectrum[:, quarter:] += (grad_high * bins).flip(-1).conj()
            grad_spectrum[:, 1:-1] *= 0.5
            grad_x = n_fft * torch.fft.irfft(grad_spectrum, n=n_fft, dim=-1)[:, :samples]
            # The mean's derivative, 2 * diff / count; diff is already in.
            ctx.save_for_backward(grad_x * (2.0 / count))
        return (total / count).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        (grad_x,) = ctx.saved_tensors
        return grad_loss * grad_x, None, None, None


class _BarkLossBase(Loss):
    """Mean squared error between Bark features of reconstruction and target.

    See the module docstring. Only the reconstruction gets a gradient.

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
            target = target.detach().to(reconstruction.dtype)
            if self.features.method == "direct":
                with torch.no_grad():
                    reference = self.features(target)
                return F.mse_loss(self.features(reconstruction), reference)
            need_grad = torch.is_grad_enabled() and reconstruction.requires_grad
            return _FusedBarkMSE.apply(reconstruction, target, self.features, need_grad)


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
