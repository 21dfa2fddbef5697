"""EDM maths against formulas and closed forms (Karras et al. 2022; SynthER's settings)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from synther_fast.config import EDMConfig
from synther_fast.diffusion.edm import (
    denoise,
    edm_loss,
    heun_sample,
    loss_weight,
    preconditioning,
    sampler_schedule,
    sigma_steps,
)

PAPER = EDMConfig()


def test_preconditioning_formulas_and_identities() -> None:
    sigma = torch.tensor([0.002, 0.05, 0.7, 1.0, 3.0, 80.0], dtype=torch.float64)
    for sigma_data in (1.0, 0.5):
        c_skip, c_out, c_in, c_noise = preconditioning(sigma, sigma_data)
        d2 = sigma_data**2
        torch.testing.assert_close(c_skip, d2 / (sigma**2 + d2))
        torch.testing.assert_close(c_out, sigma * sigma_data / torch.sqrt(sigma**2 + d2))
        torch.testing.assert_close(c_in, 1 / torch.sqrt(sigma**2 + d2))
        torch.testing.assert_close(c_noise, torch.log(sigma) / 4)
        # The network input has unit variance for data of std sigma_data: c_in^2 (sigma^2 + d2) = 1.
        torch.testing.assert_close(c_in**2 * (sigma**2 + d2), torch.ones_like(sigma))
        # The loss weight undoes the output scaling: lambda c_out^2 = 1 (EDM eq. 8).
        torch.testing.assert_close(loss_weight(sigma, sigma_data) * c_out**2, torch.ones_like(sigma))
    c_skip, c_out, *_ = preconditioning(torch.tensor([1e-6], dtype=torch.float64), 1.0)
    assert abs(float(c_skip) - 1) < 1e-9 and float(c_out) < 1e-5  # D is the identity at sigma -> 0


def test_zero_network_is_the_exact_denoiser_of_unit_gaussians_and_its_loss_is_one() -> None:
    """For data ~ N(0, sigma_data^2) the ideal D is c_skip x, i.e. F = 0, and the expected weighted
    loss is exactly 1 at every sigma: checks the noise distribution, c_skip and lambda together."""

    class Zero(torch.nn.Module):
        def forward(self, x, c_noise):
            return torch.zeros_like(x)

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(200_000, 4, generator=generator, dtype=torch.float64)
    loss = edm_loss(Zero(), x.float(), PAPER, generator)
    assert abs(float(loss) - 1.0) < 0.02
    loss_wrong_scale = edm_loss(Zero(), 2 * x.float(), PAPER, generator)
    assert float(loss_wrong_scale) > 1.5  # data of std 2 is not denoised by F = 0


def test_training_sigmas_are_log_normal() -> None:
    from synther_fast.diffusion.edm import training_sigmas

    sigma = training_sigmas(200_000, PAPER, torch.Generator().manual_seed(1), "cpu")
    log_sigma = sigma.log().double()
    assert abs(float(log_sigma.mean()) - PAPER.P_mean) < 0.01
    assert abs(float(log_sigma.std()) - PAPER.P_std) < 0.01


@pytest.mark.parametrize("n", [1, 2, 18, 128])
def test_sigma_schedule_matches_formula(n: int) -> None:
    steps = np.array(sigma_steps(PAPER, n))
    i = np.arange(n)
    inv = 1 / PAPER.rho
    frac = i / (n - 1) if n > 1 else np.zeros(1)
    expected = (PAPER.sigma_max**inv + frac * (PAPER.sigma_min**inv - PAPER.sigma_max**inv)) ** PAPER.rho
    np.testing.assert_allclose(steps[:-1], expected, rtol=1e-12)
    assert steps[-1] == 0.0 and steps[0] == pytest.approx(PAPER.sigma_max)
    if n > 1:
        assert steps[n - 1] == pytest.approx(PAPER.sigma_min)
        assert (np.diff(steps) < 0).all()


def test_churn_gamma_is_clipped_to_sqrt2_minus_1_inside_the_window() -> None:
    schedule = sampler_schedule(PAPER)  # S_churn 80 / 128 steps = 0.625 > sqrt(2) - 1
    for t, gamma, t_hat, std in zip(schedule.sigma, schedule.gamma, schedule.sigma_hat, schedule.churn_std):
        if PAPER.S_tmin <= t <= PAPER.S_tmax:
            assert gamma == pytest.approx(math.sqrt(2) - 1)
        else:
            assert gamma == 0.0
        assert t_hat == pytest.approx(t * (1 + gamma))
        assert std == pytest.approx(math.sqrt(t_hat**2 - t**2) * PAPER.S_noise)
    assert any(g > 0 for g in schedule.gamma) and any(g == 0 for g in schedule.gamma)
    few = sampler_schedule(EDMConfig(num_steps=400))  # 80/400 = 0.2 < sqrt(2) - 1: not clipped
    assert max(few.gamma) == pytest.approx(0.2)
    assert schedule.second_order == tuple([True] * 127 + [False])  # no correction at the last step


def exact_gaussian_denoiser(std: float):
    """Ideal D(x, sigma) for data ~ N(0, std^2): x std^2 / (sigma^2 + std^2)."""
    return lambda x, sigma: x * std**2 / (sigma.reshape(-1, 1) ** 2 + std**2)


def sample_std(std: float, config: EDMConfig = PAPER, sampler=heun_sample) -> float:
    generator = torch.Generator().manual_seed(3)
    x = sampler(exact_gaussian_denoiser(std), (20_000, 3), sampler_schedule(config),
                generator=generator, dtype=torch.float64)
    return float(x.std())


@pytest.mark.parametrize("std", [0.5, 1.0, 2.5])
def test_exact_denoiser_gives_samples_with_the_data_std(std: float) -> None:
    assert sample_std(std) == pytest.approx(std, rel=0.03)
    assert sample_std(std, EDMConfig(S_churn=0.0, num_steps=40)) == pytest.approx(std, rel=0.03)


def test_the_std_check_catches_sampler_bugs() -> None:
    """Broken samplers, same exact denoiser: a sign error in the Euler step and a schedule that
    starts far below sigma_max both miss the target std by far more than the 3% tolerance."""

    def sign_flipped(denoiser, shape, schedule, **kw):
        x = torch.randn(shape, generator=kw["generator"], dtype=kw["dtype"]) * schedule.sigma[0]
        for i in range(schedule.num_steps):
            t, t_next = schedule.sigma[i], schedule.sigma[i + 1]
            d = (x - denoiser(x, torch.full((shape[0],), t, dtype=x.dtype))) / t
            x = x + (t - t_next) * d  # wrong sign
        return x

    assert abs(sample_std(1.0, sampler=sign_flipped) - 1.0) > 0.3
    low_start = EDMConfig(sigma_max=0.5)  # not enough noise to forget the start: std too small
    assert abs(sample_std(2.5, low_start) - 2.5) > 0.3


def test_deterministic_without_churn_and_noise_is_an_input() -> None:
    config = EDMConfig(S_churn=0.0, num_steps=10)
    schedule = sampler_schedule(config)
    shape = (50, 4)
    start = torch.randn(shape)
    noise_a = [start] + [torch.randn(shape) for _ in range(10)]
    noise_b = [start] + [torch.randn(shape) for _ in range(10)]
    den = exact_gaussian_denoiser(1.0)
    out_a = heun_sample(den, shape, schedule, noise=noise_a)
    out_b = heun_sample(den, shape, schedule, noise=noise_b)
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=0)  # churn noise is unused
    churned = sampler_schedule(EDMConfig(num_steps=10))
    assert not torch.equal(heun_sample(den, shape, churned, noise=noise_a),
                           heun_sample(den, shape, churned, noise=noise_b))


def test_denoise_applies_preconditioning_to_the_network() -> None:
    calls = {}

    class Spy(torch.nn.Module):
        def forward(self, x, c_noise):
            calls["x"], calls["c_noise"] = x, c_noise
            return torch.ones_like(x)

    x = torch.randn(5, 3)
    sigma = torch.full((5,), 2.0)
    out = denoise(Spy(), x, sigma, 1.0)
    c_skip, c_out, c_in, c_noise = preconditioning(torch.tensor(2.0), 1.0)
    torch.testing.assert_close(calls["x"], c_in * x)
    torch.testing.assert_close(calls["c_noise"], torch.full((5,), float(c_noise)))
    torch.testing.assert_close(out, c_skip * x + c_out)
