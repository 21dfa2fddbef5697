"""Fused linear layers (residual block, plain linear, relu + linear) vs their PyTorch reference,
forward and backward, on fresh random inputs.

On CPU the kernels run in Triton's interpreter (TRITON_INTERPRET=1, set by conftest.py) at small
shapes, including sizes not divisible by the 16-wide interpreter blocks. Precision: IEEE fp32
products (the interpreter computes dots in fp32 numpy), so the tolerances are fp32 rounding of a
K-term sum: rtol 1e-5, atol 1e-5. TF32 and bf16 have their own, wider, stated tolerances on GPU.
"""

from __future__ import annotations

import pytest
import torch

triton = pytest.importorskip("triton", reason="the fused kernels need triton")

from synther_fast.kernels.fused_linear import (  # noqa: E402
    FusedLinearFunction,
    fused_linear,
    fused_linear_forward,
    fused_linear_reference,
    residual_block,
    residual_block_reference,
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
    torch.testing.assert_close(fused_linear_forward(x, w, b, relu_input=True, residual=True),
                               residual_block_reference(x, w, b), rtol=1e-5, atol=1e-5)


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


# (M, K -> N): the layer into the blocks (K < N), the output layer (N < K, N = 42 as HalfCheetah
# rows), odd sizes everywhere.
RECT_SHAPES = [(37, 24, 40), (50, 40, 11), (5, 33, 17), (16, 16, 48)]


@pytest.mark.parametrize("relu_input", [False, True])
@pytest.mark.parametrize("m, k, n", RECT_SHAPES)
def test_rectangular_linear_matches_reference(m: int, k: int, n: int, relu_input: bool) -> None:
    g = torch.Generator().manual_seed(m * k + n)
    x = torch.randn(m, k, generator=g).to(DEVICE)
    w, b = (torch.randn(n, k, generator=g) / k**0.5).to(DEVICE), torch.randn(n, generator=g).to(DEVICE)
    grad = torch.randn(m, n, generator=g).to(DEVICE)
    fused_leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    ref_leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    out = fused_linear(*fused_leaves, relu_input=relu_input)
    ref = fused_linear_reference(*ref_leaves, relu_input=relu_input)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    out.backward(grad)
    ref.backward(grad)
    for fused, reference, name in zip(fused_leaves, ref_leaves, ("x", "weight", "bias")):
        torch.testing.assert_close(fused.grad, reference.grad, rtol=1e-5, atol=1e-5, msg=f"grad {name}")


def test_input_gradient_is_skipped_when_not_needed() -> None:
    x, w, b = inputs(20, 24, seed=5)
    leaves = [w.clone().requires_grad_(), b.clone().requires_grad_()]
    fused_linear(x, *leaves).sum().backward()
    ref = [t.clone().requires_grad_() for t in (w, b)]
    fused_linear_reference(x, *ref).sum().backward()
    for got, want in zip(leaves, ref):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-5, atol=1e-5)


def test_relu_mask_and_residual_are_exercised() -> None:
    """Inputs with both signs: a kernel that forgot the mask or the residual would fail above."""
    x, w, b = inputs(37, 24, seed=1)
    assert (x > 0).any() and (x < 0).any()
    no_mask = x + torch.nn.functional.linear(x, w, b)
    assert not torch.allclose(residual_block_reference(x, w, b), no_mask, atol=1e-3)
    assert not torch.allclose(fused_linear_reference(x, w, b), fused_linear_reference(x, w, b, relu_input=True))


def test_bad_input() -> None:
    x, w, b = inputs(8, 16, seed=0)
    with pytest.raises(ValueError, match="needs x"):
        fused_linear_forward(x, w[:, :8], b)
    with pytest.raises(ValueError, match="square"):
        fused_linear_forward(x, w[:8], b[:8], residual=True)
    with pytest.raises(TypeError, match="float32"):
        fused_linear_forward(x.double(), w.double(), b.double())
    with pytest.raises(ValueError, match="precision"):
        fused_linear_forward(x, w, b, precision="fp8")
    huge = torch.zeros(1, device=DEVICE).as_strided((2**21, 1024), (0, 0))  # the shape only, one element
    with pytest.raises(ValueError, match="2\\^31"):
        fused_linear_forward(huge, torch.zeros(1024, 1024, device=DEVICE), torch.zeros(1024, device=DEVICE))
    assert FusedLinearFunction is not None


def test_shape_errors_come_before_the_device_check(monkeypatch) -> None:
    """Compiled (no interpreter), a CPU tensor is refused; but a wrong shape or size is named first,
    so the error tells the caller their own mistake (on a GPU this test's shape checks ran into the
    device check before: the 2026-11-24 H100 run)."""
    import synther_fast.kernels._triton as triton_glue

    monkeypatch.setattr(triton_glue, "interpreter_enabled", lambda: False)
    x, w, b = (t.cpu() for t in inputs(8, 16, seed=0))
    with pytest.raises(ValueError, match="needs x"):
        fused_linear_forward(x, w[:, :8], b)
    huge = torch.zeros(1).as_strided((2**21, 1024), (0, 0))
    with pytest.raises(ValueError, match="2\\^31"):
        fused_linear_forward(huge, torch.zeros(1024, 1024), torch.zeros(1024))
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        fused_linear_forward(x, w, b)


