"""GPU diffusion benchmarks (marked gpu): the paper's online denoiser (width 1024, depth 6,
dim_t 256, HalfCheetah rows) sampling 100k rows with 128 Heun steps, and training at batch 256.

Implementations, in the same run: the eager reference at fp32 (as the published code runs) and at
TF32, torch.compile of the reference at both, and the fused Triton blocks + fused step kernels +
one CUDA graph at IEEE fp32, 3xTF32, TF32 and bf16. The dense matmul rate of the GPU at each precision is
measured here too, so the report can state the fraction of the matmul floor reached.
"""

from __future__ import annotations

import pytest
import torch

from synther_fast.config import DenoiserConfig, EDMConfig, TrainerConfig
from synther_fast.diffusion import DiffusionTrainer, ResidualMLPDenoiser, heun_sample, sampler_schedule
from synther_fast.diffusion.edm import denoise
from synther_fast.diffusion.fused_sampler import FusedSampler

pytestmark = pytest.mark.gpu
WIDTH, DEPTH, DIM_T, D_IN, ROWS = 1024, 6, 256, 42, 100_000


def flops_per_row_eval() -> float:
    macs = D_IN * DIM_T + 17 * DIM_T + DIM_T * DIM_T + DIM_T * WIDTH + DEPTH * WIDTH * WIDTH + WIDTH * D_IN
    return 2.0 * macs


def set_tf32(enabled: bool) -> None:
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


@pytest.fixture(autouse=True)
def fp32_matmuls_after_each_benchmark():
    """A benchmark that fails half-way must not leave TF32 on for the next one."""
    yield
    set_tf32(False)


@pytest.mark.parametrize("precision", ["fp32", "tf32", "bf16"])
def test_matmul_rate(benchmark, precision) -> None:
    set_tf32(precision == "tf32")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    b = torch.randn(8192, 8192, device="cuda", dtype=dtype)

    def run():
        for _ in range(5):
            torch.mm(a, b)
        torch.cuda.synchronize()

    run()
    benchmark.group = "dense matmul 8192^3"
    benchmark.extra_info.update(rows_per_call=5 * 2 * 8192**3 / 1e12, unit="TFLOP/s", precision=precision)
    benchmark.pedantic(run, rounds=5, iterations=1)
    set_tf32(False)


def network(backend: str, precision: str = "ieee") -> ResidualMLPDenoiser:
    torch.manual_seed(0)
    cfg = DenoiserConfig(width=WIDTH, depth=DEPTH, dim_t=DIM_T, backend=backend, precision=precision)
    return ResidualMLPDenoiser(cfg, D_IN).cuda().eval()


def synchronized_after_warmup(run_once):
    """``run_once`` followed by a device sync (so a round times the work, not its launch), called
    once here to keep compilation, autotuning and graph capture out of the timed rounds."""
    def run():
        out = run_once()
        torch.cuda.synchronize()
        return out

    run()
    return run


# "fused-eager-*" runs the fused kernels without the CUDA graph, so that at equal precision the
# report separates what fusion adds (fused-eager vs reference) from what the graph adds.
@pytest.mark.parametrize("impl", ["reference-fp32", "reference-tf32", "compiled-fp32", "compiled-tf32",
                                  "fused-eager-tf32", "fused-graph-ieee", "fused-graph-tf32x3", "fused-graph-tf32",
                                  "fused-graph-bf16"])
def test_sampling_100k(benchmark, impl) -> None:
    kind, *rest = impl.split("-")
    precision = rest[-1]
    schedule = sampler_schedule(EDMConfig())
    if kind == "fused":
        sampler = FusedSampler(network("fused", precision), schedule, 1.0, ROWS, D_IN, "cuda",
                                   graph=rest[0] == "graph")
        run_once = sampler.sample
    else:
        set_tf32(precision == "tf32")
        net = network("reference")
        if kind == "compiled":
            net = torch.compile(net)

        @torch.inference_mode()
        def run_once():
            return heun_sample(lambda x, s: denoise(net, x, s, 1.0), (ROWS, D_IN), schedule, device="cuda")

    run = synchronized_after_warmup(run_once)
    benchmark.group = "sampling 100k rows, width 1024, 128 Heun steps"
    benchmark.extra_info.update(rows_per_call=ROWS, unit="rows/s", precision=precision,
                                flop_per_call=flops_per_row_eval() * ROWS * (2 * schedule.num_steps - 1))
    out = benchmark.pedantic(run, rounds=2, iterations=1)
    assert torch.isfinite(out).all()
    set_tf32(False)


