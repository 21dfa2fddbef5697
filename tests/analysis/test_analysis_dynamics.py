"""Dynamics error: real rows score ~0, perturbed and augmented rows do not; rows whose state the
observation hides (clipped velocities) are counted and left out; other tasks raise clearly."""

from __future__ import annotations

import numpy as np
import pytest

from synther_fast.analysis import dynamics_error, gaussian_noise, reconstructable
from synther_fast.pipelines.collect import rollouts


@pytest.fixture(scope="module")
def cheetah():
    data = rollouts("HalfCheetah-v5", None, 200, seed=0)
    layout = data.layout(True)
    return data.to_rows(layout), layout


def test_real_halfcheetah_rows_score_near_zero(cheetah) -> None:
    rows, layout = cheetah
    result = dynamics_error(rows, layout, "HalfCheetah-v5")
    summary = result.summary()
    assert result.scored == 200 and summary["excluded_unreconstructable"] == 0
    # only float32 storage separates a real row from the simulator (~1e-13 squared error)
    assert summary["next_obs_mse"] < 1e-9
    assert summary["next_obs_relative_mse"] < 1e-6
    assert summary["reward_mse"] < 1e-9
    assert summary["terminal_mismatch_rate"] == 0.0
    assert len(summary["next_obs_mse_per_column"]) == layout.obs_dim
    assert result.per_row().shape == (200,)


def test_perturbed_rows_score_the_perturbation(cheetah) -> None:
    rows, layout = cheetah
    bumped = rows.copy()
    bumped[:, layout.next_obs.start + 3] += 0.1  # one column of the next observation
    bumped[:, layout.reward] -= 0.5
    summary = dynamics_error(bumped, layout, "HalfCheetah-v5").summary()
    per_column = np.array(summary["next_obs_mse_per_column"])
    assert per_column[3] == pytest.approx(0.01, rel=1e-3)
    assert np.delete(per_column, 3).max() < 1e-9
    assert summary["reward_mse"] == pytest.approx(0.25, rel=1e-3)
    # a wrong action gives a wrong next state even though the row's own columns are untouched
    wrong = rows.copy()
    wrong[:, layout.action] = -wrong[:, layout.action]
    assert dynamics_error(wrong, layout, "HalfCheetah-v5").summary()["next_obs_mse"] > 1e-3


def test_noise_augmentation_scores_far_worse_than_real_rows(cheetah) -> None:
    rows, layout = cheetah
    real = dynamics_error(rows, layout, "HalfCheetah-v5", max_rows=100, seed=1)
    noisy = dynamics_error(gaussian_noise(rows, 0.1, layout, seed=0), layout, "HalfCheetah-v5", max_rows=100, seed=1)
    assert real.rows == noisy.rows == 100
    np.testing.assert_array_equal(real.scored_index, noisy.scored_index)  # one subsample for both
    assert noisy.summary()["next_obs_mse"] > 1e6 * max(real.summary()["next_obs_mse"], 1e-15)
    assert noisy.summary()["next_obs_mse"] > 1e-4


def test_clipped_hopper_velocities_are_detected_and_excluded() -> None:
    data = rollouts("Hopper-v5", None, 60, seed=0)
    layout = data.layout(True)
    rows = data.to_rows(layout)
    assert dynamics_error(rows, layout, "Hopper-v5").summary()["next_obs_mse"] < 1e-9
    clipped = rows.copy()
    clipped[:10, layout.obs.start + 5] = 10.0  # the torso's x velocity, at the clip bound
    clipped[10:15, layout.obs.start + 10] = -10.0  # the foot joint's velocity
    clipped[15, layout.obs.start + 2] = 10.0  # a joint *angle* of 10 is no velocity: not excluded
    assert reconstructable("Hopper-v5", clipped[:, layout.obs]).sum() == 45
    result = dynamics_error(clipped, layout, "Hopper-v5")
    assert result.excluded_unreconstructable == 15 and result.scored == 45
    assert 15 in result.scored_index and not set(range(15)) & set(result.scored_index)
    nan_row = rows.copy()
    nan_row[3, layout.next_obs.start] = np.nan
    assert dynamics_error(nan_row, layout, "Hopper-v5").excluded_unreconstructable == 1


def test_hopper_terminal_mismatch_and_walker_rows() -> None:
    data = rollouts("Hopper-v5", None, 300, seed=2)
    layout = data.layout(True)
    rows = data.to_rows(layout)
    flipped = rows.copy()
    flipped[:, layout.terminal] = 1.0 - flipped[:, layout.terminal]
    assert dynamics_error(rows, layout, "Hopper-v5").summary()["terminal_mismatch_rate"] == 0.0
    assert dynamics_error(flipped, layout, "Hopper-v5").summary()["terminal_mismatch_rate"] == 1.0
    walker = rollouts("Walker2d-v5", None, 100, seed=0)
    result = dynamics_error(walker.to_rows(walker.layout(True)), walker.layout(True), "Walker2d-v5")
    assert result.scored > 0 and result.summary()["next_obs_mse"] < 1e-9
    assert result.scored + result.excluded_unreconstructable == 100


@pytest.mark.parametrize("env_name", ["dmc:cheetah-run", "Ant-v5", "CartPole-v1"])
def test_unsupported_tasks_raise_a_clear_error(env_name) -> None:
    from synther_fast.replay.layout import TransitionLayout

    layout = TransitionLayout(17, 6, has_terminal=False)
    with pytest.raises(ValueError, match=f"{env_name!r} is not supported because"):
        dynamics_error(np.zeros((4, layout.width), np.float32), layout, env_name)


def test_rows_of_the_wrong_width_are_refused(cheetah) -> None:
    rows, layout = cheetah
    with pytest.raises(ValueError, match="width"):
        dynamics_error(rows[:, :-1], layout, "HalfCheetah-v5")
