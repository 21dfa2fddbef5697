"""SynthER for Stable-Baselines3 off-policy agents (SAC, TD3, DDPG): a replay buffer and a callback.

Three changed lines give an SB3 script SynthER::

    from synther_fast.integrations.sb3 import SynthERCallback, SynthERReplayBuffer
    model = SAC("MlpPolicy", env, replay_buffer_class=SynthERReplayBuffer,
                replay_buffer_kwargs={"synthetic_ratio": 0.5}, train_freq=1, gradient_steps=20)
    model.learn(100_000, callback=SynthERCallback(refit_every=10_000, num_samples=1_000_000))

- :class:`SynthERReplayBuffer` is SB3's own ``ReplayBuffer`` (``load_replay_buffer`` checks the
  type; ``save_replay_buffer`` pickles it, synthetic rows included) whose ``sample`` takes
  ``int(ratio * B)`` rows from the latest refill and the rest from SB3's own sampling.
  Synthetic observations and rewards pass through the same VecNormalize as real ones
  (``sample(env=...)``); SB3 stores raw values, so the model is fitted on raw rows.
- :class:`SynthERCallback` refits a fresh model on the real rows every ``refit_every`` steps, at
  ``_on_rollout_end`` (after the step is stored, before ``train()``), and logs the refit's time,
  loss and KS through SB3's logger. Refits fall at multiples of ``refit_every`` of
  ``model.num_timesteps``, and the buffer counts its refills, so after ``model.load`` +
  ``load_replay_buffer`` (and ``learn(reset_num_timesteps=False)``) the next refit falls where an
  uninterrupted run's would.

SB3 stores actions scaled to [-1, 1], so generated actions are clipped there. Note that SB3's SAC
updates the actor (and alpha) on every gradient step; the published SynthER/REDQ SAC updates the
actor once per environment step, so SB3's SAC at ``gradient_steps=20`` is not the paper's agent.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from synther_fast.config import SynthERConfig
from synther_fast.integrations.core import (
    Refits,
    SyntheticMix,
    box_dims,
    due_refit,
    ring_rows,
    split_rows,
    synther_config,
)
from synther_fast.replay import TransitionLayout


class SynthERReplayBuffer(ReplayBuffer):
    """SB3's ReplayBuffer with SynthER's synthetic rows mixed into each batch.

    Extra keyword arguments (plain numbers, so ``model.save()`` pickles them):
    ``synthetic_ratio`` (0.5 as the paper: the share of each batch drawn from the latest refill
    once there is one) and ``seed`` (of the synthetic draws; real rows keep SB3's own sampling).
    """

    def __init__(self, buffer_size: int, observation_space: Any, action_space: Any, device: Any = "auto",
                 n_envs: int = 1, optimize_memory_usage: bool = False, handle_timeout_termination: bool = True,
                 synthetic_ratio: float = 0.5, seed: int = 0) -> None:
        obs_dim, act_dim = box_dims(observation_space, action_space, "SynthERReplayBuffer")
        if optimize_memory_usage:
            raise ValueError("SynthERReplayBuffer: optimize_memory_usage=True stores no next observations, "
                             "which SynthER models; leave it False")
        super().__init__(buffer_size, observation_space, action_space, device, n_envs=n_envs,
                         handle_timeout_termination=handle_timeout_termination)
        self.layout = TransitionLayout(obs_dim, act_dim, True)
        self.mix = SyntheticMix(synthetic_ratio, seed)

    def real_rows(self) -> np.ndarray:
        """Every stored transition as a raw row, ``terminal = done and not time-limit truncation``."""
        return ring_rows(self, "SB3 replay buffer")

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        n_synthetic = self.mix.n_synthetic(batch_size)
        if n_synthetic == 0:
            return super().sample(batch_size, env=env)
        rows = split_rows(self.mix.draw(n_synthetic), self.layout)
        obs_dtype, action_dtype = self.observations.dtype, self.actions.dtype
        synthetic = ReplayBufferSamples(*map(self.to_torch, (
            self._normalize_obs(rows["obs"].astype(obs_dtype), env),
            rows["action"].astype(action_dtype),
            self._normalize_obs(rows["next_obs"].astype(obs_dtype), env),
            rows["terminal"].reshape(-1, 1),
            self._normalize_reward(rows["reward"].reshape(-1, 1), env),
        )))
        if n_synthetic == batch_size:
            return synthetic
        real = super().sample(batch_size - n_synthetic, env=env)
        return ReplayBufferSamples(*(torch.cat([r, s.to(r.dtype)]) for r, s in zip(real[:5], synthetic[:5])))


class SynthERCallback(BaseCallback):
    """Refit-and-refill for a model whose buffer is a :class:`SynthERReplayBuffer`.

    ``refit_every``: environment steps between refits (the paper: 10k); ``num_samples``: rows per
    refill (the paper: 1M); ``config``: a SynthERConfig or a fit preset's name ('quick', 'tiny',
    'paper_online'); ``task``: the environment's name where it has a termination rule
    (Hopper-v5, Walker2d-v5); ``background``: fit in a thread on CPU while the agent goes on (the
    refill lands at a later rollout end; always synchronous on CUDA).
    """

    def __init__(self, refit_every: int = 10_000, num_samples: int = 1_000_000,
                 config: SynthERConfig | str = "quick", *, task: str | None = None, background: bool = False,
                 seed: int = 0, device: str | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        if int(refit_every) <= 0:
            raise ValueError(f"refit_every must be positive, got {refit_every!r}")
        self.refit_every, self.num_samples = int(refit_every), int(num_samples)
        # SB3 stores actions scaled to [-1, 1]: generated actions are clipped there.
        self.config = synther_config(config, task=task, action_bounds=(-1.0, 1.0))
        self.background, self.seed, self.synther_device = background, seed, device
        self.refits: Refits | None = None
        self.history: list[dict[str, float]] = []

    def _init_callback(self) -> None:
        buffer = getattr(self.model, "replay_buffer", None)
        if not isinstance(buffer, SynthERReplayBuffer):
            raise TypeError(f"SynthERCallback needs the model's replay buffer to be a SynthERReplayBuffer "
                            f"(replay_buffer_class=SynthERReplayBuffer), got {type(buffer).__name__}")
        self.refits = Refits(buffer.layout, self.config, self.num_samples, seed=self.seed,
                             device=self.synther_device, background=self.background, progress=self.verbose > 1)

    @property
    def buffer(self) -> SynthERReplayBuffer:
        return self.model.replay_buffer  # type: ignore[return-value]

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        assert self.refits is not None
        self._install(self.refits.collect(wait=False))
        started = self.buffer.mix.refills + int(self.refits.pending)
        k = due_refit(self.num_timesteps, self.refit_every, started)
        if k is None or self.refits.pending:
            return
        self._install(self.refits.run(k, self.buffer.real_rows(), self.num_timesteps))

    def _on_training_end(self) -> None:
        if self.refits is not None and self.refits.pending:
            self._install(self.refits.collect(wait=True))

    def _install(self, done: tuple[dict[str, float], np.ndarray] | None) -> None:
        if done is None:
            return
        numbers, rows = done
        self.buffer.mix.install(rows, self.num_timesteps)
        self.history.append(numbers | {"timestep": self.num_timesteps})
        for key in ("fit_seconds", "generate_seconds", "final_loss", "mean_ks", "max_ks", "rows"):
            self.logger.record(f"synther/{key}", numbers[key])
        self.logger.record("synther/refills", self.buffer.mix.refills)


def make_vec_env(name: str, n_envs: int = 1, seed: int = 0) -> Any:
    """An SB3 VecEnv of the package's env factory: any gymnasium MuJoCo task or a dm_control suite
    task as ``dmc:DOMAIN-TASK`` (actions in [-1, 1], flat float observations, 1000-step limit)."""
    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env

    from synther_fast.envs.factory import make_env

    return sb3_make_vec_env(lambda: make_env(name), n_envs=n_envs, seed=seed)
