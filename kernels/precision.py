"""The matmul precisions of the fused blocks, modelled in plain PyTorch (no Triton needed).

A tensor-core product rounds its fp32 operands to a shorter significand, multiplies exactly and
accumulates in fp32. Rounding the operands first and then running an fp32 matmul reproduces that up
to fp32 accumulation order, on any device, which lets the CPU measure what a precision costs
before a GPU runs it, and lets the GPU tests compare a kernel with the maths it claims.

- ``ieee``: fp32 products (the reference).
- ``tf32``: operands with a 10-bit significand. Triton hands fp32 registers to the tensor cores,
  which drop the low 13 bits (round toward zero, ``rz``); cuBLAS and explicit conversions round to
  nearest (``rn``, ties away from zero, as ``cvt.rna.tf32.f32``). Both are modelled.
- ``tf32x3``: a = a_hi + a_lo with a_hi = tf32(a), a_lo = tf32(a - a_hi); the product is
  a_lo b_hi + a_hi b_lo + a_hi b_hi (a_lo b_lo dropped): close to fp32 at a third of TF32's rate.
- ``bf16``: operands rounded to bfloat16 (8-bit significand, round to nearest even), fp32
  accumulation.

The fp32 matmuls here follow torch's global matmul settings: on a GPU with
``torch.backends.cuda.matmul.allow_tf32`` (or ``set_float32_matmul_precision('high')``) on, the
``ieee`` model would itself run at TF32. The models are exact with those settings at their
defaults (off), which the tests and the precision study keep.
"""

from __future__ import annotations

import torch

from synther_fast.config import PRECISIONS

TF32_ROUNDINGS = ("rz", "rn")
_LOW_13 = 0x1FFF


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def round_to_tf32(t: torch.Tensor, rounding: str = "rz") -> torch.Tensor:
    """fp32 values with the low 13 significand bits cleared (``rz``) or rounded off to nearest,
    ties away from zero (``rn``); infinities and NaN pass through unchanged."""
    if rounding not in TF32_ROUNDINGS:
        raise ValueError(f"tf32 rounding must be one of {TF32_ROUNDINGS}, got {rounding!r}")
    if t.dtype != torch.float32:
        raise TypeError(f"round_to_tf32 takes float32, got {t.dtype}")
    bits = t.contiguous().view(torch.int32)
    if rounding == "rn":
        # Sign-magnitude layout: adding half an ulp to the magnitude bits rounds ties away from zero.
        bits = bits + 0x1000
    rounded = (bits & ~_LOW_13).view(torch.float32)
    return torch.where(torch.isfinite(t), rounded, t)


def _split(t: torch.Tensor, precision: str, rounding: str):
    if precision in ("tf32", "tf32x3"):
        hi = round_to_tf32(t, rounding)
        return hi, round_to_tf32(t - hi, rounding)
    if precision == "bf16":
        return t.to(torch.bfloat16).to(torch.float32), None
    return t, None


def emulated_mm(a: torch.Tensor, b: torch.Tensor, precision: str = "ieee", rounding: str = "rz") -> torch.Tensor:
    """a @ b (fp32, 2-D) with the operand rounding of ``precision``."""
    check_precision(precision)
    if precision == "ieee":
        return a @ b
    a_hi, a_lo = _split(a, precision, rounding)
    b_hi, b_lo = _split(b, precision, rounding)
    if precision == "tf32x3":
        return a_lo @ b_hi + a_hi @ b_lo + a_hi @ b_hi
    return a_hi @ b_hi


def fused_linear_emulated(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, precision: str = "ieee",
                          rounding: str = "rz", relu_input: bool = False, residual: bool = False) -> torch.Tensor:
    """act(x) W^T + b (+ x) with the fused kernels' products at ``precision``, differentiable with
    the backward kernels' products at the same precision (see kernels/fused_linear.py)."""
    return _EmulatedLinear.apply(x, weight, bias, precision, rounding, relu_input, residual)


def residual_block_emulated(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, precision: str = "ieee",
                            rounding: str = "rz") -> torch.Tensor:
    """x + relu(x) W^T + b at ``precision``."""
    return fused_linear_emulated(x, weight, bias, precision, rounding, relu_input=True, residual=True)


class _EmulatedLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, precision, rounding, relu_input, residual):
        check_precision(precision)
        ctx.save_for_backward(x, weight)
        ctx.options = (precision, rounding, relu_input, residual)
        y = emulated_mm(torch.relu(x) if relu_input else x, weight.t(), precision, rounding) + bias
        return x + y if residual else y

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        p, r, relu_input, residual = ctx.options
        # The same three products as the backward kernels: g W (masked), g^T act(x), sum of g.
        grad_x = emulated_mm(grad, weight, p, r)
        if relu_input:
            grad_x = torch.where(x > 0, grad_x, 0.0)
        if residual:
            grad_x = grad_x + grad
        grad_w = emulated_mm(grad.t().contiguous(), torch.relu(x) if relu_input else x, p, r)
        return grad_x, grad_w, grad.sum(0), None, None, None, None
