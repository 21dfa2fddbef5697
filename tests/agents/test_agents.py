"""Offline agents: one update checked against losses computed by hand on tiny networks, and the
fast (stacked critics, foreach Adam) update equal to the plain per-network reference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from synther_fast import TransitionLayout
from synther_fast.agents.iql import IQL, IQLConfig
from synther_fast.agents.networks import EnsembleMLP, mlp
from synther_fast.agents.td3_bc import TD3BC, TD3BCConfig
from synther_fast.replay import Batch

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=True)
TINY = (8,)


def batch(seed: int = 0, n: int = 16) -> Batch:
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(n, LAYOUT.width)).astype(np.float32)
    data[:, LAYOUT.action] = np.tanh(data[:, LAYOUT.action])
    data[:, LAYOUT.terminal] = rng.random((n, 1)) < 0.3
    return Batch(torch.from_numpy(data), LAYOUT)


MEAN, STD = np.array([0.1, -0.2, 0.3], np.float32), np.array([1.5, 0.5, 2.0], np.float32)


def plain_q(critic, k, obs, act):
    """Q_k(s, a) evaluated by hand from the critic's weights (works for both critic kinds)."""
    x = torch.cat([obs, act], -1)
    if hasattr(critic, "nets"):
        return critic.nets[k](x).squeeze(-1)
    layers = critic.net.layers
    h = x
    for i, layer in enumerate(layers):
        h = h @ layer.weight[k] + layer.bias[k, 0]
        if i < len(layers) - 1:
            h = h.relu()
    return h.squeeze(-1)


@pytest.mark.slow
@pytest.mark.parametrize("fast", [True, False])
def test_td3_bc_losses_by_hand(fast: bool) -> None:
    cfg = TD3BCConfig(hidden=TINY, policy_freq=1)
    agent = TD3BC(3, 2, cfg, MEAN, STD, fast=fast, seed=0)
    b = batch()
    before = copy.deepcopy(agent)
    noise = torch.randn(b.action.shape, generator=copy.deepcopy(agent.generator))
    out = agent.update(b)
    s = (b.obs - torch.from_numpy(MEAN)) / torch.from_numpy(STD)
    s2 = (b.next_obs - torch.from_numpy(MEAN)) / torch.from_numpy(STD)
    r, d = b.reward[:, 0], b.terminal[:, 0]
    with torch.no_grad():
        a2 = (before.actor_target(s2) + (noise * 0.2).clamp(-0.5, 0.5)).clamp(-1, 1)
        tq = torch.minimum(plain_q(before.critic_target, 0, s2, a2), plain_q(before.critic_target, 1, s2, a2))
        y = r + (1 - d) * 0.99 * tq
        critic_loss = sum(((plain_q(before.critic, k, s, b.action) - y) ** 2).mean() for k in range(2))
    torch.testing.assert_close(out["critic_loss"], critic_loss)
    # The actor loss uses the critic after its update, as TD3 does: -alpha/mean|Q| Q.mean + mse.
    with torch.no_grad():
        pi = before.actor(s)
        q = plain_q(agent.critic, 0, s, pi)
        actor_loss = -(2.5 / q.abs().mean()) * q.mean() + ((pi - b.action) ** 2).mean()
    torch.testing.assert_close(out["actor_loss"], actor_loss)
    # Targets moved by tau towards the updated networks.
    for t, t0, p in zip(agent.actor_target.parameters(), before.actor_target.parameters(), agent.actor.parameters()):
        torch.testing.assert_close(t, 0.995 * t0 + 0.005 * p)


@pytest.mark.parametrize("fast", [True, False])
def test_iql_losses_by_hand(fast: bool) -> None:
    agent = IQL(3, 2, IQLConfig(hidden=TINY), MEAN, STD, fast=fast, seed=0)
    b = batch(1)
    before = copy.deepcopy(agent)
    out = agent.update(b)
    s = (b.obs - torch.from_numpy(MEAN)) / torch.from_numpy(STD)
    s2 = (b.next_obs - torch.from_numpy(MEAN)) / torch.from_numpy(STD)
    r, d = b.reward[:, 0], b.terminal[:, 0]
    with torch.no_grad():
        tq = torch.minimum(plain_q(before.q_target, 0, s, b.action), plain_q(before.q_target, 1, s, b.action))
        adv = tq - before.v(s).squeeze(-1)
        w = torch.where(adv < 0, 0.3, 0.7)
        v_loss = (w * adv**2).mean()
        y = r + (1 - d) * 0.99 * before.v(s2).squeeze(-1)  # V(s') read before V's update (CORL)
        q_loss = sum(((plain_q(before.q, k, s, b.action) - y) ** 2).mean() for k in range(2)) / 2
        mean = before.actor.net(s)
        std = before.actor.log_std.exp()
        logp = torch.distributions.Normal(mean, std).log_prob(b.action).sum(-1)
        policy_loss = (torch.exp(3.0 * adv).clamp(max=100) * -logp).mean()
    torch.testing.assert_close(out["value_loss"], v_loss)
    torch.testing.assert_close(out["q_loss"], q_loss)
    torch.testing.assert_close(out["actor_loss"], policy_loss)


