"""Where the GPU time goes in each hot path: a torch.profiler table per path (run by bench/gpu/gpu_check.py).

For each path it prints the wall time, the summed GPU kernel time, their ratio (GPU busy: near 1
means the GPU limits, well below 1 means launch or host overhead does) and the kernels that take
the most time with their share (GEMMs: the matmul rate limits; elementwise kernels: memory
traffic). Paths: sampling at width 1024 / batch 100k (eager fp32 reference; fused at TF32 without
and with the CUDA graph), two Heun steps each; the diffusion training step at batch 256 (eager fp32
reference; fused TF32 eager and captured).

Usage: python bench/gpu/gpu_profile.py   (needs a CUDA device)
"""

from __future__ import annotations

import time

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from synther_fast.config import DenoiserConfig, EDMConfig, TrainerConfig
from synther_fast.diffusion import DiffusionTrainer, ResidualMLPDenoiser, heun_sample, sampler_schedule
from synther_fast.diffusion.edm import denoise
from synther_fast.diffusion.fused_sampler import FusedSampler

WIDTH, DEPTH, DIM_T, D_IN, ROWS = 1024, 6, 256, 42, 100_000


def _device_time(event) -> float:
    for name in ("self_device_time_total", "self_cuda_time_total"):  # renamed across torch versions
        if hasattr(event, name):
            return float(getattr(event, name))
    return 0.0


def report(label: str, fn, repeats: int = 3) -> None:
    for _ in range(2):  # warm-up: autotuning, compilation, graph capture
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        started = time.perf_counter()
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize()
        wall_us = (time.perf_counter() - started) * 1e6
    # Device-side events only: the launching CPU ops carry the same device time again.
    kernels = [e for e in prof.key_averages()
               if e.device_type == DeviceType.CUDA and not getattr(e, "is_user_annotation", False)
               and _device_time(e) > 0]
    busy_us = sum(_device_time(e) for e in kernels)
    print(f"\n== {label}: wall {wall_us / repeats / 1e3:.2f} ms per call, GPU kernels {busy_us / repeats / 1e3:.2f} ms "
          f"(GPU busy {busy_us / wall_us:.0%})")
    for e in sorted(kernels, key=_device_time, reverse=True)[:8]:
        print(f"  {_device_time(e) / busy_us:6.1%}  {e.count // repeats:5d} calls/call  {e.key[:90]}")


def network(backend: str, precision: str) -> ResidualMLPDenoiser:
    torch.manual_seed(0)
    cfg = DenoiserConfig(width=WIDTH, depth=DEPTH, dim_t=DIM_T, backend=backend, precision=precision)
    return ResidualMLPDenoiser(cfg, D_IN).cuda().eval()


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_profile.py needs a CUDA device")
    print(torch.cuda.get_device_name(), "torch", torch.__version__)
    schedule = sampler_schedule(EDMConfig(), 2)

    reference = network("reference", "ieee")

    @torch.inference_mode()
    def eager_sampling():
        return heun_sample(lambda x, s: denoise(reference, x, s, 1.0), (ROWS, D_IN), schedule, device="cuda")

    report("sampling, eager fp32 reference, 2 Heun steps x 100k rows", eager_sampling)
    for graph in (False, True):
        sampler = FusedSampler(network("fused", "tf32"), schedule, 1.0, ROWS, D_IN, "cuda", graph=graph)
        report(f"sampling, fused tf32 {'+ CUDA graph' if graph else 'eager'}, 2 Heun steps x 100k rows",
               sampler.sample)
        del sampler

    data = torch.randn(100_000, D_IN, device="cuda")
    for backend, precision, graph in (("reference", "ieee", False), ("fused", "tf32", False), ("fused", "tf32", True)):
        torch.manual_seed(0)
        net = ResidualMLPDenoiser(DenoiserConfig(width=WIDTH, depth=DEPTH, dim_t=DIM_T, backend=backend,
                                                 precision=precision), D_IN).cuda()
        trainer = DiffusionTrainer(net, data, EDMConfig(), TrainerConfig(cuda_graph=graph), 256, 0)

        def ten_steps():
            for _ in range(10):
                trainer.train_step()

        report(f"training, {backend} {precision if backend == 'fused' else 'fp32'}"
               f"{' + CUDA graph' if graph else ''}, 10 steps at batch 256", ten_steps)


if __name__ == "__main__":
    main()
