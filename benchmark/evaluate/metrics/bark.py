"""Distance in the seed's perceptual feature space (``losses.bark.BarkFeatures``)."""

from __future__ import annotations

import functools

import numpy as np

from earshot.benchmark.evaluate.metrics.signals import SAMPLE_RATE, prepare

# Bark distance (the seed's perceptual feature space, losses.bark).
BARK_WINDOW = 2048  # samples: the seed's training window, for which BarkFeatures
#   keeps its filters' spectra precomputed (5-10x faster than one pass over the clip)
BARK_BATCH = 16  # windows per forward pass: 2 x 16 x 512 x 1281 float32 features, ~84 MB


@functools.cache
def _bark_features(sample_rate: int):
    from earshot.losses.bark import BarkFeatures

    return BarkFeatures(sample_rate=sample_rate).eval()


def bark_distance(reference: np.ndarray, degraded: np.ndarray, sample_rate: int = SAMPLE_RATE) -> float:
    """Mean squared difference of the seed's bark features (``losses.bark.BarkFeatures``).

    The features are the seed's perceptual loss space: 512 bark-spaced FIR bands,
    ReLU, ``log(1 + 10000·x)``. The clip is cut into the seed's ``BARK_WINDOW``
    windows without overlap, the last one aligned to the clip's end (so every
    sample counts, the last few twice), each filtered as the training loss filters
    a window; the result is the bark loss averaged over the clip.

    Arguments:
        reference: original signal, 1-D float.
        degraded: reconstruction, same length.
        sample_rate: Hz.

    Returns:
        Mean squared error in log-feature units, 0 for identical signals; lower is better.

    Raises:
        MetricError: see :func:`check_signals`.
    """
    reference, degraded = prepare(reference, degraded)
    import torch

    features = _bark_features(sample_rate)
    samples = reference.shape[-1]
    window = min(BARK_WINDOW, samples)
    starts = list(range(0, samples - window + 1, window))
    if starts[-1] + window < samples:
        starts.append(samples - window)
    ref_windows = np.stack([reference[s : s + window] for s in starts]).astype(np.float32)
    deg_windows = np.stack([degraded[s : s + window] for s in starts]).astype(np.float32)
    squared_error, count = 0.0, 0
    with torch.no_grad():
        for first in range(0, len(starts), BARK_BATCH):
            batch = slice(first, first + BARK_BATCH)
            pair = torch.from_numpy(np.concatenate([ref_windows[batch], deg_windows[batch]]))
            ref_features, deg_features = features(pair).chunk(2)
            difference = ref_features - deg_features
            # Accumulate in float64: 10^7 float32 squares would lose digits.
            squared_error += float(torch.sum(difference * difference, dtype=torch.float64))
            count += difference.numel()
    return squared_error / count
