"""A recording fake of torch.cuda's graph API, so that captured code paths run and are checked on a CPU.

What a real CUDA graph does, and what this fake does the same way:

- capture *records* the work instead of running it for later: here every aten op the captured
  function dispatches is recorded (op, arguments, outputs); :class:`cuda_graphs.CapturedStep` restores
  its state after any capture, so the run-while-recording leaves no trace, as a real capture;
- replay re-runs the recorded ops on the *same tensor objects* (fixed addresses), writing fresh
  results into the tensors the capture produced. So a Python float baked into an op at capture stays
  frozen, an optimiser whose state tensors were replaced after capture keeps updating the old ones,
  and a new batch tensor is never read: each of the mistakes a real graph punishes silently shows up
  here as a difference from eager;
- random draws with the default generator advance it on every replay (CUDA graphs advance the
  Philox offset); torch.cuda's RNG state functions act on the CPU default generator;
- a host synchronisation during capture raises (:class:`HostSyncGuard`, also usable alone).

Triton kernels under the interpreter write memory outside the dispatcher, so the fused sampler can
be checked under the guard only, not recorded.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from synther_fast.common import cuda_graphs as graphs

aten = torch.ops.aten


class HostSyncError(RuntimeError):
    """Raised by the guard for an operation that would make the host wait for the device."""


# Ops that read device memory on the host, or whose output size depends on tensor values (so the
# host must wait for the data): each forbids CUDA-graph capture and stalls the learner.
_SYNCING = {
    aten._local_scalar_dense.default: "a tensor read as a Python number (.item(), float(), int(), bool())",
    aten.nonzero.default: "nonzero (output size depends on the data)",
    aten.masked_select.default: "masked_select (output size depends on the data)",
    aten.is_nonzero.default: "a tensor used as a Python bool",
    aten.equal.default: "torch.equal (returns a Python bool)",
    aten.allclose.default: "torch.allclose (returns a Python bool)",
    aten._pin_memory.default: "a new pinned allocation",
    aten.unique_consecutive.default: "unique (output size depends on the data)",
    aten._unique2.default: "unique (output size depends on the data)",
}


def host_sync_reason(func: Any, args: tuple, kwargs: dict) -> str | None:
    """Why this op call would synchronise the host with the device, or None."""
    reason = _SYNCING.get(func)
    if reason is not None:
        return reason
    if func in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default):
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ()):
            return "boolean-mask indexing (output size depends on the data)"
    if kwargs.get("pin_memory"):
        return "a new pinned allocation"
    return None


class HostSyncGuard(TorchDispatchMode):
    """Raises :class:`HostSyncError` on any op that would synchronise the host inside a captured function."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        reason = host_sync_reason(func, args, kwargs)
        if reason is not None:
            raise HostSyncError(f"host synchronisation inside a captured function: {func} ({reason})")
        return self.record(func, args, kwargs, func(*args, **kwargs))

    def record(self, func, args, kwargs, out):
        return out


class _Recorder(HostSyncGuard):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[Any, tuple, dict, Any]] = []

    def record(self, func, args, kwargs, out):
        self.ops.append((func, args, kwargs, out))
        return out


def _fresh_outputs(func: Any, out: Any) -> list[tuple[Any, int]]:
    """(output, index) of the op's results that are new tensors (not views, in-place or out= results)."""
    returns = func._schema.returns
    values = out if len(returns) > 1 else (out,)
    return [(value, i) for i, (value, ret) in enumerate(zip(values, returns)) if ret.alias_info is None]


def _write_back(old: Any, new: Any) -> None:
    if isinstance(old, torch.Tensor):
        if old is not new:
            old.copy_(new)
    elif isinstance(old, (list, tuple)):
        for o, n in zip(old, new):
            _write_back(o, n)


class FakeCUDAGraph:
    """Stands in for torch.cuda.CUDAGraph: holds the recorded ops; ``replay()`` re-runs them."""

    captures = 0  # over every instance: how many graphs were recorded
    replays = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ops: list[tuple[Any, tuple, dict, Any]] | None = None

    @torch.no_grad()  # a graph replays kernels: no autograd bookkeeping
    def replay(self) -> None:
        if self.ops is None:
            raise RuntimeError("replay of a graph that was never captured")
        type(self).replays += 1
        for func, args, kwargs, out in self.ops:
            new = func(*args, **kwargs)
            if len(func._schema.returns) == 1:
                new = (new,)
            for value, i in _fresh_outputs(func, out):
                _write_back(value, new[i])

    def reset(self) -> None:
        self.ops = None


@contextlib.contextmanager
def _fake_graph(graph: FakeCUDAGraph, pool: Any = None, stream: Any = None,
                capture_error_mode: str = "global") -> Iterator[None]:
    recorder = _Recorder()
    with recorder:
        yield
    graph.ops = recorder.ops  # only a capture that finished is kept, as torch.cuda.graph
    FakeCUDAGraph.captures += 1


def install(monkeypatch: Any) -> type[FakeCUDAGraph]:
    """Make the CPU a graph device for this test: owners take their captured code paths (device
    RNG slots, capturable optimisers, CapturedStep capture), recorded and replayed by the fake."""
    FakeCUDAGraph.captures = FakeCUDAGraph.replays = 0
    monkeypatch.setattr(graphs, "_graph_device", lambda device: device.type in ("cpu", "cuda"))
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FakeCUDAGraph)
    monkeypatch.setattr(torch.cuda, "graph", _fake_graph)
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": torch.get_rng_state())
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": torch.set_rng_state(state))
    # Capturable Adam refuses CPU tensors; its capturable maths is plain tensor ops, which run here.
    supported = lambda supports_xla=True: ["cuda", "cpu"]
    for module in ("torch.optim.optimizer", "torch.optim.adam"):  # (torch.optim hides the submodule names)
        monkeypatch.setattr(importlib.import_module(module), "_get_capturable_supported_devices", supported)
    return FakeCUDAGraph
