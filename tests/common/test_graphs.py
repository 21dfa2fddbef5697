"""The one graph-capture helper and every owner of a captured step, checked on the CPU against a
recording fake of torch.cuda's graph API (tests/helpers/fake_cuda.py): warm-ups undone, one capture, the
first call exactly one step, replays bitwise equal to eager, release and recapture on every load,
nothing half-captured after an exception, no host synchronisation inside any captured function,
and SYNTHER_FAST_CUDA_GRAPHS=0 turning every capture off."""

from __future__ import annotations

import copy

import fake_cuda
import numpy as np
import pytest
import torch
from agent_rows import agent_rows
from fake_cuda import HostSyncError, HostSyncGuard

from synther_fast.agents.cql import CQL
from synther_fast.agents.edac import EDAC
from synther_fast.agents.iql import IQL
from synther_fast.agents.sac import SAC
from synther_fast.agents.td3_bc import TD3BC
from synther_fast.common import cuda_graphs as graphs
from synther_fast.common.cuda_graphs import CapturedStep
from synther_fast.common.rng import seeded
from synther_fast.config import (
    CQLConfig,
    DenoiserConfig,
    EDACConfig,
    EDMConfig,
    IQLConfig,
    SACConfig,
    TD3BCConfig,
    TrainerConfig,
)
from synther_fast.diffusion import DiffusionTrainer, ResidualMLPDenoiser
from synther_fast.replay import TransitionLayout
from synther_fast.replay.sampler import Batch

LAYOUT = TransitionLayout(4, 2, True)
MEAN, STD = np.array([0.1, -0.2, 0.3, 0.0], np.float32), np.array([1.5, 0.5, 2.0, 1.0], np.float32)


@pytest.fixture
def fake(monkeypatch):
    return fake_cuda.install(monkeypatch)


def rows(n: int, seed: int) -> torch.Tensor:
    return agent_rows(n, seed, LAYOUT)


