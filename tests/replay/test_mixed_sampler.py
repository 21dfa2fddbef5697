"""MixedSampler: uniform indices, the exact mixing rule, seeds, RNG state and caller-owned output."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from replay_helpers import numbered_rows

from synther_fast import Batch, MixedSampler, ReplayBuffer, TransitionLayout
from synther_fast.replay.reference import NumpyMixedSampler, NumpyReplayBuffer

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=True)
NO_TERMINAL = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=False)
PAIRS = [(ReplayBuffer, MixedSampler), (NumpyReplayBuffer, NumpyMixedSampler)]


def filled(buffer_cls, capacity: int, total: int, layout=LAYOUT, offset: int = 0):
    buf = buffer_cls(capacity, layout)
    for start in range(0, total, 7):
        buf.add(numbered_rows(offset + start, min(7, total - start), layout))
    return buf


def chi_square_uniform(values: np.ndarray, expected_support: np.ndarray) -> float:
    """Chi-square statistic of the values against a uniform law on the support (values outside
    the support make it infinite)."""
    if not np.isin(values, expected_support).all():
        return math.inf
    counts = np.array([np.count_nonzero(values == v) for v in expected_support])
    expected = len(values) / len(expected_support)
    return float(((counts - expected) ** 2 / expected).sum())


def uniform_threshold(df: int) -> float:
    return df + 6 * math.sqrt(2 * df)  # ~6 sigma above the chi-square mean: false alarm < 1e-6


@pytest.mark.parametrize("buffer_cls, sampler_cls", PAIRS)
@pytest.mark.parametrize("capacity, total", [(50, 37), (50, 50), (50, 123)])
def test_indices_uniform_over_the_filled_rows(buffer_cls, sampler_cls, capacity, total) -> None:
    buf = filled(buffer_cls, capacity, total)
    sampler = sampler_cls(buf, None, ratio=0.0, batch_size=1000, seed=7)
    values = np.concatenate([sampler.sample().obs[:, 0] for _ in range(200)])
    support = np.arange(max(0, total - capacity), total, dtype=np.float32)
    stat = chi_square_uniform(values, support)
    assert stat < uniform_threshold(len(support) - 1), stat


def test_uniformity_check_catches_an_off_by_one() -> None:
    """The statistic above fails a sampler that never draws the newest row (or draws one too many)."""
    rng = np.random.default_rng(0)
    support = np.arange(50, dtype=np.float32)
    never_last = rng.integers(0, 49, 200_000).astype(np.float32)
    one_beyond = rng.integers(0, 51, 200_000).astype(np.float32)
    biased = np.minimum(rng.integers(0, 52, 200_000), 49).astype(np.float32)
    for values in (never_last, one_beyond, biased):
        assert chi_square_uniform(values, support) > uniform_threshold(49)


@pytest.mark.parametrize("buffer_cls, sampler_cls", PAIRS)
@pytest.mark.parametrize("ratio, batch_size", [(0.5, 256), (0.25, 10), (0.3, 7), (0.999, 100), (0.0, 5)])
def test_exact_mixing_ratio_synthetic_first(buffer_cls, sampler_cls, ratio, batch_size) -> None:
    real = filled(buffer_cls, 300, 300)
    synthetic = filled(buffer_cls, 300, 300, offset=10_000)
    sampler = sampler_cls(real, synthetic, ratio=ratio, batch_size=batch_size, seed=1)
    batch = sampler.sample()
    n_syn = int(batch_size * ratio)  # the published int(B * ratio)
    assert batch.n_synthetic == n_syn
    assert (batch.obs[:n_syn, 0] >= 10_000).all()
    assert (batch.obs[n_syn:, 0] < 10_000).all()


@pytest.mark.parametrize("buffer_cls, sampler_cls", PAIRS)
def test_too_few_synthetic_rows_falls_back_to_all_real(buffer_cls, sampler_cls) -> None:
    real = filled(buffer_cls, 100, 100)
    synthetic = filled(buffer_cls, 200, 27, offset=10_000)  # 27 rows < the 128 needed
    sampler = sampler_cls(real, synthetic, ratio=0.5, batch_size=256, seed=1)
    batch = sampler.sample()
    assert batch.n_synthetic == 0 and (batch.obs[:, 0] < 10_000).all()
    synthetic.add(numbered_rows(20_000, 101, LAYOUT))  # now 128 rows: mixing starts
    assert sampler.sample().n_synthetic == 128


@pytest.mark.parametrize("buffer_cls, sampler_cls", PAIRS)
def test_synthetic_only_raises_instead_of_using_real_data(buffer_cls, sampler_cls) -> None:
    real = filled(buffer_cls, 100, 100)
    synthetic = filled(buffer_cls, 100, 10, offset=10_000)
    sampler = sampler_cls(real, synthetic, ratio=1.0, batch_size=32, seed=1)
    with pytest.raises(RuntimeError, match="synthetic-only"):
        sampler.sample()
    synthetic.add(numbered_rows(20_000, 22, LAYOUT))
    assert (sampler.sample().obs[:, 0] >= 10_000).all()
    only = sampler_cls(None, synthetic, ratio=1.0, batch_size=32, seed=1)
    assert only.sample().n_synthetic == 32


@pytest.mark.parametrize("buffer_cls, sampler_cls", PAIRS)
def test_empty_real_buffer_raises(buffer_cls, sampler_cls) -> None:
    sampler = sampler_cls(buffer_cls(10, LAYOUT), None, ratio=0.0, batch_size=4, seed=0)
    with pytest.raises(RuntimeError, match="empty"):
        sampler.sample()


@pytest.mark.parametrize("buffer_cls, sampler_cls", PAIRS)
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"ratio": -0.1}, ValueError, r"\[0, 1\]"),
        ({"ratio": 1.5}, ValueError, r"\[0, 1\]"),
        ({"ratio": float("nan")}, ValueError, r"\[0, 1\]"),
        ({"ratio": "half"}, TypeError, "number"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": -3}, ValueError, "batch_size"),
        ({"seed": -1}, ValueError, "seed"),
    ],
)
def test_bad_arguments(buffer_cls, sampler_cls, kwargs, error, match) -> None:
    real, synthetic = filled(buffer_cls, 10, 10), filled(buffer_cls, 10, 10)
    args = {"ratio": 0.5, "batch_size": 4, "seed": 0} | kwargs
    with pytest.raises(error, match=match):
        sampler_cls(real, synthetic, **args)


def test_missing_or_mismatched_buffers() -> None:
    real = filled(ReplayBuffer, 10, 10)
    with pytest.raises(ValueError, match="synthetic buffer"):
        MixedSampler(real, None, ratio=0.5, batch_size=4)
    with pytest.raises(ValueError, match="real buffer"):
        MixedSampler(None, real, ratio=0.5, batch_size=4)
    with pytest.raises(ValueError, match="layout"):
        MixedSampler(real, ReplayBuffer(10, NO_TERMINAL), ratio=0.5, batch_size=4)
    with pytest.raises(TypeError, match="ReplayBuffer"):
        MixedSampler(NumpyReplayBuffer(10, LAYOUT), None, ratio=0.0, batch_size=4)


def test_same_seed_same_batches_different_seed_different() -> None:
    real, synthetic = filled(ReplayBuffer, 1000, 1000), filled(ReplayBuffer, 1000, 1000, offset=5000)
    draws = {}
    for seed in (3, 3, 4):
        sampler = MixedSampler(real, synthetic, 0.5, 64, seed=seed)
        draws.setdefault(seed, []).append(np.concatenate([sampler.sample().data for _ in range(5)]))
    np.testing.assert_array_equal(draws[3][0], draws[3][1])
    assert not np.array_equal(draws[3][0], draws[4][0])


@pytest.mark.parametrize("buffer_cls, sampler_cls", PAIRS)
def test_state_dict_round_trip_repeats_the_draws(buffer_cls, sampler_cls) -> None:
    real, synthetic = filled(buffer_cls, 1000, 1000), filled(buffer_cls, 1000, 1000, offset=5000)
    sampler = sampler_cls(real, synthetic, 0.5, 64, seed=11)
    sampler.sample()
    state = sampler.state_dict()
    expected = [sampler.sample().data.copy() for _ in range(3)]
    other = sampler_cls(real, synthetic, 0.5, 64, seed=999)
    other.load_state_dict(state)
    for want in expected:
        np.testing.assert_array_equal(other.sample().data, want)


def test_load_state_dict_rejects_a_foreign_state() -> None:
    real = filled(ReplayBuffer, 100, 100)
    sampler = MixedSampler(real, None, 0.0, 8, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        sampler.load_state_dict(MixedSampler(real, None, 0.0, 16, seed=0).state_dict())
    bad = sampler.state_dict() | {"rng_state": [1, 2, 3]}
    with pytest.raises(ValueError, match="rng_state"):
        sampler.load_state_dict(bad)
    zero = sampler.state_dict() | {"rng_state": [0, 0, 0, 0]}
    with pytest.raises(ValueError, match="zero"):
        sampler.load_state_dict(zero)


def test_field_views_and_zero_terminal_column() -> None:
    layout = NO_TERMINAL
    buf = ReplayBuffer(10, layout)
    rows = np.random.default_rng(0).normal(size=(10, layout.width)).astype(np.float32)
    buf.add(rows)
    sampler = MixedSampler(buf, None, 0.0, 6, seed=0)
    out = np.full((6, layout.width + 1), 7.0, dtype=np.float32)  # poison the terminal column
    batch = sampler.sample(out)
    assert batch.reward.shape == (6, 1) and batch.terminal.shape == (6, 1)
    assert (batch.terminal == 0).all()
    assert np.shares_memory(batch.obs, out) and np.shares_memory(batch.terminal, out)
    for i in range(6):  # each sampled row is one stored row, with its fields in place
        j = np.flatnonzero((rows == out[i, : layout.width]).all(axis=1))
        assert len(j) == 1
        np.testing.assert_array_equal(batch.next_obs[i], rows[j[0], layout.next_obs])
        np.testing.assert_array_equal(batch.action[i], rows[j[0], layout.action])


def test_output_into_a_torch_tensor_without_copy() -> None:
    buf = filled(ReplayBuffer, 100, 100)
    sampler = MixedSampler(buf, None, 0.0, 16, seed=0)
    storage = torch.full((16, LAYOUT.width), -1.0)
    batch = sampler.sample(storage)
    assert batch.data is storage and isinstance(batch.obs, torch.Tensor)
    assert batch.obs.data_ptr() == storage.data_ptr()
    assert (storage >= 0).all()  # every element written
    assert Batch.allocate(LAYOUT, 4, torch=True).data.dtype == torch.float32


def test_wrong_output_buffers_are_rejected() -> None:
    buf = filled(ReplayBuffer, 100, 100)
    sampler = MixedSampler(buf, None, 0.0, 16, seed=0)
    with pytest.raises(ValueError, match="shape"):
        sampler.sample(np.zeros((16, LAYOUT.width + 3), np.float32))
    with pytest.raises(ValueError, match="rows"):
        sampler.sample(np.zeros((8, LAYOUT.width), np.float32))
    with pytest.raises(TypeError, match="float32"):
        sampler.sample(np.zeros((16, LAYOUT.width), np.float64))
    with pytest.raises(ValueError, match="C-contiguous"):
        sampler.sample(np.zeros((LAYOUT.width, 16), np.float32).T)
