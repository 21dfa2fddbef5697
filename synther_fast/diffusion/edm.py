"""EDM maths (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative
Models"): preconditioning, training loss, the sigma schedule, and the samplers: the stochastic
Heun sampler (Algorithm 2, SynthER's), Euler, and DPM-Solver++(2M) with its SDE form (Lu et al.
2022). Plain
PyTorch: the reference every fused kernel matches."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from synther_fast.config import SAMPLERS, EDMConfig

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


def denoise(network: torch.nn.Module, x: torch.Tensor, sigma: torch.Tensor, sigma_data: float,
            **condition: torch.Tensor | None) -> torch.Tensor:
    """D(x, sigma) = c_skip x + c_out F(c_in x, c_noise), sigma of shape (B,) or scalar.
    ``condition``: a conditional network's keywords (cond, keep or embedding)."""
    sigma = sigma.to(x.dtype).reshape(-1, 1).expand(x.shape[0], 1)
    c_skip, c_out, c_in, c_noise = preconditioning(sigma, sigma_data)
    return c_skip * x + c_out * network(c_in * x, c_noise.reshape(-1), **condition)


def guided(d_cond: torch.Tensor, d_uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: D = D_uncond + w (D_cond - D_uncond)."""
    return d_uncond + scale * (d_cond - d_uncond)


def guided_denoisers(network: torch.nn.Module, cond: torch.Tensor, scale: float, sigma_data: float,
                     both_evaluations: bool = True, clamp: bool = False) -> tuple[Denoise, Denoise]:
    """The reference sampler's D for classifier-free guidance toward (normalised) conditions
    ``cond`` (B,) of a conditional network: each guided D evaluates the network once on 2B rows
    (B conditional, B with the null embedding) and returns D_uncond + w (D_cond - D_uncond),
    clamped after guiding when ``clamp``. Returns (first, second): the D of each Heun step's two
    evaluations (second is the conditional D alone unless ``both_evaluations``)."""
    rows = cond.shape[0]
    cond_emb = network.condition_embedding(cond)
    emb = torch.cat([cond_emb, network.condition_embedding(None, rows=rows)])

    def first(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        d = denoise(network, torch.cat([x, x]), torch.cat([sigma, sigma]), sigma_data, embedding=emb)
        out = guided(d[:rows], d[rows:], scale)
        return out.clamp(-1.0, 1.0) if clamp else out

    def conditional(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        out = denoise(network, x, sigma, sigma_data, embedding=cond_emb)
        return out.clamp(-1.0, 1.0) if clamp else out

    return first, first if both_evaluations else conditional


def loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def training_sigmas(n: int, config: EDMConfig, generator: torch.Generator | None, device) -> torch.Tensor:
    """log sigma ~ N(P_mean, P_std^2)."""
    normal = torch.randn(n, generator=generator, device=device)
    return (config.P_mean + config.P_std * normal).exp()


def edm_loss(network: torch.nn.Module, x: torch.Tensor, config: EDMConfig,
             generator: torch.Generator | None = None, rows: slice | None = None,
             cond: torch.Tensor | None = None, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over rows and columns of lambda(sigma) |D(x + sigma n, sigma[, c]) - x|^2.

    ``rows``: compute the loss on these rows of the batch only, after drawing sigma and the noise
    for all of it (data-parallel ranks each take their slice of one global draw, so together they
    see exactly the batch a single process would). ``cond`` / ``keep``: a conditional network's
    conditions of the rows and which of them are kept (the rest get the null embedding).
    """
    sigma = training_sigmas(x.shape[0], config, generator, x.device)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    if rows is not None:
        x, sigma, noise = x[rows], sigma[rows], noise[rows]
        cond = cond[rows] if cond is not None else None
        keep = keep[rows] if keep is not None else None
    noised = x + sigma.reshape(-1, 1) * noise
    condition = {} if cond is None else {"cond": cond, "keep": keep}
    denoised = denoise(network, noised, sigma, config.sigma_data, **condition)
    return (loss_weight(sigma, config.sigma_data).reshape(-1, 1) * (denoised - x) ** 2).mean()


@dataclass(frozen=True)
class SamplerSchedule:
    """Per-step constants of one sampler on the Karras schedule, built once on the host.

    sigma[i] is t_i (t_N = 0); sigma_hat[i] = t_i (1 + gamma_i) is where step i evaluates D;
    churn_std[i] = sqrt(sigma_hat^2 - t_i^2) S_noise; second_order[i] says whether step i makes a
    second (correction) evaluation: Heun's, except where t_{i+1} = 0.
    """

    sampler: str
    sigma: tuple[float, ...]
    gamma: tuple[float, ...]
    sigma_hat: tuple[float, ...]
    churn_std: tuple[float, ...]
    second_order: tuple[bool, ...]

    @property
    def num_steps(self) -> int:
        return len(self.gamma)

    @property
    def nfe(self) -> int:
        """Network evaluations per row (each guided evaluation is one, on twice the rows)."""
        return self.num_steps + sum(self.second_order)

    @property
    def stochastic(self) -> bool:
        """Whether the sampler draws noise at every step (heun and euler draw their churn noise even
        at churn 0, so that the draw order is the same at every S_churn; dpmpp_2m_sde its step
        noise); dpmpp_2m draws the initial noise only."""
        return self.sampler != "dpmpp_2m"


def sigma_steps(config: EDMConfig, num_steps: int | None = None) -> list[float]:
    """t_i = (s_max^(1/rho) + i/(N-1) (s_min^(1/rho) - s_max^(1/rho)))^rho, i < N, and t_N = 0."""
    n = config.num_steps if num_steps is None else num_steps
    if n < 1:
        raise ValueError(f"the sampler needs at least one step, got {n}")
    inv = 1.0 / config.rho
    hi, lo = config.sigma_max**inv, config.sigma_min**inv
    steps = [(hi + (i / (n - 1) if n > 1 else 0.0) * (lo - hi)) ** config.rho for i in range(n)]
    return steps + [0.0]


def sampler_schedule(config: EDMConfig, num_steps: int | None = None, sampler: str | None = None) -> SamplerSchedule:
    """The schedule of ``sampler`` (default: config.sampler) with ``num_steps`` (default:
    config.num_steps) steps. Churn (S_churn, S_tmin, S_tmax, S_noise) applies to heun and euler."""
    name = config.sampler if sampler is None else sampler
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}: choose one of {', '.join(SAMPLERS)}")
    sigma = sigma_steps(config, num_steps)
    n = len(sigma) - 1
    gamma_max = min(config.S_churn / n, math.sqrt(2) - 1)
    churns = name in ("heun", "euler")  # the DPM-Solver++ forms evaluate at t_i itself
    gamma = [gamma_max if churns and config.S_tmin <= t <= config.S_tmax else 0.0 for t in sigma[:-1]]
    sigma_hat = [t * (1 + g) for t, g in zip(sigma[:-1], gamma)]
    churn_std = [math.sqrt(max(h * h - t * t, 0.0)) * config.S_noise for h, t in zip(sigma_hat, sigma[:-1])]
    second = [name == "heun" and sigma[i + 1] != 0.0 for i in range(n)]
    return SamplerSchedule(name, tuple(sigma), tuple(gamma), tuple(sigma_hat), tuple(churn_std), tuple(second))


