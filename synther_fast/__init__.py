"""synther_fast: fast Synthetic Experience Replay (SynthER; Lu et al., NeurIPS 2023)."""

__version__ = "0.1.0"

from synther_fast.replay import (  # noqa: E402
    Batch,
    MixedSampler,
    Prefetcher,
    ReplayBuffer,
    ReplayFileError,
    TransitionLayout,
)

__all__ = [
    "Batch",
    "MixedSampler",
    "Prefetcher",
    "ReplayBuffer",
    "ReplayFileError",
    "TransitionLayout",
    "__version__",
]
