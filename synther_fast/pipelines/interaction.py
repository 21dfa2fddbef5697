"""The agent-environment loop's parts, shared by the online pipeline and SAC data collection.

Three parts, none of which knows about run directories:

- :class:`OnlineState`: the loop's counters and histories, with one serialisation;
- :class:`Learner`: the learner block (``utd`` critic updates on batches from the C++
  MixedSampler, staged in one pinned block, timed on the device);
- :class:`EnvLoop`: one environment step per :meth:`EnvLoop.step` call (act, uniformly random
  while the replay holds at most ``start_steps`` rows, as the REDQ code; store the real
  transition, a time-limit truncation not being a terminal). The caller writes the rest of its
  loop out in order: learn, refit, evaluate, then :meth:`EnvLoop.next_episode` and checkpoint.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.common.devices import DeviceTimer
from synther_fast.common.rng import Stream, environment_seed, stream_seed
from synther_fast.replay import MixedSampler, ReplayBuffer, TransitionLayout
from synther_fast.replay.prefetch import StagedBlock
from synther_fast.replay.sampler import Batch

TIME_KEYS = ("env", "learner", "fit", "generate", "eval")
"""Where an online run's seconds go."""


@dataclass
class OnlineState:
    """Counters and histories of an online run (or a collection run)."""

    t: int = 0
    """environment steps taken"""
    episode: int = 0
    """episodes finished"""
    episode_returns: list[float] = field(default_factory=list)
    timeouts: list[int] = field(default_factory=list)
    """steps whose episode was cut by the time limit (or by the end of the run), not terminated"""
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    refits: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIME_KEYS, 0.0))

    def to_payload(self) -> dict[str, str]:
        """JSON strings for a checkpoint (the counters apart: a resume reads them first)."""
        return {"counters": json.dumps({"t": self.t, "episode": self.episode}),
                "history": json.dumps({"episode_returns": self.episode_returns, "timeouts": self.timeouts,
                                       "evaluations": self.evaluations, "refits": self.refits,
                                       "seconds": self.seconds})}

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> OnlineState:
        counters, history = json.loads(payload["counters"]), json.loads(payload["history"])
        return cls(t=int(counters["t"]), episode=int(counters["episode"]),
                   episode_returns=list(history["episode_returns"]), timeouts=list(history["timeouts"]),
                   evaluations=list(history["evaluations"]), refits=list(history["refits"]),
                   seconds=dict.fromkeys(TIME_KEYS, 0.0) | dict(history["seconds"]))


class Learner:
    """One learner block per call: ``utd`` batches sampled in place into a (pinned) host block,
    copied to the device once, and handed to ``agent.update_block``. Its time is device time
    (CUDA events): launches return at once, and the GPU's time would otherwise land wherever the
    host next waits. ``seed`` is the run's: its BATCHES stream draws the batches."""

    def __init__(self, agent: Any, real: ReplayBuffer, synthetic: ReplayBuffer | None, ratio: float,
                 batch_size: int, utd: int, layout: TransitionLayout, device: torch.device, seed: int,
                 seconds: float = 0.0) -> None:
        self.agent, self.layout, self.seed = agent, layout, stream_seed(seed, Stream.BATCHES)
        self.real, self.synthetic = real, synthetic
        self.sampler = MixedSampler(real, synthetic, ratio, batch_size, seed=self.seed)
        self.block = StagedBlock((utd, batch_size, Batch.row_width(layout)), device)
        self.views = [Batch(self.block.host[i], layout) for i in range(utd)]
        self.timer = DeviceTimer(device, seconds)
        self.last_metrics: dict[str, torch.Tensor] = {}

    def step(self) -> None:
        with self.timer:
            rows = self.block.fill(self._draw)
            self.last_metrics = self.agent.update_block(rows, self.layout)

    def _draw(self, host_rows: torch.Tensor) -> None:
        for view in self.views:
            self.sampler.sample(view)

    def swap_synthetic(self, synthetic: ReplayBuffer) -> None:
        """Sample from new synthetic rows from now on; the sampler's random stream continues."""
        state = self.sampler.state_dict()
        self.synthetic = synthetic
        self.sampler = MixedSampler(self.real, synthetic, self.sampler.ratio, self.sampler.batch_size, seed=self.seed)
        self.sampler.load_state_dict(state)

    @property
    def seconds(self) -> float:
        return self.timer.total()

    def reset_seconds(self, seconds: float) -> None:
        self.timer = DeviceTimer(self.block.device, seconds)


