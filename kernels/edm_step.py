"""Fused elementwise work of one sampler step between the network calls: the stochastic Heun step
(EDM Algorithm 2) and the one-evaluation steps of Euler and DPM-Solver++(2M) (and its SDE form).

With F the raw network output and (c_skip, c_out) the preconditioning at the evaluated sigma,
D = c_skip x + c_out F (clamped to [-1, 1] for the min-max normaliser).

- :func:`churn`: x_hat = x + churn_std eps, and the network input c_in(t_hat) x_hat.
- :func:`euler_step` (after the first evaluation): d_cur = (x_hat - D) / t_hat,
  x_next = x_hat + (t_next - t_hat) d_cur, and the network input c_in(t_next) x_next.
- :func:`heun_churn_step` (after the second evaluation): d_next = (x_next - D) / t_next,
  x = x_hat + (t_next - t_hat) (d_cur + d_next) / 2, then the *next* step's churn
  x_hat' = x + churn_std' eps' and its network input c_in(t_hat') x_hat'.

The one-evaluation samplers (euler, dpmpp_2m) take one launch per step:

- :func:`linear_step`: D as above, D_2 = c1 D + c2 D_prev (DPM-Solver++(2M)'s blend of this and
  the previous step's denoised rows, kept in one extra buffer; c1 = 1, c2 = 0 for Euler),
  x' = a x + b D_2 + noise_std eps (Euler: the next step's churn; the SDE form: its step noise)
  and its network input c_in x'. Euler's step x + (t' - t)(x - D)/t is a = t'/t, b = 1 - a;
  DPM-Solver++'s (sigma'/sigma) x - expm1(-h) D_2 is the same a and b; its SDE form (eta 1) has
  a = (t'/t)^2, b = 1 - a and noise t' sqrt(b) (synther_fast.diffusion.fused_sampler computes them).

References: :func:`churn_reference`, :func:`euler_step_reference`, :func:`heun_churn_step_reference`,
:func:`linear_step_reference`.
Noise is an input, so a test feeds the reference the same noise. All arithmetic is fp32.

Classifier-free guidance: the network runs once on 2B rows, the B conditional rows first and
the B unconditional ones after them. ``guidance=w`` makes a step read that (2B, W) output as
F = F_uncond + w (F_cond - F_uncond) (the same as guiding D: c_skip x is common to both);
``duplicate=True`` writes the next network input twice, for the next 2B-row evaluation.
"""

from __future__ import annotations

import torch
from synther_fast.kernels._triton import check_device, tl, triton

BLOCK = 1024


def _denoised(x, f, c_skip, c_out, clamp):
    out = c_skip * x + c_out * f
    return out.clamp(-1.0, 1.0) if clamp else out


def _guided_reference(f, guidance):
    if guidance is None:
        return f
    half = f.shape[0] // 2
    return f[half:] + guidance * (f[:half] - f[half:])


def _twice(net_in, duplicate):
    return torch.cat([net_in, net_in]) if duplicate else net_in


def churn_reference(x, eps, churn_std: float, c_in: float, duplicate: bool = False):
    x_hat = x + churn_std * eps
    return x_hat, _twice(c_in * x_hat, duplicate)


def euler_step_reference(x_hat, f, c_skip: float, c_out: float, t_hat: float, t_next: float,
                         c_in_next: float, clamp: bool = False, guidance: float | None = None,
                         duplicate: bool = False):
    d_cur = (x_hat - _denoised(x_hat, _guided_reference(f, guidance), c_skip, c_out, clamp)) / t_hat
    x_next = x_hat + (t_next - t_hat) * d_cur
    return x_next, d_cur, _twice(c_in_next * x_next, duplicate)


def heun_churn_step_reference(x_hat, x_next, d_cur, f, eps, c_skip: float, c_out: float, t_hat: float,
                              t_next: float, churn_std: float, c_in_hat: float, clamp: bool = False,
                              guidance: float | None = None, duplicate: bool = False):
    d_next = (x_next - _denoised(x_next, _guided_reference(f, guidance), c_skip, c_out, clamp)) / t_next
    x = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_next)
    x_hat_new = x + churn_std * eps
    return x_hat_new, _twice(c_in_hat * x_hat_new, duplicate)


def linear_step_reference(x, f, previous, eps, c_skip: float, c_out: float, a: float, b: float, c1: float,
                          c2: float, churn_std: float, c_in_next: float, clamp: bool = False,
                          guidance: float | None = None, duplicate: bool = False):
    """Returns (x', its network input, D): x' = a x + b (c1 D + c2 previous) + churn_std eps."""
    denoised = _denoised(x, _guided_reference(f, guidance), c_skip, c_out, clamp)
    blended = c1 * denoised + (c2 * previous if previous is not None else 0.0)
    x_new = a * x + b * blended
    if eps is not None:
        x_new = x_new + churn_std * eps
    return x_new, _twice(c_in_next * x_new, duplicate), denoised


