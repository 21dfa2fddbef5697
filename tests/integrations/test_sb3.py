"""The Stable-Baselines3 adapter: SynthERReplayBuffer and SynthERCallback (extra [sb3])."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3", reason="the [sb3] extra is not installed (the README's test command installs it)")

from stable_baselines3 import DDPG, SAC, TD3  # noqa: E402
from stable_baselines3.common.buffers import ReplayBuffer  # noqa: E402
from stable_baselines3.common.vec_env import VecNormalize  # noqa: E402

from synther_fast.config import tiny  # noqa: E402
from synther_fast.integrations.core import SpaceError  # noqa: E402
from synther_fast.integrations.sb3 import SynthERCallback, SynthERReplayBuffer, make_vec_env  # noqa: E402

OBS = gym.spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = gym.spaces.Box(-1, 1, (2,), np.float32)


def small() -> dict:
    """Tiny learner settings (fresh each time: SB3 writes into policy_kwargs)."""
    return {"learning_starts": 40, "batch_size": 16, "policy_kwargs": {"net_arch": [16, 16]}, "device": "cpu"}


def fill(buffer, steps: int, n_envs: int = 1, seed: int = 0, timeout_every: int = 0) -> None:
    rng = np.random.default_rng(seed)
    for t in range(steps):
        done = rng.random(n_envs) < 0.2
        truncated = [bool(timeout_every and t % timeout_every == 0 and d) for d in done]
        buffer.add(rng.normal(size=(n_envs, 3)).astype(np.float32), rng.normal(size=(n_envs, 3)).astype(np.float32),
                   rng.uniform(-1, 1, (n_envs, 2)).astype(np.float32), rng.normal(size=n_envs).astype(np.float32),
                   done.astype(np.float32), [{"TimeLimit.truncated": tr} for tr in truncated])


def marked_rows(n: int, value: float = 100.0) -> np.ndarray:
    """Synthetic rows that cannot be mistaken for the buffer's: every column is ``value``."""
    rows = np.full((n, 3 + 2 + 1 + 3 + 1), value, np.float32)
    rows[:, -1] = 1.0
    return rows


def test_at_ratio_0_batches_equal_sb3s_own_buffer_under_the_same_seed():
    ours, theirs = SynthERReplayBuffer(100, OBS, ACT, "cpu", n_envs=2, synthetic_ratio=0.0), \
        ReplayBuffer(100, OBS, ACT, "cpu", n_envs=2)
    fill(ours, 30, 2), fill(theirs, 30, 2)
    ours.mix.install(marked_rows(10))  # even with rows installed, ratio 0 takes none
    np.random.seed(5)
    a = ours.sample(64)
    np.random.seed(5)
    b = theirs.sample(64)
    for x, y in zip(a[:5], b[:5]):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize(("ratio", "n_synthetic"), [(0.5, 32), (1.0, 64), (0.3, 19)])
def test_after_a_refill_the_split_is_exact(ratio, n_synthetic):
    buffer = SynthERReplayBuffer(100, OBS, ACT, "cpu", synthetic_ratio=ratio)
    fill(buffer, 50)
    assert (buffer.sample(64).observations == 100).sum() == 0  # all real before the first refill
    buffer.mix.install(marked_rows(20))
    batch = buffer.sample(64)
    synthetic = (batch.observations == 100).all(1)
    assert int(synthetic.sum()) == n_synthetic and bool(synthetic[64 - n_synthetic:].all())
    assert (batch.dones[synthetic] == 1).all() and (batch.rewards[synthetic] == 100).all()
    assert batch.observations.dtype == torch.float32 and batch.dones.shape == (64, 1)


def test_time_limit_truncations_are_not_terminals_in_the_fitted_rows():
    buffer = SynthERReplayBuffer(200, OBS, ACT, "cpu")
    fill(buffer, 100, timeout_every=2)
    rows = buffer.real_rows()
    truncated = (buffer.timeouts[:100, 0] > 0)
    assert truncated.any() and (buffer.dones[:100, 0][truncated] == 1).all()
    np.testing.assert_array_equal(rows[:, -1], buffer.dones[:100, 0] * (1 - buffer.timeouts[:100, 0]))
    np.testing.assert_array_equal(rows[:, :3], buffer.observations[:100, 0])
    plain = SynthERReplayBuffer(200, OBS, ACT, "cpu", handle_timeout_termination=False)
    fill(plain, 100, timeout_every=2)
    np.testing.assert_array_equal(plain.real_rows()[:, -1], plain.dones[:100, 0])


