"""What the terminal labels do to an agent: TD3+BC on Hopper-v5 trained on real rows, and on synthetic
rows only, labelled the published way (threshold 0.5) and from the generated next state (the
task's rule), at a small CPU scale (issue 20).

Input: an .npz with ``real`` rows and ``syn`` rows whose terminal column is the raw generated value,
as ``python bench/studies/terminal_study.py --tasks Hopper-v5 --save-rows DIR`` writes it. The three arms
share the generated rows' continuous columns; only the terminal column differs between the two
synthetic arms. Each arm: ``--updates`` TD3+BC updates (CORL defaults, states normalised with the
real data's statistics), evaluated every ``--eval-every`` updates with ``--episodes`` episodes from
the package's derived evaluation seeds.

Usage: python bench/studies/terminal_effect.py DATA.npz [--seeds 0 1] [--updates 20000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from synther_fast.agents.td3_bc import TD3BC
from synther_fast.config import TD3BCConfig
from synther_fast.envs.health import unhealthy
from synther_fast.pipelines.evaluation import evaluation_record
from synther_fast.replay import MixedSampler, ReplayBuffer, TransitionLayout

ENV = "Hopper-v5"
LAYOUT = TransitionLayout(11, 3, True)


def arms(real: np.ndarray, raw: np.ndarray) -> dict[str, np.ndarray]:
    threshold, rule = raw.copy(), raw.copy()
    column = LAYOUT.terminal.start
    threshold[:, column] = (raw[:, column] >= 0.5).astype(np.float32)
    rule[:, column] = unhealthy(ENV, raw[:, LAYOUT.next_obs]).astype(np.float32)
    return {"real": real, "synthetic-threshold": threshold, "synthetic-rule": rule}


def train(rows: np.ndarray, real: np.ndarray, seed: int, updates: int, eval_every: int, episodes: int) -> dict:
    obs = real[:, LAYOUT.obs]
    agent = TD3BC(11, 3, TD3BCConfig(), obs.mean(0), obs.std(0) + 1e-3, seed=seed)
    buffer = ReplayBuffer(len(rows), LAYOUT)
    buffer.add(np.ascontiguousarray(rows, dtype=np.float32))
    sampler = MixedSampler(buffer, None, 0.0, 256, seed=seed)
    batch = sampler.new_batch(torch=True)
    evaluations, start = [], time.perf_counter()
    for step in range(1, updates + 1):
        agent.update(sampler.sample(batch))
        if step % eval_every == 0:
            record = evaluation_record(agent.act, ENV, episodes, seed, len(evaluations))
            evaluations.append({"step": step, **record})
            print(f"  seed {seed} step {step}: return {record['return_mean']:.0f}", flush=True)
    return {"seed": seed, "evaluations": evaluations, "seconds": time.perf_counter() - start,
            "terminal_rate": float(rows[:, LAYOUT.terminal.start].mean())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--out", default="docs/results/terminal-effect.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with np.load(args.data) as f:
        real, raw = f["real"], f["syn"]
    results = {}
    for name, rows in arms(real, raw).items():
        print(name, flush=True)
        results[name] = [train(rows, real, s, args.updates, args.eval_every, args.episodes) for s in args.seeds]
    summary = {name: {"terminal_rate": runs[0]["terminal_rate"],
                      "final_returns": [r["evaluations"][-1]["return_mean"] for r in runs],
                      "final_normalized": [r["evaluations"][-1].get("normalized_score") for r in runs]}
               for name, runs in results.items()}
    Path(args.out).write_text(json.dumps({"summary": summary, "runs": results, "args": vars(args)}, indent=1))
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
