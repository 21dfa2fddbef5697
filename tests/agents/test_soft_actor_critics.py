"""What EDAC and CQL share (agents.base.EnsembleSoftActorCritic), tested on both: the fast agent
(stacked critics, batched evaluation, one CapturedStep) equal to the plain reference over several
updates, and a state round trip that continues exactly (issue 23)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from agent_rows import agent_rows

from synther_fast import TransitionLayout
from synther_fast.agents.cql import CQL
from synther_fast.agents.edac import EDAC
from synther_fast.common.devices import torch_threads
from synther_fast.config import CQLConfig, EDACConfig
from synther_fast.replay import Batch

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=True)
MEAN, STD = np.array([0.1, -0.2, 0.3], np.float32), np.array([1.5, 0.5, 2.0], np.float32)
AGENTS = {
    "edac": (EDAC, EDACConfig(num_critics=3, hidden=(8, 8), eta=2.0), ("diversity",)),
    "cql": (CQL, CQLConfig(hidden=(8, 8), n_actions=4, cql_alpha=3.0), ("cql_gap",)),
}


def batch(seed: int) -> Batch:
    return Batch(agent_rows(16, seed, LAYOUT), LAYOUT)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_fast_equals_the_plain_reference_over_updates(name: str) -> None:
    cls, config, own = AGENTS[name]
    fast, plain = (cls(3, 2, config, MEAN, STD, fast=f, seed=0) for f in (True, False))
    fast.actor.load_state_dict(plain.actor.state_dict())
    fast.critic.net.load_from_mlps(list(plain.critic.nets))
    fast.critic_target.net.load_from_mlps(list(plain.critic_target.nets))
    for k in range(4):
        a, b = fast.update(batch(k)), plain.update(batch(k))
        for key in ("critic_loss", "td_loss", "actor_loss", "alpha_loss", *own):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), (k, key)
    for p, q in zip(fast.actor.parameters(), plain.actor.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", sorted(AGENTS))
def test_state_round_trip_continues_exactly(name: str) -> None:
    cls, config, _ = AGENTS[name]
    agent = cls(3, 2, config, MEAN, STD, seed=3)
    agent.update(batch(0))
    clone = cls(3, 2, config, seed=99)  # other weights, other statistics: all replaced by the state
    clone.load_state_dict(copy.deepcopy(agent.state_dict()))
    a, b = agent.update(batch(1)), clone.update(batch(1))
    assert float(a["critic_loss"]) == float(b["critic_loss"]) and clone.total_updates == 2
    obs = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    np.testing.assert_array_equal(agent.act(obs), clone.act(obs))
    other = next(c for n, (c, _, _) in AGENTS.items() if n != name)
    with pytest.raises(ValueError, match=f"not {other.kind!r}"):
        other(3, 2, AGENTS[other.kind][1], seed=0).load_state_dict(agent.state_dict())


def test_bad_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="num_critics"):
        EDACConfig(num_critics=1)
    with pytest.raises(ValueError, match="n_actions"):
        CQLConfig(n_actions=0)


@pytest.fixture(scope="module")
def pendulum_random_data():
    """10k transitions of a uniformly random policy on Pendulum-v1 (a real task: every policy
    starts hanging down; a random one scores about -1370 over these evaluation episodes)."""
    from synther_fast.pipelines.collect import rollouts
    from synther_fast.replay import ReplayBuffer

    data = rollouts("Pendulum-v1", None, 10_000, seed=0)
    layout = data.layout(True)
    buffer = ReplayBuffer(len(data), layout)
    buffer.add(data.to_rows(layout))
    return data, buffer


@pytest.mark.slow
@pytest.mark.parametrize("name, config, floor", [
    ("edac", EDACConfig(num_critics=10, hidden=(64, 64, 64)), -800.0),
    # CORL's policy lr 3e-5 is tuned for 1M updates; 3e-4 lets CQL learn inside 3000
    ("cql", CQLConfig(hidden=(64, 64, 64), policy_lr=3e-4), -1000.0),
])
def test_learns_to_swing_up_a_pendulum_from_random_data(pendulum_random_data, name, config, floor) -> None:
    """A short learning check on a real task: offline, 3000 updates on random-policy data.
    Measured in a run of this setup (2-core CPU; evaluation episodes of other indices): EDAC
    -1676 / -1150 / -226 after 1000 / 2000 / 3000 updates, CQL -1511 / -1241 / -702; the random
    policy -1370. About 65 s (EDAC) and 105 s (CQL) on 2 loaded cores."""
    from synther_fast.pipelines.evaluation import evaluation_record
    from synther_fast.replay import MixedSampler

    data, buffer = pendulum_random_data
    cls = EDAC if name == "edac" else CQL
    agent = cls(data.obs_dim, data.act_dim, config, data.observations.mean(0), data.observations.std(0) + 1e-3,
                seed=0)
    sampler = MixedSampler(buffer, None, 0.0, 256, seed=0)
    with torch_threads(1):
        for _ in range(3000):
            agent.update(sampler.sample())
    final = evaluation_record(agent.act, "Pendulum-v1", 5, 0, 3)["return_mean"]
    random_policy = evaluation_record(lambda o: np.random.default_rng(0).uniform(-1, 1, (len(o), 1)).astype(np.float32),
                                      "Pendulum-v1", 5, 0, 3)["return_mean"]
    assert random_policy < -1100 and final > floor, (random_policy, final)
