"""``synther_fast.train``: the Python entry point of the pipelines."""

from __future__ import annotations

import os
from typing import Any

from synther_fast.offline import OFFLINE_PRESETS, OfflineConfig, OfflineResult, run_offline, run_offline_seeds


def train(config: OfflineConfig | None = None, *, mode: str = "offline", preset: str = "quick",
          run_dir: str | os.PathLike[str] | None = None, resume: bool = False,
          seeds: list[int] | None = None, progress: bool = True, **overrides: Any) -> OfflineResult | dict:
    """Run a SynthER pipeline.

    ``train(OfflineConfig(...))`` or the keyword form ``train(mode="offline", env=..., dataset=...,
    **overrides)`` starting from a named preset ('quick' or 'paper'). Overrides name OfflineConfig
    fields, or SynthER settings as ``**{"synther.trainer.steps": 2000}``. Returns the run's
    OfflineResult, or with ``seeds`` the mean +- std over seeds.
    """
    if mode != "offline":
        raise ValueError(f"mode {mode!r} is not available yet (this release has 'offline')")
    if config is None:
        if preset not in OFFLINE_PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {sorted(OFFLINE_PRESETS)}")
        config = OFFLINE_PRESETS[preset]()
    if overrides:
        config = config.with_overrides(**overrides)
    if run_dir is None:
        run_dir = os.path.join("runs", f"offline-{config.env.replace(':', '_')}-{config.algo}-{config.preset}")
    if seeds:
        return run_offline_seeds(config, list(seeds), run_dir, resume=resume, progress=progress)
    return run_offline(config, run_dir, resume=resume, progress=progress)
