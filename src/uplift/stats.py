"""Small posterior summaries shared by every stage (thin wrappers over ArviZ)."""

from __future__ import annotations

import numpy as np
from arviz_stats.base import array_stats


def hdi(draws: np.ndarray, prob: float, axis: int = 0) -> np.ndarray:
    """Highest-density interval along ``axis``; last dimension of the result is (low, high)."""
    draws = np.asarray(draws, dtype=float)
    return np.asarray(array_stats.hdi(draws, prob, axis=axis))
