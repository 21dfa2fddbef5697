"""SAC / REDQ as the REDQ code: losses by hand, update order, UTD blocks, warm-up undone."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from agent_rows import agent_rows

from synther_fast.agents.sac import SAC, target_entropy_for
from synther_fast.common.cuda_graphs import CapturedStep
from synther_fast.config import SACConfig
from synther_fast.replay import TransitionLayout
from synther_fast.replay.sampler import Batch

LAYOUT = TransitionLayout(4, 2, True)
TINY = dict(hidden=(16, 16), batch_size=8)


def rows(n: int, seed: int) -> torch.Tensor:
    return agent_rows(n, seed, LAYOUT)


def test_one_update_matches_the_losses_computed_by_hand() -> None:
    agent = SAC(4, 2, SACConfig(**TINY, policy_update_delay=1), seed=1, env_name="Hopper-v5")
    batch = Batch(rows(8, 0), LAYOUT)
    before = copy.deepcopy(agent)
    g = torch.Generator().manual_seed(0)
    g.set_state(agent.rng.generator.get_state())

    def sample(actor, obs):
        mean, log_std = actor.net(obs).chunk(2, dim=-1)
        std = log_std.clamp(-20, 2).exp()
        pre = mean + std * torch.randn(mean.shape, generator=g)
        logp = (-0.5 * ((pre - mean) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2 * (math.log(2) - pre - torch.nn.functional.softplus(-2 * pre))).sum(-1)
        return pre.tanh(), logp

    def q(critic, obs, action):
        x = torch.cat([obs, action], -1)
        out = []
        for e in range(2):
            h = x
            for i, layer in enumerate(critic.net.layers):
                h = h @ layer.weight[e] + layer.bias[e, 0]
                h = h.relu() if i < 2 else h
            out.append(h.squeeze(-1))
        return torch.stack(out)

    with torch.no_grad():
        a2, logp2 = sample(before.actor, batch.next_obs)
        target = batch.reward.squeeze(-1) + (1 - batch.terminal.squeeze(-1)) * 0.99 * (
            q(before.critic_target, batch.next_obs, a2).min(0).values - 1.0 * logp2)
        critic_loss = sum(((q(before.critic, batch.obs, batch.action)[e] - target) ** 2).mean() for e in range(2))
        pi, logp = sample(before.actor, batch.obs)
        actor_loss = (1.0 * logp - q(before.critic, batch.obs, pi).mean(0)).mean()
    out = agent.update(batch)
    torch.testing.assert_close(out["critic_loss"], critic_loss, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["actor_loss"], actor_loss, rtol=1e-5, atol=1e-6)
    assert agent.critic_updates == 1 and agent.actor_updates == 1
    # polyak 0.995: the target moved 0.5% of the way to the updated critic
    for t, t0, c in zip(agent.critic_target.parameters(), before.critic_target.parameters(), agent.critic.parameters()):
        torch.testing.assert_close(t, 0.995 * t0 + 0.005 * c)
    assert agent.log_alpha.item() != 0.0  # the temperature moved once


def test_utd20_block_updates_the_actor_once_and_equals_twenty_single_updates() -> None:
    cfg = SACConfig(**TINY, utd=20, policy_update_delay=20)
    block, single = SAC(4, 2, cfg, seed=3), SAC(4, 2, cfg, seed=3)
    data = torch.stack([rows(8, k) for k in range(20)])
    block.update_block(data, LAYOUT)
    for k in range(20):
        single.update(Batch(data[k].clone(), LAYOUT))
    assert block.critic_updates == single.critic_updates == 20
    assert block.actor_updates == single.actor_updates == 1
    for a, b in zip(block.actor.parameters(), single.actor.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    for a, b in zip(block.critic.parameters(), single.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="shape"):
        block.update_block(data[:3], LAYOUT)


def test_redq_target_is_the_min_over_a_random_pair() -> None:
    agent = SAC(4, 2, SACConfig(**TINY, num_critics=10, num_min=2), seed=0)
    values = torch.arange(10.0).reshape(10, 1).expand(10, 5).clone()
    agent.critic_target = lambda obs, action: values  # type: ignore[assignment]
    seen = set()
    for _ in range(60):
        out = agent._target_q(torch.zeros(5, 4), torch.zeros(5, 2))
        assert torch.all(out == out[0]) and out[0] < 9  # min of two distinct members
        seen.add(int(out[0]))
    assert len(seen) > 4  # different pairs are drawn


def test_target_entropy_is_minus_the_action_dimension_as_the_published_entry_point() -> None:
    """SynthER's online_exp.py passes target_entropy='auto' (-|A|) on every task; the REDQ code's
    own 'mbpo' table is a named option."""
    assert SAC(11, 3, SACConfig(**TINY), env_name="Hopper-v5").target_entropy == -3.0
    assert SAC(17, 6, SACConfig(**TINY), env_name="HalfCheetah-v5").target_entropy == -6.0
    assert target_entropy_for("Humanoid-v5", 17) == -17.0 and target_entropy_for("dmc:cheetah-run", 6) == -6.0
    mbpo = SACConfig(**TINY, entropy_rule="mbpo")
    assert SAC(11, 3, mbpo, env_name="Hopper-v5").target_entropy == -1.0
    assert target_entropy_for("Walker2d-v5", 6, "mbpo") == -3.0 and target_entropy_for("dmc:cheetah-run", 6, "mbpo") == -6.0
    assert SAC(11, 3, SACConfig(**TINY, target_entropy=-0.5), env_name="Hopper-v5").target_entropy == -0.5
    with pytest.raises(ValueError, match="entropy_rule"):
        SACConfig(entropy_rule="redq")


@pytest.mark.parametrize("fast", [True, False])
@torch.no_grad()
def test_networks_start_from_the_redq_codes_initialisation(fast: bool) -> None:
    """xavier-uniform weights (gain 1), zero biases; the actor's mean and log-std heads each as a
    |A| x 256 layer (REDQ's two heads). Bounds sqrt(6 / (fan_in + fan_out)), filled to within 2%."""
    agent = SAC(17, 6, SACConfig(), seed=0, fast=fast)
    layers = ([(layer.weight[e].T, layer.bias[e]) for layer in agent.critic.net.layers for e in range(2)] if fast else
              [(m.weight, m.bias) for net in agent.critic.nets for m in net if isinstance(m, torch.nn.Linear)])
    head = agent.actor.net[-1]
    layers += [(m.weight, m.bias) for m in agent.actor.net if isinstance(m, torch.nn.Linear)][:-1]
    layers += [(head.weight[:6], head.bias[:6]), (head.weight[6:], head.bias[6:])]
    for weight, bias in layers:
        fan_out, fan_in = weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert 0.98 * bound < float(weight.abs().max()) <= bound, (tuple(weight.shape), bound)
        assert torch.all(bias == 0)
    # PyTorch's default (uniform +-1/sqrt(fan_in)) would give the 256 -> 1 output layer 1/16, not 0.153
    assert float(agent.critic_target.net.layers[-1].weight.abs().max() if fast else
                 agent.critic_target.nets[0][-1].weight.abs().max()) > 0.14


def test_initialisation_and_noise_draw_from_separate_streams() -> None:
    from synther_fast.common.rng import Stream, seeded, stream_seed

    agent = SAC(4, 2, SACConfig(**TINY), seed=3)
    with seeded(stream_seed(3, Stream.AGENT_INIT)):
        from synther_fast.agents.sac import TanhGaussianActor

        actor = TanhGaussianActor(4, 2, (16, 16))
    for a, b in zip(agent.actor.parameters(), actor.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    noise = torch.Generator().manual_seed(stream_seed(3, Stream.AGENT_NOISE))
    assert torch.equal(agent.rng.generator.get_state(), noise.get_state())
    # the old scheme seeded both with the run seed itself: the first draws of the two coincided
    assert not torch.equal(torch.Generator().manual_seed(stream_seed(3, Stream.AGENT_INIT)).get_state(), noise.get_state())


def test_state_dict_round_trip_continues_identically() -> None:
    cfg = SACConfig(**TINY, utd=2, policy_update_delay=2)
    a = SAC(4, 2, cfg, seed=5)
    a.update_block(torch.stack([rows(8, 1), rows(8, 2)]), LAYOUT)
    b = SAC(4, 2, cfg, seed=99)
    b.load_state_dict(copy.deepcopy(a.state_dict()))  # as from a file: no tensor shared with a
    data = torch.stack([rows(8, 3), rows(8, 4)])
    oa, ob = a.update_block(data, LAYOUT), b.update_block(data.clone(), LAYOUT)
    assert all(torch.equal(oa[k], ob[k]) for k in oa)
    np.testing.assert_array_equal(a.act(np.ones((1, 4))), b.act(np.ones((1, 4))))
    with pytest.raises(ValueError, match="kind 'sac', not 'td3_bc'"):
        from synther_fast.agents.base import check_state

        check_state("td3_bc", a.state_dict())


def test_capture_warm_up_is_undone() -> None:
    """The graph helper's warm-up leaves parameters, Adam state and RNG as they were (checked on
    CPU, where the same undo runs without capture): the step after it equals a first eager step."""
    cfg = SACConfig(**TINY)
    warmed, eager = SAC(4, 2, cfg, seed=2), SAC(4, 2, cfg, seed=2)
    batch = Batch(rows(8, 0), LAYOUT)

    def fn(agent):
        return lambda: agent._update(batch.obs, batch.action, batch.reward.squeeze(-1), batch.next_obs,
                                     batch.terminal.squeeze(-1), True)

    step = CapturedStep(fn(warmed), "cpu", state=warmed._learned_state(), capture=False, warmup=3)
    rng = warmed.rng.generator.get_state()
    step.warm_up_and_undo()
    warmed.rng.generator.set_state(rng)  # CPU generators are the caller's; CUDA's is restored by the helper
    out_w, out_e = fn(warmed)(), fn(eager)()
    for k in out_e:
        torch.testing.assert_close(out_w[k], out_e[k], rtol=0, atol=0)
    for a, b in zip(warmed.critic.parameters(), eager.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def eager_block(agent: SAC, data: torch.Tensor) -> None:
    """The block's 20 updates run directly (no graph), drawing from the agent's own RNG slot."""
    with agent.rng.scope():
        for k in range(data.shape[0]):
            v = Batch(data[k], LAYOUT)
            agent._update(v.obs, v.action, v.reward.squeeze(-1), v.next_obs, v.terminal.squeeze(-1),
                          k == data.shape[0] - 1)


@pytest.mark.gpu
def test_captured_block_equals_eager_and_survives_a_weight_reload() -> None:
    cfg = SACConfig(**TINY, utd=20, policy_update_delay=20)
    graphed, eager = SAC(4, 2, cfg, "cuda", seed=4), SAC(4, 2, cfg, "cuda", seed=4)
    assert graphed.captured and eager.rng.slot is not None
    data = torch.stack([rows(8, k) for k in range(20)]).cuda()
    out_g = graphed.update_block(data, LAYOUT)
    eager_block(eager, data)
    for a, b in zip(graphed.critic.parameters(), eager.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert graphed.critic_updates == 20 and torch.isfinite(out_g["critic_loss"])
    graph = graphed._block.graph
    graphed.update_block(data.clone(), LAYOUT)  # a new tensor: copied in, the same graph
    eager_block(eager, data)
    assert graphed._block.graph is graph and graphed._block.captures == 1
    eager_block(eager, data)  # a resume from a later checkpoint: recaptured, still exact
    eager.critic_updates += 40
    graphed.load_state_dict(copy.deepcopy(eager.state_dict()))
    graphed.update_block(data, LAYOUT)
    eager_block(eager, data)
    assert graphed._block.captures == 1 and graphed._block.graph is not graph
    for a, b in zip(graphed.critic.parameters(), eager.critic.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
def test_the_reference_agent_runs_eagerly_on_cuda() -> None:
    agent = SAC(4, 2, SACConfig(**TINY, utd=20, policy_update_delay=20), "cuda", seed=0, fast=False)
    assert not agent.captured
    out = agent.update_block(torch.stack([rows(8, k) for k in range(20)]).cuda(), LAYOUT)
    assert agent._block.graph is None and torch.isfinite(out["critic_loss"])


@pytest.mark.parametrize("num_critics, num_min", [(2, 2), (10, 2)])
def test_fast_block_equals_the_plain_reference(num_critics: int, num_min: int) -> None:
    cfg = SACConfig(**TINY, utd=5, policy_update_delay=5, num_critics=num_critics, num_min=num_min)
    fast, plain = SAC(4, 2, cfg, seed=6), SAC(4, 2, cfg, seed=6, fast=False)
    fast.critic.net.load_from_mlps(list(plain.critic.nets))
    fast.critic_target.net.load_from_mlps(list(plain.critic_target.nets))
    data = torch.stack([rows(8, 10 + k) for k in range(5)])
    out_f, out_p = fast.update_block(data, LAYOUT), plain.update_block(data.clone(), LAYOUT)
    for key in ("critic_loss", "actor_loss", "alpha"):
        torch.testing.assert_close(out_f[key], out_p[key], rtol=1e-4, atol=1e-5)
    for a, b in zip(fast.actor.parameters(), plain.actor.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    first = torch.stack([net[0].weight.T for net in plain.critic.nets])
    torch.testing.assert_close(fast.critic.net.layers[0].weight, first, rtol=1e-4, atol=1e-5)


def test_an_agent_refuses_rows_of_another_layout() -> None:
    agent = SAC(4, 2, SACConfig(**TINY), seed=0)
    agent.update(Batch(rows(8, 0), LAYOUT))
    other = TransitionLayout(4, 2, False)
    with pytest.raises(ValueError, match="updates on rows of"):
        agent.update(Batch(torch.zeros(8, Batch.row_width(other)), other))
