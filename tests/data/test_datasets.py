"""Dataset files: the package .npz, D4RL-layout HDF5, Minari folders; and rejection of bad ones."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from synther_fast.data import Dataset, DatasetError, load_dataset, save_dataset


def episodes_dataset(n_episodes: int = 3, length: int = 20, seed: int = 0, terminal_last: bool = True) -> Dataset:
    """Episodes whose observation at step t is (episode, t, noise...): next_obs checks are exact."""
    rng = np.random.default_rng(seed)
    obs, act, rew, nxt, term, tout = [], [], [], [], [], []
    for e in range(n_episodes):
        z = rng.normal(size=length + 1)
        for t in range(length):
            obs.append(np.array([e, t, z[t]], np.float32))
            nxt.append(np.array([e, t + 1, z[t + 1]], np.float32))
            act.append(rng.uniform(-1, 1, 2))
            rew.append(float(e + t))
            last = t == length - 1
            term.append(float(last and terminal_last and e % 2 == 0))
            tout.append(float(last and not (terminal_last and e % 2 == 0)))
    return Dataset(np.array(obs), np.array(act), np.array(rew), np.array(nxt), np.array(term), np.array(tout),
                   "HalfCheetah-v5")


def test_npz_round_trip(tmp_path) -> None:
    data = episodes_dataset()
    path = save_dataset(data, tmp_path / "d.npz")
    loaded = load_dataset(path)
    assert loaded == data and loaded.env_name == "HalfCheetah-v5"
    np.testing.assert_array_equal(loaded.to_rows(), data.to_rows())
    assert loaded.episode_returns().tolist() == [sum(range(20)), sum(range(1, 21)), sum(range(2, 22))]


def test_d4rl_hdf5_round_trip_with_next_observations(tmp_path) -> None:
    data = episodes_dataset()
    loaded = load_dataset(save_dataset(data, tmp_path / "d.hdf5"))
    assert loaded == data


def test_d4rl_without_next_observations_builds_them_from_episodes(tmp_path) -> None:
    """As D4RL's qlearning_dataset: next obs is the following step; time-out steps are dropped."""
    data = episodes_dataset(n_episodes=3, length=5)
    path = tmp_path / "d4rl.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = data.observations
        f["actions"] = data.actions
        f["rewards"] = data.rewards
        f["terminals"] = data.terminals.astype(bool)
        f["timeouts"] = data.timeouts.astype(bool)
    loaded = load_dataset(path)
    # 15 steps; episode 1 ends by time-out (dropped) and the final step has no successor.
    assert len(loaded) == 13
    same_episode = loaded.next_observations[:, 0] == loaded.observations[:, 0]
    np.testing.assert_array_equal(loaded.next_observations[same_episode, 1], loaded.observations[same_episode, 1] + 1)
    # Only the terminal step of episode 0 crosses into the next episode (its target is masked).
    assert np.flatnonzero(~same_episode).tolist() == [4] and loaded.terminals[4] == 1
    # Episode ends survive: the timed-out episode 1 now ends at its last kept step, and the file's
    # last row closes episode 2; returns split per episode as in the original data.
    assert np.flatnonzero(loaded.timeouts).tolist() == [8, 12]
    assert len(loaded.episode_returns()) == 3
    with h5py.File(path, "a") as f:
        del f["timeouts"]
    with pytest.raises(DatasetError, match="needs 'timeouts'"):
        load_dataset(path)


