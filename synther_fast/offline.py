"""The offline SynthER pipeline (Lu et al. 2023, section 4) as one call.

dataset -> diffusion fit -> N synthetic rows -> TD3+BC or IQL on real / synthetic / mixed data ->
evaluation episodes at intervals -> summary. Every phase writes its result into the run directory
(config, dataset, model, samples, agent checkpoints, metrics, summary), so an interrupted run
resumes where it stopped (``resume=True``) and finished phases are never redone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.config import SynthERConfig, paper_offline, quick
from synther_fast.io import atomic_write, load_torch_dict
from synther_fast.progress import progress_bar

ARMS = {"real": 0.0, "synthetic": 1.0, "mixed": None}
ALGOS = ("td3_bc", "iql")
CONFIG_FORMAT = "synther_fast.OfflineConfig"


@dataclass(frozen=True)
class OfflineConfig:
    """One offline experiment. Defaults are the paper's (5M synthetic rows, 1M agent updates)."""

    env: str = "HalfCheetah-v5"
    """task name (gymnasium v5 or dmc:domain-task); evaluation runs there"""
    dataset: str | None = None
    """dataset path (.npz, D4RL .hdf5, Minari folder); None: collect one with collect_*"""
    collect_method: str = "policy"
    """without a dataset: 'random', 'policy' (a checkpoint, per-episode noise) or 'sac' (replay)"""
    collect_steps: int = 50_000
    collect_policy: str | None = None
    """policy checkpoint for collect_method 'policy'; None: the one shipped for env"""
    collect_noise: tuple[float, ...] = (0.0, 0.3, 0.6, 1.0)
    """per-episode action-noise levels, cycled: a spread gives mixed-quality data"""
    algo: str = "td3_bc"
    arms: tuple[str, ...] = ("real", "synthetic")
    """agents to train: 'real' (ratio 0), 'synthetic' (ratio 1, as the paper), 'mixed'"""
    mixed_ratio: float = 0.5
    synthetic_rows: int = 5_000_000
    synther: SynthERConfig = field(default_factory=paper_offline)
    agent_steps: int = 1_000_000
    batch_size: int = 256
    eval_every: int = 10_000
    eval_episodes: int = 10
    checkpoint_every: int = 10_000
    seed: int = 0
    device: str | None = None
    """None: cuda if available, else cpu"""
    fast: bool = True
    """stacked critics + foreach optimisers (+ CUDA graphs on GPU); False: the plain reference"""
    preset: str = "custom"

    def __post_init__(self) -> None:
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"arms must be a non-empty subset of {tuple(ARMS)}, got {self.arms}")
        if self.collect_method not in ("random", "policy", "sac"):
            raise ValueError(f"collect_method must be random, policy or sac, got {self.collect_method!r}")
        for name in ("agent_steps", "batch_size", "eval_every", "eval_episodes", "checkpoint_every",
                     "synthetic_rows", "collect_steps"):
            if getattr(self, name) <= 0:
                raise ValueError(f"OfflineConfig.{name} must be positive, got {getattr(self, name)}")
        if not 0.0 <= self.mixed_ratio <= 1.0:
            raise ValueError(f"mixed_ratio must lie in [0, 1], got {self.mixed_ratio}")

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["synther"] = self.synther.to_dict()
        out = {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}
        return {"format": CONFIG_FORMAT, "version": 1, **out}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OfflineConfig:
        if data.get("format") != CONFIG_FORMAT:
            raise ValueError("not an OfflineConfig description")
        body = {k: v for k, v in data.items() if k not in ("format", "version")}
        body["synther"] = SynthERConfig.from_dict(body["synther"])
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in body.items()})

    def with_overrides(self, **overrides: Any) -> OfflineConfig:
        """Top-level fields by name; the SynthER config by 'synther.trainer.steps' style keys."""
        synther = {k[len("synther."):]: v for k, v in overrides.items() if k.startswith("synther.")}
        top = {k: v for k, v in overrides.items() if not k.startswith("synther.")}
        unknown = set(top) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown OfflineConfig fields: {sorted(unknown)}")
        for key in ("arms", "collect_noise"):
            if key in top and not isinstance(top[key], tuple):
                value = top[key]
                top[key] = tuple(value) if isinstance(value, list) else (value,)
        defaults = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for key, value in top.items():  # e.g. --set agent_steps=1e5 arrives as a float
            if isinstance(defaults[key], int) and not isinstance(defaults[key], bool) and isinstance(value, float):
                if not value.is_integer():
                    raise ValueError(f"OfflineConfig.{key} must be an integer, got {value}")
                top[key] = int(value)
        config = dataclasses.replace(self, **top)
        if synther:
            config = dataclasses.replace(config, synther=config.synther.replace(**synther))
        return config