def test_expectile_loss_is_asymmetric() -> None:
    from synther_fast.agents.iql import expectile_loss

    diff = torch.tensor([2.0, -2.0])
    assert float(expectile_loss(diff[:1], 0.7)) == pytest.approx(0.7 * 4)
    assert float(expectile_loss(diff[1:], 0.7)) == pytest.approx(0.3 * 4)


def test_ensemble_mlp_equals_separate_mlps() -> None:
    torch.manual_seed(0)
    nets = [mlp(5, 1, (16, 16)) for _ in range(3)]
    ensemble = EnsembleMLP(3, 5, 1, (16, 16))
    ensemble.load_from_mlps(nets)
    x = torch.randn(7, 5)
    torch.testing.assert_close(ensemble(x), torch.stack([n(x) for n in nets]))
    torch.testing.assert_close(ensemble.forward_member(x, 1), nets[1](x))


@pytest.mark.parametrize("algo", ["td3_bc", "iql"])
def test_fast_update_equals_reference_update(algo: str) -> None:
    """Same weights, same batches: the stacked/foreach update tracks the plain one."""
    def build(fast):
        if algo == "td3_bc":
            return TD3BC(3, 2, TD3BCConfig(hidden=TINY), MEAN, STD, fast=fast, seed=0)
        return IQL(3, 2, IQLConfig(hidden=TINY), MEAN, STD, fast=fast, seed=0)

    fast, ref = build(True), build(False)
    # copy the reference's critics into the fast agent's ensembles (other nets already equal)
    for name in ("critic", "critic_target") if algo == "td3_bc" else ("q", "q_target"):
        getattr(fast, name).net.load_from_mlps(list(getattr(ref, name).nets))
    b = batch(2)
    for _ in range(6):
        out_fast, out_ref = fast.update(b), ref.update(b)
        for key in out_ref:
            torch.testing.assert_close(out_fast[key], out_ref[key], rtol=1e-4, atol=1e-5)
    obs = np.random.default_rng(3).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_allclose(fast.act(obs), ref.act(obs), rtol=1e-4, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("algo", ["td3_bc", "iql"])
def test_cuda_graph_update_equals_eager(algo: str) -> None:
    """Captured updates replay the eager maths on a real GPU: the capture's warm-up is undone, so 8
    calls are 8 updates; the eager twin runs the same 8 update functions directly, drawing the
    target-policy noise from its own RNG slot as the graph does (the same rows, a new tensor each
    call: copied into the graph's static input)."""
    def build():
        if algo == "td3_bc":
            return TD3BC(3, 2, TD3BCConfig(hidden=TINY, policy_freq=2), MEAN, STD, "cuda", fast=True, seed=0)
        return IQL(3, 2, IQLConfig(hidden=TINY, max_steps=20), MEAN, STD, "cuda", fast=True, seed=0)

    graphed, eager = build(), build()
    assert graphed.captured
    for k in range(8):
        out = graphed.update(Batch(batch(4 + k).data.cuda(), LAYOUT))
    steps = list(graphed._steps.values()) if algo == "td3_bc" else [graphed._step]
    assert all(step.graph is not None and step.captures == 1 for step in steps)
    for k in range(8):
        data = batch(4 + k).data.cuda()
        if algo == "td3_bc":
            with eager.rng.scope():
                ref = eager._step_fn(LAYOUT, (k + 1) % 2 == 0)(data)
        else:
            ref = eager._step_fn(LAYOUT)(data)
            eager.actor_lr_schedule.step()
    for key in ref:
        torch.testing.assert_close(out[key], ref[key], rtol=1e-5, atol=1e-6)
    for a, b in zip(graphed.actor.parameters(), eager.actor.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algo", ["td3_bc", "iql"])
def test_hidden_sizes_reach_every_network_and_init_is_corls(algo: str) -> None:
    """``hidden`` sets the critics too (it used to leave them at 256x256); the networks keep
    PyTorch's default initialisation, as CORL's TD3+BC and IQL: uniform +-1/sqrt(fan_in)."""
    hidden = (24, 12)
    agent = (TD3BC(3, 2, TD3BCConfig(hidden=hidden), MEAN, STD) if algo == "td3_bc"
             else IQL(3, 2, IQLConfig(hidden=hidden), MEAN, STD))
    critic = agent.critic if algo == "td3_bc" else agent.q
    assert [tuple(layer.weight.shape[1:]) for layer in critic.net.layers] == [(5, 24), (24, 12), (12, 1)]
    for layer in critic.net.layers:
        bound = 1 / layer.weight.shape[1] ** 0.5
        assert float(layer.weight.detach().abs().max()) <= bound and float(layer.bias.detach().abs().max()) <= bound
    actor_linears = [m for m in agent.actor.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in actor_linears] == [24, 12, 2]
    if algo == "iql":
        assert [m.out_features for m in agent.v if isinstance(m, torch.nn.Linear)] == [24, 12, 1]
