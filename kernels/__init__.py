"""Triton kernels for the SynthER hot paths, shipped in the wheel as ``synther_fast.kernels``.

Each kernel lives in its own module beside the plain-PyTorch function that defines its maths.
Triton is imported lazily, so the package imports on machines without it; on a CPU-only machine the
kernels run only under ``TRITON_INTERPRET=1`` (set before the kernel modules are imported).
"""

from __future__ import annotations

import importlib.util
import os


def triton_available() -> bool:
    """Whether the triton package can be imported here."""
    return importlib.util.find_spec("triton") is not None


def interpreter_enabled() -> bool:
    """Whether Triton kernels will run in the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")
