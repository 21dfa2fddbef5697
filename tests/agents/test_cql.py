"""CQL (issue 23): the conservative term against a hand-computed log-sum-exp, one update against
losses computed by hand with the same sampled actions, the fast (stacked, one batched call for all
sampled actions) agent equal to the plain reference, and a state round trip."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from agent_rows import agent_rows

from synther_fast import TransitionLayout
from synther_fast.agents.cql import CQL, conservative_term
from synther_fast.config import CQLConfig
from synther_fast.replay import Batch

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=True)
TINY = CQLConfig(hidden=(8, 8), n_actions=4, cql_alpha=3.0)
MEAN, STD = np.array([0.1, -0.2, 0.3], np.float32), np.array([1.5, 0.5, 2.0], np.float32)


def batch(seed: int = 0, n: int = 16) -> Batch:
    return Batch(agent_rows(n, seed, LAYOUT), LAYOUT)


def test_conservative_term_by_hand() -> None:
    q_sampled = torch.tensor([[[1.0, 2.0, 3.0]], [[0.0, 0.0, 0.0]]])  # 2 critics, 1 state, 3 actions
    log_density = torch.tensor([[0.0, math.log(2.0), 1.0]])
    q_data = torch.tensor([[0.5], [-1.0]])
    first = math.log(math.exp(1.0) + math.exp(2.0 - math.log(2.0)) + math.exp(3.0 - 1.0)) - 0.5
    second = math.log(1 + 0.5 + math.exp(-1.0)) + 1.0
    torch.testing.assert_close(conservative_term(q_sampled, q_data, log_density), torch.tensor([first, second]))
    hot = conservative_term(q_sampled, q_data, log_density, temperature=2.0)  # T logsumexp(x / T)
    expected = 2 * math.log(math.exp(1.0 / 2) + math.exp((2.0 - math.log(2.0)) / 2) + math.exp(2.0 / 2)) - 0.5
    assert float(hot[0]) == pytest.approx(expected, rel=1e-6)


def test_one_update_against_losses_by_hand() -> None:
    agent = CQL(3, 2, TINY, MEAN, STD, fast=True, seed=0)
    b = batch()
    before = copy.deepcopy(agent)
    gen = copy.deepcopy(agent.rng.generator)
    out = agent.update(b)
    norm = lambda x: (x - torch.from_numpy(MEAN)) / torch.from_numpy(STD)  # noqa: E731
    s, s2, act, r, d = norm(b.obs), norm(b.next_obs), b.action, b.reward[:, 0], b.terminal[:, 0]
    n, a_dim = 4, 2
    # the draws in the agent's order: pi(s), pi(s'), uniform, pi(s) x n, pi(s') x n
    pi, logp = before.actor(s, generator=gen)
    assert float(out["alpha_loss"]) == pytest.approx(float(-(0.0 * (logp.detach() + 2.0)).mean()), abs=1e-7)
    q_pi = torch.minimum(*[before.critic(s, pi)[k] for k in range(2)])
    assert float(out["actor_loss"]) == pytest.approx(float((logp - q_pi).mean()), rel=1e-5)  # alpha = e^0
    with torch.no_grad():
        a2, _ = before.actor(s2, generator=gen)
        target = r + (1 - d) * 0.99 * before.critic_target(s2, a2).min(dim=0).values
        uniform = torch.rand((16, n, a_dim), generator=gen) * 2 - 1
        cur, cur_logp = before.actor(s.unsqueeze(1).expand(16, n, 3), generator=gen)
        nxt, nxt_logp = before.actor(s2.unsqueeze(1).expand(16, n, 3), generator=gen)
        q = before.critic(s, act)
        td = ((q - target) ** 2).mean(dim=1).sum()
        gaps = []
        for k in range(2):  # critic by critic, state by state, action by action
            per_state = []
            for i in range(16):
                terms = [before.critic(s[i:i + 1], uniform[i, j:j + 1])[k, 0] - a_dim * math.log(0.5) for j in range(n)]
                terms += [before.critic(s[i:i + 1], nxt[i, j:j + 1])[k, 0] - nxt_logp[i, j] for j in range(n)]
                terms += [before.critic(s[i:i + 1], cur[i, j:j + 1])[k, 0] - cur_logp[i, j] for j in range(n)]
                per_state.append(torch.logsumexp(torch.stack(terms), 0) - q[k, i])
            gaps.append(torch.stack(per_state).mean())
    assert float(out["td_loss"]) == pytest.approx(float(td), rel=1e-5)
    assert float(out["critic_loss"]) == pytest.approx(float(td + 3.0 * (gaps[0] + gaps[1])), rel=1e-5)


def test_initialisation_follows_corl() -> None:
    agent = CQL(3, 2, CQLConfig(), fast=False, seed=0)
    hidden = agent.critic.nets[0][0].weight  # (256, 5): orthogonal rows scaled by sqrt 2
    torch.testing.assert_close(hidden.T @ hidden, 2 * torch.eye(5), atol=1e-4, rtol=0)
    assert float(agent.critic.nets[0][-1].weight.norm()) == pytest.approx(1e-2, rel=1e-4)  # one row, gain 1e-2
    assert float(agent.actor.log_std_offset) == -1.0 and float(agent.actor.log_std_multiplier) == 1.0
    fast = CQL(3, 2, CQLConfig(), fast=True, seed=0)
    member = fast.critic.net.layers[0].weight[1]  # (in 5, out 256) = nn.Linear's weight transposed
    torch.testing.assert_close(member @ member.T, 2 * torch.eye(5), atol=1e-4, rtol=0)
