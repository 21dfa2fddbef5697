"""Where and on how many threads torch runs: the run's device, the CPU thread count chosen for
the work at hand, and a timer of device work.

Measured on a 2-core machine (issue 13): the offline agents' 2x256 networks ran ~200 updates/s
with torch's default 2 threads on an idle machine, but fell to 49/s when another process kept one
core busy, while one thread gave 145/s under the same load. Small networks gain little from a
second thread and lose much to contention, so their phases default to one thread on machines with
few cores; the diffusion fits (large matmuls) keep torch's default.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

import torch


def resolve_device(name: str | None) -> torch.device:
    """The device a run asked for (None: cuda if available, else cpu); a CUDA device that torch
    cannot see is refused here, before any work."""
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for, but torch sees no CUDA device here")
    return device


def default_threads(small_networks: bool) -> int:
    cores = os.cpu_count() or 1
    if not small_networks:
        return torch.get_num_threads()
    return 1 if cores <= 2 else min(4, cores // 2)


@contextlib.contextmanager
def torch_threads(threads: int = 0, small_networks: bool = False) -> Iterator[int]:
    """Run the block with ``threads`` torch CPU threads (0: :func:`default_threads`)."""
    if threads < 0:
        raise ValueError(f"threads must be >= 0, got {threads}")
    before = torch.get_num_threads()
    chosen = threads or default_threads(small_networks)
    torch.set_num_threads(chosen)
    try:
        yield chosen
    finally:
        torch.set_num_threads(before)


class DeviceTimer:
    """Seconds of device work inside ``with timer:`` blocks, summed.

    On CUDA the work is asynchronous: host wall time around a launch counts the launch only (the
    GPU time then lands wherever the host next waits, e.g. in ``act()``). So on CUDA each block is
    bracketed by two CUDA events, which record when the GPU reaches them, and their elapsed times
    are read later, without stalling the loop: finished pairs at each block's end, the rest at
    :meth:`total` (which waits for the last one). Elsewhere it is host wall time.
    """

    def __init__(self, device: torch.device | str, seconds: float = 0.0) -> None:
        self.events = torch.device(device).type == "cuda"
        self.seconds = float(seconds)
        self._pending: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._start: object = None

    def __enter__(self) -> DeviceTimer:
        if self.events:
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.events:
            self.seconds += time.perf_counter() - self._start
            return
        end = torch.cuda.Event(enable_timing=True)
        end.record()
        self._pending.append((self._start, end))
        self._collect(wait=False)

    def _collect(self, wait: bool) -> None:
        while self._pending:
            start, end = self._pending[0]
            if wait:
                end.synchronize()
            elif not end.query():
                return
            self.seconds += start.elapsed_time(end) / 1000.0  # milliseconds
            self._pending.pop(0)

    def total(self) -> float:
        """All seconds so far (waits for the device to reach the last block's end)."""
        self._collect(wait=True)
        return self.seconds
