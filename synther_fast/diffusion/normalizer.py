"""Per-dimension normalisation of transition rows, fitted from the data and stored with the model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from synther_fast.replay.layout import TransitionLayout

KINDS = ("standard", "minmax")
_CONSTANT = 1e-6  # a column whose spread is below this is treated as constant (scale 1)


class Normalizer(nn.Module):
    """x' = (x - loc) / scale per column; skipped columns keep loc 0, scale 1.

    'standard': loc = mean, scale = std. 'minmax': loc = (max + min) / 2, scale = (max - min) / 2,
    so the data lands in [-1, 1]. Constant columns get scale 1 (no division by zero).
    """

    def __init__(self, kind: str, width: int, skip_columns: tuple[int, ...] = ()) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"normaliser kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.skip_columns = tuple(sorted(set(skip_columns)))
        self.register_buffer("loc", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))

    @classmethod
    def for_layout(cls, kind: str, layout: TransitionLayout, skip_reward: bool = False,
                   normalize_terminal: bool = False) -> Normalizer:
        """The published choice: the terminal column is never normalised (unless asked); the
        reward on request."""
        skip = []
        if layout.terminal is not None and not normalize_terminal:
            skip.append(layout.terminal.start)
        if skip_reward:
            skip.append(layout.reward.start)
        return cls(kind, layout.width, tuple(skip))

    def fit(self, rows: np.ndarray) -> Normalizer:
        data = np.asarray(rows, dtype=np.float64)
        if self.kind == "standard":
            loc, spread = data.mean(axis=0), data.std(axis=0)
        else:
            lo, hi = data.min(axis=0), data.max(axis=0)
            loc, spread = (hi + lo) / 2, (hi - lo) / 2
        scale = np.where(spread > _CONSTANT, spread, 1.0)
        loc[list(self.skip_columns)] = 0.0
        scale[list(self.skip_columns)] = 1.0
        self.loc.copy_(torch.from_numpy(loc))
        self.scale.copy_(torch.from_numpy(scale))
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.loc) / self.scale

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.loc
