"""synther_fast.upsample: a D4RL-style dict or dataset file in, n synthetic transitions out."""

from __future__ import annotations

import numpy as np
import pytest

import synther_fast
from synther_fast.config import tiny
from synther_fast.data import Dataset
from synther_fast.data.dataset import DatasetError, save_dataset

# The tiny fit, with the published threshold terminals: the default for a task without a rule is a
# termination classifier, seconds of fitting that tests/diffusion/test_termination.py covers.
FAST = tiny().with_overrides(**{"generation.terminals": "threshold"})


def qlearning_dict(n: int = 400, seed: int = 0, timeouts: bool = True) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    actions = rng.uniform(-1, 1, size=(n, 2)).astype(np.float32)
    out = {"observations": obs, "actions": actions, "rewards": obs[:, 0] + actions[:, 1],
           "next_observations": obs + 0.1 * np.concatenate([actions, actions[:, :1]], 1),
           "terminals": (rng.random(n) < 0.1)}
    if timeouts:
        out["timeouts"] = np.zeros(n, bool)
    return out


def test_the_rows_come_back_under_the_inputs_keys_and_follow_the_data():
    data = qlearning_dict()
    out = synther_fast.upsample(data, 500, config=FAST, seed=0, progress=False)
    assert sorted(out) == sorted(data)
    assert {k: v.shape for k, v in out.items()} == {"observations": (500, 3), "actions": (500, 2), "rewards": (500,),
                                                    "next_observations": (500, 3), "terminals": (500,),
                                                    "timeouts": (500,)}
    assert all(v.dtype == np.float32 for v in out.values())
    assert set(np.unique(out["terminals"])) <= {0.0, 1.0} and not out["timeouts"].any()
    # a real model of the rows: means near the data's, not at 0 or a constant
    assert np.abs(out["observations"].mean(0) - data["observations"].mean(0)).max() < 0.5
    assert out["observations"].std(0).min() > 0.3
    again = synther_fast.upsample(data, 500, config=FAST, seed=0, progress=False)
    np.testing.assert_array_equal(again["observations"], out["observations"])
    other = synther_fast.upsample(data, 500, config=FAST, seed=1, progress=False)
    assert not np.array_equal(other["observations"], out["observations"])


def test_a_dataset_file_and_a_sampler_choice(tmp_path):
    data = qlearning_dict(timeouts=False)
    path = save_dataset(Dataset(data["observations"], data["actions"], data["rewards"], data["next_observations"],
                                data["terminals"].astype(np.float32), np.zeros(400)), tmp_path / "d.npz")
    out = synther_fast.upsample(path, 64, config=FAST, sampler="euler", num_steps=3, progress=False)
    assert sorted(out) == ["actions", "next_observations", "observations", "rewards", "terminals"]
    assert len(out["rewards"]) == 64


def test_bad_input_names_the_key_and_the_rows(tmp_path):
    data = qlearning_dict()
    with pytest.raises(DatasetError, match="no 'next_observations'"):
        synther_fast.upsample({k: v for k, v in data.items() if k != "next_observations"}, 10, preset="tiny")
    with pytest.raises(DatasetError, match="rewards has 399 rows, observations 400"):
        synther_fast.upsample(data | {"rewards": data["rewards"][:-1]}, 10, preset="tiny")
    bad = data["next_observations"].copy()
    bad[[7, 9], 0] = np.nan
    with pytest.raises(DatasetError, match=r"next_observations has NaN/inf in 2 rows \(first: \[7, 9\]\)"):
        synther_fast.upsample(data | {"next_observations": bad}, 10, preset="tiny")
    with pytest.raises(ValueError, match="n must be a positive number of rows"):
        synther_fast.upsample(data, 0, preset="tiny")
    with pytest.raises(ValueError, match="unknown offline preset 'paper_online'"):
        synther_fast.upsample(data, 10, preset="paper_online")
    with pytest.raises(TypeError, match="dict of arrays"):
        synther_fast.upsample([1, 2], 10)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        synther_fast.upsample(tmp_path / "missing.npz", 10, preset="tiny")


def test_a_task_whose_rule_reads_other_columns_is_refused_before_the_fit():
    with pytest.raises(ValueError, match="Hopper-v5's termination rule reads 11-dim observations, the rows have 3"):
        synther_fast.upsample(qlearning_dict(), 10, config=tiny(), env="Hopper-v5", progress=False)
