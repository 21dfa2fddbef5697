"""The agent-environment loop, shared by the online pipeline and SAC data collection.

Three parts, none of which knows about run directories:

- :class:`OnlineState`: the loop's counters and histories, with one serialisation;
- :class:`Learner`: the learner block (``utd`` critic updates on batches from the C++
  MixedSampler, staged in one pinned block, timed on the device);
- :func:`interact`: act (uniformly random while the replay holds at most ``start_steps`` rows, as
  the REDQ code), store the real transition (a time-limit truncation is not a terminal), learn,
  then call the caller's hooks (the online pipeline refits, evaluates and checkpoints there).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from synther_fast.common.devices import DeviceTimer
from synther_fast.common.progress import progress_bar
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


def episode_seed(seed: int) -> Callable[[int], int]:
    """Episode k of a run of ``seed`` starts from the environment seed of stream (EPISODES, k)
    (every online run and SAC collection; evaluations draw theirs from evaluation.episode_seeds)."""
    return lambda k: environment_seed(seed, Stream.EPISODES, k)


def transition_row(obs: np.ndarray, action: np.ndarray, reward: float, next_obs: np.ndarray, terminated: bool,
                   layout: TransitionLayout) -> np.ndarray:
    parts = [obs, action, [reward], next_obs] + ([[float(terminated)]] if layout.has_terminal else [])
    return np.concatenate(parts).astype(np.float32)


def interact(env: Any, agent: Any, real: ReplayBuffer, state: OnlineState, *, steps: int, start_steps: int,
             action_rng: np.random.Generator, learn: Callable[[], None], episode_seed: Callable[[int], int],
             after_step: Callable[[], None] | None = None, after_episode: Callable[[], None] | None = None,
             progress: bool = False, label: str = "online") -> None:
    """Step ``env`` until ``state.t`` reaches ``steps``, storing every transition in ``real``.

    Each step: act (uniform random while ``len(real) <= start_steps``), store, then ``learn()``
    once the replay holds more than ``start_steps`` rows (the REDQ code's delay_update_steps
    'auto'), then ``after_step()``. At an episode's end ``after_episode()`` runs after the reset.
    Episode k starts from ``episode_seed(k)``, so a run resumed at an episode boundary replays
    exactly what an uninterrupted one does.
    """
    act_dim = env.action_space.shape[0]
    layout = real.layout
    bar = progress_bar(steps, label, enabled=progress, initial=state.t)
    obs, _ = env.reset(seed=episode_seed(state.episode))
    episode_return, shown = 0.0, len(state.evaluations)
    try:
        while state.t < steps:
            start = time.perf_counter()
            if len(real) <= start_steps:
                action = action_rng.uniform(-1.0, 1.0, act_dim).astype(np.float32)
            else:
                action = agent.act(obs[None])[0]
            next_obs, reward, terminated, truncated, _ = env.step(action)
            real.add(transition_row(obs, action, float(reward), next_obs, terminated, layout))
            if (truncated or state.t == steps - 1) and not terminated:
                state.timeouts.append(state.t)
            episode_return += float(reward)
            state.t += 1
            obs = next_obs
            state.seconds["env"] += time.perf_counter() - start
            if len(real) > start_steps:
                learn()
            if after_step is not None:
                after_step()
            if len(state.evaluations) != shown:  # a new evaluation: show its return
                shown = len(state.evaluations)
                bar.set_postfix(ret=f"{state.evaluations[-1]['return_mean']:.0f}")
            bar.update(1)
            if terminated or truncated:
                state.episode_returns.append(episode_return)
                state.episode += 1
                obs, _ = env.reset(seed=episode_seed(state.episode))
                episode_return = 0.0
                if after_episode is not None:
                    after_episode()
    finally:
        bar.close()
