"""SAC (Haarnoja et al. 2018) as the REDQ code runs it (Chen et al. 2021), which SynthER's online
experiments use; REDQ is the same agent with 10 critics and a random pair in the target.

Settings (SACConfig): 2x256 networks, Adam 3e-4, gamma 0.99, polyak 0.995, temperature tuned
automatically from alpha = 1 towards the REDQ code's target entropy, batch 256. ``utd`` critic
updates per environment step; the actor and temperature update every ``policy_update_delay``
critic updates and at the last of each step, with the mean over all critics (as that code).

One critic update, in the REDQ code's order: the target uses the current temperature and the min
over ``num_min`` critics drawn at random; then, when the actor updates, its loss is taken against
the critics *before* this update's critic step, and the temperature loss uses that log-prob; then
the critic step; then every target network moves by polyak averaging.

``update(batch)`` is one critic update (plus the actor's, when due); ``update_block(batches)``
runs the ``utd`` updates of one environment step on a stacked (utd, B, width) batch and is what
the online loop calls: on CUDA it is captured once as one graph (graphs.CapturedStep).
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from synther_fast.agents.base import check_state, tag_state, terminal_of
from synther_fast.agents.networks import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    SeparateCritics,
    TwinCritic,
    make_optimizer,
    mlp,
    soft_update,
)
from synther_fast.config import SACConfig
from synther_fast.graphs import CapturedStep, CudaRngSlot
from synther_fast.replay.sampler import Batch
from synther_fast.rng import seeded

MBPO_TARGET_ENTROPY = {"Hopper": -1.0, "HalfCheetah": -3.0, "Walker2d": -3.0, "Ant": -4.0, "Humanoid": -2.0}
"""The REDQ code's target_entropy='mbpo' values; other tasks use -|A|."""


def target_entropy_for(env_name: str | None, act_dim: int) -> float:
    """The REDQ code's 'mbpo' target entropy for gym tasks, -|A| elsewhere."""
    if env_name and not env_name.startswith("dmc:"):
        key = env_name.split("-")[0]
        if key in MBPO_TARGET_ENTROPY:
            return MBPO_TARGET_ENTROPY[key]
    return -float(act_dim)


