"""ReplayBuffer: adding, wraparound, views, input conversion and rejection of bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from replay_helpers import numbered_rows, random_rows

from synther_fast import ReplayBuffer, TransitionLayout
from synther_fast.replay.reference import NumpyReplayBuffer

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=True)
IMPLS = [ReplayBuffer, NumpyReplayBuffer]


@pytest.mark.parametrize("impl", IMPLS)
def test_single_rows_and_batches(impl) -> None:
    buf = impl(10, LAYOUT)
    rows = random_rows(np.random.default_rng(0), 4, LAYOUT)
    buf.add(rows[0])
    buf.add(rows[1:])
    assert len(buf) == 4 and buf.total_added == 4 and buf.capacity == 10
    np.testing.assert_array_equal(buf.to_numpy(), rows)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("batch", [1, 3, 7, 10, 23])
def test_wraparound_keeps_newest_rows_in_order(impl, batch: int) -> None:
    capacity, total = 10, 57
    buf = impl(capacity, LAYOUT)
    for start in range(0, total, batch):
        buf.add(numbered_rows(start, min(batch, total - start), LAYOUT))
    assert len(buf) == capacity and buf.total_added == total
    np.testing.assert_array_equal(buf.to_numpy()[:, 0], np.arange(total - capacity, total))
    # The storage view holds the same rows, in slot order.
    assert sorted(buf.storage()[:, 0].tolist()) == list(range(total - capacity, total))


def test_matches_numpy_reference_on_random_adds() -> None:
    rng = np.random.default_rng(1)
    fast, ref = ReplayBuffer(37, LAYOUT), NumpyReplayBuffer(37, LAYOUT)
    for _ in range(60):
        rows = random_rows(rng, int(rng.integers(1, 50)), LAYOUT)
        fast.add(rows)
        ref.add(rows)
        assert len(fast) == len(ref) and fast.total_added == ref.total_added
        np.testing.assert_array_equal(fast.to_numpy(), ref.to_numpy())


def test_storage_view_is_zero_copy_and_aligned() -> None:
    buf = ReplayBuffer(8, LAYOUT)
    rows = random_rows(np.random.default_rng(2), 5, LAYOUT)
    buf.add(rows)
    view = buf.storage()
    assert view.shape == (5, LAYOUT.width) and view.dtype == np.float32
    np.testing.assert_array_equal(view, rows)
    assert not view.flags.owndata
    assert view.ctypes.data % 8 == 0 and view.strides[0] % 64 == 0  # rows start on cache lines
    buf.add(rows[:1] + 100)  # a later add shows through the view's memory
    assert buf.storage()[5, 0] == rows[0, 0] + 100
    tensor = torch.from_numpy(view)  # fits a model without a copy
    assert tensor.data_ptr() == view.ctypes.data


def test_float32_contiguous_input_is_read_in_place(monkeypatch) -> None:
    from synther_fast.replay import buffer as buffer_module

    seen = []
    original = buffer_module.as_row_block

    def spy(rows, layout):
        block = original(rows, layout)
        seen.append(block)
        return block

    monkeypatch.setattr(buffer_module, "as_row_block", spy)
    buf = ReplayBuffer(8, LAYOUT)
    rows = random_rows(np.random.default_rng(3), 4, LAYOUT)
    buf.add(rows)
    assert np.shares_memory(seen[-1], rows)
    tensor = torch.from_numpy(rows.copy())
    buf.add(tensor)
    assert seen[-1].ctypes.data == tensor.data_ptr()


@pytest.mark.parametrize(
    "convert",
    [
        lambda a: a.astype(np.float64),
        lambda a: a.astype(np.float16),
        lambda a: np.asfortranarray(a),
        lambda a: np.round(a * 10).astype(np.int64),
        lambda a: torch.from_numpy(a).double(),
        lambda a: torch.from_numpy(a).to(torch.bfloat16),
        lambda a: a.tolist(),
    ],
)
def test_other_real_dtypes_are_converted(convert) -> None:
    rows = random_rows(np.random.default_rng(4), 3, LAYOUT)
    src = convert(rows)
    # What the conversion must produce: the source's values, rounded once to float32.
    expected = (src.float().numpy() if isinstance(src, torch.Tensor)
                else np.asarray(src, dtype=np.float64).astype(np.float32))
    assert not np.array_equal(expected, np.zeros_like(expected))
    buf = ReplayBuffer(8, LAYOUT)
    buf.add(src)
    np.testing.assert_array_equal(buf.to_numpy(), expected)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((2, LAYOUT.width + 1), np.float32) + 1, ValueError, "width"),
        (np.ones((2, 3, LAYOUT.width), np.float32), ValueError, "shape"),
        (np.array([["a"] * LAYOUT.width]), TypeError, "real numbers"),
        (np.ones((1, LAYOUT.width), np.complex64), TypeError, "real numbers"),
        (np.array([[object()] * LAYOUT.width]), TypeError, "real numbers"),
    ],
)
def test_bad_input_is_rejected_and_buffer_unchanged(impl, bad, error, match) -> None:
    buf = impl(8, LAYOUT)
    good = random_rows(np.random.default_rng(5), 3, LAYOUT)
    buf.add(good)
    with pytest.raises(error, match=match):
        buf.add(bad)
    assert len(buf) == 3 and buf.total_added == 3
    np.testing.assert_array_equal(buf.to_numpy(), good)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_nonfinite_rows_rejected_unless_allowed(impl, value) -> None:
    buf = impl(8, LAYOUT)
    rows = random_rows(np.random.default_rng(6), 4, LAYOUT)
    rows[2, LAYOUT.next_obs.start + 1] = value
    with pytest.raises(ValueError, match=r"row 2, column 7 \(next_obs\[1\]\)"):
        buf.add(rows)
    assert len(buf) == 0 and buf.total_added == 0
    buf.add(rows, allow_nonfinite=True)
    stored = buf.to_numpy()
    assert len(buf) == 4
    np.testing.assert_array_equal(np.isnan(stored), np.isnan(rows))


def test_float64_overflow_is_caught_as_nonfinite() -> None:
    rows = np.ones((1, LAYOUT.width)) * 1e300  # finite in float64, inf in float32
    with pytest.raises(ValueError, match="non-finite"):
        ReplayBuffer(4, LAYOUT).add(rows)


def test_cuda_tensor_input_names_the_device() -> None:
    class FakeCudaTensor:  # what the conversion sees of a CUDA tensor, without needing a GPU
        __module__ = "torch"
        device = torch.device("cuda", 0)

    with pytest.raises(ValueError, match="cuda:0"):
        ReplayBuffer(4, LAYOUT).add(FakeCudaTensor())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("capacity", [0, -5, 2.5, True, "10"])
def test_bad_capacity(impl, capacity) -> None:
    with pytest.raises(ValueError, match="capacity"):
        impl(capacity, LAYOUT)


def test_layout_must_be_a_layout() -> None:
    with pytest.raises(TypeError, match="TransitionLayout"):
        ReplayBuffer(4, {"obs_dim": 3})


def test_huge_capacity_fails_cleanly() -> None:
    with pytest.raises((ValueError, MemoryError)):
        ReplayBuffer(2**62, LAYOUT)
