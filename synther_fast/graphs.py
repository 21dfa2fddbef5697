"""The one CUDA-graph helper: run a function of static tensors eagerly, or capture it once and replay.

Agents, the diffusion trainer and the fused sampler all use it. The function reads and writes only
tensors at fixed addresses (a static batch, parameters, optimiser state), so after capture each
call is one graph replay with no host synchronisation.

Capture follows the PyTorch recipe (a few warm-up calls on a side stream, then capture), with one
addition: the warm-up calls are *undone* before capture (parameters, buffers, optimiser state and
the CUDA RNG are restored), so every call of a :class:`CapturedStep` does exactly one step of work,
the first one included.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn


class StateSnapshot:
    """Copies of every tensor a step may change, restorable in place (addresses stay the same).

    Optimiser state created during the warm-up (Adam's moments and step count) did not exist
    before it: restoring sets it to zero, which is exactly what Adam's lazy initialisation holds.
    """

    def __init__(self, objects: Iterable[Any]) -> None:
        self.objects = list(objects)
        self.tensors: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.optimizers: list[tuple[torch.optim.Optimizer, dict[int, dict[str, Any]]]] = []
        for obj in self.objects:
            for tensor in _tensors_of(obj):
                self.tensors.append((tensor, tensor.detach().clone()))
            if isinstance(obj, torch.optim.Optimizer):
                saved = {id(p): {k: (v.detach().clone() if torch.is_tensor(v) else v) for k, v in s.items()}
                         for p, s in obj.state.items()}
                self.optimizers.append((obj, saved))

    @torch.no_grad()
    def restore(self) -> None:
        for tensor, saved in self.tensors:
            tensor.copy_(saved)
        for optimizer, saved in self.optimizers:
            for param, state in optimizer.state.items():
                before = saved.get(id(param))
                for key, value in state.items():
                    if not torch.is_tensor(value):
                        if before is not None:
                            state[key] = before[key]
                        continue
                    if before is None:
                        value.zero_()
                    else:
                        value.copy_(before[key])


def _tensors_of(obj: Any) -> Iterator[torch.Tensor]:
    if isinstance(obj, nn.Module):
        yield from obj.parameters()
        yield from obj.buffers()
    elif isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, torch.optim.Optimizer):
        for group in obj.param_groups:
            for value in group.values():  # a capturable optimiser's tensor lr
                if torch.is_tensor(value):
                    yield value
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _tensors_of(item)
    else:
        raise TypeError(f"cannot snapshot a {type(obj).__name__}")


@contextlib.contextmanager
def preserved_cuda_rng(device: torch.device) -> Iterator[None]:
    """The default CUDA generator's state as it was before the block."""
    state = torch.cuda.get_rng_state(device)
    try:
        yield
    finally:
        torch.cuda.set_rng_state(state, device)


class CapturedStep:
    """``fn()`` run eagerly, or (on CUDA, ``capture``) captured once as a graph and replayed.

    ``state``: the modules, optimisers and tensors ``fn`` changes, restored after the warm-up so
    that the warm-up leaves no trace. ``warmup``: side-stream calls before capture (they compile
    and autotune kernels and let optimisers create their state).
    """

    def __init__(self, fn: Callable[[], Any], device: torch.device | str, *, state: Iterable[Any] = (),
                 capture: bool | None = None, warmup: int = 3) -> None:
        self.fn = fn
        self.device = torch.device(device)
        self.capture = self.device.type == "cuda" if capture is None else capture
        if self.capture and self.device.type != "cuda":
            raise ValueError("CUDA-graph capture needs a CUDA device")
        self.state = list(state)
        self.warmup = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: Any = None

    def warm_up_and_undo(self) -> None:
        """Run ``warmup`` calls, then put every piece of ``state`` back as it was (any device)."""
        snapshot = StateSnapshot(self.state)
        try:
            if self.device.type == "cuda":
                with preserved_cuda_rng(self.device):
                    stream = torch.cuda.Stream(self.device)
                    stream.wait_stream(torch.cuda.current_stream(self.device))
                    with torch.cuda.stream(stream):
                        for _ in range(self.warmup):
                            self.fn()
                    torch.cuda.current_stream(self.device).wait_stream(stream)
            else:
                for _ in range(self.warmup):
                    self.fn()
        finally:  # also when a warm-up call raised: no half-advanced state is left behind
            snapshot.restore()

    def __call__(self) -> Any:
        if not self.capture:
            return self.fn()
        if self.graph is None:
            self.warm_up_and_undo()
            graph = torch.cuda.CUDAGraph()
            # Capture records without running; the RNG offsets it reserves are given back so the
            # first replay draws what an eager first call would.
            with preserved_cuda_rng(self.device):
                # thread_local: a prefetch thread's syncs elsewhere must not invalidate the capture
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    outputs = self.fn()
            self.graph, self.outputs = graph, outputs  # only a capture that succeeded is replayed
        self.graph.replay()
        return self.outputs

    def release(self) -> None:
        """Drop the graph and its memory pool (a later call captures again)."""
        self.graph, self.outputs = None, None


class CudaRngSlot:
    """A private CUDA random stream for captured graphs, which draw from the default generator.

    ``with slot:`` swaps the slot's state into the default CUDA generator and back out afterwards,
    so a seeded sampler or trainer neither reads nor disturbs anybody else's CUDA draws.
    """

    def __init__(self, device: torch.device, seed: int) -> None:
        self.device = torch.device(device)
        # A private generator's state: the global one is neither read nor changed here.
        self.state = torch.Generator(device=self.device).manual_seed(int(seed)).get_state()

    def __enter__(self) -> CudaRngSlot:
        _RNG_LOCK.acquire()  # the default generator is shared by every thread (async refits)
        self._outer = torch.cuda.get_rng_state(self.device)
        torch.cuda.set_rng_state(self.state, self.device)
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.state = torch.cuda.get_rng_state(self.device)
            torch.cuda.set_rng_state(self._outer, self.device)
        finally:
            _RNG_LOCK.release()


_RNG_LOCK = threading.RLock()
