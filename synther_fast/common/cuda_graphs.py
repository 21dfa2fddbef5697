"""The one CUDA-graph helper: run a function of static tensors eagerly, or capture it once and replay.

Agents, the diffusion trainer and the fused sampler all use it. The function reads and writes only
tensors at fixed addresses (a static batch, parameters, optimiser state), so after capture each
call is one graph replay with no host synchronisation.

Capture follows the PyTorch recipe (a few warm-up calls on a side stream, then capture), with one
addition: the warm-up calls are *undone* before capture (parameters, buffers, optimiser state and
the CUDA RNG are restored), so every call of a :class:`CapturedStep` does exactly one step of work,
the first one included.

``SYNTHER_FAST_CUDA_GRAPHS=0`` in the environment turns every capture off: the same functions then
run eagerly on the GPU (so a failed capture still leaves eager numbers to compare against).
Everything that decides "is this captured?" asks :func:`will_capture`, and owners that draw random
numbers take a :class:`DeviceRandom`, so the captured and eager code paths differ in one place.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

from synther_fast.common.rng import Stream, stream_seed

GRAPHS_ENV = "SYNTHER_FAST_CUDA_GRAPHS"


def graphs_enabled() -> bool:
    """False when the environment sets SYNTHER_FAST_CUDA_GRAPHS=0 (every step then runs eagerly)."""
    value = os.environ.get(GRAPHS_ENV, "1").strip().lower()
    if value in ("", "1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{GRAPHS_ENV} must be 0 or 1, got {value!r}")


def _graph_device(device: torch.device) -> bool:
    """Whether ``device`` can capture graphs (CUDA). Tests replace this to run the captured code
    paths on the CPU against a recording fake of torch.cuda's graph API (tests/helpers/fake_cuda.py)."""
    return device.type == "cuda"


def will_capture(device: torch.device | str, requested: bool = True) -> bool:
    """Whether work on ``device`` is captured: asked for, a CUDA device, and graphs not disabled."""
    return bool(requested) and _graph_device(torch.device(device)) and graphs_enabled()


def optimizer_options(lr: float, device: torch.device | str, captured: bool) -> dict[str, Any]:
    """Adam/AdamW keywords for a step that is or is not captured. Captured: the lr lives in a
    device tensor (a graph reads it in place; schedulers fill it) and the state on the device
    (capturable); fused, so the whole update is one kernel. Eager: fused with a float lr."""
    if captured:
        return {"lr": torch.tensor(float(lr), device=device), "fused": True, "capturable": True}
    return {"lr": float(lr), "fused": True}


