"""MixedSampler: batches of floor(ratio * B) synthetic rows followed by real rows, drawn in C++."""

from __future__ import annotations

import secrets
from typing import Any

import numpy as np

from synther_fast.replay import _native
from synther_fast.replay.buffer import ReplayBuffer
from synther_fast.replay.layout import TransitionLayout


class Batch:
    """One batch in caller-owned memory with per-field views (no copies).

    ``data`` is a (B, width') float32 numpy array or CPU torch tensor. The row layout is the
    TransitionLayout's, plus one trailing always-zero terminal column when the layout has none, so
    ``terminal`` is always a (B, 1) view. ``reward`` and ``terminal`` have shape (B, 1).
    """

    def __init__(self, data: Any, layout: TransitionLayout) -> None:
        width = self.row_width(layout)
        if tuple(data.shape[1:]) != (width,) or len(data.shape) != 2:
            raise ValueError(
                f"batch storage must have shape (batch_size, {width}) for {layout}, got "
                f"{tuple(data.shape)}"
            )
        self.data = data
        self.layout = layout
        on_cpu = isinstance(data, np.ndarray) or getattr(data.device, "type", "cpu") == "cpu"
        # The same memory as numpy, for the C++ sampler; device batches (prefetch targets) have none.
        self.array = _as_numpy(data) if on_cpu else None
        self.obs = data[:, layout.obs]
        self.action = data[:, layout.action]
        self.reward = data[:, layout.reward]
        self.next_obs = data[:, layout.next_obs]
        term = layout.terminal if layout.terminal is not None else slice(layout.width, width)
        self.terminal = data[:, term]
        self.n_synthetic = 0  # how many leading rows came from the synthetic buffer

    @staticmethod
    def row_width(layout: TransitionLayout) -> int:
        return layout.width + (0 if layout.has_terminal else 1)

    @classmethod
    def allocate(
        cls, layout: TransitionLayout, batch_size: int, *, torch: bool = False,
        pin_memory: bool = False,
    ) -> Batch:
        """Fresh zeroed storage: numpy by default, a (pinned) CPU torch tensor if asked."""
        shape = (batch_size, cls.row_width(layout))
        if torch or pin_memory:
            import torch as _torch

            data = _torch.zeros(shape, dtype=_torch.float32, pin_memory=pin_memory)
        else:
            data = np.zeros(shape, dtype=np.float32)
        return cls(data, layout)

    def __len__(self) -> int:
        return int(self.data.shape[0])


def _as_numpy(data: Any) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data
    if type(data).__module__.startswith("torch"):
        if data.device.type != "cpu":
            raise ValueError(f"batch storage must be in CPU memory, got a tensor on {data.device}")
        return data.numpy()  # shares memory (pinned memory too)
    return np.from_dlpack(data)


def check_ratio(ratio: Any) -> float:
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, np.floating, np.integer)):
        raise TypeError(f"ratio must be a number in [0, 1], got {ratio!r}")
    ratio = float(ratio)
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must lie in [0, 1], got {ratio}")
    return ratio


def check_batch_size(batch_size: Any) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def check_seed(seed: Any) -> int:
    if seed is None:
        return secrets.randbits(64)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an int in [0, 2**64) or None, got {seed!r}")
    return int(seed)


def check_pair(real: Any, synthetic: Any, ratio: float, batch_size: int, cls: type) -> TransitionLayout:
    """Validate the buffers a mixed sampler draws from; returns their common layout."""
    for name, buf in (("real", real), ("synthetic", synthetic)):
        if buf is not None and not isinstance(buf, cls):
            raise TypeError(f"{name} must be a {cls.__name__} or None, got {type(buf).__name__}")
    n_synthetic = int(batch_size * ratio)
    if n_synthetic > 0 and synthetic is None:
        raise ValueError(f"ratio {ratio} draws {n_synthetic} synthetic rows per batch: pass a synthetic buffer")
    if n_synthetic < batch_size and real is None:
        raise ValueError(f"ratio {ratio} draws real rows: pass a real buffer")
    if real is not None and synthetic is not None and real.layout != synthetic.layout:
        raise ValueError(f"real layout {real.layout} differs from synthetic layout {synthetic.layout}")
    return real.layout if real is not None else synthetic.layout


class MixedSampler:
    """Draws batches of ``int(batch_size * ratio)`` synthetic rows, then real rows.

    As the published SynthER code: with ratio < 1 and fewer synthetic rows than that share, the
    batch is all real; with ratio 1 it raises instead. Indices are uniform over each buffer's filled
    rows. Reproducible for a fixed ``seed`` (``None`` draws one from the OS). One sampler must not be
    used from two threads at once (its RNG is not shared); use one sampler per thread.
    """

    def __init__(
        self, real: ReplayBuffer | None, synthetic: ReplayBuffer | None, ratio: float,
        batch_size: int, seed: int | None = None,
    ) -> None:
        self.ratio = check_ratio(ratio)
        self.batch_size = check_batch_size(batch_size)
        self.layout = check_pair(real, synthetic, self.ratio, self.batch_size, ReplayBuffer)
        self.seed = check_seed(seed)
        self.real, self.synthetic = real, synthetic
        self._native = _native.NativeMixedSampler(
            None if real is None else real._ring,
            None if synthetic is None else synthetic._ring,
            self.ratio, self.batch_size, self.seed,
        )

    @property
    def n_synthetic(self) -> int:
        """Synthetic rows per batch when the synthetic buffer can supply them."""
        return self._native.synthetic_share

    def new_batch(self, *, torch: bool = False, pin_memory: bool = False) -> Batch:
        """Storage for one batch of this sampler (numpy, or a pinned torch tensor)."""
        return Batch.allocate(self.layout, self.batch_size, torch=torch, pin_memory=pin_memory)

    def sample(self, out: Batch | Any | None = None) -> Batch:
        """Draw one batch into ``out`` (a Batch, numpy array or CPU torch tensor) or a new Batch."""
        batch = self._as_batch(out)
        batch.n_synthetic = self._native.sample(batch.array)
        return batch

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng_state": [int(w) for w in self._native.get_rng_state()],
            "ratio": self.ratio,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("ratio") != self.ratio or state.get("batch_size") != self.batch_size:
            raise ValueError(
                f"state is for ratio {state.get('ratio')} / batch_size {state.get('batch_size')}, "
                f"this sampler has ratio {self.ratio} / batch_size {self.batch_size}"
            )
        rng = state["rng_state"]
        if len(rng) != 4 or not all(isinstance(w, int) and 0 <= w < 2**64 for w in rng):
            raise ValueError(f"rng_state must be 4 unsigned 64-bit ints, got {rng!r}")
        self._native.set_rng_state(tuple(rng))

    def _as_batch(self, out: Any) -> Batch:
        if out is None:
            return self.new_batch()
        batch = out if isinstance(out, Batch) else Batch(out, self.layout)
        if batch.layout != self.layout or len(batch) != self.batch_size:
            raise ValueError(
                f"out holds {len(batch)} rows of {batch.layout}; this sampler draws "
                f"{self.batch_size} rows of {self.layout}"
            )
        return batch
