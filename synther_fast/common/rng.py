"""Randomness without hidden global state: library objects never reseed torch's global generators.

Network initialisation draws from torch's global CPU generator (nn.Linear knows no other), so it
runs inside :func:`seeded`, which forks that generator and gives it back untouched afterwards.
Everything else takes an explicit ``torch.Generator`` or seed.

Every random draw of a run comes from the run's one seed through :class:`Stream`, the one table
of sub-stream ids: a part draws from ``derived_seed(seed, Stream.ITS_OWN, *index)``, never from
the bare seed nor from a number written at its call site. The ids are unique across the whole
table, so no two parts share a stream even when they are handed the same seed (before this
table, offline generation chunk 0 drew the agents' initialisation stream). Measurement tools
(synther_fast.analysis) take their own ``seed`` argument for subsampling; they are not part of a
run's randomness.
"""

from __future__ import annotations

import contextlib
import enum
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


class Stream(enum.IntEnum):
    """The sub-stream ids of :func:`derived_seed`, one per consumer. Values are part of every
    run's reproducibility: never renumber or reuse one (append new ids)."""

    # -- of a run's seed ---------------------------------------------------------------------
    COLLECT = 1
    """a collected dataset (random or policy rollouts, or the SAC run of collect_method 'sac')"""
    SUBSET = 2
    """the episodes a reduced dataset keeps (OfflineConfig.subset, OfflineConfig.cut)"""
    BATCHES = 3
    """the mixed sampler's batch indices (offline arms, the online learner)"""
    EVALUATION = 4
    """evaluation episodes' start states: (EVALUATION, evaluation, episode)"""
    FIT = 5
    """the SynthER fit seed where synther.seed is None (offline; online the base of every refit)"""
    GENERATION = 6
    """the offline run's synthetic rows (the generation seed)"""
    REFIT_FIT = 7
    """online refit k's fit seed: (REFIT_FIT, k) of the fit base"""
    REFIT_GENERATION = 8
    """online refit k's generation seed: (REFIT_GENERATION, k)"""
    EPISODES = 9
    """environment seed of episode k of an online run or a rollout: (EPISODES, k)"""
    EXPLORATION = 10
    """uniform random actions before learning starts, and rollouts' action noise"""
    CURIOSITY_INIT = 11
    """the curiosity model's initial weights (guided online refits)"""
    CURIOSITY_BATCHES = 12
    """the curiosity model's training batches"""
    AUGMENTATION = 13
    """an offline augmentation arm's rows: (AUGMENTATION, arm index) (which real rows, the noise or partners)"""
    # -- of an agent's seed (the run's seed) --------------------------------------------------
    AGENT_INIT = 20
    """weight initialisation"""
    AGENT_NOISE = 21
    """the update's noise (target-policy smoothing, SAC's sampled actions)"""
    AGENT_ACT = 22
    """acting with sampled actions when the update is captured: (AGENT_ACT[, updates])"""
    # -- of a SynthER model's fit seed --------------------------------------------------------
    DENOISER_INIT = 30
    """the denoiser's initial weights and frozen time frequencies"""
    DIFFUSION_TRAINING = 31
    """the fit's batch indices, noise levels, noise and condition dropout"""
    TERMINATION = 32
    """the terminal classifier (generation.terminals 'classifier')"""
    # -- of a generation seed -----------------------------------------------------------------
    CHUNK = 40
    """chunk k's sampler noise: (CHUNK, k)"""
    CHUNK_MATCH = 41
    """chunk k's thinning to the data's terminal rate"""
    CHUNK_TOPUP = 42
    """chunk k's top-up draw j: (CHUNK_TOPUP, k, j)"""
    CONDITIONS = 43
    """a guided draw's conditions, of the draw's own seed"""
    # -- of a device generator's seed ---------------------------------------------------------
    RESEED = 50
    """a device generator restored from a checkpoint whose state cannot be loaded: (RESEED, step)"""


def stream_seed(seed: int, stream: Stream, *index: int) -> int:
    """``derived_seed(seed, stream, *index)`` for a stream of the table (a plain int is refused, so a
    call site cannot invent a number of its own)."""
    if not isinstance(stream, Stream):
        raise TypeError(f"stream must be a synther_fast.common.rng.Stream, got {stream!r}")
    return derived_seed(seed, int(stream), *index)


def environment_seed(seed: int, stream: Stream, *index: int) -> int:
    """A stream's seed as an environment takes it (below 2**32: dm_control's generators)."""
    return stream_seed(seed, stream, *index) % 2**32


def fit_seed(run_seed: int, synther_seed: int | None) -> int:
    """The seed of a SynthER fit: ``synther.seed`` where set, else derived from the run's seed
    (a model outside any run takes run seed 0)."""
    return int(synther_seed) if synther_seed is not None else stream_seed(run_seed, Stream.FIT)
