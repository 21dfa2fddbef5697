"""Randomness without hidden global state: library objects never reseed torch's global generators.

Network initialisation draws from torch's global CPU generator (nn.Linear knows no other), so it
runs inside :func:`seeded`, which forks that generator and gives it back untouched afterwards.
Everything else takes an explicit ``torch.Generator`` or seed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with the global CPU generator seeded to ``seed``; restore it afterwards.

    Only the CPU generator: ``torch.manual_seed`` would also reseed every CUDA generator, which
    ``fork_rng(devices=[])`` neither saves nor restores (it reset other owners' CUDA streams).
    """
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(int(seed))
        yield


def fresh_seed() -> int:
    """A seed from the operating system's entropy (for calls made without one)."""
    return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)


def derived_seed(seed: int, *stream: int) -> int:
    """A seed for sub-stream ``stream`` of ``seed`` (numpy's SeedSequence hashing): independent
    streams that any process can compute alone, e.g. one per generation chunk, so a sharded run
    draws exactly the rows a single process would."""
    state = np.random.SeedSequence([int(seed), *map(int, stream)]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> 1)
