"""Every earshot loss behind one interface, and a registry by name.

``build_loss`` also takes weighted sums of registered names (``"mse+0.1*bark"``)
and per-loss keyword options; see ``losses.base`` and ``losses.combine``. A user's loss
comes through the same registry (an installed plugin's name, ``module:Class`` or
``file.py:Class``) and is checked on a random batch by ``check_loss`` (``losses.checks``).
"""

from earshot.losses.base import (
    REGISTRY,
    Loss,
    UnknownLossError,
    build_loss,
    check_all_options,
    describe_losses,
    head_spec,
    loss_class,
    loss_option_names,
    missing_requirements,
    options_key,
    register,
)
# Registered in the README's order, which is the order `--grid all-losses` trains them in.
from earshot.losses import time as _time  # noqa: F401  (registers mse)
from earshot.losses import bark as _bark  # noqa: F401  (registers bark, bark-norm)
from earshot.losses import categorical as _categorical  # noqa: F401  (registers mulaw-ce, dmol)
from earshot.losses import freq as _freq  # noqa: F401  (registers mrstft, mel)
from earshot.losses import adversarial as _adversarial  # noqa: F401  (registers adversarial)
from earshot.losses import feature as _feature  # noqa: F401  (registers crepe-feature)
from earshot.losses.combine import WeightedSum, check_expression, parse_expression
from earshot.losses.checks import check_loss

__all__ = ["REGISTRY", "Loss", "UnknownLossError", "WeightedSum", "build_loss", "check_all_options",
           "check_expression", "check_loss", "describe_losses", "head_spec", "loss_class", "loss_option_names",
           "missing_requirements", "options_key", "parse_expression", "register"]
