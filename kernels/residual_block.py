"""Fused residual block of the SynthER denoiser: y = x + relu(x) W^T + b.

Reference: :func:`residual_block_reference` (plain PyTorch, the maths every kernel here matches).

Forward: one kernel instead of relu + matmul + bias + add; relu is applied as each input tile is
loaded, bias and residual are added in the epilogue. Backward: grad_x = g + (g W) * 1[x > 0] in one
kernel (relu mask on load, residual gradient in the epilogue); grad_W = g^T relu(x) and
grad_b = sum_m g in a second kernel.

Precision: ``"ieee"`` (fp32 products, the reference precision), ``"tf32"`` (tensor cores, ~3e-4
relative error) or ``"bf16"`` (operands rounded to bf16, fp32 accumulation, ~1e-2). The default is
IEEE; a faster precision is only ever chosen explicitly.
"""

from __future__ import annotations

import torch

from synther_fast.kernels._triton import interpreter_enabled, triton, tl

PRECISIONS = ("ieee", "tf32", "bf16")


def residual_block_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x + Linear(relu(x)) with nn.Linear's (out, in) weight layout."""
    return x + torch.nn.functional.linear(torch.relu(x), weight, bias)


def _configs():
    if interpreter_enabled():  # one small configuration: the interpreter runs every config it sees
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16}, num_warps=1)]
    return [
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=8, num_stages=3),
        triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 32}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 32}, num_warps=4, num_stages=4),
        triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=4, num_stages=3),
        triton.Config({"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 64}, num_warps=4, num_stages=3),
    ]


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr):
    if PRECISION == "bf16":
        return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16), out_dtype=tl.float32)
    elif PRECISION == "tf32":
        return tl.dot(a, b, input_precision="tf32")
    else:
        return tl.dot(a, b, input_precision="ieee")


@triton.autotune(configs=_configs(), key=["M", "N", "PRECISION"])
@triton.jit
def _residual_block_fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, M, N, stride_xm, stride_wn, stride_ym,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, N, BLOCK_K):
        rk = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_ptr + rm[:, None] * stride_xm + rk[None, :],
                    mask=(rm[:, None] < M) & (rk[None, :] < N), other=0.0)
        x = tl.maximum(x, 0.0)  # relu on load
        # (k, n) of W^T is W[n, k]
        w = tl.load(w_ptr + rn[None, :] * stride_wn + rk[:, None],
                    mask=(rk[:, None] < N) & (rn[None, :] < N), other=0.0)
        acc += _dot(x, w, PRECISION)
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    bias = tl.load(b_ptr + rn, mask=rn < N, other=0.0)
    residual = tl.load(x_ptr + rm[:, None] * stride_xm + rn[None, :], mask=mask, other=0.0)
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :], acc + bias[None, :] + residual, mask=mask)


@triton.autotune(configs=_configs(), key=["M", "N", "PRECISION"])
@triton.jit
def _residual_block_bwd_input_kernel(
    g_ptr, x_ptr, w_ptr, gx_ptr, M, N, stride_gm, stride_xm, stride_wn, stride_gxm,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):
    # Tile (BLOCK_M, BLOCK_K) of grad_x; reduces over the output features n in BLOCK_N steps.
    pid_m, pid_k = tl.program_id(0), tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        rn = n0 + tl.arange(0, BLOCK_N)
        g = tl.load(g_ptr + rm[:, None] * stride_gm + rn[None, :],
                    mask=(rm[:, None] < M) & (rn[None, :] < N), other=0.0)
        w = tl.load(w_ptr + rn[:, None] * stride_wn + rk[None, :],
                    mask=(rn[:, None] < N) & (rk[None, :] < N), other=0.0)
        acc += _dot(g, w, PRECISION)
    mask = (rm[:, None] < M) & (rk[None, :] < N)
    x = tl.load(x_ptr + rm[:, None] * stride_xm + rk[None, :], mask=mask, other=0.0)
    g_residual = tl.load(g_ptr + rm[:, None] * stride_gm + rk[None, :], mask=mask, other=0.0)
    grad = tl.where(x > 0, acc, 0.0) + g_residual  # relu mask, then the residual path
    tl.store(gx_ptr + rm[:, None] * stride_gxm + rk[None, :], grad, mask=mask)


