"""``synther_fast.upsample``: a D4RL-style dataset in, n synthetic transitions out (offline SynthER for
any learner: CORL-style scripts, d3rlpy, a user's own loop)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from synther_fast.common.rng import fit_seed
from synther_fast.config import SynthERConfig, resolve
from synther_fast.data.dataset import Dataset, DatasetError, load_dataset
from synther_fast.diffusion import SynthER
from synther_fast.integrations.core import split_rows, synther_config

REQUIRED = ("observations", "actions", "rewards", "next_observations", "terminals")
"""The keys of ``d4rl.qlearning_dataset`` (``timeouts`` may come too)."""


def as_dataset(data: Any) -> Dataset:
    """A D4RL ``qlearning_dataset``-style dict, or a path the package reads (npz, D4RL-layout HDF5,
    a Minari dataset folder), as a checked Dataset; errors name the key and the rows."""
    if isinstance(data, (str, os.PathLike)):
        return load_dataset(Path(data))
    if isinstance(data, Dataset):
        return data
    if not isinstance(data, dict):
        raise TypeError(f"upsample takes a dict of arrays ({', '.join(REQUIRED)}) or a dataset path, "
                        f"got {type(data).__name__}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise DatasetError(f"the dataset dict has no {', '.join(repr(k) for k in missing)} "
                           f"(needs {', '.join(REQUIRED)}; 'timeouts' is optional)")
    n = len(data["observations"])
    timeouts = data.get("timeouts", np.zeros(n))
    terminals = np.asarray(data["terminals"], dtype=np.float32)
    return Dataset(data["observations"], data["actions"], data["rewards"], data["next_observations"], terminals,
                   timeouts, source="the dataset dict")


def upsample(data: Any, n: int, *, preset: str = "quick", env: str | None = None, seed: int = 0,
             config: SynthERConfig | None = None, sampler: str | None = None, num_steps: int | None = None,
             device: str | None = None, progress: bool = True) -> dict[str, np.ndarray]:
    """Fit SynthER on ``data`` and return ``n`` synthetic transitions with the same keys.

    ``data``: a dict with ``observations, actions, rewards, next_observations, terminals`` (and
    optionally ``timeouts``, as ``d4rl.qlearning_dataset`` returns; terminals must exclude
    time-outs) or a path to an npz, D4RL-layout HDF5 file or Minari dataset folder. ``preset``: the
    diffusion settings of an offline preset, unless ``config`` (a SynthERConfig) is given: 'tiny'
    (seconds, learns nothing), 'quick' (width 256, 12k steps: minutes on a CPU), 'paper' (the
    published width 2048, 100k steps: GPU work). ``env``:
    the task's name, which picks its termination rule for the generated terminals (Hopper-v5,
    Walker2d-v5; else a classifier); a loaded file's own env name is used when ``env`` is None.
    ``sampler``/``num_steps``: another sampler than the config's (see SynthER.generate).

    Returns float32 arrays keyed as the input (``timeouts`` all 0 when the input had it).
    Generated rows holding NaN/inf are dropped, so in rare cases fewer than ``n`` rows return.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"n must be a positive number of rows, got {n!r}")
    dataset = as_dataset(data)
    task = env if env is not None else dataset.env_name
    if config is None:  # the offline preset's diffusion settings, as `synther-fast offline --preset`
        config = resolve("offline", preset).synther
    fit_config = synther_config(config, task=task)
    fit_config = fit_config.replace(seed=fit_seed(seed, fit_config.seed))
    model = SynthER(dataset.layout(), fit_config, device=device)
    model.fit(dataset.to_rows(), progress=progress)
    rows = split_rows(model.generate(int(n), seed=seed, sampler=sampler, num_steps=num_steps), model.layout)
    out = {"observations": rows["obs"], "actions": rows["action"], "rewards": rows["reward"],
           "next_observations": rows["next_obs"], "terminals": rows["terminal"]}
    if isinstance(data, dict) and "timeouts" in data:
        out["timeouts"] = np.zeros(len(rows["obs"]), np.float32)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}
