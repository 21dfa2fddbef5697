"""``synther_fast.train``: the Python entry point of both pipelines."""

from __future__ import annotations

import os
from typing import Any

from synther_fast.config import OfflineConfig, OnlineConfig, resolve, validate
from synther_fast.envs.names import register_factory
from synther_fast.pipelines.offline import run_offline, run_offline_seeds
from synther_fast.pipelines.online import run_online
from synther_fast.runs import default_run_dir, mode_of


def train(config: OfflineConfig | OnlineConfig | None = None, *, mode: str | None = None, preset: str = "quick",
          run_dir: str | os.PathLike[str] | None = None, resume: bool = False,
          seeds: list[int] | None = None, progress: bool = True, wandb: bool = False, **overrides: Any):
    """Run a SynthER pipeline.

    ``train(OfflineConfig(...))`` / ``train(OnlineConfig(...))``, or the keyword form
    ``train(mode="offline" | "online", env=..., **overrides)`` starting from a named preset
    ('quick' or 'paper'). Overrides name config fields, nested ones with dotted keys
    (``**{"synther.trainer.steps": 2000}``); ``env`` may be a function returning a gymnasium.Env
    (registered for this process as ``user/NAME-v0``, see envs.names.register_factory). Returns an OfflineResult / OnlineResult, or for an
    offline run with ``seeds`` the mean +- std over seeds.
    """
    if callable(overrides.get("env")):  # a factory of the user's own environment, registered nowhere
        overrides["env"] = register_factory(overrides["env"])
    if mode is not None and mode not in ("offline", "online"):
        raise ValueError(f"mode must be 'offline' or 'online', got {mode!r}")
    if config is None:
        config = resolve(mode or "offline", preset, overrides=overrides)
    else:
        if mode is not None and mode != mode_of(config):
            raise ValueError(f"mode {mode!r} does not match the {type(config).__name__} given")
        config = config.with_overrides(**overrides) if overrides else validate(config)
    if run_dir is None:
        run_dir = default_run_dir(config)
    if isinstance(config, OnlineConfig):
        if seeds:
            raise ValueError("seeds= is for offline runs; start one online run per seed")
        return run_online(config, run_dir, resume=resume, progress=progress, wandb=wandb)
    if seeds:
        return run_offline_seeds(config, list(seeds), run_dir, resume=resume, progress=progress)
    return run_offline(config, run_dir, resume=resume, progress=progress, wandb=wandb)
