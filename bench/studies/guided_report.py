"""SynthER against guided SynthER from online run directories: final returns, each refill's data
quality (fidelity, distance from the real rows, dynamics error), and the learning curves.

Usage: python bench/studies/guided_report.py OUT_DIR RUN_DIR [RUN_DIR ...]
Writes OUT_DIR/learning_curves.png (mean over seeds per guidance) and prints markdown tables.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from synther_fast.analysis.plots import plot_learning_curves

REFILL_KEYS = ("mean_ks", "corr_error", "novelty_mean", "bulk_distance", "dynamics_next_obs_relative_mse", "dynamics_reward_mse")


def main(out_dir: str, run_dirs: list[str]) -> None:
    arms: dict[str, list[dict]] = defaultdict(list)
    for run_dir in run_dirs:
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
        config = json.loads((Path(run_dir) / "config.json").read_text())
        guidance = config["synther"].get("guidance", "none")
        arms[guidance].append(summary)
    print("| guidance | seed | final return | best evaluation | refits |")
    print("|---|---|---|---|---|")
    curves = {}
    for guidance, runs in sorted(arms.items()):
        for s in runs:
            returns = [e["return_mean"] for e in s["evaluations"]]
            print(f"| {guidance} | {s['seed']} | {s['final_return_mean']:.1f} ± {s['final_return_std']:.1f} | "
                  f"{max(returns):.1f} | {len(s['refits'])} |")
        steps = [e["env_step"] for e in runs[0]["evaluations"]]
        mean = np.mean([[e["return_mean"] for e in s["evaluations"]] for s in runs], axis=0)
        curves[f"{'SynthER' if guidance == 'none' else 'guided SynthER (' + guidance + ')'}, mean of "
               f"{len(runs)} seeds"] = list(zip(steps, mean.tolist()))
        finals = [s["final_return_mean"] for s in runs]
        print(f"| {guidance} | mean | {np.mean(finals):.1f} ± {np.std(finals):.1f} (over seeds) | | |")
    print()
    print("| guidance | refill (env step) | " + " | ".join(REFILL_KEYS) + " |")
    print("|---|---|" + "---|" * len(REFILL_KEYS))
    for guidance, runs in sorted(arms.items()):
        by_refit: dict[int, list[dict]] = defaultdict(list)
        for s in runs:
            for info in s["refits"]:
                by_refit[info["env_step"]].append(info)
        for step, infos in sorted(by_refit.items()):
            values = [np.mean([i[k] for i in infos if k in i]) if any(k in i for i in infos) else float("nan")
                      for k in REFILL_KEYS]
            print(f"| {guidance} | {step} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    plot_learning_curves(curves, Path(out_dir) / "learning_curves.png", xlabel="environment steps",
                         title=f"{runs[0]['env']}: SynthER vs guided SynthER")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python bench/studies/guided_report.py OUT_DIR RUN_DIR [RUN_DIR ...]")
    missing = [d for d in sys.argv[2:] if not (Path(d) / "summary.json").is_file()]
    if missing:
        sys.exit(f"guided_report: no summary.json (an unfinished or not an online run?) in {', '.join(missing)}")
    main(sys.argv[1], sys.argv[2:])
