"""The termination rules of the gym MuJoCo v5 tasks that terminate (importable without a simulator).

Hopper-v5 and Walker2d-v5 end an episode exactly when the next observation leaves the healthy
region (gymnasium's documented defaults, "Episode End"; a test checks them against real terminals).
The analysis measures terminal rates with them, and generation can label synthetic terminals
with them (GenerationConfig.terminals).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class HealthRules:
    """A task's healthy region (gymnasium v5 defaults); every bound is strict, as in the task."""

    z_range: tuple[float, float]
    angle_range: tuple[float, float]
    state_range: tuple[float, float] | None
    """bounds on every entry of ``observation[1:]`` (Hopper only)"""
    obs_dim: int
    """the task's observation width (the rules read columns by position)"""


HEALTH_RULES = {
    "Hopper-v5": HealthRules((0.7, float("inf")), (-0.2, 0.2), (-100.0, 100.0), 11),
    "Walker2d-v5": HealthRules((0.8, 2.0), (-1.0, 1.0), None, 17),
}


def check_obs_width(env_name: str | None, obs_dim: int) -> None:
    """Refuse observations of another width than the task's, whose rules would read the wrong
    columns (e.g. ``env='Hopper-v5'`` given for data of another task)."""
    rules = HEALTH_RULES.get(env_name) if env_name is not None else None
    if rules is not None and obs_dim != rules.obs_dim:
        raise ValueError(f"{env_name}'s termination rule reads {rules.obs_dim}-dim observations, the rows have "
                         f"{obs_dim}: is the task name right? (without one, terminals come from a classifier)")


def unhealthy(env_name: str | None, obs: np.ndarray) -> np.ndarray | None:
    """Rows whose observation lies outside the task's healthy region (None: the task has no rules).

    For Hopper the state bound is checked on the observed (clipped) velocities; a true velocity
    beyond ±100 shows as 10, so that rare case reads as healthy.
    """
    rules = HEALTH_RULES.get(env_name) if env_name is not None else None
    if rules is None:
        return None
    obs = np.asarray(obs)
    check_obs_width(env_name, obs.shape[1])
    z, angle = obs[:, 0], obs[:, 1]
    healthy = (rules.z_range[0] < z) & (z < rules.z_range[1])
    healthy &= (rules.angle_range[0] < angle) & (angle < rules.angle_range[1])
    if rules.state_range is not None:
        low, high = rules.state_range
        healthy &= ((low < obs[:, 1:]) & (obs[:, 1:] < high)).all(axis=1)
    return ~healthy
