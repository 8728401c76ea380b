"""Losses on a distribution over sample values: mu-law classes and a mixture of logistics.

The decoder head here is not a waveform but the parameters of a distribution
per sample; ``decode`` turns it back into one (an expectation, the most likely
value, or a sample).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from earshot.losses.base import Loss, register

MU = 255  # WaveNet's mu-law constant: 256 levels
MULAW_CLASSES = MU + 1
DMOL_MIXTURES = 10  # K, as in PixelCNN++ and most WaveNet vocoders
DMOL_CLASSES = 256  # 8-bit bins, as mulaw-ce (65 536 with log_scale_min -16 for 16-bit)
DMOL_LOG_SCALE_MIN = -7.0  # r9y9's clamp for 8 bits: scale >= e^-7, about a quarter of a bin
CDF_DELTA_MIN = 1e-5  # below this bin probability, use the density at the centre (r9y9, PixelCNN++)
LOG_FLOOR = 1e-12  # clamp before log of a bin probability, as r9y9

Decoding = Literal["mean", "argmax"]


def mulaw_encode(x: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Companded signal ``sign(x) ln(1 + mu|x|) / ln(1 + mu)`` in [-1, 1], same shape as ``x``."""
    x = x.clamp(-1.0, 1.0)
    return torch.sign(x) * torch.log1p(mu * x.abs()) / math.log1p(mu)


