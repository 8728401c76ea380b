"""An adversarial loss that owns its discriminators and their optimiser.

The generator (the autoencoder) sees ``forward``: a reconstruction term, and
after the warm-up an adversarial term and feature matching. The discriminators
are updated in ``extra_step``, which the trainer calls after the generator's
backward pass; the trainer knows nothing about GANs. Discriminator weights are
submodules and their Adam state and step count are this module's extra state,
so both travel through ``state_dict`` into the job's checkpoint and back.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from earshot.losses.base import Loss, register
from earshot.losses.freq import MultiScaleMel

LEAK = 0.2  # LeakyReLU slope of MelGAN and HiFi-GAN discriminators
HIFIGAN_PERIODS = (2, 3, 5, 7, 11)
# MelGAN's scale discriminator starts at 16 channels and grows 4x per strided
# layer up to 1024; capped at 256 here, its parameters drop from 4.2 M to 0.5 M
# per scale, which a 2-core CPU can train beside the autoencoder.
MSD_CHANNELS = 16
MSD_MAX_CHANNELS = 256
MSD_SCALES = 3  # the waveform, then average-pooled by 2 and by 4
MSD_STRIDED_LAYERS = 4  # stride 4 each: a 2048-sample window ends as 8 frames
MPD_CHANNELS = (16, 64, 128, 256)  # HiFi-GAN: 32, 128, 512, 1024

Objective = Literal["lsgan", "hinge"]
Reconstruction = Literal["mel", "mse"]


class ScaleDiscriminator(nn.Module):
    """One MelGAN scale discriminator: grouped strided convolutions on a waveform.

    See [Kumar et al., 2019](https://arxiv.org/abs/1910.06711) (MelGAN,
    ``NLayerDiscriminator``): a 15-tap convolution, ``layers`` strided grouped
    convolutions (kernel 41, stride 4, groups of 4 input channels), a 5-tap and
    a 3-tap convolution to one score per frame; weight norm, LeakyReLU 0.2.

    Shapes: ``(batch, 1, samples)`` → list of feature maps, the last the scores
    ``(batch, 1, frames)``.
    """

    def __init__(self, channels: int = MSD_CHANNELS, max_channels: int = MSD_MAX_CHANNELS,
                 layers: int = MSD_STRIDED_LAYERS, stride: int = 4) -> None:
        super().__init__()
        convs = [nn.Sequential(nn.ReflectionPad1d(7), weight_norm(nn.Conv1d(1, channels, 15)))]
        width = channels
        for _ in range(layers):
            wider = min(width * stride, max_channels)
            convs.append(weight_norm(nn.Conv1d(width, wider, stride * 10 + 1, stride, stride * 5,
                                               groups=max(1, width // 4))))
            width = wider
        wider = min(width * 2, max_channels)
        convs.append(weight_norm(nn.Conv1d(width, wider, 5, 1, 2)))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv1d(wider, 1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return _feature_maps(self.convs, self.post, x)


def _feature_maps(convs: nn.ModuleList, post: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every LeakyReLU'd convolution's output, then ``post``'s: the scores last."""
    features = []
    for conv in convs:
        x = F.leaky_relu(conv(x), LEAK)
        features.append(x)
    features.append(post(x))
    return features


class PeriodDiscriminator(nn.Module):
    """One HiFi-GAN period discriminator: 2-D convolutions over the waveform folded by ``period``.

    See [Kong et al., 2020](https://arxiv.org/abs/2010.05646) (HiFi-GAN,
    ``DiscriminatorP``): kernels (5, 1) with stride (3, 1), then (5, 1) stride 1
    and a (3, 1) output; weight norm, LeakyReLU 0.2.

    Shapes: ``(batch, 1, samples)`` → list of feature maps, the last the scores.
    """

    def __init__(self, period: int, channels: Sequence[int] = MPD_CHANNELS) -> None:
        super().__init__()
        self.period = period
        widths = [1, *channels]
        convs = [weight_norm(nn.Conv2d(a, b, (5, 1), (3, 1), (2, 0))) for a, b in zip(widths[:-1], widths[1:])]
        convs.append(weight_norm(nn.Conv2d(widths[-1], widths[-1], (5, 1), 1, (2, 0))))
        self.convs = nn.ModuleList(convs)
        self.post = weight_norm(nn.Conv2d(widths[-1], 1, (3, 1), 1, (1, 0)))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        batch, channels, samples = x.shape
        if samples % self.period:
            x = F.pad(x, (0, self.period - samples % self.period), mode="reflect")
        x = x.view(batch, channels, -1, self.period)
        return _feature_maps(self.convs, self.post, x)


