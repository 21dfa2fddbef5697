"""How often do generated transitions terminate? The real rate against each way of making the
synthetic terminal column, on SAC-collected data of the termination-heavy tasks (issue 20).

For each task: SAC (UTD 1) collects ``--steps`` transitions (its whole replay, early falls
included), the ``quick`` diffusion preset is fitted on them, and ``--rows`` rows are generated. The
continuous columns are the same for the post-processing variants, so they are compared on one
draw; variants that change the model are fitted again.

Variants of the terminal column:
- ``threshold``: the raw generated value thresholded at 0.5 (the published offline code);
- ``raw-mean``: the mean of the raw value (what storing it unthresholded, as the published online
  code does, gives a value target in expectation);
- ``bernoulli``: a Bernoulli draw with p = clip(raw, 0, 1);
- ``classifier``: a termination classifier (an MLP, trained on the real rows) labels each
  synthetic row (the 2026-12-02 run used (obs, action, next_obs) inputs and 2x256 units; the
  package's classifier now takes next_obs only, 2x128, positives weighted 10: see docs/RESULTS.md);
- ``health-rule``: the task's own health rule applied to the synthetic next_obs (the ceiling a
  learned labeller can reach; only where the task has rules);
- ``standardised``: the terminal column standardised like the others before the fit (a refit),
  thresholded at 0.5 after denormalisation.

Reported per variant: the overall rate, the rate where the synthetic next_obs is unhealthy and
where it is healthy (the task's rules), and, for the refit, the continuous marginals' mean KS.

Usage: python bench/studies/terminal_study.py [--tasks Hopper-v5 Walker2d-v5] [--steps 30000] [--rows 100000]
         [--out docs/results/terminal-study.json] [--save-rows DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from synther_fast import SynthER, quick
from synther_fast.analysis import marginal_fidelity
from synther_fast.diffusion.termination import TerminationClassifier
from synther_fast.envs.health import unhealthy
from synther_fast.pipelines.collect import sac_replay


def rates(terminal: np.ndarray, next_obs: np.ndarray, env: str) -> dict[str, float]:
    done = terminal > 0.5
    out = {"terminal_rate": float(done.mean())}
    bad = unhealthy(env, next_obs)
    if bad is not None:
        out |= {"unhealthy_fraction": float(bad.mean()),
                "rate_if_unhealthy": float(done[bad].mean()) if bad.any() else float("nan"),
                "rate_if_healthy": float(done[~bad].mean()) if (~bad).any() else float("nan")}
    return out


def fit_and_generate(rows: np.ndarray, layout, rows_out: int, seed: int, standardise_terminal: bool):
    config = dataclasses.replace(quick(), seed=seed)
    if standardise_terminal:
        config = config.replace(**{"normalizer.normalize_terminal": True})
    # keep the raw generated value: no labelling, no threshold
    config = config.replace(**{"generation.terminals": "threshold", "generation.terminal_threshold": None})
    model = SynthER(layout, config, device="cpu")
    start = time.perf_counter()
    model.fit(rows, progress=False)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    synthetic = model.generate(rows_out, seed=seed)
    return synthetic, fit_s, time.perf_counter() - start


def study(env: str, steps: int, rows_out: int, seed: int, save_rows: Path | None = None) -> dict:
    start = time.perf_counter()
    dataset, _ = sac_replay(env, steps, seed=seed)
    layout = dataset.layout(True)
    real = dataset.to_rows(layout)
    out: dict = {"env": env, "steps": steps, "rows": rows_out, "collect_seconds": time.perf_counter() - start,
                 "real": rates(real[:, layout.terminal][:, 0], real[:, layout.next_obs], env)}
    classifier = TerminationClassifier.fit(real, layout, seed=seed)
    out["classifier_real_accuracy"] = float(((classifier.predict(real) > 0.5) == (real[:, layout.terminal][:, 0] > 0.5)).mean())
    for refit in (False, True):
        synthetic, fit_s, gen_s = fit_and_generate(real, layout, rows_out, seed, standardise_terminal=refit)
        raw = synthetic[:, layout.terminal][:, 0]
        next_obs = synthetic[:, layout.next_obs]
        fidelity = marginal_fidelity(real, synthetic, layout)
        key = "standardised" if refit else "published-normaliser"
        if save_rows is not None and not refit:  # the real rows and the raw generated ones
            save_rows.mkdir(parents=True, exist_ok=True)
            np.savez(save_rows / f"{env}.npz", real=real, syn=synthetic)
        variants = {"threshold": rates((raw >= 0.5).astype(np.float32), next_obs, env),
                    "raw-mean": {"terminal_rate": float(raw.mean())}}
        if not refit:
            rng = np.random.default_rng(seed)
            variants["bernoulli"] = rates((rng.random(len(raw)) < np.clip(raw, 0, 1)).astype(np.float32), next_obs, env)
            variants["classifier"] = rates(classifier.predict(synthetic), next_obs, env)
            bad = unhealthy(env, next_obs)
            if bad is not None:
                variants["health-rule"] = rates(bad.astype(np.float32), next_obs, env)
        out[key] = {"fit_seconds": fit_s, "generate_seconds": gen_s, "mean_ks": fidelity["mean_ks"],
                    "raw_terminal_quantiles": [float(q) for q in np.quantile(raw, [0.5, 0.9, 0.99, 0.999])],
                    "variants": variants}
        print(json.dumps({env: {key: out[key]}}, indent=1), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["Hopper-v5", "Walker2d-v5"])
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/results/terminal-study.json")
    parser.add_argument("--save-rows", type=Path, default=None, help="folder for TASK.npz (real and raw generated rows)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = [study(env, args.steps, args.rows, args.seed, args.save_rows) for env in args.tasks]
    Path(args.out).write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
