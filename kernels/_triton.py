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

__all__ = ["interpreter_enabled", "tl", "triton"]
