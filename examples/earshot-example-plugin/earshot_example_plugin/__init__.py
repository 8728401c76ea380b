"""An example earshot plugin: a loss (log-spectral-l1) and a model (tiny-codec)."""

__version__ = "0.1.0"
