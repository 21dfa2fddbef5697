"""Offline learner updates/s: the fast update (twin critics stacked into one batched network,
foreach Adam; captured as a CUDA graph on GPU) against the plain per-network reference update, in
the same run, on static batches from the C++ MixedSampler (HalfCheetah-sized rows, batch 256)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synther_fast import MixedSampler, ReplayBuffer, TransitionLayout
from synther_fast.agents.cql import CQL
from synther_fast.agents.edac import EDAC
from synther_fast.agents.iql import IQL, IQLConfig
from synther_fast.agents.td3_bc import TD3BC, TD3BCConfig
from synther_fast.config import CQLConfig, EDACConfig

LAYOUT = TransitionLayout(17, 6, has_terminal=True)
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def static_batch():
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((50_000, LAYOUT.width), dtype=np.float32)
    rows[:, LAYOUT.terminal] = rng.random((50_000, 1)) < 0.01
    buffer = ReplayBuffer(len(rows), LAYOUT)
    buffer.add(rows)
    sampler = MixedSampler(buffer, None, 0.0, 256, seed=0)
    batch = sampler.sample(sampler.new_batch(torch=True))
    if DEVICE.type == "cuda":
        from synther_fast.replay import Batch

        batch = Batch(batch.data.to(DEVICE), LAYOUT)
    return batch


def make(algo: str, impl: str):
    fast = impl == "fast"
    mean, std = np.zeros(17, np.float32), np.ones(17, np.float32)
    if algo == "td3_bc":
        return TD3BC(17, 6, TD3BCConfig(), mean, std, DEVICE, fast=fast, seed=0)
    if algo == "edac":  # CORL's defaults: 10 critics of 3x256, the diversity term each update
        return EDAC(17, 6, EDACConfig(), mean, std, DEVICE, fast=fast, seed=0)
    if algo == "cql":  # CORL's defaults: twin 3x256 critics, 10 sampled actions of each kind per state
        return CQL(17, 6, CQLConfig(), mean, std, DEVICE, fast=fast, seed=0)
    return IQL(17, 6, IQLConfig(), mean, std, DEVICE, fast=fast, seed=0)


@pytest.mark.parametrize("algo", ["td3_bc", "iql", "edac", "cql"])
@pytest.mark.parametrize("impl", ["fast", "reference"])
def test_agent_update(benchmark, algo, impl) -> None:
    agent, batch = make(algo, impl), static_batch()
    for _ in range(10):  # warm-up (and CUDA-graph capture on GPU)
        agent.update(batch)

    def two_updates():  # TD3+BC alternates critic-only and critic+actor updates
        agent.update(batch)
        out = agent.update(batch)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out

    benchmark.group = f"{algo} update, batch 256, " + {"edac": "10 critics of 3x256", "cql": "twin 3x256 critics, 30 sampled actions"}.get(algo, "2x256 networks")
    benchmark.extra_info.update(rows_per_call=2, unit="updates/s", device=str(DEVICE))
    out = benchmark(two_updates)
    assert all(torch.isfinite(v).all() for v in out.values())