def sampler_record(config: EDMConfig) -> dict[str, object]:
    """What generated files and run summaries record of a sampler: its name, steps and NFE."""
    schedule = sampler_schedule(config)
    return {"sampler": schedule.sampler, "num_steps": schedule.num_steps, "nfe": schedule.nfe}


def _noise_source(noise, generator, shape, device, dtype) -> Callable[[int], torch.Tensor]:
    def draw(k: int) -> torch.Tensor:
        if noise is not None:
            return noise[k].to(device=device, dtype=dtype)
        return torch.randn(shape, generator=generator, device=device, dtype=dtype)
    return draw


def _require(schedule: SamplerSchedule, name: str) -> None:
    if schedule.sampler != name:
        raise ValueError(f"a {schedule.sampler!r} schedule was given to the {name} sampler")


def heun_sample(
    denoiser: Denoise, shape: tuple[int, int], schedule: SamplerSchedule, *,
    generator: torch.Generator | None = None, device=None, dtype=torch.float32,
    noise: list[torch.Tensor] | None = None, second_denoiser: Denoise | None = None,
) -> torch.Tensor:
    """EDM Algorithm 2 (stochastic Heun). ``noise``: optional list of num_steps + 1 tensors of
    ``shape`` (the initial sample's noise, then each step's churn noise) to make runs comparable.
    ``second_denoiser``: D for each step's second (correction) evaluation, if not ``denoiser``
    (guidance at the first evaluation only)."""
    _require(schedule, "heun")
    second = denoiser if second_denoiser is None else second_denoiser
    draw = _noise_source(noise, generator, shape, device, dtype)
    x = draw(0) * schedule.sigma[0]
    for i in range(schedule.num_steps):
        t_hat, t_next = schedule.sigma_hat[i], schedule.sigma[i + 1]
        eps = draw(i + 1)  # drawn at every step so that call orders line up across backends
        x_hat = x + schedule.churn_std[i] * eps if schedule.churn_std[i] > 0 else x
        d_cur = (x_hat - denoiser(x_hat, _full(t_hat, x))) / t_hat
        x = x_hat + (t_next - t_hat) * d_cur
        if schedule.second_order[i]:
            d_next = (x - second(x, _full(t_next, x))) / t_next
            x = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_next)
    return x


