"""A single-file, CleanRL-style SAC with SynthER: the buffer line and a UTD loop are the only
SynthER-specific parts (marked ``# SynthER``). Everything else is a plain SAC for continuous actions.

    python examples/cleanrl_sac_synther.py --env-id Hopper-v5 --total-timesteps 20000 --utd 20

The replay stores environment-scale actions (as CleanRL's scripts do); SynthERBuffer clips
generated actions to the action Box per dimension. ``--synthetic-ratio 0`` gives the real-only
baseline at the same UTD.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro

from synther_fast.envs.factory import make_env
from synther_fast.integrations.cleanrl import SynthERBuffer  # SynthER


@dataclass
class Args:
    env_id: str = "Hopper-v5"
    """any task of the package's env factory (gymnasium ids, dmc:DOMAIN-TASK)"""
    seed: int = 0
    total_timesteps: int = 20_000
    learning_starts: int = 1000
    buffer_size: int = 1_000_000
    batch_size: int = 256
    hidden: int = 256
    gamma: float = 0.99
    tau: float = 0.005
    lr: float = 3e-4
    utd: int = 20
    """critic updates per environment step (the actor and alpha update once per step)"""
    synthetic_ratio: float = 0.5
    """share of each batch from SynthER's latest refill (0: real rows only)"""
    refit_every: int = 5000
    num_samples: int = 100_000
    synther_preset: str = "quick"
    eval_episodes: int = 5
    device: str = "cpu"


def mlp(inputs: int, outputs: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, outputs))


class Actor(nn.Module):
    """tanh-squashed Gaussian policy, rescaled to the action Box."""

    def __init__(self, obs_dim: int, space: gym.spaces.Box, hidden: int) -> None:
        super().__init__()
        self.net = mlp(obs_dim, 2 * space.shape[0], hidden)
        self.register_buffer("scale", torch.tensor((space.high - space.low) / 2, dtype=torch.float32))
        self.register_buffer("bias", torch.tensor((space.high + space.low) / 2, dtype=torch.float32))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mean, log_std = self.net(obs).chunk(2, -1)
        std = log_std.clamp(-5, 2).exp()
        u = mean + std * torch.randn_like(mean)
        squashed = torch.tanh(u)
        log_prob = (torch.distributions.Normal(mean, std).log_prob(u)
                    - torch.log(self.scale * (1 - squashed.pow(2)) + 1e-6)).sum(-1, keepdim=True)
        return squashed * self.scale + self.bias, log_prob, torch.tanh(mean) * self.scale + self.bias


def evaluate(actor: Actor, env_id: str, episodes: int, seed: int, device: torch.device) -> float:
    env, returns = make_env(env_id, seed=seed), []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            with torch.no_grad():
                action = actor(torch.as_tensor(obs, dtype=torch.float32, device=device)[None])[2][0].cpu().numpy()
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def main(args: Args) -> float:
    rng_seed = args.seed
    np.random.seed(rng_seed)
    torch.manual_seed(rng_seed)
    device = torch.device(args.device)
    envs = gym.vector.SyncVectorEnv([lambda: make_env(args.env_id, seed=args.seed)])
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    obs_dim, act_dim = obs_space.shape[0], act_space.shape[0]
    actor = Actor(obs_dim, act_space, args.hidden).to(device)
    q1, q2 = mlp(obs_dim + act_dim, 1, args.hidden).to(device), mlp(obs_dim + act_dim, 1, args.hidden).to(device)
    q1_target, q2_target = mlp(obs_dim + act_dim, 1, args.hidden).to(device), mlp(obs_dim + act_dim, 1, args.hidden).to(device)
    q1_target.load_state_dict(q1.state_dict())
    q2_target.load_state_dict(q2.state_dict())
    q_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=args.lr)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=args.lr)
    log_alpha = torch.zeros(1, requires_grad=True, device=device)
    alpha_opt = torch.optim.Adam([log_alpha], lr=args.lr)
    target_entropy = -float(act_dim)

    rb = SynthERBuffer(args.buffer_size, obs_space, act_space, device, handle_timeout_termination=False,  # SynthER
                       synthetic_ratio=args.synthetic_ratio, refit_every=args.refit_every,  # SynthER
                       num_samples=args.num_samples, config=args.synther_preset, task=args.env_id, seed=args.seed)

    obs, _ = envs.reset(seed=args.seed)
    resetting = False
    start = time.perf_counter()
    for step in range(args.total_timesteps):
        if step < args.learning_starts:
            actions = np.array([act_space.sample() for _ in range(envs.num_envs)])
        else:
            with torch.no_grad():
                actions = actor(torch.as_tensor(obs, dtype=torch.float32, device=device))[0].cpu().numpy()
        next_obs, rewards, terminations, truncations, infos = envs.step(actions)
        # gymnasium 1.x resets a finished episode on the next step (that step's transition is not
        # one: skip it); the step that ends an episode returns its true last observation.
        if not resetting:
            rb.add(obs, next_obs, actions, rewards, terminations, infos)
        resetting = bool(terminations[0] or truncations[0])
        obs = next_obs

        if step >= args.learning_starts and len(rb) > 0:
            for _ in range(args.utd):  # SynthER: UTD critic updates per environment step
                data = rb.sample(args.batch_size)
                with torch.no_grad():
                    next_action, next_log_prob, _ = actor(data.next_observations)
                    pair = torch.cat([data.next_observations, next_action], 1)
                    next_q = torch.min(q1_target(pair), q2_target(pair)) - log_alpha.exp() * next_log_prob
                    target = data.rewards + (1 - data.dones) * args.gamma * next_q
                pair = torch.cat([data.observations, data.actions], 1)
                q_loss = F.mse_loss(q1(pair), target) + F.mse_loss(q2(pair), target)
                q_opt.zero_grad()
                q_loss.backward()
                q_opt.step()
                with torch.no_grad():
                    for net, tgt in ((q1, q1_target), (q2, q2_target)):
                        for p, tp in zip(net.parameters(), tgt.parameters()):
                            tp.lerp_(p, args.tau)
            action, log_prob, _ = actor(data.observations)
            pair = torch.cat([data.observations, action], 1)
            actor_loss = (log_alpha.exp().detach() * log_prob - torch.min(q1(pair), q2(pair))).mean()
            actor_opt.zero_grad()
            actor_loss.backward()
            actor_opt.step()
            alpha_loss = -(log_alpha * (log_prob.detach() + target_entropy)).mean()
            alpha_opt.zero_grad()
            alpha_loss.backward()
            alpha_opt.step()

    score = evaluate(actor, args.env_id, args.eval_episodes, 10_000 + args.seed, device)
    print(f"{args.env_id}: return {score:.1f} after {args.total_timesteps} steps "
          f"({len(rb.history)} refits, {time.perf_counter() - start:.0f} s)")
    return score


if __name__ == "__main__":
    main(tyro.cli(Args))
