"""What each matmul precision of the fused blocks costs in sample quality, measured on the CPU.

The fused residual blocks can multiply at IEEE fp32, TF32 (Triton: operands truncated, ``rz``;
cuBLAS: rounded, ``rn``), 3xTF32 or bf16. ``kernels/precision.py`` reproduces each one's operand
rounding in plain PyTorch, so the question "may TF32 be the fast path's default?" can be answered
with the statistics of the diffusion-core tests before a GPU runs it:

1. quality: the learning test of tests/diffusion/test_synther_learning.py (12-dim transition-like data,
   width 256, depth 4, 3000 steps, 128 Heun steps, 2000 rows vs 2000 held-out rows) for several
   seeds, (a) trained at fp32 and sampled at each precision with the same noise, (b) trained and
   sampled at each precision. The fp32 seed-to-seed spread is the noise floor a precision must
   stay inside.
2. divergence at the paper's width: a width-1024, depth-6 denoiser briefly trained on the same
   data, sampling the same noise at each precision; the mean per-row distance to the fp32 rows (in
   standardised units) says how far rounding moves a sample through 255 network evaluations.

Usage: python bench/studies/precision_study.py [--seeds 0 1 2] [--out bench/results/precision_study.json]
(about 15 minutes on the 2-core CI machine; single-threaded runs are slower).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "helpers"))

from diffusion_fixtures import LAYOUT, TOLERANCES, passes, quality, transitions  # noqa: E402

from synther_fast import SynthER, quick  # noqa: E402

# (label, precision, tf32 rounding)
VARIANTS = [("fp32", "ieee", "rz"), ("tf32-rz", "tf32", "rz"), ("tf32-rn", "tf32", "rn"),
            ("tf32x3", "tf32x3", "rz"), ("bf16", "bf16", "rz")]
TRAINED_AT = ["fp32", "tf32-rz", "bf16"]


def set_precision(model: SynthER, precision: str, rounding: str) -> None:
    """Switch the trained model's blocks to the emulated kernels' maths at ``precision``."""
    cfg = dataclasses.replace(model.ema.config, backend="emulated", precision=precision)
    model.ema.config = cfg
    model.ema.emulated_tf32_rounding = rounding


def sample(model: SynthER, label: str, seed: int, rows: int = 2000) -> np.ndarray:
    _, precision, rounding = next(v for v in VARIANTS if v[0] == label)
    set_precision(model, precision, rounding)
    return model.generate(rows, seed=seed)


def quality_study(seeds: list[int]) -> dict:
    train, held_out = transitions(5000, seed=0), transitions(2000, seed=1)
    base = quick().replace(**{"trainer.steps": 3000, "edm.num_steps": 128})
    out: dict = {"sampled_at": {}, "trained_at": {}}
    for seed in seeds:
        for trained in TRAINED_AT:
            _, precision, rounding = next(v for v in VARIANTS if v[0] == trained)
            cfg = base.replace(seed=seed, **{"denoiser.backend": "emulated", "denoiser.precision": precision})
            started = time.perf_counter()
            model = SynthER(LAYOUT, cfg, device="cpu")
            model.fit(train, progress=False)
            fit_s = time.perf_counter() - started
            q = quality(sample(model, trained, seed), held_out)
            out["trained_at"].setdefault(trained, []).append(q | {"seed": seed, "fit_s": round(fit_s, 1)})
            print(f"seed {seed} trained+sampled at {trained}: {fmt(q)}  ({fit_s:.0f} s fit)", flush=True)
            if trained != "fp32":
                continue
            reference = None
            for label, _, _ in VARIANTS:
                rows = sample(model, label, seed)
                if reference is None:
                    reference = rows
                q = quality(rows, held_out)
                q["row_shift"] = float(np.abs((rows - reference) / held_out.std(0)).mean())
                out["sampled_at"].setdefault(label, []).append(q | {"seed": seed})
                print(f"seed {seed} fp32 model sampled at {label}: {fmt(q)}", flush=True)
    return out


def divergence_study(steps: int = 400, rows: int = 500) -> dict:
    train = transitions(20_000, seed=0)
    cfg = quick().replace(**{"trainer.steps": steps, "edm.num_steps": 128, "denoiser.width": 1024,
                             "denoiser.depth": 6, "denoiser.dim_t": 256})
    model = SynthER(LAYOUT, cfg, device="cpu").fit(train, progress=False)
    scale = train.std(0)
    out, reference = {}, None
    for label, _, _ in VARIANTS:
        started = time.perf_counter()
        samples = sample(model, label, seed=0, rows=rows)
        if reference is None:
            reference = samples
        shift = np.abs((samples - reference) / scale)
        out[label] = {"mean_row_shift": float(shift.mean()), "max_row_shift": float(shift.max()),
                      "seconds": round(time.perf_counter() - started, 1)}
        print(f"width 1024 sampled at {label}: mean shift {shift.mean():.2e}, max {shift.max():.2e}", flush=True)
    return out


def fmt(q: dict) -> str:
    return " ".join(f"{k} {q[k]:.3f}" for k in TOLERANCES) + (" PASS" if passes(q) else " FAIL")


def summarise(result: dict) -> str:
    lines = ["| model | sampled at | mean_err | std_ratio_err | corr_err | energy | row shift vs fp32 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]

    def cell(runs, key, spec=".3f"):
        values = np.array([r[key] for r in runs])
        return f"{values.mean():{spec}} ± {values.std():{spec}}" if len(values) > 1 else f"{values[0]:{spec}}"

    for label, runs in result["quality"]["sampled_at"].items():
        lines.append(f"| trained fp32 | {label} | " + " | ".join(cell(runs, k) for k in TOLERANCES)
                     + f" | {cell(runs, 'row_shift', '.1e')} |")
    for label, runs in result["quality"]["trained_at"].items():
        lines.append(f"| trained {label} | {label} | " + " | ".join(cell(runs, k) for k in TOLERANCES) + " | |")
    lines += ["", "| width 1024, depth 6: sampled at | mean per-row shift vs fp32 | max |", "| --- | --- | --- |"]
    for label, d in result["divergence"].items():
        lines.append(f"| {label} | {d['mean_row_shift']:.2e} | {d['max_row_shift']:.2e} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="bench/results/precision_study.json")
    args = parser.parse_args()
    started = time.perf_counter()
    result = {"quality": quality_study(args.seeds), "divergence": divergence_study(),
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    result["seconds"] = round(time.perf_counter() - started)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(summarise(result))


def print_saved(path: str = "bench/results/precision_study.json") -> None:
    print(summarise(json.loads(Path(path).read_text())))


if __name__ == "__main__":
    main()
