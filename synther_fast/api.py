"""``synther_fast.train``: the Python entry point of both pipelines."""

from __future__ import annotations

import os
from typing import Any

from synther_fast.config import OFFLINE_PRESETS, ONLINE_PRESETS, OfflineConfig, OnlineConfig


def train(config: OfflineConfig | OnlineConfig | None = None, *, mode: str | None = None, preset: str = "quick",
          run_dir: str | os.PathLike[str] | None = None, resume: bool = False,
          seeds: list[int] | None = None, progress: bool = True, wandb: bool = False, **overrides: Any):
    """Run a SynthER pipeline.

    ``train(OfflineConfig(...))`` / ``train(OnlineConfig(...))``, or the keyword form
    ``train(mode="offline" | "online", env=..., **overrides)`` starting from a named preset
    ('quick' or 'paper'). Overrides name config fields, nested ones with dotted keys
    (``**{"synther.trainer.steps": 2000}``). Returns an OfflineResult / OnlineResult, or for an
    offline run with ``seeds`` the mean +- std over seeds.
    """
    if config is None:
        mode = mode or "offline"
        presets = {"offline": OFFLINE_PRESETS, "online": ONLINE_PRESETS}.get(mode)
        if presets is None:
            raise ValueError(f"mode must be 'offline' or 'online', got {mode!r}")
        if preset not in presets:
            raise ValueError(f"unknown {mode} preset {preset!r}; choose from {sorted(presets)}")
        algo = overrides.get("algo") if mode == "online" else None
        config = presets[preset](algo) if algo in ("sac", "redq", "sac-synther") else presets[preset]()
    elif mode is not None and mode != ("online" if isinstance(config, OnlineConfig) else "offline"):
        raise ValueError(f"mode {mode!r} does not match the {type(config).__name__} given")
    if overrides:
        config = config.with_overrides(**overrides)
    if run_dir is None:
        kind = "online" if isinstance(config, OnlineConfig) else "offline"
        run_dir = os.path.join("runs", f"{kind}-{config.env.replace(':', '_')}-{config.algo}-{config.preset}")
    if isinstance(config, OnlineConfig):
        if seeds:
            raise ValueError("seeds= is for offline runs; start one online run per seed")
        from synther_fast.online import run_online

        return run_online(config, run_dir, resume=resume, progress=progress, wandb=wandb)
    from synther_fast.offline import run_offline, run_offline_seeds

    if seeds:
        return run_offline_seeds(config, list(seeds), run_dir, resume=resume, progress=progress)
    return run_offline(config, run_dir, resume=resume, progress=progress, wandb=wandb)