class TanhGaussianActor(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden)

    def forward(self, obs: torch.Tensor, deterministic: bool = False, generator=None):
        mean, log_std = self.net(obs).chunk(2, dim=-1)
        if deterministic:
            return torch.tanh(mean), None
        std = log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        pre = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)
        action = torch.tanh(pre)
        log_prob = (-0.5 * ((pre - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - pre - nn.functional.softplus(-2 * pre))).sum(-1)
        return action, log_prob


class SAC:
    kind = "sac"

    def __init__(self, obs_dim: int, act_dim: int, config: SACConfig | None = None,
                 device: str | torch.device = "cpu", seed: int = 0, env_name: str | None = None,
                 fast: bool = True) -> None:
        """``fast=False`` builds the plain reference (the REDQ code's shape): one nn.Sequential per
        critic, per-network Adam, and an actor loss that back-propagates into the critics too."""
        self.config = config = SACConfig() if config is None else config
        self.device = torch.device(device)
        self.obs_dim, self.act_dim, self.fast = obs_dim, act_dim, fast
        with seeded(seed):
            self.actor = TanhGaussianActor(obs_dim, act_dim, config.hidden).to(self.device)
            critic_cls = TwinCritic if fast else SeparateCritics
            self.critic = critic_cls(obs_dim, act_dim, config.num_critics, config.hidden).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=self.device, requires_grad=True)
        self.target_entropy = (config.target_entropy if config.target_entropy is not None
                               else target_entropy_for(env_name, act_dim))
        self.actor_opt = make_optimizer(self.actor.parameters(), config.lr, self.device, fast)
        self.critic_opt = make_optimizer(self.critic.parameters(), config.lr, self.device, fast)
        self.alpha_opt = make_optimizer([self.log_alpha], config.lr, self.device, fast)
        # CPU: an explicit generator. CUDA: graphs draw from the default generator, with this
        # agent's own state swapped in around each call (no global reseeding).
        if self.device.type == "cuda":
            self.generator, self.rng_slot = None, CudaRngSlot(self.device, seed)
        else:
            self.generator, self.rng_slot = torch.Generator().manual_seed(seed), None
        self.critic_updates = 0
        self.actor_updates = 0
        self._single: dict[bool, CapturedStep] = {}
        self._single_bound: Any = None
        self._block: CapturedStep | None = None
        self._block_bound: Any = None

    # -- the maths ----------------------------------------------------------------------------
    def _target_q(self, next_obs: torch.Tensor, next_action: torch.Tensor) -> torch.Tensor:
        q = self.critic_target(next_obs, next_action)  # (E, B)
        cfg = self.config
        if cfg.num_min < cfg.num_critics:  # REDQ: the min over a random subset, drawn on the device
            pick = torch.rand(cfg.num_critics, generator=self.generator, device=q.device).argsort()[:cfg.num_min]
            q = q.index_select(0, pick)
        return q.min(dim=0).values

    def _update(self, obs, action, reward, next_obs, terminal, with_actor: bool) -> dict[str, torch.Tensor]:
        cfg = self.config
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_action, next_logp = self.actor(next_obs, generator=self.generator)
            target = reward + (1 - terminal) * cfg.discount * (self._target_q(next_obs, next_action) - alpha * next_logp)
        q = self.critic(obs, action)
        critic_loss = ((q - target) ** 2).mean(dim=1).sum()  # the REDQ code's mse x num_Q
        out = {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean()}
        if with_actor:  # against the critics before this update's critic step (the REDQ order)
            pi, logp = self.actor(obs, generator=self.generator)
            q_pi = self._frozen_critic_mean(obs, pi) if self.fast else self.critic(obs, pi).mean(dim=0)
            actor_loss = (alpha * logp - q_pi).mean()
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()
            self.actor_opt.step()
            out |= {"actor_loss": actor_loss.detach(), "alpha_loss": alpha_loss.detach(),
                    "entropy": -logp.detach().mean()}
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, 1 - cfg.polyak)
        out["alpha"] = self.log_alpha.detach().exp()
        return out

    def _frozen_critic_mean(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Mean over critics of Q(s, a) with the critics' weights detached: the actor's gradient
        flows through the action only (the critic step below needs no gradient from it)."""
        x = torch.cat([obs, action], dim=-1)
        h = x.unsqueeze(0).expand(self.config.num_critics, *x.shape)
        layers = self.critic.net.layers
        for i, layer in enumerate(layers):
            h = torch.baddbmm(layer.bias.detach(), h, layer.weight.detach())
            if i < len(layers) - 1:
                h = torch.relu(h)
        return h.squeeze(-1).mean(dim=0)

    def _learned_state(self) -> list:
        return [self.actor, self.critic, self.critic_target, self.log_alpha,
                self.actor_opt, self.critic_opt, self.alpha_opt]

    def _run(self, step: CapturedStep) -> Any:
        if self.rng_slot is None:
            return step()
        with self.rng_slot:
            return step()

    # -- the protocol -------------------------------------------------------------------------
    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """Exactly one critic update on ``batch``; the actor's too every policy_update_delay."""
        with_actor = (self.critic_updates + 1) % self.config.policy_update_delay == 0
        if batch is not self._single_bound:
            self._single, self._single_bound = {}, batch
        step = self._single.get(with_actor)
        if step is None:
            def fn(batch=batch, with_actor=with_actor):
                return self._update(batch.obs, batch.action, batch.reward.squeeze(-1), batch.next_obs,
                                    terminal_of(batch), with_actor)
            step = self._single[with_actor] = CapturedStep(fn, self.device, state=self._learned_state())
        out = self._run(step)
        self.critic_updates += 1
        self.actor_updates += int(with_actor)
        return out

    def update_block(self, data: torch.Tensor, layout) -> dict[str, torch.Tensor]:
        """The learner work of one environment step: ``utd`` critic updates on the stacked
        (utd, B, width) rows ``data`` (Batch layout), the actor and temperature every
        policy_update_delay and at the last. Captured once per ``data`` tensor on CUDA."""
        utd = self.config.utd
        if data.ndim != 3 or data.shape[0] != utd:
            raise ValueError(f"update_block takes rows of shape ({utd}, B, width), got {tuple(data.shape)}")
        if data is not self._block_bound:
            delay = self.config.policy_update_delay
            views = [Batch(data[i], layout) for i in range(utd)]

            def fn() -> dict[str, torch.Tensor]:
                out: dict[str, torch.Tensor] = {}
                for i, b in enumerate(views):
                    with_actor = (i + 1) % delay == 0 or i == utd - 1
                    out.update(self._update(b.obs, b.action, b.reward.squeeze(-1), b.next_obs,
                                            terminal_of(b), with_actor))  # the last update's values
                return out

            self._block = CapturedStep(fn, self.device, state=self._learned_state())
            self._block_bound = data
        out = self._run(self._block)
        self.critic_updates += utd
        self.actor_updates += self.actor_updates_per_block
        return out

    @property
    def actor_updates_per_block(self) -> int:
        utd, delay = self.config.utd, self.config.policy_update_delay
        return sum(1 for i in range(utd) if (i + 1) % delay == 0 or i == utd - 1)

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        if self.rng_slot is None:
            action, _ = self.actor(x, deterministic=deterministic, generator=self.generator)
        else:
            with self.rng_slot:
                action, _ = self.actor(x, deterministic=deterministic)
        return action.cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return tag_state(self.kind, {
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "critic_target": self.critic_target.state_dict(), "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(), "critic_updates": self.critic_updates,
            "actor_updates": self.actor_updates, "target_entropy": self.target_entropy,
            "generator": self.generator.get_state() if self.generator is not None else self.rng_slot.state.clone(),
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state (a resume). Optimisers replace their state tensors when loading, so any
        captured graph is dropped and the next update captures anew (its warm-up is undone)."""
        check_state(self.kind, state)
        self._single, self._single_bound, self._block, self._block_bound = {}, None, None, None
        for name in ("actor", "critic", "critic_target", "actor_opt", "critic_opt", "alpha_opt"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.critic_updates, self.actor_updates = int(state["critic_updates"]), int(state["actor_updates"])
        self.target_entropy = float(state["target_entropy"])
        if self.generator is not None:
            self.generator.set_state(state["generator"].cpu())
        else:
            self.rng_slot.state = state["generator"].cpu()

    def actor_state(self) -> dict[str, Any]:
        """What a policy checkpoint needs: the actor's weights and sizes."""
        return {"kind": "sac_actor", "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "hidden": list(self.config.hidden), "actor": self.actor.state_dict()}
