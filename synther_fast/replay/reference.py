"""Plain NumPy replay with the same API as the C++ one: the reference in tests and the baseline in
benchmarks. It is never used as a silent fallback for the native buffer.

Concurrency is handled the plain way, with one lock per buffer around add and gather.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from synther_fast.replay.buffer import check_capacity
from synther_fast.replay.layout import TransitionLayout
from synther_fast.replay.rows import as_row_block, nonfinite_error
from synther_fast.replay.sampler import Batch, check_batch_size, check_pair, check_ratio, check_seed
from synther_fast.replay.storage_file import ReplayFileError, read_replay_file, write_replay_file


class NumpyReplayBuffer:
    """Reference ring buffer: a (capacity, width) float32 array and a write cursor."""

    def __init__(self, capacity: int, layout: TransitionLayout) -> None:
        self.layout = layout
        self.capacity = check_capacity(capacity)
        self._rows = np.zeros((self.capacity, layout.width), dtype=np.float32)
        self._size = 0
        self._cursor = 0
        self.total_added = 0
        self.lock = threading.Lock()

    def __len__(self) -> int:
        return self._size

    def add(self, rows: Any, *, allow_nonfinite: bool = False) -> None:
        block = as_row_block(rows, self.layout)
        if not allow_nonfinite:
            bad = np.argwhere(~np.isfinite(block))
            if len(bad):
                raise nonfinite_error(block, int(bad[0, 0]), int(bad[0, 1]), self.layout)
        with self.lock:
            n = len(block)
            self.total_added += n
            if n >= self.capacity:
                block = block[n - self.capacity :]
                shift = (self._cursor + n) % self.capacity  # where the ring's oldest row sits now
                self._rows[:] = np.roll(block, shift, axis=0)
                self._cursor, self._size = shift, self.capacity
                return
            end = self._cursor + n
            if end <= self.capacity:
                self._rows[self._cursor : end] = block
            else:
                first = self.capacity - self._cursor
                self._rows[self._cursor :] = block[:first]
                self._rows[: n - first] = block[first:]
            self._cursor = end % self.capacity
            self._size = min(self._size + n, self.capacity)

    def storage(self) -> np.ndarray:
        return self._rows[: self._size]

    def to_numpy(self) -> np.ndarray:
        with self.lock:
            if self._size < self.capacity:
                return self._rows[: self._size].copy()
            return np.roll(self._rows, -self._cursor, axis=0)

    def gather(self, index: np.ndarray, out: np.ndarray) -> None:
        with self.lock:
            np.take(self._rows, index, axis=0, out=out)

    def save(self, path: str | os.PathLike[str]) -> None:
        write_replay_file(path, self.layout, self.capacity, self.total_added, self.to_numpy())

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, capacity: int | None = None,
             drop_oldest: bool = False) -> NumpyReplayBuffer:
        saved = read_replay_file(path)
        if capacity is not None and capacity < len(saved.rows) and not drop_oldest:
            raise ValueError(
                f"{path} holds {len(saved.rows)} rows but capacity {capacity} would keep only the newest "
                f"{capacity}; pass a larger capacity, or drop_oldest=True to keep the newest on purpose"
            )
        buffer = cls(saved.capacity if capacity is None else capacity, saved.layout)
        buffer._reset_from(saved)
        return buffer

    def restore(self, path: str | os.PathLike[str]) -> None:
        saved = read_replay_file(path)
        if saved.layout != self.layout:
            raise ReplayFileError(f"{path}: layout {saved.layout} does not match {self.layout}")
        self._reset_from(saved)

    def clear(self) -> None:
        """Drop every row."""
        self._size, self._cursor, self.total_added = 0, 0, 0

    def _reset_from(self, saved: Any) -> None:
        rows = saved.rows[-self.capacity :]
        n = len(rows)
        self._rows[:n] = rows
        self._size, self._cursor = n, n % self.capacity
        self.total_added = saved.total_added


class NumpyMixedSampler:
    """Reference mixed sampler: numpy's PCG64 indices, then a fancy-indexed gather per buffer."""

    def __init__(
        self, real: NumpyReplayBuffer | None, synthetic: NumpyReplayBuffer | None, ratio: float,
        batch_size: int, seed: int | None = None,
    ) -> None:
        self.ratio = check_ratio(ratio)
        self.batch_size = check_batch_size(batch_size)
        self.layout = check_pair(real, synthetic, self.ratio, self.batch_size, NumpyReplayBuffer)
        self.seed = check_seed(seed)
        self.real, self.synthetic = real, synthetic
        self.n_synthetic = int(self.batch_size * self.ratio)
        self._rng = np.random.Generator(np.random.PCG64(self.seed))

    def new_batch(self, *, torch: bool = False, pin_memory: bool = False) -> Batch:
        return Batch.allocate(self.layout, self.batch_size, torch=torch, pin_memory=pin_memory)

    def sample(self, out: Batch | Any | None = None) -> Batch:
        batch = self.new_batch() if out is None else (out if isinstance(out, Batch) else Batch(out, self.layout))
        width = self.layout.width
        n_syn = self.n_synthetic
        syn_rows = 0 if self.synthetic is None else len(self.synthetic)
        if syn_rows < n_syn:
            if n_syn == self.batch_size:
                raise RuntimeError(
                    f"synthetic-only sampling (ratio 1) needs at least {n_syn} synthetic rows; "
                    f"the synthetic buffer holds {syn_rows}"
                )
            n_syn = 0
        real_rows = 0 if self.real is None else len(self.real)
        if n_syn < self.batch_size and real_rows == 0:
            raise RuntimeError("cannot sample: the real buffer is empty")
        rows = np.empty((self.batch_size, width), dtype=np.float32)
        if n_syn:
            self.synthetic.gather(self._rng.integers(0, syn_rows, n_syn), rows[:n_syn])
        if n_syn < self.batch_size:
            self.real.gather(self._rng.integers(0, real_rows, self.batch_size - n_syn), rows[n_syn:])
        batch.array[:, :width] = rows
        batch.array[:, width:] = 0.0
        batch.n_synthetic = n_syn
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {"rng_state": self._rng.bit_generator.state, "ratio": self.ratio, "batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng_state"]
