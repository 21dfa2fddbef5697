"""SynthER for single-file CleanRL-style scripts: a drop-in replay buffer (no dependency).

It has the signature of the buffer CleanRL scripts use (SB3's, vendored)::

    rb = SynthERBuffer(args.buffer_size, envs.single_observation_space, envs.single_action_space, device,
                       handle_timeout_termination=False, refit_every=10_000, num_samples=1_000_000)
    rb.add(obs, real_next_obs, actions, rewards, terminations, infos)
    data = rb.sample(args.batch_size)   # .observations .actions .next_observations .dones .rewards

Real rows are stored and drawn exactly as that buffer does (same storage shape, same calls to
numpy's global RNG), so at ratio 0 the batches equal the original's under the same seed. Every
``refit_every`` adds (each add is one step of every environment) a fresh SynthER model is fitted
on the raw rows and ``num_samples`` rows are generated; from then on ``int(ratio * B)`` rows of
each batch come from them. CleanRL stores actions at the environment's scale, so generated
actions are clipped to the action Box's bounds per dimension.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from synther_fast.config import SynthERConfig
from synther_fast.integrations.core import Refits, SyntheticMix, box_dims, ring_rows, split_rows, synther_config
from synther_fast.replay import TransitionLayout


class Samples(NamedTuple):
    """A batch as CleanRL's SAC/TD3/DDPG read it: dones and rewards shaped (B, 1)."""

    observations: torch.Tensor
    actions: torch.Tensor
    next_observations: torch.Tensor
    dones: torch.Tensor
    rewards: torch.Tensor


