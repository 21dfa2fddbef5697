"""TD errors of the learner's current critics, an online relevance (high where the critics are
still wrong: prioritised replay's signal, Schaul et al. 2016)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


@torch.no_grad()
def td_errors(agent: Any, rows: np.ndarray, layout: Any, batch: int = 8192) -> np.ndarray:
    """|mean_k Q_k(s, a) - (r + gamma (1 - d) min_k Q'_k(s', pi(s')))| per row, with the SAC
    agent's critics, its target critics and its deterministic (mean) action at s'. The entropy
    bonus is left out: the score ranks rows, it is not a training target."""
    data = np.asarray(rows, dtype=np.float32)
    out = np.empty(len(data), np.float32)
    gamma = agent.config.discount
    for start in range(0, len(data), batch):
        chunk = torch.as_tensor(data[start:start + batch], device=agent.device)
        obs, act, next_obs = chunk[:, layout.obs], chunk[:, layout.action], chunk[:, layout.next_obs]
        reward = chunk[:, layout.reward][:, 0]
        done = chunk[:, layout.terminal][:, 0] if layout.terminal is not None else torch.zeros_like(reward)
        next_action, _ = agent.actor(next_obs, deterministic=True)
        target = reward + (1 - done) * gamma * agent.critic_target(next_obs, next_action).min(dim=0).values
        out[start:start + batch] = (agent.critic(obs, act).mean(dim=0) - target).abs().cpu().numpy()
    return out
