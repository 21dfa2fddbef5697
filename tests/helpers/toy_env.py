"""A research environment of the user's own, registered with gymnasium on import (as a plugin
package would): a point mass pushed towards the origin, Box spaces, episodes end on leaving
the box. ``toy_env:SyntherFastToy-v0`` imports this module and makes it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class PointMass(gym.Env):
    metadata = {"render_modes": []}  # noqa: RUF012

    def __init__(self, dict_observations: bool = False) -> None:
        box = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
        self.dict_observations = dict_observations
        self.observation_space = gym.spaces.Dict({"position": box, "velocity": box}) if dict_observations \
            else gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)
        self.action_space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
        self.state = np.zeros(4)

    def _obs(self):
        if self.dict_observations:
            return {"position": self.state[:2].copy(), "velocity": self.state[2:].copy()}
        return self.state.copy()

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = np.concatenate([self.np_random.uniform(-1, 1, 2), np.zeros(2)])
        return self._obs(), {}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -2.0, 2.0)
        self.state[2:] = 0.9 * self.state[2:] + 0.1 * action
        self.state[:2] += 0.1 * self.state[2:]
        reward = -float(np.sum(self.state[:2] ** 2))
        terminated = bool(np.abs(self.state[:2]).max() > 3.0)
        return self._obs(), reward, terminated, False, {}


if "SyntherFastToy-v0" not in gym.registry:
    gym.register("SyntherFastToy-v0", entry_point=PointMass, max_episode_steps=50)
    gym.register("SyntherFastToyDict-v0", entry_point=PointMass, max_episode_steps=50,
                 kwargs={"dict_observations": True})
