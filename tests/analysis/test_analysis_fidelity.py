"""Marginal fidelity (KS, standardised W1, mean gap, correlation error), its real-vs-real
yardstick, and terminal rates inside and outside a task's unhealthy region."""

from __future__ import annotations

import numpy as np
import pytest

from synther_fast.analysis import (
    correlation_error,
    fidelity_with_yardstick,
    ks_statistic,
    marginal_fidelity,
    split_held_out,
    terminal_rates,
    unhealthy,
    wasserstein1,
)
from synther_fast.replay.layout import TransitionLayout

LAYOUT = TransitionLayout(3, 2, has_terminal=True)


def rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = rng.standard_normal((n, LAYOUT.width)).astype(np.float32)
    out[:, LAYOUT.next_obs] = out[:, LAYOUT.obs] + 0.1 * out[:, LAYOUT.next_obs]  # correlated columns
    out[:, LAYOUT.terminal] = rng.random((n, 1)) < 0.05
    return out


def test_identical_data_has_zero_gap() -> None:
    data = rows(2000)
    fid = marginal_fidelity(data, data.copy(), LAYOUT)
    assert {"mean_ks", "max_ks", "mean_gap_in_std", "columns"} <= fid.keys()  # what callers read
    for key in ("mean_ks", "max_ks", "mean_gap_in_std", "mean_w1_in_std", "max_w1_in_std", "corr_error",
                "corr_max_error"):
        assert fid[key] == pytest.approx(0.0, abs=1e-12), key
    assert set(fid["columns"]) == {LAYOUT.column_name(c) for c in range(LAYOUT.width)}


def test_known_shift_gives_the_expected_distances() -> None:
    a = np.random.default_rng(1).standard_normal(5000)
    assert wasserstein1(a, a + 0.3) == pytest.approx(0.3, rel=1e-9)
    assert wasserstein1(a, a) == 0.0
    # different sizes: W1 of {0} and {0, 1} is 1/2; KS of disjoint samples is 1
    assert wasserstein1(np.array([0.0]), np.array([0.0, 1.0])) == pytest.approx(0.5)
    assert ks_statistic(np.arange(10.0), np.arange(10.0) + 100) == 1.0
    data = rows(3000)
    shifted = data.copy()
    shifted[:, 0] += 0.5 * data[:, 0].std()
    col = marginal_fidelity(data, shifted, LAYOUT, max_rows=10_000)["columns"]["obs[0]"]
    assert col["w1_in_std"] == pytest.approx(0.5, rel=1e-3)
    assert col["mean_gap_in_std"] == pytest.approx(0.5, rel=1e-3)


def test_wasserstein_matches_scipy_on_unequal_samples() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal(700), 2 * rng.standard_normal(300) + 1
    assert wasserstein1(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_correlation_error_sees_broken_dependence_that_marginals_miss() -> None:
    data = rows(4000)
    broken = data.copy()
    broken[:, LAYOUT.next_obs] = broken[np.random.default_rng(3).permutation(4000)][:, LAYOUT.next_obs]
    fid = marginal_fidelity(data, broken, LAYOUT)
    assert fid["mean_ks"] < 1e-12  # every marginal is untouched...
    assert fid["corr_max_error"] > 0.9  # ...but obs[i] and next_obs[i] no longer move together
    assert correlation_error(data, data)["corr_error"] == 0.0
    constant = data.copy()
    constant[:, 1] = 3.0  # a constant column must not produce NaN
    assert np.isfinite(correlation_error(data, constant)["corr_max_error"])


def test_held_out_yardstick_separates_a_good_from_a_bad_generator() -> None:
    data = rows(6000)
    good = rows(6000, seed=7)  # a fresh sample of the same law
    bad = good.copy()
    bad[:, :5] *= 2.0
    train, held = split_held_out(data, 0.2, seed=0)
    assert len(held) == 1200 and len(train) == 4800
    assert not (set(map(bytes, train)) & set(map(bytes, held)))
    fine = fidelity_with_yardstick(data, good, LAYOUT, held_out_fraction=0.2)
    poor = fidelity_with_yardstick(data, bad, LAYOUT, held_out_fraction=0.2)
    assert fine["synthetic"]["rows"] == fine["real_held_out"]["rows"]  # same sampling noise on both
    assert fine["synthetic"]["mean_ks"] < 2 * fine["real_held_out"]["mean_ks"]
    assert poor["synthetic"]["max_ks"] > 3 * poor["real_held_out"]["max_ks"]
    with pytest.raises(ValueError, match="fraction"):
        split_held_out(data, 1.0)


def test_terminal_rates_are_reported_on_their_own() -> None:
    real = rows(2000)
    real[:, LAYOUT.terminal] = 0.0
    real[:40, LAYOUT.terminal] = 1.0  # 2%
    synthetic = real.copy()
    synthetic[:, LAYOUT.terminal] = 0.0
    synthetic[:4, LAYOUT.terminal] = 0.7  # above the 0.5 threshold: 0.2%
    out = terminal_rates(real, synthetic, LAYOUT)
    assert out["real"]["terminal_rate"] == pytest.approx(0.02)
    assert out["synthetic"]["terminal_rate"] == pytest.approx(0.002)
    assert "terminal_rate_if_unhealthy" not in out["real"]  # no task, no health rules
    assert terminal_rates(real, synthetic, TransitionLayout(3, 2, has_terminal=False)) is None


def test_real_hopper_terminals_are_exactly_the_unhealthy_next_states() -> None:
    from synther_fast.pipelines.collect import rollouts

    data = rollouts("Hopper-v5", None, 600, seed=0)
    layout = data.layout(True)
    real = data.to_rows(layout)
    bad = unhealthy("Hopper-v5", data.next_observations)
    np.testing.assert_array_equal(bad, data.terminals > 0)  # the health rules are the task's
    assert bad.sum() >= 5
    synthetic = real.copy()
    synthetic[:, layout.terminal] = 0.0  # a generator that never terminates
    out = terminal_rates(real, synthetic, layout, "Hopper-v5")
    assert out["real"]["terminal_rate_if_unhealthy"] == 1.0
    assert out["real"]["terminal_rate_if_healthy"] == 0.0
    assert out["synthetic"]["terminal_rate_if_unhealthy"] == 0.0
    assert unhealthy("HalfCheetah-v5", data.next_observations) is None
    walker = np.zeros((3, 17))
    walker[:, 0] = [1.2, 0.5, 2.5]  # torso height: healthy, too low, too high
    np.testing.assert_array_equal(unhealthy("Walker2d-v5", walker), [False, True, True])
