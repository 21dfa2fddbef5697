"""The environment factory for both suites."""

from __future__ import annotations

import numpy as np
import pytest
import toy_env  # registers the user's own task on import

from synther_fast.envs import ENV_NAMES, env_spec, make_env
from synther_fast.envs.names import check_env_name, register_factory


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


def test_unknown_name_suggests_close_ones_and_lists_the_tested_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown environment 'Hoper-v5' \(did you mean Hopper-v5.*tested: "
                                         r"HalfCheetah-v5.*dmc:cheetah-run"):
        make_env("Hoper-v5")
    with pytest.raises(ValueError, match=r"did you mean dmc:cartpole-swingup"):
        make_env("dmc:cartpole-swingupp")
    with pytest.raises(ValueError, match="cannot import 'no_such_package'"):
        make_env("no_such_package:Foo-v0")
    with pytest.raises(ValueError, match="HalfCheetah-v2' cannot be made"):  # registered, simulator gone
        make_env("HalfCheetah-v2")
    assert "dmc:quadruped-walk" in ENV_NAMES


def test_every_dm_control_suite_task_is_accepted() -> None:
    from dm_control import suite

    for domain, task in suite.ALL_TASKS:
        assert check_env_name(f"dmc:{domain}-{task.replace('_', '-')}")
        assert check_env_name(f"dmc:{domain}-{task}")  # underscores as dm_control spells them


@pytest.mark.parametrize("name, obs_dim, act_dim", [
    ("InvertedPendulum-v5", 4, 1), ("dmc:cartpole-swingup", 5, 1), ("dmc:reacher-easy", 6, 2),
    ("toy_env:SyntherFastToy-v0", 4, 2), ("toy_env:SyntherFastToyDict-v0", 4, 2),  # a user's own, dict obs
])
def test_tasks_beyond_the_tested_list_step(name: str, obs_dim: int, act_dim: int) -> None:
    env = make_env(name, seed=0)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (obs_dim,) and env.action_space.shape == (act_dim,)
    assert np.all(env.action_space.high == 1)
    for _ in range(3):
        obs, reward, *_ = env.step(np.ones(act_dim))
    assert obs.shape == (obs_dim,) and np.isfinite(reward)
    spec = env_spec(name)
    assert (spec.obs_dim, spec.act_dim, spec.has_terminal) == (obs_dim, act_dim, not name.startswith("dmc:"))
    env.close()


def test_a_users_env_keeps_its_own_time_limit_and_its_action_bounds_are_mapped() -> None:
    env = make_env("toy_env:SyntherFastToy-v0", seed=0)
    env.reset(seed=0)
    assert env.spec.max_episode_steps == 50  # its own, not the 1000 of the tested tasks
    env.step(np.ones(2))
    np.testing.assert_allclose(env.unwrapped.state[2:], 0.1 * 2.0)  # +1 maps onto the bound 2.0


@pytest.mark.parametrize("name, space", [("CartPole-v1", "Discrete"), ("MountainCar-v0", "Discrete")])
def test_spaces_the_package_cannot_model_are_named(name: str, space: str) -> None:
    with pytest.raises(ValueError, match=f"{name}' has actions {space}"):
        make_env(name)


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


def test_a_factory_is_registered_under_a_user_id_and_termination_can_be_overridden() -> None:
    def my_task():
        return toy_env.PointMass()

    name = register_factory(my_task)
    assert name == "user/my_task-v0" and make_env(name, seed=0).reset(seed=0)[0].shape == (4,)
    assert env_spec(name).has_terminal and not env_spec(name, has_terminal=False).has_terminal
    assert env_spec("dmc:cheetah-run", has_terminal=True).has_terminal  # the user's word wins
    assert register_factory(lambda: toy_env.PointMass(dict_observations=True), name="my_task") == name
    assert make_env(name, seed=0).reset(seed=0)[0].shape == (4,)  # the new factory replaced the old one
    with pytest.raises(TypeError, match="callable"):
        register_factory("not a function")
