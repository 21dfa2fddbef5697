"""Writers and samplers at once: no sampled row may be torn (half of one row, half of another)."""

from __future__ import annotations

import threading

import numpy as np
from replay_helpers import numbered_rows

from synther_fast import MixedSampler, ReplayBuffer, TransitionLayout

LAYOUT = TransitionLayout(obs_dim=17, act_dim=6, has_terminal=True)  # 41 columns: odd width


def test_no_torn_rows_under_concurrent_writers() -> None:
    # A tiny ring makes writers overwrite the slots samplers read all the time.
    real = ReplayBuffer(64, LAYOUT)
    synthetic = ReplayBuffer(48, LAYOUT)
    real.add(numbered_rows(1, 64, LAYOUT))
    synthetic.add(numbered_rows(1, 48, LAYOUT))
    target_rows, batch_size, n_samplers = 1_000_000, 4096, 2
    stop = threading.Event()
    errors: list[BaseException] = []
    torn = [0] * n_samplers
    sampled = [0] * n_samplers
    written = [0, 0]

    def writer(index: int, buffer: ReplayBuffer) -> None:
        # Each writer owns a range of sequence numbers, all exact in float32 (< 2**24).
        start = (index + 1) * 4_000_000
        try:
            while not stop.is_set() and written[index] < 3_900_000:
                buffer.add(numbered_rows(start + written[index], 32, LAYOUT))
                written[index] += 32
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def sampler(index: int) -> None:
        try:
            mixed = MixedSampler(real, synthetic, ratio=0.5, batch_size=batch_size, seed=index)
            batch = mixed.new_batch()
            while sampled[index] < target_rows // n_samplers:
                mixed.sample(batch)
                rows = batch.array
                torn[index] += int(np.count_nonzero((rows != rows[:, :1]).any(axis=1)))
                sampled[index] += batch_size
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(0, real)),
               threading.Thread(target=writer, args=(1, synthetic))]
    threads += [threading.Thread(target=sampler, args=(i,)) for i in range(n_samplers)]
    for t in threads:
        t.start()
    for t in threads[2:]:
        t.join()
    stop.set()
    for t in threads[:2]:
        t.join()
    assert not errors, errors
    assert sum(sampled) >= target_rows
    assert min(written) > 1000, f"writers barely ran ({written}): the test would prove nothing"
    assert sum(torn) == 0, f"{sum(torn)} torn rows out of {sum(sampled)}"


def test_concurrent_writers_lose_no_rows() -> None:
    capacity, per_writer, n_writers = 10_000, 2_000, 4
    buf = ReplayBuffer(capacity, LAYOUT)

    def writer(index: int) -> None:
        for start in range(0, per_writer, 10):
            buf.add(numbered_rows(index * 100_000 + start, 10, LAYOUT))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(n_writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(buf) == buf.total_added == per_writer * n_writers
    stored = np.sort(buf.to_numpy()[:, 0])
    expected = np.sort(np.concatenate([np.arange(per_writer) + i * 100_000 for i in range(n_writers)]))
    np.testing.assert_array_equal(stored, expected)
