"""The data-quality report of a synthetic data set: report.md with tables and PNG figures, and
report.json with the same numbers (the measures of SynthER's data-quality analysis, Lu et al. 2023).

Cost, measured on 2 shared CPU cores (HalfCheetah-v5 rows, width 42; 2026-12-01): the report on
100k real + 100k synthetic rows with the default subsampling (max_rows=5000) took 7.1 s (figures
2.3 s of it). Unsubsampled at 100k real + 100k synthetic rows: fidelity (KS, W1, correlations,
terminal rates) 1.5 s, dynamics error 5-6 s (~55 us a row, linear), novelty of 100k rows against
90k 11 s (quadratic). Extrapolated from those, not measured, for 1M real + 1M synthetic rows on
the same 2 cores: fidelity ~20 s, dynamics error ~1 min, novelty ~21 min (1e12 pairs; on a GPU the
same search is seconds by arithmetic, not measured here), and the default subsampled report ~15 s.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from synther_fast.analysis.augment import gaussian_noise, match_strength, mixup
from synther_fast.analysis.dynamics import dynamics_error
from synther_fast.analysis.fidelity import (
    fidelity_with_yardstick,
    split_held_out,
    terminal_rates,
)
from synther_fast.analysis.novelty import memorisation, memorised_share, novelty
from synther_fast.analysis.tasks import unsupported_reason
from synther_fast.common.tables import markdown_table
from synther_fast.replay.layout import TransitionLayout

Curves = Mapping[str, Sequence[tuple[float, float]]]


def _subsample(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= n else rows[np.sort(rng.choice(len(rows), n, replace=False))]


def _without_arrays(d: dict) -> dict:
    return {k: v for k, v in d.items() if not isinstance(v, np.ndarray)}


def data_quality(real_rows: np.ndarray, synthetic_rows: np.ndarray, layout: TransitionLayout, env_name: str, *,
                 max_rows: int = 5000, max_reference: int = 200_000, held_out_fraction: float = 0.1,
                 seed: int = 0, device: str | None = None, model_bytes: int | None = None,
                 unseen_rows: np.ndarray | None = None) -> tuple[dict, dict]:
    """Every measure of the report: (plain-JSON numbers, per-row arrays for the figures).

    Real rows are split at random into training rows (the reference of every measure) and
    held-out rows (the real-vs-real yardstick). Fidelity uses up to 50k rows a side; novelty,
    dynamics error and the augmentations use ``max_rows`` rows a set, against at most
    ``max_reference`` training rows. ``model_bytes``: the model file's size, for the compression
    ratios (omitted without it). ``unseen_rows``: real rows the model was not fitted on (outside a
    run's cut or subset), memorisation's held-out yardstick; without them a random 10% of the
    fitted rows stands in, which misses copies of those rows.
    """
    for name, rows in (("real", real_rows), ("synthetic", synthetic_rows)):
        if rows.ndim != 2 or rows.shape[1] != layout.width:
            raise ValueError(f"{name} rows of shape {rows.shape} do not fit a layout of width {layout.width}")
    if not np.isfinite(real_rows).all():
        raise ValueError("real rows contain NaN/inf")
    # A generator can emit NaN/inf; such rows have no distance or CDF, so they are counted and dropped.
    finite = np.isfinite(synthetic_rows).all(axis=1)
    if not finite.all():
        synthetic_rows = synthetic_rows[finite]
    if len(synthetic_rows) == 0:
        raise ValueError("every synthetic row contains NaN/inf")
    rng = np.random.default_rng(seed)
    seconds: dict[str, float] = {}
    numbers: dict[str, Any] = {"env": env_name, "rows": {"real": len(real_rows), "synthetic": len(synthetic_rows),
                                                         "synthetic_non_finite_dropped": int((~finite).sum())},
                               "max_rows": max_rows, "seed": seed}

    start = time.perf_counter()
    numbers["fidelity"] = fidelity_with_yardstick(real_rows, synthetic_rows, layout,
                                                  held_out_fraction=held_out_fraction, seed=seed)
    numbers["terminals"] = terminal_rates(real_rows, synthetic_rows, layout, env_name)
    seconds["fidelity"] = time.perf_counter() - start

    train, held = split_held_out(real_rows, held_out_fraction, seed)
    reference = _subsample(train, max_reference, rng)
    sets = {"real held-out": _subsample(held, max_rows, rng), "synthetic": _subsample(synthetic_rows, max_rows, rng)}
    numbers["rows"].update(train=len(train), held_out=len(held), reference=len(reference))

    start = time.perf_counter()
    nov = {"synthetic": novelty(reference, sets["synthetic"], held_out_rows=sets["real held-out"], device=device)}
    nov["real held-out"] = nov["synthetic"].pop("held_out")
    if unseen_rows is not None and len(unseen_rows) >= 2:
        # real rows the model never saw: copies of any fitted row count, against all of them
        numbers["memorisation"] = memorisation(_subsample(real_rows, max_reference, rng),
                                               _subsample(unseen_rows, max_rows, rng), sets["synthetic"],
                                               device=device) | {"held_out": "real rows outside the fitted ones"}
    else:
        numbers["memorisation"] = memorised_share(nov["synthetic"]["distances"], nov["real held-out"]["distances"]) | {
            "held_out": "a random 10% of the fitted rows (they were in the fit: copies of them are missed)"}
    seconds["novelty"] = time.perf_counter() - start
    numbers["compression"] = compression(model_bytes, len(real_rows), len(synthetic_rows), layout)

    # Augmented copies of training rows, each tuned to the synthetic rows' mean novelty.
    start = time.perf_counter()
    source = _subsample(train, max_rows, rng)
    target = nov["synthetic"]["mean"]
    strengths, reached = {}, {}
    for kind, fn in (("noise", gaussian_noise), ("mixup", mixup)):
        strength, achieved = match_strength(kind, source, layout, target, reference=reference, seed=seed,
                                            device=device)
        strengths[kind] = strength
        reached[kind] = bool(abs(achieved - target) <= 0.05 * target)
        # the scale match_strength tuned with: the reference's per-column std
        extra = {"scale": reference.astype(np.float64).std(axis=0)} if kind == "noise" else {}
        sets[kind] = fn(source, strength, layout, seed=seed, **extra)
        nov[kind] = novelty(reference, sets[kind], device=device)
    numbers["augmentation_strength"] = strengths
    numbers["augmentation_reached_target"] = reached
    numbers["novelty"] = {k: _without_arrays(v) for k, v in nov.items()}
    seconds["augmentation"] = time.perf_counter() - start

    arrays: dict[str, Any] = {"novelty": {k: v["distances"] for k, v in nov.items()}, "dynamics": {}}
    reason = unsupported_reason(env_name)
    if reason is None:
        start = time.perf_counter()
        dyn = {}
        for label, rows in sets.items():
            result = dynamics_error(rows, layout, env_name, seed=seed)
            scored_novelty = nov[label]["distances"][result.scored_index]
            # excluded rows (fast joints) are not a random subset, so pair the error with their own novelty
            dyn[label] = result.summary() | {
                "mean_novelty_of_scored": float(scored_novelty.mean()) if result.scored else float("nan")}
            arrays["dynamics"][label] = (scored_novelty, result.per_row())
        numbers["dynamics"] = dyn
        seconds["dynamics"] = time.perf_counter() - start
    else:
        numbers["dynamics"] = {"unsupported": f"{env_name}: {reason}"}
    numbers["seconds"] = seconds
    return numbers, arrays


def compression(model_bytes: int | None, real_rows: int, synthetic_rows: int, layout: TransitionLayout) -> dict | None:
    """How many bytes of data the model stands for: the real rows it was fitted on and the synthetic
    rows drawn from it, as uncompressed float32 rows of the layout, against the model file's bytes."""
    if model_bytes is None:
        return None
    if model_bytes <= 0:
        raise ValueError(f"model_bytes must be positive, got {model_bytes}")
    real, synthetic = real_rows * layout.width * 4, synthetic_rows * layout.width * 4
    return {"basis": "float32 rows, uncompressed; the model file as written", "model_bytes": int(model_bytes),
            "real_bytes": real, "synthetic_bytes": synthetic, "real_over_model": real / model_bytes,
            "synthetic_over_model": synthetic / model_bytes}


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    return markdown_table(header, rows) + [""]


def _markdown(numbers: dict, figures: dict[str, list[Path]], curves: Curves | None, notes: Sequence[str]) -> str:
    n = numbers["rows"]
    out = [f"# Data-quality report: {numbers['env']}", ""] + [f"Note: {note}" for note in notes] + (
        [""] if notes else [])
    out += [
           f"Real rows: {n['real']:,} ({n['train']:,} training, {n['held_out']:,} held out at random); "
           f"synthetic rows: {n['synthetic']:,}. Novelty, augmentations and dynamics error use at most "
           f"{numbers['max_rows']:,} rows a set against {n['reference']:,} training rows; seed {numbers['seed']}."
           + (f" {n['synthetic_non_finite_dropped']:,} synthetic rows with NaN/inf were dropped."
              if n["synthetic_non_finite_dropped"] else ""),
           "", "## Marginal fidelity", "",
           ("Against the training rows; held-out real rows, subsampled to the same count, are the "
            "yardstick (a perfect generator scores like them)."), ""]
    fid = numbers["fidelity"]
    keys = [("mean KS", "mean_ks"), ("max KS", "max_ks"), ("mean W1 / std", "mean_w1_in_std"),
            ("max W1 / std", "max_w1_in_std"), ("mean abs. mean gap / std", "mean_gap_in_std"),
            ("correlation error (mean)", "corr_error"), ("correlation error (max)", "corr_max_error")]
    out += _table(["measure", "synthetic", "real held-out"],
                  [(label, fid["synthetic"][k], fid["real_held_out"][k]) for label, k in keys])
    worst = sorted(fid["synthetic"]["columns"].items(), key=lambda kv: -kv[1]["ks"])[:8]
    out += ["Columns with the largest KS statistic:", ""]
    out += _table(["column", "KS", "KS held-out", "W1 / std", "W1 / std held-out"],
                  [(c, v["ks"], fid["real_held_out"]["columns"][c]["ks"], v["w1_in_std"],
                    fid["real_held_out"]["columns"][c]["w1_in_std"]) for c, v in worst])
    out += [f"![{p.stem}]({p.name})" for p in figures["marginals"]] + [""]

    terms = numbers["terminals"]
    out += ["## Terminals", ""]
    if terms is None:
        out += ["No terminal column (the task never terminates).", ""]
    else:
        keys = [("terminal rate", "terminal_rate"), ("unhealthy next state", "unhealthy_fraction"),
                ("terminal rate if unhealthy", "terminal_rate_if_unhealthy"),
                ("terminal rate if healthy", "terminal_rate_if_healthy")]
        keys = [(label, k) for label, k in keys if k in terms["real"]]
        out += _table(["", "real", "synthetic"], [(label, terms["real"][k], terms["synthetic"][k]) for label, k in keys])
        if "unhealthy_fraction" not in terms["real"]:
            out += ["(No health rules for this task, so no conditional rates.)", ""]

    nov = numbers["novelty"]
    strength = numbers["augmentation_strength"]
    out += ["## Novelty", "",
            ("Distance to the nearest training row, in units of the real per-column std. Augmentations of "
             f"training rows are tuned to the synthetic mean (noise std {strength['noise']:.3g} x column std; "
             f"mixup weight ~ U(0, {strength['mixup']:.3g})).")]
    short = [k for k, ok in numbers["augmentation_reached_target"].items() if not ok]
    if short:
        out[-1] += (f" {' and '.join(short)} cannot reach the synthetic novelty within 5%; "
                    "shown at the closest strength tried.")
    out += [""]
    out += _table(["set", "rows", "mean", "median", "p10", "p90", "exact copies"],
                  [(k, v["rows"], v["mean"], v["median"], v["p10"], v["p90"], v["exact_copies"]) for k, v in nov.items()])
    out += [f"![novelty]({figures['novelty'][0].name})", ""]

    mem = numbers["memorisation"]
    out += ["## Memorisation", "",
            (f"{100 * mem['memorised_share']:.1f}% of the synthetic rows lie nearer to a training row than "
             f"{mem['percentile']:g}% of held-out real rows do (distance {mem['threshold']:.3g}); a model that "
             f"samples the data's law puts about {mem['percentile']:g}% there, one that copies its training rows "
             f"nearly 100%. Held-out rows: {mem['held_out']}."), ""]

    comp = numbers["compression"]
    out += ["## Compression", ""]
    if comp is None:
        out += ["No model file given.", ""]
    else:
        out += [f"Basis: {comp['basis']}.", ""]
        out += _table(["", "bytes", "over the model's"],
                      [("model file", comp["model_bytes"], 1.0), ("real rows fitted on", comp["real_bytes"],
                                                                  comp["real_over_model"]),
                       ("synthetic rows drawn", comp["synthetic_bytes"], comp["synthetic_over_model"])])

    out += ["## Dynamics error", ""]
    dyn = numbers["dynamics"]
    if "unsupported" in dyn:
        out += [f"Not measured: {dyn['unsupported']}.", ""]
    else:
        out += [("Each row's state is set in the simulator and its action applied; squared error of the "
                 "row's next observation and reward against the simulated ones. Rows whose state the "
                 "observation does not determine (velocities clipped at ±10, NaN) are excluded."), ""]
        out += _table(["set", "scored", "excluded", "next-obs MSE", "relative MSE", "reward MSE",
                       "terminal mismatch", "mean novelty (scored)"],
                      [(k, v["scored"], v["excluded_unreconstructable"] + v["excluded_unstable"], v["next_obs_mse"],
                        v["next_obs_relative_mse"], v["reward_mse"], v.get("terminal_mismatch_rate"),
                        v["mean_novelty_of_scored"]) for k, v in dyn.items()])
        out += [f"![dynamics error against novelty]({figures['dynamics'][0].name})", ""]

    out += ["## Learning curves", ""]
    if curves:
        out += _table(["arm", "evaluations", "final step", "final return"],
                      [(arm, len(p), p[-1][0] if p else None, p[-1][1] if p else None) for arm, p in curves.items()])
        out += [f"![learning curves]({figures['learning_curves'][0].name})", ""]
    else:
        out += ["None given.", ""]
    out += ["## Time", ""]
    out += _table(["measure", "seconds"], [(k, v) for k, v in numbers["seconds"].items()])
    return "\n".join(out)


def write_report(real_rows: np.ndarray, synthetic_rows: np.ndarray, layout: TransitionLayout, env_name: str,
                 out_dir: str | Path, *, max_rows: int = 5000, seed: int = 0, learning_curves: Curves | None = None,
                 max_reference: int = 200_000, device: str | None = None, notes: Sequence[str] = (),
                 model_bytes: int | None = None, unseen_rows: np.ndarray | None = None) -> Path:
    """Write report.md (tables, PNG figures) and report.json into ``out_dir``; returns report.md's path.

    ``learning_curves``: {arm: [(step, return), ...]}. About 7 s for 100k + 100k rows on 2 CPU cores
    with the default ``max_rows`` (see the module docstring for the cost of each measure).
    """
    from synther_fast.analysis import plots

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    real_rows, synthetic_rows = np.asarray(real_rows), np.asarray(synthetic_rows)
    numbers, arrays = data_quality(real_rows, synthetic_rows, layout, env_name, max_rows=max_rows,
                                   max_reference=max_reference, seed=seed, device=device, model_bytes=model_bytes,
                                   unseen_rows=unseen_rows)
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    figures = {
        "marginals": plots.plot_marginals(_subsample(real_rows, 20_000, rng), _subsample(synthetic_rows, 20_000, rng),
                                          layout, out_dir),
        "novelty": [plots.plot_novelty(arrays["novelty"], out_dir / "novelty.png")],
    }
    if arrays["dynamics"]:
        figures["dynamics"] = [plots.plot_dynamics_vs_novelty(arrays["dynamics"], out_dir / "dynamics_vs_novelty.png")]
    curves = {arm: [(float(s), float(r)) for s, r in points] for arm, points in (learning_curves or {}).items()}
    if curves:
        figures["learning_curves"] = [plots.plot_learning_curves(curves, out_dir / "learning_curves.png")]
    numbers["seconds"]["figures"] = time.perf_counter() - start
    numbers["figures"] = [p.name for paths in figures.values() for p in paths]
    (out_dir / "report.json").write_text(json.dumps(numbers, indent=2, default=float))
    path = out_dir / "report.md"
    path.write_text(_markdown(numbers, figures, curves, notes))
    return path
