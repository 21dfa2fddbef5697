"""Fused linear layers of the SynthER denoiser: y = act(x) W^T + b (+ x), act = relu or identity.

Three layer kinds use it: the residual blocks (``relu_input=True, residual=True``: one kernel
instead of relu + matmul + bias + add), the layer into the blocks (plain linear) and the output
layer (``relu_input=True``: the final relu is applied on load). Running all three here keeps every
large product of the fused denoiser at one precision (cuBLAS would run the plain layers at fp32,
which at TF32 elsewhere would be about a third of the time).

Reference: :func:`fused_linear_reference` (plain PyTorch, the maths every kernel here matches).

Forward: relu applied as each input tile is loaded; bias and residual added in the epilogue.
Backward: grad_x = (g W) * 1[x > 0] (+ g) in one kernel (relu mask and residual in the epilogue);
grad_W = g^T act(x) and grad_b = sum_m g in a second kernel.

Precision (see :mod:`synther_fast.kernels.precision`, which models each one in plain PyTorch):
``"ieee"`` (fp32 products, the reference precision), ``"tf32"`` (tensor cores, 10-bit operands),
``"tf32x3"`` (three TF32 products per tile, close to fp32) or ``"bf16"`` (operands rounded to bf16,
fp32 accumulation). The precision is always an explicit argument.
"""

from __future__ import annotations

import torch
from synther_fast.kernels._triton import check_device, interpreter_enabled, tl, triton
from synther_fast.kernels.precision import PRECISIONS, check_precision

__all__ = ["PRECISIONS", "FusedLinearFunction", "fused_linear", "fused_linear_backward", "fused_linear_forward",
           "fused_linear_reference", "residual_block", "residual_block_reference"]


def fused_linear_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, relu_input: bool = False,
                           residual: bool = False) -> torch.Tensor:
    """act(x) W^T + b (+ x) with nn.Linear's (out, in) weight layout."""
    y = torch.nn.functional.linear(torch.relu(x) if relu_input else x, weight, bias)
    return x + y if residual else y


def residual_block_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x + Linear(relu(x)): the denoiser's residual block."""
    return fused_linear_reference(x, weight, bias, relu_input=True, residual=True)


# Every kernel computes an output tile of BLOCK_M x BLOCK_N and reduces in BLOCK_K steps, so one
# config set means the same thing for all three. Large tiles serve sampling batches (100k rows);
# 64x32 tiles give the training batch (256 rows x 1024 features) 128 tiles for an H100's 132 SMs. Tensor-core precisions take large tiles; IEEE fp32
# runs on the FMA units, where a thread holds its accumulators in registers, so its tiles keep
# BLOCK_M * BLOCK_N / threads <= 32 (larger tiles spill: see bench/tools/compile_check.py).
def _config(m, n, k, warps, stages):
    return triton.Config({"BLOCK_M": m, "BLOCK_N": n, "BLOCK_K": k}, num_warps=warps, num_stages=stages)


def _configs():
    if interpreter_enabled():  # one small configuration: the interpreter runs every config it sees
        return [triton.Config({"BLOCK_M": 16, "BLOCK_N": 16, "BLOCK_K": 16}, num_warps=1)]
    return [
        _config(128, 128, 32, 8, 3), _config(128, 64, 32, 4, 4), _config(64, 128, 32, 4, 4),  # tensor cores
        _config(64, 64, 64, 4, 3), _config(64, 32, 64, 4, 3), _config(64, 64, 32, 4, 3),
        _config(64, 64, 16, 4, 2), _config(128, 64, 16, 8, 2), _config(64, 128, 16, 8, 2),  # FMA (ieee)
    ]


