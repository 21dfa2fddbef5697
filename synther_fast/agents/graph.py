"""Run an update function on static tensors: eagerly on CPU, as a captured CUDA graph on CUDA.

The function reads only tensors that stay at fixed addresses (the prefetcher's static batch, the
agent's parameters and optimiser state), so after capture each call is one graph replay with no
host synchronisation. Capture follows the PyTorch recipe: a few warm-up calls on a side stream
(they are real updates and count as such), then capture.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


class StaticStep:
    def __init__(self, fn: Callable[[], Any], device: torch.device, capture: bool | None = None,
                 warmup: int = 3) -> None:
        self.fn = fn
        self.capture = device.type == "cuda" if capture is None else capture
        if self.capture and device.type != "cuda":
            raise ValueError("CUDA-graph capture needs a CUDA device")
        self.warmup = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: Any = None
        self.last_call_updates = 0
        """updates the last call ran: 1, or warmup + 1 for the call that captured"""

    def __call__(self) -> Any:
        self.last_call_updates = 1
        if not self.capture:
            return self.fn()
        if self.graph is None:
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(self.warmup):
                    self.fn()
            torch.cuda.current_stream().wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: a prefetch thread's syncs elsewhere must not invalidate the capture
            with torch.cuda.graph(self.graph, capture_error_mode="thread_local"):
                self.outputs = self.fn()
            self.last_call_updates = self.warmup + 1
        self.graph.replay()
        return self.outputs
