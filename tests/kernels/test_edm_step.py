"""Fused sampler-step kernels vs their references, and the fused sampler vs the reference sampler.

Inputs are fresh random tensors with sizes that are not multiples of the 1024-element block; noise
is an input, so the references see the same noise. Elementwise fp32 arithmetic: rtol 1e-6 (a
different association order may change the last bit); whole samplers: rtol/atol 1e-4.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

pytest.importorskip("triton", reason="the fused kernels need triton")

from synther_fast.kernels import edm_step  # noqa: E402

from synther_fast.config import DenoiserConfig, EDMConfig  # noqa: E402
from synther_fast.diffusion import ResidualMLPDenoiser, reference_sample, sampler_schedule  # noqa: E402
from synther_fast.diffusion.edm import denoise  # noqa: E402
from synther_fast.diffusion.fused_sampler import FusedSampler, linear_coefficients  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


@pytest.mark.parametrize("shape", [(37, 29), (3, 5), (1, 1500)])
@pytest.mark.parametrize("clamp", [False, True])
def test_euler_and_heun_churn_match_references(shape, clamp) -> None:
    x_hat, f, eps = rand(*shape, seed=1), rand(*shape, seed=2), rand(*shape, seed=3)
    args = dict(c_skip=0.3, c_out=0.9, t_hat=1.7, t_next=1.1)
    got = edm_step.euler_step(x_hat, f, args["c_skip"], args["c_out"], args["t_hat"], args["t_next"], 0.6, clamp)
    want = edm_step.euler_step_reference(x_hat, f, args["c_skip"], args["c_out"], args["t_hat"], args["t_next"], 0.6, clamp)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)
    x_next, d_cur = want[0], want[1]
    f2 = rand(*shape, seed=4)
    got = edm_step.heun_churn_step(x_hat, x_next, d_cur, f2, eps, 0.4, 0.8, 1.7, 1.1, 0.25, 0.7, clamp)
    want = edm_step.heun_churn_step_reference(x_hat, x_next, d_cur, f2, eps, 0.4, 0.8, 1.7, 1.1, 0.25, 0.7, clamp)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)
    got = edm_step.churn(x_hat, eps, 0.5, 0.3)
    for g, w in zip(got, edm_step.churn_reference(x_hat, eps, 0.5, 0.3)):
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(37, 29), (1, 1500)])
@pytest.mark.parametrize("clamp", [False, True])
@pytest.mark.parametrize("multistep", [False, True])
@pytest.mark.parametrize("churn", [False, True])
def test_linear_step_matches_reference(shape, clamp, multistep, churn) -> None:
    x, f, eps, previous = (rand(*shape, seed=s) for s in (11, 12, 13, 14))
    coeffs = dict(c_skip=0.3, c_out=0.9, a=0.62, b=0.38, c1=1.4, c2=-0.4, churn_std=0.25, c_in_next=0.7)
    prev_in = previous.clone() if multistep else None
    got_x, got_in = edm_step.linear_step(x, f, prev_in, eps if churn else None, *coeffs.values(), clamp)
    want_x, want_in, denoised = edm_step.linear_step_reference(x, f, previous if multistep else None,
                                                               eps if churn else None, *coeffs.values(), clamp)
    torch.testing.assert_close(got_x, want_x, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(got_in, want_in, rtol=1e-6, atol=1e-6)
    if multistep:  # the buffer now holds this step's denoised rows, for the next step
        torch.testing.assert_close(prev_in, denoised, rtol=1e-6, atol=1e-6)


def test_linear_step_in_place_and_guided() -> None:
    x, f2, eps, previous = rand(9, 7, seed=21), rand(18, 7, seed=22), rand(9, 7, seed=23), rand(9, 7, seed=24)
    want_x, want_in, _ = edm_step.linear_step_reference(x, f2, previous, eps, 0.3, 0.9, 0.5, 0.5, 1.2, -0.2, 0.1, 0.8,
                                                        guidance=2.0, duplicate=True)
    out_x, prev = x.clone(), previous.clone()
    net_in = torch.empty(18, 7, device=DEVICE)
    edm_step.linear_step(out_x, f2, prev, eps, 0.3, 0.9, 0.5, 0.5, 1.2, -0.2, 0.1, 0.8, out=(out_x, net_in),
                         guidance=2.0, duplicate=True)
    torch.testing.assert_close(out_x, want_x, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(net_in, want_in, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["euler", "dpmpp_2m", "dpmpp_2m_sde"])
def test_linear_coefficients_are_the_reference_solvers_steps(name) -> None:
    """a x + b (c1 D + c2 D_prev) + noise_std eps with D a fixed function reproduces the reference
    samplers for the same noise (euler with churn: its churn noise is the next step's)."""
    schedule = sampler_schedule(EDMConfig(num_steps=7, S_tmax=50.0), sampler=name)
    noise = [rand(5, 3, seed=30 + k).cpu() for k in range(8)]
    den = lambda x, s: torch.tanh(x) * 0.5 + 0.1 * s.reshape(-1, 1)  # any D depending on x and sigma
    want = reference_sample(den, (5, 3), schedule, noise=noise)
    x, previous = noise[0] * schedule.sigma[0], torch.zeros(5, 3)
    if name == "euler":
        x = x + schedule.churn_std[0] * noise[1]
    for i, step in enumerate(linear_coefficients(schedule)):
        d = den(x, torch.full((5,), schedule.sigma_hat[i]))
        x = step.a * x + step.b * (step.c1 * d + step.c2 * previous)
        if step.noise_index is not None:
            x = x + step.noise_std * noise[step.noise_index]
        previous = d
    torch.testing.assert_close(x, want, rtol=1e-5, atol=1e-5)
    assert any(step.noise_std > 0 for step in linear_coefficients(schedule)) == (name != "dpmpp_2m")


def test_clamp_is_exercised() -> None:
    x_hat, f = rand(40, 40, seed=5) * 3, rand(40, 40, seed=6) * 3
    plain = edm_step.euler_step_reference(x_hat, f, 0.5, 0.9, 2.0, 1.0, 1.0, clamp=False)[0]
    clamped = edm_step.euler_step_reference(x_hat, f, 0.5, 0.9, 2.0, 1.0, 1.0, clamp=True)[0]
    assert not torch.allclose(plain, clamped)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="float32"):
        edm_step.churn(rand(4, 4, seed=0).double(), rand(4, 4, seed=1).double(), 0.1, 1.0)
    with pytest.raises(ValueError, match="one shape"):
        edm_step.churn(rand(4, 4, seed=0), rand(4, 5, seed=1), 0.1, 1.0)


