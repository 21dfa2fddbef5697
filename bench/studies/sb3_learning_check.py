"""Does SynthER help an outside learner? Stable-Baselines3's SAC with the SB3 adapter (issue 32).

Arms, each a plain SB3 ``SAC("MlpPolicy", ...)`` with SB3's defaults (256x256, batch 256, lr 3e-4,
auto entropy), ``learning_starts`` random steps, ``train_freq=1``:

- ``synther``: ``gradient_steps=20`` on ``SynthERReplayBuffer`` (ratio 0.5) + ``SynthERCallback``
  (a fresh model every ``--refit-every`` steps, ``--num-samples`` rows, the online quick preset's
  diffusion settings: width 256, depth 3, 3k steps, 32 sampler steps);
- ``real20``: ``gradient_steps=20`` on SB3's own ReplayBuffer (real rows only);
- ``utd1``: ``gradient_steps=1`` on SB3's own ReplayBuffer.

Deviations from the published online SynthER: SB3's SAC updates the actor and alpha on every
gradient step (the published REDQ-style SAC once per environment step), and the budget is a CPU's
(``--steps`` environment steps, refits every 1k steps with 20k rows instead of every 10k with 1M).

Each (arm, seed) is a resumable run under ``--work``: every ``--chunk`` steps it is evaluated
(``--eval-episodes`` deterministic episodes) and the model, its replay buffer (synthetic rows
included) and the evaluation log are written atomically; a rerun loads them
(``SAC.load`` + ``load_replay_buffer``, ``learn(reset_num_timesteps=False)``) and goes on, so its
refits fall where an uninterrupted run's would. Results go to ``--out`` (JSON) after every chunk.

Usage: python bench/studies/sb3_learning_check.py [--task Hopper-v5] [--steps 5000] [--seeds 0 1 2]
         [--arms synther real20 utd1] [--work runs/sb3_check] [--out docs/results/sb3-check-cpu.json]
         [--plot docs/results/sb3-check-cpu.png] [--only-report]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.evaluation import evaluate_policy

from synther_fast.common.io import write_json
from synther_fast.config import resolve
from synther_fast.integrations.sb3 import SynthERCallback, SynthERReplayBuffer, make_vec_env

ARMS = {"synther": 20, "real20": 20, "utd1": 1}
"""Arm -> gradient steps per environment step."""


def build(arm: str, seed: int, args: argparse.Namespace) -> tuple[SAC, SynthERCallback | None]:
    env = make_vec_env(args.task, 1, seed)
    kwargs = dict(learning_starts=args.learning_starts, train_freq=1, gradient_steps=ARMS[arm], seed=seed,
                  device="cpu", verbose=0, policy_kwargs={"net_arch": list(args.hidden)}, batch_size=args.batch_size)
    if arm == "synther":
        model = SAC("MlpPolicy", env, replay_buffer_class=SynthERReplayBuffer,
                    replay_buffer_kwargs={"synthetic_ratio": 0.5, "seed": seed}, **kwargs)
    else:
        model = SAC("MlpPolicy", env, **kwargs)
    return model, callback(arm, seed, args)


def callback(arm: str, seed: int, args: argparse.Namespace) -> SynthERCallback | None:
    if arm != "synther":
        return None
    config = args.synther_config or resolve("online", "quick").synther
    return SynthERCallback(refit_every=args.refit_every, num_samples=args.num_samples, config=config,
                           task=args.task, seed=seed)


def save_atomic(model: SAC, run: Path, log: dict) -> None:
    """Model, replay buffer and log; each written to a temporary name, then renamed into place."""
    model.save(run / "model.tmp.zip")
    os.replace(run / "model.tmp.zip", run / "model.zip")
    model.save_replay_buffer(run / "buffer.tmp.pkl")
    os.replace(run / "buffer.tmp.pkl", run / "buffer.pkl")
    write_json(run / "log.json", log)  # last: a log names a step whose model and buffer are on disk


def run_one(arm: str, seed: int, args: argparse.Namespace) -> dict:
    run = args.work / args.task / f"{arm}_s{seed}"
    run.mkdir(parents=True, exist_ok=True)
    log = json.loads((run / "log.json").read_text()) if (run / "log.json").exists() else {
        "arm": arm, "seed": seed, "evals": [], "refits": [], "seconds": 0.0}
    env = make_vec_env(args.task, 1, seed)
    if log["evals"]:
        model = SAC.load(run / "model.zip", env=env, device="cpu")
        model.load_replay_buffer(run / "buffer.pkl")
        if not isinstance(model.replay_buffer, SynthERReplayBuffer) and arm == "synther":
            raise RuntimeError(f"{run}: the saved buffer is not a SynthERReplayBuffer")
        cb = callback(arm, seed, args)
    else:
        model, cb = build(arm, seed, args)
    eval_env = make_vec_env(args.task, 1, 10_000 + seed)
    while model.num_timesteps < args.steps:
        start = time.perf_counter()
        chunk = min(args.chunk, args.steps - model.num_timesteps)
        model.learn(chunk, callback=cb, reset_num_timesteps=False, progress_bar=False)
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
        log["evals"].append({"step": int(model.num_timesteps), "return": float(mean), "std": float(std)})
        if cb is not None:
            log["refits"] += [{k: v for k, v in h.items()} for h in cb.history]
            cb.history.clear()
        log["seconds"] += time.perf_counter() - start
        save_atomic(model, run, log)
        print(f"{args.task} {arm} seed {seed}: step {model.num_timesteps} return {mean:.0f} "
              f"({log['seconds']:.0f} s)", flush=True)
    return log


def summary(args: argparse.Namespace) -> dict:
    out: dict = {"task": args.task, "steps": args.steps, "settings": settings(args), "arms": {}}
    for arm in args.arms:
        runs = []
        for seed in args.seeds:
            path = args.work / args.task / f"{arm}_s{seed}" / "log.json"
            if path.exists():
                runs.append(json.loads(path.read_text()))
        finished = [r for r in runs if r["evals"] and r["evals"][-1]["step"] >= args.steps]
        finals = [r["evals"][-1]["return"] for r in finished]
        out["arms"][arm] = {"runs": runs, "finished_seeds": [r["seed"] for r in finished],
                            "final_mean": float(np.mean(finals)) if finals else None,
                            "final_std": float(np.std(finals)) if finals else None}
    return out


def settings(args: argparse.Namespace) -> dict:
    return {"learning_starts": args.learning_starts, "hidden": list(args.hidden), "batch_size": args.batch_size,
            "refit_every": args.refit_every, "num_samples": args.num_samples, "eval_episodes": args.eval_episodes,
            "synther_preset": "online quick" if args.synther_config is None else args.synther_config,
            "threads": torch.get_num_threads()}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for arm, entry in result["arms"].items():
        curves = [r["evals"] for r in entry["runs"] if r["evals"]]
        if not curves:
            continue
        length = min(len(c) for c in curves)
        steps = [e["step"] for e in curves[0][:length]]
        values = np.array([[e["return"] for e in c[:length]] for c in curves])
        mean, std = values.mean(0), values.std(0)
        ax.plot(steps, mean, label=f"{arm} ({len(curves)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("environment steps")
    ax.set_ylabel("evaluation return")
    ax.set_title(f"SB3 SAC on {result['task']}")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--work", type=Path, default=Path("runs/sb3_check"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/sb3-check-cpu.json"))
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--only-report", action="store_true", help="summarise the runs on disk; train nothing")
    parser.add_argument("--learning-starts", type=int, default=1000)
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--refit-every", type=int, default=1000)
    parser.add_argument("--num-samples", type=int, default=20_000)
    parser.add_argument("--synther-config", default=None, help="a fit preset name (default: the online quick preset's)")
    parser.add_argument("--chunk", type=int, default=500, help="steps between evaluations and checkpoints")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.only_report:
        for seed in args.seeds:  # seed-major: every arm's seed 0 before any seed 1
            for arm in args.arms:
                run_one(arm, seed, args)
                write_json(args.out, summary(args))
    result = summary(args)
    write_json(args.out, result)
    if args.plot is not None:
        plot(result, args.plot)
    for arm, entry in result["arms"].items():
        if entry["final_mean"] is not None:
            print(f"{arm}: {entry['final_mean']:.0f} +- {entry['final_std']:.0f} "
                  f"(seeds {entry['finished_seeds']})")
    return result


if __name__ == "__main__":
    main()
