"""The samplers against closed-form denoisers, with no trained model.

- Gaussian data N(0, diag(s^2)): D(x, sigma) = x s^2 / (sigma^2 + s^2) is exact, and so is the
  probability-flow ODE's solution, x(sigma) = x(sigma_max) sqrt((sigma^2 + s^2) / (sigma_max^2 + s^2)).
  Every sampler's last step (sigma_min to 0) returns D(x, sigma_min), so the exact answer to compare
  with is D(x_exact(sigma_min), sigma_min): the same last step applied to both, and the error is the
  solver's alone (otherwise the order test plateaus). Euler converges at first order, Heun and
  DPM-Solver++(2M) at second.
- A Gaussian mixture: D is the posterior-weighted sum of the components' denoisers; the samples'
  mean and covariance must match the mixture's, for the stochastic samplers (churn) too.
- Negative controls: a multistep solver that blends the wrong step's denoised rows, and a sampler
  that evaluates D one step off the schedule, fail the same checks.
"""

from __future__ import annotations

import math

import pytest
import torch

from synther_fast.config import EDMConfig
from synther_fast.diffusion.edm import SamplerSchedule, dpmpp_2m_sample, reference_sample, sampler_schedule

STD = torch.tensor([0.5, 1.0, 2.5], dtype=torch.float64)
ROWS = 64


def gaussian_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return x * STD**2 / (sigma.reshape(-1, 1) ** 2 + STD**2)


def start_noise() -> torch.Tensor:
    return torch.randn(ROWS, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def exact_end(schedule: SamplerSchedule, z: torch.Tensor) -> torch.Tensor:
    s_max, s_min = schedule.sigma[0], schedule.sigma[-2]
    at_min = s_max * z * torch.sqrt((s_min**2 + STD**2) / (s_max**2 + STD**2))
    return gaussian_denoiser(at_min, torch.full((ROWS,), s_min, dtype=torch.float64))


def solver_error(name: str, steps: int, sample=reference_sample) -> float:
    schedule = sampler_schedule(EDMConfig(num_steps=steps, S_churn=0.0), sampler=name)
    z = start_noise()
    x = sample(gaussian_denoiser, (ROWS, 3), schedule, noise=[z] * (steps + 1), dtype=torch.float64)
    want = exact_end(schedule, z)
    return float((x - want).abs().max() / want.abs().max())


def observed_orders(name: str, sample=reference_sample) -> list[float]:
    errors = [solver_error(name, n, sample) for n in (16, 32, 64, 128)]
    return [math.log2(a / b) for a, b in zip(errors, errors[1:])]


@pytest.mark.parametrize(("name", "order"), [("euler", 1), ("heun", 2), ("dpmpp_2m", 2)])
def test_deterministic_solvers_converge_at_their_order(name: str, order: int) -> None:
    orders = observed_orders(name)
    assert all(abs(p - order) < 0.35 for p in orders[-2:]), orders
    assert solver_error(name, 128) < (2e-2 if order == 1 else 1e-3)


def test_a_second_order_solver_beats_euler_at_equal_evaluations() -> None:
    """At 31 evaluations: Heun 16 steps, DPM-Solver++(2M) 31 steps, Euler 31 steps."""
    euler, heun, dpm = solver_error("euler", 31), solver_error("heun", 16), solver_error("dpmpp_2m", 31)
    assert dpm < euler / 5 and heun < euler


def stale_history_dpmpp(denoiser, shape, schedule, **kw):
    """Negative control: DPM-Solver++(2M) blending the denoised rows of two steps back."""
    noise = kw["noise"]
    x = noise[0].to(kw["dtype"]) * schedule.sigma[0]
    history: list[torch.Tensor] = []
    sigma = schedule.sigma
    for i in range(schedule.num_steps):
        s, s_next = sigma[i], sigma[i + 1]
        d = denoiser(x, torch.full((shape[0],), s, dtype=x.dtype))
        if s_next == 0:
            return d
        h = math.log(s / s_next)
        blended = d
        if len(history) >= 2:
            r = math.log(sigma[i - 1] / s) / h
            blended = (1 + 1 / (2 * r)) * d - (1 / (2 * r)) * history[-2]  # off by one step
        x = (s_next / s) * x - math.expm1(-h) * blended
        history.append(d)
    return x


def shifted_evaluation_dpmpp(denoiser, shape, schedule, **kw):
    """Negative control: each step evaluates D at the next step's sigma."""
    shifted = SamplerSchedule(schedule.sampler, schedule.sigma, schedule.gamma,
                              tuple(schedule.sigma[1:-1]) + (schedule.sigma[-2],), schedule.churn_std,
                              schedule.second_order)

    def late(x, sigma):
        i = next(k for k, t in enumerate(schedule.sigma) if abs(t - float(sigma[0])) < 1e-12 * max(t, 1))
        return denoiser(x, torch.full_like(sigma, shifted.sigma_hat[i]))

    return dpmpp_2m_sample(late, shape, schedule, **kw)


def test_off_by_one_solvers_fail_the_order_test() -> None:
    stale = observed_orders("dpmpp_2m", stale_history_dpmpp)
    assert not all(abs(p - 2) < 0.35 for p in stale[-2:]), stale
    assert solver_error("dpmpp_2m", 64, shifted_evaluation_dpmpp) > 10 * solver_error("dpmpp_2m", 64)


# -- a Gaussian mixture: distributions ------------------------------------------------------------
MEANS = torch.tensor([[-2.0, 0.5], [1.5, 1.0], [0.5, -2.0]], dtype=torch.float64)
SCALES = torch.tensor([0.3, 0.6, 0.4], dtype=torch.float64)
WEIGHTS = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)


