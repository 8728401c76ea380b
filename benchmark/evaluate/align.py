"""Aligning decoded audio with its reference: a constant delay found by cross-correlation, then lengths.

A system's decoder may delay its output (an encoder's look-ahead, a decoder's priming) by a
constant number of samples. :func:`estimate_delay` finds the one lag, within a bound, at which
the decoded files agree best with their references (the cross-correlations of every file,
each normalised, summed), and :func:`remove_delay` shifts a file by it.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft


def estimate_delay(pairs: list[tuple[np.ndarray, np.ndarray]], max_lag: int) -> int:
    """Samples by which the decoded signals lag their references (negative: they lead), at most ``max_lag``.

    ``pairs``: (reference, decoded) per file, each 1-D at one rate. Every pair's cross-correlation over
    lags −``max_lag``…``max_lag`` is normalised by the two signals' norms and the sums compared, so each
    file counts alike whatever its level or length. 0 when there is nothing to correlate.
    """
    lags = np.arange(-max_lag, max_lag + 1)
    total = np.zeros(lags.size)
    for reference, decoded in pairs:
        reference = np.asarray(reference, dtype=np.float64)
        decoded = np.asarray(decoded, dtype=np.float64)
        norm = np.linalg.norm(reference) * np.linalg.norm(decoded)
        if norm == 0 or not np.isfinite(norm):
            continue
        size = sfft.next_fast_len(reference.size + decoded.size + 2 * max_lag)
        # correlation[k] = Σ decoded[n + k] · reference[n]; a negative k wraps to the end.
        correlation = sfft.irfft(sfft.rfft(decoded, size) * np.conj(sfft.rfft(reference, size)), size)
        total += correlation[lags % size] / norm
    if not total.any():
        return 0
    return int(lags[np.argmax(total)])


def remove_delay(decoded: np.ndarray, delay: int) -> np.ndarray:
    """``decoded`` moved ``delay`` samples earlier (its first ``delay`` samples dropped); a negative delay
    puts ``-delay`` samples of silence in front."""
    if delay >= 0:
        return decoded[delay:]
    return np.concatenate([np.zeros(-delay, dtype=decoded.dtype), decoded])
