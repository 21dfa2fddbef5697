"""Dynamics error: how far a row's next observation and reward are from what the simulator does.

For each row the simulator is set to the row's state, the row's action is applied, and the
simulated next observation and reward are compared with the row's (the "dynamics error" of
SynthER's data-quality analysis, Lu et al. 2023). Real rows score ~0 (float32 storage only); rows whose state the
observation cannot pin down (clipped velocities, non-finite entries) are counted and left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from synther_fast.analysis.tasks import (
    StateSimulator,
    check_state_task,
    reconstructable,
)
from synther_fast.replay.layout import TransitionLayout


@dataclass
class DynamicsError:
    """Squared errors of the scored rows; ``scored_index`` maps them back into the rows given."""

    env_name: str
    rows: int
    """rows considered (after subsampling)"""
    excluded_unreconstructable: int
    """rows whose state cannot be rebuilt from the observation (clipped velocity, NaN/inf)"""
    excluded_unstable: int
    """rows whose state made the simulator diverge (MuJoCo's bad-acceleration reset)"""
    scored_index: np.ndarray
    next_obs_sq_error: np.ndarray
    """(scored, obs_dim)"""
    reward_sq_error: np.ndarray
    """(scored,)"""
    terminal_mismatch: np.ndarray | None
    """(scored,) bool: the row's terminal (threshold 0.5) differs from the simulated one"""
    next_obs_variance: np.ndarray
    """per-column variance of the scored rows' next observations, the scale of the relative error"""

    @property
    def scored(self) -> int:
        return len(self.scored_index)

    def per_row(self) -> np.ndarray:
        """Mean squared next-observation error of each scored row (the paper's per-sample dynamics MSE)."""
        return self.next_obs_sq_error.mean(axis=1) if self.scored else np.zeros(0)

    def summary(self) -> dict:
        """Plain-JSON numbers: MSE per field and per column, the relative MSE and the exclusions."""
        empty = self.scored == 0
        per_column = self.next_obs_sq_error.mean(axis=0) if not empty else np.full(self.next_obs_sq_error.shape[1], np.nan)
        scale = np.where(self.next_obs_variance > 0, self.next_obs_variance, 1.0)
        out = {
            "env": self.env_name,
            "rows": self.rows,
            "scored": self.scored,
            "excluded_unreconstructable": self.excluded_unreconstructable,
            "excluded_unstable": self.excluded_unstable,
            "next_obs_mse": float(per_column.mean()),
            "next_obs_relative_mse": float((per_column / scale).mean()),
            "reward_mse": float(self.reward_sq_error.mean()) if not empty else float("nan"),
            "next_obs_mse_per_column": [float(v) for v in per_column],
        }
        if self.terminal_mismatch is not None:
            out["terminal_mismatch_rate"] = float(self.terminal_mismatch.mean()) if not empty else float("nan")
        return out


def dynamics_error(rows: np.ndarray, layout: TransitionLayout, env_name: str, *,
                   max_rows: int | None = None, seed: int = 0) -> DynamicsError:
    """Simulate each row from its own state and action; squared errors of next obs and reward (SynthER's dynamics error).

    Only HalfCheetah-v5, Hopper-v5 and Walker2d-v5 are supported; any other task raises ValueError
    naming the task and why. ``max_rows`` scores a random subset (about 40-120 µs a row on one core).
    """
    check_state_task(env_name)
    rows = np.asarray(rows)
    if rows.ndim != 2 or rows.shape[1] != layout.width:
        raise ValueError(f"rows of shape {rows.shape} do not fit a layout of width {layout.width}")
    index = np.arange(len(rows))
    if max_rows is not None and len(rows) > max_rows:
        index = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
    obs, actions = rows[index, layout.obs], rows[index, layout.action]
    ok = reconstructable(env_name, obs) & np.isfinite(rows[index]).all(axis=1)
    sim = StateSimulator(env_name, seed=seed)
    if layout.obs_dim != sim.obs_dim:
        sim.close()
        raise ValueError(f"{env_name} observes {sim.obs_dim} entries, the layout has {layout.obs_dim}")
    predicted_obs = np.zeros((len(index), layout.obs_dim))
    predicted_reward = np.zeros(len(index))
    predicted_terminal = np.zeros(len(index), dtype=bool)
    unstable = np.zeros(len(index), dtype=bool)
    try:
        for k in np.flatnonzero(ok):
            next_obs, reward, terminated, sound = sim.step(obs[k], actions[k])
            predicted_obs[k], predicted_reward[k], predicted_terminal[k] = next_obs, reward, terminated
            unstable[k] = not sound
    finally:
        sim.close()
    keep = ok & ~unstable
    target = rows[index[keep]].astype(np.float64)
    next_obs_sq = (predicted_obs[keep] - target[:, layout.next_obs]) ** 2
    reward_sq = (predicted_reward[keep] - target[:, layout.reward][:, 0]) ** 2
    mismatch = None
    if layout.terminal is not None:
        mismatch = (target[:, layout.terminal][:, 0] > 0.5) != predicted_terminal[keep]
    variance = target[:, layout.next_obs].var(axis=0) if keep.any() else np.zeros(layout.obs_dim)
    return DynamicsError(env_name, len(index), int((~ok).sum()), int(unstable.sum()), index[keep],
                         next_obs_sq, reward_sq, mismatch, variance)