def mixture_denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E[x0 | x]: posterior weights of N(mu_k, (s_k^2 + sigma^2) I) times each component's D."""
    var = SCALES**2 + sigma.reshape(-1, 1) ** 2  # (B, K)
    sq = ((x[:, None, :] - MEANS[None]) ** 2).sum(-1)  # (B, K)
    logits = WEIGHTS.log() - sq / (2 * var) - x.shape[1] / 2 * var.log()
    post = torch.softmax(logits, dim=1)
    shrink = (SCALES**2 / var)[..., None]  # (B, K, 1)
    each = MEANS[None] + shrink * (x[:, None, :] - MEANS[None])
    return (post[..., None] * each).sum(1)


def mixture_moments() -> tuple[torch.Tensor, torch.Tensor]:
    mean = (WEIGHTS[:, None] * MEANS).sum(0)
    second = sum(w * (torch.diag(torch.full((2,), s**2, dtype=torch.float64)) + torch.outer(m, m))
                 for w, m, s in zip(WEIGHTS, MEANS, SCALES))
    return mean, second - torch.outer(mean, mean)


def mixture_sample(name: str, steps: int, churn: float, sample=reference_sample) -> torch.Tensor:
    schedule = sampler_schedule(EDMConfig(num_steps=steps, S_churn=churn), sampler=name)
    return sample(mixture_denoiser, (20_000, 2), schedule, generator=torch.Generator().manual_seed(4),
                  dtype=torch.float64)


def moments_match(x: torch.Tensor) -> bool:
    mean, cov = mixture_moments()
    # 20k rows: the sampling error of a covariance entry (about 2.7 at most) is about 0.03
    return bool(torch.allclose(x.mean(0), mean, atol=0.05) and torch.allclose(torch.cov(x.T), cov, atol=0.07))


# Churned Euler needs many steps (its churn adds noise that a first-order step removes only roughly).
@pytest.mark.parametrize(("name", "steps", "churn"), [
    ("heun", 64, 80.0), ("heun", 32, 0.0), ("euler", 512, 80.0), ("euler", 128, 0.0), ("dpmpp_2m", 32, 0.0),
    ("dpmpp_2m_sde", 64, 0.0),
])
def test_samples_of_a_gaussian_mixture_have_its_mean_and_covariance(name: str, steps: int, churn: float) -> None:
    assert moments_match(mixture_sample(name, steps, churn))


def test_the_moment_check_catches_an_off_by_one_sampler() -> None:
    assert not moments_match(mixture_sample("dpmpp_2m", 32, 0.0, shifted_evaluation_dpmpp))


def test_schedules_name_their_evaluations() -> None:
    config = EDMConfig(num_steps=10)
    assert sampler_schedule(config).nfe == 19  # Heun: 2N - 1
    assert sampler_schedule(config, sampler="euler").nfe == 10
    dpm = sampler_schedule(config, sampler="dpmpp_2m")
    assert dpm.nfe == 10 and not dpm.stochastic and set(dpm.churn_std) == {0.0}  # no churn
    assert max(sampler_schedule(config, sampler="euler").churn_std) > 0  # euler keeps the churn
    sde = sampler_schedule(config, sampler="dpmpp_2m_sde")  # its own step noise, no churn
    assert sde.nfe == 10 and sde.stochastic and set(sde.churn_std) == {0.0}
    with pytest.raises(ValueError, match="unknown sampler 'ddim'"):
        sampler_schedule(config, sampler="ddim")
    with pytest.raises(ValueError, match="a 'euler' schedule was given to the heun sampler"):
        from synther_fast.diffusion.edm import heun_sample

        heun_sample(gaussian_denoiser, (2, 3), sampler_schedule(config, sampler="euler"))
