"""What the analysis knows about the gym MuJoCo v5 tasks: how an observation maps back onto the
simulator state, which observations cannot be mapped back exactly, and each task's health rules.

These tasks observe ``qpos[1:]`` (the x position is left out) followed by ``qvel``; Hopper and
Walker2d clip the velocities in the observation to [-10, 10]. x is a free slider joint that no
force, contact or reward depends on (the forward reward uses the x *difference* over one step), so
setting x = 0 rebuilds a state that steps exactly like the original one.
"""

from __future__ import annotations

import numpy as np

from synther_fast.envs.health import HEALTH_RULES, HealthRules, unhealthy  # noqa: F401 (re-exported)

STATE_TASKS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")


# Health rules live with the environments (simulator-free); re-exported here for the analysis.
VELOCITY_CLIP = {"HalfCheetah-v5": None, "Hopper-v5": 10.0, "Walker2d-v5": 10.0}
OBSERVED_POSITIONS = {"HalfCheetah-v5": 8, "Hopper-v5": 5, "Walker2d-v5": 8}  # len(qpos) - 1


def unsupported_reason(env_name: str) -> str | None:
    """Why the simulator state of ``env_name`` cannot be rebuilt from a row, or None if it can."""
    if env_name in STATE_TASKS:
        return None
    if env_name.startswith("dmc:"):
        return ("a dm_control observation (e.g. of dmc:cheetah-run) holds derived features such as "
                "orientations and egocentric positions, not the physics state, so the simulator cannot "
                "be set to a row's state")
    if env_name in ("Ant-v5", "Humanoid-v5"):
        return ("its observation leaves out x and y and adds contact forces (and, for Humanoid, inertia "
                "and actuator terms); rebuilding the state from it is not implemented")
    return "it is not one of the gym MuJoCo tasks whose observation is the simulator state"


def check_state_task(env_name: str) -> None:
    """Raise ValueError naming the task and the reason where its rows cannot be simulated."""
    reason = unsupported_reason(env_name)
    if reason is not None:
        raise ValueError(
            f"dynamics error is defined only for {', '.join(STATE_TASKS)}; {env_name!r} is not "
            f"supported because {reason}"
        )


def reconstructable(env_name: str, obs: np.ndarray) -> np.ndarray:
    """Rows whose observation determines the simulator state exactly (a bool per row).

    A velocity at or beyond the clip bound hides the true velocity (a real observation shows
    exactly ±10 for any faster joint); a non-finite entry hides everything.
    """
    check_state_task(env_name)
    obs = np.asarray(obs)
    ok = np.isfinite(obs).all(axis=1)
    clip = VELOCITY_CLIP[env_name]
    if clip is not None:
        ok &= (np.abs(obs[:, OBSERVED_POSITIONS[env_name]:]) < clip).all(axis=1)
    return ok


class StateSimulator:
    """One environment of a state task, stepped from arbitrary rows."""

    def __init__(self, env_name: str, seed: int = 0) -> None:
        check_state_task(env_name)
        import mujoco

        from synther_fast.envs import make_env

        self.env_name = env_name
        self._env = make_env(env_name, seed=seed)  # reset once: the task refuses to step otherwise
        self._task = self._env.unwrapped
        model = self._task.model
        self.nq, self.nv = int(model.nq), int(model.nv)
        self.obs_dim = self.nq - 1 + self.nv
        if self._env.observation_space.shape != (self.obs_dim,) or OBSERVED_POSITIONS[env_name] != self.nq - 1:
            raise ValueError(f"{env_name}: observation of shape {self._env.observation_space.shape} is not "
                             f"qpos[1:] + qvel ({self.obs_dim} entries); this task layout is not supported")
        self._bad_qacc = int(mujoco.mjtWarning.mjWARN_BADQACC)

    def step(self, obs: np.ndarray, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool]:
        """Next observation, reward, terminated, and whether the simulation stayed numerically sound."""
        data = self._task.data
        qpos = np.concatenate([[0.0], np.asarray(obs[: self.nq - 1], dtype=np.float64)])
        qvel = np.asarray(obs[self.nq - 1 :], dtype=np.float64)
        # A zero warm start makes each row's result independent of the row simulated before it.
        data.qacc_warmstart[:] = 0.0
        warnings_before = int(data.warning[self._bad_qacc].number)
        self._task.set_state(qpos, qvel)
        # UnitActions' own mapping (clip to [-1, 1], then onto the actuator bounds), as collection did.
        next_obs, reward, terminated, _, _ = self._task.step(self._env.action(action))
        sound = int(data.warning[self._bad_qacc].number) == warnings_before
        return np.asarray(next_obs, dtype=np.float64), float(reward), bool(terminated), sound

    def close(self) -> None:
        self._env.close()
