"""Several processes (torchrun) for one diffusion fit or one generation.

Under ``torchrun --nproc-per-node N`` (which sets RANK, WORLD_SIZE, LOCAL_RANK and the rendezvous
address), :func:`process_group` joins the processes into one group: NCCL with one GPU each, or
gloo on CPUs. Inside it, ``SynthER.fit`` is data-parallel (diffusion/trainer.py explains why it
equals the single-process fit with the same global batch) and :func:`generate_sharded` gives
each rank its own block of generation chunks. Without torchrun (WORLD_SIZE unset or 1) every
function here is the plain single-process path.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from synther_fast.artifacts import write_rows
from synther_fast.io import atomic_write
from synther_fast.runtime import resolve_device


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


def chunk_block(n_chunks: int, rank: int, world: int) -> range:
    """The contiguous block of chunk indices of one rank: sizes differ by at most one."""
    base, extra = divmod(n_chunks, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def generate_sharded(model, n: int, seed: int, out: str | os.PathLike[str], conditions=None,
                     scale: float | None = None) -> int:
    """Generate n rows from ``model`` over every rank into one dataset file ``out``.

    Rows come in chunks of ``generation.chunk_size``, chunk k drawn from its own stream
    (seed, Stream.CHUNK, k) (SynthER.iter_chunks), so the file holds exactly the rows
    ``model.generate(n, seed)`` gives in one process, in the same order: rank r draws its block of
    chunks, writes it beside ``out``, and rank 0 concatenates the blocks in rank order, writes the
    file atomically and removes the blocks. Returns the number of rows written (on every rank).
    ``conditions`` / ``scale``: guided generation from a conditional model (SynthER.iter_chunks).
    """
    rank, world = rank_and_world()
    chunk = model.config.generation.chunk_size
    chunks = chunk_block(-(-int(n) // chunk), rank, world)
    parts = [rows for rows in model.iter_chunks(n, seed, chunks=chunks, conditions=conditions, scale=scale)]
    rows = np.concatenate(parts) if parts else np.zeros((0, model.layout.width), np.float32)
    if world == 1:
        write_rows(rows, model.layout, out)
        return len(rows)
    out = Path(out)
    block = out.with_name(f".{out.name}.rank{rank}-of-{world}.npy")
    with atomic_write(block) as handle:
        np.save(handle, rows)
    barrier()
    written = torch.zeros(1, dtype=torch.int64)
    if rank == 0:
        blocks = [out.with_name(f".{out.name}.rank{r}-of-{world}.npy") for r in range(world)]
        everything = np.concatenate([np.load(b) for b in blocks])
        write_rows(everything, model.layout, out)
        for b in blocks:
            b.unlink()
        written[0] = len(everything)
    if dist.get_backend() == "nccl":
        written = written.cuda()
    dist.broadcast(written, src=0)
    return int(written.item())