@triton.autotune(configs=_configs(), key=["M", "N", "PRECISION"])
@triton.jit
def _residual_block_bwd_weight_kernel(
    g_ptr, x_ptr, gw_ptr, gb_ptr, M, N, stride_gm, stride_xm, stride_gwn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):
    # Tile (BLOCK_N, BLOCK_K) of grad_W = g^T relu(x); reduces over rows m. The first column of
    # tiles also reduces g over rows for grad_b.
    pid_n, pid_k = tl.program_id(0), tl.program_id(1)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = pid_k * BLOCK_K + tl.arange(0, BLOCK_K)
    acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    bias_acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for m0 in range(0, M, BLOCK_M):
        rm = m0 + tl.arange(0, BLOCK_M)
        g_t = tl.load(g_ptr + rm[None, :] * stride_gm + rn[:, None],
                      mask=(rm[None, :] < M) & (rn[:, None] < N), other=0.0)
        x = tl.load(x_ptr + rm[:, None] * stride_xm + rk[None, :],
                    mask=(rm[:, None] < M) & (rk[None, :] < N), other=0.0)
        acc += _dot(g_t, tl.maximum(x, 0.0), PRECISION)
        bias_acc += tl.sum(g_t, axis=1)
    mask = (rn[:, None] < N) & (rk[None, :] < N)
    tl.store(gw_ptr + rn[:, None] * stride_gwn + rk[None, :], acc, mask=mask)
    if pid_k == 0:
        tl.store(gb_ptr + rn, bias_acc, mask=rn < N)


def _check(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if x.dim() != 2 or weight.shape != (x.shape[1], x.shape[1]) or bias.shape != (x.shape[1],):
        raise ValueError(
            f"residual block needs x (M, N), weight (N, N), bias (N,); got {tuple(x.shape)}, "
            f"{tuple(weight.shape)}, {tuple(bias.shape)}"
        )
    if not (x.dtype == weight.dtype == bias.dtype == torch.float32):
        raise TypeError("the fused residual block takes float32 tensors")


def _grid(rows: int, cols: int, rows_key: str, cols_key: str):
    return lambda meta: (triton.cdiv(rows, meta[rows_key]), triton.cdiv(cols, meta[cols_key]))


def residual_block_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
                           precision: str = "ieee") -> torch.Tensor:
    """Launcher of the fused forward kernel (no autograd)."""
    _check(x, weight, bias, precision)
    x, weight, bias = x.contiguous(), weight.contiguous(), bias.contiguous()
    m, n = x.shape
    y = torch.empty_like(x)
    _residual_block_fwd_kernel[_grid(m, n, "BLOCK_M", "BLOCK_N")](
        x, weight, bias, y, m, n, x.stride(0), weight.stride(0), y.stride(0), PRECISION=precision)
    return y


def residual_block_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                            precision: str = "ieee") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Launchers of the two backward kernels: (grad_x, grad_weight, grad_bias)."""
    grad, x, weight = grad.contiguous(), x.contiguous(), weight.contiguous()
    m, n = x.shape
    grad_x = torch.empty_like(x)
    grad_w = torch.empty_like(weight)
    grad_b = torch.empty(n, device=x.device, dtype=torch.float32)
    _residual_block_bwd_input_kernel[_grid(m, n, "BLOCK_M", "BLOCK_K")](
        grad, x, weight, grad_x, m, n, grad.stride(0), x.stride(0), weight.stride(0), grad_x.stride(0),
        PRECISION=precision)
    _residual_block_bwd_weight_kernel[_grid(n, n, "BLOCK_N", "BLOCK_K")](
        grad, x, grad_w, grad_b, m, n, grad.stride(0), x.stride(0), grad_w.stride(0), PRECISION=precision)
    return grad_x, grad_w, grad_b


class ResidualBlockFunction(torch.autograd.Function):
    """Autograd wrapper: the fused forward, and the fused backward for x, weight and bias."""

    @staticmethod
    def forward(ctx, x, weight, bias, precision="ieee"):
        ctx.save_for_backward(x, weight)
        ctx.precision = precision
        return residual_block_forward(x, weight, bias, precision)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x, grad_w, grad_b = residual_block_backward(grad, x, weight, ctx.precision)
        return grad_x, grad_w, grad_b, None


def residual_block(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, precision: str = "ieee") -> torch.Tensor:
    """y = x + relu(x) W^T + b with the fused kernels (differentiable)."""
    return ResidualBlockFunction.apply(x, weight, bias, precision)
