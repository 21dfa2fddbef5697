"""Returns-to-go, the offline relevance (return-conditioned generation as in GTA, Lee et al. 2024)."""

from __future__ import annotations

import numpy as np


def returns_to_go(rewards: np.ndarray, ends: np.ndarray, discount: float = 0.99) -> np.ndarray:
    """G_t = r_t + discount G_{t+1} within each episode; ``ends`` marks each episode's last row
    (terminal or time-out). Rows after the last end (a cut episode) sum to the end of the data."""
    rewards = np.asarray(rewards, dtype=np.float64).reshape(-1)
    ends = np.asarray(ends).reshape(-1) > 0
    if rewards.shape != ends.shape:
        raise ValueError(f"rewards {rewards.shape} and episode ends {ends.shape} must have one value per row")
    if not 0.0 <= discount <= 1.0:
        raise ValueError(f"discount must lie in [0, 1], got {discount}")
    out = np.empty_like(rewards)
    running = 0.0
    for t in range(len(rewards) - 1, -1, -1):  # a Python loop: ~1 s per million rows, once per run
        if ends[t]:
            running = 0.0
        running = rewards[t] + discount * running
        out[t] = running
    return out.astype(np.float32)


def return_target(returns: np.ndarray, quantile: float = 0.9, amplify: float = 1.0) -> float:
    """The condition to generate at: the ``quantile`` of the rows' returns-to-go, times ``amplify``
    (GTA's amplification: above 1 asks for returns beyond the data's)."""
    value = float(np.quantile(np.asarray(returns, dtype=np.float64), quantile))
    return value * amplify if value >= 0 else value / amplify  # amplify toward higher returns either way
