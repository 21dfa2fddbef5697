"""Offline SynthER through the public ``synther_fast.upsample()`` (issue 32): a CORL-style TD3+BC loop
trained on the upsampled rows against the same loop on the real rows.

The loop is what a CORL user writes around a ``d4rl.qlearning_dataset`` dict: states normalised
with the **real** data's mean and std (CORL's ``normalize`` option, as the published SynthER passes
synthetic data to CORL), uniform batches of 256, TD3+BC with CORL's defaults (the package's TD3BC),
then deterministic evaluation episodes. Per seed, ``upsample(dataset, --rows, preset="quick",
env=task, seed=seed)`` fits its own model (the offline quick preset's diffusion settings: width 256,
depth 4, 12k steps, 32 sampler steps) and the arms ``real`` and ``synthetic`` (synthetic rows
only) train ``--updates`` updates each.

Resumable: the upsampled rows of each seed are kept in ``--work`` and each (seed, arm)'s return is
written to ``--out`` as soon as it exists; a rerun skips what is there.

Usage: python bench/studies/upsample_td3bc.py [--dataset runs/few_step/HalfCheetah-v5_sac30k_s0.npz]
         [--task HalfCheetah-v5] [--rows 100000] [--updates 10000] [--seeds 0 1 2]
         [--work runs/upsample_td3bc] [--out docs/results/upsample-td3bc-cpu.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import synther_fast
from synther_fast.agents.td3_bc import TD3BC
from synther_fast.common.io import write_json
from synther_fast.config import TD3BCConfig, resolve
from synther_fast.data import load_dataset
from synther_fast.envs.scores import normalized_score
from synther_fast.pipelines.evaluation import evaluate
from synther_fast.replay import Batch, TransitionLayout

KEYS = ("observations", "actions", "rewards", "next_observations", "terminals")


def qlearning_dict(path: Path) -> dict[str, np.ndarray]:
    data = load_dataset(path)
    return {"observations": data.observations, "actions": data.actions, "rewards": data.rewards,
            "next_observations": data.next_observations, "terminals": data.terminals, "timeouts": data.timeouts}


def upsampled(real: dict[str, np.ndarray], task: str, seed: int, args: argparse.Namespace) -> dict[str, np.ndarray]:
    path = args.work / f"{task}_upsampled_s{seed}.npz"
    if path.exists():
        with np.load(path) as f:
            return {k: f[k] for k in f.files}
    start = time.perf_counter()
    rows = synther_fast.upsample(real, args.rows, preset=args.preset, env=task, seed=seed)
    print(f"upsample seed {seed}: {len(rows['rewards'])} rows in {time.perf_counter() - start:.0f} s", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **rows)
    tmp.replace(path)
    return rows


def train_td3bc(data: dict[str, np.ndarray], real: dict[str, np.ndarray], task: str, seed: int,
                args: argparse.Namespace) -> float:
    obs_dim, act_dim = real["observations"].shape[1], real["actions"].shape[1]
    layout = TransitionLayout(obs_dim, act_dim, True)
    rows = np.concatenate([data["observations"], data["actions"], data["rewards"][:, None],
                           data["next_observations"], data["terminals"][:, None]], 1).astype(np.float32)
    mean, std = real["observations"].mean(0), real["observations"].std(0) + 1e-3  # CORL: the real data's
    agent = TD3BC(obs_dim, act_dim, TD3BCConfig(), mean, std, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(args.updates):
        agent.update(Batch(rows[rng.integers(0, len(rows), 256)], layout))
    return float(evaluate(agent.act, task, episodes=args.eval_episodes, seed=10_000 + 100 * seed).mean())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=Path("runs/few_step/HalfCheetah-v5_sac30k_s0.npz"))
    parser.add_argument("--task", default="HalfCheetah-v5")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", type=Path, default=Path("runs/upsample_td3bc"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/upsample-td3bc-cpu.json"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    fit = resolve("offline", args.preset).synther
    results.setdefault("settings", {"dataset": str(args.dataset), "task": args.task, "rows": args.rows,
                                    "preset": args.preset, "fit_steps": fit.trainer.steps,
                                    "width": fit.denoiser.width, "sampler_steps": fit.edm.num_steps,
                                    "updates": args.updates, "eval_episodes": args.eval_episodes})
    real = qlearning_dict(args.dataset)
    for seed in args.seeds:
        for arm in ("real", "synthetic"):
            key = f"{arm}_s{seed}"
            if key in results.get("returns", {}):
                continue
            data = real if arm == "real" else upsampled(real, args.task, seed, args)
            start = time.perf_counter()
            score = train_td3bc(data, real, args.task, seed, args)
            results.setdefault("returns", {})[key] = {"return": score, "score": normalized_score(args.task, score),
                                                      "seconds": time.perf_counter() - start}
            write_json(args.out, results)
            print(f"{args.task} {key}: return {score:.0f}", flush=True)
    for arm in ("real", "synthetic"):
        values = [v["return"] for k, v in results.get("returns", {}).items() if k.startswith(arm + "_")]
        if values:
            results[f"{arm}_mean"], results[f"{arm}_std"] = float(np.mean(values)), float(np.std(values))
            print(f"{arm}: {np.mean(values):.0f} +- {np.std(values):.0f} over {len(values)} seeds")
    write_json(args.out, results)
    return results


if __name__ == "__main__":
    main()