def mulaw_expand(y: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Inverse of ``mulaw_encode``: ``sign(y) ((1 + mu)^|y| − 1) / mu``."""
    return torch.sign(y) * torch.expm1(y.abs() * math.log1p(mu)) / mu


def mulaw_quantize(x: torch.Tensor, mu: int = MU) -> torch.Tensor:
    """Class index in ``0..mu`` (int64) of each sample: the nearest of ``mu + 1`` companded levels.

    Rounds (WaveNet's reference code truncates), so each class's centre is the
    value it decodes to and the error is at most half a level.
    """
    return torch.round((mulaw_encode(x, mu) + 1) / 2 * mu).long()


def mulaw_levels(mu: int = MU, device=None) -> torch.Tensor:
    """Companded value of each class, ``(mu + 1,)`` from -1 to 1."""
    return torch.linspace(-1.0, 1.0, mu + 1, device=device)


@register
class MuLawCELoss(Loss):
    """Softmax cross-entropy over 256 mu-law classes per sample.

    See [van den Oord et al., 2016](https://arxiv.org/abs/1609.03499) (WaveNet):
    the target is companded with mu = 255 and quantised to 256 classes; the head
    holds one logit per class per sample.

    Args:
        sample_rate: samples per second (unused: the loss is per sample).
        decoding: ``"mean"`` (default): the softmax's expected companded value,
            then mu-law expansion, which is smooth; ``"argmax"``: the most likely
            class's value, then expansion.

    Shapes: ``head`` ``(batch, 256, samples)`` logits, ``target``
    ``(batch, samples)`` in [-1, 1]; ``decode`` returns ``(batch, samples)``.
    """

    name = "mulaw-ce"
    description = "cross-entropy over 256 mu-law classes per sample (WaveNet)"
    head_channels = MULAW_CLASSES
    head_kind = "mu-law logits"

    def __init__(self, sample_rate: int, decoding: Decoding = "mean") -> None:
        super().__init__(sample_rate)
        if decoding not in ("mean", "argmax"):
            raise ValueError(f"decoding must be 'mean' or 'argmax', not {decoding!r}")
        self.decoding = decoding
        self.register_buffer("levels", mulaw_levels(), persistent=False)

    def extra_repr(self) -> str:
        return f"mu={MU}, decoding={self.decoding!r}"

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=head.device.type, enabled=False):
            return F.cross_entropy(head.float(), mulaw_quantize(target.detach().float()))

    def decode(self, head: torch.Tensor) -> torch.Tensor:
        head = head.float()
        if self.decoding == "argmax":
            companded = self.levels[head.argmax(dim=1)]
        else:
            companded = torch.einsum("bct,c->bt", torch.softmax(head, dim=1), self.levels)
        return mulaw_expand(companded)


def _split_mixture(head: torch.Tensor, log_scale_min: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits, means, clamped log scales), each ``(batch, K, samples)``, from a ``(batch, 3K, samples)`` head."""
    logits, means, log_scales = head.float().chunk(3, dim=1)
    return logits, means, log_scales.clamp(min=log_scale_min)


def dmol_log_likelihood(head: torch.Tensor, target: torch.Tensor, classes: int = DMOL_CLASSES,
                        log_scale_min: float = DMOL_LOG_SCALE_MIN) -> torch.Tensor:
    """Log probability of each target sample's bin under the mixture, ``(batch, samples)``.

    See r9y9/wavenet_vocoder ``discretized_mix_logistic_loss`` (from PixelCNN++):
    a bin is ``[y − 1/(classes−1), y + 1/(classes−1)]`` around its centre; the
    lowest bin takes everything below (the CDF at its top edge), the highest
    everything above; where a bin's probability is at most 1e-5 the density at
    its centre times the bin width stands in. The target is first rounded to the
    nearest of ``classes`` centres in [-1, 1], so the edge bins are recognised
    by index rather than r9y9's ``y > 0.999`` (the same for 8 bits).

    Args:
        head: ``(batch, 3K, samples)``: logits, means, log scales.
        target: ``(batch, samples)`` in [-1, 1].
    """
    logits, means, log_scales = _split_mixture(head, log_scale_min)
    steps = classes - 1
    index = torch.round((target.detach().float().clamp(-1, 1) + 1) / 2 * steps)
    y = (index / steps * 2 - 1)[:, None]
    half_width = 1.0 / steps
    centred = y - means
    inv_scale = torch.exp(-log_scales)
    plus_in = inv_scale * (centred + half_width)
    min_in = inv_scale * (centred - half_width)
    log_cdf_plus = plus_in - F.softplus(plus_in)  # log sigmoid: the lowest bin
    log_one_minus_cdf_min = -F.softplus(min_in)  # log(1 − sigmoid): the highest bin
    cdf_delta = torch.sigmoid(plus_in) - torch.sigmoid(min_in)
    mid_in = inv_scale * centred
    log_pdf_mid = mid_in - log_scales - 2.0 * F.softplus(mid_in)
    # The density times the bin width 2/(classes−1), when the CDF difference underflows.
    interior = torch.where(cdf_delta > CDF_DELTA_MIN, torch.log(cdf_delta.clamp(min=LOG_FLOOR)),
                           log_pdf_mid - math.log(steps / 2))
    top, bottom = (index == steps)[:, None], (index == 0)[:, None]
    log_probs = torch.where(bottom, log_cdf_plus, torch.where(top, log_one_minus_cdf_min, interior))
    return torch.logsumexp(log_probs + F.log_softmax(logits, dim=1), dim=1)


@register
class DMoLLoss(Loss):
    """Negative log-likelihood of a discretised mixture of logistics per sample.

    See [Salimans et al., 2017](https://arxiv.org/abs/1701.05517) (PixelCNN++)
    and r9y9/wavenet_vocoder ``wavenet_vocoder/mixture.py`` (edge bins by the
    CDF, density fallback below 1e-5, log scale clamped). Defaults: K = 10
    components, 256 bins (8 bits, as ``mulaw-ce``) with the log-scale clamp at
    −7; for 16-bit bins use ``classes=65536, log_scale_min=-16``.

    Args:
        sample_rate: samples per second (unused: the loss is per sample).
        mixtures: K; the head has 3K channels (logits, means, log scales).
        classes: number of bins over [-1, 1].
        log_scale_min: lower clamp of the log scales.
        decoding: ``"mean"`` (default): the mixture's mean ``Σ π_k μ_k``;
            ``"sample"``: a draw (component, then logistic), from a generator
            seeded with ``seed`` when the loss is built, so a run's decoding is
            reproducible.
        seed: for ``decoding="sample"``.

    Shapes: ``head`` ``(batch, 3K, samples)``, ``target`` ``(batch, samples)``;
    returns the mean NLL in nats per sample. ``decode`` gives ``(batch, samples)``
    clamped to [-1, 1].
    """

    name = "dmol"
    description = "discretised mixture of 10 logistics per sample, NLL (PixelCNN++, WaveNet vocoders)"
    head_channels = 3 * DMOL_MIXTURES
    head_kind = "logistic mixture"

    def __init__(self, sample_rate: int, mixtures: int = DMOL_MIXTURES, classes: int = DMOL_CLASSES,
                 log_scale_min: float = DMOL_LOG_SCALE_MIN, decoding: Literal["mean", "sample"] = "mean",
                 seed: int = 0) -> None:
        super().__init__(sample_rate)
        self.head_kind, self.head_channels = self.head_spec(mixtures=mixtures, classes=classes, decoding=decoding)
        if decoding not in ("mean", "sample"):
            raise ValueError(f"decoding must be 'mean' or 'sample', not {decoding!r}")
        self.mixtures, self.classes = int(mixtures), int(classes)
        self.log_scale_min, self.decoding, self.seed = float(log_scale_min), decoding, int(seed)
        self._generators: dict[str, torch.Generator] = {}

    @classmethod
    def head_spec(cls, mixtures: int = DMOL_MIXTURES, classes: int = DMOL_CLASSES, **_) -> tuple[str, int]:
        if int(mixtures) < 1 or int(classes) < 2:
            raise ValueError(f"mixtures must be >= 1 and classes >= 2, not {mixtures} and {classes}")
        return cls.head_kind, 3 * int(mixtures)

    def extra_repr(self) -> str:
        return (f"mixtures={self.mixtures}, classes={self.classes}, log_scale_min={self.log_scale_min}, "
                f"decoding={self.decoding!r}")

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=head.device.type, enabled=False):
            return -dmol_log_likelihood(head, target, self.classes, self.log_scale_min).mean()

    def decode(self, head: torch.Tensor) -> torch.Tensor:
        logits, means, log_scales = _split_mixture(head, self.log_scale_min)
        if self.decoding == "mean":
            return (torch.softmax(logits, dim=1) * means).sum(dim=1).clamp(-1.0, 1.0)
        gen = self._generator(head.device)
        # Gumbel-max picks a component with probability softmax(logits).
        u = torch.rand(logits.shape, generator=gen, device=head.device).clamp(1e-5, 1 - 1e-5)
        pick = (logits - torch.log(-torch.log(u))).argmax(dim=1, keepdim=True)
        mean, log_scale = means.gather(1, pick)[:, 0], log_scales.gather(1, pick)[:, 0]
        v = torch.rand(mean.shape, generator=gen, device=head.device).clamp(1e-5, 1 - 1e-5)
        # Inverse CDF of the logistic distribution.
        return (mean + torch.exp(log_scale) * (torch.log(v) - torch.log1p(-v))).clamp(-1.0, 1.0)

    def _generator(self, device: torch.device) -> torch.Generator:
        key = str(device)
        if key not in self._generators:
            self._generators[key] = torch.Generator(device=device).manual_seed(self.seed)
        return self._generators[key]