# Which configs suit which precision, as a rule on the tile (no extra Config attributes, so that
# Triton's own autotune cache can rebuild the configs): FMA tiles have BLOCK_K 16; 3xTF32 triples
# the operand registers, so it takes the two configs with BLOCK_K 32 and square tiles.
_GROUPS = {
    "fma": lambda tile: tile[2] == 16,
    "tf32x3": lambda tile: tile in ((128, 128, 32), (64, 64, 32)),
    "tensor": lambda tile: tile[2] >= 32 and tile != (64, 64, 32),
}


def precision_group(precision: str) -> str:
    return {"ieee": "fma", "tf32x3": "tf32x3"}.get(precision, "tensor")


def _prune(configs, named_args, **kwargs):
    """The autotuner times only the configs made for the call's precision."""
    if len(configs) == 1:  # the interpreter's single config
        return configs
    rule = _GROUPS[precision_group(kwargs["PRECISION"])]
    return [c for c in configs if rule(tuple(c.kwargs[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K")))]


@triton.jit
def _dot(a, b, PRECISION: tl.constexpr):
    if PRECISION == "bf16":
        return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16), out_dtype=tl.float32)
    elif PRECISION == "tf32":
        return tl.dot(a, b, input_precision="tf32")
    elif PRECISION == "tf32x3":
        return tl.dot(a, b, input_precision="tf32x3")
    else:
        return tl.dot(a, b, input_precision="ieee")


@triton.jit
def _load_tiles(a_ptrs, b_ptrs, a_mask, b_mask, EVEN_K: tl.constexpr):
    """The two operand tiles of one reduction step; masked only when the size does not divide."""
    if EVEN_K:
        return tl.load(a_ptrs), tl.load(b_ptrs)
    return tl.load(a_ptrs, mask=a_mask, other=0.0), tl.load(b_ptrs, mask=b_mask, other=0.0)


_AUTOTUNE = dict(key=["M", "N", "K", "PRECISION", "RELU", "RESIDUAL"],
                 prune_configs_by={"early_config_prune": _prune})


def _even(size: str):
    # Widths 256-2048 and batch 256 divide every BLOCK_K: the reduction loop then needs no masks.
    return triton.heuristics({"EVEN_K": lambda args: args[size] % args["BLOCK_K"] == 0})


# Shapes: x (M, K), W (N, K), y (M, N); a residual layer has N == K.
# Inside the reduction loops, out-of-range rows and columns of a tile read a valid row or column
# (index modulo the size) instead of being masked; the stores are masked, so those lanes are
# discarded. Only the reduction index is masked, and only when its size is not a multiple of
# BLOCK_K. Pointers advance by increments (fewer live registers than recomputing them).


@triton.autotune(configs=_configs(), **_AUTOTUNE)
@_even("K")
@triton.jit
def _fwd_kernel(
    x_ptr, w_ptr, b_ptr, y_ptr, M, N, K, stride_xm, stride_wn, stride_ym,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    RELU: tl.constexpr, RESIDUAL: tl.constexpr, EVEN_K: tl.constexpr,
):
    # Tile (rows rm, output features rn) of y; reduces over the K input features.
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rk = tl.arange(0, BLOCK_K)
    x_ptrs = x_ptr + (rm % M)[:, None] * stride_xm + rk[None, :]
    w_ptrs = w_ptr + (rn % N)[None, :] * stride_wn + rk[:, None]  # (k, n) of W^T is W[n, k]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        x, w = _load_tiles(x_ptrs, w_ptrs, rk[None, :] < K - k0, rk[:, None] < K - k0, EVEN_K)
        if RELU:
            x = tl.maximum(x, 0.0)  # relu on load
        acc += _dot(x, w, PRECISION)
        x_ptrs += BLOCK_K
        w_ptrs += BLOCK_K
    mask = (rm[:, None] < M) & (rn[None, :] < N)
    acc += tl.load(b_ptr + rn, mask=rn < N, other=0.0)[None, :]
    if RESIDUAL:
        acc += tl.load(x_ptr + rm[:, None] * stride_xm + rn[None, :], mask=mask, other=0.0)
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :], acc, mask=mask)