@pytest.mark.parametrize("impl", ["heun-128", "heun-8", "euler-16", "dpmpp_2m-16", "dpmpp_2m-8",
                                  "dpmpp_2m_sde-16"])
def test_few_step_sampling_100k(benchmark, impl) -> None:
    """The fused, captured path of each sampler (TF32 blocks) against the published 128-step Heun in
    the same run: rows/s and its ratio, at equal precision (whether the rows keep their quality at
    fewer steps is bench/studies/sampler_study.py's question)."""
    name, steps = impl.rsplit("-", 1)
    schedule = sampler_schedule(EDMConfig(num_steps=int(steps)), sampler=name)
    sampler = FusedSampler(network("fused", "tf32"), schedule, 1.0, ROWS, D_IN, "cuda", graph=True)
    run = synchronized_after_warmup(sampler.sample)
    benchmark.group = "few-step sampling 100k rows, width 1024, fused graph tf32"
    benchmark.extra_info.update(rows_per_call=ROWS, unit="rows/s", precision="tf32", nfe=schedule.nfe,
                                flop_per_call=flops_per_row_eval() * ROWS * schedule.nfe)
    out = benchmark.pedantic(run, rounds=2, iterations=1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("impl", ["fused-graph-unguided", "fused-graph-guided-both", "fused-graph-guided-first",
                                  "reference-tf32-guided-both", "compiled-tf32-guided-both"])
def test_guided_sampling_100k(benchmark, impl) -> None:
    """Classifier-free guidance on the captured fused sampler against the unguided one in the same
    run (each guided evaluation: one network call on 2B rows), with the reference and
    torch.compile baselines of a guided sampler at the same (tf32) precision."""
    from synther_fast.diffusion.edm import guided_denoisers

    torch.manual_seed(0)
    schedule = sampler_schedule(EDMConfig())
    backend = "fused" if impl.startswith("fused") else "reference"
    cfg = DenoiserConfig(width=WIDTH, depth=DEPTH, dim_t=DIM_T, backend=backend, precision="tf32")
    net = ResidualMLPDenoiser(cfg, D_IN, conditional=True).cuda().eval()
    cond = torch.randn(ROWS, device="cuda")
    both = impl.endswith("both")
    if backend == "fused":
        sampler = FusedSampler(net, schedule, 1.0, ROWS, D_IN, "cuda", graph=True,
                                   guidance=None if impl.endswith("unguided") else 2.0, both_evaluations=both)
        if sampler.cond is not None:
            sampler.cond.copy_(cond)
        run_once = sampler.sample
    else:
        set_tf32(True)
        model = torch.compile(net) if impl.startswith("compiled") else net
        first, second = guided_denoisers(model, cond, 2.0, 1.0, both_evaluations=both)

        @torch.inference_mode()
        def run_once():
            return heun_sample(first, (ROWS, D_IN), schedule, device="cuda", second_denoiser=second)

    run = synchronized_after_warmup(run_once)
    benchmark.group = "guided sampling 100k rows, width 1024, 128 Heun steps (w = 2)"
    benchmark.extra_info.update(rows_per_call=ROWS, unit="rows/s", precision="tf32")
    out = benchmark.pedantic(run, rounds=2, iterations=1)
    assert torch.isfinite(out).all()
    set_tf32(False)


@pytest.mark.parametrize("impl", ["reference-fp32", "reference-tf32", "fused-eager-tf32", "fused-graph-ieee",
                                  "fused-graph-tf32x3", "fused-graph-tf32"])
def test_training_step_256(benchmark, impl) -> None:
    kind, *rest = impl.split("-")
    precision = rest[-1]
    set_tf32(kind == "reference" and precision == "tf32")
    torch.manual_seed(0)
    backend = "fused" if kind == "fused" else "reference"
    cfg = DenoiserConfig(width=WIDTH, depth=DEPTH, dim_t=DIM_T, backend=backend,
                         precision="ieee" if precision == "fp32" else precision)
    net = ResidualMLPDenoiser(cfg, D_IN).cuda()
    data = torch.randn(100_000, D_IN, device="cuda")
    graphed = kind == "fused" and rest[0] == "graph"
    trainer = DiffusionTrainer(net, data, EDMConfig(), TrainerConfig(cuda_graph=graphed), 256, 0)
    for _ in range(5):
        trainer.train_step()

    def run():
        for _ in range(20):
            trainer.train_step()
        torch.cuda.synchronize()

    benchmark.group = "training step, batch 256, width 1024"
    benchmark.extra_info.update(rows_per_call=20, unit="steps/s", precision=precision)
    benchmark.pedantic(run, rounds=5, iterations=1)
    set_tf32(False)
