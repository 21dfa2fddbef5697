"""Every Triton kernel compiles for Hopper (sm_90) with the installed Triton, without a GPU.

Runs bench/tools/compile_check.py --quick (one autotune configuration per kernel, layer kind and precision) in a
subprocess with the interpreter off: Triton lowers to PTX and runs its bundled ptxas, so a kernel
that the interpreter accepts but the compiler rejects (an unsupported dot precision, a layout the
backend cannot lower) fails here on the CPU. The full config sweep is the script without --quick.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton", reason="the fused kernels need triton")

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "tools" / "compile_check.py"


@pytest.mark.slow
def test_all_kernels_compile_for_sm90() -> None:
    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--arch", "90"], capture_output=True,
                          text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1] == "all kernels compiled", proc.stdout
    compiled = [line for line in lines if line.startswith(("block.", "linear.", "relu_linear.", "edm_step."))]
    # residual block: 3 kernels x 4 precisions; plain and relu layers: 3 kernels at tf32; the tf32
    # ones also masked (9 + 9); the step kernels: churn x {duplicate}, euler and heun_churn x {clamp,
    # guided, duplicate} (2 + 8 + 8); each with a register count
    assert len(compiled) == 12 + 6 + 9 + 18, proc.stdout
    assert all(int(line.split()[-4]) > 0 for line in compiled), proc.stdout
    # every tensor-core GEMM lowered to Hopper's wgmma, the IEEE ones to FMA
    for line in compiled:
        if " tf32 " in line or " bf16 " in line or " tf32x3 " in line:
            assert " wgmma " in line, line
        elif " ieee " in line:
            assert " fma " in line, line


def test_refuses_to_run_under_the_interpreter() -> None:
    env = dict(os.environ, TRITON_INTERPRET="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "TRITON_INTERPRET" in proc.stderr
