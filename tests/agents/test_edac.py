"""EDAC (issue 23): the diversity term against hand-computed cosines, one update against losses
computed by hand, the fast (stacked) agent equal to the plain reference, and a state round trip."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from agent_rows import agent_rows

from synther_fast import TransitionLayout
from synther_fast.agents.edac import EDAC, diversity_loss, diversity_loss_reference
from synther_fast.config import EDACConfig
from synther_fast.replay import Batch

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=True)
TINY = EDACConfig(num_critics=3, hidden=(8, 8), eta=2.0)


def batch(seed: int = 0, n: int = 16) -> Batch:
    return Batch(agent_rows(n, seed, LAYOUT), LAYOUT)


def test_diversity_of_linear_critics_by_hand() -> None:
    """Q_i(s, a) = w_i . a: the action-gradients are the w_i, so the term is the sum of the
    pairwise cosines over N - 1, the same for every row."""
    w = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, -2.0]])  # cos: 1/sqrt2, 0, -1/sqrt2

    def q_fn(obs, action):  # (N, B, ·) -> (N, B); member i uses w_i
        return (action * w[:, None, :]).sum(-1) + obs.sum(-1)

    g = torch.Generator().manual_seed(3)
    obs, action = torch.randn(5, 3, generator=g), torch.rand(5, 2, generator=g)
    expected = 2 * (1 / math.sqrt(2) + 0.0 - 1 / math.sqrt(2)) / 2
    assert float(diversity_loss(q_fn, obs, action, 3)) == pytest.approx(expected, abs=1e-6)
    w2 = torch.tensor([[1.0, 0.0], [1.0, 1.0]])

    def q2(obs, action):
        return (action * w2[:, None, :]).sum(-1)

    assert float(diversity_loss(q2, obs, action, 2)) == pytest.approx(2 * (1 / math.sqrt(2)) / 1, abs=1e-6)


def test_vectorised_diversity_equals_the_plain_loops() -> None:
    agent = EDAC(3, 2, TINY, fast=True, seed=1)
    plain = EDAC(3, 2, TINY, fast=False, seed=1)
    agent.critic.net.load_from_mlps(list(plain.critic.nets))
    g = torch.Generator().manual_seed(7)  # fresh random inputs, the same whatever ran before
    obs, action = torch.randn(16, 3, generator=g), torch.tanh(torch.randn(16, 2, generator=g))
    fast_value = agent._diversity(obs, action).detach()
    reference = diversity_loss_reference(list(plain.critic.nets), obs, action).detach()
    assert float(fast_value) == pytest.approx(float(reference), rel=1e-5, abs=1e-6)
    assert -1.0 <= float(fast_value) * (3 - 1) / (3 * 2) <= 1.0  # a mean of cosines


def test_one_update_against_losses_by_hand() -> None:
    agent = EDAC(3, 2, TINY, fast=True, seed=0)
    b = batch()
    before = copy.deepcopy(agent)
    gen = copy.deepcopy(agent.rng.generator)
    out = agent.update(b)
    obs, act, r, s2, d = b.obs, b.action, b.reward[:, 0], b.next_obs, b.terminal[:, 0]
    with torch.no_grad():
        _, logp_a = before.actor(obs, generator=gen)  # the same draws, in the agent's order
        alpha_loss = -(torch.zeros(()) * (logp_a - 2.0)).mean()  # log alpha starts at 0
    assert float(out["alpha_loss"]) == pytest.approx(float(alpha_loss), abs=1e-6)
    alpha = agent.log_alpha.detach().exp()  # after its Adam step: 0 - lr * sign(grad)
    grad = -(logp_a - 2.0).mean()
    assert float(agent.log_alpha.detach()) == pytest.approx(-3e-4 * float(torch.sign(grad)), rel=1e-3)
    pi, logp = before.actor(obs, generator=gen)
    q_pi = before.critic(obs, pi).min(dim=0).values
    assert float(out["actor_loss"]) == pytest.approx(float((alpha * logp - q_pi).mean()), rel=1e-5)
    # the critic step draws next actions from the actor *after* its step (CORL's order), third draw
    updated_actor = copy.deepcopy(agent.actor)
    with torch.no_grad():
        a2, logp2 = updated_actor(s2, generator=gen)
        target = r + 0.99 * (1 - d) * (before.critic_target(s2, a2).min(dim=0).values - alpha * logp2)
    q = before.critic(obs, act)
    td = ((q - target) ** 2).mean(dim=1).sum()
    assert float(out["td_loss"]) == pytest.approx(float(td), rel=1e-5)
    div = before._diversity(obs, act).detach()
    assert float(out["critic_loss"]) == pytest.approx(float(td + 2.0 * div), rel=1e-5)
    assert float(out["diversity"]) == pytest.approx(float(div), rel=1e-5)