@triton.jit
def _denoised_tile(x, f, c_skip, c_out, CLAMP: tl.constexpr):
    denoised = c_skip * x + c_out * f
    if CLAMP:
        denoised = tl.minimum(tl.maximum(denoised, -1.0), 1.0)
    return denoised


@triton.jit
def _network_output(f_ptr, offs, mask, n, w, GUIDED: tl.constexpr):
    f = tl.load(f_ptr + offs, mask=mask)  # the conditional half when guided
    if GUIDED:
        f_uncond = tl.load(f_ptr + n + offs, mask=mask)
        f = f_uncond + w * (f - f_uncond)
    return f


@triton.jit
def _store_input(net_in_ptr, offs, value, mask, n, DUPLICATE: tl.constexpr):
    tl.store(net_in_ptr + offs, value, mask=mask)
    if DUPLICATE:
        tl.store(net_in_ptr + n + offs, value, mask=mask)


@triton.jit
def _churn_kernel(x_ptr, eps_ptr, x_hat_ptr, net_in_ptr, n, churn_std, c_in, DUPLICATE: tl.constexpr,
                  BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x_hat = tl.load(x_ptr + offs, mask=mask) + churn_std * tl.load(eps_ptr + offs, mask=mask)
    tl.store(x_hat_ptr + offs, x_hat, mask=mask)
    _store_input(net_in_ptr, offs, c_in * x_hat, mask, n, DUPLICATE)


@triton.jit
def _euler_kernel(x_hat_ptr, f_ptr, x_next_ptr, d_cur_ptr, net_in_ptr, n, c_skip, c_out, t_hat, t_next,
                  c_in_next, w, CLAMP: tl.constexpr, GUIDED: tl.constexpr, DUPLICATE: tl.constexpr,
                  BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x_hat = tl.load(x_hat_ptr + offs, mask=mask)
    denoised = _denoised_tile(x_hat, _network_output(f_ptr, offs, mask, n, w, GUIDED), c_skip, c_out, CLAMP)
    d_cur = (x_hat - denoised) / t_hat
    x_next = x_hat + (t_next - t_hat) * d_cur
    tl.store(d_cur_ptr + offs, d_cur, mask=mask)
    tl.store(x_next_ptr + offs, x_next, mask=mask)
    _store_input(net_in_ptr, offs, c_in_next * x_next, mask, n, DUPLICATE)


@triton.jit
def _heun_churn_kernel(x_hat_ptr, x_next_ptr, d_cur_ptr, f_ptr, eps_ptr, out_ptr, net_in_ptr, n, c_skip,
                       c_out, t_hat, t_next, churn_std, c_in_hat, w, CLAMP: tl.constexpr, GUIDED: tl.constexpr,
                       DUPLICATE: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x_next = tl.load(x_next_ptr + offs, mask=mask)
    denoised = _denoised_tile(x_next, _network_output(f_ptr, offs, mask, n, w, GUIDED), c_skip, c_out, CLAMP)
    d_next = (x_next - denoised) / t_next
    d_cur = tl.load(d_cur_ptr + offs, mask=mask)
    x = tl.load(x_hat_ptr + offs, mask=mask) + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_next)
    x_hat_new = x + churn_std * tl.load(eps_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, x_hat_new, mask=mask)
    _store_input(net_in_ptr, offs, c_in_hat * x_hat_new, mask, n, DUPLICATE)


@triton.jit
def _linear_kernel(x_ptr, f_ptr, prev_ptr, eps_ptr, out_ptr, net_in_ptr, n, c_skip, c_out, a, b, c1, c2, churn_std,
                   c_in_next, w, CLAMP: tl.constexpr, GUIDED: tl.constexpr, DUPLICATE: tl.constexpr,
                   MULTISTEP: tl.constexpr, CHURN: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x = tl.load(x_ptr + offs, mask=mask)
    denoised = _denoised_tile(x, _network_output(f_ptr, offs, mask, n, w, GUIDED), c_skip, c_out, CLAMP)
    blended = c1 * denoised
    if MULTISTEP:  # read the previous step's D, then keep this step's for the next
        blended += c2 * tl.load(prev_ptr + offs, mask=mask)
        tl.store(prev_ptr + offs, denoised, mask=mask)
    x_new = a * x + b * blended
    if CHURN:
        x_new += churn_std * tl.load(eps_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, x_new, mask=mask)
    _store_input(net_in_ptr, offs, c_in_next * x_new, mask, n, DUPLICATE)


def _grid(n: int):
    return (triton.cdiv(n, BLOCK),)


def _flat(*tensors: torch.Tensor) -> None:
    check_device(tensors[0])
    shape = tensors[0].shape
    for t in tensors:
        if t.shape != shape or t.dtype != torch.float32 or not t.is_contiguous():
            raise ValueError("sampler-step tensors must be float32, contiguous and of one shape")


def _check_pair(x: torch.Tensor, t: torch.Tensor, doubled: bool, name: str) -> None:
    """``t`` (a network output or input) is x's shape, or twice its rows when ``doubled``."""
    rows = x.shape[0] * (2 if doubled else 1)
    if t.shape != (rows, *x.shape[1:]) or t.dtype != torch.float32 or not t.is_contiguous():
        raise ValueError(f"{name} must be float32, contiguous and of shape {(rows, *x.shape[1:])} "
                         f"({'2B rows: conditional, then unconditional' if doubled else 'B rows'}), "
                         f"got {tuple(t.shape)}")


def _input_out(x: torch.Tensor, duplicate: bool) -> torch.Tensor:
    return torch.empty((x.shape[0] * (2 if duplicate else 1), *x.shape[1:]), device=x.device, dtype=x.dtype)


def churn(x, eps, churn_std: float, c_in: float, out=None, duplicate: bool = False):
    """x_hat = x + churn_std eps; returns (x_hat, c_in x_hat). ``out``: preallocated pair."""
    _flat(x, eps)
    x_hat, net_in = out if out is not None else (torch.empty_like(x), _input_out(x, duplicate))
    _check_pair(x, net_in, duplicate, "the network input")
    _churn_kernel[_grid(x.numel())](x, eps, x_hat, net_in, x.numel(), churn_std, c_in, DUPLICATE=duplicate,
                                    BLOCK=BLOCK)
    return x_hat, net_in


def euler_step(x_hat, f, c_skip, c_out, t_hat, t_next, c_in_next, clamp=False, out=None,
               guidance: float | None = None, duplicate: bool = False):
    """Returns (x_next, d_cur, c_in(t_next) x_next) after the first network evaluation;
    ``guidance`` w: f holds 2B rows (conditional, then unconditional) and is guided."""
    _flat(x_hat)
    _check_pair(x_hat, f, guidance is not None, "the network output")
    if out is None:
        out = (torch.empty_like(x_hat), torch.empty_like(x_hat), _input_out(x_hat, duplicate))
    x_next, d_cur, net_in = out
    _flat(x_hat, x_next, d_cur)
    _check_pair(x_hat, net_in, duplicate, "the network input")
    _euler_kernel[_grid(x_hat.numel())](x_hat, f, x_next, d_cur, net_in, x_hat.numel(), c_skip, c_out, t_hat,
                                        t_next, c_in_next, 0.0 if guidance is None else float(guidance),
                                        CLAMP=clamp, GUIDED=guidance is not None, DUPLICATE=duplicate, BLOCK=BLOCK)
    return x_next, d_cur, net_in


def heun_churn_step(x_hat, x_next, d_cur, f, eps, c_skip, c_out, t_hat, t_next, churn_std, c_in_hat,
                    clamp=False, out=None, guidance: float | None = None, duplicate: bool = False):
    """Returns (next x_hat, its network input) after the second network evaluation (``guidance``
    and ``duplicate`` as in :func:`euler_step`)."""
    _flat(x_hat, x_next, d_cur, eps)
    _check_pair(x_hat, f, guidance is not None, "the network output")
    x_new, net_in = out if out is not None else (torch.empty_like(x_hat), _input_out(x_hat, duplicate))
    _check_pair(x_hat, net_in, duplicate, "the network input")
    _heun_churn_kernel[_grid(x_hat.numel())](x_hat, x_next, d_cur, f, eps, x_new, net_in, x_hat.numel(), c_skip,
                                             c_out, t_hat, t_next, churn_std, c_in_hat,
                                             0.0 if guidance is None else float(guidance), CLAMP=clamp,
                                             GUIDED=guidance is not None, DUPLICATE=duplicate, BLOCK=BLOCK)
    return x_new, net_in


def linear_step(x, f, previous, eps, c_skip, c_out, a, b, c1, c2, churn_std, c_in_next, clamp=False, out=None,
                guidance: float | None = None, duplicate: bool = False):
    """One step of a one-evaluation sampler after its network evaluation; returns (x', c_in x').

    ``previous`` (or None): the previous step's denoised rows, read with weight c2 and overwritten
    with this step's (the multistep solver's one extra buffer). ``eps`` (or None): the next step's
    churn noise. ``out``: a preallocated (x', network input) pair; x' may be ``x`` itself.
    ``guidance`` and ``duplicate`` as in :func:`euler_step`.
    """
    _flat(x, *(t for t in (previous, eps) if t is not None))
    _check_pair(x, f, guidance is not None, "the network output")
    x_new, net_in = out if out is not None else (torch.empty_like(x), _input_out(x, duplicate))
    _flat(x, x_new)
    _check_pair(x, net_in, duplicate, "the network input")
    _linear_kernel[_grid(x.numel())](x, f, x if previous is None else previous, x if eps is None else eps, x_new,
                                     net_in, x.numel(), c_skip, c_out, a, b, c1, c2, churn_std, c_in_next,
                                     0.0 if guidance is None else float(guidance), CLAMP=clamp,
                                     GUIDED=guidance is not None, DUPLICATE=duplicate,
                                     MULTISTEP=previous is not None, CHURN=eps is not None, BLOCK=BLOCK)
    return x_new, net_in