def test_synthetic_rows_go_through_vecnormalize_like_real_ones():
    venv = VecNormalize(make_vec_env("Pendulum-v1", 1, seed=0), norm_obs=True, norm_reward=True)
    venv.reset()
    for _ in range(50):
        venv.step(np.random.default_rng(0).uniform(-1, 1, (1, 1)).astype(np.float32))
    buffer = SynthERReplayBuffer(100, venv.observation_space, venv.action_space, "cpu", synthetic_ratio=1.0)
    rows = np.concatenate([np.full((4, 3), 2.0), np.zeros((4, 1)), np.full((4, 1), -3.0), np.full((4, 3), 2.0),
                           np.zeros((4, 1))], 1).astype(np.float32)
    fill_rows = rows.copy()
    buffer.add(fill_rows[:1, :3], fill_rows[:1, 5:8], fill_rows[:1, 3:4], fill_rows[:1, 4], np.zeros(1), [{}])
    buffer.mix.install(rows)
    batch = buffer.sample(4, env=venv)
    expected_obs = venv.normalize_obs(np.full((1, 3), 2.0, np.float32))
    expected_reward = venv.normalize_reward(np.array([[-3.0]], np.float32))
    np.testing.assert_allclose(batch.observations.numpy(), np.repeat(expected_obs, 4, 0), rtol=1e-5)
    np.testing.assert_allclose(batch.rewards.numpy(), np.repeat(expected_reward, 4, 0), rtol=1e-5)
    assert not np.allclose(expected_obs, 2.0)  # the normalisation did something


@pytest.mark.parametrize(("space", "message"), [
    (gym.spaces.Dict({"a": OBS}), "Dict"), (gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), "images"),
])
def test_spaces_synther_cannot_model_get_clear_errors(space, message):
    with pytest.raises(SpaceError, match=message):
        SynthERReplayBuffer(10, space, ACT, "cpu")
    with pytest.raises(SpaceError, match="continuous Box action space, got Discrete"):
        SynthERReplayBuffer(10, OBS, gym.spaces.Discrete(3), "cpu")


def test_optimize_memory_usage_is_refused():
    with pytest.raises(ValueError, match="optimize_memory_usage=True stores no next observations"):
        SAC("MlpPolicy", make_vec_env("Pendulum-v1"), replay_buffer_class=SynthERReplayBuffer,
            optimize_memory_usage=True, replay_buffer_kwargs={"handle_timeout_termination": False}, **small())


def test_the_callback_needs_the_synther_buffer():
    model = SAC("MlpPolicy", make_vec_env("Pendulum-v1"), **small())
    with pytest.raises(TypeError, match="replay_buffer_class=SynthERReplayBuffer"):
        model.learn(10, callback=SynthERCallback(refit_every=5, num_samples=10, config="tiny"))


def fast_config():
    return tiny().with_overrides(**{"generation.terminals": "threshold"})


@pytest.mark.parametrize(("algo", "n_envs"), [(SAC, 1), (TD3, 2), (DDPG, 1)])
def test_a_learner_refits_twice_and_trains_on_the_mix(algo, n_envs):
    model = algo("MlpPolicy", make_vec_env("Pendulum-v1", n_envs, seed=0), replay_buffer_class=SynthERReplayBuffer,
                 replay_buffer_kwargs={"synthetic_ratio": 0.5, "seed": 1}, gradient_steps=2, seed=0, **small())
    callback = SynthERCallback(refit_every=50, num_samples=200, config=fast_config())
    model.learn(100, callback=callback)
    buffer = model.replay_buffer
    assert buffer.mix.refills == 2 and [h["timestep"] for h in callback.history] == [50, 100]
    assert all(h["rows"] == 200 and np.isfinite(h["final_loss"]) and 0 < h["mean_ks"] < 1 for h in callback.history)
    assert np.abs(buffer.mix.rows[:, buffer.layout.action]).max() <= 1.0  # SB3's [-1, 1] actions
    assert len(buffer.real_rows()) == 100


