"""Make offline datasets locally: a random policy, a saved policy checkpoint (medium-like data,
optionally with per-episode action noise for mixed quality), or the whole replay of a short SAC run
(replay-like data). Episode boundaries are kept: terminals where the task terminated, time-outs
where it was truncated (and at the end of collection)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.agents.sac import SAC, TanhGaussianActor
from synther_fast.common.devices import resolve_device
from synther_fast.common.io import atomic_write, load_torch_dict
from synther_fast.common.progress import progress_bar
from synther_fast.common.rng import Stream, environment_seed, stream_seed
from synther_fast.config import COLLECT_METHODS, sac_utd1
from synther_fast.data.dataset import Dataset, DatasetError
from synther_fast.envs import env_spec, make_env
from synther_fast.pipelines.interaction import EnvLoop, Learner, OnlineState, episode_seed
from synther_fast.replay import ReplayBuffer, TransitionLayout

Policy = Callable[[np.ndarray], np.ndarray]


def rollouts(env_name: str, policy: Policy | None, steps: int, seed: int = 0,
             noise_levels: tuple[float, ...] = (0.0,), progress: bool = False) -> Dataset:
    """``steps`` transitions; policy None is uniform random. Episode k adds Gaussian action noise
    of std noise_levels[k % len(noise_levels)] (a spread of levels gives mixed-quality data).
    The environment draws from ``seed``'s EPISODES stream, the actions from its EXPLORATION stream."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    env_seed = environment_seed(seed, Stream.EPISODES, 0)
    env = make_env(env_name, seed=env_seed)
    rng = np.random.default_rng(stream_seed(seed, Stream.EXPLORATION))
    act_dim = env.action_space.shape[0]
    buf: dict[str, list[Any]] = {k: [] for k in ("obs", "act", "rew", "next", "term", "trunc")}
    obs, _ = env.reset(seed=env_seed)
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
               progress: bool = False, start_steps: int | None = None,
               has_terminal: bool | None = None) -> tuple[Dataset, dict[str, Any]]:
    """Train SAC (UTD 1) for ``steps`` environment steps with the environment loop of the online
    runs (interaction.EnvLoop, no run directory, no evaluations); return its whole replay as a
    dataset and the final actor as a policy checkpoint (a replay-like D4RL dataset is made the
    same way)."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    sac = sac_utd1() if start_steps is None else dataclasses.replace(sac_utd1(), start_steps=start_steps)
    torch_device = resolve_device(device)
    env = make_env(env_name)
    spec = env_spec(env_name, has_terminal)
    layout = TransitionLayout(spec.obs_dim, spec.act_dim, spec.has_terminal)
    agent = SAC(spec.obs_dim, spec.act_dim, sac, torch_device, seed, env_name)
    real = ReplayBuffer(steps, layout)
    learner = Learner(agent, real, None, 0.0, sac.batch_size, sac.utd, layout, torch_device, seed)
    state = OnlineState()
    loop = EnvLoop(env, agent, real, state, steps=steps, start_steps=sac.start_steps,
                   action_rng=np.random.default_rng(stream_seed(seed, Stream.EXPLORATION)),
                   episode_seed=episode_seed(seed))
    try:
        with progress_bar(steps, f"collect (SAC) {env_name}", enabled=progress) as bar:
            while loop.running:
                episode_over = loop.step()
                if loop.learning:
                    learner.step()
                bar.update(1)
                if episode_over:
                    loop.next_episode()
    finally:
        env.close()
    rows = real.to_numpy()
    timeouts = np.zeros(len(rows), np.float32)
    timeouts[state.timeouts] = 1.0
    terminal = rows[:, layout.terminal][:, 0] if layout.terminal is not None else np.zeros(len(rows), np.float32)
    data = Dataset(rows[:, layout.obs], rows[:, layout.action], rows[:, layout.reward][:, 0],
                   rows[:, layout.next_obs], terminal, timeouts, env_name, f"sac_replay:{env_name}")
    checkpoint = agent.actor_state() | {"env_name": env_name, "env_steps": steps,
                                        "episode_returns": [float(r) for r in state.episode_returns[-10:]]}
    return data, checkpoint


def collect(env_name: str, method: str, steps: int, seed: int = 0, *, policy: str | os.PathLike[str] | None = None,
            noise: tuple[float, ...] = (0.0,), progress: bool = False,
            has_terminal: bool | None = None) -> tuple[Dataset, dict[str, Any] | None]:
    """The one collection entry point (the offline pipeline and ``synther-fast collect``):
    'random' rollouts, a 'policy' checkpoint's rollouts with per-episode noise (default: the
    policy shipped for the task), or a 'sac' run's replay. Returns the dataset and, for 'sac',
    the final actor as a policy checkpoint (else None). Everything drawn comes from ``seed``'s
    COLLECT stream, so a run's dataset shares no stream with its agents."""
    seed = stream_seed(seed, Stream.COLLECT)
    if method == "random":
        return rollouts(env_name, None, steps, seed, progress=progress), None
    if method == "policy":
        act, _ = load_policy(policy or shipped_policy_path(env_name))
        return rollouts(env_name, act, steps, seed, tuple(noise), progress=progress), None
    if method == "sac":
        return sac_replay(env_name, steps, seed, progress=progress, has_terminal=has_terminal)
    raise ValueError(f"unknown collection method {method!r}; choose from {COLLECT_METHODS}")


def save_policy(checkpoint: dict[str, Any], path: str | os.PathLike[str]) -> None:
    with atomic_write(path) as handle:
        torch.save(checkpoint, handle)


def load_policy(path: str | os.PathLike[str], device: str = "cpu") -> tuple[Policy, dict[str, Any]]:
    """A deterministic policy function from a saved SAC actor checkpoint."""
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
        shipped = sorted(p.stem.removesuffix("_sac") for p in path.parent.glob("*_sac.pt"))
        raise FileNotFoundError(f"no policy checkpoint is shipped for {env_name} (only for {', '.join(shipped)}): "
                                f"collect with the method 'sac' (a SAC run's replay) or 'random', or give a policy "
                                f"checkpoint of your own")
    return path
