"""``synther-fast replay-demo``: a replay demonstration with real measurements.

It fills a real and a synthetic buffer with HalfCheetah-sized transitions of a small stochastic linear system, draws 50/50 batches
with the C++ MixedSampler and with the plain NumPy reference, samples again while writer threads add
rows at an environment-like rate, and round-trips the buffer through a file.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from synther_fast.replay import MixedSampler, ReplayBuffer, TransitionLayout
from synther_fast.replay.reference import NumpyMixedSampler, NumpyReplayBuffer

OBS_DIM, ACT_DIM = 17, 6  # HalfCheetah-v5


def linear_system_rows(n: int, layout: TransitionLayout, seed: int) -> np.ndarray:
    """Transitions of s' = A s + B a + noise, r = -|s|^2/d + noise, with random bounded actions."""
    rng = np.random.default_rng(seed)
    d, k = layout.obs_dim, layout.act_dim
    a_mat = 0.9 * np.linalg.qr(rng.normal(size=(d, d)))[0]
    b_mat = rng.normal(scale=0.3, size=(d, k))
    obs = rng.normal(size=(n, d))
    action = rng.uniform(-1, 1, size=(n, k))
    next_obs = obs @ a_mat.T + action @ b_mat.T + 0.05 * rng.normal(size=(n, d))
    reward = -(obs**2).mean(axis=1, keepdims=True) + 0.01 * rng.normal(size=(n, 1))
    parts = [obs, action, reward, next_obs]
    if layout.has_terminal:
        parts.append((rng.random((n, 1)) < 0.001).astype(np.float64))
    return np.concatenate(parts, axis=1).astype(np.float32)


def _rate(sampler: object, seconds: float) -> tuple[float, object]:
    batch = sampler.new_batch()  # type: ignore[attr-defined]
    sampler.sample(batch)  # type: ignore[attr-defined]
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            sampler.sample(batch)  # type: ignore[attr-defined]
        n += 50
    return n * batch.data.shape[0] / elapsed, batch


def replay_demo(seconds: float = 2.0, batch_size: int = 256) -> int:
    layout = TransitionLayout(OBS_DIM, ACT_DIM, has_terminal=True)
    n = 200_000
    real_rows = linear_system_rows(n, layout, seed=0)
    synthetic_rows = linear_system_rows(n, layout, seed=1)
    print(f"layout {layout}: {layout.width} float32 columns; {n:,} real + {n:,} synthetic rows")

    real, synthetic = ReplayBuffer(n, layout), ReplayBuffer(n, layout)
    ref_real, ref_synthetic = NumpyReplayBuffer(n, layout), NumpyReplayBuffer(n, layout)
    t0 = time.perf_counter()
    for start in range(0, n, 1000):
        real.add(real_rows[start : start + 1000])
        synthetic.add(synthetic_rows[start : start + 1000])
    fill = time.perf_counter() - t0
    for buf, rows in ((ref_real, real_rows), (ref_synthetic, synthetic_rows)):
        buf.add(rows)
    print(f"filled both C++ buffers in batches of 1000: {2 * n / fill / 1e6:.1f} M rows/s")

    fast = MixedSampler(real, synthetic, ratio=0.5, batch_size=batch_size, seed=0)
    slow = NumpyMixedSampler(ref_real, ref_synthetic, ratio=0.5, batch_size=batch_size, seed=0)
    fast_rate, batch = _rate(fast, seconds)
    slow_rate, _ = _rate(slow, seconds)
    print(f"\nmixed 50/50 sampling, batch {batch_size}:")
    print(f"  C++ MixedSampler      {fast_rate / 1e6:8.2f} M rows/s")
    print(f"  NumPy reference       {slow_rate / 1e6:8.2f} M rows/s")
    print(f"  speed-up              {fast_rate / slow_rate:8.1f} x")
    print(f"  synthetic rows in the last batch: {batch.n_synthetic} of {batch_size}")  # type: ignore[attr-defined]

    stop = threading.Event()
    added = [0]

    def writer() -> None:  # an environment loop plus a chunked generator: ~10k rows/s in total
        rows = linear_system_rows(100, layout, seed=2)
        while not stop.is_set():
            real.add(rows[:10])
            synthetic.add(rows[10:100])
            added[0] += 100
            time.sleep(0.01)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    busy_rate, _ = _rate(fast, seconds)
    stop.set()
    thread.join()
    writer_rate = added[0] / (time.perf_counter() - t0)
    print(f"  while a writer adds {writer_rate / 1e3:.1f}k rows/s: {busy_rate / 1e6:.2f} M rows/s "
          f"({100 * (busy_rate / fast_rate - 1):+.1f}%)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "real.replay"
        t0 = time.perf_counter()
        real.save(path)
        loaded = ReplayBuffer.load(path)
        elapsed = time.perf_counter() - t0
        same = np.array_equal(loaded.to_numpy(), real.to_numpy())
        print(f"\nsave + load of {len(real):,} rows ({path.stat().st_size / 1e6:.1f} MB): "
              f"{elapsed:.2f} s, identical: {same}")
    return 0 if same else 1
