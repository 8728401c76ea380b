"""Every earshot loss behind one interface, and a registry by name."""

from losses.base import REGISTRY, Loss, UnknownLossError, build_loss, describe_losses, register
from losses import time as _time  # noqa: F401  (registers mse)
from losses import bark as _bark  # noqa: F401  (registers bark, bark-norm)

__all__ = ["REGISTRY", "Loss", "UnknownLossError", "build_loss", "describe_losses", "register"]
