"""Quantiles of Prometheus histograms, read from a runner's own registry (no extras needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["histogram_quantile"]


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of cumulative ``(upper bound, count)`` buckets, as Prometheus does.

    Linear interpolation inside the bucket that holds the rank; the first
    bucket starts at 0; a rank in the ``+Inf`` bucket answers the highest
    finite bound. None when nothing was observed.
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower
