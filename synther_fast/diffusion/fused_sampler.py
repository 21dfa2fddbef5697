"""The samplers driven by the fused step kernels, optionally captured as one CUDA graph per batch
shape (every step, every network evaluation and the noise, no host sync).

Same maths and the same noise order as the reference samplers in synther_fast.diffusion.edm
(initial noise, then one churn draw per step for heun and euler, one step-noise draw per step for
dpmpp_2m_sde; the initial noise only for dpmpp_2m), so for the same noise both return the same rows up to fp32 rounding. The Triton code
lives in synther_fast.kernels; this module only sequences launches and computes each step's
coefficients on the host.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from synther_fast.common.cuda_graphs import CapturedStep, will_capture
from synther_fast.diffusion.edm import SamplerSchedule


class LinearStep(NamedTuple):
    """One step of a one-evaluation sampler: x' = a x + b (c1 D + c2 D_prev) + noise_std eps_k,
    with eps_k the k-th noise draw (k None: no noise)."""

    a: float
    b: float
    c1: float
    c2: float
    noise_std: float
    noise_index: int | None


def linear_coefficients(schedule: SamplerSchedule) -> list[LinearStep]:
    """The steps of euler, dpmpp_2m or dpmpp_2m_sde as :class:`LinearStep` constants.

    Written from sigma ratios, not the reference's log-sigma form, so the two check each other.
    With q = t'/t_hat: Euler and DPM-Solver++(2M) take a = q, b = 1 - a; the SDE form (eta 1)
    a = q^2, b = 1 - q^2 and noise t' sqrt(1 - q^2). Both multistep forms blend with r = h_prev / h,
    c1 = 1 + 1/(2r), c2 = -1/(2r), except on the first step and on the step to sigma = 0. Euler's
    noise is the next step's churn (draw i + 2; draw 1 churns before the first step); the SDE's
    noise is its own step's (draw i + 1).
    """
    sigma, name, out = schedule.sigma, schedule.sampler, []
    for i in range(schedule.num_steps):
        t_hat, t_next = schedule.sigma_hat[i], sigma[i + 1]
        q = t_next / t_hat
        a = q * q if name == "dpmpp_2m_sde" else q
        c1, c2 = 1.0, 0.0
        if name.startswith("dpmpp") and 0 < i and t_next > 0:
            r = math.log(sigma[i - 1] / sigma[i]) / math.log(sigma[i] / t_next)
            c1, c2 = 1 + 0.5 / r, -0.5 / r
        noise_std, index = 0.0, None
        last = i + 1 == schedule.num_steps
        if name == "euler" and not last:
            noise_std, index = schedule.churn_std[i + 1], i + 2
        elif name == "dpmpp_2m_sde" and t_next > 0:
            noise_std, index = t_next * math.sqrt(1 - q * q), i + 1
        out.append(LinearStep(a, 1.0 - a, c1, c2, noise_std, index))
    return out


def _pre(sigma: float, sigma_data: float) -> tuple[float, float, float, float]:
    s2, d2 = sigma * sigma, sigma_data * sigma_data
    return d2 / (s2 + d2), sigma * sigma_data / math.sqrt(s2 + d2), 1 / math.sqrt(s2 + d2), math.log(sigma) / 4


class FusedSampler:
    """Samples ``rows`` x ``width`` with ``network(net_in, c_noise)`` and the schedule's sampler;
    reuse it for many batches.

    ``noise``: 'device' draws on the device inside the loop (the graph replays fresh draws);
    'input' reads ``self.noise`` (num_steps + 1, rows, width), which the caller fills first.
    """

    def __init__(self, network, schedule: SamplerSchedule, sigma_data: float, rows: int, width: int,
                 device: torch.device, clamp: bool = False, noise: str = "device", graph: bool | None = None,
                 generator: torch.Generator | None = None, guidance: float | None = None,
                 both_evaluations: bool = True) -> None:
        """``guidance`` w (a conditional network): classifier-free guidance with the rows'
        normalised conditions in ``self.cond`` (the caller fills it before each call); each guided
        evaluation runs the network once on 2B rows, conditional then unconditional.
        ``both_evaluations`` False guides the first evaluation of each Heun step only (PGR); the
        one-evaluation samplers guide every evaluation."""
        from synther_fast.kernels import edm_step

        self.k = edm_step
        self.network, self.schedule, self.sigma_data, self.clamp = network, schedule, sigma_data, clamp
        self.shape, self.device = (rows, width), torch.device(device)
        self.generator = generator
        if noise not in ("device", "input"):
            raise ValueError(f"noise must be 'device' or 'input', got {noise!r}")
        self.noise_mode = noise
        n = schedule.num_steps
        self.noise = torch.empty((n + 1, rows, width), device=self.device) if noise == "input" else None
        if graph and self.device.type != "cuda":
            raise ValueError("a captured sampler needs a CUDA device")
        # graph=None: captured on CUDA unless SYNTHER_FAST_CUDA_GRAPHS=0
        self.graph_enabled = will_capture(self.device, True if graph is None else graph)
        if self.graph_enabled and generator is not None:
            raise ValueError("a captured sampler draws from the default CUDA generator; seed it with "
                             "torch.cuda.manual_seed instead of passing a generator")
        self._captured: CapturedStep | None = None
        # Static per-step values, built once on the host.
        # One c_noise per step, shape (1,): every row shares sigma, so the time-embedding MLP runs
        # on one row and broadcasts, instead of on all `rows` identical rows at every evaluation.
        self.c_noise_hat = [torch.full((1,), _pre(t, sigma_data)[3], device=self.device)
                            for t in schedule.sigma_hat]
        self.c_noise_next = [torch.full((1,), _pre(t, sigma_data)[3], device=self.device) if t > 0 else None
                             for t in schedule.sigma[1:]]
        self.guidance, self.both_evaluations = guidance, both_evaluations
        if guidance is not None and not getattr(network, "conditional", False):
            raise ValueError("guidance needs a conditional network")
        self.cond = torch.zeros(rows, device=self.device) if guidance is not None else None
        self.buffers = [torch.empty(self.shape, device=self.device) for _ in range(4)]
        # The network input: 2B rows (conditional, then unconditional) when guided.
        self.net_in = torch.empty((rows * (2 if guidance is not None else 1), width), device=self.device)
        self.out = torch.empty(self.shape, device=self.device)
        self.coefficients = linear_coefficients(schedule) if schedule.sampler != "heun" else None

    def _eps(self, k: int) -> torch.Tensor:
        if self.noise is not None:
            return self.noise[k]
        return torch.randn(self.shape, device=self.device, generator=self.generator)

    def _evaluations(self):
        """(first, second): the network calls of a step, on the network input buffer."""
        net_in, rows = self.net_in, self.shape[0]
        if self.guidance is None:
            plain = lambda c: self.network(net_in, c)
            return plain, plain
        # The conditions' embeddings, once per batch: B conditional rows, B null rows.
        cond_emb = self.network.condition_embedding(self.cond)
        emb = torch.cat([cond_emb, self.network.condition_embedding(None, rows=rows)])
        both = lambda c: self.network(net_in, c, embedding=emb)
        return both, both if self.both_evaluations else (lambda c: self.network(net_in[:rows], c, embedding=cond_emb))

    @torch.inference_mode()
    def _loop(self) -> torch.Tensor:
        if self.coefficients is not None:
            return self._linear_loop()
        k, sched, sd = self.k, self.schedule, self.sigma_data
        x_hat, x_next, d_cur, spare = self.buffers
        net_in, rows = self.net_in, self.shape[0]
        w = self.guidance
        guided = w is not None
        both = guided and self.both_evaluations
        first, second = self._evaluations()
        x0 = self._eps(0) * sched.sigma[0]
        k.churn(x0, self._eps(1), sched.churn_std[0], _pre(sched.sigma_hat[0], sd)[2], out=(x_hat, net_in),
                duplicate=guided)
        for i in range(sched.num_steps):
            t_hat, t_next = sched.sigma_hat[i], sched.sigma[i + 1]
            c_skip, c_out, _, _ = _pre(t_hat, sd)
            f = first(self.c_noise_hat[i])
            if not sched.second_order[i]:  # last step: t_next = 0, Euler only (x_next = D)
                k.euler_step(x_hat, f, c_skip, c_out, t_hat, t_next, 0.0, self.clamp, out=(self.out, d_cur, spare),
                             guidance=w)
                break
            c_in_next = _pre(t_next, sd)[2]
            k.euler_step(x_hat, f, c_skip, c_out, t_hat, t_next, c_in_next, self.clamp,
                         out=(x_next, d_cur, net_in if both or not guided else net_in[:rows]),
                         guidance=w, duplicate=both)
            f2 = second(self.c_noise_next[i])
            c_skip2, c_out2, _, _ = _pre(t_next, sd)
            if i + 1 < sched.num_steps:
                churn_std, c_in_hat = sched.churn_std[i + 1], _pre(sched.sigma_hat[i + 1], sd)[2]
                eps = self._eps(i + 2)
            else:  # not reached with t_N = 0, kept for schedules that end above zero
                churn_std, c_in_hat, eps = 0.0, 1.0, torch.zeros_like(x_hat)
            k.heun_churn_step(x_hat, x_next, d_cur, f2, eps, c_skip2, c_out2, t_hat, t_next, churn_std, c_in_hat,
                              self.clamp, out=(x_hat, net_in), guidance=w if both else None, duplicate=guided)
        else:
            self.out.copy_(x_hat)
        if self.clamp:
            self.out.clamp_(-1.0, 1.0)
        return self.out

    def _linear_loop(self) -> torch.Tensor:
        """Euler or DPM-Solver++(2M) (or its SDE form): one evaluation and one :func:`linear_step`
        launch per step."""
        k, sched, sd, guided = self.k, self.schedule, self.sigma_data, self.guidance is not None
        x, previous = self.buffers[0], self.buffers[1]
        multistep = sched.sampler.startswith("dpmpp")
        if multistep:
            previous.zero_()  # read with weight 0 on the first step: it must not hold NaN
        evaluate = self._evaluations()[0]
        x0 = self._eps(0) * sched.sigma[0]
        euler = sched.sampler == "euler"  # churns before its first step (draw 1)
        k.churn(x0, self._eps(1) if euler else x0, sched.churn_std[0], _pre(sched.sigma_hat[0], sd)[2],
                out=(x, self.net_in), duplicate=guided)
        for i, step in enumerate(self.coefficients):
            c_skip, c_out, _, _ = _pre(sched.sigma_hat[i], sd)
            f = evaluate(self.c_noise_hat[i])
            last = i + 1 == sched.num_steps
            eps = self._eps(step.noise_index) if step.noise_index is not None else None
            if sched.sampler == "dpmpp_2m_sde" and eps is None:
                self._eps(i + 1)  # the reference draws at the last step too (unused): same draw order
            c_in_next = 1.0 if last else _pre(sched.sigma_hat[i + 1], sd)[2]
            k.linear_step(x, f, previous if multistep else None, eps, c_skip, c_out, step.a, step.b, step.c1,
                          step.c2, step.noise_std, c_in_next, self.clamp, out=(self.out if last else x, self.net_in),
                          guidance=self.guidance, duplicate=guided)
        if self.clamp:
            self.out.clamp_(-1.0, 1.0)
        return self.out

    def sample(self) -> torch.Tensor:
        """One batch (the same output tensor every call: copy it before the next call)."""
        if not self.graph_enabled:
            return self._loop()
        if self._captured is None:
            # One warm-up call (Triton compilation and autotuning happen outside capture); the
            # helper gives its RNG draws back, so the first replay draws what later ones would.
            self._captured = CapturedStep(self._loop, self.device, capture=True, warmup=1)
        self._captured()
        return self.out

    def release(self) -> None:
        """Free the captured graph and its memory pool."""
        if self._captured is not None:
            self._captured.release()
        self._captured = None