def offline_quick() -> OfflineConfig:
    """The CPU demo: 30k mixed-quality transitions from the shipped policy, the quick diffusion
    preset, 100k synthetic rows, 15k TD3+BC updates per arm (a few minutes per arm on 2 cores)."""
    return OfflineConfig(
        collect_steps=30_000, synthetic_rows=100_000, synther=quick(), agent_steps=15_000,
        eval_every=5_000, eval_episodes=5, checkpoint_every=5_000, preset="quick",
    )


def offline_paper() -> OfflineConfig:
    """The published offline settings: 5M synthetic rows, paper_offline diffusion, 1M updates."""
    return OfflineConfig(preset="paper")


OFFLINE_PRESETS = {"quick": offline_quick, "paper": offline_paper}


@dataclass
class OfflineResult:
    run_dir: Path
    summary: dict[str, Any]

    @property
    def scores(self) -> dict[str, dict[str, Any]]:
        return self.summary["arms"]


# -- run directory ----------------------------------------------------------------------------------
class RunDirectory:
    """Files of one run; ``state.json`` records finished phases."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.state_file = self.path / "state.json"
        self.state = json.loads(self.state_file.read_text()) if self.state_file.exists() else {"done": {}}

    def file(self, name: str) -> Path:
        return self.path / name

    def done(self, phase: str) -> bool:
        return phase in self.state["done"]

    def mark_done(self, phase: str, info: dict[str, Any]) -> None:
        self.state["done"][phase] = info
        write_json(self.state_file, self.state)


def write_json(path: Path, data: Any) -> None:
    with atomic_write(path) as handle:
        handle.write(json.dumps(data, indent=2, default=_json_default).encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class MetricsLog:
    """metrics.jsonl (one record per line), metrics.csv (long format) and TensorBoard if installed."""

    def __init__(self, run_dir: RunDirectory) -> None:
        self.jsonl = run_dir.file("metrics.jsonl")
        self.csv = run_dir.file("metrics.csv")
        if not self.csv.exists():
            self.csv.write_text("phase,step,name,value\n")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir.file("tensorboard")))
        except Exception:  # tensorboard is optional
            self.tb = None

    def log(self, phase: str, step: int, values: dict[str, float]) -> None:
        with open(self.jsonl, "a") as f:
            f.write(json.dumps({"phase": phase, "step": step, **values, "time": time.time()}) + "\n")
        with open(self.csv, "a") as f:
            for name, value in values.items():
                f.write(f"{phase},{step},{name},{value}\n")
        if self.tb is not None:
            for name, value in values.items():
                self.tb.add_scalar(f"{phase}/{name}", value, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# -- pipeline ---------------------------------------------------------------------------------------
def run_offline(config: OfflineConfig, run_dir: str | os.PathLike[str], *, resume: bool = False,
                progress: bool = True) -> OfflineResult:
    """Run (or resume) the offline pipeline in ``run_dir``; returns the summary."""
    from synther_fast.envs import env_spec

    run = RunDirectory(run_dir)
    config_file = run.file("config.json")
    if config_file.exists():
        saved = OfflineConfig.from_dict(json.loads(config_file.read_text()))
        if not resume:
            raise FileExistsError(
                f"{run.path} already holds a run; pass resume=True (--resume) to continue it, or "
                f"choose another run directory (nothing was changed)"
            )
        if saved != config:
            raise ValueError(f"{run.path} holds a run with a different config; resume it with the same one")
    else:
        write_json(config_file, config.to_dict())
    device = torch.device(config.device) if config.device else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    _warn_if_slow(config, device)
    spec = env_spec(config.env)
    metrics = MetricsLog(run)
    timings: dict[str, float] = dict(run.state.get("timings", {}))

    def timed(phase: str, fn):
        already_done = run.done(phase)  # a finished phase is only reloaded: no time to record
        start = time.perf_counter()
        out = fn()
        if not already_done:
            timings[phase] = timings.get(phase, 0.0) + time.perf_counter() - start
            run.state["timings"] = timings
            write_json(run.state_file, run.state)
        return out

    dataset = timed("dataset", lambda: _dataset_phase(config, run, progress))
    if (dataset.obs_dim, dataset.act_dim) != (spec.obs_dim, spec.act_dim):
        raise ValueError(
            f"the dataset has observations of {dataset.obs_dim} and actions of {dataset.act_dim} "
            f"dimensions, but {config.env} has {spec.obs_dim} and {spec.act_dim}: pass the matching --env"
        )
    layout = dataset.layout(spec.has_terminal)
    real_rows = dataset.to_rows(layout)
    needs_synthetic = any(a != "real" for a in config.arms)
    synthetic_rows = None
    fidelity = None
    if needs_synthetic:
        model = timed("diffusion", lambda: _diffusion_phase(config, run, real_rows, layout, device, progress))
        synthetic_rows = timed("generate", lambda: _generate_phase(config, run, model, progress))
        from synther_fast.analysis import marginal_fidelity

        fidelity = marginal_fidelity(real_rows, synthetic_rows, layout)
    arms: dict[str, Any] = {}
    for arm in config.arms:
        arms[arm] = timed(f"agent_{arm}", lambda arm=arm: _agent_phase(
            config, run, arm, dataset, real_rows, synthetic_rows, layout, device, metrics, progress))
    metrics.close()
    summary = {
        "env": config.env, "algo": config.algo, "seed": config.seed, "preset": config.preset,
        "dataset": {"rows": len(dataset), "source": dataset.source,
                    "episode_return_mean": float(np.mean(dataset.episode_returns())) if len(dataset.episode_returns()) else None},
        "synthetic_rows": None if synthetic_rows is None else len(synthetic_rows),
        "fidelity": None if fidelity is None else {k: v for k, v in fidelity.items() if k != "columns"},
        "arms": arms, "seconds": timings, "device": str(device),
    }
    write_json(run.file("summary.json"), summary)
    if fidelity is not None:
        write_json(run.file("fidelity.json"), fidelity)
    return OfflineResult(run.path, summary)


def _warn_if_slow(config: OfflineConfig, device: torch.device) -> None:
    if device.type != "cpu" or config.preset != "paper":
        return
    # Arithmetic from PAPER.md: ~6.5e16 FLOP of sampling at ~1.3e11 FLOP/s on 2 cores.
    hours = 6.5e16 * config.synthetic_rows / 5e6 / 1.3e11 / 3600
    warnings.warn(
        f"the paper preset on a CPU: sampling {config.synthetic_rows:,} rows alone needs about "
        f"{hours:,.0f} hours on 2 cores (plus {config.synther.trainer.steps:,} diffusion steps and "
        f"{config.agent_steps:,} updates per arm); use a GPU or the quick preset",
        RuntimeWarning, stacklevel=3,
    )


def _dataset_phase(config: OfflineConfig, run: RunDirectory, progress: bool):
    from synther_fast.data import load_dataset, save_dataset
    from synther_fast.data.collect import load_policy, rollouts, sac_replay, shipped_policy_path

    if config.dataset is not None:
        dataset = load_dataset(config.dataset)
        run.mark_done("dataset", {"rows": len(dataset), "source": config.dataset})
        return dataset
    path = run.file("dataset.npz")
    if run.done("dataset") and path.exists():
        return load_dataset(path)
    if config.collect_method == "random":
        dataset = rollouts(config.env, None, config.collect_steps, config.seed, progress=progress)
    elif config.collect_method == "policy":
        policy_path = config.collect_policy or shipped_policy_path(config.env)
        policy, _ = load_policy(policy_path)
        dataset = rollouts(config.env, policy, config.collect_steps, config.seed, config.collect_noise,
                           progress=progress)
    else:
        dataset, _ = sac_replay(config.env, config.collect_steps, config.seed, progress=progress)
    save_dataset(dataset, path)
    run.mark_done("dataset", {"rows": len(dataset), "source": str(path)})
    return dataset


def _diffusion_phase(config, run, real_rows, layout, device, progress):
    from synther_fast.diffusion import SynthER

    path, ckpt = run.file("synther.pt"), run.file("synther.ckpt")
    if run.done("diffusion") and path.exists():
        return SynthER.load(path, map_location=device)
    model = SynthER(layout, config.synther, device)
    model.fit(real_rows, checkpoint=ckpt, resume=ckpt if ckpt.exists() else None, progress=progress)
    model.save(path)
    run.mark_done("diffusion", {"steps": model.trained_steps, "final_loss": model.history[-1]["loss"]})
    return model


def _generate_phase(config, run, model, progress):
    path = run.file("synthetic.npz")
    if run.done("generate") and path.exists():
        with np.load(path) as f:
            return f["rows"]
    chunks, written = [], 0
    with progress_bar(config.synthetic_rows, "generate", unit="row", enabled=progress) as bar:
        for rows in model.iter_chunks(config.synthetic_rows, seed=config.seed):
            chunks.append(rows)
            written += len(rows)
            bar.update(len(rows))
    rows = np.concatenate(chunks)
    with atomic_write(path) as handle:
        np.savez(handle, rows=rows)
    run.mark_done("generate", {"rows": written})
    return rows


def reward_scale(dataset) -> float:
    """CORL's IQL reward normalisation for locomotion: 1000 / (max - min episode return)."""
    returns = dataset.episode_returns()
    if len(returns) < 2 or returns.max() == returns.min():
        return 1.0
    return float(1000.0 / (returns.max() - returns.min()))


