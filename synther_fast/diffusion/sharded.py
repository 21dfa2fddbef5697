"""Generation shared out over every rank of a torchrun process group, into one dataset file.

Each rank draws its own contiguous block of generation chunks; rank 0 joins the blocks in rank
order, so the file equals what one process writes with the same seed (common/distributed.py has
the process group; without torchrun this is a plain single-process generation).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from synther_fast.common.distributed import barrier, rank_and_world
from synther_fast.common.io import atomic_write
from synther_fast.data.rows import write_rows


def chunk_block(n_chunks: int, rank: int, world: int) -> range:
    """The contiguous block of chunk indices of one rank: sizes differ by at most one."""
    base, extra = divmod(n_chunks, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (1 if rank < extra else 0))


def generate_sharded(model, n: int, seed: int, out: str | os.PathLike[str], conditions=None,
                     scale: float | None = None, sampler: str | None = None, num_steps: int | None = None) -> int:
    """Generate n rows from ``model`` over every rank into one dataset file ``out``.

    Rows come in chunks of ``generation.chunk_size``, chunk k drawn from its own stream
    (seed, Stream.CHUNK, k) (SynthER.iter_chunks), so the file holds exactly the rows
    ``model.generate(n, seed)`` gives in one process, in the same order: rank r draws its block of
    chunks, writes it beside ``out``, and rank 0 concatenates the blocks in rank order, writes the
    file atomically and removes the blocks. Returns the number of rows written (on every rank).
    ``conditions`` / ``scale``: guided generation from a conditional model; ``sampler`` /
    ``num_steps``: another sampler than the model's (SynthER.with_sampler). The file records the
    sampler and its NFE.
    """
    model = model.with_sampler(sampler, num_steps)
    rank, world = rank_and_world()
    chunk = model.config.generation.chunk_size
    chunks = chunk_block(-(-int(n) // chunk), rank, world)
    parts = [rows for rows in model.iter_chunks(n, seed, chunks=chunks, conditions=conditions, scale=scale)]
    rows = np.concatenate(parts) if parts else np.zeros((0, model.layout.width), np.float32)
    if world == 1:
        write_rows(rows, model.layout, out, info=model.sampler_record)
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
        write_rows(everything, model.layout, out, info=model.sampler_record)
        for b in blocks:
            b.unlink()
        written[0] = len(everything)
    if dist.get_backend() == "nccl":
        written = written.cuda()
    dist.broadcast(written, src=0)
    return int(written.item())