def tiny_network(backend: str, precision: str = "ieee"):
    """IEEE fp32 by default: these tests compare with fp32 references at fp32 tolerances (the
    default tf32 blocks differ by ~1e-3 on a GPU: see the tf32 test below)."""
    torch.manual_seed(0)
    cfg = DenoiserConfig(width=32, depth=2, dim_t=16, backend=backend, precision=precision)
    return ResidualMLPDenoiser(cfg, d_in=7).to(DEVICE).eval()


@pytest.mark.parametrize("clamp", [False, True])
@pytest.mark.parametrize("sampler", ["heun", "euler", "dpmpp_2m", "dpmpp_2m_sde"])
def test_fused_sampler_equals_reference_sampler_for_the_same_noise(clamp, sampler) -> None:
    edm = EDMConfig(num_steps=6, S_tmax=50.0, sampler=sampler)
    schedule = sampler_schedule(edm)
    net = tiny_network("reference")
    rows, width = 20, 7
    noise = [rand(rows, width, seed=100 + k) for k in range(schedule.num_steps + 1)]

    def reference_denoiser(x, sigma):
        out = denoise(net, x, sigma, 1.0)
        return out.clamp(-1, 1) if clamp else out

    with torch.inference_mode():
        want = reference_sample(reference_denoiser, (rows, width), schedule, noise=noise, device=DEVICE)
        if clamp:
            want = want.clamp(-1, 1)
    fused = FusedSampler(net, schedule, 1.0, rows, width, DEVICE, clamp=clamp, noise="input", graph=False)
    fused.noise.copy_(torch.stack(noise))
    got = fused.sample()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    # churn is exercised where the sampler has it
    assert any(c > 0 for c in schedule.churn_std) == (sampler in ("heun", "euler"))


