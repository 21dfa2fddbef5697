"""CQL (Kumar et al. 2020), as CORL defines it for D4RL locomotion: SAC with twin critics whose
loss adds a conservative term, cql_alpha x (logsumexp over sampled actions of Q - Q(s, a_data)).

Per update, in CORL's order: the policy samples a ~ pi(s) once; the temperature loss (target
entropy -|A|, log alpha from 0) and the policy loss (alpha log pi - min(Q1, Q2)(s, a)) use it;
the critic loss uses the critics before any step: the TD target from the target critics at
a' ~ pi(s') (no entropy backup), plus the conservative term over ``n_actions`` uniform actions,
n actions from pi(s) and n from pi(s'), importance-weighted (minus log 0.5^|A| for the uniform
ones, minus log pi for the policy's). Then the steps: temperature, policy, critics; then the
target critics' soft update. States are normalised (the pipeline's statistics), rewards are not
(scale 1, bias 0: CORL's 5 / -1 is its AntMaze transform). Networks: 3 x 256; the critics
orthogonally initialised (gain sqrt 2, last layer 1e-2), the policy's last layer xavier-uniform
(gain 1e-2), learnable log-std multiplier (1) and offset (-1), log std clipped to (-20, 2).
Lagrange, max-target backup and entropy backup are off, as in CORL's defaults.

Fast (default): the twin critics are one EnsembleMLP and the 3n sampled actions of every state
are evaluated in one batched call (B x 3n rows); each update is one CapturedStep. ``fast=False``
is the plain reference: two nn.Sequential critics, each sample set evaluated separately.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from synther_fast.agents.base import (
    EnsembleSoftActorCritic,
)
from synther_fast.agents.networks import EnsembleLinear, make_critic, make_optimizer, mlp, soft_update
from synther_fast.common.cuda_graphs import CapturedStep, DeviceRandom, will_capture
from synther_fast.common.rng import Stream, seeded, stream_seed
from synther_fast.config import CQLConfig, validate


class CQLActor(nn.Module):
    """CORL's CQL policy: one 3 x 256 network to (mean, log std), log std = multiplier x raw +
    offset (both learned), clipped to (-20, 2), then tanh."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.act_dim = act_dim
        self.net = mlp(obs_dim, 2 * act_dim, hidden)
        with torch.no_grad():
            nn.init.xavier_uniform_(self.net[-1].weight, gain=1e-2)
            nn.init.zeros_(self.net[-1].bias)
        self.log_std_multiplier = nn.Parameter(torch.tensor(1.0))
        self.log_std_offset = nn.Parameter(torch.tensor(-1.0))

    def forward(self, obs: torch.Tensor, deterministic: bool = False, generator=None):
        mean, raw = self.net(obs).split(self.act_dim, dim=-1)
        if deterministic:
            return torch.tanh(mean), None
        log_std = (self.log_std_multiplier * raw + self.log_std_offset).clamp(-20.0, 2.0)
        std = log_std.exp()
        pre = mean + std * torch.randn(mean.shape, generator=generator, device=mean.device)
        log_prob = (-0.5 * ((pre - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - (2 * (math.log(2) - pre - nn.functional.softplus(-2 * pre))).sum(-1)  # tanh
        return torch.tanh(pre), log_prob


@torch.no_grad()
def orthogonal_critic_init_(critic: nn.Module) -> nn.Module:
    """CORL's orthogonal init: hidden weights orthogonal with gain sqrt(2), the last layer's with
    gain 1e-2, zero biases (every member of an ensemble on its own)."""
    if hasattr(critic, "nets"):
        for net in critic.nets:
            orthogonal_critic_init_(net)
        return critic
    layers = [m for m in critic.modules() if isinstance(m, (nn.Linear, EnsembleLinear))]
    for depth, layer in enumerate(layers):
        gain = 1e-2 if depth == len(layers) - 1 else math.sqrt(2)
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=gain)
        else:
            for member in layer.weight:  # (in, out): the transpose of nn.Linear's (out, in)
                nn.init.orthogonal_(member.T, gain=gain)
        nn.init.zeros_(layer.bias)
    return critic


def conservative_term(q_sampled: torch.Tensor, q_data: torch.Tensor, log_density: torch.Tensor,
                      temperature: float = 1.0) -> torch.Tensor:
    """Per critic: mean over the batch of T logsumexp((Q(s, a_k) - log density_k) / T) - Q(s, a).
    ``q_sampled`` (C, B, K), ``log_density`` (B, K) or broadcastable, ``q_data`` (C, B)."""
    ood = torch.logsumexp((q_sampled - log_density) / temperature, dim=-1) * temperature
    return (ood - q_data).mean(dim=-1)


class CQL(EnsembleSoftActorCritic):
    kind = "cql"

    def __init__(self, obs_dim: int, act_dim: int, config: CQLConfig | None = None,
                 state_mean: np.ndarray | None = None, state_std: np.ndarray | None = None,
                 device: str | torch.device = "cpu", fast: bool = True, seed: int = 0) -> None:
        self.config = config = CQLConfig() if config is None else validate(config)
        self.device, self.fast = torch.device(device), fast
        self.obs_dim, self.act_dim = obs_dim, act_dim
        mean = np.zeros(obs_dim, np.float32) if state_mean is None else state_mean
        std = np.ones(obs_dim, np.float32) if state_std is None else state_std
        self.state_mean = torch.as_tensor(mean, dtype=torch.float32, device=self.device)
        self.state_std = torch.as_tensor(std, dtype=torch.float32, device=self.device)
        with seeded(stream_seed(seed, Stream.AGENT_INIT)):
            self.actor = CQLActor(obs_dim, act_dim, config.hidden).to(self.device)
            self.critic = orthogonal_critic_init_(make_critic(fast, obs_dim, act_dim, 2, config.hidden)).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=self.device, requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.captured = fast and will_capture(self.device, config.cuda_graph)
        self.actor_opt = make_optimizer(self.actor.parameters(), config.policy_lr, self.device, fast, self.captured)
        self.critic_opt = make_optimizer(self.critic.parameters(), config.qf_lr, self.device, fast, self.captured)
        self.alpha_opt = make_optimizer([self.log_alpha], config.policy_lr, self.device, fast, self.captured)
        self.rng = DeviceRandom(self.device, stream_seed(seed, Stream.AGENT_NOISE), self.captured)
        self.total_updates = 0
        self._layout: Any = None
        self._step: CapturedStep | None = None

    def prepare_obs(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.state_mean) / self.state_std  # the pipeline's state statistics

    def extra_state(self) -> dict[str, Any]:
        return {"state_mean": self.state_mean, "state_std": self.state_std}

    # -- the maths ----------------------------------------------------------------------------
    def _q_sampled(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_c(s_b, a_bk) for (B, K, A) actions -> (2, B, K)."""
        b, k, a = actions.shape
        obs_k = obs.unsqueeze(1).expand(b, k, obs.shape[-1]).reshape(b * k, -1)
        return self.critic(obs_k, actions.reshape(b * k, a)).reshape(-1, b, k)

    def _sampled_q(self, obs: torch.Tensor, sets: list[torch.Tensor]) -> torch.Tensor:
        """The critics at every sampled action set, concatenated on the sample axis: fast, all
        3n actions of a state in one call; the reference, one call per set."""
        if self.fast:
            return self._q_sampled(obs, torch.cat(sets, dim=1))
        return torch.cat([self._q_sampled(obs, s) for s in sets], dim=-1)

    def _update(self, obs, action, reward, next_obs, terminal) -> dict[str, torch.Tensor]:
        cfg, gen = self.config, self.rng.generator
        b, n, a_dim = obs.shape[0], cfg.n_actions, self.act_dim
        # the policy's sample and the two losses that use it, on the current parameters
        pi, logp = self.actor(obs, generator=gen)
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        alpha = self.log_alpha.detach().exp()
        actor_loss = (alpha * logp - self.critic(obs, pi).min(dim=0).values).mean()
        # the critics' loss, on the critics before any step
        with torch.no_grad():
            next_action, _ = self.actor(next_obs, generator=gen)
            target = reward + (1.0 - terminal) * cfg.discount * self.critic_target(next_obs, next_action).min(dim=0).values
            uniform = torch.rand((b, n, a_dim), generator=gen, device=obs.device) * 2 - 1
            obs_n = obs.unsqueeze(1).expand(b, n, obs.shape[-1])
            current, current_logp = self.actor(obs_n, generator=gen)
            next_n = next_obs.unsqueeze(1).expand(b, n, next_obs.shape[-1])
            following, following_logp = self.actor(next_n, generator=gen)
        q = self.critic(obs, action)
        td_loss = ((q - target) ** 2).mean(dim=1).sum()  # mse(Q1) + mse(Q2)
        q_sampled = self._sampled_q(obs, [uniform, following, current])  # CORL's order: random, next, current
        log_density = torch.cat([torch.full((b, n), a_dim * math.log(0.5), device=obs.device),
                                 following_logp, current_logp], dim=1)
        gap = conservative_term(q_sampled, q, log_density, cfg.temperature)  # (2,)
        critic_loss = td_loss + cfg.cql_alpha * gap.sum()
        # the steps: temperature, policy, critics; then the targets
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {"critic_loss": critic_loss.detach(), "td_loss": td_loss.detach(), "cql_gap": gap.detach().mean(),
                "actor_loss": actor_loss.detach(), "alpha_loss": alpha_loss.detach(), "alpha": alpha}