class SynthERBuffer:
    """Drop-in for a CleanRL script's ``ReplayBuffer`` with refit-and-refill built in.

    ``synthetic_ratio`` (0.5) of each batch is synthetic once the first refit is done;
    ``refit_every`` adds between refits; ``num_samples`` rows per refill; ``config`` a SynthERConfig
    or a fit preset's name; ``task`` the environment's name where it has a termination rule;
    ``background`` fits in a thread on CPU; ``synther_device`` where the diffusion model runs.
    """

    def __init__(self, buffer_size: int, observation_space: Any, action_space: Any, device: Any = "cpu",
                 n_envs: int = 1, optimize_memory_usage: bool = False, handle_timeout_termination: bool = True, *,
                 synthetic_ratio: float = 0.5, refit_every: int = 10_000, num_samples: int = 1_000_000,
                 config: SynthERConfig | str = "quick", task: str | None = None, background: bool = False,
                 seed: int = 0, synther_device: str | None = None, progress: bool = False) -> None:
        obs_dim, act_dim = box_dims(observation_space, action_space, "SynthERBuffer")
        if optimize_memory_usage:
            raise ValueError("SynthERBuffer: optimize_memory_usage=True stores no next observations, which "
                             "SynthER models; leave it False")
        if int(refit_every) <= 0:
            raise ValueError(f"refit_every must be positive, got {refit_every!r}")
        self.buffer_size = max(int(buffer_size) // n_envs, 1)
        self.n_envs, self.device = n_envs, torch.device(device)
        self.handle_timeout_termination = handle_timeout_termination
        shape = (self.buffer_size, n_envs)
        self.observations = np.zeros((*shape, obs_dim), dtype=np.float32)
        self.next_observations = np.zeros((*shape, obs_dim), dtype=np.float32)
        self.actions = np.zeros((*shape, act_dim), dtype=np.float32)
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.dones = np.zeros(shape, dtype=np.float32)
        self.timeouts = np.zeros(shape, dtype=np.float32)
        self.pos, self.full, self.adds = 0, False, 0
        self.layout = TransitionLayout(obs_dim, act_dim, True)
        self.refit_every = int(refit_every)
        self.mix = SyntheticMix(synthetic_ratio, seed)
        # Env-scale actions: clip generated ones to the Box, per dimension.
        config = synther_config(config, task=task, action_bounds=(action_space.low, action_space.high))
        self.refits = Refits(self.layout, config, num_samples, seed=seed, device=synther_device,
                             background=background, progress=progress)
        self.history: list[dict[str, float]] = []

    def __len__(self) -> int:
        return (self.buffer_size if self.full else self.pos) * self.n_envs

    def add(self, obs: Any, next_obs: Any, action: Any, reward: Any, done: Any, infos: Any) -> None:
        """Store one step of every environment (arrays shaped (n_envs, ...)); refit when due."""
        self.observations[self.pos] = np.asarray(obs).reshape(self.n_envs, -1)
        self.next_observations[self.pos] = np.asarray(next_obs).reshape(self.n_envs, -1)
        self.actions[self.pos] = np.asarray(action).reshape(self.n_envs, -1)
        self.rewards[self.pos] = np.asarray(reward).reshape(self.n_envs)
        self.dones[self.pos] = np.asarray(done).reshape(self.n_envs)
        if self.handle_timeout_termination:
            self.timeouts[self.pos] = _truncations(infos, self.n_envs)
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0
        self.adds += 1
        self._install(self.refits.collect(wait=False))
        if self.adds % self.refit_every == 0 and not self.refits.pending:
            self._install(self.refits.run(self.adds // self.refit_every - 1, self.real_rows(), self.adds))

    def real_rows(self) -> np.ndarray:
        """Every stored transition as a raw row, ``terminal = done and not time-limit truncation``."""
        return ring_rows(self, "SynthERBuffer")

    def sample(self, batch_size: int) -> Samples:
        """``batch_size`` rows: ``int(ratio * B)`` synthetic once refilled, the rest real."""
        if len(self) == 0:
            raise ValueError("SynthERBuffer.sample: the buffer is empty")
        n_synthetic = self.mix.n_synthetic(batch_size)
        parts = []
        if n_synthetic < batch_size:
            parts.append(self._sample_real(batch_size - n_synthetic))
        if n_synthetic:
            rows = split_rows(self.mix.draw(n_synthetic), self.layout)
            parts.append((rows["obs"], rows["action"], rows["next_obs"], rows["terminal"][:, None], rows["reward"][:, None]))
        return Samples(*(torch.as_tensor(np.concatenate(field), device=self.device) for field in zip(*parts)))

    def _sample_real(self, n: int) -> tuple[np.ndarray, ...]:
        # The same draws, in the same order, as SB3's (and CleanRL's vendored) ReplayBuffer.sample.
        upper = self.buffer_size if self.full else self.pos
        index = np.random.randint(0, upper, size=n)
        env = np.random.randint(0, high=self.n_envs, size=(n,))
        dones = self.dones[index, env] * (1 - self.timeouts[index, env])
        return (self.observations[index, env], self.actions[index, env], self.next_observations[index, env],
                dones.reshape(-1, 1), self.rewards[index, env].reshape(-1, 1))

    def _install(self, done: tuple[dict[str, float], np.ndarray] | None) -> None:
        if done is not None:
            numbers, rows = done
            self.mix.install(rows, self.adds)
            self.history.append(numbers | {"adds": self.adds})

    # -- persistence --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to go on exactly (torch.save it beside the agent's checkpoint); a
        background refit still running is waited for first, so its rows are kept."""
        self._install(self.refits.collect(wait=True))
        arrays = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
        return {"arrays": {k: getattr(self, k).copy() for k in arrays}, "pos": self.pos, "full": self.full,
                "adds": self.adds, "mix": self.mix.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state["arrays"].items():
            if getattr(self, key).shape != value.shape:
                raise ValueError(f"SynthERBuffer.load_state_dict: {key} has shape {value.shape}, this buffer "
                                 f"{getattr(self, key).shape} (another buffer_size, n_envs or space)")
            setattr(self, key, np.array(value, dtype=np.float32))
        self.pos, self.full, self.adds = int(state["pos"]), bool(state["full"]), int(state["adds"])
        self.mix.load_state_dict(state["mix"])


def _truncations(infos: Any, n_envs: int) -> np.ndarray:
    """Time-limit truncation flags from SB3-style infos (a list of dicts with
    ``TimeLimit.truncated``) or gymnasium vector-env infos (a dict of arrays)."""
    if isinstance(infos, dict):
        return np.asarray(infos.get("TimeLimit.truncated", np.zeros(n_envs)), dtype=np.float32).reshape(n_envs)
    return np.asarray([info.get("TimeLimit.truncated", False) for info in infos], dtype=np.float32)
