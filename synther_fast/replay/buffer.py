"""ReplayBuffer: the C++ ring of transition rows, with validation and persistence."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from synther_fast.replay import _native
from synther_fast.replay.layout import TransitionLayout
from synther_fast.replay.rows import as_row_block, nonfinite_error
from synther_fast.replay.storage_file import ReplayFileError, read_replay_file, write_replay_file


def check_capacity(capacity: Any) -> int:
    if isinstance(capacity, bool) or not isinstance(capacity, (int, np.integer)) or capacity <= 0:
        raise ValueError(f"capacity must be a positive int, got {capacity!r}")
    return int(capacity)


class ReplayBuffer:
    """Fixed-capacity ring of float32 transition rows in one aligned allocation.

    Several threads may ``add`` while others sample through a :class:`MixedSampler`; the GIL is
    released during both. When full, the oldest rows are overwritten.
    """

    def __init__(self, capacity: int, layout: TransitionLayout) -> None:
        if not isinstance(layout, TransitionLayout):
            raise TypeError(f"layout must be a TransitionLayout, got {type(layout).__name__}")
        self.layout = layout
        self._ring = _native.RingBuffer(check_capacity(capacity), layout.width)

    @property
    def capacity(self) -> int:
        return self._ring.capacity

    @property
    def total_added(self) -> int:
        """Rows ever added (including those since overwritten)."""
        return self._ring.total_added

    def __len__(self) -> int:
        return len(self._ring)

    def __repr__(self) -> str:
        return f"ReplayBuffer(len={len(self)}, capacity={self.capacity}, layout={self.layout})"

    def add(self, rows: Any, *, allow_nonfinite: bool = False) -> None:
        """Append one row ``(width,)`` or a batch ``(n, width)`` (numpy or CPU torch).

        float32 C-contiguous input is read in place; other real dtypes are converted once.
        Rows with NaN/inf are rejected (nothing is added) unless ``allow_nonfinite``.
        """
        block = as_row_block(rows, self.layout)
        if not allow_nonfinite:
            where = _native.find_nonfinite(block)
            if where is not None:
                raise nonfinite_error(block, where[0], where[1], self.layout)
        self._ring.add(block)

    def storage(self) -> np.ndarray:
        """Zero-copy view of the stored rows (storage order, not time order), e.g. to fit a model.

        The view aliases the ring: rows added later may change it. Copy it (or use
        :meth:`to_numpy`) while writers are running.
        """
        return self._ring.storage()

    def to_numpy(self) -> np.ndarray:
        """A copy of the stored rows, oldest first; each row is read whole even under writers."""
        out = np.empty((len(self), self.layout.width), dtype=np.float32)
        self._ring.export_rows(out)
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the buffer to ``path`` atomically (temporary file, then rename)."""
        rows = self.to_numpy()
        write_replay_file(path, self.layout, self.capacity, self.total_added, rows)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, capacity: int | None = None,
             drop_oldest: bool = False) -> ReplayBuffer:
        """A new buffer holding the rows saved at ``path`` (capacity from the file unless given)."""
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
        """Replace this buffer's content with the file's; the file is validated first, so a bad
        or mismatched file raises and leaves this buffer unchanged. Not safe while other threads
        use the buffer."""
        saved = read_replay_file(path)
        if saved.layout != self.layout:
            raise ReplayFileError(
                f"{path}: layout {saved.layout} does not match this buffer's {self.layout}"
            )
        self._reset_from(saved)

    def clear(self) -> None:
        """Drop every row (the online loop's refill replaces the synthetic rows). Not safe while
        other threads use the buffer."""
        self._ring.reset(np.zeros((0, self.layout.width), np.float32), 0)

    def _reset_from(self, saved: Any) -> None:
        rows = saved.rows[-self.capacity :] if len(saved.rows) > self.capacity else saved.rows
        self._ring.reset(np.ascontiguousarray(rows), saved.total_added)