def euler_sample(
    denoiser: Denoise, shape: tuple[int, int], schedule: SamplerSchedule, *,
    generator: torch.Generator | None = None, device=None, dtype=torch.float32,
    noise: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Euler steps on the probability-flow ODE dx/dt = (x - D(x, t)) / t, with the same churn and
    the same noise order as :func:`heun_sample` (its first evaluation of each step, alone)."""
    _require(schedule, "euler")
    draw = _noise_source(noise, generator, shape, device, dtype)
    x = draw(0) * schedule.sigma[0]
    for i in range(schedule.num_steps):
        t_hat, t_next = schedule.sigma_hat[i], schedule.sigma[i + 1]
        eps = draw(i + 1)
        x_hat = x + schedule.churn_std[i] * eps if schedule.churn_std[i] > 0 else x
        x = x_hat + (t_next - t_hat) * (x_hat - denoiser(x_hat, _full(t_hat, x))) / t_hat
    return x


def dpmpp_2m_sample(
    denoiser: Denoise, shape: tuple[int, int], schedule: SamplerSchedule, *,
    generator: torch.Generator | None = None, device=None, dtype=torch.float32,
    noise: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022, the multistep second-order solver in data prediction), in
    lambda = -log sigma: with h the step in lambda and r = h_previous / h,
    x' = (sigma'/sigma) x - expm1(-h) D_2, where D_2 = (1 + 1/(2r)) D - 1/(2r) D_previous, and
    D_2 = D on the first step and on the last step to sigma = 0 (which returns D itself).
    One evaluation per step; only the initial noise is drawn."""
    _require(schedule, "dpmpp_2m")
    x = _noise_source(noise, generator, shape, device, dtype)(0) * schedule.sigma[0]
    previous = None
    sigma = schedule.sigma
    for i in range(schedule.num_steps):
        s, s_next = sigma[i], sigma[i + 1]
        denoised = denoiser(x, _full(s, x))
        if s_next == 0.0:
            x = denoised
            break
        h = math.log(s) - math.log(s_next)
        if previous is None:
            blended = denoised
        else:
            r = (math.log(sigma[i - 1]) - math.log(s)) / h
            blended = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
        x = (s_next / s) * x - math.expm1(-h) * blended
        previous = denoised
    return x


def dpmpp_2m_sde_sample(
    denoiser: Denoise, shape: tuple[int, int], schedule: SamplerSchedule, *,
    generator: torch.Generator | None = None, device=None, dtype=torch.float32,
    noise: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """DPM-Solver++(2M) SDE (Lu et al. 2022, the stochastic multistep solver), eta 1, with the
    midpoint correction: with h the step in lambda = -log sigma and r = h_previous / h,
    x' = (sigma'/sigma) e^(-h) x - expm1(-2h) D + (1/2)(-expm1(-2h))(1/r)(D - D_previous)
    + sigma' sqrt(-expm1(-2h)) eps; the last step to sigma = 0 returns D. One evaluation and one
    noise draw per step (drawn at the last step too, unused, so the draw order is fixed)."""
    _require(schedule, "dpmpp_2m_sde")
    draw = _noise_source(noise, generator, shape, device, dtype)
    x = draw(0) * schedule.sigma[0]
    sigma, previous, h_previous = schedule.sigma, None, None
    for i in range(schedule.num_steps):
        s, s_next = sigma[i], sigma[i + 1]
        denoised = denoiser(x, _full(s, x))
        eps = draw(i + 1)
        if s_next == 0.0:
            x = denoised
            break
        h = math.log(s) - math.log(s_next)
        decay = -math.expm1(-2 * h)  # 1 - e^(-2h)
        x = (s_next / s) * math.exp(-h) * x + decay * denoised
        if previous is not None:
            x = x + 0.5 * decay * (h / h_previous) * (denoised - previous)
        x = x + s_next * math.sqrt(decay) * eps
        previous, h_previous = denoised, h
    return x


def reference_sample(
    denoiser: Denoise, shape: tuple[int, int], schedule: SamplerSchedule, *,
    generator: torch.Generator | None = None, device=None, dtype=torch.float32,
    noise: list[torch.Tensor] | None = None, second_denoiser: Denoise | None = None,
) -> torch.Tensor:
    """The plain-PyTorch sampler the schedule names (the reference every fused path matches);
    ``second_denoiser`` is Heun's correction D (the one-evaluation samplers use ``denoiser`` only)."""
    common = {"generator": generator, "device": device, "dtype": dtype, "noise": noise}
    if schedule.sampler == "heun":
        return heun_sample(denoiser, shape, schedule, second_denoiser=second_denoiser, **common)
    if schedule.sampler == "euler":
        return euler_sample(denoiser, shape, schedule, **common)
    if schedule.sampler == "dpmpp_2m_sde":
        return dpmpp_2m_sde_sample(denoiser, shape, schedule, **common)
    return dpmpp_2m_sample(denoiser, shape, schedule, **common)


def _full(value: float, like: torch.Tensor) -> torch.Tensor:
    return torch.full((like.shape[0],), value, device=like.device, dtype=like.dtype)
