"""Local dataset collection: random, a policy checkpoint with per-episode noise, a SAC replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synther_fast.data import DatasetError
from synther_fast.envs.scores import normalized_score
from synther_fast.pipelines.collect import load_policy, rollouts, sac_replay, save_policy, shipped_policy_path
from synther_fast.pipelines.evaluation import evaluate


def test_random_rollouts_keep_episode_boundaries() -> None:
    data = rollouts("Hopper-v5", None, 3000, seed=0)
    assert len(data) == 3000 and data.obs_dim == 11 and data.act_dim == 3
    ends = (data.terminals > 0) | (data.timeouts > 0)
    assert data.terminals.sum() > 0  # a random Hopper falls
    assert ends[-1]  # the last, unfinished episode is closed by a time-out
    assert not ((data.terminals > 0) & (data.timeouts > 0)).any()
    starts = np.flatnonzero(ends[:-1]) + 1
    # next_obs continues the episode; a new episode starts from a reset, not from next_obs
    inside = np.setdiff1d(np.arange(len(data) - 1), starts - 1)
    np.testing.assert_array_equal(data.next_observations[inside], data.observations[inside + 1])


def test_shipped_policy_is_much_better_than_random() -> None:
    policy, state = load_policy(shipped_policy_path("HalfCheetah-v5"))
    assert state["obs_dim"] == 17 and state["act_dim"] == 6
    trained = evaluate(policy, "HalfCheetah-v5", episodes=1)
    random = evaluate(lambda o: np.random.default_rng(0).uniform(-1, 1, (1, 6)), "HalfCheetah-v5", episodes=1)
    assert trained.mean() > 2000 > random.mean()
    assert normalized_score("HalfCheetah-v5", float(trained.mean())) > 15
    assert normalized_score("dmc:cheetah-run", 100.0) is None


def test_noise_levels_give_mixed_quality() -> None:
    policy, _ = load_policy(shipped_policy_path("HalfCheetah-v5"))
    data = rollouts("HalfCheetah-v5", policy, 4000, seed=0, noise_levels=(0.0, 1.0))
    returns = data.episode_returns()
    assert len(returns) == 4 and returns[0] > returns[1] + 500 and returns[2] > returns[3] + 500


@pytest.mark.slow
def test_sac_replay_and_policy_checkpoint_round_trip(tmp_path) -> None:
    data, checkpoint = sac_replay("Hopper-v5", 400, seed=0, start_steps=200)
    assert len(data) == 400 and data.env_name == "Hopper-v5"
    save_policy(checkpoint, tmp_path / "p.pt")
    policy, state = load_policy(tmp_path / "p.pt")
    obs = data.observations[:5]
    assert policy(obs).shape == (5, 3) and np.abs(policy(obs)).max() <= 1
    assert torch.load(tmp_path / "p.pt", weights_only=True)["kind"] == "sac_actor"


def test_bad_policy_files(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_policy(tmp_path / "none.pt")
    torch.save({"kind": "other"}, tmp_path / "x.pt")
    with pytest.raises(DatasetError, match="not a policy checkpoint"):
        load_policy(tmp_path / "x.pt")
    (tmp_path / "y.pt").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match="not a readable policy checkpoint"):
        load_policy(tmp_path / "y.pt")
    with pytest.raises(FileNotFoundError, match="no policy checkpoint is shipped"):
        shipped_policy_path("Walker2d-v5")
    with pytest.raises(ValueError, match="steps"):
        rollouts("Hopper-v5", None, 0)