@pytest.mark.parametrize("sampler", ["heun", "euler", "dpmpp_2m", "dpmpp_2m_sde"])
def test_fused_sampler_draws_noise_in_the_reference_order(sampler) -> None:
    schedule = sampler_schedule(EDMConfig(num_steps=4, sampler=sampler))
    net = tiny_network("reference")
    g1, g2 = torch.Generator(device=DEVICE).manual_seed(9), torch.Generator(device=DEVICE).manual_seed(9)
    with torch.inference_mode():
        want = reference_sample(lambda x, s: denoise(net, x, s, 1.0), (10, 7), schedule, generator=g1, device=DEVICE)
    got = FusedSampler(net, schedule, 1.0, 10, 7, DEVICE, generator=g2, graph=False).sample()
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_denoiser_backends_share_parameters_and_agree() -> None:
    ref, fused = tiny_network("reference"), tiny_network("fused")
    assert ref.state_dict().keys() == fused.state_dict().keys()
    fused.load_state_dict(ref.state_dict())
    x, c = rand(19, 7, seed=7), rand(19, seed=8)
    torch.testing.assert_close(fused(x, c), ref(x, c), rtol=1e-5, atol=1e-5)
    x.requires_grad_(True)
    (fused(x, c) ** 2).sum().backward()
    grads_fused = [p.grad.clone() for p in fused.parameters()]
    (ref(x, c) ** 2).sum().backward()
    for gf, p in zip(grads_fused, ref.parameters()):
        torch.testing.assert_close(gf, p.grad, rtol=1e-4, atol=1e-5)


def test_tf32_blocks_agree_with_fp32_only_at_tf32_tolerance() -> None:
    """The default precision (tf32) must be compared at a tf32 tolerance: emulated here, its
    rounding is already far beyond the fp32 one (1e-5) that the test above uses for ieee."""
    ref, tf32 = tiny_network("reference"), tiny_network("emulated", precision="tf32")
    tf32.load_state_dict(ref.state_dict())
    x, c = rand(19, 7, seed=7), rand(19, seed=8)
    gap = float((tf32(x, c) - ref(x, c)).abs().max())
    assert 1e-5 < gap
    torch.testing.assert_close(tf32(x, c), ref(x, c), rtol=3e-3, atol=3e-3)


def test_auto_dispatch_never_picks_the_fused_path_on_cpu() -> None:
    net = ResidualMLPDenoiser(DenoiserConfig(width=32, depth=1, dim_t=8), 5)
    assert not net.uses_fused_blocks(torch.zeros(2, 32))
    forced = ResidualMLPDenoiser(DenoiserConfig(width=32, depth=1, dim_t=8, backend="fused"), 5)
    assert forced.uses_fused_blocks(torch.zeros(2, 32))
    with pytest.raises(ValueError, match="backend"):
        ResidualMLPDenoiser(dataclasses.replace(DenoiserConfig(), backend="cuda"), 5)
    # the rule itself, for a CUDA device (triton is installed wherever this file runs)
    from synther_fast.diffusion.denoiser import picks_fused_layers

    assert picks_fused_layers(DenoiserConfig(), on_cuda=True)
    assert not picks_fused_layers(DenoiserConfig(), on_cuda=False)
    assert not picks_fused_layers(DenoiserConfig(layer_norm=True), on_cuda=True)
    assert not picks_fused_layers(DenoiserConfig(backend="emulated"), on_cuda=True)


@pytest.mark.gpu
@pytest.mark.parametrize("sampler", ["heun", "euler", "dpmpp_2m", "dpmpp_2m_sde"])
def test_graph_captured_sampler_equals_eager_for_the_same_noise(sampler) -> None:
    schedule = sampler_schedule(EDMConfig(sampler=sampler))  # the paper's 128 steps
    torch.manual_seed(0)
    net = ResidualMLPDenoiser(DenoiserConfig(width=256, depth=6, dim_t=64, backend="fused"), 42).cuda().eval()
    rows = 512
    noise = torch.randn(schedule.num_steps + 1, rows, 42, device="cuda")
    graphed = FusedSampler(net, schedule, 1.0, rows, 42, "cuda", noise="input", graph=True)
    eager = FusedSampler(net, schedule, 1.0, rows, 42, "cuda", noise="input", graph=False)
    graphed.noise.copy_(noise)
    eager.noise.copy_(noise)
    first = graphed.sample().clone()
    again = graphed.sample().clone()  # a replay, not the capture
    want = eager.sample()
    torch.testing.assert_close(first, want, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(again, want, rtol=1e-4, atol=1e-4)
    with torch.inference_mode():
        ref = reference_sample(lambda x, s: denoise(net, x, s, 1.0), (rows, 42), schedule, noise=list(noise))
    torch.testing.assert_close(first, ref, rtol=1e-3, atol=1e-3)
