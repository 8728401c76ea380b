"""A loss that does not inherit earshot's Loss: any torch module with forward(head, target) will do."""

import torch
from torch import nn


class LogSpectralL1(nn.Module):
    name = "log-spectral-l1"  # its section in loss_options
    description = "L1 distance between log STFT magnitudes"
    head_channels = 1  # the decoder head it needs: one waveform channel (the default)

    def __init__(self, sample_rate: int, n_fft: int = 256, floor: float = 1e-4) -> None:
        super().__init__()
        self.sample_rate, self.n_fft, self.floor = sample_rate, n_fft, floor

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        window = torch.hann_window(self.n_fft, device=target.device)

        def log_magnitude(x: torch.Tensor) -> torch.Tensor:
            spectrum = torch.stft(x, self.n_fft, self.n_fft // 4, window=window, return_complex=True)
            return torch.log(spectrum.abs() + self.floor)

        return (log_magnitude(head[:, 0]) - log_magnitude(target)).abs().mean()
