"""Small helpers shared by the replay tests."""

from __future__ import annotations

import numpy as np

from synther_fast import TransitionLayout


def numbered_rows(start: int, n: int, layout: TransitionLayout) -> np.ndarray:
    """Rows whose every column holds the row's sequence number (exact in float32 below 2**24)."""
    return np.repeat(np.arange(start, start + n, dtype=np.float32)[:, None], layout.width, axis=1)


def random_rows(rng: np.random.Generator, n: int, layout: TransitionLayout) -> np.ndarray:
    return rng.normal(size=(n, layout.width)).astype(np.float32)
