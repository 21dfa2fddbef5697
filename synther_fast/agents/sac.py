"""SAC (Haarnoja et al. 2018) with the settings of the REDQ code that SynthER's online experiments
use: 2x256 networks, Adam 3e-4, gamma 0.99, polyak 0.995, automatically tuned temperature
(target entropy -|A|), batch 256, 5000 random start steps. ``utd`` critic updates per environment
step; the actor and temperature update once per step and use the mean over the critics.

Here it collects replay-like and medium-like offline datasets (UTD 1); the online SynthER pipeline
(UTD 20 on 50/50 batches) builds on the same update.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from synther_fast.agents.networks import LOG_STD_MAX, LOG_STD_MIN, TwinCritic, make_optimizer, mlp, soft_update


@dataclass(frozen=True)
class SACConfig:
    lr: float = 3e-4
    discount: float = 0.99
    polyak: float = 0.995
    hidden: tuple[int, ...] = (256, 256)
    batch_size: int = 256
    start_steps: int = 5000
    utd: int = 1


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
    def __init__(self, obs_dim: int, act_dim: int, config: SACConfig = SACConfig(),
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        self.config, self.device = config, torch.device(device)
        torch.manual_seed(seed)
        self.actor = TanhGaussianActor(obs_dim, act_dim, config.hidden).to(self.device)
        self.critic = TwinCritic(obs_dim, act_dim).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=self.device, requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.actor_opt = make_optimizer(self.actor.parameters(), config.lr, self.device, True)
        self.critic_opt = make_optimizer(self.critic.parameters(), config.lr, self.device, True)
        self.alpha_opt = make_optimizer([self.log_alpha], config.lr, self.device, True)
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def update_critic(self, batch: Any) -> torch.Tensor:
        cfg = self.config
        reward, terminal = batch.reward.squeeze(-1), batch.terminal.squeeze(-1)
        with torch.no_grad():
            next_action, next_logp = self.actor(batch.next_obs, generator=self.generator)
            target_q = self.critic_target(batch.next_obs, next_action).min(dim=0).values
            alpha = self.log_alpha.exp()
            target = reward + (1 - terminal) * cfg.discount * (target_q - alpha * next_logp)
        loss = ((self.critic(batch.obs, batch.action) - target) ** 2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, 1 - cfg.polyak)
        return loss.detach()

    def update_actor(self, batch: Any) -> torch.Tensor:
        action, logp = self.actor(batch.obs, generator=self.generator)
        q = self.critic(batch.obs, action).mean(dim=0)  # the REDQ code's mean over critics
        alpha = self.log_alpha.exp().detach()
        actor_loss = (alpha * logp - q).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return actor_loss.detach()

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = False) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        action, _ = self.actor(x, deterministic=deterministic, generator=self.generator)
        return action.cpu().numpy()

    def actor_state(self) -> dict[str, Any]:
        """What a policy checkpoint needs: the actor's weights and sizes."""
        first = self.actor.net[0]
        return {"kind": "sac_actor", "obs_dim": first.in_features,
                "act_dim": self.actor.net[-1].out_features // 2,
                "hidden": list(self.config.hidden), "actor": self.actor.state_dict()}
