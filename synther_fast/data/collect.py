"""Make offline datasets locally: a random policy, a saved policy checkpoint (medium-like data,
optionally with per-episode action noise for mixed quality), or the whole replay of a short SAC run
(replay-like data). Episode boundaries are kept: terminals where the task terminated, time-outs
where it was truncated (and at the end of collection)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.data.dataset import Dataset, DatasetError
from synther_fast.io import atomic_write, load_torch_dict
from synther_fast.progress import progress_bar

Policy = Callable[[np.ndarray], np.ndarray]


def rollouts(env_name: str, policy: Policy | None, steps: int, seed: int = 0,
             noise_levels: tuple[float, ...] = (0.0,), progress: bool = False) -> Dataset:
    """``steps`` transitions; policy None is uniform random. Episode k adds Gaussian action noise
    of std noise_levels[k % len(noise_levels)] (a spread of levels gives mixed-quality data)."""
    from synther_fast.envs import make_env

    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    env = make_env(env_name, seed=seed)
    rng = np.random.default_rng(seed)
    act_dim = env.action_space.shape[0]
    buf: dict[str, list[Any]] = {k: [] for k in ("obs", "act", "rew", "next", "term", "trunc")}
    obs, _ = env.reset(seed=seed)
    episode = 0
    bar = progress_bar(steps, f"collect {env_name}", enabled=progress)
    for t in range(steps):
        if policy is None:
            action = rng.uniform(-1, 1, act_dim)
        else:
            noise = noise_levels[episode % len(noise_levels)]
            action = np.asarray(policy(obs[None])[0], dtype=np.float64)
            if noise > 0:
                action = action + noise * rng.normal(size=act_dim)
            action = np.clip(action, -1.0, 1.0)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        last = t == steps - 1
        for key, value in (("obs", obs), ("act", action), ("rew", reward), ("next", next_obs),
                           ("term", float(terminated)), ("trunc", float((truncated or last) and not terminated))):
            buf[key].append(value)
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
            episode += 1
        bar.update(1)
    bar.close()
    env.close()
    return Dataset(np.array(buf["obs"]), np.array(buf["act"]), np.array(buf["rew"]), np.array(buf["next"]),
                   np.array(buf["term"]), np.array(buf["trunc"]), env_name, f"collected:{env_name}")


def sac_replay(env_name: str, steps: int, seed: int = 0, device: str = "cpu",
               progress: bool = False, start_steps: int | None = None) -> tuple[Dataset, dict[str, Any]]:
    """Train SAC (UTD 1) for ``steps`` environment steps; return its whole replay as a dataset and
    the final actor as a policy checkpoint (a replay-like D4RL dataset is made the same way)."""
    from synther_fast.agents.sac import SAC, SACConfig
    from synther_fast.envs import make_env
    from synther_fast.replay import MixedSampler, ReplayBuffer

    env = make_env(env_name, seed=seed)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    config = SACConfig() if start_steps is None else SACConfig(start_steps=start_steps)
    agent = SAC(obs_dim, act_dim, config, device, seed)
    dataset_layout = Dataset(np.zeros((1, obs_dim)), np.zeros((1, act_dim)), np.zeros(1), np.zeros((1, obs_dim)),
                             np.zeros(1), np.zeros(1)).layout(True)
    replay = ReplayBuffer(steps, dataset_layout)
    sampler = MixedSampler(replay, None, 0.0, config.batch_size, seed=seed)
    batch = sampler.new_batch(torch=True)
    rng = np.random.default_rng(seed)
    timeouts = np.zeros(steps, np.float32)
    obs, _ = env.reset(seed=seed)
    bar = progress_bar(steps, f"SAC on {env_name}", enabled=progress)
    returns, episode_return = [], 0.0
    for t in range(steps):
        action = rng.uniform(-1, 1, act_dim) if t < config.start_steps else agent.act(obs[None])[0]
        next_obs, reward, terminated, truncated, _ = env.step(action)
        replay.add(np.concatenate([obs, action, [reward], next_obs, [float(terminated)]]))
        episode_return += reward
        if (truncated or t == steps - 1) and not terminated:
            timeouts[t] = 1.0
        obs = next_obs
        if terminated or truncated:
            returns.append(episode_return)
            bar.set_postfix(ret=f"{episode_return:.0f}")
            episode_return = 0.0
            obs, _ = env.reset()
        if t >= config.start_steps:
            for _ in range(config.utd):
                sampler.sample(batch)
                device_batch = _to_device(batch, agent.device)
                agent.update_critic(device_batch)
            agent.update_actor(device_batch)
        bar.update(1)
    bar.close()
    env.close()
    rows = replay.to_numpy()
    layout = dataset_layout
    data = Dataset(rows[:, layout.obs], rows[:, layout.action], rows[:, layout.reward][:, 0],
                   rows[:, layout.next_obs], rows[:, layout.terminal][:, 0], timeouts, env_name,
                   f"sac_replay:{env_name}")
    checkpoint = agent.actor_state() | {"env_name": env_name, "env_steps": steps,
                                        "episode_returns": [float(r) for r in returns[-10:]]}
    return data, checkpoint


def _to_device(batch: Any, device: torch.device) -> Any:
    if device.type == "cpu":
        return batch
    from synther_fast.replay import Batch

    return Batch(batch.data.to(device, non_blocking=True), batch.layout)


def save_policy(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> None:
    with atomic_write(path) as handle:
        torch.save(checkpoint, handle)


def load_policy(path: str | os.PathLike[str], device: str = "cpu") -> tuple[Policy, dict[str, Any]]:
    """A deterministic policy function from a saved SAC actor checkpoint."""
    from synther_fast.agents.sac import TanhGaussianActor

    state = load_torch_dict(path, device, DatasetError, "policy checkpoint")
    if state.get("kind") != "sac_actor":
        raise DatasetError(f"{path}: not a policy checkpoint")
    try:
        actor = TanhGaussianActor(int(state["obs_dim"]), int(state["act_dim"]), tuple(state["hidden"])).to(device)
        actor.load_state_dict(state["actor"])
    except (RuntimeError, KeyError, TypeError) as exc:
        raise DatasetError(f"{path}: policy checkpoint does not match its sizes ({exc})") from None
    actor.eval()

    @torch.no_grad()
    def policy(obs: np.ndarray) -> np.ndarray:
        action, _ = actor(torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device), deterministic=True)
        return action.cpu().numpy()

    return policy, state


def shipped_policy_path(env_name: str) -> Path:
    """The small policy checkpoint shipped in the package for ``env_name`` (for the demo)."""
    name = env_name.replace("dmc:", "dmc_").replace("-", "_").lower()
    path = Path(__file__).resolve().parents[1] / "policies" / f"{name}_sac.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no policy checkpoint is shipped for {env_name} (looked for {path})")
    return path