def make_agent(config: OfflineConfig, dataset, device: torch.device):
    from synther_fast.agents.iql import IQL, IQLConfig
    from synther_fast.agents.td3_bc import TD3BC, TD3BCConfig

    # States are normalised with the real dataset's statistics, also for synthetic-only runs.
    mean = dataset.observations.mean(0)
    std = dataset.observations.std(0) + 1e-3
    if config.algo == "td3_bc":
        return TD3BC(dataset.obs_dim, dataset.act_dim, TD3BCConfig(), mean, std, device, config.fast, config.seed)
    return IQL(dataset.obs_dim, dataset.act_dim, IQLConfig(max_steps=config.agent_steps), mean, std, device,
               config.fast, config.seed)


def _agent_phase(config, run, arm, dataset, real_rows, synthetic_rows, layout, device, metrics, progress):
    from synther_fast.evaluation import evaluate, normalized_score
    from synther_fast.replay import MixedSampler, Prefetcher, ReplayBuffer

    phase = f"agent_{arm}"
    if run.done(phase):
        return run.state["done"][phase]
    ratio = config.mixed_ratio if ARMS[arm] is None else ARMS[arm]
    # CORL's IQL scales rewards for the D4RL locomotion tasks only.
    locomotion = config.env.split("-")[0] in ("HalfCheetah", "Hopper", "Walker2d")
    scale = reward_scale(dataset) if config.algo == "iql" and locomotion else 1.0

    def buffer_of(rows):
        if rows is None:
            return None
        rows = rows.copy()
        rows[:, layout.reward] *= scale
        buffer = ReplayBuffer(len(rows), layout)
        buffer.add(rows)
        return buffer

    real = buffer_of(real_rows) if ratio < 1 else None
    synthetic = buffer_of(synthetic_rows) if ratio > 0 else None
    sampler = MixedSampler(real, synthetic, ratio, config.batch_size, seed=config.seed)
    agent = make_agent(config, dataset, device)
    ckpt = run.file(f"{phase}.ckpt")
    step, evaluations = 0, []
    prefetch = Prefetcher(sampler, depth=2, device=device)
    if ckpt.exists():
        state = load_torch_dict(ckpt, device, ValueError, "agent checkpoint")
        agent.load_state_dict(state["agent"])
        prefetch.load_state_dict(json.loads(state["sampler"]))
        step, evaluations = int(state["step"]), json.loads(state["evaluations"])
    bar = progress_bar(config.agent_steps, f"{config.algo} on {arm}", unit="update", enabled=progress,
                       initial=step)
    started = time.perf_counter()
    try:
        while step < config.agent_steps:
            losses = agent.update(prefetch.next())
            step += 1
            bar.update(1)
            if step % config.eval_every == 0 or step == config.agent_steps:
                returns = evaluate(agent.act, config.env, config.eval_episodes, seed=10_000 + config.seed)
                record = {"return_mean": float(returns.mean()), "return_std": float(returns.std())}
                score = normalized_score(config.env, record["return_mean"])
                if score is not None:
                    record["normalized_score"] = score
                record |= {k: float(v) for k, v in losses.items()}
                evaluations.append({"step": step, **record})
                metrics.log(phase, step, record)
                bar.set_postfix(ret=f"{record['return_mean']:.0f}")
            if step % config.checkpoint_every == 0 or step == config.agent_steps:
                payload = {"agent": agent.state_dict(), "sampler": json.dumps(prefetch.state_dict()),
                           "step": step, "evaluations": json.dumps(evaluations)}
                with atomic_write(ckpt) as handle:
                    torch.save(payload, handle)
    finally:
        prefetch.close()
        bar.close()
    final = evaluations[-1]
    info = {
        "ratio": ratio, "updates": step, "return_mean": final["return_mean"], "return_std": final["return_std"],
        "normalized_score": final.get("normalized_score"),
        "updates_per_second": step / max(time.perf_counter() - started, 1e-9),
        "evaluations": evaluations,
    }
    run.mark_done(phase, info)
    return info


