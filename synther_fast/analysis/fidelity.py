"""Marginal fidelity of synthetic rows against real ones: per column (KS, standardised
Wasserstein-1, mean gap), jointly (correlation matrix error), and for the rare binary terminal
column (rates, also inside and outside the task's unhealthy region). Real-vs-real on held-out
rows is the yardstick (SynthER's data-quality analysis, Lu et al. 2023)."""

from __future__ import annotations

import numpy as np

from synther_fast.analysis.tasks import unhealthy
from synther_fast.replay.layout import TransitionLayout

TERMINAL_THRESHOLD = 0.5  # the published code's threshold for a generated terminal


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / len(a)
    cdf_b = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def wasserstein1(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance of two empirical laws: the area between their CDFs (any sizes)."""
    a, b = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    grid = np.sort(np.concatenate([a, b]))
    # Both CDFs are constant between consecutive grid points, so the integral is a plain sum.
    cdf_a = np.searchsorted(a, grid[:-1], side="right") / len(a)
    cdf_b = np.searchsorted(b, grid[:-1], side="right") / len(b)
    return float(np.sum(np.abs(cdf_a - cdf_b) * np.diff(grid)))


def correlation_matrix(rows: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns; a constant column correlates 0 with every other one."""
    rows = np.asarray(rows, dtype=np.float64)
    centred = rows - rows.mean(axis=0)
    std = centred.std(axis=0)
    z = centred / np.where(std > 0, std, 1.0)
    corr = z.T @ z / len(rows)
    np.fill_diagonal(corr, 1.0)
    return corr


def correlation_error(real: np.ndarray, synthetic: np.ndarray) -> dict:
    """Mean and max |difference| of the off-diagonal correlations, real vs synthetic."""
    diff = np.abs(correlation_matrix(real) - correlation_matrix(synthetic))
    off = diff[~np.eye(len(diff), dtype=bool)]
    if off.size == 0:
        return {"corr_error": 0.0, "corr_max_error": 0.0}
    return {"corr_error": float(off.mean()), "corr_max_error": float(off.max())}


def _fidelity(real: np.ndarray, synthetic: np.ndarray, layout: TransitionLayout) -> dict:
    # float64: a float32 mean of 50k rows carries ~1e-7 of summation-order noise
    real, synthetic = np.asarray(real, dtype=np.float64), np.asarray(synthetic, dtype=np.float64)
    columns = {}
    for c in range(layout.width):
        std = float(real[:, c].std())
        scale = std if std > 0 else 1.0
        columns[layout.column_name(c)] = {
            "ks": ks_statistic(real[:, c], synthetic[:, c]),
            "w1_in_std": wasserstein1(real[:, c], synthetic[:, c]) / scale,
            "mean_gap_in_std": float(abs(real[:, c].mean() - synthetic[:, c].mean()) / scale),
        }
    ks = [v["ks"] for v in columns.values()]
    w1 = [v["w1_in_std"] for v in columns.values()]
    return {
        "rows": [len(real), len(synthetic)],
        "mean_ks": float(np.mean(ks)),
        "max_ks": float(np.max(ks)),
        "mean_w1_in_std": float(np.mean(w1)),
        "max_w1_in_std": float(np.max(w1)),
        "mean_gap_in_std": float(np.mean([v["mean_gap_in_std"] for v in columns.values()])),
        **correlation_error(real, synthetic),
        "columns": columns,
    }


def marginal_fidelity(real: np.ndarray, synthetic: np.ndarray, layout: TransitionLayout,
                      max_rows: int = 50_000, seed: int = 0) -> dict:
    """Per column: KS, standardised W1 and |mean gap| / real std; their means; the correlation error.

    0 is a perfect match; the KS statistic of two independent samples of one law of this size
    is about 1.36 sqrt(2 / n) at 95% (~0.009 for n = 50k). Each side is subsampled to max_rows.
    """
    rng = np.random.default_rng(seed)
    real = real[rng.permutation(len(real))[:max_rows]]
    synthetic = synthetic[rng.permutation(len(synthetic))[:max_rows]]
    return _fidelity(real, synthetic, layout)


def split_held_out(rows: np.ndarray, fraction: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A random (training, held-out) split of real rows, held-out being ``fraction`` of them."""
    if not 0 < fraction < 1:
        raise ValueError(f"held-out fraction must lie in (0, 1), got {fraction}")
    order = np.random.default_rng(seed).permutation(len(rows))
    cut = max(1, round(fraction * len(rows)))
    return rows[np.sort(order[cut:])], rows[np.sort(order[:cut])]


def fidelity_with_yardstick(real: np.ndarray, synthetic: np.ndarray, layout: TransitionLayout, *,
                            held_out_fraction: float = 0.1, max_rows: int = 50_000, seed: int = 0) -> dict:
    """Marginal fidelity of synthetic rows and of held-out real rows, both against the other real rows.

    Synthetic rows are subsampled to the held-out count so both carry the same sampling noise:
    a synthetic score at the "real_held_out" score is as good as a fresh sample of the data.
    """
    train, held = split_held_out(real, held_out_fraction, seed)
    rng = np.random.default_rng(seed + 1)
    n = min(len(held), len(synthetic), max_rows)
    train = train[rng.permutation(len(train))[:max_rows]]
    held = held[rng.permutation(len(held))[:n]]
    synthetic = synthetic[rng.permutation(len(synthetic))[:n]]
    return {"synthetic": _fidelity(train, synthetic, layout), "real_held_out": _fidelity(train, held, layout)}


def terminal_rates(real: np.ndarray, synthetic: np.ndarray, layout: TransitionLayout,
                   env_name: str | None = None) -> dict | None:
    """Real and synthetic terminal rates, and, where the task has health rules (Hopper, Walker2d),
    the rates inside and outside the unhealthy region of the next observation. None without a
    terminal column.

    A KS statistic barely moves when a 1.6% terminal rate comes out as 0.2%, yet that error biases
    every value target on termination-heavy tasks, so it is measured on its own.
    """
    if layout.terminal is None:
        return None

    def rates(rows: np.ndarray) -> dict:
        done = rows[:, layout.terminal][:, 0] > TERMINAL_THRESHOLD
        out = {"rows": len(rows), "terminal_rate": float(done.mean()) if len(rows) else float("nan")}
        bad = unhealthy(env_name, rows[:, layout.next_obs]) if env_name else None
        if bad is not None:
            out["unhealthy_fraction"] = float(bad.mean())
            # NaN where a region is empty: no rows, no rate (not a rate of 0)
            out["terminal_rate_if_unhealthy"] = float(done[bad].mean()) if bad.any() else float("nan")
            out["terminal_rate_if_healthy"] = float(done[~bad].mean()) if (~bad).any() else float("nan")
        return out

    return {"real": rates(real), "synthetic": rates(synthetic)}