class Discriminators(nn.Module):
    """MelGAN's multi-scale discriminators, optionally with HiFi-GAN's multi-period ones.

    Shapes: ``forward(x (batch, samples))`` → one list of feature maps per
    discriminator, the last map of each its scores.
    """

    def __init__(self, scales: int = MSD_SCALES, channels: int = MSD_CHANNELS, max_channels: int = MSD_MAX_CHANNELS,
                 periods: Sequence[int] = (), period_channels: Sequence[int] = MPD_CHANNELS) -> None:
        super().__init__()
        self.scales = nn.ModuleList([ScaleDiscriminator(channels, max_channels) for _ in range(scales)])
        self.periods = nn.ModuleList([PeriodDiscriminator(p, period_channels) for p in periods])

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        x = x[:, None]
        out = [d(x) for d in self.periods]
        for i, d in enumerate(self.scales):
            if i:
                # MelGAN's downsampling between scales.
                x = F.avg_pool1d(x, 4, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


def _feature_matching(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    """HiFi-GAN's feature matching: Σ over discriminators and hidden layers of mean L1."""
    total = fake[0][0].new_zeros(())
    for fake_maps, real_maps in zip(fake, real):
        for f, r in zip(fake_maps[:-1], real_maps[:-1]):
            total = total + F.l1_loss(f, r.detach())
    return total


@register
class AdversarialLoss(Loss):
    """Reconstruction + adversarial + feature-matching loss with its own discriminators.

    See [Kumar et al., 2019](https://arxiv.org/abs/1910.06711) (MelGAN:
    multi-scale discriminator, hinge loss, feature matching) and [Kong et al.,
    2020](https://arxiv.org/abs/2010.05646) (HiFi-GAN: multi-period
    discriminator, least squares, feature matching ×2, mel L1 ×45, Adam
    betas (0.8, 0.99)). Defaults follow HiFi-GAN's objective on MelGAN's
    (narrowed) scale discriminators only; ``periods=[2, 3, 5, 7, 11]`` adds the
    period discriminators.

    The generator loss is ``recon_weight · recon`` during the first
    ``warmup_steps`` training steps, then adds ``adv_weight · adversarial +
    fm_weight · feature matching``. The discriminators are updated in
    ``extra_step`` from the step after the warm-up (a discriminator trained
    against a generator that ignores it would only race ahead).

    Args:
        sample_rate: samples per second.
        objective: ``"lsgan"`` (least squares) or ``"hinge"``.
        recon: ``"mel"`` (the ``mel`` loss's multi-scale log-mel L1) or ``"mse"``.
        recon_weight, adv_weight, fm_weight: term weights.
        warmup_steps: training steps with the reconstruction term alone.
        scales: MelGAN scale discriminators (each on a 2x average-pooled input).
        channels, max_channels: width of their first layer and cap.
        periods: HiFi-GAN period discriminators, e.g. ``[2, 3, 5, 7, 11]`` (default none).
        period_channels: their widths.
        lr, betas: the discriminators' Adam.

    Shapes: ``head`` ``(batch, 1, samples)``, ``target`` ``(batch, samples)``.
    """

    name = "adversarial"
    description = "mel L1 x45 + LSGAN + feature matching x2, MelGAN multi-scale discriminator (own Adam)"

    def __init__(self, sample_rate: int, objective: Objective = "lsgan", recon: Reconstruction = "mel",
                 recon_weight: float = 45.0, adv_weight: float = 1.0, fm_weight: float = 2.0, warmup_steps: int = 0,
                 scales: int = MSD_SCALES, channels: int = MSD_CHANNELS, max_channels: int = MSD_MAX_CHANNELS,
                 periods: Sequence[int] = (), period_channels: Sequence[int] = MPD_CHANNELS, lr: float = 2e-4,
                 betas: Sequence[float] = (0.8, 0.99)) -> None:
        super().__init__(sample_rate)
        if objective not in ("lsgan", "hinge"):
            raise ValueError(f"objective must be 'lsgan' or 'hinge', not {objective!r}")
        if recon not in ("mel", "mse"):
            raise ValueError(f"recon must be 'mel' or 'mse', not {recon!r}")
        if scales < 0 or (scales == 0 and not periods):
            raise ValueError("needs at least one discriminator (scales >= 1 or some periods)")
        self.objective, self.recon = objective, recon
        self.recon_weight, self.adv_weight, self.fm_weight = float(recon_weight), float(adv_weight), float(fm_weight)
        self.warmup_steps = int(warmup_steps)
        self.mel = MultiScaleMel(sample_rate) if recon == "mel" else None
        self.discriminators = Discriminators(int(scales), int(channels), int(max_channels),
                                             [int(p) for p in periods], [int(c) for c in period_channels])
        self.optimizer = torch.optim.Adam(self.discriminators.parameters(), lr=float(lr),
                                          betas=(float(betas[0]), float(betas[1])))
        self.steps = 0  # training steps seen (extra_step calls)

    def extra_repr(self) -> str:
        return (f"objective={self.objective!r}, recon={self.recon!r}, recon_weight={self.recon_weight}, "
                f"adv_weight={self.adv_weight}, fm_weight={self.fm_weight}, warmup_steps={self.warmup_steps}")

    @property
    def adversarial_active(self) -> bool:
        return self.steps >= self.warmup_steps

    def reconstruction(self, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.mel is not None:
            return self.mel.distance(x, target)
        return F.mse_loss(x, target.detach())

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=head.device.type, enabled=False):
            x, target = head[:, 0].float(), target.detach().float()
            loss = self.recon_weight * self.reconstruction(x, target)
            if not self.adversarial_active:
                return loss
            # The generator's gradient flows through the discriminators, whose
            # own weights need none here: they are updated in extra_step.
            self.discriminators.requires_grad_(False)
            try:
                fake = self.discriminators(x)
                with torch.no_grad():
                    real = self.discriminators(target)
            finally:
                self.discriminators.requires_grad_(True)
            if self.objective == "lsgan":
                adversarial = sum(torch.mean((maps[-1] - 1) ** 2) for maps in fake)
            else:
                adversarial = sum(-torch.mean(maps[-1]) for maps in fake)
            return loss + self.adv_weight * adversarial + self.fm_weight * _feature_matching(fake, real)

    def discriminator_loss(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """The discriminators' objective on waveforms ``(batch, samples)``; fake is detached."""
        total = fake.new_zeros(())
        for fake_maps, real_maps in zip(self.discriminators(fake.detach()), self.discriminators(real)):
            f, r = fake_maps[-1], real_maps[-1]
            if self.objective == "lsgan":
                total = total + torch.mean((r - 1) ** 2) + torch.mean(f ** 2)
            else:
                total = total + torch.mean(F.relu(1 - r)) + torch.mean(F.relu(1 + f))
        return total

    def extra_step(self, head: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
        """One Adam step of the discriminators (after the warm-up); counts the training step."""
        self.steps += 1
        if self.steps <= self.warmup_steps or not torch.is_grad_enabled():
            return {}
        with torch.autocast(device_type=head.device.type, enabled=False):
            loss = self.discriminator_loss(head[:, 0].detach().float(), target.detach().float())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)  # frees the gradients until the next step
        # One device sync per step on a GPU, small beside the discriminators' own step.
        return {"d_loss": loss.item()}

    def get_extra_state(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "steps": self.steps}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.steps = int(state["steps"])
