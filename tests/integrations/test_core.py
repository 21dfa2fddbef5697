"""The integrations' shared core: the mixing split, the refit schedule, raw rows, spaces, configs."""

from __future__ import annotations

import logging

import gymnasium as gym
import numpy as np
import pytest

from synther_fast.data.dataset import DatasetError
from synther_fast.integrations.core import (
    SpaceError,
    SyntheticMix,
    box_dims,
    due_refit,
    raw_rows,
    synther_config,
)


def test_no_synthetic_rows_before_the_first_refill_and_one_warning_at_ratio_1(caplog):
    mix = SyntheticMix(1.0, seed=0)
    with caplog.at_level(logging.WARNING, logger="synther_fast.integrations"):
        assert [mix.n_synthetic(64) for _ in range(3)] == [0, 0, 0]
    assert sum("no refill yet" in r.message for r in caplog.records) == 1
    mix.install(np.arange(20, dtype=np.float32).reshape(10, 2))
    assert mix.n_synthetic(64) == 64


@pytest.mark.parametrize(("ratio", "batch", "expected"), [(0.5, 256, 128), (0.5, 7, 3), (0.3, 10, 3), (1.0, 5, 5),
                                                           (0.0, 9, 0)])
def test_the_split_is_int_ratio_times_b(ratio, batch, expected):
    mix = SyntheticMix(ratio)
    mix.install(np.ones((4, 3), np.float32))
    assert mix.n_synthetic(batch) == expected


def test_synthetic_draws_come_from_the_latest_refill_and_resume_exactly():
    mix = SyntheticMix(0.5, seed=3)
    mix.install(np.full((5, 2), 1.0, np.float32), step=10)
    mix.install(np.arange(10, dtype=np.float32).reshape(5, 2), step=20)
    assert (mix.refills, mix.last_refit_step) == (2, 20)
    assert set(mix.draw(50)[:, 0].tolist()) <= {0.0, 2.0, 4.0, 6.0, 8.0}
    state = mix.state_dict()
    ahead = mix.draw(8)
    other = SyntheticMix(0.1, seed=99)
    other.load_state_dict(state)
    assert other.ratio == 0.5
    np.testing.assert_array_equal(other.draw(8), ahead)


def test_bad_ratios_and_refills_are_refused():
    with pytest.raises(ValueError, match="ratio"):
        SyntheticMix(1.5)
    with pytest.raises(ValueError, match="non-empty"):
        SyntheticMix(0.5).install(np.zeros((0, 3), np.float32))
    with pytest.raises(RuntimeError, match="nothing has been refilled"):
        SyntheticMix(0.5).draw(3)


def test_refits_fall_on_multiples_even_when_steps_jump_over_them():
    assert due_refit(999, 1000, 0) is None
    assert due_refit(1000, 1000, 0) == 0
    assert due_refit(1000, 1000, 1) is None
    assert due_refit(2002, 1000, 1) == 1  # two environments stepped from 2000 to 2002


def test_raw_rows_name_the_array_and_rows_with_nan():
    obs = np.random.default_rng(0).normal(size=(6, 3))
    obs[4, 1] = np.nan
    with pytest.raises(DatasetError, match=r"observations has NaN/inf in 1 rows \(first: \[4\]\)"):
        raw_rows(obs, np.zeros((6, 2)), np.zeros(6), np.zeros((6, 3)), np.zeros(6))
    with pytest.raises(DatasetError, match="actions has 5 rows"):
        raw_rows(np.zeros((6, 3)), np.zeros((5, 2)), np.zeros(6), np.zeros((6, 3)), np.zeros(6))


def test_spaces_synther_cannot_model_are_refused_by_name():
    box = gym.spaces.Box(-1, 1, (3,), np.float32)
    assert box_dims(box, gym.spaces.Box(-1, 1, (2,), np.float32), "X") == (3, 2)
    with pytest.raises(SpaceError, match="Dict.*FlattenObservation"):
        box_dims(gym.spaces.Dict({"a": box}), box, "X")
    with pytest.raises(SpaceError, match=r"shape \(64, 64, 3\).*images"):
        box_dims(gym.spaces.Box(0, 255, (64, 64, 3), np.uint8), box, "X")
    with pytest.raises(SpaceError, match="continuous Box action space, got Discrete"):
        box_dims(box, gym.spaces.Discrete(4), "X")
    with pytest.raises(SpaceError, match="float observation Box, got dtype int64"):
        box_dims(gym.spaces.Box(0, 9, (3,), np.int64), box, "X")


def test_configs_take_the_learners_action_bounds_per_dimension():
    config = synther_config("tiny", task="Hopper-v5", action_bounds=(np.array([-1.0, -2.0]), np.array([1.0, 2.0])))
    assert config.generation.clip_actions and config.generation.task == "Hopper-v5"
    assert config.generation.action_bounds == ((-1.0, -2.0), (1.0, 2.0))
    assert synther_config("tiny", action_bounds=(-1.0, 1.0)).generation.action_bounds == (-1.0, 1.0)
    assert not synther_config("tiny").generation.clip_actions
    with pytest.raises(ValueError, match="unknown fit preset 'huge'"):
        synther_config("huge")
    with pytest.raises(TypeError, match="SynthERConfig or a preset name"):
        synther_config(3)  # type: ignore[arg-type]
