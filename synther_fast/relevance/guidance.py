"""What a guided online refit conditions on (PGR, Wang et al. 2024): a relevance score for every
real row, and the pool of generation conditions (the top ``guided.top_frac`` of the scores).

``curiosity`` scores rows by an ICM model that learns from one real batch per learner step;
``td`` by the current critics' TD errors; ``none`` is SynthER's unconditional refit.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

from synther_fast.common.rng import Stream, stream_seed
from synther_fast.config import SynthERConfig
from synther_fast.relevance.curiosity import Curiosity
from synther_fast.relevance.selection import top_fraction
from synther_fast.relevance.td import td_errors
from synther_fast.replay import ReplayBuffer, TransitionLayout


class RefitGuidance:
    def __init__(self, synther: SynthERConfig, layout: TransitionLayout, agent: Any, batch_size: int,
                 device: torch.device, seed: int) -> None:
        self.kind, self.top_frac = synther.guidance, synther.guided.top_frac
        self.layout, self.agent, self.batch_size = layout, agent, batch_size
        self.curiosity: Curiosity | None = None
        if self.kind == "curiosity":
            guided = synther.guided
            self.curiosity = Curiosity(layout, guided.curiosity_hidden, guided.curiosity_lr, device,
                                       seed=stream_seed(seed, Stream.CURIOSITY_INIT))
            self.rng = np.random.default_rng(stream_seed(seed, Stream.CURIOSITY_BATCHES))

    def learn(self, real: ReplayBuffer) -> None:
        """The curiosity model's update on one real batch (nothing for the other kinds)."""
        if self.curiosity is not None:
            index = self.rng.integers(0, len(real), self.batch_size)
            self.curiosity.update(real.storage()[index])

    def conditions(self, real_rows: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(scores of the rows, pool of generation conditions); (None, None) without guidance."""
        if self.kind == "none":
            return None, None
        if self.kind == "curiosity":
            scores = self.curiosity.score(real_rows)
        else:  # "td"
            scores = td_errors(self.agent, real_rows, self.layout)
        return scores, top_fraction(scores, self.top_frac)

    def state_dict(self) -> dict[str, Any]:
        """Checkpoint entries (none without a curiosity model)."""
        if self.curiosity is None:
            return {}
        return {"curiosity": self.curiosity.state_dict(), "curiosity_rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, payload: dict[str, Any]) -> None:
        if self.curiosity is not None:
            self.curiosity.load_state_dict(payload["curiosity"])
            self.rng.bit_generator.state = json.loads(payload["curiosity_rng"])
