"""EDM maths (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models"): preconditioning, training loss, sigma schedule and the stochastic Heun sampler
(Algorithm 2), as SynthER uses them. Plain PyTorch: the reference every fused kernel matches."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from synther_fast.config import EDMConfig

Denoise = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""D(x, sigma): the denoised estimate of x at noise level sigma (sigma broadcast per row)."""


def preconditioning(sigma: torch.Tensor, sigma_data: float):
    """(c_skip, c_out, c_in, c_noise) of EDM Table 1 for noise levels sigma."""
    s2, d2 = sigma**2, sigma_data**2
    c_skip = d2 / (s2 + d2)
    c_out = sigma * sigma_data / (s2 + d2).sqrt()
    c_in = 1 / (s2 + d2).sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def denoise(network: torch.nn.Module, x: torch.Tensor, sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """D(x, sigma) = c_skip x + c_out F(c_in x, c_noise), sigma of shape (B,) or scalar."""
    sigma = sigma.to(x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
    c_skip, c_out, c_in, c_noise = preconditioning(sigma, sigma_data)
    return c_skip * x + c_out * network(c_in * x, c_noise.reshape(-1))


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def training_sigmas(n: int, config: EDMConfig, generator: torch.Generator | None, device) -> torch.Tensor:
    """log sigma ~ N(P_mean, P_std^2)."""
    normal = torch.randn(n, generator=generator, device=device)
    return (config.P_mean + config.P_std * normal).exp()


def edm_loss(network: torch.nn.Module, x: torch.Tensor, config: EDMConfig,
             generator: torch.Generator | None = None, rows: slice | None = None) -> torch.Tensor:
    """Mean over rows and columns of lambda(sigma) |D(x + sigma n, sigma) - x|^2.

    ``rows``: compute the loss on these rows of the batch only, after drawing sigma and the noise
    for all of it (data-parallel ranks each take their slice of one global draw, so together they
    see exactly the batch a single process would).
    """
    sigma = training_sigmas(x.shape[0], config, generator, x.device)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if rows is not None:
        x, sigma, noise = x[rows], sigma[rows], noise[rows]
    noised = x + sigma.reshape(-1, 1) * noise
    denoised = denoise(network, noised, sigma, config.sigma_data)
    return (loss_weight(sigma, config.sigma_data).reshape(-1, 1) * (denoised - x) ** 2).mean()


@dataclass(frozen=True)
class HeunSchedule:
    """Per-step constants of Algorithm 2, built once on the host.

    sigma[i] is t_i (t_N = 0); sigma_hat[i] = t_i (1 + gamma_i); churn_std[i] =
    sqrt(sigma_hat^2 - t_i^2) S_noise; second_order[i] is False only where t_{i+1} = 0.
    """

    sigma: tuple[float, ...]
    gamma: tuple[float, ...]
    sigma_hat: tuple[float, ...]
    churn_std: tuple[float, ...]
    second_order: tuple[bool, ...]

    @property
    def num_steps(self) -> int:
        return len(self.gamma)


def sigma_steps(config: EDMConfig, num_steps: int | None = None) -> list[float]:
    """t_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho, i < N, and t_N = 0."""
    n = config.num_steps if num_steps is None else num_steps
    if n < 1:
        raise ValueError(f"the sampler needs at least one step, got {n}")
    inv = 1.0 / config.rho
    hi, lo = config.sigma_max**inv, config.sigma_min**inv
    steps = [(hi + (i / (n - 1) if n > 1 else 0.0) * (lo - hi)) ** config.rho for i in range(n)]
    return steps + [0.0]


def heun_schedule(config: EDMConfig, num_steps: int | None = None) -> HeunSchedule:
    sigma = sigma_steps(config, num_steps)
    n = len(sigma) - 1
    gamma_max = min(config.S_churn / n, math.sqrt(2) - 1)
    gamma = [gamma_max if config.S_tmin <= t <= config.S_tmax else 0.0 for t in sigma[:-1]]
    sigma_hat = [t * (1 + g) for t, g in zip(sigma[:-1], gamma)]
    churn_std = [math.sqrt(max(h * h - t * t, 0.0)) * config.S_noise for h, t in zip(sigma_hat, sigma[:-1])]
    second = [sigma[i + 1] != 0.0 for i in range(n)]
    return HeunSchedule(tuple(sigma), tuple(gamma), tuple(sigma_hat), tuple(churn_std), tuple(second))


def heun_sample(
    denoiser: Denoise, shape: tuple[int, int], schedule: HeunSchedule, *,
    generator: torch.Generator | None = None, device=None, dtype=torch.float32,
    noise: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """EDM Algorithm 2 (stochastic Heun). ``noise``: optional list of num_steps + 1 tensors of
    ``shape`` (the initial sample's noise, then each step's churn noise) to make runs comparable."""

    def draw(k: int) -> torch.Tensor:
        if noise is not None:
            return noise[k].to(device=device, dtype=dtype)
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)

    x = draw(0) * schedule.sigma[0]
    for i in range(schedule.num_steps):
        t_hat, t_next = schedule.sigma_hat[i], schedule.sigma[i + 1]
        eps = draw(i + 1)  # drawn at every step so that call orders line up across backends
        x_hat = x + schedule.churn_std[i] * eps if schedule.churn_std[i] > 0 else x
        d_cur = (x_hat - denoiser(x_hat, _full(t_hat, x))) / t_hat
        x = x_hat + (t_next - t_hat) * d_cur
        if schedule.second_order[i]:
            d_next = (x - denoiser(x, _full(t_next, x))) / t_next
            x = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_next)
    return x


def _full(value: float, like: torch.Tensor) -> torch.Tensor:
    return torch.full((like.shape[0],), value, device=like.device, dtype=like.dtype)
