"""Augmentation baselines: Gaussian noise and mixup with a strength, and the bisection that tunes
the strength to a target novelty."""

from __future__ import annotations

import numpy as np
import pytest

from synther_fast.analysis import gaussian_noise, match_strength, mixup, novelty
from synther_fast.replay.layout import TransitionLayout

LAYOUT = TransitionLayout(4, 2, has_terminal=True)


def rows(n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = (rng.standard_normal((n, LAYOUT.width)) * np.arange(1, LAYOUT.width + 1)).astype(np.float32)
    out[:, LAYOUT.terminal] = rng.random((n, 1)) < 0.1
    return out


def test_zero_strength_is_the_identity_and_terminals_stay_binary() -> None:
    data = rows()
    np.testing.assert_array_equal(gaussian_noise(data, 0.0, LAYOUT), data)
    np.testing.assert_array_equal(mixup(data, 0.0, LAYOUT), data)
    for out in (gaussian_noise(data, 0.5, LAYOUT), mixup(data, 0.5, LAYOUT)):
        np.testing.assert_array_equal(out[:, LAYOUT.terminal], data[:, LAYOUT.terminal])
        assert not np.array_equal(out, data)


def test_noise_has_the_requested_std_per_column() -> None:
    data = rows(20_000)
    out = gaussian_noise(data, 0.2, LAYOUT, seed=1)
    ratio = (out - data)[:, :-1].std(axis=0) / data[:, :-1].std(axis=0)
    np.testing.assert_allclose(ratio, 0.2, rtol=0.03)
    fixed = gaussian_noise(data, 0.2, LAYOUT, seed=1, scale=np.ones(LAYOUT.width))
    np.testing.assert_allclose((fixed - data)[:, 0].std(), 0.2, rtol=0.03)


def test_mixup_stays_between_a_row_and_its_partner() -> None:
    data = rows(500)
    out = mixup(data, 0.3, LAYOUT, seed=2)
    # a mix of x_i and x_j with weight <= 0.3 on x_j: |out - x_i| <= 0.3 |x_j - x_i| per column,
    # so the change never exceeds 0.3 x the column's full range
    span = data.max(axis=0) - data.min(axis=0)
    assert (np.abs(out - data) <= 0.3 * span + 1e-5).all()
    with pytest.raises(ValueError, match="mixup strength"):
        mixup(data, 0.7, LAYOUT)
    with pytest.raises(ValueError, match="noise strength"):
        gaussian_noise(data, -1.0, LAYOUT)


def test_match_strength_reaches_the_target_novelty() -> None:
    data = rows(1500)
    target = 0.8
    strength, achieved = match_strength("noise", data, LAYOUT, target, max_rows=300)
    assert achieved == pytest.approx(target, rel=0.02)
    # the found strength reproduces the novelty on the rows it was tuned on
    scale = data.astype(np.float64).std(axis=0)
    out = gaussian_noise(data, strength, LAYOUT, seed=0, scale=scale)
    assert novelty(data, out)["mean"] == pytest.approx(target, rel=0.1)
    # an unreachable target returns the largest strength and what it reaches
    strength, achieved = match_strength("mixup", data, LAYOUT, 1e6, max_rows=200)
    assert strength == 0.5 and achieved < 1e6
    with pytest.raises(ValueError, match="unknown augmentation"):
        match_strength("cutout", data, LAYOUT, 1.0)


def test_state_noise_moves_only_the_states_by_the_requested_std() -> None:
    from synther_fast.analysis.augment import state_noise

    data = rows(20_000)
    out = state_noise(data, 0.3, LAYOUT, seed=4)
    delta = out - data
    states = np.r_[np.arange(LAYOUT.obs.start, LAYOUT.obs.stop), np.arange(LAYOUT.next_obs.start, LAYOUT.next_obs.stop)]
    others = np.setdiff1d(np.arange(LAYOUT.width), states)
    assert (delta[:, others] == 0).all()  # actions, reward, terminal untouched
    np.testing.assert_allclose(delta[:, states].std(axis=0) / data[:, states].std(axis=0), 0.3, rtol=0.03)
    # obs and next_obs get independent draws (not one shift of the whole state)
    assert abs(np.corrcoef(delta[:, LAYOUT.obs.start], delta[:, LAYOUT.next_obs.start])[0, 1]) < 0.05
    strength, achieved = match_strength("state_noise", data[:1500], LAYOUT, 0.5, max_rows=300)
    assert achieved == pytest.approx(0.5, rel=0.02) and strength > 0
    with pytest.raises(ValueError, match="noise strength"):
        state_noise(data, -0.1, LAYOUT)
