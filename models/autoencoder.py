"""The seed's gated convolutional autoencoder.

All down- and up-sampling is learned: strided convolutions in the encoder, strided
transposed convolutions in the decoder, WaveNet/PixelCNN-style gated activations,
pixel norm, no biases. See JohnVinyard/experiments, ``raw-sample-autoencoder`` (2018).
"""

from __future__ import annotations

from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

Gating = Literal["tanh-sigmoid", "sigmoid", "none"]
ConvImpl = Literal["native", "gemm"]
CONV_IMPLS: tuple[ConvImpl, ...] = ("native", "gemm")
PIXEL_NORM_EPS = 1e-7


def pixel_norm(x: torch.Tensor) -> torch.Tensor:
    """x / sqrt(mean over channels of x² + eps), for ``(batch, channels, time)``."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + PIXEL_NORM_EPS)


# The "gemm" implementation. With kernel = 2 × stride, every output frame of a strided
# convolution reads exactly two consecutive blocks of `stride` input samples, so the
# convolution is a matrix multiply per half-kernel; a transposed one is a matrix multiply
# and a shifted add. GPUs run matrix multiplies near their peak, while cuDNN's strided
# convolution kernels (their backward above all) are suspected of holding the seed model's
# training step far below it. Both functions work time-major, (batch, time, channels), and
# return that memory layout viewed as (batch, channels, time), so consecutive gemm layers
# never transpose activations in memory; the (small) weights are reordered instead.

def _conv1d_gemm(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """``F.conv1d(x, weight, None, stride, padding)`` for a kernel of 2 × stride, as two GEMMs."""
    batch, channels, _ = x.shape
    out_channels = weight.shape[0]
    h = F.pad(x.transpose(1, 2), (0, 0, padding, padding))
    blocks = h.shape[1] // stride  # a tail shorter than a block is dropped, as conv1d drops it
    h = h[:, :blocks * stride].reshape(batch, blocks, stride * channels)
    # (out, in, 2·stride) → each half of the kernel as (out, stride·in), in h's (time, channel) order.
    halves = weight.view(out_channels, channels, 2, stride).permute(2, 0, 3, 1).reshape(2, out_channels, -1)
    y = h[:, :-1] @ halves[0].T + h[:, 1:] @ halves[1].T  # frame t reads blocks t and t + 1
    return y.transpose(1, 2)


def _conv_transpose1d_gemm(x: torch.Tensor, weight: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """``F.conv_transpose1d(x, weight, None, stride, padding)`` for a kernel of 2 × stride, as one GEMM."""
    batch, in_channels, length = x.shape
    out_channels = weight.shape[1]
    # (in, out, 2·stride) → (in, 2·stride·out): what one input frame adds to the two blocks it spans.
    flat = weight.view(in_channels, out_channels, 2, stride).permute(0, 2, 3, 1).reshape(in_channels, -1)
    z = (x.transpose(1, 2) @ flat).view(batch, length, 2, stride * out_channels)
    # Output block m = first half of frame m + second half of frame m - 1.
    blocks = F.pad(z[:, :, 0], (0, 0, 0, 1)) + F.pad(z[:, :, 1], (0, 0, 1, 0))
    y = blocks.view(batch, (length + 1) * stride, out_channels)
    return y[:, padding:y.shape[1] - padding].transpose(1, 2)


class GatedLayer(nn.Module):
    """Two parallel (transposed) convolutions, ``conv`` and ``gate``, combined.

    ``tanh-sigmoid``: tanh(pn(conv)) · sigmoid(pn(gate)) (the seed's hidden layers);
    ``sigmoid``: conv · sigmoid(gate) (the seed's outer layers); ``none``: conv alone.
    ``conv_impl`` says how the convolution runs (see ``set_conv_impl``), not what it computes.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 padding: int, transposed: bool, gating: Gating, pixel_norm: bool) -> None:
        super().__init__()
        conv_cls = nn.ConvTranspose1d if transposed else nn.Conv1d
        self.conv = conv_cls(in_channels, out_channels, kernel, stride, padding, bias=False)
        self.gate = (conv_cls(in_channels, out_channels, kernel, stride, padding, bias=False)
                     if gating != "none" else None)
        self.gating = gating
        self.pixel_norm = pixel_norm and gating == "tanh-sigmoid"
        self.conv_impl: ConvImpl = "native"

    def check_conv_impl(self, impl: ConvImpl, name: str = "layer") -> None:
        """Raise ValueError, naming the layer ``name``, if it cannot run in ``impl``."""
        if impl not in CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {', '.join(CONV_IMPLS)}, not {impl!r}")
        kernel, stride, padding = self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0]
        if impl == "gemm" and kernel != 2 * stride:
            raise ValueError(f"{name}: conv_impl 'gemm' needs kernel = 2 × stride; this layer has "
                             f"kernel {kernel}, stride {stride}, padding {padding}")

    def set_conv_impl(self, impl: ConvImpl, name: str = "layer") -> None:
        """Run the convolution as torch's conv ("native") or as matrix multiplies ("gemm")."""
        self.check_conv_impl(impl, name)
        self.conv_impl = impl

    def _convolve(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """This layer's (transposed) convolution of ``x`` with ``weight``, in ``conv_impl``."""
        stride, padding = self.conv.stride[0], self.conv.padding[0]
        transposed = isinstance(self.conv, nn.ConvTranspose1d)
        if self.conv_impl == "gemm":
            gemm = _conv_transpose1d_gemm if transposed else _conv1d_gemm
            return gemm(x, weight, stride, padding)
        native = F.conv_transpose1d if transposed else F.conv1d
        return native(x, weight, None, stride, padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate is None:
            return self._convolve(x, self.conv.weight)
        # One convolution with conv's and gate's filters side by side: the same arithmetic
        # as two, in one larger kernel call (fewer launches, better GPU utilisation).
        out_dim = 1 if isinstance(self.conv, nn.ConvTranspose1d) else 0
        weight = torch.cat([self.conv.weight, self.gate.weight], dim=out_dim)
        value, gate = self._convolve(x, weight).chunk(2, dim=1)
        if self.gating == "sigmoid":
            return value * torch.sigmoid(gate)
        if self.pixel_norm:
            value, gate = pixel_norm(value), pixel_norm(gate)
        return torch.tanh(value) * torch.sigmoid(gate)


class GatedConvAutoencoder(nn.Module):
    """The default model (``gated-conv``). Encoder (window → code) and mirrored decoder (code → head).

    Args:
        window: samples per window (2048 in the seed).
        encoder_channels: output channels of the first layer, then of each gated layer.
        encoder_kernels, encoder_strides, encoder_padding: per encoder layer.
        latent: size of the code (128 in the seed).
        decoder_channels: output channels of each gated decoder layer, code side first.
        head_channels: channels of the output head, set by the loss (1 for a waveform).
        gating: activation of the hidden gated layers.
        pixel_norm: pixel-normalise conv and gate in the hidden layers.
        init_std: every parameter is drawn from N(0, init_std).

    Shapes: ``(batch, window)`` → code ``(batch, latent)`` → ``(batch, head_channels, window)``.
    """

    description = "the seed's gated convolutional autoencoder"

    def __init__(self, window: int = 2048,
                 encoder_channels: Sequence[int] = (256, 512, 512, 512, 512),
                 encoder_kernels: Sequence[int] = (16, 8, 8, 8, 4),
                 encoder_strides: Sequence[int] = (8, 4, 4, 4, 2),
                 encoder_padding: Sequence[int] = (4, 2, 2, 2, 0),
                 latent: int = 128,
                 decoder_channels: Sequence[int] = (512, 512, 512, 256),
                 head_channels: int = 1,
                 gating: Gating = "tanh-sigmoid",
                 pixel_norm: bool = True,
                 init_std: float = 0.02) -> None:
        super().__init__()
        n = len(encoder_channels)
        if not (len(encoder_kernels) == len(encoder_strides) == len(encoder_padding) == n):
            raise ValueError("encoder channels, kernels, strides and padding must have equal lengths")
        if len(decoder_channels) != n - 1:
            raise ValueError(f"decoder_channels needs {n - 1} entries")
        self.window, self.latent, self.head_channels = window, latent, head_channels
        self.init_args = dict(window=window, encoder_channels=list(encoder_channels),
                              encoder_kernels=list(encoder_kernels), encoder_strides=list(encoder_strides),
                              encoder_padding=list(encoder_padding), latent=latent,
                              decoder_channels=list(decoder_channels), head_channels=head_channels,
                              gating=gating, pixel_norm=pixel_norm, init_std=init_std)

        length, in_ch, encoder = window, 1, []
        for i, (ch, k, s, p) in enumerate(zip(encoder_channels, encoder_kernels, encoder_strides, encoder_padding)):
            encoder.append(GatedLayer(in_ch, ch, k, s, p, transposed=False,
                                      gating="sigmoid" if i == 0 else gating, pixel_norm=pixel_norm))
            length = (length + 2 * p - k) // s + 1
            in_ch = ch
        if length != 1:
            raise ValueError(f"the encoder reduces {window} samples to {length} frames, not 1: "
                             "adjust kernels, strides or padding")
        self.encoder = nn.Sequential(*encoder)
        self.to_code = nn.Linear(in_ch, latent, bias=False)

        decoder, in_ch = [], latent
        mirrored = list(zip(encoder_kernels, encoder_strides, encoder_padding))[::-1]
        for ch, (k, s, p) in zip(decoder_channels, mirrored[:-1]):
            decoder.append(GatedLayer(in_ch, ch, k, s, p, transposed=True, gating=gating, pixel_norm=pixel_norm))
            length = (length - 1) * s - 2 * p + k
            in_ch = ch
        k, s, p = mirrored[-1]
        decoder.append(GatedLayer(in_ch, head_channels, k, s, p, transposed=True,
                                  gating="sigmoid" if gating != "none" else "none", pixel_norm=False))
        length = (length - 1) * s - 2 * p + k
        if length != window:
            raise ValueError(f"the decoder produces {length} samples, not {window}")
        self.decoder = nn.Sequential(*decoder)

        with torch.no_grad():
            for param in self.parameters():
                param.normal_(0.0, init_std)

    def set_conv_impl(self, impl: ConvImpl) -> "GatedConvAutoencoder":
        """Every gated layer's convolution as torch's conv ("native") or as matrix multiplies ("gemm").

        The parameters, and so checkpoints and parameter counts, stay the same; set it
        before ``torch.compile``. Raises ValueError, naming the first layer that cannot.
        """
        layers = [(name, m) for name, m in self.named_modules() if isinstance(m, GatedLayer)]
        for name, layer in layers:  # check every layer before switching any
            layer.check_conv_impl(impl, name)
        for name, layer in layers:
            layer.set_conv_impl(impl, name)
        return self

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x.unsqueeze(1))
        return self.to_code(h.squeeze(-1))

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code.unsqueeze(-1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def build_gated_conv(model_config, window: int, head_channels: int = 1) -> GatedConvAutoencoder:
    """The autoencoder of a ``ModelConfig`` (``benchmark.config``) for a loss's head."""
    return GatedConvAutoencoder(
        window=window,
        encoder_channels=model_config.encoder_channels,
        encoder_kernels=model_config.encoder_kernels,
        encoder_strides=model_config.encoder_strides,
        encoder_padding=model_config.encoder_padding,
        latent=model_config.latent,
        decoder_channels=model_config.decoder_channels,
        head_channels=head_channels,
        gating=model_config.gating,
        pixel_norm=model_config.pixel_norm,
        init_std=model_config.init_std,
    )


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def training_flops_per_window(model: GatedConvAutoencoder) -> float:
    """FLOPs of one training step per window: 3× the forward (forward, two backward GEMMs)."""
    forward = 0
    length = model.window
    for layer in model.encoder:
        conv = layer.conv
        length = (length + 2 * conv.padding[0] - conv.kernel_size[0]) // conv.stride[0] + 1
        n_convs = 1 if layer.gate is None else 2
        forward += n_convs * 2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] * length
    forward += 2 * model.to_code.in_features * model.to_code.out_features
    for layer in model.decoder:
        conv = layer.conv
        n_convs = 1 if layer.gate is None else 2
        forward += n_convs * 2 * conv.in_channels * conv.out_channels * conv.kernel_size[0] * length
        length = (length - 1) * conv.stride[0] - 2 * conv.padding[0] + conv.kernel_size[0]
    return 3.0 * forward
