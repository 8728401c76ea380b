"""Losses computed on raw samples."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from earshot.losses.base import Loss, register


@register
class MSELoss(Loss):
    """Mean squared error on samples: the seed's baseline."""

    name = "mse"
    description = "mean squared error on raw samples (the seed's baseline)"

    def forward(self, head: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(head[:, 0].float(), target.float())
