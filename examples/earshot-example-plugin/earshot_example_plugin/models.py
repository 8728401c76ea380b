"""A small codec: a strided convolution to frames, a linear code, and the way back."""

import torch
from torch import nn


class TinyCodec(nn.Module):
    """(batch, 1, window) → code (batch, latent) → head (batch, head_channels, window)."""

    description = "strided conv frames → linear code → transposed conv"

    def __init__(self, window: int, head_channels: int = 1, channels: int = 16, latent: int = 32,
                 hop: int = 64) -> None:
        super().__init__()
        if window % hop:
            raise ValueError(f"window {window} is not a multiple of hop {hop}")
        self.latent = latent  # code values per window: earshot reports the latent rate from it
        self.channels, self.frames = channels, window // hop
        self.analysis = nn.Conv1d(1, channels, hop, stride=hop)
        self.to_code = nn.Linear(channels * self.frames, latent)
        self.from_code = nn.Linear(latent, channels * self.frames)
        self.synthesis = nn.ConvTranspose1d(channels, head_channels, hop, stride=hop)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_code(torch.tanh(self.analysis(x)).flatten(1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        frames = torch.tanh(self.from_code(code)).view(-1, self.channels, self.frames)
        return self.synthesis(frames)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))