def write_minari(folder, data: Dataset, length: int, dict_obs: bool = False) -> None:
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "metadata.json").write_text(json.dumps({"dataset_id": "test/x-v0"}))
    with h5py.File(folder / "data" / "main_data.hdf5", "w") as f:
        for e in range(len(data) // length):
            s = slice(e * length, (e + 1) * length)
            g = f.create_group(f"episode_{e}")
            obs = np.concatenate([data.observations[s], data.next_observations[s][-1:]])
            if dict_obs:
                g.create_group("observations")
                g["observations"]["a"] = obs[:, :2]
                g["observations"]["b"] = obs[:, 2:]
            else:
                g["observations"] = obs
            g["actions"] = data.actions[s]
            g["rewards"] = data.rewards[s]
            g["terminations"] = data.terminals[s].astype(bool)
            g["truncations"] = data.timeouts[s].astype(bool)


@pytest.mark.parametrize("dict_obs", [False, True])
def test_minari_folder(tmp_path, dict_obs) -> None:
    data = episodes_dataset(length=10)
    write_minari(tmp_path / "ds", data, 10, dict_obs)
    loaded = load_dataset(tmp_path / "ds")
    np.testing.assert_array_equal(loaded.observations, data.observations)
    np.testing.assert_array_equal(loaded.next_observations, data.next_observations)
    np.testing.assert_array_equal(loaded.terminals, data.terminals)
    np.testing.assert_array_equal(loaded.timeouts, data.timeouts)


def test_truncated_and_corrupted_files(tmp_path) -> None:
    data = episodes_dataset()
    npz = save_dataset(data, tmp_path / "d.npz")
    npz.write_bytes(npz.read_bytes()[:200])
    with pytest.raises(DatasetError, match="not a readable .npz"):
        load_dataset(npz)
    h5 = save_dataset(data, tmp_path / "d.hdf5")
    raw = bytearray(h5.read_bytes())
    h5.write_bytes(bytes(raw[: len(raw) // 3]))
    with pytest.raises(DatasetError, match=str(h5.name)):
        load_dataset(h5)
    garbage = tmp_path / "g.hdf5"
    garbage.write_bytes(b"\x00" * 1000)
    with pytest.raises(DatasetError, match="not a readable HDF5"):
        load_dataset(garbage)


def test_missing_keys_and_other_formats(tmp_path) -> None:
    path = tmp_path / "partial.hdf5"
    with h5py.File(path, "w") as f:
        f["observations"] = np.zeros((5, 3))
    with pytest.raises(DatasetError, match="missing D4RL keys"):
        load_dataset(path)
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(DatasetError, match="missing arrays"):
        load_dataset(tmp_path / "plain.npz")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(DatasetError, match="unknown dataset format"):
        load_dataset(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        load_dataset(tmp_path / "nope.npz")
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(DatasetError, match="not a Minari dataset"):
        load_dataset(tmp_path / "empty_dir")


def test_validation_errors_name_the_problem() -> None:
    d = episodes_dataset()
    with pytest.raises(DatasetError, match="actions has 59 rows"):
        Dataset(d.observations, d.actions[:-1], d.rewards, d.next_observations, d.terminals, d.timeouts)
    bad = d.rewards.copy()
    bad[[3, 7]] = np.nan
    with pytest.raises(DatasetError, match=r"rewards has NaN/inf in 2 rows \(first: \[3, 7\]\)"):
        Dataset(d.observations, d.actions, bad, d.next_observations, d.terminals, d.timeouts)
    with pytest.raises(DatasetError, match="empty"):
        Dataset(np.zeros((0, 3)), np.zeros((0, 2)), np.zeros(0), np.zeros((0, 3)), np.zeros(0), np.zeros(0))
    with pytest.raises(DatasetError, match="terminals must be 0 or 1"):
        Dataset(d.observations, d.actions, d.rewards, d.next_observations, d.terminals * 0.5, d.timeouts)
    with pytest.raises(DatasetError, match="numeric"):
        Dataset(np.array([["a"] * 3] * 60), d.actions, d.rewards, d.next_observations, d.terminals, d.timeouts)


def test_rows_layout_and_subset() -> None:
    d = episodes_dataset(n_episodes=4, length=10)
    rows = d.to_rows(d.layout(has_terminal=True))
    back = Dataset.from_rows(rows, d.layout(True))
    np.testing.assert_array_equal(back.next_observations, d.next_observations)
    np.testing.assert_array_equal(back.terminals, d.terminals)
    assert d.to_rows(d.layout(False)).shape[1] == rows.shape[1] - 1
    assert d.subset(1.0) is d


def test_subset_draws_whole_episodes_at_random() -> None:
    d = episodes_dataset(n_episodes=20, length=10)  # observation column 0 is the episode index
    picks = []
    for seed in range(4):
        sub = d.subset(0.15, seed=seed)
        episodes = sub.observations[:, 0]
        assert len(sub) == 30  # 15% of 200 rows = 3 whole episodes of 10
        kept = sorted(set(episodes.tolist()))
        assert episodes.tolist() == [e for e in kept for _ in range(10)]  # whole, in order
        np.testing.assert_array_equal(sub.observations[:, 1], np.tile(np.arange(10), 3))
        picks.append(tuple(kept))
    assert len(set(picks)) > 1 and picks != [(0.0, 1.0, 2.0)] * 4  # seeded draws, not the prefix
    assert d.subset(0.15, seed=2) == d.subset(0.15, seed=2)
    assert len(d.subset(0.16, seed=0)) == 40  # the target is covered: a 4th episode
    with pytest.raises(ValueError, match="fraction"):
        d.subset(0.0)


def test_cut_takes_whole_random_episodes_and_truncates_the_last_drawn() -> None:
    d = episodes_dataset(n_episodes=20, length=10)  # observation column 0 is the episode index
    picks = set()
    for seed in range(5):
        cut = d.cut(25, seed=seed)
        assert len(cut) == 25
        episodes, steps = cut.observations[:, 0], cut.observations[:, 1]
        kept = list(dict.fromkeys(episodes.tolist()))
        assert kept == sorted(kept) and len(kept) == 3  # two whole episodes and one cut, in their order
        lengths = [int((episodes == e).sum()) for e in kept]
        assert sorted(lengths) == [5, 10, 10]
        for e in kept:  # each kept episode is a prefix of itself: steps 0, 1, ...
            np.testing.assert_array_equal(steps[episodes == e], np.arange(int((episodes == e).sum())))
        short = kept[lengths.index(5)]
        last = np.flatnonzero(episodes == short)[-1]
        assert cut.timeouts[last] == 1 and cut.terminals[last] == 0  # the cut end is a time-out, not a terminal
        assert cut.episode_returns().size == 3
        picks.add(tuple(kept))
    assert len(picks) > 1  # a new random choice per seed
    assert d.cut(25, seed=1) == d.cut(25, seed=1)
    quarter = d.cut(4, seed=0)  # fewer rows than an episode: a prefix of one episode
    assert len(set(quarter.observations[:, 0].tolist())) == 1 and quarter.timeouts[-1] == 1
    assert len(d.cut(20, seed=0)) == 20 and d.cut(200, seed=0) == d  # exact fits truncate nothing
    with pytest.raises(ValueError, match="positive number"):
        d.cut(0)
    with pytest.raises(ValueError, match="a cut of 201 transitions from a dataset of 200"):
        d.cut(201)


def test_plain_d4rl_style_npz_without_meta_loads(tmp_path) -> None:
    rng = np.random.default_rng(0)
    arrays = {"observations": rng.normal(size=(20, 3)), "actions": rng.uniform(-1, 1, (20, 2)),
              "rewards": rng.normal(size=20), "next_observations": rng.normal(size=(20, 3)),
              "terminals": (rng.uniform(size=20) < 0.1).astype(np.float32)}
    np.savez(tmp_path / "d4rl.npz", **arrays)
    data = load_dataset(tmp_path / "d4rl.npz")
    assert len(data) == 20 and not data.timeouts.any()
    np.testing.assert_allclose(data.observations, arrays["observations"].astype(np.float32))