# -- several seeds ----------------------------------------------------------------------------------
def run_offline_seeds(config: OfflineConfig, seeds: list[int], run_dir: str | os.PathLike[str], *,
                      resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """One run per seed under run_dir/seed_N, and mean +- std of each arm's final return."""
    results = [run_offline(dataclasses.replace(config, seed=s), Path(run_dir) / f"seed_{s}",
                           resume=resume, progress=progress) for s in seeds]
    aggregate: dict[str, Any] = {}
    for arm in config.arms:
        returns = np.array([r.scores[arm]["return_mean"] for r in results])
        scores = [r.scores[arm]["normalized_score"] for r in results]
        aggregate[arm] = {
            "return_mean": float(returns.mean()), "return_std": float(returns.std()),
            "normalized_mean": None if None in scores else float(np.mean(scores)),
            "normalized_std": None if None in scores else float(np.std(scores)),
            "seeds": seeds,
        }
    out = {"arms": aggregate, "runs": [str(r.run_dir) for r in results]}
    write_json(Path(run_dir) / "summary_seeds.json", out)
    return out


def format_summary(summary: dict[str, Any]) -> str:
    """A side-by-side table of the arms (returns, normalised scores, fidelity, time)."""
    lines = [f"{summary['algo']} on {summary['env']} ({summary['dataset']['rows']:,} real transitions"
             + (f", {summary['synthetic_rows']:,} synthetic" if summary.get("synthetic_rows") else "") + ")"]
    lines.append(f"{'data':<10} {'return':>16} {'normalised':>11} {'updates/s':>10}")
    for arm, info in summary["arms"].items():
        norm = "-" if info.get("normalized_score") is None else f"{info['normalized_score']:.1f}"
        lines.append(f"{arm:<10} {info['return_mean']:>9.1f} ± {info['return_std']:<5.1f} {norm:>11} "
                     f"{info['updates_per_second']:>10.0f}")
    if summary.get("fidelity"):
        f = summary["fidelity"]
        lines.append(f"synthetic marginals: mean KS {f['mean_ks']:.3f} (max {f['max_ks']:.3f}), "
                     f"mean |Δmean| {f['mean_gap_in_std']:.3f} std")
    if summary["dataset"].get("episode_return_mean") is not None:
        lines.append(f"dataset episodes: mean return {summary['dataset']['episode_return_mean']:.1f}")
    seconds = summary.get("seconds", {})
    if seconds:
        lines.append("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()))
    return "\n".join(lines)
