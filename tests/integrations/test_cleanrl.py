"""The CleanRL-style drop-in buffer and the example script built on it."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from synther_fast.config import tiny
from synther_fast.integrations.cleanrl import SynthERBuffer
from synther_fast.integrations.core import SpaceError

REPO = Path(__file__).resolve().parents[2]
OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(np.array([-1.0, -4.0], np.float32), np.array([1.0, 4.0], np.float32))
FAST = tiny().with_overrides(**{"generation.terminals": "threshold"})


def buffer(**kwargs) -> SynthERBuffer:
    options = {"refit_every": 10_000, "num_samples": 100, "config": FAST} | kwargs
    return SynthERBuffer(1000, OBS, ACT, "cpu", **options)


def step(rng, n_envs: int = 1):
    return (rng.normal(size=(n_envs, 3)).astype(np.float32), rng.normal(size=(n_envs, 3)).astype(np.float32),
            (rng.uniform(-1, 1, (n_envs, 2)) * [1, 4]).astype(np.float32), rng.normal(size=n_envs).astype(np.float32),
            (rng.random(n_envs) < 0.2).astype(np.float32))


def test_at_ratio_0_batches_equal_sb3s_buffer_which_cleanrl_vendors():
    sb3 = pytest.importorskip("stable_baselines3.common.buffers", reason="the [sb3] extra is not installed")
    ours = buffer(synthetic_ratio=0.0, n_envs=2, handle_timeout_termination=True)
    theirs = sb3.ReplayBuffer(1000, OBS, ACT, "cpu", n_envs=2, handle_timeout_termination=True)
    rng = np.random.default_rng(0)
    for t in range(40):
        args = step(rng, 2)
        infos = [{"TimeLimit.truncated": t % 7 == 0}, {}]
        ours.add(*args, infos)
        theirs.add(*args, infos)
    np.random.seed(11)
    a = ours.sample(50)
    np.random.seed(11)
    b = theirs.sample(50)
    for name in ("observations", "actions", "next_observations", "dones", "rewards"):
        torch.testing.assert_close(getattr(a, name), getattr(b, name), rtol=0, atol=0)


@pytest.mark.parametrize(("ratio", "n_synthetic"), [(0.5, 16), (1.0, 32)])
def test_refits_every_n_adds_then_mixes_exactly(ratio, n_synthetic):
    rb = buffer(synthetic_ratio=ratio, refit_every=30, num_samples=80)
    rng = np.random.default_rng(1)
    for _ in range(29):
        rb.add(*step(rng), [{}])
    assert rb.mix.refills == 0 and rb.sample(32).observations.shape == (32, 3)  # all real until the first refill
    rb.add(*step(rng), [{}])
    assert rb.mix.refills == 1 and [h["adds"] for h in rb.history] == [30]
    for _ in range(30):
        rb.add(*step(rng), [{}])
    assert rb.mix.refills == 2
    rb.mix.rows[:, rb.layout.obs] = 100.0  # mark them
    batch = rb.sample(32)
    synthetic = (batch.observations == 100).all(1)
    assert int(synthetic.sum()) == n_synthetic and bool(synthetic[32 - n_synthetic:].all())
    assert batch.dones.shape == batch.rewards.shape == (32, 1)


def test_generated_actions_are_clipped_to_the_box_per_dimension():
    rb = buffer(refit_every=200, num_samples=400)
    rng = np.random.default_rng(2)
    for _ in range(200):
        obs, next_obs, action, reward, done = step(rng)
        rb.add(obs, next_obs, np.sign(action) * [1, 4], reward, done, [{}])  # actions on the bounds
    actions = rb.mix.rows[:, rb.layout.action]
    assert np.abs(actions[:, 0]).max() <= 1.0 and np.abs(actions[:, 1]).max() <= 4.0
    assert np.abs(actions[:, 1]).max() > 1.0  # env-scale, not clipped to [-1, 1]


def test_truncated_steps_are_not_terminals_when_timeouts_are_handled():
    rb = buffer(handle_timeout_termination=True)
    rng = np.random.default_rng(3)
    for t in range(50):
        obs, next_obs, action, reward, _ = step(rng)
        rb.add(obs, next_obs, action, reward, np.ones(1), [{"TimeLimit.truncated": t % 2 == 0}])
    np.testing.assert_array_equal(rb.real_rows()[:, -1], [float(t % 2 == 1) for t in range(50)])
    assert set(np.unique(rb.sample(200).dones.numpy())) == {0.0, 1.0}  # sampled dones drop the truncations too


def test_state_dict_round_trip_goes_on_exactly():
    rb = buffer(refit_every=20, num_samples=50)
    rng = np.random.default_rng(4)
    for _ in range(25):
        rb.add(*step(rng), [{}])
    state = rb.state_dict()
    again = buffer(refit_every=20, num_samples=50)
    again.load_state_dict(state)
    np.random.seed(0)
    a = rb.sample(20)
    np.random.seed(0)
    b = again.sample(20)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y)
    assert (again.adds, again.mix.refills) == (25, 1)
    with pytest.raises(ValueError, match="another buffer_size"):
        SynthERBuffer(10, OBS, ACT, config=FAST).load_state_dict(state)


def test_bad_spaces_and_empty_buffers_get_clear_errors():
    with pytest.raises(SpaceError, match="got Discrete"):
        SynthERBuffer(10, OBS, gym.spaces.Discrete(2))
    with pytest.raises(ValueError, match="optimize_memory_usage"):
        SynthERBuffer(10, OBS, ACT, optimize_memory_usage=True)
    with pytest.raises(ValueError, match="empty"):
        buffer().sample(4)


def test_the_cleanrl_style_example_runs(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["cleanrl_sac_synther.py", "--env-id", "Hopper-v5", "--total-timesteps", "260",
                                      "--learning-starts", "100", "--utd", "2", "--hidden", "16", "--batch-size", "16",
                                      "--refit-every", "120", "--num-samples", "100", "--synther-preset", "tiny",
                                      "--eval-episodes", "1"])
    runpy.run_path(str(REPO / "examples" / "cleanrl_sac_synther.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "Hopper-v5: return" in out and "(2 refits," in out


def test_background_refits_land_at_a_later_add_and_state_dict_waits_for_them():
    rb = buffer(refit_every=40, num_samples=60, background=True)
    assert rb.refits.background  # a CPU device: fits run in a thread
    rng = np.random.default_rng(6)
    for _ in range(40):
        rb.add(*step(rng), [{}])
    assert rb.refits.pending or rb.mix.refills == 1  # started at add 40, collected at a later add
    state = rb.state_dict()  # waits for it: nothing of a running refit is lost
    assert not rb.refits.pending and rb.mix.refills == 1 and state["mix"]["refills"] == 1
    assert len(rb.mix.rows) == 60 and rb.history[0]["refit"] == 0