def matching_optimizer_state(saved: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """``saved`` with this optimiser's own mode (capturable, fused, foreach, lr type) in every group.

    A checkpoint written by a captured step holds a tensor lr and capturable=True, one written
    eagerly (CPU, a reference, data-parallel) a float lr and capturable=False; loading either as
    saved would switch this optimiser to the other mode, which capture rejects (or which silently
    freezes a float lr into the graph). The values (lr, moments, step counts) are kept.
    """
    groups = []
    for mine, theirs in zip(optimizer.param_groups, saved["param_groups"]):
        group = dict(theirs)
        for key in ("capturable", "fused", "foreach"):
            if key in mine:
                group[key] = mine[key]
        lr = float(theirs["lr"])
        group["lr"] = torch.tensor(lr, device=mine["lr"].device) if isinstance(mine["lr"], torch.Tensor) else lr
        groups.append(group)
    return {**saved, "param_groups": groups}


def load_optimizer_state(optimizer: torch.optim.Optimizer, saved: dict[str, Any]) -> None:
    """Load ``saved`` into ``optimizer`` in the optimiser's own mode (matching_optimizer_state)."""
    optimizer.load_state_dict(matching_optimizer_state(saved, optimizer))


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
    """``fn(*inputs)`` run eagerly, or (when :func:`will_capture`) captured once as a graph and replayed.

    ``state``: the modules, optimisers and tensors ``fn`` changes, restored after the warm-up and
    after the capture, so that neither leaves a trace: every call is exactly one step.
    ``warmup``: side-stream calls before capture (they compile and autotune kernels and let
    optimisers create their state).

    Inputs: a captured graph reads fixed addresses, so the step owns *static inputs*. The first
    call allocates them like its arguments; every later call copies its arguments in (nothing
    when the caller passes the static tensors themselves: :attr:`static_inputs`), so a new batch
    object never means a new capture (as tensordict's CudaGraphModule). Eagerly ``fn`` simply
    gets the arguments. The shapes and dtypes of the first call are the only ones accepted.
    """

    def __init__(self, fn: Callable[..., Any], device: torch.device | str, *, state: Iterable[Any] = (),
                 capture: bool | None = None, warmup: int = 3) -> None:
        self.fn = fn
        self.device = torch.device(device)
        if capture and not _graph_device(self.device):
            raise ValueError("CUDA-graph capture needs a CUDA device")
        self.capture = will_capture(self.device, True if capture is None else capture)
        self.state = list(state)
        self.warmup = warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: Any = None
        self.static_inputs: tuple[torch.Tensor, ...] | None = None
        self.captures = 0  # how many graphs this step has recorded (one, unless released)

    def warm_up_and_undo(self, *inputs: torch.Tensor) -> None:
        """Run ``warmup`` calls, then put every piece of ``state`` back as it was (any device)."""
        snapshot = StateSnapshot(self.state)
        try:
            with self._rng_given_back():
                if self.device.type == "cuda":
                    stream = torch.cuda.Stream(self.device)
                    stream.wait_stream(torch.cuda.current_stream(self.device))
                    with torch.cuda.stream(stream):
                        for _ in range(self.warmup):
                            self.fn(*inputs)
                    torch.cuda.current_stream(self.device).wait_stream(stream)
                else:
                    for _ in range(self.warmup):
                        self.fn(*inputs)
        finally:  # also when a warm-up call raised: no half-advanced state is left behind
            snapshot.restore()

    def _rng_given_back(self) -> contextlib.AbstractContextManager:
        # Captured work draws from the default CUDA generator: warm-up and capture give back
        # what they took, so the first replay draws what an eager first call would.
        return preserved_cuda_rng(self.device) if self.capture else contextlib.nullcontext()

    def __call__(self, *inputs: torch.Tensor) -> Any:
        if not self.capture:
            return self.fn(*inputs)
        if self.static_inputs is None:
            self.static_inputs = tuple(torch.empty_like(x, device=self.device) for x in inputs)
        self._copy_in(inputs)
        if self.graph is None:
            self._capture()
        self.graph.replay()
        return self.outputs

    def _copy_in(self, inputs: tuple[torch.Tensor, ...]) -> None:
        static = self.static_inputs
        if len(inputs) != len(static):
            raise ValueError(f"this captured step takes {len(static)} inputs, got {len(inputs)}")
        for i, (x, fixed) in enumerate(zip(inputs, static)):
            if x is fixed:
                continue
            if x.shape != fixed.shape or x.dtype != fixed.dtype:
                raise ValueError(f"captured step input {i} must have shape {tuple(fixed.shape)} and dtype "
                                 f"{fixed.dtype} (those of the first call), got {tuple(x.shape)} {x.dtype}")
            fixed.copy_(x, non_blocking=True)

    def _capture(self) -> None:
        inputs = self.static_inputs
        self.warm_up_and_undo(*inputs)
        snapshot = StateSnapshot(self.state)
        graph = torch.cuda.CUDAGraph()
        try:
            with self._rng_given_back():
                # thread_local: a prefetch thread's syncs elsewhere must not invalidate the capture
                with torch.cuda.graph(graph, capture_error_mode="thread_local"):
                    outputs = self.fn(*inputs)
        finally:
            # A real capture records without running; restoring makes that true of any capture
            # (and of one that failed half-way), so the replay below is this call's one step.
            snapshot.restore()
        self.graph, self.outputs = graph, outputs  # only a capture that succeeded is replayed
        self.captures += 1

    def release(self) -> None:
        """Drop the graph and its memory pool (a later call captures again; inputs stay)."""
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


class DeviceRandom:
    """One owner's random stream on its device, for captured or eager work.

    Captured: a :class:`CudaRngSlot` (graphs replay fresh draws only from the default CUDA
    generator); use ``generator`` (None) inside ``with stream.scope():``. Eager: an explicit
    ``torch.Generator`` on the device, and ``scope()`` does nothing.
    """

    def __init__(self, device: torch.device | str, seed: int, captured: bool) -> None:
        self.device, self.seed = torch.device(device), int(seed)
        self.slot = CudaRngSlot(self.device, self.seed) if captured else None
        self.generator = None if captured else torch.Generator(device=self.device).manual_seed(self.seed)

    @property
    def kind(self) -> str:
        """Which generator's state this stream holds (states of different kinds do not convert)."""
        return "cuda-slot" if self.slot is not None else f"{self.device.type}-generator"

    def scope(self) -> contextlib.AbstractContextManager:
        return self.slot if self.slot is not None else contextlib.nullcontext()

    def state_dict(self) -> dict[str, Any]:
        state = self.slot.state if self.slot is not None else self.generator.get_state()
        return {"kind": self.kind, "state": state.clone()}

    def load_state_dict(self, state: Any, reseed_with: int = 0) -> None:
        """Continue from ``state``. A state of another kind (a checkpoint written on another
        device or in the other mode) cannot continue this stream: it is reseeded from (seed,
        ``reseed_with``) instead, with a warning, and the run continues from there."""
        if torch.is_tensor(state):  # written before the kind was recorded: the writer's own kind
            mine = self.slot.state if self.slot is not None else self.generator.get_state()
            state = {"kind": self.kind if state.numel() == mine.numel() else "unknown", "state": state}
        if state["kind"] == self.kind:
            if self.slot is not None:
                self.slot.state = state["state"].cpu().clone()
            else:
                self.generator.set_state(state["state"].cpu())
            return
        warnings.warn(f"a {state['kind']} random state cannot continue this {self.kind} stream; reseeding it "
                      "(the run continues, but its random draws differ from an uninterrupted run's)", stacklevel=2)
        fresh = DeviceRandom(self.device, stream_seed(self.seed, Stream.RESEED, reseed_with), self.slot is not None)
        self.slot, self.generator = fresh.slot, fresh.generator
