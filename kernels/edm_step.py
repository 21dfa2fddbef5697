"""Fused elementwise work of one stochastic Heun step (EDM Algorithm 2), between the network calls.

With F the raw network output and (c_skip, c_out) the preconditioning at the evaluated sigma,
D = c_skip x + c_out F (clamped to [-1, 1] for the min-max normaliser).

- :func:`churn`: x_hat = x + churn_std eps, and the network input c_in(t_hat) x_hat.
- :func:`euler_step` (after the first evaluation): d_cur = (x_hat - D) / t_hat,
  x_next = x_hat + (t_next - t_hat) d_cur, and the network input c_in(t_next) x_next.
- :func:`heun_churn_step` (after the second evaluation): d_next = (x_next - D) / t_next,
  x = x_hat + (t_next - t_hat) (d_cur + d_next) / 2, then the *next* step's churn
  x_hat' = x + churn_std' eps' and its network input c_in(t_hat') x_hat'.

References: :func:`churn_reference`, :func:`euler_step_reference`, :func:`heun_churn_step_reference`.
Noise is an input, so a test feeds the reference the same noise. All arithmetic is fp32.
"""

from __future__ import annotations

import torch
from synther_fast.kernels._triton import check_device, tl, triton

BLOCK = 1024


def _denoised(x, f, c_skip, c_out, clamp):
    out = c_skip * x + c_out * f
    return out.clamp(-1.0, 1.0) if clamp else out


def churn_reference(x, eps, churn_std: float, c_in: float):
    x_hat = x + churn_std * eps
    return x_hat, c_in * x_hat


def euler_step_reference(x_hat, f, c_skip: float, c_out: float, t_hat: float, t_next: float,
                         c_in_next: float, clamp: bool = False):
    d_cur = (x_hat - _denoised(x_hat, f, c_skip, c_out, clamp)) / t_hat
    x_next = x_hat + (t_next - t_hat) * d_cur
    return x_next, d_cur, c_in_next * x_next


def heun_churn_step_reference(x_hat, x_next, d_cur, f, eps, c_skip: float, c_out: float, t_hat: float,
                              t_next: float, churn_std: float, c_in_hat: float, clamp: bool = False):
    d_next = (x_next - _denoised(x_next, f, c_skip, c_out, clamp)) / t_next
    x = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_next)
    x_hat_new = x + churn_std * eps
    return x_hat_new, c_in_hat * x_hat_new


@triton.jit
def _denoised_tile(x, f, c_skip, c_out, CLAMP: tl.constexpr):
    denoised = c_skip * x + c_out * f
    if CLAMP:
        denoised = tl.minimum(tl.maximum(denoised, -1.0), 1.0)
    return denoised


@triton.jit
def _churn_kernel(x_ptr, eps_ptr, x_hat_ptr, net_in_ptr, n, churn_std, c_in, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x_hat = tl.load(x_ptr + offs, mask=mask) + churn_std * tl.load(eps_ptr + offs, mask=mask)
    tl.store(x_hat_ptr + offs, x_hat, mask=mask)
    tl.store(net_in_ptr + offs, c_in * x_hat, mask=mask)


@triton.jit
def _euler_kernel(x_hat_ptr, f_ptr, x_next_ptr, d_cur_ptr, net_in_ptr, n, c_skip, c_out, t_hat, t_next,
                  c_in_next, CLAMP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x_hat = tl.load(x_hat_ptr + offs, mask=mask)
    denoised = _denoised_tile(x_hat, tl.load(f_ptr + offs, mask=mask), c_skip, c_out, CLAMP)
    d_cur = (x_hat - denoised) / t_hat
    x_next = x_hat + (t_next - t_hat) * d_cur
    tl.store(d_cur_ptr + offs, d_cur, mask=mask)
    tl.store(x_next_ptr + offs, x_next, mask=mask)
    tl.store(net_in_ptr + offs, c_in_next * x_next, mask=mask)


@triton.jit
def _heun_churn_kernel(x_hat_ptr, x_next_ptr, d_cur_ptr, f_ptr, eps_ptr, out_ptr, net_in_ptr, n, c_skip,
                       c_out, t_hat, t_next, churn_std, c_in_hat, CLAMP: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    x_next = tl.load(x_next_ptr + offs, mask=mask)
    denoised = _denoised_tile(x_next, tl.load(f_ptr + offs, mask=mask), c_skip, c_out, CLAMP)
    d_next = (x_next - denoised) / t_next
    d_cur = tl.load(d_cur_ptr + offs, mask=mask)
    x = tl.load(x_hat_ptr + offs, mask=mask) + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_next)
    x_hat_new = x + churn_std * tl.load(eps_ptr + offs, mask=mask)
    tl.store(out_ptr + offs, x_hat_new, mask=mask)
    tl.store(net_in_ptr + offs, c_in_hat * x_hat_new, mask=mask)


def _grid(n: int):
    return (triton.cdiv(n, BLOCK),)


def _flat(*tensors: torch.Tensor) -> None:
    check_device(tensors[0])
    shape = tensors[0].shape
    for t in tensors:
        if t.shape != shape or t.dtype != torch.float32 or not t.is_contiguous():
            raise ValueError("sampler-step tensors must be float32, contiguous and of one shape")


def churn(x, eps, churn_std: float, c_in: float, out=None):
    """x_hat = x + churn_std eps; returns (x_hat, c_in x_hat). ``out``: preallocated pair."""
    _flat(x, eps)
    x_hat, net_in = out if out is not None else (torch.empty_like(x), torch.empty_like(x))
    _churn_kernel[_grid(x.numel())](x, eps, x_hat, net_in, x.numel(), churn_std, c_in, BLOCK=BLOCK)
    return x_hat, net_in


def euler_step(x_hat, f, c_skip, c_out, t_hat, t_next, c_in_next, clamp=False, out=None):
    """Returns (x_next, d_cur, c_in(t_next) x_next) after the first network evaluation."""
    _flat(x_hat, f)
    x_next, d_cur, net_in = out if out is not None else tuple(torch.empty_like(x_hat) for _ in range(3))
    _euler_kernel[_grid(x_hat.numel())](x_hat, f, x_next, d_cur, net_in, x_hat.numel(), c_skip, c_out, t_hat,
                                        t_next, c_in_next, CLAMP=clamp, BLOCK=BLOCK)
    return x_next, d_cur, net_in


def heun_churn_step(x_hat, x_next, d_cur, f, eps, c_skip, c_out, t_hat, t_next, churn_std, c_in_hat,
                    clamp=False, out=None):
    """Returns (next x_hat, its network input) after the second network evaluation."""
    _flat(x_hat, x_next, d_cur, f, eps)
    x_new, net_in = out if out is not None else (torch.empty_like(x_hat), torch.empty_like(x_hat))
    _heun_churn_kernel[_grid(x_hat.numel())](x_hat, x_next, d_cur, f, eps, x_new, net_in, x_hat.numel(), c_skip,
                                             c_out, t_hat, t_next, churn_std, c_in_hat, CLAMP=clamp, BLOCK=BLOCK)
    return x_new, net_in
