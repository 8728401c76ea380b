"""Evaluation: reconstruct held-out excerpts (``reconstruct``) and measure them (``metrics``)."""
