"""Compile every Triton kernel of the package for a GPU, ahead of time, on a machine without one.

Triton lowers a kernel to PTX and runs ptxas (bundled with Triton) without touching a device, so
this checks, on the CPU, that each kernel compiles with the installed Triton for the target
architecture at every autotune configuration and precision, and reports the matrix
instruction the dots lowered to (wgmma, mma2 or fma), registers, stack (local memory: spills) and
shared memory per configuration (from cuobjdump, also bundled). Run it under each Triton version
the package supports (3.6 on the GPU test machines, 3.9 current).

Usage: python bench/tools/compile_check.py [--arch 90] [--quick]
The interpreter must be off (TRITON_INTERPRET unset or 0); the script refuses otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def resource_usage(cubin: bytes) -> dict[str, int]:
    """REG / STACK / SHARED / spill counts of a cubin, read with Triton's bundled cuobjdump."""
    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        text = subprocess.run([str(tool), "--dump-resource-usage", f.name], capture_output=True, text=True,
                              check=True).stdout
    fields = dict(re.findall(r"(REG|STACK|SHARED):(\d+)", text))
    return {k.lower(): int(v) for k, v in fields.items()}


def mma_kind(ttgir: str) -> str:
    """Which matrix instruction the dot lowered to: Hopper's wgmma, Ampere's mma.sync, or none."""
    if "warp_group_dot" in ttgir:
        return "wgmma"
    if "versionMajor = 2" in ttgir:
        return "mma2"
    return "-" if "tt.dot" not in ttgir else "fma"


def _jit_function(fn):
    """The JITFunction under the autotune / heuristics wrappers."""
    from triton.runtime.jit import JITFunction

    while not isinstance(fn, JITFunction):
        fn = fn.fn
    return fn


LAYERS = {"block": (True, True), "linear": (False, False), "relu_linear": (True, False)}  # (RELU, RESIDUAL)


def kernels(quick: bool):
    """(name, jit function, signature, constexprs, options, precision) for every configuration.
    ``quick``: the first config of each precision for the residual block, and of the default
    precision (tf32) for the two plain layer kinds."""
    from synther_fast.kernels import edm_step
    from synther_fast.kernels import fused_linear as fl
    from synther_fast.kernels.precision import PRECISIONS

    gemm = {
        "fwd": (fl._fwd_kernel, ["x_ptr", "w_ptr", "b_ptr", "y_ptr"],
                ["M", "N", "K", "stride_xm", "stride_wn", "stride_ym"]),
        "bwd_input": (fl._bwd_input_kernel, ["g_ptr", "x_ptr", "w_ptr", "gx_ptr"],
                      ["M", "N", "K", "stride_gm", "stride_xm", "stride_wn", "stride_gxm"]),
        "bwd_weight": (fl._bwd_weight_kernel, ["g_ptr", "x_ptr", "gw_ptr", "gb_ptr"],
                       ["M", "N", "K", "stride_gm", "stride_xm", "stride_gwn"]),
    }
    for layer, (relu, residual) in LAYERS.items():
        for name, (tuner, pointers, ints) in gemm.items():
            for precision in PRECISIONS if (layer == "block" or not quick) else ("tf32",):
                configs = fl._prune(tuner.configs, {}, PRECISION=precision)  # what the autotuner may pick
                for config in configs[:1] if quick else configs:
                    # EVEN_K False: the masked reduction (odd batch sizes, the 42-wide output layer)
                    for even in (True, False) if (not quick or precision == "tf32") else (True,):
                        sig = {p: "*fp32" for p in pointers} | {i: "i32" for i in ints}
                        consts = dict(config.kwargs) | {"PRECISION": precision, "RELU": relu,
                                                        "RESIDUAL": residual, "EVEN_K": even}
                        sig |= {c: "constexpr" for c in consts}
                        options = {"num_warps": config.num_warps, "num_stages": config.num_stages}
                        label = "x".join(str(config.kwargs[k]) for k in ("BLOCK_M", "BLOCK_N", "BLOCK_K"))
                        yield (f"{layer}.{name} {label} w{config.num_warps} s{config.num_stages}"
                               f"{'' if even else ' masked'}"), _jit_function(tuner), sig, consts, options, precision
    steps = {  # name: (kernel, pointer count, int args, float args, has CLAMP, has GUIDED)
        "churn": (edm_step._churn_kernel, 4, ["n"], ["churn_std", "c_in"], False, False),
        "euler": (edm_step._euler_kernel, 5, ["n"], ["c_skip", "c_out", "t_hat", "t_next", "c_in_next", "w"],
                  True, True),
        "heun_churn": (edm_step._heun_churn_kernel, 7, ["n"],
                       ["c_skip", "c_out", "t_hat", "t_next", "churn_std", "c_in_hat", "w"], True, True),
    }
    for name, (fn, n_ptr, ints, floats, has_clamp, has_guided) in steps.items():
        base = {a: "*fp32" for a in fn.arg_names[:n_ptr]} | {i: "i32" for i in ints} | {f: "fp32" for f in floats}
        for clamp in ((False, True) if has_clamp else (False,)):
            for guided in ((False, True) if has_guided else (False,)):
                for duplicate in (False, True):  # classifier-free guidance reads / writes 2B rows
                    consts = ({"BLOCK": edm_step.BLOCK, "DUPLICATE": duplicate} | ({"CLAMP": clamp} if has_clamp else {})
                              | ({"GUIDED": guided} if has_guided else {}))
                    sig = base | {c: "constexpr" for c in consts}
                    label = (f"edm_step.{name}{' clamp' if clamp else ''}{' guided' if guided else ''}"
                             f"{' duplicate' if duplicate else ''}")
                    yield label, fn, sig, consts, {"num_warps": 4}, "fp32"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", type=int, default=90, help="compute capability, e.g. 80, 90")
    parser.add_argument("--quick", action="store_true", help="the first autotune config of each kernel only")
    args = parser.parse_args()
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        print("compile_check: unset TRITON_INTERPRET (the interpreter compiles nothing)", file=sys.stderr)
        return 2
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    target = GPUTarget("cuda", args.arch, 32)
    print(f"triton {triton.__version__}, target sm_{args.arch}")
    print(f"{'kernel':48} {'precision':9} {'mma':6} {'regs':>4} {'stack':>5} {'smem':>6} {'s':>5}")
    failures = 0
    for label, fn, sig, consts, options, precision in kernels(args.quick):
        started = time.perf_counter()
        try:
            compiled = triton.compile(ASTSource(fn, sig, consts), target=target, options=options)
        except Exception as exc:  # report every failure, then exit non-zero
            failures += 1
            print(f"{label:48} {precision:9} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
            continue
        usage = resource_usage(compiled.asm["cubin"])
        print(f"{label:48} {precision:9} {mma_kind(compiled.asm['ttgir']):6} {usage.get('reg', -1):4d} "
              f"{usage.get('stack', 0):5d} {compiled.metadata.shared:6d} {time.perf_counter() - started:5.1f}",
              flush=True)
    print("all kernels compiled" if not failures else f"{failures} kernel configurations failed to compile")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
