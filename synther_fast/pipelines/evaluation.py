"""Policy evaluation: average return over episodes from seeded start states, with the D4RL-normalised
score (envs/scores.py) where one is defined."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from synther_fast.common.rng import Stream, environment_seed
from synther_fast.envs import make_env
from synther_fast.envs.scores import normalized_score


def episode_seeds(run_seed: int, evaluation: int, episodes: int) -> list[int]:
    """Environment seeds of evaluation number ``evaluation`` of the run seeded ``run_seed``: one per
    episode, derived from (run seed, evaluation, episode), so no two runs, evaluations or episodes
    share start states (an offset scheme such as 10,000 + seed + k makes seed s+1 replay 9 of seed
    s's 10 episodes, and every evaluation of a run the same 10). Below 2^32 (dm_control's limit)."""
    return [environment_seed(run_seed, Stream.EVALUATION, evaluation, k) for k in range(episodes)]


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env_name: str, episodes: int = 10,
             seed: int = 10_000, seeds: list[int] | None = None) -> np.ndarray:
    """Returns of deterministic episodes from the environment seeds ``seeds`` (default: ``episodes``
    consecutive seeds from ``seed``)."""
    seeds = list(range(seed, seed + episodes)) if seeds is None else list(seeds)
    env = make_env(env_name, seed=seeds[0] if seeds else seed)
    returns = []
    for episode_seed in seeds:
        obs, _ = env.reset(seed=episode_seed)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(policy(obs[None])[0])
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return np.asarray(returns)


def evaluation_record(policy: Callable[[np.ndarray], np.ndarray], env_name: str, episodes: int,
                      run_seed: int, evaluation: int) -> dict[str, Any]:
    """Evaluation number ``evaluation`` of a run, as both pipelines log it: mean and std of the
    returns over ``episodes`` episodes (seeds from :func:`episode_seeds`), and the D4RL-normalised
    mean where reference returns are known."""
    returns = evaluate(policy, env_name, seeds=episode_seeds(run_seed, evaluation, episodes))
    record: dict[str, Any] = {"return_mean": float(returns.mean()), "return_std": float(returns.std())}
    score = normalized_score(env_name, record["return_mean"])
    if score is not None:
        record["normalized_score"] = score
    return record
