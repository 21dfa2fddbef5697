"""Explicit augmentations of real rows, the baselines SynthER's synthetic data is compared with
(Gaussian noise and mixup; Lu et al. 2023 find synthetic rows far more dynamically accurate at a
comparable novelty), and a helper that tunes their strength to a target novelty."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from synther_fast.analysis.novelty import (
    nearest_neighbour,
    standardisation,
    standardise,
)
from synther_fast.replay.layout import TransitionLayout

Augmentation = Callable[..., np.ndarray]


def _continuous(layout: TransitionLayout) -> np.ndarray:
    """Columns an augmentation may change: all but the binary terminal."""
    keep = np.ones(layout.width, dtype=bool)
    if layout.terminal is not None:
        keep[layout.terminal] = False
    return keep


def gaussian_noise(rows: np.ndarray, strength: float, layout: TransitionLayout, *, seed: int = 0,
                   scale: np.ndarray | None = None) -> np.ndarray:
    """Rows plus Gaussian noise of std ``strength`` x the column's std (``scale``, default the rows')."""
    if strength < 0:
        raise ValueError(f"noise strength must be >= 0, got {strength}")
    rows = np.asarray(rows, dtype=np.float32)
    scale = rows.std(axis=0) if scale is None else np.asarray(scale)
    noise = np.random.default_rng(seed).standard_normal(rows.shape) * (strength * scale)
    noise[:, ~_continuous(layout)] = 0.0  # a terminal is 0 or 1; noise would only blur it
    return (rows + noise).astype(np.float32)


def state_noise(rows: np.ndarray, strength: float, layout: TransitionLayout, *, seed: int = 0,
                scale: np.ndarray | None = None) -> np.ndarray:
    """Gaussian noise on the states only (observation and next observation, independent draws), of
    std ``strength`` x the column's std (``scale``, default the rows'): S4RL's state augmentation,
    in units of the data's spread. Actions, rewards and terminals are kept."""
    if strength < 0:
        raise ValueError(f"noise strength must be >= 0, got {strength}")
    rows = np.asarray(rows, dtype=np.float32)
    scale = rows.std(axis=0) if scale is None else np.asarray(scale)
    states = np.zeros(layout.width, dtype=bool)
    states[layout.obs] = states[layout.next_obs] = True
    noise = np.random.default_rng(seed).standard_normal(rows.shape) * (strength * scale)
    noise[:, ~states] = 0.0
    return (rows + noise).astype(np.float32)


def mixup(rows: np.ndarray, strength: float, layout: TransitionLayout, *, seed: int = 0) -> np.ndarray:
    """Each row mixed with a random other one: (1 - l) x_i + l x_j with l ~ U(0, strength), strength <= 0.5.

    The row keeps its own terminal (it is the larger part of the mix).
    """
    if not 0 <= strength <= 0.5:
        raise ValueError(f"mixup strength must lie in [0, 0.5], got {strength}")
    rows = np.asarray(rows, dtype=np.float32)
    rng = np.random.default_rng(seed)
    partner = rows[rng.permutation(len(rows))]
    lam = rng.uniform(0.0, strength, (len(rows), 1))
    mixed = (1.0 - lam) * rows + lam * partner
    keep = ~_continuous(layout)
    mixed[:, keep] = rows[:, keep]
    return mixed.astype(np.float32)


AUGMENTATIONS: dict[str, tuple[Augmentation, float]] = {
    # name -> (function, largest strength searched)
    "noise": (gaussian_noise, 4.0),
    "state_noise": (state_noise, 4.0),
    "mixup": (mixup, 0.5),
}


def match_strength(kind: str, rows: np.ndarray, layout: TransitionLayout, target: float, *,
                   reference: np.ndarray | None = None, iterations: int = 14, rtol: float = 0.01,
                   max_rows: int = 1000, seed: int = 0, device: str | None = None) -> tuple[float, float]:
    """The strength at which augmentation ``kind`` reaches mean novelty ``target`` (bisection).

    Novelty is measured against ``reference`` (default: ``rows`` themselves) on at most
    ``max_rows`` of them, with one fixed seed so that novelty grows steadily with the strength.
    Stops once within ``rtol`` of the target. Returns (strength, achieved mean novelty); where even
    the largest strength falls short, that strength and its novelty.
    """
    if kind not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {kind!r}; choose from {sorted(AUGMENTATIONS)}")
    augment, high = AUGMENTATIONS[kind]
    reference = rows if reference is None else reference
    mean, std = standardisation(reference)
    ref = standardise(reference, mean, std)
    rng = np.random.default_rng(seed)
    sample = rows[rng.choice(len(rows), min(max_rows, len(rows)), replace=False)]
    # noise in units of the reference std (the units novelty is measured in); constant columns stay
    extra = {"scale": np.asarray(reference, dtype=np.float64).std(axis=0)} if kind in ("noise", "state_noise") else {}

    def mean_novelty(strength: float) -> float:
        out = augment(sample, strength, layout, seed=seed, **extra)
        return float(nearest_neighbour(standardise(out, mean, std), ref, device=device)[0].mean())

    low, at_high = 0.0, mean_novelty(high)
    if at_high <= target:
        return high, at_high
    best = (high, at_high)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        value = mean_novelty(mid)
        if abs(value - target) < abs(best[1] - target):
            best = (mid, value)
        if abs(value - target) <= rtol * target:
            break
        if value < target:
            low = mid
        else:
            high = mid
    return best