@pytest.mark.gpu
@pytest.mark.parametrize("m, n", [(4096, 1024), (1000, 256), (257, 2048)])
@pytest.mark.parametrize("precision, rtol, atol", [("ieee", 1e-5, 1e-4), ("tf32x3", 1e-5, 1e-4),
                                                   ("tf32", 3e-3, 3e-2), ("bf16", 3e-2, 2e-1)])
def test_full_size_on_gpu(m: int, n: int, precision: str, rtol: float, atol: float) -> None:
    """Full sizes; tolerances on purpose: tf32 has a 10-bit mantissa (truncated operands gave a
    7.7e-4 relative error in kernels/precision.py's model at K = 1024), bf16 an 8-bit one;
    3xTF32 is fp32-class. The relative Frobenius error is also bounded."""
    x, w, b = inputs(m, n, seed=m + n)
    ref64 = residual_block_reference(x.double(), w.double(), b.double())
    out = fused_linear_forward(x, w, b, precision, relu_input=True, residual=True)
    torch.testing.assert_close(out.double(), ref64, rtol=rtol, atol=atol)
    rel = float((out.double() - ref64).norm() / ref64.norm())
    # fp32 accumulation over n terms leaves ~4e-8 sqrt(n) (1.8e-6 at n = 2048) at any precision
    assert rel < max({"ieee": 1e-6, "tf32x3": 1e-6, "tf32": 1.5e-3, "bf16": 1e-2}[precision], 4e-8 * n**0.5), rel


@pytest.mark.gpu
@pytest.mark.parametrize("m, k, n, relu_input", [(4096, 256, 1024, False), (4096, 1024, 42, True),
                                                 (100_000, 1024, 42, True)])
@pytest.mark.parametrize("precision, bound", [("ieee", 1e-6), ("tf32x3", 1e-6), ("tf32", 1.5e-3), ("bf16", 1e-2)])
def test_full_size_linear_layers_on_gpu(m: int, k: int, n: int, relu_input: bool, precision: str,
                                        bound: float) -> None:
    """The denoiser's layer into the blocks (256 -> 1024) and its relu + output layer (1024 -> 42
    HalfCheetah columns), forward and weight gradient, relative Frobenius error against float64."""
    g = torch.Generator().manual_seed(m + k + n)
    x = torch.randn(m, k, generator=g).to(DEVICE)
    w, b = (torch.randn(n, k, generator=g) / k**0.5).to(DEVICE), torch.randn(n, generator=g).to(DEVICE)
    leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    out = fused_linear(*leaves, precision=precision, relu_input=relu_input)
    grad = torch.randn(m, n, generator=g).to(DEVICE)
    out.backward(grad)
    ref_leaves = [t.double().requires_grad_() for t in (x, w, b)]
    ref = fused_linear_reference(*ref_leaves, relu_input=relu_input)
    ref.backward(grad.double())
    for got, want, name in ((out, ref, "out"), (leaves[0].grad, ref_leaves[0].grad, "x"),
                            (leaves[1].grad, ref_leaves[1].grad, "weight")):
        rel = float((got.double() - want).norm() / want.norm())
        # fp32 accumulation over the summed length L (k for out, n for x, m for the weight) alone
        # leaves ~4e-8 sqrt(L): 2.6e-6 over 4096 rows, 1.3e-5 over 100k, at any precision
        length = {"out": k, "x": n, "weight": m}[name]
        assert rel < max(bound, 4e-8 * length**0.5), (name, rel)


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


@pytest.mark.skipif(DEVICE == "cuda", reason="checks the CPU error path")
def test_cpu_tensors_without_the_interpreter_get_a_clear_error(monkeypatch) -> None:
    from synther_fast.kernels import edm_step

    x, w, b = inputs(8, 16, seed=0)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="CUDA tensors.*backend='auto' or 'reference'"):
        fused_linear_forward(x, w, b)
    with pytest.raises(RuntimeError, match="CUDA tensors"):
        edm_step.churn(x, torch.randn_like(x), 0.1, 1.0)


def test_autotune_configs_are_grouped_by_precision(monkeypatch) -> None:
    """On a GPU the autotuner times only the configs made for the call's precision: FMA tiles
    (BLOCK_K 16) for IEEE, two square tiles for 3xTF32, the tensor-core tiles for TF32 and bf16;
    every config serves some precision."""
    from synther_fast.kernels import fused_linear as fl

    monkeypatch.setenv("TRITON_INTERPRET", "0")
    configs = fl._configs()
    tiles = {p: [tuple(c.kwargs[k] for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
                 for c in fl._prune(configs, {}, PRECISION=p)] for p in fl.PRECISIONS}
    assert tiles["ieee"] and all(t[2] == 16 for t in tiles["ieee"])
    assert sorted(tiles["tf32x3"]) == [(64, 64, 32), (128, 128, 32)]
    assert tiles["tf32"] == tiles["bf16"] and all(t[2] >= 32 for t in tiles["tf32"])
    assert (128, 128, 32) in tiles["tf32"] and (64, 64, 32) not in tiles["tf32"]
    used = {t for group in tiles.values() for t in group}
    assert len(used) == len(configs) == len({tuple(c.kwargs.values()) for c in configs})