@triton.autotune(configs=_configs(), **_AUTOTUNE)
@_even("N")
@triton.jit
def _bwd_input_kernel(
    g_ptr, x_ptr, w_ptr, gx_ptr, M, N, K, stride_gm, stride_xm, stride_wn, stride_gxm,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    RELU: tl.constexpr, RESIDUAL: tl.constexpr, EVEN_K: tl.constexpr,
):
    # Tile (rows rm, input features rc) of grad_x = g W; reduces over the N output features.
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rc = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rr = tl.arange(0, BLOCK_K)
    g_ptrs = g_ptr + (rm % M)[:, None] * stride_gm + rr[None, :]
    w_ptrs = w_ptr + rr[:, None] * stride_wn + (rc % K)[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for r0 in range(0, N, BLOCK_K):
        g, w = _load_tiles(g_ptrs, w_ptrs, rr[None, :] < N - r0, rr[:, None] < N - r0, EVEN_K)
        acc += _dot(g, w, PRECISION)
        g_ptrs += BLOCK_K
        w_ptrs += BLOCK_K * stride_wn
    mask = (rm[:, None] < M) & (rc[None, :] < K)
    if RELU:
        x = tl.load(x_ptr + rm[:, None] * stride_xm + rc[None, :], mask=mask, other=0.0)
        acc = tl.where(x > 0, acc, 0.0)  # relu mask
    if RESIDUAL:
        acc += tl.load(g_ptr + rm[:, None] * stride_gm + rc[None, :], mask=mask, other=0.0)
    tl.store(gx_ptr + rm[:, None] * stride_gxm + rc[None, :], acc, mask=mask)


@triton.autotune(configs=_configs(), **_AUTOTUNE)
@_even("M")
@triton.jit
def _bwd_weight_kernel(
    g_ptr, x_ptr, gw_ptr, gb_ptr, M, N, K, stride_gm, stride_xm, stride_gwn,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
    RELU: tl.constexpr, RESIDUAL: tl.constexpr, EVEN_K: tl.constexpr,
):
    # Tile (output features rn, input features rc) of grad_W = g^T act(x); reduces over the M
    # rows. Every tile also sums g over rows; the first column of tiles stores it as grad_b.
    pid_m, pid_n = tl.program_id(0), tl.program_id(1)
    rn = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rc = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    rr = tl.arange(0, BLOCK_K)
    g_ptrs = g_ptr + rr[None, :] * stride_gm + (rn % N)[:, None]  # g^T tile (n, m)
    x_ptrs = x_ptr + rr[:, None] * stride_xm + (rc % K)[None, :]
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    bias_acc = tl.zeros((BLOCK_M,), dtype=tl.float32)
    for r0 in range(0, M, BLOCK_K):
        g_t, x = _load_tiles(g_ptrs, x_ptrs, rr[None, :] < M - r0, rr[:, None] < M - r0, EVEN_K)
        if RELU:
            x = tl.maximum(x, 0.0)
        acc += _dot(g_t, x, PRECISION)
        bias_acc += tl.sum(g_t, axis=1)
        g_ptrs += BLOCK_K * stride_gm
        x_ptrs += BLOCK_K * stride_xm
    mask = (rn[:, None] < N) & (rc[None, :] < K)
    tl.store(gw_ptr + rn[:, None] * stride_gwn + rc[None, :], acc, mask=mask)
    if pid_n == 0:
        tl.store(gb_ptr + rn, bias_acc, mask=rn < N)


def _check(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, precision: str, residual: bool) -> None:
    # The caller's own mistakes (shapes, dtypes, sizes) are named before the device is checked.
    check_precision(precision)
    if x.dim() != 2 or weight.dim() != 2 or weight.shape[1] != x.shape[1] or bias.shape != (weight.shape[0],):
        raise ValueError(
            f"fused linear needs x (M, K), weight (N, K), bias (N,); got {tuple(x.shape)}, "
            f"{tuple(weight.shape)}, {tuple(bias.shape)}"
        )
    if residual and weight.shape[0] != weight.shape[1]:
        raise ValueError(f"a residual layer needs a square weight, got {tuple(weight.shape)}")
    if not (x.dtype == weight.dtype == bias.dtype == torch.float32):
        raise TypeError("the fused linear kernels take float32 tensors")
    if x.shape[0] * max(x.shape[1], weight.shape[0]) >= 2**31:  # the kernels index with int32
        raise ValueError(f"fused linear: {x.shape[0]} rows x {max(x.shape[1], weight.shape[0])} features is "
                         "over 2^31 elements; split the batch (GenerationConfig.chunk_size)")
    check_device(x)


def _grid(rows: int, cols: int):
    return lambda meta: (triton.cdiv(rows, meta["BLOCK_M"]), triton.cdiv(cols, meta["BLOCK_N"]))


def fused_linear_forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, precision: str = "ieee",
                         relu_input: bool = False, residual: bool = False) -> torch.Tensor:
    """Launcher of the forward kernel (no autograd)."""
    _check(x, weight, bias, precision, residual)
    x, weight, bias = x.contiguous(), weight.contiguous(), bias.contiguous()
    (m, k), n = x.shape, weight.shape[0]
    y = torch.empty((m, n), device=x.device, dtype=torch.float32)
    _fwd_kernel[_grid(m, n)](x, weight, bias, y, m, n, k, x.stride(0), weight.stride(0), y.stride(0),
                             PRECISION=precision, RELU=relu_input, RESIDUAL=residual)
    return y


