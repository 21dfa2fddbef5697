"""TD3+BC (Fujimoto & Gu 2021) with CORL's defaults: alpha 2.5, policy noise 0.2, noise clip 0.5,
policy delay 2, tau 0.005, Adam 3e-4, 2x256 networks, states normalised with the real dataset's
mean and std (also for synthetic-only runs, as the published SynthER code).

The update is split into a critic step and an actor step, each a function of static tensors, so
that on CUDA the fast agent captures each update kind once as a graph (cuda_graphs.CapturedStep, which
copies each call's batch into its static input). ``fast=False`` builds the plain per-network
reference used in tests and benchmarks; it always runs eagerly.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from synther_fast.agents.base import bind_layout, check_state, tag_state, terminal_of
from synther_fast.agents.networks import make_critic, make_optimizer, mlp, soft_update
from synther_fast.common.cuda_graphs import CapturedStep, DeviceRandom, load_optimizer_state, will_capture
from synther_fast.common.rng import Stream, seeded, stream_seed
from synther_fast.config import TD3BCConfig
from synther_fast.replay.sampler import Batch


class TD3BC:
    kind = "td3_bc"

    def __init__(self, obs_dim: int, act_dim: int, config: TD3BCConfig, state_mean: np.ndarray,
                 state_std: np.ndarray, device: str | torch.device = "cpu", fast: bool = True,
                 seed: int = 0) -> None:
        self.config, self.device, self.fast = config, torch.device(device), fast
        with seeded(stream_seed(seed, Stream.AGENT_INIT)):  # CORL keeps PyTorch's default init
            self.actor = mlp(obs_dim, act_dim, config.hidden, nn.Tanh()).to(self.device)
            self.critic = make_critic(fast, obs_dim, act_dim, hidden=config.hidden).to(self.device)
        self.actor_target = copy.deepcopy(self.actor).requires_grad_(False)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.captured = fast and will_capture(self.device, config.cuda_graph)
        self.actor_opt = make_optimizer(self.actor.parameters(), config.actor_lr, self.device, fast, self.captured)
        self.critic_opt = make_optimizer(self.critic.parameters(), config.critic_lr, self.device, fast, self.captured)
        self.state_mean = torch.as_tensor(state_mean, dtype=torch.float32, device=self.device)
        self.state_std = torch.as_tensor(state_std, dtype=torch.float32, device=self.device)
        self.rng = DeviceRandom(self.device, stream_seed(seed, Stream.AGENT_NOISE), self.captured)  # target-policy noise
        self.total_updates = 0
        self._layout: Any = None
        self._steps: dict[bool, CapturedStep] = {}

    @property
    def generator(self) -> torch.Generator | None:
        """The eager noise generator (None when captured: the noise then comes from a CudaRngSlot)."""
        return self.rng.generator

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.state_mean) / self.state_std

    def _critic_step(self, obs, action, reward, next_obs, terminal) -> torch.Tensor:
        cfg = self.config
        with torch.no_grad():
            noise = torch.randn(action.shape, generator=self.rng.generator, device=action.device)
            noise = (noise * cfg.policy_noise).clamp(-cfg.noise_clip, cfg.noise_clip)
            next_action = (self.actor_target(next_obs) + noise).clamp(-1.0, 1.0)
            target_q = self.critic_target(next_obs, next_action).min(dim=0).values
            target = reward + (1.0 - terminal) * cfg.discount * target_q
        q = self.critic(obs, action)
        critic_loss = ((q - target) ** 2).mean(dim=1).sum()  # mse(Q1) + mse(Q2)
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        return critic_loss.detach()

    def _actor_step(self, obs, action) -> torch.Tensor:
        pi = self.actor(obs)
        q = self.critic.q1(obs, pi, frozen=True)  # the actor step needs dQ/da, not dQ/dweights
        lmbda = self.config.alpha / q.abs().mean().detach()
        actor_loss = -lmbda * q.mean() + ((pi - action) ** 2).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        soft_update(self.critic_target, self.critic, self.config.tau)
        soft_update(self.actor_target, self.actor, self.config.tau)
        return actor_loss.detach()

    def _step_fn(self, layout, with_actor: bool):
        def run(data: torch.Tensor) -> dict[str, torch.Tensor]:
            batch = Batch(data, layout)
            obs, next_obs = self.normalize(batch.obs), self.normalize(batch.next_obs)
            reward, terminal = batch.reward.squeeze(-1), terminal_of(batch)
            out = {"critic_loss": self._critic_step(obs, batch.action, reward, next_obs, terminal)}
            if with_actor:
                out["actor_loss"] = self._actor_step(obs, batch.action)
            return out

        return run

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """One TD3+BC update on a batch (obs, action, reward, next_obs, terminal); captured, its rows
        are copied into the step's static input."""
        self._layout = bind_layout(self._layout, batch.layout)
        self.total_updates += 1
        with_actor = self.total_updates % self.config.policy_freq == 0
        step = self._steps.get(with_actor)
        if step is None:  # the capture's warm-up is undone: this call is still exactly one update
            step = self._steps[with_actor] = CapturedStep(self._step_fn(batch.layout, with_actor), self.device,
                                                          state=self._learned_state(), capture=self.captured)
        with self.rng.scope():
            return step(torch.as_tensor(batch.data))

    def _learned_state(self) -> list:
        return [self.actor, self.actor_target, self.critic, self.critic_target, self.actor_opt, self.critic_opt]

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The deterministic policy's actions (TD3+BC acts deterministically either way)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return self.actor(self.normalize(x)).cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return tag_state(self.kind, {
            "actor": self.actor.state_dict(), "actor_target": self.actor_target.state_dict(),
            "critic": self.critic.state_dict(), "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "state_mean": self.state_mean, "state_std": self.state_std,
            "total_updates": self.total_updates, "generator": self.rng.state_dict(),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state (also one written on another device or in the other mode). Optimisers
        replace their state tensors, so captured graphs are dropped and recaptured."""
        check_state(self.kind, state)
        self._steps = {}
        for name in ("actor", "actor_target", "critic", "critic_target"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("actor_opt", "critic_opt"):
            load_optimizer_state(getattr(self, name), state[name])
        self.state_mean.copy_(state["state_mean"])
        self.state_std.copy_(state["state_std"])
        self.total_updates = int(state["total_updates"])
        self.rng.load_state_dict(state["generator"], reseed_with=self.total_updates)
