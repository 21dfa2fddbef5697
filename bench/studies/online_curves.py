"""Learning curves of several online run directories in one PNG, and a markdown table.

Usage: python bench/studies/online_curves.py OUT.png RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from synther_fast.analysis.plots import plot_learning_curves


def main(out: str, run_dirs: list[str]) -> None:
    curves = {}
    rows = ["| run | algo | env steps | final return | best evaluation | critic updates | learner s | fit s | "
            "generate s | env s | eval s | total s |", "|" + "---|" * 12]
    for run_dir in run_dirs:
        s = json.loads((Path(run_dir) / "summary.json").read_text())
        steps = [e["env_step"] for e in s["evaluations"]]
        returns = [e["return_mean"] for e in s["evaluations"]]
        label = f"{s['algo']} (UTD {s['utd']}, {json.loads((Path(run_dir) / 'config.json').read_text())['sac']['num_critics']} critics)"
        curves[label] = list(zip(steps, returns))
        sec = s["seconds"]
        rows.append(f"| {Path(run_dir).name} | {s['algo']} | {s['env_steps']:,} | {s['final_return_mean']:.1f} ± "
                    f"{s['final_return_std']:.1f} | {max(returns):.1f} | {s['critic_updates']:,} | {sec['learner']:.0f} | "
                    f"{sec['fit']:.0f} | {sec['generate']:.0f} | {sec['env']:.0f} | {sec['eval']:.0f} | "
                    f"{s.get('seconds_total') or 0:.0f} |")
    plot_learning_curves(curves, Path(out), xlabel="environment steps", title=s["env"])
    print("\n".join(rows))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
