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
the online loop calls: on CUDA the fast agent captures it once as one graph (cuda_graphs.CapturedStep,
which copies each call's rows into its static input). The plain reference (``fast=False``) always
runs eagerly: it is what the captured block is measured against.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import torch
from torch import nn

from synther_fast.agents.base import (
    bind_layout,
    check_state,
    load_parts,
    parts_state,
    tag_state,
    terminal_of,
)
from synther_fast.agents.networks import (
    LOG_STD_MAX,
    LOG_STD_MIN,
    SeparateCritics,
    TwinCritic,
    make_optimizer,
    mlp,
    soft_update,
    xavier_init_,
)
from synther_fast.common.cuda_graphs import CapturedStep, DeviceRandom, will_capture
from synther_fast.common.rng import Stream, seeded, stream_seed
from synther_fast.config import SACConfig, validate
from synther_fast.replay.sampler import Batch

NETWORKS, OPTIMISERS = ("actor", "critic", "critic_target"), ("actor_opt", "critic_opt", "alpha_opt")
MBPO_TARGET_ENTROPY = {"Hopper": -1.0, "HalfCheetah": -3.0, "Walker2d": -3.0, "Ant": -4.0, "Humanoid": -2.0}
"""The REDQ code's target_entropy='mbpo' values (its default); other tasks use -|A| there too."""


def target_entropy_for(env_name: str | None, act_dim: int, rule: str = "auto") -> float:
    """'auto': -|A| on every task (SynthER's online_exp.py passes target_entropy='auto');
    'mbpo': the REDQ code's default per-task table for gym tasks, -|A| elsewhere."""
    if rule not in ("auto", "mbpo"):
        raise ValueError(f"unknown target-entropy rule {rule!r}: 'auto' or 'mbpo'")
    if rule == "mbpo" and env_name and not env_name.startswith("dmc:"):
        key = env_name.split("-")[0]
        if key in MBPO_TARGET_ENTROPY:
            return MBPO_TARGET_ENTROPY[key]
    return -float(act_dim)


class TanhGaussianActor(nn.Module):
    """Mean and log std from one output layer of 2|A| units (the REDQ code has two heads of |A|:
    initialised as two heads, so the weights follow the same distribution)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim, hidden)
        xavier_init_(self.net)
        with torch.no_grad():
            head = self.net[-1].weight
            nn.init.xavier_uniform_(head[:act_dim])  # the mean head, |A| x hidden
            nn.init.xavier_uniform_(head[act_dim:])  # the log-std head

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
        self.config = config = SACConfig() if config is None else validate(config)
        self.device = torch.device(device)
        self.obs_dim, self.act_dim, self.fast = obs_dim, act_dim, fast
        with seeded(stream_seed(seed, Stream.AGENT_INIT)):  # REDQ's init: xavier-uniform, zero biases
            self.actor = TanhGaussianActor(obs_dim, act_dim, config.hidden).to(self.device)
            critic_cls = TwinCritic if fast else SeparateCritics
            self.critic = xavier_init_(critic_cls(obs_dim, act_dim, config.num_critics, config.hidden)).to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.zeros((), device=self.device, requires_grad=True)
        self.target_entropy = (config.target_entropy if config.target_entropy is not None
                               else target_entropy_for(env_name, act_dim, config.entropy_rule))
        # Captured on CUDA unless disabled (SACConfig.cuda_graph, SYNTHER_FAST_CUDA_GRAPHS=0); the
        # plain reference is never captured (its per-parameter Adam is not capturable either).
        self.captured = fast and will_capture(self.device, config.cuda_graph)
        self.actor_opt = make_optimizer(self.actor.parameters(), config.lr, self.device, fast, self.captured)
        self.critic_opt = make_optimizer(self.critic.parameters(), config.lr, self.device, fast, self.captured)
        self.alpha_opt = make_optimizer([self.log_alpha], config.lr, self.device, fast, self.captured)
        self.rng = DeviceRandom(self.device, stream_seed(seed, Stream.AGENT_NOISE), self.captured)
        # act() runs eagerly: captured, it draws from a generator of its own (no swapping of the
        # update stream's slot in and out around every environment step); eager, from the one stream.
        self.act_generator = (torch.Generator(device=self.device).manual_seed(stream_seed(seed, Stream.AGENT_ACT))
                              if self.captured else self.rng.generator)
        self.seed = seed
        self.critic_updates = 0
        self.actor_updates = 0
        self._layout: Any = None
        self._single: dict[bool, CapturedStep] = {}
        self._block: CapturedStep | None = None

    # -- the maths ----------------------------------------------------------------------------
    def _target_q(self, next_obs: torch.Tensor, next_action: torch.Tensor) -> torch.Tensor:
        q = self.critic_target(next_obs, next_action)  # (E, B)
        cfg = self.config
        if cfg.num_min < cfg.num_critics:  # REDQ: the min over a random subset, drawn on the device
            pick = torch.rand(cfg.num_critics, generator=self.rng.generator, device=q.device).argsort()[:cfg.num_min]
            q = q.index_select(0, pick)
        return q.min(dim=0).values

    def _update(self, obs, action, reward, next_obs, terminal, with_actor: bool) -> dict[str, torch.Tensor]:
        cfg = self.config
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            next_action, next_logp = self.actor(next_obs, generator=self.rng.generator)
            target = reward + (1 - terminal) * cfg.discount * (self._target_q(next_obs, next_action) - alpha * next_logp)
        q = self.critic(obs, action)
        critic_loss = ((q - target) ** 2).mean(dim=1).sum()  # the REDQ code's mse x num_Q
        out = {"critic_loss": critic_loss.detach(), "q_mean": q.detach().mean()}
        if with_actor:  # against the critics before this update's critic step (the REDQ order)
            pi, logp = self.actor(obs, generator=self.rng.generator)
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

    def _step(self, fn) -> CapturedStep:
        return CapturedStep(fn, self.device, state=self._learned_state(), capture=self.captured)

    # -- the protocol -------------------------------------------------------------------------
    def update(self, batch: Any) -> dict[str, torch.Tensor]:
        """Exactly one critic update on ``batch``; the actor's too every policy_update_delay."""
        with_actor = (self.critic_updates + 1) % self.config.policy_update_delay == 0
        self._layout = bind_layout(self._layout, batch.layout)
        step = self._single.get(with_actor)
        if step is None:
            layout = batch.layout

            def fn(data: torch.Tensor, with_actor: bool = with_actor) -> dict[str, torch.Tensor]:
                b = Batch(data, layout)
                return self._update(b.obs, b.action, b.reward.squeeze(-1), b.next_obs, terminal_of(b), with_actor)

            step = self._single[with_actor] = self._step(fn)
        with self.rng.scope():
            out = step(torch.as_tensor(batch.data))
        self.critic_updates += 1
        self.actor_updates += int(with_actor)
        return out

    def update_block(self, data: torch.Tensor, layout) -> dict[str, torch.Tensor]:
        """The learner work of one environment step: ``utd`` critic updates on the stacked
        (utd, B, width) rows ``data`` (Batch layout), the actor and temperature every
        policy_update_delay and at the last. Captured once on CUDA (each call's rows are copied
        into the graph's static input)."""
        utd = self.config.utd
        if data.ndim != 3 or data.shape[0] != utd:
            raise ValueError(f"update_block takes rows of shape ({utd}, B, width), got {tuple(data.shape)}")
        self._layout = bind_layout(self._layout, layout)
        if self._block is None:
            delay = self.config.policy_update_delay

            def fn(block: torch.Tensor) -> dict[str, torch.Tensor]:
                out: dict[str, torch.Tensor] = {}
                for i in range(utd):
                    b = Batch(block[i], layout)
                    with_actor = (i + 1) % delay == 0 or i == utd - 1
                    out.update(self._update(b.obs, b.action, b.reward.squeeze(-1), b.next_obs,
                                            terminal_of(b), with_actor))  # the last update's values
                return out

            self._block = self._step(fn)
        with self.rng.scope():
            out = self._block(data)
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
        action, _ = self.actor(x, deterministic=deterministic, generator=self.act_generator)
        return action.cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        return tag_state(self.kind, parts_state(self, NETWORKS + OPTIMISERS) | {
            "log_alpha": self.log_alpha.detach().clone(), "critic_updates": self.critic_updates,
            "actor_updates": self.actor_updates, "target_entropy": self.target_entropy,
            "generator": self.rng.state_dict(),
            "act_generator": self.act_generator.get_state() if self.captured else None,
        })

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a state (a resume), also one written on another device or in the other mode
        (optimisers keep their own mode). Optimisers replace their state tensors when loading, so
        any captured graph is dropped and the next update captures anew (its warm-up is undone)."""
        check_state(self.kind, state)
        self._single, self._block = {}, None
        load_parts(self, state, NETWORKS, OPTIMISERS)
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.critic_updates, self.actor_updates = int(state["critic_updates"]), int(state["actor_updates"])
        self.target_entropy = float(state["target_entropy"])
        self.rng.load_state_dict(state["generator"], reseed_with=self.critic_updates)
        if not self.captured:
            self.act_generator = self.rng.generator
        elif state.get("act_generator") is not None and state["act_generator"].numel() == self.act_generator.get_state().numel():
            self.act_generator.set_state(state["act_generator"].cpu())
        else:  # written eagerly (one stream for both): continue acting from a derived seed
            self.act_generator.manual_seed(stream_seed(self.seed, Stream.AGENT_ACT, self.critic_updates))

    def actor_state(self) -> dict[str, Any]:
        """What a policy checkpoint needs: the actor's weights and sizes."""
        return {"kind": "sac_actor", "obs_dim": self.obs_dim, "act_dim": self.act_dim,
                "hidden": list(self.config.hidden), "actor": self.actor.state_dict()}
