"""Process groups and collectives for several processes (torchrun) working on one fit or one generation.

Under ``torchrun --nproc-per-node N`` (which sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous
address), :func:`process_group` joins the processes into one group: NCCL with one GPU each, or
gloo on CPUs. Inside it, ``SynthER.fit`` is data-parallel (diffusion/trainer.py explains why it
equals the single-process fit with the same global batch) and ``generate_sharded`` gives
each rank its own block of generation chunks (diffusion/sharded.py). Without torchrun (WORLD_SIZE unset or 1) every
function here is the plain single-process path.
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator

import torch
import torch.distributed as dist

from synther_fast.common.devices import resolve_device


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    return rank_and_world()[0] == 0


@contextlib.contextmanager
def process_group(device: str | torch.device | None = None) -> Iterator[torch.device]:
    """Join torchrun's processes (if launched by it) and yield this process's device.

    ``device`` None picks cuda:LOCAL_RANK when CUDA is there, else the CPU; a CPU device uses
    gloo, a CUDA device NCCL. Without torchrun it just resolves the device.
    """
    resolved = resolve_device(device)
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        yield resolved
        return
    if not dist.is_available():
        raise RuntimeError("this torch build has no torch.distributed")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if resolved.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA devices")
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    dist.init_process_group(backend="nccl" if resolved.type == "cuda" else "gloo")
    try:
        yield resolved
    except BaseException:
        # No barrier here: a peer may be waiting in a collective this rank will never join.
        dist.destroy_process_group()
        raise
    # Every rank reaches the teardown together: a gloo rank that destroys its group while a peer's
    # last send is still in flight can abort in C++ ("terminate called without an active exception").
    # Objects in reference cycles that still hold the group (a DDP wrapper's reducer) are freed first,
    # while the interpreter is whole: freed during finalisation, gloo's threads can abort the same way.
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier()


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a scalar tensor over the ranks (itself without a process group)."""
    rank, world = rank_and_world()
    if world == 1:
        return value
    total = value.detach().clone().float()
    dist.all_reduce(total)
    return total / world


def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every rank."""
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def agree(flag: bool) -> bool:
    """True on every rank only if ``flag`` is true on every rank (so all raise or none does)."""
    _, world = rank_and_world()
    if world == 1:
        return flag
    value = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        value = value.cuda()
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item() > 0.5)
