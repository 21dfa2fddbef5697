"""The device timer: CUDA work is timed by events read without stalling the loop (checked with a fake
event on the CPU), host work by wall time."""

from __future__ import annotations

import time

import torch

from synther_fast.common.devices import DeviceTimer


class FakeEvent:
    """A CUDA event stand-in: ``record`` takes the next device timestamp (ms); the device reaches
    it only when ``FakeEvent.device_now`` has passed it."""

    device_now = 0.0
    stamps: list[float] = []
    synchronized = 0

    def __init__(self, enable_timing: bool = False) -> None:
        assert enable_timing
        self.at: float | None = None

    def record(self) -> None:
        self.at = FakeEvent.stamps.pop(0)

    def query(self) -> bool:
        return self.at <= FakeEvent.device_now

    def synchronize(self) -> None:
        FakeEvent.synchronized += 1
        FakeEvent.device_now = max(FakeEvent.device_now, self.at)

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.query() and end.query(), "elapsed_time of an event the device has not reached"
        return end.at - self.at


def test_cuda_blocks_are_timed_by_events_without_stalling(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "Event", FakeEvent)
    FakeEvent.device_now, FakeEvent.synchronized = 0.0, 0
    FakeEvent.stamps = [0.0, 40.0, 40.0, 100.0, 100.0, 130.0]  # three blocks: 40, 60 and 30 ms of device work
    timer = DeviceTimer("cuda", seconds=1.0)  # resumed with 1 s already counted
    with timer:
        pass
    assert timer.seconds == 1.0  # the device has not reached the block's end: nothing read, no wait
    FakeEvent.device_now = 50.0
    with timer:
        pass
    assert abs(timer.seconds - 1.04) < 1e-9 and FakeEvent.synchronized == 0  # the first pair, read in passing
    with timer:
        pass
    assert abs(timer.total() - 1.13) < 1e-9 and FakeEvent.synchronized == 2


def test_host_blocks_are_timed_by_wall_clock() -> None:
    timer = DeviceTimer("cpu")
    with timer:
        time.sleep(0.05)
    assert 0.04 < timer.total() < 1.0
