"""How few network evaluations (NFE) per synthetic row keep SynthER's rows as good as the published
sampler's (issue 31): quality against NFE for each sampler, on quick-preset models.

Per task: the 30k-row SAC replay (``synther-fast collect --method sac --steps 30000 --seed 0``) is
fitted once with the offline ``quick`` preset's diffusion settings (width 256, depth 4, 12k steps;
seed 0), the model the offline quick runs fit; then, for each sampler and number of steps, 20k rows
are drawn with three generation seeds and measured against the real rows:

- mean KS and mean W1 (in real std) of the columns, the correlation error;
- novelty: mean distance to the nearest real row (standardised; 2,000 rows queried);
- dynamics error: the simulator's next observation (relative MSE) and reward (MSE), 2,000 rows;
- terminal rate (tasks with terminals).

The baseline is the published sampler: stochastic Heun, 128 steps, S_churn 80 (255 NFE). The
tolerance of each metric is max(3 x the std over the baseline's three seeds, the real-vs-real
floor). The floor is the metric between two disjoint halves of the real rows (KS, W1, correlation
error), or the gap between the halves' values of a one-sample statistic (novelty of one half
against the other, dynamics and reward error, terminal rate). The halves are 15k rows each,
because the replay has 30k rows, not the 2 x 20k of the issue. A sampler passes at an NFE if every
metric's mean over its seeds is within the tolerance of the baseline's mean.

Samplers (the grids reach NFE near 4 ... 255; Heun reaches only 2N - 1):
- ``heun``: the published stochastic Heun (S_churn 80), N in 2 ... 128;
- ``heun-det``: EDM's deterministic Heun (S_churn 0), N in 2 ... 128;
- ``euler``: deterministic Euler (S_churn 0), N in 4 ... 255;
- ``dpmpp_2m``: DPM-Solver++(2M), N in 4 ... 255;
- ``dpmpp_2m_sde``: its stochastic form (eta 1), N in 4 ... 255: added once the deterministic
  samplers' dynamics error stayed above the stochastic Heun's at every NFE (stochasticity matters).

Resumable: every draw's numbers go into ``--out`` as soon as they exist, and a rerun skips them;
the fitted models are kept in ``--work``. ``--plot`` draws quality against NFE per task.

``--td3bc VARIANT-STEPS ...`` then runs the agent check: synthetic-only TD3+BC (the offline quick
preset: its own fit per run seed, 100k rows, 10k updates) with that sampler and with the baseline,
seeds 0-2, as resumable offline runs under ``--work``/td3bc; final returns go into ``--out``.

Usage: python bench/studies/sampler_study.py [--tasks HalfCheetah-v5 Hopper-v5 Walker2d-v5]
         [--work runs/few_step] [--out docs/results/sampler-study-cpu.json] [--rows 20000] [--seeds 3]
         [--threads 1] [--max-nfe N] [--plot docs/results/sampler-study-cpu.png] [--only-plot]
         [--td3bc dpmpp_2m-16 ...] [--td3bc-seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np
import torch

from synther_fast import SynthER
from synther_fast.analysis.dynamics import dynamics_error
from synther_fast.analysis.fidelity import marginal_fidelity
from synther_fast.analysis.novelty import novelty
from synther_fast.common.io import write_json
from synther_fast.config import offline_quick
from synther_fast.data import load_dataset
from synther_fast.envs import env_spec
from synther_fast.replay.layout import TransitionLayout

TASKS = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"]
HEUN_STEPS = [2, 4, 8, 16, 32, 64, 128]
ONE_EVAL_STEPS = [4, 8, 16, 32, 64, 128, 255]
VARIANTS = {  # name: (sampler, S_churn (None: the model's, 80), steps)
    "heun": ("heun", None, HEUN_STEPS),
    "heun-det": ("heun", 0.0, HEUN_STEPS),
    "euler": ("euler", 0.0, ONE_EVAL_STEPS),
    "dpmpp_2m": ("dpmpp_2m", None, ONE_EVAL_STEPS),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", None, ONE_EVAL_STEPS),
}
BASELINE = ("heun", 128)
METRICS = ["mean_ks", "mean_w1", "corr_error", "novelty", "dynamics_error", "reward_error", "terminal_rate"]
DIRECT = {"mean_ks", "mean_w1", "corr_error"}  # two-sample metrics: the floor is their value on two real halves


def measures(real: np.ndarray, rows: np.ndarray, layout: TransitionLayout, env: str, seed: int) -> dict[str, float]:
    fidelity = marginal_fidelity(real, rows, layout, max_rows=20_000, seed=seed)
    dynamics = dynamics_error(rows, layout, env, max_rows=2000, seed=seed).summary()
    out = {"mean_ks": fidelity["mean_ks"], "mean_w1": fidelity["mean_w1_in_std"], "corr_error": fidelity["corr_error"],
           "novelty": novelty(real, rows, max_rows=2000, seed=seed)["mean"],
           "dynamics_error": dynamics["next_obs_relative_mse"], "reward_error": dynamics["reward_mse"]}
    if layout.terminal is not None:
        out["terminal_rate"] = float((rows[:, layout.terminal.start] > 0.5).mean())
    return {k: float(v) for k, v in out.items()}


def real_floor(real: np.ndarray, layout: TransitionLayout, env: str) -> dict[str, float]:
    """Each metric's real-vs-real floor from two disjoint random halves of the real rows."""
    order = np.random.default_rng(0).permutation(len(real))
    a, b = real[order[: len(real) // 2]], real[order[len(real) // 2:]]
    fidelity = marginal_fidelity(a, b, layout, max_rows=20_000)
    floor = {"mean_ks": fidelity["mean_ks"], "mean_w1": fidelity["mean_w1_in_std"], "corr_error": fidelity["corr_error"],
             "novelty": abs(novelty(a, b, max_rows=2000)["mean"] - novelty(b, a, max_rows=2000)["mean"])}
    da, db = (dynamics_error(h, layout, env, max_rows=2000).summary() for h in (a, b))
    floor["dynamics_error"] = abs(da["next_obs_relative_mse"] - db["next_obs_relative_mse"])
    floor["reward_error"] = abs(da["reward_mse"] - db["reward_mse"])
    if layout.terminal is not None:
        t = layout.terminal.start
        floor["terminal_rate"] = abs(float((a[:, t] > 0.5).mean()) - float((b[:, t] > 0.5).mean()))
    return {k: float(v) for k, v in floor.items()}


def fitted_model(task: str, rows: np.ndarray, layout: TransitionLayout, work: Path) -> tuple[SynthER, float]:
    path = work / f"{task}_quick_s0.pt"
    if path.exists():
        return SynthER.load(path, map_location="cpu"), float("nan")
    config = dataclasses.replace(offline_quick().synther, seed=0)
    start = time.perf_counter()
    model = SynthER(layout, config, "cpu").fit(rows)
    model.save(path)
    return model, time.perf_counter() - start


def verdicts(task_results: dict) -> dict[str, dict[str, dict]]:
    """Per variant and steps: the seeds' mean of each metric, and whether each is within tolerance."""
    draws, floor = task_results["draws"], task_results["floor"]
    grouped: dict[tuple[str, int], list[dict]] = {}
    for record in draws.values():
        grouped.setdefault((record["variant"], record["steps"]), []).append(record)
    base = grouped.get(BASELINE, [])
    if len(base) < 2:
        return {}
    metrics = [m for m in METRICS if m in base[0]]
    base_mean = {m: float(np.mean([r[m] for r in base])) for m in metrics}
    tolerance = {m: max(3 * float(np.std([r[m] for r in base], ddof=1)), floor[m]) for m in metrics}
    out: dict[str, dict[str, dict]] = {}
    for (variant, steps), records in sorted(grouped.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        mean = {m: float(np.mean([r[m] for r in records])) for m in metrics}
        within = {m: abs(mean[m] - base_mean[m]) <= tolerance[m] for m in metrics}
        out.setdefault(variant, {})[str(steps)] = {
            "nfe": records[0]["nfe"], "seeds": len(records), "mean": mean, "within": within,
            "passes": all(within.values()), "seconds_per_draw": float(np.mean([r["seconds"] for r in records]))}
    task_results["baseline"] = {"mean": base_mean, "tolerance": tolerance}
    return out


def fewest_passing(table: dict[str, dict[str, dict]]) -> dict[str, int | None]:
    """Per variant: the fewest NFE that pass, with every larger NFE of the grid passing too."""
    out: dict[str, int | None] = {}
    for variant, by_steps in table.items():
        rows = sorted(by_steps.values(), key=lambda r: r["nfe"])
        best = None
        for r in reversed(rows):
            if not r["passes"]:
                break
            best = r["nfe"]
        out[variant] = best
    return out


def run_task(task: str, args, results: dict) -> None:
    data_file = args.work / f"{task}_sac30k_s0.npz"
    if not data_file.exists():
        raise SystemExit(f"{data_file} is missing: synther-fast collect --env {task} --method sac --steps 30000 "
                         f"--seed 0 --threads 1 --out {data_file}")
    spec = env_spec(task)
    layout = TransitionLayout(spec.obs_dim, spec.act_dim, spec.has_terminal)
    real = load_dataset(data_file).to_rows(layout)
    entry = results.setdefault(task, {"draws": {}})
    model, fit_seconds = fitted_model(task, real, layout, args.work)
    if "floor" not in entry:
        entry["floor"] = real_floor(real, layout, task)
        entry["real_rows"] = len(real)
        entry["fit_seconds"] = fit_seconds
        write_json(args.out, results)
    # The baseline first, then every other point from the fewest NFE up: a study cut short (or resumed
    # in pieces) has the few-step region, which decides, before the costly many-step points.
    nfe = lambda v, n: 2 * n - 1 if VARIANTS[v][0] == "heun" else n
    others = sorted(((v, n) for v, (_, _, steps) in VARIANTS.items() for n in steps if (v, n) != BASELINE),
                    key=lambda p: (nfe(*p), p[0]))
    for variant, steps in [BASELINE, *others]:
        if args.max_nfe is not None and (variant, steps) != BASELINE and nfe(variant, steps) > args.max_nfe:
            continue
        sampler, churn, _ = VARIANTS[variant]
        drawer = model.with_sampler(sampler, steps, S_churn=churn)
        for seed in range(args.seeds):
            key = f"{variant}-{steps}-s{seed}"
            if key in entry["draws"]:
                continue
            start = time.perf_counter()
            rows = drawer.generate(args.rows, seed=1000 + seed)
            seconds = time.perf_counter() - start
            record = {"variant": variant, "steps": steps, "seed": seed, "nfe": drawer.sampler_record["nfe"],
                      "seconds": seconds, **measures(real, rows, layout, task, seed)}
            entry["draws"][key] = record
            entry["verdicts"] = verdicts(entry)
            entry["fewest_passing_nfe"] = fewest_passing(entry["verdicts"])
            write_json(args.out, results)
            print(f"{task} {key}: nfe {record['nfe']}, {seconds:.1f} s, ks {record['mean_ks']:.4f}, "
                  f"dyn {record['dynamics_error']:.4f}", flush=True)


def bends(table: dict[str, dict[str, dict]]) -> dict[str, dict[str, int | None]]:
    """Per variant and metric: the fewest NFE from which that metric stays within tolerance at every
    larger NFE of the grid (None: not even at the largest): where each quality curve bends."""
    out: dict[str, dict[str, int | None]] = {}
    for variant, by_steps in table.items():
        rows = sorted(by_steps.values(), key=lambda r: r["nfe"])
        for metric in rows[0]["within"]:
            best = None
            for r in reversed(rows):
                if not r["within"][metric]:
                    break
                best = r["nfe"]
            out.setdefault(variant, {})[metric] = best
    return out


def run_td3bc(task: str, arm: str, args, results: dict) -> None:
    """Synthetic-only TD3+BC with the sampler ``arm`` ('variant-steps'), one offline run per seed."""
    from synther_fast.pipelines.offline import run_offline

    variant, steps = arm.rsplit("-", 1)
    sampler, churn, _ = VARIANTS[variant]
    edm = {"synther.edm.sampler": sampler, "synther.edm.num_steps": int(steps)}
    if churn is not None:
        edm["synther.edm.S_churn"] = churn
    entry = results.setdefault(task, {"draws": {}}).setdefault("td3bc", {}).setdefault(arm, {})
    for seed in args.td3bc_seeds:
        if str(seed) in entry:
            continue
        config = offline_quick().with_overrides(env=task, dataset=str(args.work / f"{task}_sac30k_s0.npz"), seed=seed,
                                                arms=("synthetic",), report=False, threads=args.threads, **edm)
        run_dir = args.work / "td3bc" / task / arm / f"seed_{seed}"
        summary = run_offline(config, run_dir, resume=run_dir.exists(), progress=False).summary
        final = summary.arms["synthetic"]
        entry[str(seed)] = {"return_mean": final["return_mean"], "return_std": final["return_std"],
                            "generate_seconds": summary.seconds.get("generate"), "sampler": summary.sampler}
        write_json(args.out, results)
        print(f"{task} TD3+BC {arm} seed {seed}: {final['return_mean']:.0f}", flush=True)


def markdown(results: dict) -> str:
    """The tables of docs/RESULTS.md: per task, every point's seed means and verdict."""
    lines = []
    for task, entry in results.items():
        if not entry.get("verdicts"):
            continue
        base, tol = entry["baseline"]["mean"], entry["baseline"]["tolerance"]
        metrics = list(base)
        lines += [f"{task} (baseline heun-128, 255 NFE; tolerance in brackets)", "",
                  "| sampler | NFE | seeds | " + " | ".join(f"{m} [{tol[m]:.3g}]" for m in metrics) + " | passes |",
                  "|---|---|---|" + "---|" * (len(metrics) + 1)]
        points = [(r["nfe"], v, r) for v, by_steps in entry["verdicts"].items() for r in by_steps.values()]
        for nfe, variant, r in sorted(points, key=lambda p: (p[1], p[0])):
            cells = [f"{r['mean'][m]:.4g}" + ("" if r["within"][m] else " ✗") for m in metrics]
            lines.append(f"| {variant} | {nfe} | {r['seeds']} | " + " | ".join(cells) + f" | {'yes' if r['passes'] else 'no'} |")
        lines += ["", f"fewest passing NFE: {entry.get('fewest_passing_nfe')}", "",
                  "Fewest NFE from which each metric stays within tolerance (-: never in the grid so far):", "",
                  "| sampler | " + " | ".join(metrics) + " |", "|---|" + "---|" * len(metrics)]
        for variant, by_metric in bends(entry["verdicts"]).items():
            lines.append(f"| {variant} | " + " | ".join("-" if by_metric[m] is None else str(by_metric[m])
                                                      for m in metrics) + " |")
        lines.append("")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ["mean_ks", "corr_error", "novelty", "dynamics_error"]
    tasks = [t for t in results if results[t].get("verdicts")]
    fig, axes = plt.subplots(len(tasks), len(shown), figsize=(3.4 * len(shown), 2.8 * len(tasks)), squeeze=False)
    for row, task in enumerate(tasks):
        entry = results[task]
        base, tol = entry["baseline"]["mean"], entry["baseline"]["tolerance"]
        for col, metric in enumerate(shown):
            ax = axes[row][col]
            for variant, by_steps in entry["verdicts"].items():
                points = sorted((r["nfe"], r["mean"][metric]) for r in by_steps.values())
                ax.plot(*zip(*points), marker="o", ms=3, label=variant)
            ax.axhspan(base[metric] - tol[metric], base[metric] + tol[metric], color="grey", alpha=0.2, lw=0)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")  # the 2-step Heun points blow up by orders of magnitude
            ax.set_ylim(top=10 * (base[metric] + tol[metric]))
            ax.set_title(f"{task}: {metric}", fontsize=8)
            ax.set_xlabel("network evaluations per row", fontsize=7)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--work", type=Path, default=Path("runs/few_step"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/sampler-study-cpu.json"))
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-nfe", type=int, default=None, help="skip the grid's points above this NFE (for now)")
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--only-plot", action="store_true")
    parser.add_argument("--td3bc", nargs="*", default=[], help="sampler arms, e.g. dpmpp_2m-16 (heun-128 joins them)")
    parser.add_argument("--td3bc-seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--td3bc-skip-baseline", action="store_true",
                        help="leave out the heun-128 runs (another process runs them: never two in one run directory)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = json.loads(args.out.read_text()) if args.out.exists() else {}
    if args.td3bc:
        for task in args.tasks:
            for arm in dict.fromkeys([*([] if args.td3bc_skip_baseline else ["heun-128"]), *args.td3bc]):
                run_td3bc(task, arm, args, results)
    elif not args.only_plot:
        args.work.mkdir(parents=True, exist_ok=True)
        for task in args.tasks:
            run_task(task, args, results)
    if args.plot is not None:
        plot(results, args.plot)
    if args.only_plot:
        print(markdown(results))


if __name__ == "__main__":
    main()
