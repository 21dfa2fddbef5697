"""What mixing synthetic rows costs a library's sampling: each adapter's ``sample(256)`` at ratio 0.5
(after a refill) against the library's own buffer on the same real rows, in the same run.

Sizes: 100k real rows of Hopper-v5's width (obs 11, action 3) and a 1M-row refill, as online
SynthER at 100k environment steps. The ratio (adapter / library) is the overhead of the mix.
Run:  pytest bench/suites/bench_integrations.py --benchmark-json=bench.json
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from synther_fast.integrations.cleanrl import SynthERBuffer

REAL, SYNTHETIC, BATCH = 100_000, 1_000_000, 256
OBS = gym.spaces.Box(-np.inf, np.inf, (11,), np.float32)
ACT = gym.spaces.Box(-1, 1, (3,), np.float32)
WIDTH = 11 + 3 + 1 + 11 + 1


def fill(buffer) -> None:
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(REAL, 1, 11)).astype(np.float32)
    act = rng.uniform(-1, 1, (REAL, 1, 3)).astype(np.float32)
    reward = rng.normal(size=(REAL, 1)).astype(np.float32)
    done = (rng.random((REAL, 1)) < 0.01).astype(np.float32)
    # Write the arrays directly (add() row by row would take minutes): both buffers store alike.
    buffer.observations[:], buffer.next_observations[:], buffer.actions[:] = obs, obs, act
    buffer.rewards[:], buffer.dones[:] = reward, done
    buffer.pos, buffer.full = 0, True


def refill(buffer) -> None:
    buffer.mix.install(np.random.default_rng(1).normal(size=(SYNTHETIC, WIDTH)).astype(np.float32))


@pytest.fixture(scope="module")
def sb3_buffers():
    buffers = pytest.importorskip("stable_baselines3.common.buffers", reason="the [sb3] extra is not installed")
    from synther_fast.integrations.sb3 import SynthERReplayBuffer

    plain = buffers.ReplayBuffer(REAL, OBS, ACT, "cpu")
    mixed = SynthERReplayBuffer(REAL, OBS, ACT, "cpu", synthetic_ratio=0.5)
    fill(plain), fill(mixed), refill(mixed)
    return {"sb3": plain, "synther": mixed}


@pytest.mark.parametrize("impl", ["sb3", "synther"])
def test_sb3_sample(benchmark, sb3_buffers, impl):
    benchmark.group = "integrations: SB3 sample(256), 100k real rows"
    batch = benchmark(sb3_buffers[impl].sample, BATCH)
    assert batch.observations.shape == (BATCH, 11)


@pytest.fixture(scope="module")
def cleanrl_buffers():
    plain = SynthERBuffer(REAL, OBS, ACT, "cpu", synthetic_ratio=0.0, num_samples=10)
    mixed = SynthERBuffer(REAL, OBS, ACT, "cpu", synthetic_ratio=0.5, num_samples=10)
    fill(plain), fill(mixed), refill(mixed)
    return {"real-only": plain, "synther": mixed}


@pytest.mark.parametrize("impl", ["real-only", "synther"])
def test_cleanrl_sample(benchmark, cleanrl_buffers, impl):
    benchmark.group = "integrations: CleanRL-style sample(256), 100k real rows"
    batch = benchmark(cleanrl_buffers[impl].sample, BATCH)
    assert batch.observations.shape == (BATCH, 11)


@pytest.fixture(scope="module")
def torchrl_buffers():
    pytest.importorskip("torchrl", reason="the [torchrl] extra is not installed")
    import torch
    from tensordict import TensorDict
    from torchrl.data import LazyTensorStorage, ReplayBuffer

    from synther_fast.integrations.torchrl import SynthERTorchRLBuffer

    g = torch.Generator().manual_seed(0)
    flag = torch.rand(REAL, 1, generator=g) < 0.01
    data = TensorDict({"observation": torch.randn(REAL, 11, generator=g), "action": torch.rand(REAL, 3, generator=g),
                       "next": TensorDict({"observation": torch.randn(REAL, 11, generator=g),
                                           "reward": torch.randn(REAL, 1, generator=g), "done": flag,
                                           "terminated": flag.clone(), "truncated": torch.zeros_like(flag)}, [REAL])},
                      [REAL])
    plain = ReplayBuffer(storage=LazyTensorStorage(REAL))
    plain.extend(data)
    mixed = SynthERTorchRLBuffer(REAL, synthetic_fraction=0.5)
    mixed.extend(data)
    refill(mixed)
    return {"torchrl": plain, "synther": mixed}


@pytest.mark.parametrize("impl", ["torchrl", "synther"])
def test_torchrl_sample(benchmark, torchrl_buffers, impl):
    benchmark.group = "integrations: TorchRL sample(256), 100k real rows"
    batch = benchmark(torchrl_buffers[impl].sample, BATCH)
    assert batch.batch_size == (BATCH,)
