"""The measures recorded for every refill of an online run: how the new synthetic rows compare with
the real replay they were fitted on (subsampled: a few hundred ms on a CPU)."""

from __future__ import annotations

from typing import Any

import numpy as np

from synther_fast.analysis.dynamics import dynamics_error
from synther_fast.analysis.fidelity import marginal_fidelity
from synther_fast.analysis.novelty import novelty
from synther_fast.analysis.tasks import unsupported_reason
from synther_fast.replay.layout import TransitionLayout


def bulk_distance(real_rows: np.ndarray, rows: np.ndarray, max_rows: int = 20_000) -> float:
    """How far ``rows`` lie from the bulk of the real rows: their mean distance from the real mean
    in real standard deviations (RMS over columns), over that of the real rows themselves (1: as
    far out as the data; a guided refill aimed at rare transitions lies further)."""
    mean, std = real_rows.mean(0), real_rows.std(0) + 1e-6

    def spread(x: np.ndarray) -> float:
        x = x[np.random.default_rng(0).choice(len(x), max_rows, replace=False)] if len(x) > max_rows else x
        return float(np.sqrt((((x - mean) / std) ** 2).mean(1)).mean())

    return spread(rows) / spread(real_rows)


def refill_fidelity(real_rows: np.ndarray, synthetic_rows: np.ndarray, layout: TransitionLayout,
                    seed: int) -> dict[str, float]:
    """Marginal fidelity (KS, W1, correlations), novelty against the real rows and the distance
    from their bulk; ``seed`` draws the novelty subsample (the online run passes the refit index)."""
    fidelity = marginal_fidelity(real_rows, synthetic_rows, layout, max_rows=20_000)
    near = novelty(real_rows, synthetic_rows, max_rows=2000, seed=seed)
    return {"mean_ks": fidelity["mean_ks"], "max_ks": fidelity["max_ks"],
            "mean_w1_in_std": fidelity["mean_w1_in_std"], "corr_error": fidelity["corr_error"],
            "mean_gap_in_std": fidelity["mean_gap_in_std"], "novelty_mean": near["mean"],
            "bulk_distance": bulk_distance(real_rows, synthetic_rows)}


def refill_dynamics(synthetic_rows: np.ndarray, layout: TransitionLayout, env_name: str, seed: int) -> dict[str, Any]:
    """The simulator's verdict on 1000 of the rows (~0.1 s); empty where the task's state cannot
    be rebuilt from an observation."""
    if unsupported_reason(env_name) is not None:
        return {}
    error = dynamics_error(synthetic_rows, layout, env_name, max_rows=1000, seed=seed).summary()
    return {"dynamics_next_obs_relative_mse": error["next_obs_relative_mse"],
            "dynamics_reward_mse": error["reward_mse"]}
