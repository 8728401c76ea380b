"""A loss in one file: L1 distance between STFT magnitudes.

    earshot losses check ./my_loss.py:SpectralL1
    earshot run --preset quick --losses mse,./my_loss.py:SpectralL1 --set loss_options.spectral-l1.n_fft=512
"""

import torch

from earshot.losses import Loss


class SpectralL1(Loss):
    name = "spectral-l1"  # its section in loss_options
    description = "L1 distance between STFT magnitudes"

    def __init__(self, sample_rate: int, n_fft: int = 256) -> None:
        super().__init__(sample_rate)
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # head: (batch, 1, samples), the decoder's waveform; target: (batch, samples)
        def magnitude(x: torch.Tensor) -> torch.Tensor:
            return torch.stft(x, self.n_fft, self.n_fft // 4, window=self.window, return_complex=True).abs()

        return (magnitude(head[:, 0]) - magnitude(target)).abs().mean()
