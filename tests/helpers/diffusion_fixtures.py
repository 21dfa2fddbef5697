"""A known transition-like distribution for the diffusion tests, and quality statistics.

obs s ~ N(0, L L^T) (correlated), action a ~ U[-1, 1]^2 (bounded),
next_obs = f(s, a) + 0.02 n with f(s, a) = 0.9 s + 0.5 tanh(s W + a B),
reward = -|s|^2 / 4 + a . c + 0.01 n.
"""

from __future__ import annotations

import numpy as np
import torch

from synther_fast import TransitionLayout

LAYOUT = TransitionLayout(obs_dim=4, act_dim=2, has_terminal=False)
_L = np.array([[1.0, 0, 0, 0], [0.8, 0.6, 0, 0], [0.3, 0.2, 0.9, 0], [0.0, -0.5, 0.3, 0.8]])
_W = np.random.default_rng(42).normal(scale=0.7, size=(4, 4))
_B = np.random.default_rng(43).normal(scale=0.7, size=(2, 4))
_C = np.array([1.0, -0.5])


def dynamics(obs: np.ndarray, action: np.ndarray) -> np.ndarray:
    return 0.9 * obs + 0.5 * np.tanh(obs @ _W + action @ _B)


def transitions(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 4)) @ _L.T
    action = rng.uniform(-1, 1, size=(n, 2))
    next_obs = dynamics(obs, action) + 0.02 * rng.normal(size=(n, 4))
    reward = -(obs**2).sum(1, keepdims=True) / 4 + action @ _C[:, None] + 0.01 * rng.normal(size=(n, 1))
    return np.concatenate([obs, action, reward, next_obs], axis=1).astype(np.float32)


def dynamics_residual(rows: np.ndarray) -> float:
    """Mean |next_obs - f(obs, action)|: how far rows are from obeying the true dynamics."""
    obs, action, next_obs = rows[:, LAYOUT.obs], rows[:, LAYOUT.action], rows[:, LAYOUT.next_obs]
    return float(np.abs(next_obs - dynamics(obs, action)).mean())


def energy_distance(x: np.ndarray, y: np.ndarray) -> float:
    """2 E|X-Y| - E|X-X'| - E|Y-Y'| (Szekely), on the given (already standardised) rows."""
    tx, ty = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    return float(2 * torch.cdist(tx, ty).mean() - torch.cdist(tx, tx).mean() - torch.cdist(ty, ty).mean())


def nearest_distance(rows: np.ndarray, data: np.ndarray) -> float:
    """Mean distance from each row to its nearest neighbour in data."""
    return float(torch.cdist(torch.from_numpy(rows).double(), torch.from_numpy(data).double()).min(1).values.mean())


def quality(samples: np.ndarray, real: np.ndarray) -> dict[str, float]:
    """Distribution statistics of samples against held-out real rows (standardised by real)."""
    mu, sd = real.mean(0), real.std(0)
    zs, zr = (samples - mu) / sd, (real - mu) / sd
    return {
        "mean_err": float(np.abs(zs.mean(0)).max()),
        "std_ratio_err": float(np.abs(zs.std(0) - 1).max()),
        "corr_err": float(np.abs(np.corrcoef(zs.T) - np.corrcoef(zr.T)).max()),
        "energy": energy_distance(zs[:1500], zr[:1500]),
    }


# Tolerances, chosen from measured values (see test_synther.py): a trained quick model lands well
# inside them, an untrained model and the broken samplers fall far outside.
TOLERANCES = {"mean_err": 0.15, "std_ratio_err": 0.2, "corr_err": 0.2, "energy": 0.05}


def passes(q: dict[str, float]) -> bool:
    return all(q[k] <= TOLERANCES[k] for k in TOLERANCES)


def random_rows(layout: TransitionLayout, n: int = 300, seed: int = 0) -> np.ndarray:
    """Standard-normal rows with a 0/1 terminal column (30% ones): API tests' data, no dynamics."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n, layout.width)).astype(np.float32)
    data[:, layout.terminal] = rng.random((n, 1)) < 0.3
    return data
