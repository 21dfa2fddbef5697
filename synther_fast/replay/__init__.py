"""Replay storage for transition rows: layout, C++ ring buffer, mixed sampler, prefetch."""

from synther_fast.replay.buffer import ReplayBuffer
from synther_fast.replay.layout import TransitionLayout
from synther_fast.replay.prefetch import Prefetcher
from synther_fast.replay.sampler import Batch, MixedSampler
from synther_fast.replay.storage_file import ReplayFileError

__all__ = ["Batch", "MixedSampler", "Prefetcher", "ReplayBuffer", "ReplayFileError", "TransitionLayout"]
