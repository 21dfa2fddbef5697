"""The terminal fraction of generated rows with and without matching it to the real rows'
(generation.terminal_prior, issue 20), on finished offline run directories.

For each run: its real dataset and its synthetic rows (labelled by the task's rule, unmatched:
runs made before terminal_prior existed, or with ``--synther.generation.terminal-prior model``),
then the same rows thinned by ``match_terminal_rate`` (without the top-up draws, which need the
model). The dynamics error (SynthER's: each row simulated from its own state and action) is
computed once per generated row and averaged over each set's rows. Reported: rows kept, terminal rate and its ratio to the real one, the rate where the
generated next state is unhealthy / healthy, and the continuous marginals' mean KS.

Usage: python bench/studies/terminal_prior.py RUN_DIR [RUN_DIR ...] [--out docs/results/terminal-prior.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from synther_fast.analysis import marginal_fidelity
from synther_fast.analysis.dynamics import dynamics_error
from synther_fast.data import load_dataset
from synther_fast.data.rows import read_rows
from synther_fast.diffusion.termination import terminal_rate_mask
from synther_fast.envs.health import unhealthy
from synther_fast.runs import read_config


def measure(run_dir: Path) -> dict:
    config = read_config(run_dir)
    dataset = load_dataset(run_dir / "dataset.npz")
    layout = dataset.layout(True)
    real = dataset.to_rows(layout)
    synthetic = read_rows(run_dir / "synthetic.npz", layout)
    rate = float(real[:, layout.terminal.start].mean())
    out = {"run": str(run_dir), "env": config.env, "seed": config.seed, "real_rate": rate}
    keep = terminal_rate_mask(synthetic[:, layout.terminal.start] > 0.5, rate, np.random.default_rng(0))
    matched = synthetic[keep]
    # dynamics error: every generated row simulated once; the matched set averages its own rows
    errors = dynamics_error(synthetic, layout, config.env)
    per_row = errors.per_row()
    for name, rows, mask in (("model", synthetic, np.ones(len(synthetic), bool)), ("matched", matched, keep)):
        chosen = mask[errors.scored_index]
        done = rows[:, layout.terminal.start] > 0.5
        bad = unhealthy(config.env, rows[:, layout.next_obs])
        fidelity = marginal_fidelity(real, rows, layout)
        out[name] = {"rows": len(rows), "terminal_rate": float(done.mean()), "ratio": float(done.mean() / rate),
                     "rate_if_unhealthy": float(done[bad].mean()), "rate_if_healthy": float(done[~bad].mean()),
                     "mean_ks": fidelity["mean_ks"], "max_ks": fidelity["max_ks"],
                     "dynamics_next_obs_mse": float(np.mean(per_row[chosen])), "dynamics_scored": int(chosen.sum())}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", default="docs/results/terminal-prior.json")
    args = parser.parse_args()
    results = [measure(r) for r in args.runs]
    for r in results:
        m, t = r["model"], r["matched"]
        print(f"{r['env']} seed {r['seed']}: real {r['real_rate']:.2%}; model {m['terminal_rate']:.2%} "
              f"({m['ratio'] - 1:+.0%}, KS {m['mean_ks']:.4f}); matched {t['terminal_rate']:.2%} "
              f"({t['ratio'] - 1:+.0%}, KS {t['mean_ks']:.4f}, {m['rows'] - t['rows']} rows dropped); dynamics "
              f"next-obs MSE {m['dynamics_next_obs_mse']:.4g} -> {t['dynamics_next_obs_mse']:.4g}")
    Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