def assert_same(a, b) -> None:
    """Bitwise equal parameters of two modules (or two lists of tensors)."""
    pa = list(a.parameters()) if hasattr(a, "parameters") else list(a)
    pb = list(b.parameters()) if hasattr(b, "parameters") else list(b)
    assert len(pa) == len(pb)
    for x, y in zip(pa, pb):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def differs(a, b) -> bool:
    return any(not torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


# -- the helper itself ------------------------------------------------------------------------------
class Counted:
    """A tiny linear model trained by capturable Adam; counts calls of its step function."""

    def __init__(self) -> None:
        with seeded(0):
            self.net = torch.nn.Linear(3, 2)
        self.opt = torch.optim.Adam(self.net.parameters(), **graphs.optimizer_options(1e-2, "cpu", True))
        self.calls = 0
        self.fail_at: int | None = None

    def step(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("boom")
        loss = (self.net(x) ** 2).mean() + 0.01 * torch.randn(()).abs()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()


def test_warm_ups_are_undone_one_capture_and_every_call_is_one_step(fake) -> None:
    graphed, eager = Counted(), Counted()
    step = CapturedStep(graphed.step, "cpu", state=[graphed.net, graphed.opt], warmup=3)
    assert step.capture
    torch.manual_seed(7)
    rng_before = torch.get_rng_state()
    xs = [torch.randn(5, 3, generator=torch.Generator().manual_seed(k)) for k in range(8)]
    losses = [step(x).clone() for x in xs]
    assert graphed.calls == 3 + 1  # three warm-ups and the capture; every later call replays
    assert step.captures == 1 and fake.captures == 1 and fake.replays == 8
    torch.set_rng_state(rng_before)
    for x, loss in zip(xs, losses):
        assert torch.equal(eager.step(x), loss)
    assert_same(graphed.net, eager.net)


def test_a_failed_capture_leaves_nothing_behind(fake) -> None:
    model = Counted()
    model.fail_at = 4  # the capture call, after three warm-ups
    before = copy.deepcopy(model.net)
    step = CapturedStep(model.step, "cpu", state=[model.net, model.opt])
    with pytest.raises(RuntimeError, match="boom"):
        step(torch.ones(5, 3))
    assert step.graph is None and step.outputs is None and step.captures == 0
    assert_same(model.net, before)
    step(torch.ones(5, 3))  # a later call captures properly and does one step
    assert step.captures == 1 and differs(model.net, before)


def test_inputs_are_copied_into_the_static_input_and_checked(fake) -> None:
    model = Counted()
    step = CapturedStep(model.step, "cpu", state=[model.net, model.opt])
    step(torch.ones(5, 3))
    static = step.static_inputs[0]
    step(torch.full((5, 3), 2.0))
    assert step.captures == 1 and torch.equal(static, torch.full((5, 3), 2.0))
    with pytest.raises(ValueError, match=r"shape \(5, 3\)"):
        step(torch.ones(4, 3))


@pytest.mark.parametrize("release", [False, True])
def test_the_fake_catches_a_graph_replayed_on_replaced_optimizer_state(fake, release: bool) -> None:
    """Negative control for the load tests below: a graph captured before load_state_dict keeps
    updating the optimiser's old state tensors, so it parts from eager; released, it agrees."""
    graphed, eager = Counted(), Counted()
    step = CapturedStep(graphed.step, "cpu", state=[graphed.net, graphed.opt])
    x = torch.ones(5, 3)
    step(x)
    for _ in range(3):
        eager.step(x)
    graphed.net.load_state_dict(eager.net.state_dict())  # a resume from eager's later checkpoint
    graphed.opt.load_state_dict(copy.deepcopy(eager.opt.state_dict()))
    if release:
        step.release()
    torch.manual_seed(2)
    step(x)
    torch.manual_seed(2)
    eager.step(x)
    assert differs(graphed.net, eager.net) != release


def test_host_syncs_are_refused_inside_a_capture(fake) -> None:
    def bad(x: torch.Tensor) -> torch.Tensor:
        return x * float(x.sum())

    with pytest.raises(HostSyncError, match="Python number"):
        CapturedStep(bad, "cpu", warmup=0)(torch.ones(3))
    x = torch.randn(6)
    for fn, what in [(lambda: x[x > 0], "boolean-mask"), (lambda: x.nonzero(), "nonzero"),
                     (lambda: torch.masked_select(x, x > 0), "masked_select"), (lambda: x.sum().item(), "Python number")]:
        with pytest.raises(HostSyncError, match=what), HostSyncGuard():
            fn()
    # pinned host memory cannot be allocated without a CUDA runtime: the rule is checked directly
    aten = torch.ops.aten
    assert "pinned" in fake_cuda.host_sync_reason(aten.empty.memory_format, ([3],), {"pin_memory": True})
    assert "pinned" in fake_cuda.host_sync_reason(aten._pin_memory.default, (x,), {})
    with HostSyncGuard():  # what captured functions do is allowed
        torch.where(x > 0, x, -x).clamp(max=1.0).argsort()[:2]


def test_graphs_env_switch(fake, monkeypatch) -> None:
    monkeypatch.setenv(graphs.GRAPHS_ENV, "0")
    assert not graphs.will_capture("cpu") and not CapturedStep(lambda: None, "cpu").capture
    agent = SAC(4, 2, SACConfig(hidden=(8,), batch_size=8), seed=0)
    assert not agent.captured and agent.rng.generator is not None
    agent.update_block(rows(8, 0)[None], LAYOUT)
    assert fake.captures == 0
    trainer = DiffusionTrainer(tiny_denoiser(), torch.randn(64, 11), EDMConfig(), TrainerConfig(steps=5), 16, 0)
    assert not trainer.graphed
    monkeypatch.setenv(graphs.GRAPHS_ENV, "maybe")
    with pytest.raises(ValueError, match="SYNTHER_FAST_CUDA_GRAPHS"):
        graphs.will_capture("cpu")
    monkeypatch.setenv(graphs.GRAPHS_ENV, "1")
    assert SAC(4, 2, SACConfig(hidden=(8,), batch_size=8), seed=0).captured
    assert not SAC(4, 2, SACConfig(hidden=(8,), batch_size=8, cuda_graph=False), seed=0).captured
    assert not SAC(4, 2, SACConfig(hidden=(8,), batch_size=8), seed=0, fast=False).captured  # the reference


# -- every owner ------------------------------------------------------------------------------------
def sac_pair(num_critics: int = 2, num_min: int = 2):
    cfg = SACConfig(hidden=(16, 16), batch_size=8, utd=5, policy_update_delay=5, num_critics=num_critics, num_min=num_min)
    return SAC(4, 2, cfg, seed=4), SAC(4, 2, cfg, seed=4)


def sac_eager_block(agent: SAC, data: torch.Tensor) -> None:
    """The block's maths run directly (no CapturedStep), inside the agent's own RNG slot."""
    utd = agent.config.utd
    with agent.rng.scope():
        for k in range(utd):
            b = Batch(data[k], LAYOUT)
            agent._update(b.obs, b.action, b.reward.squeeze(-1), b.next_obs, b.terminal.squeeze(-1), k == utd - 1)


@pytest.mark.parametrize("num_critics, num_min", [(2, 2), (5, 2)])
def test_sac_block_replays_bitwise_like_eager_and_recaptures_after_a_load(fake, num_critics, num_min) -> None:
    graphed, eager = sac_pair(num_critics, num_min)
    assert graphed.captured and graphed.rng.slot is not None
    blocks = [torch.stack([rows(8, 10 * j + k) for k in range(5)]) for j in range(5)]
    for data in blocks[:3]:  # a new tensor every call: copied in, never a new capture
        graphed.update_block(data, LAYOUT)
        sac_eager_block(eager, data)
    assert graphed._block.captures == 1 and fake.replays == 3
    assert graphed.critic_updates == 15 and graphed.actor_updates == 3
    for a, b in [(graphed.actor, eager.actor), (graphed.critic, eager.critic), (graphed.critic_target, eager.critic_target)]:
        assert_same(a, b)
    assert torch.equal(graphed.log_alpha, eager.log_alpha)
    # A resume from a later checkpoint: the optimisers' state tensors are replaced, so the graph
    # must be recaptured (a stale one would go on from the graphed agent's own older state).
    sac_eager_block(eager, blocks[3])
    eager.critic_updates += 5
    eager.actor_updates += 1
    graphed.load_state_dict(copy.deepcopy(eager.state_dict()))
    assert graphed._block is None
    graphed.update_block(blocks[4], LAYOUT)
    sac_eager_block(eager, blocks[4])
    assert graphed._block.captures == 1 and fake.captures == 2
    assert_same(graphed.critic, eager.critic)
    assert_same(graphed.actor, eager.actor)


def test_sac_single_updates_replay_like_eager(fake) -> None:
    cfg = SACConfig(hidden=(16, 16), batch_size=8, policy_update_delay=2)
    graphed, eager = SAC(4, 2, cfg, seed=1), SAC(4, 2, cfg, seed=1)
    for k in range(4):
        data = rows(8, k)
        graphed.update(Batch(data.clone(), LAYOUT))
        b = Batch(data, LAYOUT)
        with eager.rng.scope():
            eager._update(b.obs, b.action, b.reward.squeeze(-1), b.next_obs, b.terminal.squeeze(-1), k % 2 == 1)
    assert fake.captures == 2  # one graph per update kind (critic only, critic + actor)
    assert_same(graphed.critic, eager.critic)
    assert_same(graphed.actor, eager.actor)


def td3_pair():
    cfg = TD3BCConfig(hidden=(8,), policy_freq=2)  # target-policy noise on: both draw from their slots
    return [TD3BC(4, 2, cfg, MEAN, STD, seed=3) for _ in range(2)]


def td3_eager(agent: TD3BC, data: torch.Tensor) -> None:
    agent.total_updates += 1
    with agent.rng.scope():
        agent._step_fn(LAYOUT, agent.total_updates % 2 == 0)(data)


def iql_pair():
    return [IQL(4, 2, IQLConfig(hidden=(8,), max_steps=50), MEAN, STD, seed=3) for _ in range(2)]


def iql_eager(agent: IQL, data: torch.Tensor) -> None:
    agent._step_fn(LAYOUT)(data)
    agent.total_updates += 1
    agent.actor_lr_schedule.step()


@pytest.mark.parametrize("algo", ["td3_bc", "iql"])
def test_offline_agents_replay_bitwise_like_eager_and_recapture_after_a_load(fake, algo) -> None:
    (graphed, eager), run_eager = (td3_pair(), td3_eager) if algo == "td3_bc" else (iql_pair(), iql_eager)
    assert graphed.captured
    nets = ["actor", "critic", "critic_target", "actor_target"] if algo == "td3_bc" else ["actor", "q", "q_target", "v"]
    for k in range(6):
        graphed.update(Batch(rows(8, k), LAYOUT))
        run_eager(eager, rows(8, k))
    for name in nets:
        assert_same(getattr(graphed, name), getattr(eager, name))
    captures = fake.captures
    assert captures == (2 if algo == "td3_bc" else 1)
    for k in range(6, 8):  # a resume from a later checkpoint (see the SAC test)
        run_eager(eager, rows(8, k))
    graphed.load_state_dict(copy.deepcopy(eager.state_dict()))
    for k in range(8, 11):
        graphed.update(Batch(rows(8, k), LAYOUT))
        run_eager(eager, rows(8, k))
    assert fake.captures == 2 * captures  # recaptured after the load
    for name in nets:
        assert_same(getattr(graphed, name), getattr(eager, name))


def soft_ac_eager(agent, data: torch.Tensor) -> None:
    """EDAC's / CQL's maths run directly (no CapturedStep), inside the agent's own RNG slot."""
    b = Batch(data, LAYOUT)
    with agent.rng.scope():
        agent._update(agent.prepare_obs(b.obs), b.action, b.reward.squeeze(-1), agent.prepare_obs(b.next_obs),
                      b.terminal.squeeze(-1))
    agent.total_updates += 1


@pytest.mark.parametrize("algo", ["edac", "cql"])
def test_edac_and_cql_replay_bitwise_like_eager_and_recapture_after_a_load(fake, algo) -> None:
    """EDAC's double-backward diversity term and CQL's sampled-action log-sum-exp inside one
    captured step: replays equal eager bitwise, no host sync (the fake's guard), and a load
    recaptures."""
    if algo == "edac":
        graphed, eager = (EDAC(4, 2, EDACConfig(num_critics=3, hidden=(8, 8)), MEAN, STD, seed=2) for _ in range(2))
    else:
        graphed, eager = (CQL(4, 2, CQLConfig(hidden=(8, 8), n_actions=3), MEAN, STD, seed=2) for _ in range(2))
    assert graphed.captured
    for k in range(4):
        graphed.update(Batch(rows(8, k), LAYOUT))
        soft_ac_eager(eager, rows(8, k))
    assert fake.captures == 1 and fake.replays == 4
    for name in ("actor", "critic", "critic_target"):
        assert_same(getattr(graphed, name), getattr(eager, name))
    assert torch.equal(graphed.log_alpha, eager.log_alpha)
    soft_ac_eager(eager, rows(8, 4))  # a resume from a later checkpoint
    graphed.load_state_dict(copy.deepcopy(eager.state_dict()))
    graphed.update(Batch(rows(8, 5), LAYOUT))
    soft_ac_eager(eager, rows(8, 5))
    assert fake.captures == 2
    assert_same(graphed.critic, eager.critic)
    assert_same(graphed.actor, eager.actor)


def eager_train_step(trainer: DiffusionTrainer) -> torch.Tensor:
    """One uncaptured training step of ``trainer``, the same work its captured graph replays."""
    with trainer.rng.scope():
        loss = trainer._step_body()
    trainer.scheduler.step()
    trainer.step += 1
    return loss


def tiny_denoiser() -> ResidualMLPDenoiser:
    with seeded(0):
        return ResidualMLPDenoiser(DenoiserConfig(width=16, depth=2, dim_t=8, backend="reference"), 11)


def test_diffusion_train_step_replays_bitwise_like_eager_and_recaptures_after_a_load(fake) -> None:
    data = torch.randn(256, 11, generator=torch.Generator().manual_seed(0))
    cfg = TrainerConfig(steps=40, ema_every=2, ema_warmup=3)
    graphed = DiffusionTrainer(tiny_denoiser(), data, EDMConfig(), cfg, 16, seed=5)
    eager = DiffusionTrainer(tiny_denoiser(), data, EDMConfig(), cfg, 16, seed=5)
    assert graphed.graphed and graphed.rng.slot is not None

    for _ in range(12):
        assert torch.equal(graphed.train_step(), eager_train_step(eager))
    assert graphed._captured.captures == 1
    assert_same(graphed.network, eager.network)
    assert_same(graphed.ema, eager.ema)
    for _ in range(3):  # a resume from a later checkpoint (see the SAC test)
        eager_train_step(eager)
    graphed.load_state_dict(copy.deepcopy(eager.state_dict()))
    for _ in range(5):
        assert torch.equal(graphed.train_step(), eager_train_step(eager))
    assert graphed._captured.captures == 2
    assert_same(graphed.network, eager.network)


# -- checkpoints across modes -----------------------------------------------------------------------
def test_a_cpu_checkpoint_resumes_in_captured_mode(fake, monkeypatch) -> None:
    """Written eagerly (fused Adam, float lr, CPU generator), resumed by a captured agent: the
    optimisers keep their own capturable mode and the values, and training continues."""
    monkeypatch.setenv(graphs.GRAPHS_ENV, "0")
    cfg = IQLConfig(hidden=(8,), max_steps=50)
    eager = IQL(4, 2, cfg, MEAN, STD, seed=3)
    for k in range(3):
        eager.update(Batch(rows(8, k), LAYOUT))
    sac_cpu = SAC(4, 2, SACConfig(hidden=(8,), batch_size=8), seed=2)
    sac_cpu.update(Batch(rows(8, 0), LAYOUT))
    monkeypatch.setenv(graphs.GRAPHS_ENV, "1")
    resumed = IQL(4, 2, cfg, MEAN, STD, seed=99)
    assert resumed.captured
    resumed.load_state_dict(copy.deepcopy(eager.state_dict()))
    group = resumed.q_opt.param_groups[0]
    assert group["capturable"] and isinstance(group["lr"], torch.Tensor)
    assert float(resumed.actor_opt.param_groups[0]["lr"]) == pytest.approx(eager.actor_opt.param_groups[0]["lr"])
    for k in range(3, 6):
        eager.update(Batch(rows(8, k), LAYOUT))
        resumed.update(Batch(rows(8, k), LAYOUT))
    for a, b in zip(resumed.q.parameters(), eager.q.parameters()):  # capturable vs eager Adam: rounding only
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    sac = SAC(4, 2, SACConfig(hidden=(8,), batch_size=8), seed=2)
    with pytest.warns(UserWarning, match="reseeding"):  # a CPU generator state cannot drive a slot
        sac.load_state_dict(copy.deepcopy(sac_cpu.state_dict()))
    assert sac.critic_opt.state[next(iter(sac.critic.parameters()))]["step"].item() == 1
    sac.update(Batch(rows(8, 1), LAYOUT))
    assert all(torch.isfinite(p).all() for p in sac.critic.parameters())


def test_device_random_continues_its_own_kind_exactly(fake) -> None:
    for captured in (False, True):
        a = graphs.DeviceRandom("cpu", 3, captured)
        with a.scope():
            torch.randn(4, generator=a.generator)
        b = graphs.DeviceRandom("cpu", 8, captured)
        b.load_state_dict(a.state_dict())
        with a.scope():
            x = torch.randn(4, generator=a.generator)
        with b.scope():
            y = torch.randn(4, generator=b.generator)
        assert torch.equal(x, y)
    legacy = graphs.DeviceRandom("cpu", 1, False)
    legacy.load_state_dict(torch.Generator().manual_seed(5).get_state())  # a checkpoint from before the kind tag
    assert torch.equal(torch.randn(3, generator=legacy.generator), torch.randn(3, generator=torch.Generator().manual_seed(5)))


def test_seeded_init_never_reseeds_device_generators(monkeypatch) -> None:
    called = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: called.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: called.append(seed))
    before = torch.get_rng_state()
    with seeded(11):
        a = torch.randn(3)
    with seeded(11):
        b = torch.randn(3)
    assert torch.equal(a, b) and called == []
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("sampler", ["heun", "euler", "dpmpp_2m", "dpmpp_2m_sde"])
def test_fused_sampler_loop_has_no_host_sync(sampler) -> None:
    """The fused sampler's step loop (Triton kernels under the interpreter here) is what the
    sampler graph captures: it must not synchronise, for any sampler."""
    pytest.importorskip("triton")
    from synther_fast.diffusion import sampler_schedule
    from synther_fast.diffusion.fused_sampler import FusedSampler

    with seeded(0):
        net = ResidualMLPDenoiser(DenoiserConfig(width=16, depth=1, dim_t=8, backend="fused"), 5)
    schedule = sampler_schedule(EDMConfig(num_steps=3, sampler=sampler))
    fused = FusedSampler(net, schedule, 1.0, 6, 5, "cpu", graph=False, generator=torch.Generator().manual_seed(0))
    with HostSyncGuard():
        out = fused._loop()
    assert torch.isfinite(out).all() and out.std() > 0


def test_conditional_train_step_replays_bitwise_like_eager(fake) -> None:
    """Condition dropout in the captured step: the keep mask hashes the device step counter,
    which the replay must advance as eager does (and a load must restore)."""
    data = torch.randn(256, 11, generator=torch.Generator().manual_seed(0))
    conditions = torch.randn(256, generator=torch.Generator().manual_seed(1))
    cfg = TrainerConfig(steps=40, ema_every=2, ema_warmup=3)

    def conditional() -> ResidualMLPDenoiser:
        with seeded(0):
            return ResidualMLPDenoiser(DenoiserConfig(width=16, depth=1, dim_t=8), 11, conditional=True, null="learned")

    graphed = DiffusionTrainer(conditional(), data, EDMConfig(), cfg, 16, seed=5, conditions=conditions,
                               cond_dropout=0.5)
    eager = DiffusionTrainer(conditional(), data, EDMConfig(), cfg, 16, seed=5, conditions=conditions,
                             cond_dropout=0.5)
    assert graphed.graphed

    for _ in range(8):
        assert torch.equal(graphed.train_step(), eager_train_step(eager))
    assert int(graphed.cond_step) == int(eager.cond_step) == 8
    assert_same(graphed.network, eager.network)
    eager_train_step(eager)
    graphed.load_state_dict(copy.deepcopy(eager.state_dict()))
    for _ in range(3):
        assert torch.equal(graphed.train_step(), eager_train_step(eager))
    assert_same(graphed.ema, eager.ema)
    assert not torch.equal(graphed.network.null_embedding, conditional().null_embedding)  # it was trained


@pytest.mark.parametrize(("both", "sampler"), [(True, "heun"), (False, "heun"), (True, "euler"), (True, "dpmpp_2m"),
                                                 (True, "dpmpp_2m_sde")])
def test_guided_fused_sampler_loop_has_no_host_sync(both, sampler) -> None:
    pytest.importorskip("triton")
    from synther_fast.diffusion import sampler_schedule
    from synther_fast.diffusion.fused_sampler import FusedSampler

    with seeded(0):
        net = ResidualMLPDenoiser(DenoiserConfig(width=16, depth=1, dim_t=8, backend="fused"), 5, conditional=True)
    schedule = sampler_schedule(EDMConfig(num_steps=3, sampler=sampler))
    fused = FusedSampler(net, schedule, 1.0, 6, 5, "cpu", graph=False, generator=torch.Generator().manual_seed(0),
                         guidance=2.0, both_evaluations=both)
    fused.cond.copy_(torch.randn(6, generator=torch.Generator().manual_seed(2)))
    with HostSyncGuard():
        out = fused._loop()
    assert torch.isfinite(out).all() and out.std() > 0
