"""Triton import for the kernel modules, with an error that says what is missing."""

from __future__ import annotations

from synther_fast.kernels import interpreter_enabled

try:
    import triton
    import triton.language as tl
except ImportError as exc:  # pragma: no cover - depends on the machine
    raise ImportError(
        "synther_fast's fused kernels need the triton package (Linux): pip install triton. "
        "The plain PyTorch reference path works without it."
    ) from exc

__all__ = ["check_device", "interpreter_enabled", "tl", "triton"]


def check_device(t) -> None:
    """The compiled kernels need CUDA tensors; CPU tensors only run under the interpreter."""
    if not t.is_cuda and not interpreter_enabled():
        raise RuntimeError(
            f"synther_fast's fused kernels run on CUDA tensors; got a tensor on {t.device}. On a CPU use "
            "DenoiserConfig.backend='auto' or 'reference' (or set TRITON_INTERPRET=1 before importing the "
            "kernels, for tests)."
        )