def restore_real_replay(real: ReplayBuffer, path: Path, env_steps: int) -> None:
    """Load the real replay of a checkpoint taken after ``env_steps`` steps. A kill between the
    replay's write and the checkpoint's leaves a replay with later rows: they are dropped."""
    real.restore(path)
    if real.total_added != env_steps:
        rows = real.to_numpy()[:env_steps]  # oldest first, and env_steps <= real_capacity
        if len(rows) != env_steps:
            raise RuntimeError(f"{path} holds {len(rows)} rows, the checkpoint needs {env_steps}: the run "
                               f"directory is damaged")
        real.clear()
        real.add(rows)


def episode_seed(seed: int) -> Callable[[int], int]:
    """Episode k of a run of ``seed`` starts from the environment seed of stream (EPISODES, k)
    (every online run and SAC collection; evaluations draw theirs from evaluation.episode_seeds)."""
    return lambda k: environment_seed(seed, Stream.EPISODES, k)


def transition_row(obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool,
                   layout: TransitionLayout) -> np.ndarray:
    parts = [obs, action, [reward], next_obs] + ([[float(terminated)]] if layout.has_terminal else [])
    return np.concatenate(parts).astype(np.float32)


class EnvLoop:
    """Steps ``env`` with ``agent``, storing every transition in ``real`` and counting in ``state``.

    Episode k starts from ``episode_seed(k)``, so a run resumed at an episode boundary replays
    exactly what an uninterrupted one does.
    """

    def __init__(self, env: Any, agent: Any, real: ReplayBuffer, state: OnlineState, *, steps: int,
                 start_steps: int, action_rng: np.random.Generator, episode_seed: Callable[[int], int]) -> None:
        self.env, self.agent, self.real, self.state = env, agent, real, state
        self.steps, self.start_steps, self.action_rng, self.episode_seed = steps, start_steps, action_rng, episode_seed
        self.act_dim = env.action_space.shape[0]
        self.obs, _ = env.reset(seed=episode_seed(state.episode))
        self.episode_return = 0.0

    @property
    def running(self) -> bool:
        return self.state.t < self.steps

    @property
    def learning(self) -> bool:
        """Whether the learner runs after this step: once the replay holds more than ``start_steps``
        rows (the REDQ code's delay_update_steps 'auto')."""
        return len(self.real) > self.start_steps

    def step(self) -> bool:
        """Act, step the environment and store the transition; True when the episode has ended
        (the caller then finishes its step and calls :meth:`next_episode`)."""
        start = time.perf_counter()
        if len(self.real) <= self.start_steps:
            action = self.action_rng.uniform(-1.0, 1.0, self.act_dim).astype(np.float32)
        else:
            action = self.agent.act(self.obs[None])[0]
        next_obs, reward, terminated, truncated, _ = self.env.step(action)
        self.real.add(transition_row(self.obs, action, float(reward), next_obs, terminated, self.real.layout))
        if (truncated or self.state.t == self.steps - 1) and not terminated:
            self.state.timeouts.append(self.state.t)
        self.episode_return += float(reward)
        self.state.t += 1
        self.obs = next_obs
        self.state.seconds["env"] += time.perf_counter() - start
        return bool(terminated or truncated)

    def next_episode(self) -> None:
        """Record the finished episode's return and reset the environment for the next one."""
        self.state.episode_returns.append(self.episode_return)
        self.state.episode += 1
        self.obs, _ = self.env.reset(seed=self.episode_seed(self.state.episode))
        self.episode_return = 0.0
