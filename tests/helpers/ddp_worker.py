"""One diffusion fit (and optionally a sharded generation) on a fixed small dataset, run under
torchrun by tests/pipelines/test_distributed.py; with one process it is the single-process reference.

Writes into --out: model.pt and history.json (rank 0), fit.ckpt (rank 0, checkpoints), and with
--generate N the N generated rows in gen.npz (gathered from every rank).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from synther_fast import SynthER, quick
from synther_fast.common.distributed import is_main_process, process_group, rank_and_world
from synther_fast.diffusion.sharded import generate_sharded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--stop-after", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--generate", type=int, default=0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)  # two processes on two cores
    from diffusion_fixtures import LAYOUT, transitions

    out = Path(args.out)
    rows = transitions(512, seed=0)
    config = quick().with_overrides(**{
        "denoiser.width": 64, "denoiser.depth": 2, "denoiser.dim_t": 16, "trainer.steps": args.steps,
        "trainer.batch_size": 64, "trainer.checkpoint_every": 6, "trainer.log_every": 6,
        "trainer.ema_warmup": 2, "trainer.ema_every": 2, "generation.chunk_size": 96, "edm.num_steps": 4,
    })
    ckpt = out / "fit.ckpt"
    with process_group("cpu"):
        model = SynthER(LAYOUT, config, "cpu")
        model.fit(rows, checkpoint=ckpt, resume=ckpt if args.resume else None, stop_after=args.stop_after,
                  progress=False)
        if is_main_process():
            model.save(out / "model.pt")
            (out / "history.json").write_text(json.dumps({"history": model.history,
                                                          "world": rank_and_world()[1]}))
        if args.generate:
            generate_sharded(model, args.generate, args.seed, out / "gen.npz")


if __name__ == "__main__":
    main()
