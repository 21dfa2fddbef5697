"""Diffusion reference throughput: training steps/s (batch 256) and sampling rows/s (128 Heun
steps), depth 6, widths 256 and 1024, HalfCheetah-sized rows. These are the reference numbers the
fused Triton/CUDA-graph path is measured against (its benchmarks will join this file's groups)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from synther_fast import TransitionLayout
from synther_fast.config import DenoiserConfig, EDMConfig, TrainerConfig
from synther_fast.diffusion import (
    DiffusionTrainer,
    ResidualMLPDenoiser,
    heun_sample,
    reference_sample,
    sampler_schedule,
)
from synther_fast.diffusion.edm import denoise

LAYOUT = TransitionLayout(17, 6, has_terminal=True)
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def network(width: int, dim_t: int = 256) -> ResidualMLPDenoiser:
    torch.manual_seed(0)
    return ResidualMLPDenoiser(DenoiserConfig(width=width, depth=6, dim_t=dim_t), LAYOUT.width).to(DEVICE)


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("width", [256, 1024])
@pytest.mark.parametrize("impl", ["reference"])
def test_training_step(benchmark, impl, width) -> None:
    data = torch.randn(10_000, LAYOUT.width, device=DEVICE)
    trainer = DiffusionTrainer(network(width), data, EDMConfig(), TrainerConfig(), batch_size=256, seed=0)
    for _ in range(3):  # warm-up: allocator, optimiser state
        trainer.train_step()

    def step() -> None:
        trainer.train_step()
        _sync()

    benchmark.group = f"diffusion train step: width {width}, depth 6, batch 256"
    benchmark.extra_info.update(rows_per_call=1, unit="steps/s", device=str(DEVICE))
    benchmark(step)


@pytest.mark.slow
@pytest.mark.parametrize("width, rows", [(256, 1024), (1024, 256)])
@pytest.mark.parametrize("impl", ["reference"])
def test_sampling(benchmark, impl, width, rows) -> None:
    net = network(width).eval()
    schedule = sampler_schedule(EDMConfig())  # the paper's 128 steps, 255 network calls per row
    generator = torch.Generator(device=DEVICE).manual_seed(0)

    @torch.inference_mode()
    def sample() -> torch.Tensor:
        out = heun_sample(lambda x, s: denoise(net, x, s, 1.0), (rows, LAYOUT.width), schedule,
                          generator=generator, device=DEVICE)
        _sync()
        return out

    benchmark.group = f"diffusion sampling: width {width}, depth 6, 128 Heun steps"
    benchmark.extra_info.update(rows_per_call=rows, unit="rows/s", device=str(DEVICE),
                                network_calls_per_row=255)
    out = benchmark.pedantic(sample, rounds=2, iterations=1, warmup_rounds=0)
    assert np.isfinite(out.cpu().numpy()).all()


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["unguided", "guided-both", "guided-first"])
def test_guided_sampling_cost(benchmark, impl) -> None:
    """The cost of classifier-free guidance on the reference sampler, in one run: each guided
    evaluation is one network call on 2B rows ('first': the second evaluation of each Heun step
    runs the conditional branch alone, PGR's placement). Ratios against 'unguided' are what
    bench/RESULTS.md reports."""
    from synther_fast.diffusion.edm import guided_denoisers

    torch.manual_seed(0)
    net = ResidualMLPDenoiser(DenoiserConfig(width=256, depth=6, dim_t=64), LAYOUT.width, conditional=True).to(DEVICE)
    net.eval()
    rows = 1024
    schedule = sampler_schedule(EDMConfig(num_steps=32))
    cond = torch.randn(rows, device=DEVICE)
    if impl == "unguided":
        first = second = lambda x, s: denoise(net, x, s, 1.0)
    else:
        first, second = guided_denoisers(net, cond, 2.0, 1.0, both_evaluations=impl == "guided-both")
    generator = torch.Generator(device=DEVICE).manual_seed(0)

    @torch.inference_mode()
    def sample() -> torch.Tensor:
        out = heun_sample(first, (rows, LAYOUT.width), schedule, generator=generator, device=DEVICE,
                          second_denoiser=second)
        _sync()
        return out

    benchmark.group = "guided sampling (reference): width 256, depth 6, 32 Heun steps, 1024 rows"
    benchmark.extra_info.update(rows_per_call=rows, unit="rows/s", device=str(DEVICE))
    out = benchmark.pedantic(sample, rounds=3, iterations=1, warmup_rounds=1)
    assert torch.isfinite(out).all()


SAMPLER_GRID = ["heun-128", "heun-32", "heun-16", "heun-8", "euler-16", "euler-8", "dpmpp_2m-16", "dpmpp_2m-8",
                "dpmpp_2m-4", "dpmpp_2m_sde-64", "dpmpp_2m_sde-32", "dpmpp_2m_sde-16"]


@pytest.mark.parametrize("impl", SAMPLER_GRID)
def test_sampler_speed(benchmark, impl) -> None:
    """Rows/s of each sampler x steps against the published 128-step Heun in the same run (the
    ratio is what bench/RESULTS.md reports; whether fewer steps keep the rows' quality is the
    study's question, bench/studies/sampler_study.py). Reference path, width 256, depth 6."""
    name, steps = impl.rsplit("-", 1)
    net = network(256, dim_t=64).eval()
    schedule = sampler_schedule(EDMConfig(num_steps=int(steps)), sampler=name)
    generator = torch.Generator(device=DEVICE).manual_seed(0)
    rows = 1024

    @torch.inference_mode()
    def sample() -> torch.Tensor:
        out = reference_sample(lambda x, s: denoise(net, x, s, 1.0), (rows, LAYOUT.width), schedule,
                               generator=generator, device=DEVICE)
        _sync()
        return out

    benchmark.group = "sampler speed (reference): width 256, depth 6, 1024 rows"
    benchmark.extra_info.update(rows_per_call=rows, unit="rows/s", device=str(DEVICE), nfe=schedule.nfe)
    out = benchmark.pedantic(sample, rounds=3, iterations=1, warmup_rounds=1)
    assert torch.isfinite(out).all()
