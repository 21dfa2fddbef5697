"""EDAC (An et al. 2021), as CORL defines it: SAC over an ensemble of N critics, whose gradients
with respect to the action are pushed apart by a diversity term.

Per update, in CORL's order (the EDAC paper's): the temperature (target entropy -|A|, log alpha
from 0), then the actor against the minimum over critics, then the critics on the clipped double
Q target with the entropy bonus, plus eta times the diversity term

    D = mean over the batch of  sum_{i != j} cos(dQ_i/da, dQ_j/da) / (N - 1)

at the batch's own actions. Then a soft update of the target critics (tau). No state or reward
normalisation. Networks: 3 x 256; the actor's hidden biases 0.1, its mean and log-sigma heads
U(+-1e-3), log sigma clipped to (-5, 2); the critics' hidden biases 0.1, their last layer
U(+-3e-3).

Fast (default): the N critics are one EnsembleMLP (a batched matmul per layer), the diversity
term one batched double-backward and one (B, N, N) product, each update one CapturedStep (a CUDA
graph on CUDA, eager on the CPU). ``fast=False`` is the plain reference: N nn.Sequential
critics, per-critic gradients and cosines in Python loops, per-parameter Adam.
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
from synther_fast.config import EDACConfig, validate

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -5.0, 2.0


class EDACActor(nn.Module):
    """Tanh-Gaussian policy with separate mean and log-sigma heads (CORL's EDAC actor)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.trunk = mlp(obs_dim, hidden[-1], hidden[:-1], nn.ReLU())
        self.mu = nn.Linear(hidden[-1], act_dim)
        self.log_sigma = nn.Linear(hidden[-1], act_dim)
        with torch.no_grad():
            for layer in self.trunk:
                if isinstance(layer, nn.Linear):
                    nn.init.constant_(layer.bias, 0.1)
            for head in (self.mu, self.log_sigma):
                nn.init.uniform_(head.weight, -1e-3, 1e-3)
                nn.init.uniform_(head.bias, -1e-3, 1e-3)

    def forward(self, obs: torch.Tensor, deterministic: bool = False, generator=None):
        h = self.trunk(obs)
        mu = self.mu(h)
        if deterministic:
            return torch.tanh(mu), None
        log_sigma = self.log_sigma(h).clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        sigma = log_sigma.exp()
        pre = mu + sigma * torch.randn(mu.shape, generator=generator, device=mu.device)
        action = torch.tanh(pre)
        log_prob = (-0.5 * ((pre - mu) / sigma) ** 2 - log_sigma - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prob = log_prob - torch.log(1 - action.pow(2) + 1e-6).sum(-1)  # CORL's tanh correction
        return action, log_prob


@torch.no_grad()
def edac_critic_init_(critic: nn.Module) -> nn.Module:
    """Hidden biases 0.1; the last layer's weights and biases U(+-3e-3) (both critic shapes)."""
    layers = [m for m in critic.modules() if isinstance(m, (nn.Linear, EnsembleLinear))]
    if hasattr(critic, "nets"):  # SeparateCritics: the same rule per critic
        for net in critic.nets:
            edac_critic_init_(net)
        return critic
    for layer in layers[:-1]:
        nn.init.constant_(layer.bias, 0.1)
    nn.init.uniform_(layers[-1].weight, -3e-3, 3e-3)
    nn.init.uniform_(layers[-1].bias, -3e-3, 3e-3)
    return critic


def diversity_loss(q_fn, obs: torch.Tensor, action: torch.Tensor, num_critics: int) -> torch.Tensor:
    """EDAC's ensemble gradient-diversity term, vectorised: one double-backward through the
    ensemble and one (B, N, N) matrix of cosines. ``q_fn(obs, action)`` -> (N, B) from (N, B, ·)
    inputs, differentiable in the action."""
    obs_n = obs.unsqueeze(0).expand(num_critics, *obs.shape)
    act_n = action.detach().unsqueeze(0).expand(num_critics, *action.shape).clone().requires_grad_(True)
    q = q_fn(obs_n, act_n)
    grad = torch.autograd.grad(q.sum(), act_n, create_graph=True)[0]  # (N, B, A): member i's dQ_i/da
    grad = grad / (grad.norm(dim=2, keepdim=True) + 1e-10)
    grad = grad.transpose(0, 1)  # (B, N, A)
    cos = grad @ grad.transpose(1, 2)  # (B, N, N)
    off_diagonal = cos.sum(dim=(1, 2)) - cos.diagonal(dim1=1, dim2=2).sum(-1)
    return off_diagonal.mean() / (num_critics - 1)


def diversity_loss_reference(critics: list[nn.Module], obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """The same term the plain way: each critic's action-gradient on its own, then every pair's
    cosine, in Python loops."""
    grads = []
    for net in critics:
        a = action.detach().clone().requires_grad_(True)
        q = net(torch.cat([obs, a], dim=-1)).squeeze(-1)
        g = torch.autograd.grad(q.sum(), a, create_graph=True)[0]
        grads.append(g / (g.norm(dim=1, keepdim=True) + 1e-10))
    total = torch.zeros((), device=obs.device)
    for i, gi in enumerate(grads):
        for j, gj in enumerate(grads):
            if i != j:
                total = total + (gi * gj).sum(-1).mean()
    return total / (len(critics) - 1)


class EDAC(EnsembleSoftActorCritic):
    kind = "edac"

    def __init__(self, obs_dim: int, act_dim: int, config: EDACConfig | None = None,
                 state_mean: np.ndarray | None = None, state_std: np.ndarray | None = None,
                 device: str | torch.device = "cpu", fast: bool = True, seed: int = 0) -> None:
        """``state_mean``/``state_std`` are accepted for the offline pipeline's one agent
        signature and not used: CORL's EDAC normalises neither states nor rewards."""
        self.config = config = EDACConfig() if config is None else validate(config)
        self.device, self.fast = torch.device(device), fast
        self.obs_dim, self.act_dim = obs_dim, act_dim
        with seeded(stream_seed(seed, Stream.AGENT_INIT)):
            self.actor = EDACActor(obs_dim, act_dim, config.hidden).to(self.device)
            self.critic = edac_critic_init_(make_critic(fast, obs_dim, act_dim, config.num_critics,
                                                        config.hidden)).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=self.device, requires_grad=True)
        self.target_entropy = -float(act_dim)
        self.captured = fast and will_capture(self.device, config.cuda_graph)
        self.actor_opt = make_optimizer(self.actor.parameters(), config.actor_lr, self.device, fast, self.captured)
        self.critic_opt = make_optimizer(self.critic.parameters(), config.critic_lr, self.device, fast, self.captured)
        self.alpha_opt = make_optimizer([self.log_alpha], config.alpha_lr, self.device, fast, self.captured)
        self.rng = DeviceRandom(self.device, stream_seed(seed, Stream.AGENT_NOISE), self.captured)
        self.total_updates = 0
        self._layout: Any = None
        self._step: CapturedStep | None = None

    # -- the maths ----------------------------------------------------------------------------
    def _diversity(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        if self.fast:
            net = self.critic.net

            def q_fn(o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:  # (N, B, ·) inputs, member i sees row i
                h = torch.cat([o, a], dim=-1)
                for i, layer in enumerate(net.layers):
                    h = layer(h)
                    if i < len(net.layers) - 1:
                        h = torch.relu(h)
                return h.squeeze(-1)

            return diversity_loss(q_fn, obs, action, self.config.num_critics)
        return diversity_loss_reference(list(self.critic.nets), obs, action)

    def _update(self, obs, action, reward, next_obs, terminal) -> dict[str, torch.Tensor]:
        cfg = self.config
        # 1. temperature, on actions the current actor samples (no gradient into the actor)
        with torch.no_grad():
            _, logp_alpha = self.actor(obs, generator=self.rng.generator)
        alpha_loss = -(self.log_alpha * (logp_alpha + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        alpha = self.log_alpha.detach().exp()
        # 2. actor, against the minimum over critics (the critics' gradients are cleared below)
        pi, logp = self.actor(obs, generator=self.rng.generator)
        actor_loss = (alpha * logp - self.critic(obs, pi).min(dim=0).values).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        # 3. critics: clipped ensemble target with the entropy bonus, plus eta x diversity
        with torch.no_grad():
            next_action, next_logp = self.actor(next_obs, generator=self.rng.generator)
            q_next = self.critic_target(next_obs, next_action).min(dim=0).values - alpha * next_logp
            target = reward + cfg.discount * (1.0 - terminal) * q_next
        q = self.critic(obs, action)
        td_loss = ((q - target) ** 2).mean(dim=1).sum()
        diversity = self._diversity(obs, action)
        critic_loss = td_loss + cfg.eta * diversity
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, cfg.tau)
        return {"critic_loss": critic_loss.detach(), "td_loss": td_loss.detach(), "diversity": diversity.detach(),
                "actor_loss": actor_loss.detach(), "alpha_loss": alpha_loss.detach(), "alpha": alpha,
                "q_std": q.detach().std(dim=0).mean()}
