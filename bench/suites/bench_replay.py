"""Replay throughput: the C++ buffer/sampler against the NumPy reference, in the same run.

Sizes follow online SynthER at 100k environment steps: a 100k-row real buffer and a 1M-row
synthetic buffer, 50/50 batches. Row widths 40 and 120 bracket the gym and DMC tasks.
Run:  pytest bench --benchmark-json=bench.json && python bench/tools/benchmark_table.py bench.json
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from synther_fast import MixedSampler, ReplayBuffer, TransitionLayout
from synther_fast.replay.reference import NumpyMixedSampler, NumpyReplayBuffer

IMPLS = {"cpp": (ReplayBuffer, MixedSampler), "numpy": (NumpyReplayBuffer, NumpyMixedSampler)}
REAL_ROWS, SYNTHETIC_ROWS = 100_000, 1_000_000


def layout_of_width(width: int) -> TransitionLayout:
    obs_dim = (width - 3) // 2  # width = 2 * obs + act + reward + terminal
    return TransitionLayout(obs_dim, width - 2 * obs_dim - 2, has_terminal=True)


_FILLED: dict[tuple, tuple] = {}


def filled_buffers(impl: str, width: int, rows: tuple[int, int] = (REAL_ROWS, SYNTHETIC_ROWS)):
    """Real and synthetic buffers of one implementation, built once per session."""
    key = (impl, width, rows)
    if key not in _FILLED:
        _FILLED.clear()  # keep at most one pair of 1M-row buffers in memory
        layout = layout_of_width(width)
        buffer_cls, _ = IMPLS[impl]
        rng = np.random.default_rng(0)
        real, synthetic = buffer_cls(rows[0], layout), buffer_cls(rows[1], layout)
        for buf, n in ((real, rows[0]), (synthetic, rows[1])):
            for start in range(0, n, 100_000):
                buf.add(rng.standard_normal((min(100_000, n - start), width), dtype=np.float32))
        _FILLED[key] = (layout, real, synthetic)
    return _FILLED[key]


@pytest.mark.parametrize("impl", ["cpp", "numpy"])
def test_add_single_rows(benchmark, impl) -> None:
    layout = layout_of_width(40)
    buf = IMPLS[impl][0](100_000, layout)
    row = np.random.default_rng(0).standard_normal(layout.width, dtype=np.float32)
    benchmark.group = "add: single row, width 40"
    benchmark.extra_info["rows_per_call"] = 1
    benchmark(buf.add, row)


@pytest.mark.parametrize("impl", ["cpp", "numpy"])
def test_add_batches_of_1000(benchmark, impl) -> None:
    layout = layout_of_width(40)
    buf = IMPLS[impl][0](100_000, layout)
    rows = np.random.default_rng(0).standard_normal((1000, layout.width), dtype=np.float32)
    benchmark.group = "add: batch 1000, width 40"
    benchmark.extra_info["rows_per_call"] = 1000
    benchmark(buf.add, rows)


@pytest.mark.slow
@pytest.mark.parametrize("width", [40, 120])
@pytest.mark.parametrize("batch_size", [256, 4096])
@pytest.mark.parametrize("impl", ["cpp", "numpy"])
def test_mixed_sampling(benchmark, impl, batch_size, width) -> None:
    layout, real, synthetic = filled_buffers(impl, width)
    sampler = IMPLS[impl][1](real, synthetic, ratio=0.5, batch_size=batch_size, seed=0)
    batch = sampler.new_batch()
    benchmark.group = f"mixed sample: batch {batch_size}, width {width}"
    benchmark.extra_info["rows_per_call"] = batch_size
    benchmark(sampler.sample, batch)
    assert batch.n_synthetic == batch_size // 2


@pytest.mark.parametrize("impl", ["cpp", "numpy"])
def test_mixed_sampling_cache_resident(benchmark, impl) -> None:
    """10k-row buffers (2 MB, in cache): per-call overhead, not DRAM latency, sets the pace."""
    layout, real, synthetic = filled_buffers(impl, 40, rows=(10_000, 10_000))
    sampler = IMPLS[impl][1](real, synthetic, ratio=0.5, batch_size=256, seed=0)
    batch = sampler.new_batch()
    benchmark.group = "mixed sample, 10k-row buffers (in cache): batch 256, width 40"
    benchmark.extra_info["rows_per_call"] = 256
    benchmark(sampler.sample, batch)


class Writers:
    """Background writers: an environment loop into the real buffer and a chunked generator into
    the synthetic one, at ``rows_per_second`` in total (None: as fast as they can)."""

    def __init__(self, real, synthetic, width: int, rows_per_second: float | None) -> None:
        rng = np.random.default_rng(1)
        self.env_rows = rng.standard_normal((20, width), dtype=np.float32)
        self.chunk = rng.standard_normal((800, width), dtype=np.float32)
        self.real, self.synthetic, self.rate = real, synthetic, rows_per_second
        self.stop = threading.Event()
        self.added = 0
        self.threads = [
            threading.Thread(target=self._loop, args=(real, self.env_rows, 0.2), daemon=True),
            threading.Thread(target=self._loop, args=(synthetic, self.chunk, 0.8), daemon=True),
        ]

    def _loop(self, buf, rows, share: float) -> None:
        period = None if self.rate is None else len(rows) / (self.rate * share)
        next_time = time.perf_counter()
        while not self.stop.is_set():
            buf.add(rows)
            self.added += len(rows)
            if period is not None:
                next_time += period
                delay = next_time - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)

    def __enter__(self) -> Writers:
        self.start = time.perf_counter()
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join()
        self.achieved = self.added / (time.perf_counter() - self.start)


@pytest.mark.parametrize("writers", ["none", "10k rows/s", "unthrottled"])
@pytest.mark.parametrize("impl", ["cpp", "numpy"])
def test_mixed_sampling_under_writers(benchmark, impl, writers) -> None:
    width, batch_size = 40, 256
    layout, real, synthetic = filled_buffers(impl, width)
    sampler = IMPLS[impl][1](real, synthetic, ratio=0.5, batch_size=batch_size, seed=0)
    batch = sampler.new_batch()
    benchmark.group = f"mixed sample under writers ({writers}): batch 256, width 40"
    benchmark.extra_info["rows_per_call"] = batch_size
    rate = {"none": 0.0, "10k rows/s": 10_000.0, "unthrottled": None}[writers]
    if rate == 0.0:
        benchmark(sampler.sample, batch)
        return
    with Writers(real, synthetic, width, rate) as active:
        benchmark(sampler.sample, batch)
    benchmark.extra_info["writer_rows_per_s"] = round(active.achieved)