def test_refits_are_logged_through_sb3s_logger(tmp_path):
    from stable_baselines3.common.logger import configure

    model = SAC("MlpPolicy", make_vec_env("Pendulum-v1"), replay_buffer_class=SynthERReplayBuffer, seed=0, **small())
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(60, callback=SynthERCallback(refit_every=30, num_samples=50, config=fast_config()), log_interval=1)
    model.logger.dump(model.num_timesteps)
    header = (tmp_path / "progress.csv").read_text().splitlines()[0].split(",")
    assert {"synther/fit_seconds", "synther/final_loss", "synther/mean_ks", "synther/refills"} <= set(header)


def test_after_load_the_next_refit_falls_where_an_uninterrupted_runs_would(tmp_path):
    def new_model():
        return SAC("MlpPolicy", make_vec_env("Pendulum-v1", seed=0), replay_buffer_class=SynthERReplayBuffer,
                   replay_buffer_kwargs={"synthetic_ratio": 0.5, "seed": 3}, seed=0, **small())

    whole = new_model()
    whole_cb = SynthERCallback(refit_every=40, num_samples=60, config=fast_config())
    whole.learn(130, callback=whole_cb)

    part = new_model()
    part.learn(70, callback=SynthERCallback(refit_every=40, num_samples=60, config=fast_config()))
    part.save(tmp_path / "model")
    part.save_replay_buffer(tmp_path / "buffer")
    del part
    resumed = SAC.load(tmp_path / "model", env=make_vec_env("Pendulum-v1", seed=0), device="cpu")
    resumed.load_replay_buffer(tmp_path / "buffer")
    assert isinstance(resumed.replay_buffer, SynthERReplayBuffer) and resumed.replay_buffer.mix.refills == 1
    assert resumed.replay_buffer_kwargs == {"synthetic_ratio": 0.5, "seed": 3}  # model.save kept them
    resumed_cb = SynthERCallback(refit_every=40, num_samples=60, config=fast_config())
    resumed.learn(60, callback=resumed_cb, reset_num_timesteps=False)
    assert [h["timestep"] for h in whole_cb.history] == [40, 80, 120]
    assert [h["timestep"] for h in resumed_cb.history] == [80, 120]
    assert [h["refit"] for h in resumed_cb.history] == [1, 2]
    # refit k draws from the same seeds in both: the same real rows would give the same model
    assert resumed.replay_buffer.mix.refills == 3


def test_a_dm_control_task_through_the_package_factory():
    model = SAC("MlpPolicy", make_vec_env("dmc:cartpole-swingup", 1, seed=0), replay_buffer_class=SynthERReplayBuffer,
                seed=0, **small())
    model.learn(50, callback=SynthERCallback(refit_every=25, num_samples=40, config=fast_config()))
    assert model.replay_buffer.mix.refills == 2 and model.replay_buffer.layout.obs_dim == 5


@pytest.mark.parametrize("algo", ["sac", "td3", "ddpg"])
def test_the_sb3_example_runs_for_each_algorithm(algo, capsys, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "examples" / "sb3_synther.py"
    monkeypatch.setattr(sys, "argv", [
        "sb3_synther.py", "--algo", algo, "--env", "Pendulum-v1", "--steps", "120", "--n-envs", "2",
        "--refit-every", "60", "--num-samples", "64", "--preset", "tiny", "--learning-starts", "40",
        "--net", "16", "16", "--batch-size", "16", "--gradient-steps", "2"])
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    assert f"{algo} on Pendulum-v1: return" in out and "(2 refits)" in out


def test_background_refits_land_by_the_end_of_training():
    model = SAC("MlpPolicy", make_vec_env("Pendulum-v1", seed=0), replay_buffer_class=SynthERReplayBuffer, seed=0,
                **small())
    callback = SynthERCallback(refit_every=50, num_samples=80, config=fast_config(), background=True)
    model.learn(100, callback=callback)
    assert callback.refits.background  # a CPU device: the fit ran in a thread
    assert model.replay_buffer.mix.refills >= 1 and not callback.refits.pending
    assert all(h["rows"] == 80 for h in callback.history)
    assert [h["refit"] for h in callback.history] == list(range(len(callback.history)))
