"""synther_fast: fast Synthetic Experience Replay (SynthER; Lu et al., NeurIPS 2023)."""

__version__ = "0.1.0"

from synther_fast.config import (  # noqa: E402
    SynthERConfig,
    paper_offline,
    paper_online,
    quick,
)
from synther_fast.replay import (  # noqa: E402
    Batch,
    MixedSampler,
    Prefetcher,
    ReplayBuffer,
    ReplayFileError,
    TransitionLayout,
)

_LAZY = {
    "SynthER": "synther_fast.diffusion",
    "ModelFileError": "synther_fast.diffusion",
    "train": "synther_fast.api",
    "upsample": "synther_fast.integrations.upsampling",
    "sweep": "synther_fast.pipelines.sweeps",
    "SweepSpec": "synther_fast.pipelines.sweeps",
    "OfflineConfig": "synther_fast.config",
    "OnlineConfig": "synther_fast.config",
}


def __getattr__(name: str):
    # The diffusion core needs torch; import it on first use so the replay imports without it.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'synther_fast' has no attribute {name!r}")


__all__ = [
    "ModelFileError",
    "OfflineConfig",
    "OnlineConfig",
    "train",
    "upsample",
    "sweep",
    "SweepSpec",
    "SynthER",
    "SynthERConfig",
    "paper_offline",
    "paper_online",
    "quick",
    "Batch",
    "MixedSampler",
    "Prefetcher",
    "ReplayBuffer",
    "ReplayFileError",
    "TransitionLayout",
    "__version__",
]
