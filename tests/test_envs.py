"""The environment factory for both suites."""

from __future__ import annotations

import numpy as np
import pytest

from synther_fast.envs import ENV_NAMES, env_spec, make_env


@pytest.mark.parametrize("name", ["HalfCheetah-v5", "Hopper-v5", "dmc:cheetah-run", "dmc:reacher-hard"])
def test_spaces_seeding_and_steps(name: str) -> None:
    env = make_env(name, seed=0)
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    obs, _ = env.reset(seed=3)
    assert obs.ndim == 1 and obs.shape == env.observation_space.shape
    actions = np.random.default_rng(0).uniform(-1, 1, (5, env.action_space.shape[0]))
    first = [env.step(a)[0] for a in actions]
    again, _ = env.reset(seed=3)
    np.testing.assert_allclose(again, obs)
    second = [env.step(a)[0] for a in actions]
    np.testing.assert_allclose(np.array(first), np.array(second))  # same seed, same trajectory
    env.close()


def test_time_limit_and_termination_flags() -> None:
    env = make_env("dmc:cheetah-run", seed=0)
    env.reset(seed=0)
    steps, truncated, terminated = 0, False, False
    while not (truncated or terminated):
        _, _, terminated, truncated, _ = env.step(np.zeros(env.action_space.shape))
        steps += 1
    assert steps == 1000 and truncated and not terminated  # DMC never terminates
    spec = env_spec("Hopper-v5")
    assert spec.has_terminal and spec.obs_dim == 11 and spec.act_dim == 3
    assert not env_spec("dmc:cheetah-run").has_terminal


def test_actions_are_clipped_and_rescaled() -> None:
    gym_env = make_env("HalfCheetah-v5", seed=0)
    gym_env.reset(seed=0)
    out_of_range = gym_env.step(np.full(6, 5.0))[0]
    gym_env.reset(seed=0)
    at_bound = gym_env.step(np.ones(6))[0]
    np.testing.assert_allclose(out_of_range, at_bound)  # clipped to the bound
    from synther_fast.envs.factory import DMCEnv

    dmc = DMCEnv("dmc:cheetah-run", seed=0)
    dmc.reset(seed=0)
    dmc._low, dmc._high = np.full(6, -2.0), np.full(6, 4.0)  # pretend the task has these bounds
    sent = []
    real_step = dmc._env.step
    dmc._env.step = lambda a: sent.append(a) or real_step(np.zeros(6))
    dmc.step(np.array([-1, 0, 1, 0.5, -0.5, 3]))
    np.testing.assert_allclose(sent[0], [-2, 1, 4, 2.5, -0.5, 4])


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(ValueError, match="valid names: .*HalfCheetah-v5.*dmc:cheetah-run"):
        make_env("HalfCheetah-v2")
    assert "dmc:quadruped-walk" in ENV_NAMES


def test_dmc_episodes_reseed_the_task_without_rebuilding_it(monkeypatch) -> None:
    """reset(seed=s) reseeds the task's random state in place: the episode equals that of a task
    built with random=s, and no model is compiled again (suite.load once, not per episode)."""
    from dm_control import suite

    loads = []
    real_load = suite.load
    monkeypatch.setattr(suite, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    env = make_env("dmc:reacher-hard", seed=0)
    actions = np.random.default_rng(1).uniform(-1, 1, (4, env.action_space.shape[0]))
    runs = []
    for seed in (5, 9, 5):
        obs, _ = env.reset(seed=seed)
        runs.append(np.array([obs] + [env.step(a)[0] for a in actions]))
    assert len(loads) == 1
    np.testing.assert_array_equal(runs[0], runs[2])
    assert not np.array_equal(runs[0][0], runs[1][0])  # another seed, another goal
    from synther_fast.envs.factory import DMCEnv

    fresh = DMCEnv("dmc:reacher-hard", seed=5)  # a task built with random=5, first episode
    obs, _ = fresh.reset()
    np.testing.assert_array_equal(np.array([obs] + [fresh.step(a)[0] for a in actions]), runs[0])
