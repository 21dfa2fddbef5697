"""Which conditions to generate at."""

from __future__ import annotations

import numpy as np


def top_fraction(scores: np.ndarray, fraction: float) -> np.ndarray:
    """The highest ``fraction`` of the scores (at least one): PGR's pool of generation conditions,
    from which each generated row's condition is drawn uniformly."""
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if scores.size == 0:
        raise ValueError("no scores to select from")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    count = max(1, int(fraction * scores.size))
    return np.sort(scores)[-count:]
