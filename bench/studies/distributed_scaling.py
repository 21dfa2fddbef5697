"""When do sweeps on Ray and torchrun pay off on this machine? Wall-clock measurements.

1. A sweep of CELLS small offline cells run one at a time (each cell given every CPU) against
   Ray packing them one CPU each: the sweep's throughput gain on one machine.
2. A diffusion fit of the quick model: one process (all threads) against torchrun with 2
   processes (data-parallel, one thread each, gloo).
3. Generation of ROWS rows: one process against 2 torchrun processes (sharded).

    python bench/studies/distributed_scaling.py --out bench/results/distributed-cpu.json

Whole-workflow timings (process start, Ray start, imports included), so a script rather than a
pytest-benchmark: each number is one run of the command a user would type.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CELL = {"collect_method": "random", "collect_steps": 5000, "synthetic_rows": 20_000, "agent_steps": 2000,
        "eval_every": 2000, "eval_episodes": 2, "report": False, "synther.trainer.steps": 400,
        "synther.trainer.checkpoint_every": 400}


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    # cwd: outside the source checkout, whose bare package tree would shadow the installed one
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})},
                            cwd=tempfile.gettempdir())
    if result.returncode != 0:
        raise RuntimeError(result.stdout[-2000:] + result.stderr[-2000:])
    return time.perf_counter() - started


def sweep_seconds(root: Path, cells: int, cpus_per_cell: float) -> float:
    code = ("import synther_fast, json, sys; r = synther_fast.sweep(mode='offline', tasks=['Hopper-v5'], "
            f"algos=['td3_bc'], seeds=list(range({cells})), overrides=json.loads(sys.argv[1]), "
            f"root=sys.argv[2], cpus_per_cell={cpus_per_cell}, progress=False); assert not r.failed")
    return timed([sys.executable, "-c", code, json.dumps(CELL), str(root)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cells", type=int, default=4)
    parser.add_argument("--fit-steps", type=int, default=300)
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    cpus = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="synther-scaling-"))
    results: dict[str, float] = {}
    try:
        results["sweep_serial_s"] = sweep_seconds(work / "serial", args.cells, float(cpus))
        results["sweep_packed_s"] = sweep_seconds(work / "packed", args.cells, 1.0)

        data = work / "data.npz"
        timed([sys.executable, "-m", "synther_fast", "collect", "--env", "HalfCheetah-v5", "--out", str(data),
               "--steps", "20000"])
        fit = ["fit", "--dataset", str(data), "--synther.trainer.steps", str(args.fit_steps),
               "--synther.trainer.checkpoint-every", str(args.fit_steps), "--device", "cpu"]
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                    "-m", "synther_fast"]
        results["fit_1proc_s"] = timed([sys.executable, "-m", "synther_fast", *fit, "--out", str(work / "m1.pt")])
        results["fit_2proc_s"] = timed([*torchrun, *fit, "--out", str(work / "m2.pt")], {"OMP_NUM_THREADS": "1"})
        gen = ["generate", "--model", str(work / "m1.pt"), "--rows", str(args.rows), "--device", "cpu"]
        results["generate_1proc_s"] = timed([sys.executable, "-m", "synther_fast", *gen, "--out",
                                             str(work / "g1.npz")])
        results["generate_2proc_s"] = timed([*torchrun, *gen, "--out", str(work / "g2.npz")],
                                            {"OMP_NUM_THREADS": "1"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results |= {"cells": args.cells, "fit_steps": args.fit_steps, "rows": args.rows, "cpus": cpus}
    print(f"machine: {cpus} CPUs")
    print(f"sweep of {args.cells} cells: one at a time {results['sweep_serial_s']:.0f} s, packed by Ray "
          f"{results['sweep_packed_s']:.0f} s ({results['sweep_serial_s'] / results['sweep_packed_s']:.2f}x)")
    print(f"fit, {args.fit_steps} steps (process start included): 1 process {results['fit_1proc_s']:.1f} s, "
          f"2 processes {results['fit_2proc_s']:.1f} s ({results['fit_1proc_s'] / results['fit_2proc_s']:.2f}x)")
    print(f"generate {args.rows:,} rows: 1 process {results['generate_1proc_s']:.1f} s, 2 processes "
          f"{results['generate_2proc_s']:.1f} s ({results['generate_1proc_s'] / results['generate_2proc_s']:.2f}x)")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