def fused_linear_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, precision: str = "ieee",
                          relu_input: bool = False, residual: bool = False,
                          need_input_grad: bool = True) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """Launchers of the two backward kernels: (grad_x or None, grad_weight, grad_bias)."""
    grad, x, weight = grad.contiguous(), x.contiguous(), weight.contiguous()
    (m, k), n = x.shape, weight.shape[0]
    grad_x = None
    if need_input_grad:
        grad_x = torch.empty_like(x)
        _bwd_input_kernel[_grid(m, k)](grad, x, weight, grad_x, m, n, k, grad.stride(0), x.stride(0),
                                       weight.stride(0), grad_x.stride(0), PRECISION=precision, RELU=relu_input,
                                       RESIDUAL=residual)
    grad_w = torch.empty_like(weight)
    grad_b = torch.empty(n, device=x.device, dtype=torch.float32)
    _bwd_weight_kernel[_grid(n, k)](grad, x, grad_w, grad_b, m, n, k, grad.stride(0), x.stride(0), grad_w.stride(0),
                                    PRECISION=precision, RELU=relu_input, RESIDUAL=residual)
    return grad_x, grad_w, grad_b


class FusedLinearFunction(torch.autograd.Function):
    """Autograd wrapper: the fused forward, and the fused backward for x, weight and bias."""

    @staticmethod
    def forward(ctx, x, weight, bias, precision="ieee", relu_input=False, residual=False):
        ctx.save_for_backward(x, weight)
        ctx.options = (precision, relu_input, residual)
        return fused_linear_forward(x, weight, bias, precision, relu_input, residual)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad_x, grad_w, grad_b = fused_linear_backward(grad, x, weight, *ctx.options,
                                                       need_input_grad=ctx.needs_input_grad[0])
        return grad_x, grad_w, grad_b, None, None, None


def fused_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, precision: str = "ieee",
                 relu_input: bool = False, residual: bool = False) -> torch.Tensor:
    """y = act(x) W^T + b (+ x) with the fused kernels (differentiable)."""
    return FusedLinearFunction.apply(x, weight, bias, precision, relu_input, residual)


def residual_block(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, precision: str = "ieee") -> torch.Tensor:
    """y = x + relu(x) W^T + b with the fused kernels (differentiable)."""
    return fused_linear(x, weight, bias, precision, relu_input=True, residual=True)
