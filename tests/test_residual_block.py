"""Fused residual block vs its PyTorch reference, forward and backward, on fresh random inputs.

On CPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set by conftest.py) at small
shapes, including sizes not divisible by the 16-wide interpreter blocks. Precision: IEEE fp32
products (the interpreter computes dots in fp32 numpy), so the tolerances are fp32 rounding of a
K-term sum: rtol 1e-5, atol 1e-5. TF32 and bf16 have their own, wider, stated tolerances on GPU.
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton", reason="the fused kernels need triton")

from synther_fast.kernels.residual_block import (  # noqa: E402
    ResidualBlockFunction, residual_block, residual_block_forward, residual_block_reference,
)

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SHAPES = [(16, 16), (37, 24), (50, 40), (5, 33)]


def inputs(m: int, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, n, generator=g).to(DEVICE)
    w = (torch.randn(n, n, generator=g) / n**0.5).to(DEVICE)
    b = torch.randn(n, generator=g).to(DEVICE)
    return x, w, b


@pytest.mark.parametrize("m, n", SHAPES)
def test_forward_matches_reference(m: int, n: int) -> None:
    x, w, b = inputs(m, n, seed=m * 100 + n)
    torch.testing.assert_close(residual_block_forward(x, w, b), residual_block_reference(x, w, b),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("m, n", SHAPES)
def test_backward_matches_reference(m: int, n: int) -> None:
    x, w, b = inputs(m, n, seed=m * 7 + n)
    grad = torch.randn(m, n, generator=torch.Generator().manual_seed(n)).to(DEVICE)
    leaves_fused = [t.clone().requires_grad_() for t in (x, w, b)]
    leaves_ref = [t.clone().requires_grad_() for t in (x, w, b)]
    residual_block(*leaves_fused).backward(grad)
    residual_block_reference(*leaves_ref).backward(grad)
    for fused, ref, name in zip(leaves_fused, leaves_ref, ("x", "weight", "bias")):
        torch.testing.assert_close(fused.grad, ref.grad, rtol=1e-5, atol=1e-5, msg=f"grad {name}")


def test_relu_mask_and_residual_are_exercised() -> None:
    """Inputs with both signs: a kernel that forgot the mask or the residual would fail above."""
    x, w, b = inputs(37, 24, seed=1)
    assert (x > 0).any() and (x < 0).any()
    no_mask = x + torch.nn.functional.linear(x, w, b)
    assert not torch.allclose(residual_block_reference(x, w, b), no_mask, atol=1e-3)


def test_bad_input() -> None:
    x, w, b = inputs(8, 16, seed=0)
    with pytest.raises(ValueError, match="needs x"):
        residual_block_forward(x, w[:8], b)
    with pytest.raises(TypeError, match="float32"):
        residual_block_forward(x.double(), w.double(), b.double())
    with pytest.raises(ValueError, match="precision"):
        residual_block_forward(x, w, b, precision="fp8")
    assert ResidualBlockFunction is not None


@pytest.mark.gpu
@pytest.mark.parametrize("m, n", [(4096, 1024), (1000, 256), (257, 2048)])
@pytest.mark.parametrize("precision, rtol, atol", [("ieee", 1e-5, 1e-4), ("tf32x3", 1e-5, 1e-4),
                                                   ("tf32", 3e-3, 3e-2), ("bf16", 3e-2, 2e-1)])
def test_full_size_on_gpu(m: int, n: int, precision: str, rtol: float, atol: float) -> None:
    """Full sizes; tolerances on purpose: tf32 has a 10-bit mantissa (~5e-4 per product, summed
    over K up to 2048 terms), bf16 an 8-bit one; 3xTF32 is fp32-class. The relative Frobenius
    error is also bounded."""
    x, w, b = inputs(m, n, seed=m + n)
    ref64 = residual_block_reference(x.double(), w.double(), b.double())
    out = residual_block_forward(x, w, b, precision)
    torch.testing.assert_close(out.double(), ref64, rtol=rtol, atol=atol)
    rel = float((out.double() - ref64).norm() / ref64.norm())
    assert rel < {"ieee": 1e-6, "tf32x3": 1e-6, "tf32": 1e-3, "bf16": 1e-2}[precision], rel


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_kernel_matches_its_precision_model(precision: str, record_property) -> None:
    """The fused kernels against kernels/precision.py's model of their operand rounding (what the
    CPU precision study assumed): forward and all three gradients far closer to the model than the
    model is to fp32. For tf32 the test also records whether the tensor cores truncate (rz) or
    round (rn) their operands, whichever model is closer."""
    from synther_fast.kernels.precision import residual_block_emulated

    x, w, b = inputs(2048, 1024, seed=3)
    grad = torch.randn(2048, 1024, generator=torch.Generator().manual_seed(4)).to(DEVICE)

    def run(fn):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        out = fn(*leaves)
        out.backward(grad)
        return [out.detach().double()] + [t.grad.double() for t in leaves]

    fused = run(lambda *t: residual_block(*t, precision=precision))
    exact = run(lambda *t: residual_block_reference(*[u.double() for u in t]))
    distance = {}
    for rounding in ("rz", "rn"):
        model = run(lambda *t: residual_block_emulated(*t, precision=precision, rounding=rounding))
        distance[rounding] = max(float((f - m).norm() / (m - e).norm().clamp_min(1e-30))
                                 for f, m, e in zip(fused[:3], model[:3], exact[:3]))
    record_property("tf32_rounding_closest", min(distance, key=distance.get))
    record_property("distance_to_model", distance)
    assert min(distance.values()) < 0.5, distance
