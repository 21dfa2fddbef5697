"""IQL (Kostrikov et al. 2022) with CORL's defaults: expectile 0.7, beta 3, tau 0.005, Adam 3e-4
for V, Q and the actor (cosine-decayed actor learning rate), a Gaussian actor with a tanh mean and
a state-independent log std, advantages exponentiated and clipped at 100, 2x256 networks. The
update is CORL's order: V(s') is read first, then _update_v, _update_q (with its target soft
update) and _update_policy."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from synther_fast.agents.base import bind_layout, check_state, tag_state, terminal_of
from synther_fast.agents.networks import LOG_STD_MAX, LOG_STD_MIN, make_critic, make_optimizer, mlp, soft_update
from synther_fast.common.cuda_graphs import CapturedStep, load_optimizer_state, will_capture
from synther_fast.common.rng import Stream, seeded, stream_seed
from synther_fast.config import IQLConfig
from synther_fast.replay.sampler import Batch

EXP_ADV_MAX = 100.0


class GaussianPolicy(nn.Module):
    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, act_dim, hidden, nn.Tanh())
        self.log_std = nn.Parameter(torch.zeros(act_dim))

    def log_prob(self, obs: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        mean = self.net(obs)
        std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        # validate_args=False: validation converts a device tensor to a bool (a host sync), which
        # is not allowed while a CUDA graph is being captured.
        return torch.distributions.Normal(mean, std, validate_args=False).log_prob(action).sum(-1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)  # the deterministic (mean) action used for evaluation


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """mean(|expectile - 1(diff < 0)| diff^2)."""
    weight = torch.where(diff < 0, 1.0 - expectile, expectile)
    return (weight * diff**2).mean()


class IQL:
    kind = "iql"

    def __init__(self, obs_dim: int, act_dim: int, config: IQLConfig, state_mean: np.ndarray,
                 state_std: np.ndarray, device: str | torch.device = "cpu", fast: bool = True,
                 seed: int = 0) -> None:
        self.config, self.device, self.fast = config, torch.device(device), fast
        with seeded(stream_seed(seed, Stream.AGENT_INIT)):  # CORL keeps PyTorch's default init
            self.q = make_critic(fast, obs_dim, act_dim, hidden=config.hidden).to(self.device)
            self.v = mlp(obs_dim, 1, config.hidden).to(self.device)
            self.actor = GaussianPolicy(obs_dim, act_dim, config.hidden).to(self.device)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.captured = fast and will_capture(self.device, config.cuda_graph)
        self.q_opt = make_optimizer(self.q.parameters(), config.lr, self.device, fast, self.captured)
        self.v_opt = make_optimizer(self.v.parameters(), config.lr, self.device, fast, self.captured)
        self.actor_opt = make_optimizer(self.actor.parameters(), config.lr, self.device, fast, self.captured)
        self.actor_lr_schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.actor_opt, config.max_steps if config.max_steps is not None else 1_000_000)
        self.state_mean = torch.as_tensor(state_mean, dtype=torch.float32, device=self.device)
        self.state_std = torch.as_tensor(state_std, dtype=torch.float32, device=self.device)
        self.total_updates = 0
        self._layout: Any = None
        self._step: CapturedStep | None = None

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.state_mean) / self.state_std

    def _update_v(self, obs, action) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            target_q = self.q_target(obs, action).min(dim=0).values
        adv = target_q - self.v(obs).squeeze(-1)
        v_loss = expectile_loss(adv, self.config.expectile)
        self.v_opt.zero_grad(set_to_none=True)
        v_loss.backward()
        self.v_opt.step()
        return v_loss.detach(), adv.detach()

    def _update_q(self, obs, action, reward, next_v, terminal) -> torch.Tensor:
        with torch.no_grad():
            target = reward + (1.0 - terminal) * self.config.discount * next_v
        qs = self.q(obs, action)
        q_loss = ((qs - target) ** 2).mean(dim=1).mean()  # sum of per-critic mse / number of critics
        self.q_opt.zero_grad(set_to_none=True)
        q_loss.backward()
        self.q_opt.step()
        soft_update(self.q_target, self.q, self.config.tau)
        return q_loss.detach()

    def _update_policy(self, obs, action, adv) -> torch.Tensor:
        exp_adv = torch.exp(self.config.beta * adv).clamp(max=EXP_ADV_MAX)
        policy_loss = (exp_adv * -self.actor.log_prob(obs, action)).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        policy_loss.backward()
        self.actor_opt.step()
        return policy_loss.detach()

    def _step_fn(self, layout):
        def run(data: torch.Tensor) -> dict[str, torch.Tensor]:
            batch = Batch(data, layout)
            obs, next_obs = self.normalize(batch.obs), self.normalize(batch.next_obs)
            reward, terminal = batch.reward.squeeze(-1), terminal_of(batch)
            with torch.no_grad():  # V(s') before V's own update, as CORL computes it
                next_v = self.v(next_obs).squeeze(-1)
            v_loss, adv = self._update_v(obs, batch.action)
            q_loss = self._update_q(obs, batch.action, reward, next_v, terminal)
            policy_loss = self._update_policy(obs, batch.action, adv)
            return {"value_loss": v_loss, "q_loss": q_loss, "actor_loss": policy_loss}

        return run

    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """Exactly one IQL update (a capture's warm-up is undone; captured, the batch's rows are
        copied into the step's static input)."""
        self._layout = bind_layout(self._layout, batch.layout)
        if self._step is None:
            state = [self.q, self.q_target, self.v, self.actor, self.q_opt, self.v_opt, self.actor_opt]
            self._step = CapturedStep(self._step_fn(batch.layout), self.device, state=state, capture=self.captured)
        out = self._step(torch.as_tensor(batch.data))
        # Outside the (captured) step: a schedule changes the lr, which a graph would have frozen
        # (on CUDA the fast optimiser's lr is a device tensor that the scheduler fills in place).
        self.total_updates += 1
        self.actor_lr_schedule.step()
        return out

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The policy's mean action (IQL is evaluated deterministically, as CORL)."""
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=self.device)
        return self.actor(self.normalize(x)).clamp(-1.0, 1.0).cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return tag_state(self.kind, {
            "q": self.q.state_dict(), "q_target": self.q_target.state_dict(), "v": self.v.state_dict(),
            "actor": self.actor.state_dict(), "q_opt": self.q_opt.state_dict(),
            "v_opt": self.v_opt.state_dict(), "actor_opt": self.actor_opt.state_dict(),
            "actor_lr_schedule": self.actor_lr_schedule.state_dict(),
            "state_mean": self.state_mean, "state_std": self.state_std,
            "total_updates": self.total_updates,
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state (also one written on another device or in the other mode). Optimisers
        replace their state tensors, so a captured graph is dropped and recaptured."""
        check_state(self.kind, state)
        self._step = None
        for name in ("q", "q_target", "v", "actor"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("q_opt", "v_opt", "actor_opt"):
            load_optimizer_state(getattr(self, name), state[name])
        self.actor_lr_schedule.load_state_dict(state["actor_lr_schedule"])
        self.state_mean.copy_(state["state_mean"])
        self.state_std.copy_(state["state_std"])
        self.total_updates = int(state["total_updates"])
