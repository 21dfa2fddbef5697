"""One factory for gymnasium MuJoCo v5 tasks and dm_control suite tasks (``dmc:domain-task``).

Every environment it returns has actions in [-1, 1] (rescaled and clipped, as the reference's
wrappers), flat float32 observations, a seed, and a time limit (1000 steps for both suites).
Simulators are imported only here and only when an environment is made.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from synther_fast.envs.names import (  # noqa: F401 (re-exported)
    DMC_TASKS,
    ENV_NAMES,
    GYM_TASKS,
    check_env_name,
    dmc_domain_task,
)

MAX_EPISODE_STEPS = 1000


class _DropDeprecatedTotalmass(logging.Filter):
    """MuJoCo 3.x warns through absl, on every model compile, that the 'settotalmass' attribute of
    the bundled gymnasium/dm_control XML files is deprecated: nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "settotalmass" not in record.getMessage()


logging.getLogger("absl").addFilter(_DropDeprecatedTotalmass())


def _mujoco_warning(message: str) -> None:
    """MuJoCo's C warnings (printed to stdout by default): the settotalmass one is dropped, the
    rest become Python warnings."""
    if "settotalmass" not in message:
        import warnings

        warnings.warn(f"MuJoCo: {message.strip()}", RuntimeWarning, stacklevel=2)


def _quiet_mujoco() -> None:
    try:
        import mujoco
    except ImportError:
        return
    mujoco.set_mju_user_warning(_mujoco_warning)


@dataclass(frozen=True)
class EnvSpec:
    """What the rest of the package needs to know about a task without stepping it."""

    name: str
    obs_dim: int
    act_dim: int
    has_terminal: bool
    """gym locomotion tasks terminate (falls); DMC tasks never do (the published choice)"""
    suite: str


def make_env(name: str, seed: int | None = None):
    """A gymnasium.Env with actions in [-1, 1] and flat float observations: any gymnasium id
    (``package:EnvId`` imports the package first) with its own time limit, else 1000 steps, and
    any dm_control suite task (``dmc:DOMAIN-TASK``, 1000 steps). Spaces the package cannot model
    (discrete actions, images) are refused, naming the space."""
    check_env_name(name)
    _quiet_mujoco()
    if name.startswith("dmc:"):
        env: Any = DMCEnv(name, seed)
        env = gym.wrappers.TimeLimit(env, MAX_EPISODE_STEPS)
    else:
        env_id = name.rpartition(":")[2]  # the package part was imported by check_env_name
        limit = {} if gym.spec(env_id).max_episode_steps else {"max_episode_steps": MAX_EPISODE_STEPS}
        try:
            env = gym.make(env_id, **limit)
        except (gym.error.Error, ImportError) as exc:  # e.g. a registered id whose simulator is not installed
            raise ValueError(f"environment {name!r} cannot be made: {type(exc).__name__}: {exc}") from None
        env = UnitActions(_flat_observations(env, name))
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env


def env_spec(name: str, has_terminal: bool | None = None) -> EnvSpec:
    """The task's sizes and suite; ``has_terminal`` None: gymnasium tasks are taken to be able to
    terminate (the terminal column is modelled), dm_control tasks never do (the published choice);
    True / False: the user's word for a task whose termination they know better."""
    env = make_env(name, seed=0)
    try:
        return EnvSpec(name, int(np.prod(env.observation_space.shape)),
                       int(np.prod(env.action_space.shape)),
                       not name.startswith("dmc:") if has_terminal is None else bool(has_terminal),
                       "dmc" if name.startswith("dmc:") else "gym")
    finally:
        env.close()


def _flat_observations(env: Any, name: str) -> Any:
    """The env with 1-D Box observations: Dict (or Tuple) observations of Boxes are flattened in key
    order (as the DMC wrapper does); anything else is refused, naming the space."""
    space = env.observation_space
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return env
    if isinstance(space, (gym.spaces.Dict, gym.spaces.Tuple)) and all(
            isinstance(s, gym.spaces.Box) for s in _leaves(space)):
        return gym.wrappers.FlattenObservation(env)
    env.close()
    kind = "image-like " if isinstance(space, gym.spaces.Box) else ""
    raise ValueError(f"environment {name!r} has {kind}observations {space}: SynthER models flat vectors "
                     f"(a 1-D Box, or a Dict of Boxes, which is flattened)")


def _leaves(space: Any) -> list[Any]:
    if isinstance(space, gym.spaces.Dict):
        return [leaf for s in space.spaces.values() for leaf in _leaves(s)]
    if isinstance(space, gym.spaces.Tuple):
        return [leaf for s in space.spaces for leaf in _leaves(s)]
    return [space]


class UnitActions(gym.ActionWrapper):
    """Actions in [-1, 1], clipped, then mapped linearly onto the simulator's bounds.

    (gymnasium's ClipAction advertises an unbounded space, and RescaleAction refuses one.)
    """

    def __init__(self, env) -> None:
        space = env.action_space
        if not isinstance(space, gym.spaces.Box) or len(space.shape) != 1 or not (
                np.isfinite(space.low).all() and np.isfinite(space.high).all()):
            env.close()
            raise ValueError(f"environment {env.spec.id if env.spec else env!r} has actions {space}: the agents "
                             f"need a 1-D Box of finite bounds (continuous control)")
        super().__init__(env)
        self._low = env.action_space.low.astype(np.float64)
        self._high = env.action_space.high.astype(np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)

    def action(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        return self._low + (action + 1.0) * 0.5 * (self._high - self._low)


class DMCEnv(gym.Env):
    """A dm_control suite task as a gymnasium.Env: dict observations flattened in key order,
    actions rescaled from [-1, 1] to the task's bounds and clipped; never terminates."""

    metadata: dict[str, Any] = {"render_modes": []}  # noqa: RUF012

    def __init__(self, name: str, seed: int | None = None) -> None:
        os.environ.setdefault("MUJOCO_GL", "disable")  # headless; 'osmesa' fails on these machines
        from dm_control import suite

        domain, task = dmc_domain_task(name)
        self._make = lambda s: suite.load(domain, task, task_kwargs={"random": s})
        self._env = self._make(seed)
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        obs_dim = sum(int(np.prod(v.shape)) for v in self._env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, spec.shape, np.float32)
        self.render_mode = None

    @staticmethod
    def _flatten(observation: dict[str, Any]) -> np.ndarray:
        return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in observation.values()]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: Any = None):
        super().reset(seed=seed)
        if seed is not None:
            # Reseed the task's own random state in place: the same draws as a task built with
            # random=seed, without recompiling the model (suite.load) on every episode.
            self._env.task.random.seed(seed)
        step = self._env.reset()
        return self._flatten(step.observation), {}

    def step(self, action):
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        scaled = self._low + (action + 1.0) * 0.5 * (self._high - self._low)
        step = self._env.step(scaled)
        return self._flatten(step.observation), float(step.reward or 0.0), False, step.last(), {}

    def close(self) -> None:
        pass
