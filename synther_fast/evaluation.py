"""Policy evaluation: average return over episodes, and D4RL-normalised scores."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# D4RL's reference returns (random and expert policies) for the locomotion tasks; gymnasium v5
# tasks have the same bodies and rewards up to small simulator differences.
D4RL_REFERENCE = {
    "HalfCheetah": (-280.178953, 12135.0),
    "Hopper": (-20.272305, 3234.3),
    "Walker2d": (1.629008, 4592.3),
    "Ant": (-325.6, 3879.7),
}


def normalized_score(env_name: str, episode_return: float) -> float | None:
    """100 (R - R_random) / (R_expert - R_random), or None where D4RL has no reference."""
    key = env_name.split("-")[0]
    if key not in D4RL_REFERENCE:
        return None
    low, high = D4RL_REFERENCE[key]
    return 100.0 * (episode_return - low) / (high - low)


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env_name: str, episodes: int = 10,
             seed: int = 10_000) -> np.ndarray:
    """Returns of ``episodes`` deterministic episodes (seeds seed, seed+1, ...)."""
    from synther_fast.envs import make_env

    env = make_env(env_name, seed=seed)
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs[None])[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return np.asarray(returns)
