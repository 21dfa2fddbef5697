"""The PyTorch models of the fused blocks' matmul precisions (synther_fast.kernels.precision).

These models are what the CPU precision study and the GPU kernel checks compare against, so they
are checked here against exact arithmetic: rounding of chosen values, error bounds on fresh random
inputs (float64 as the truth), the expected ordering of the precisions' errors, and gradients.
"""

from __future__ import annotations

import pytest
import torch
from synther_fast.kernels.precision import (
    PRECISIONS,
    emulated_mm,
    fused_linear_emulated,
    residual_block_emulated,
    round_to_tf32,
)

from synther_fast.config import DenoiserConfig
from synther_fast.diffusion import ResidualMLPDenoiser


def test_tf32_rounding_of_chosen_values() -> None:
    ulp = 2.0**-10  # tf32 keeps 10 significand bits
    x = torch.tensor([1 + ulp / 2, -(1 + ulp / 2), 1 + ulp / 4, 1 + 3 * ulp / 4, 3.0, 0.0,
                      float("inf"), -float("inf")])
    assert round_to_tf32(x, "rz").tolist() == [1.0, -1.0, 1.0, 1.0, 3.0, 0.0, float("inf"), -float("inf")]
    # rn: ties away from zero, as cvt.rna.tf32.f32
    assert round_to_tf32(x, "rn").tolist() == [1 + ulp, -(1 + ulp), 1.0, 1 + ulp, 3.0, 0.0,
                                               float("inf"), -float("inf")]
    assert torch.isnan(round_to_tf32(torch.tensor([float("nan")]))).all()


@pytest.mark.parametrize("rounding, bound", [("rz", 2.0**-10), ("rn", 2.0**-11)])
def test_tf32_rounding_error_bound_and_bits(rounding: str, bound: float) -> None:
    x = torch.randn(100_000, generator=torch.Generator().manual_seed(1)) * 10.0**torch.randint(-3, 4, (100_000,))
    r = round_to_tf32(x, rounding)
    assert (r.view(torch.int32) & 0x1FFF == 0).all()  # low 13 bits cleared
    rel = ((r.double() - x.double()).abs() / x.double().abs()).max()
    assert 0.5 * bound < rel <= bound  # the bound is reached, never exceeded
    if rounding == "rz":
        assert (r.abs() <= x.abs()).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rounding"):
        round_to_tf32(torch.ones(2), "up")
    with pytest.raises(TypeError, match="float32"):
        round_to_tf32(torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="precision"):
        emulated_mm(torch.ones(2, 2), torch.ones(2, 2), "fp8")


def _relative_errors(k: int = 1024):
    g = torch.Generator().manual_seed(k)
    a, b = torch.randn(256, k, generator=g), torch.randn(k, 128, generator=g) / k**0.5
    truth = a.double() @ b.double()
    out = {}
    for precision in PRECISIONS:
        for rounding in ("rz", "rn"):
            err = emulated_mm(a, b, precision, rounding).double() - truth
            out[precision, rounding] = float(err.norm() / truth.norm())
    return out


def test_precision_errors_are_ordered_as_the_formats_predict() -> None:
    e = _relative_errors()
    assert e["ieee", "rz"] < 1e-6
    assert e["tf32x3", "rz"] < 3 * e["ieee", "rz"] + 1e-7  # 3xTF32 is fp32-class
    assert 1e-4 < e["tf32", "rn"] < e["tf32", "rz"] < 2e-3  # truncation costs about 2x
    assert e["tf32", "rz"] < e["bf16", "rz"] < 1e-2


@pytest.mark.parametrize("precision", PRECISIONS)
def test_emulated_block_gradients(precision: str) -> None:
    """At ieee the emulated block equals the reference in value and gradient; at the reduced
    precisions it stays within their error and is not silently the fp32 result."""
    g = torch.Generator().manual_seed(7)
    x, w, b = torch.randn(64, 96, generator=g), torch.randn(96, 96, generator=g) / 10, torch.randn(96, generator=g)
    grad = torch.randn(64, 96, generator=g)
    results = {}
    for name, fn in (("ref", lambda *t: t[0] + torch.nn.functional.linear(torch.relu(t[0]), t[1], t[2])),
                     ("emu", lambda *t: residual_block_emulated(*t, precision=precision))):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        out = fn(*leaves)
        out.backward(grad)
        results[name] = [out.detach()] + [t.grad for t in leaves]
    # Relative Frobenius error of the output and of each gradient: fp32 rounding for ieee and
    # 3xTF32, about one operand rounding (2^-10 tf32, 2^-8 bf16) for the others.
    tol = {"ieee": 1e-6, "tf32x3": 1e-6, "tf32": 2e-3, "bf16": 1e-2}[precision]
    for ref, emu, name in zip(results["ref"], results["emu"], ("out", "x", "weight", "bias")):
        assert float((emu - ref).norm() / ref.norm()) < tol, name
    if precision in ("tf32", "bf16"):
        assert not torch.equal(results["emu"][2], results["ref"][2])  # the weight gradient was rounded


@pytest.mark.parametrize("relu_input", [False, True])
def test_emulated_rectangular_linear_at_ieee_is_the_reference(relu_input: bool) -> None:
    g = torch.Generator().manual_seed(11)
    x, w, b = torch.randn(30, 24, generator=g), torch.randn(7, 24, generator=g), torch.randn(7, generator=g)
    grads = []
    for fn in (lambda *t: fused_linear_emulated(*t, relu_input=relu_input),
               lambda *t: torch.nn.functional.linear(torch.relu(t[0]) if relu_input else t[0], t[1], t[2])):
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        (fn(*leaves) ** 2).sum().backward()
        grads.append([t.grad for t in leaves])
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_emulated_backend_shares_parameters_with_the_reference() -> None:
    torch.manual_seed(0)
    ref = ResidualMLPDenoiser(DenoiserConfig(width=64, depth=2, dim_t=32), 10)
    emu = ResidualMLPDenoiser(DenoiserConfig(width=64, depth=2, dim_t=32, backend="emulated", precision="tf32"), 10)
    emu.load_state_dict(ref.state_dict())
    x, c = torch.randn(50, 10), torch.randn(50)
    out_ref, out_emu = ref(x, c), emu(x, c)
    torch.testing.assert_close(out_emu, out_ref, rtol=1e-2, atol=1e-2)
    assert not torch.equal(out_emu, out_ref)
    with pytest.raises(ValueError, match="LayerNorm"):
        ResidualMLPDenoiser(DenoiserConfig(width=8, depth=1, dim_t=8, backend="emulated", layer_norm=True), 4)
    with pytest.raises(ValueError, match="precision"):
        ResidualMLPDenoiser(DenoiserConfig(width=8, depth=1, dim_t=8, precision="fp16"), 4)
