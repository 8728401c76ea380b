"""earshot: what does my loss function do to the sound?

The public API, for scripts and notebooks; each name is imported on first use, so
``import earshot`` stays cheap. The packages themselves are ``earshot.models``,
``earshot.losses``, ``earshot.benchmark``, ``earshot.results`` and
``earshot.listening_app``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

# A source checkout used without installing (PYTHONPATH=the checkout, as on an offline GPU
# machine): the packages are the folders beside this one, which the install maps by package-dir.
_CHECKOUT = Path(__file__).resolve().parent.parent
if (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "models" / "autoencoder.py").is_file():
    __path__.append(str(_CHECKOUT))  # noqa: F821 (a package's own __path__)

_API = {
    "load_config": "earshot.benchmark.config",
    "RunConfig": "earshot.benchmark.config",
    "run_grid": "earshot.benchmark.train.runner",
    "evaluate_run": "earshot.benchmark.evaluate.reconstruct",
    "build_loss": "earshot.losses",
    "build_model": "earshot.models",
    "load_run": "earshot.results.store",
    "RunDir": "earshot.results.rundir",
    "write_report": "earshot.results.report",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'earshot' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
