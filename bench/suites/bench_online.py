"""Online learner and loop throughput: the fast SAC/REDQ block against the plain reference.

Learner: critic updates/s of one environment step's work at UTD 20 (20 critic updates + actor and
temperature), the fast agent (stacked critics, fused Adam, frozen-critic actor step; one captured
CUDA graph on GPU) against the plain per-network reference, at the paper's sizes (2x256, batch 256).
Loop: environment steps/s of whole online runs (SAC-UTD20, REDQ, SAC+SynthER with its refit time
split out) at a tiny scale, so the cost of each part is visible.
"""

from __future__ import annotations

import pytest
import torch

from synther_fast.agents.sac import SAC
from synther_fast.config import online_quick, redq, sac_utd20
from synther_fast.replay import TransitionLayout
from synther_fast.replay.sampler import Batch

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
LAYOUT = TransitionLayout(17, 6, True)  # HalfCheetah


@pytest.mark.parametrize("algo", ["sac-utd20", "redq"])
@pytest.mark.parametrize("impl", ["reference", "fast"])
def test_learner_block(benchmark, algo: str, impl: str) -> None:
    cfg = sac_utd20() if algo == "sac-utd20" else redq()
    agent = SAC(17, 6, cfg, DEVICE, seed=0, fast=impl == "fast")
    g = torch.Generator().manual_seed(0)
    data = torch.randn(cfg.utd, cfg.batch_size, Batch.row_width(LAYOUT), generator=g).to(DEVICE)
    data[..., LAYOUT.terminal] = 0.0
    agent.update_block(data, LAYOUT)  # warm-up (and capture on GPU)

    def block():
        out = agent.update_block(data, LAYOUT)
        if DEVICE == "cuda":
            torch.cuda.synchronize()
        return out

    benchmark.group = f"online learner block ({algo}, UTD {cfg.utd}, batch {cfg.batch_size})"
    benchmark.extra_info.update(rows_per_call=cfg.utd, unit="critic updates/s", device=DEVICE,
                                captured=agent.captured)
    out = benchmark.pedantic(block, rounds=30 if DEVICE == "cuda" else 5, iterations=1)
    assert torch.isfinite(out["critic_loss"])


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["sac", "redq", "sac-synther"])
def test_online_loop(benchmark, tmp_path, algo: str) -> None:
    from synther_fast.pipelines.online import run_online

    overrides = {"env": "Hopper-v5", "env_steps": 240, "sac.start_steps": 200, "retrain_every": 220,
                 "num_samples": 2000, "synther.trainer.steps": 100, "eval_every": 240, "eval_episodes": 1}
    if algo == "sac":
        overrides |= {"sac.utd": 20, "sac.policy_update_delay": 20}
    config = online_quick(algo).with_overrides(**overrides)
    result = benchmark.pedantic(lambda: run_online(config, tmp_path / algo, progress=False), rounds=1, iterations=1)
    s = result.summary["seconds"]
    benchmark.extra_info |= {f"seconds_{k}": v for k, v in s.items()}
    benchmark.extra_info["critic_updates_per_learner_second"] = result.summary["critic_updates_per_learner_second"]
    assert result.summary["critic_updates"] == 40 * config.sac.utd
