"""Environment steps per second through the factory (issue 22: any gymnasium id, every dm_control
task) against the plain environment a user would build by hand, in the same run.

The factory now checks the name against gymnasium's registry / dm_control's task list and
inspects the spaces when an environment is *made*; stepping goes through the same wrappers as
before (UnitActions for gymnasium, DMCEnv for dm_control). The hand-built baseline: gymnasium.make
with the same time limit, and dm_control's suite.load stepped directly (no wrapper at all).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from synther_fast.envs import make_env

STEPS = 500


def _steps(step, act_dim: int) -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (STEPS, act_dim))
    for a in actions:
        step(a)


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["factory", "plain"])
def test_halfcheetah_steps(benchmark, impl: str) -> None:
    import gymnasium as gym

    env = make_env("HalfCheetah-v5", seed=0) if impl == "factory" else gym.make("HalfCheetah-v5", max_episode_steps=1000)
    env.reset(seed=0)
    benchmark.group = f"env steps: HalfCheetah-v5, {STEPS} steps"
    benchmark.extra_info["steps"] = STEPS
    benchmark.pedantic(lambda: (env.reset(seed=0), _steps(env.step, 6)), rounds=5, iterations=1)


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["factory", "plain"])
def test_dmc_cheetah_steps(benchmark, impl: str) -> None:
    os.environ.setdefault("MUJOCO_GL", "disable")
    if impl == "factory":
        env = make_env("dmc:cheetah-run", seed=0)
        reset, step = (lambda: env.reset(seed=0)), env.step
    else:
        from dm_control import suite

        raw = suite.load("cheetah", "run", task_kwargs={"random": 0})
        reset, step = raw.reset, raw.step
    benchmark.group = f"env steps: dmc:cheetah-run, {STEPS} steps"
    benchmark.extra_info["steps"] = STEPS
    benchmark.pedantic(lambda: (reset(), _steps(step, 6)), rounds=5, iterations=1)


@pytest.mark.slow
def test_making_a_tested_task(benchmark) -> None:
    benchmark.group = "env make: HalfCheetah-v5 (name check + spaces + wrappers)"
    benchmark.pedantic(lambda: make_env("HalfCheetah-v5", seed=0).close(), rounds=5, iterations=1)
