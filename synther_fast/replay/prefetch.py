"""Background prefetch of sampled batches, optionally into static device tensors.

A worker thread keeps ``depth`` batches drawn ahead in host slots (pinned when a CUDA device is the
target). ``next()`` copies the oldest ready slot into one static batch and returns it: on CUDA the
copy runs on a side stream into fixed device tensors, so a CUDA-graph-captured learner can read the
same addresses on every replay. The sampler's C++ draw releases the GIL, so drawing overlaps the
learner's Python.

Reproducibility: each prefetched batch carries the sampler's RNG state after its draw, and
``state_dict()`` reports the state after the last batch *returned*, so a resumed run draws exactly
the batches an uninterrupted one would, whatever had been prefetched at save time.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np

from synther_fast.replay.sampler import Batch, MixedSampler

_STOP = object()


class Prefetcher:
    """Keeps the next ``depth`` batches of ``sampler`` ready; ``next()`` returns a static Batch.

    ``device=None`` gives a numpy Batch; ``device="cpu"`` or ``"cuda[:i]"`` gives a Batch of torch
    tensors on that device. The returned Batch is the same object every call (its contents change).
    """

    def __init__(self, sampler: MixedSampler, depth: int = 2, device: Any = None) -> None:
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
            raise ValueError(f"depth must be a positive int, got {depth!r}")
        self.sampler = sampler
        self.depth = depth
        self._torch = None
        self._device = None
        self._stream = None
        cuda = False
        if device is not None:
            import torch

            self._torch = torch
            self._device = torch.device(device)
            cuda = self._device.type == "cuda"
            if self._device.type not in ("cpu", "cuda"):
                raise ValueError(f"prefetch device must be cpu or cuda, got {self._device}")
            if cuda:
                self._stream = torch.cuda.Stream(device=self._device)
        as_torch = self._torch is not None
        self._slots = [sampler.new_batch(torch=as_torch, pin_memory=cuda) for _ in range(depth)]
        self._slot_events: list[Any] = [None] * depth  # CUDA copy still reading the slot
        if self._torch is None:
            self.batch = sampler.new_batch()
        else:
            data = self._torch.zeros(tuple(self._slots[0].data.shape), dtype=self._torch.float32,
                                     device=self._device)
            self.batch = Batch(data, sampler.layout)
        self._state_after_returned = sampler.state_dict()
        self._start()

    # -- worker -----------------------------------------------------------------------------
    def _start(self) -> None:
        self._free: queue.Queue[int] = queue.Queue()
        self._ready: queue.Queue[Any] = queue.Queue()
        self._halt = threading.Event()
        for i in range(self.depth):
            self._free.put(i)
        self._thread = threading.Thread(target=self._work, name="synther-prefetch", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while not self._halt.is_set():
            try:
                slot = self._free.get(timeout=0.1)
            except queue.Empty:
                continue
            if slot is _STOP:
                return
            try:
                event = self._slot_events[slot]
                if event is not None:
                    event.synchronize()  # the device copy out of this slot must finish first
                batch = self.sampler.sample(self._slots[slot])
                self._ready.put((slot, batch.n_synthetic, self.sampler.state_dict()))
            except BaseException as exc:  # hand the error to the consumer, then stop
                self._ready.put(exc)
                return

    def _stop(self) -> None:
        self._halt.set()
        self._free.put(_STOP)  # type: ignore[arg-type]
        self._thread.join()

    # -- consumer -------------------------------------------------------------------------------
    def next(self) -> Batch:
        """The next batch, in draw order, in the static output batch."""
        if not self._thread.is_alive() and self._ready.empty():
            raise RuntimeError("the prefetcher is closed")
        item = self._ready.get()
        if isinstance(item, BaseException):
            raise RuntimeError(f"prefetch worker failed: {item}") from item
        slot, n_synthetic, state_after = item
        source = self._slots[slot]
        if self._stream is not None:
            torch = self._torch
            current = torch.cuda.current_stream(self._device)
            self._stream.wait_stream(current)  # the learner's last read of the batch is done
            with torch.cuda.stream(self._stream):
                self.batch.data.copy_(source.data, non_blocking=True)
                event = torch.cuda.Event()
                event.record(self._stream)
            current.wait_event(event)
            self._slot_events[slot] = event
        elif self._torch is not None:
            self.batch.data.copy_(source.data)
        else:
            np.copyto(self.batch.data, source.data)
        self.batch.n_synthetic = n_synthetic
        self._state_after_returned = state_after
        self._free.put(slot)
        return self.batch

    __next__ = next

    def __iter__(self) -> Prefetcher:
        return self

    def state_dict(self) -> dict[str, Any]:
        """The sampler state after the last returned batch (prefetched draws are not counted)."""
        return dict(self._state_after_returned)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Drop prefetched batches and continue drawing from ``state``."""
        self._stop()
        self.sampler.load_state_dict(state)
        self._state_after_returned = self.sampler.state_dict()
        self._start()

    def close(self) -> None:
        if self._thread.is_alive():
            self._stop()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class StagedBlock:
    """Rows drawn on the host (pinned memory on CUDA) and the device tensor the learner reads.

    ``fill(draw)`` lets ``draw`` write the host rows, then copies them to the device without
    blocking. The copy reads the host rows while the host runs on, so the next ``fill`` first
    waits for the previous copy's event: the sampler never rewrites rows a copy is still reading.
    On the CPU the host rows are the device rows.
    """

    def __init__(self, shape: tuple[int, ...], device: Any) -> None:
        import torch

        self._torch = torch
        self.device = torch.device(device)
        self.asynchronous = self.device.type == "cuda"
        self.host = torch.zeros(shape, pin_memory=self.asynchronous)
        self.rows = torch.zeros(shape, device=self.device) if self.asynchronous else self.host
        self._copied: Any = None  # the event recorded after the last copy out of self.host

    def fill(self, draw: Any) -> Any:
        """``draw(host_rows)``, then the rows on the device (the same tensor every call)."""
        if self._copied is not None:
            self._copied.synchronize()
        draw(self.host)
        if self.asynchronous:
            self.rows.copy_(self.host, non_blocking=True)
            self._copied = self._torch.cuda.Event()
            self._copied.record()
        return self.rows
