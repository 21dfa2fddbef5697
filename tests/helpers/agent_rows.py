"""Random transition rows for the agent tests: tanh-squashed actions, terminals 30% of the time."""

from __future__ import annotations

import torch

from synther_fast.replay import TransitionLayout
from synther_fast.replay.sampler import Batch


def agent_rows(n: int, seed: int, layout: TransitionLayout) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(n, Batch.row_width(layout), generator=g)
    data[:, layout.action] = data[:, layout.action].tanh()
    data[:, layout.terminal] = (torch.rand(n, 1, generator=g) < 0.3).float()
    return data
