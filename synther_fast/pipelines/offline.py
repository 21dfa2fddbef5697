"""The offline SynthER pipeline (Lu et al. 2023, section 4) as one call.

dataset -> diffusion fit -> N synthetic rows -> TD3+BC, IQL, EDAC or CQL on real / synthetic / mixed data ->
evaluation episodes at intervals -> summary. Every phase writes its result into the run directory
(config, dataset, model, samples, agent checkpoints, metrics, summary), so an interrupted run
resumes where it stopped (``resume=True``) and finished phases are never redone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.agents.cql import CQL
from synther_fast.agents.edac import EDAC
from synther_fast.agents.iql import IQL
from synther_fast.agents.td3_bc import TD3BC
from synther_fast.analysis.augment import AUGMENTATIONS, match_strength
from synther_fast.analysis.fidelity import marginal_fidelity
from synther_fast.analysis.novelty import novelty
from synther_fast.analysis.quality import write_report
from synther_fast.common.devices import resolve_device, torch_threads
from synther_fast.common.io import load_torch_dict, write_json
from synther_fast.common.progress import progress_bar
from synther_fast.common.rng import Stream, fit_seed, stream_seed
from synther_fast.config import (
    ARMS,
    AUGMENTATION_ARMS,
    OfflineConfig,
    for_task,
    offline_agent_config,
    offline_paper,
    offline_quick,
    validate,
)
from synther_fast.data.dataset import load_dataset, save_dataset
from synther_fast.data.rows import read_rows, write_rows
from synther_fast.diffusion import SynthER
from synther_fast.diffusion.edm import sampler_record
from synther_fast.envs import env_spec
from synther_fast.envs.factory import EnvSpec
from synther_fast.envs.names import NO_ENV
from synther_fast.envs.scores import D4RL_REFERENCE
from synther_fast.pipelines.collect import collect, load_policy, shipped_policy_path
from synther_fast.pipelines.evaluation import evaluation_record
from synther_fast.pipelines.report import learning_curves
from synther_fast.relevance import return_target, returns_to_go
from synther_fast.replay import MixedSampler, Prefetcher, ReplayBuffer
from synther_fast.runs import Run, RunError, RunFiles, read_checkpoint, seed_dir
from synther_fast.runs.summaries import OfflineSummary, Score, aggregate_seeds, write_summary

__all__ = ["OfflineConfig", "OfflineResult", "offline_paper", "offline_quick", "run_offline",
           "run_offline_seeds", "format_summary"]

@dataclass
class OfflineResult:
    run_dir: Path
    summary: OfflineSummary

    @property
    def arms(self) -> dict[str, dict[str, Any]]:
        """Per data arm: the final agent's numbers and every evaluation (summary["arms"])."""
        return self.summary.arms

    def scores(self) -> list[Score]:
        return self.summary.scores()


# -- pipeline ---------------------------------------------------------------------------------------
def run_offline(config: OfflineConfig, run_dir: str | os.PathLike[str], *, resume: bool = False,
                progress: bool = True, wandb: bool = False) -> OfflineResult:
    """Run (or resume) the offline pipeline in ``run_dir``; returns the summary.

    Every input is checked before the run directory is touched: the task, the dataset file and
    its dimensions, the device.
    """
    validate(config)
    device = resolve_device(config.device)
    given = None
    if config.env == NO_ENV:  # a dataset alone (logged or real-robot data): no simulator anywhere
        if config.dataset is None:
            raise ValueError("--env none needs --dataset: without an environment nothing can be collected")
        given = load_dataset(config.dataset)
        has_terminal = bool(given.terminals.any()) if config.has_terminal is None else config.has_terminal
        spec = EnvSpec(NO_ENV, given.obs_dim, given.act_dim, has_terminal, "none")
    else:
        spec = env_spec(config.env, config.has_terminal)
        given = _load_given_dataset(config, spec) if config.dataset is not None else None
    if config.dataset is None and config.collect_method == "policy":
        load_policy(config.collect_policy or shipped_policy_path(config.env))  # a bad file fails now
    _warn_if_slow(config, device)
    run = Run.open(run_dir, config, resume=resume)
    try:
        run.logger(wandb=wandb)
        with run.phase("dataset"):
            full = given if given is not None else _dataset_phase(config, run, progress)
            if given is not None and not run.done("dataset"):
                run.mark_done("dataset", {"rows": len(given), "source": config.dataset})
        dataset, unseen = kept_data(config, full)
        layout = dataset.layout(spec.has_terminal)
        real_rows = dataset.to_rows(layout)
        synthetic_rows = fidelity = guidance = None
        if needs_synthetic_rows(config):
            conditions, guidance = _return_conditions(config, dataset)
            with torch_threads(config.threads), run.phase("diffusion"):
                model = _diffusion_phase(config, run, real_rows, layout, device, progress, conditions)
            with torch_threads(config.threads), run.phase("generate"):
                target = None if guidance is None else [guidance["target"]]
                synthetic_rows = _generate_phase(config, run, model, progress, target)
            fidelity = marginal_fidelity(real_rows, synthetic_rows, layout)
        augmented = _augmentation_phase(config, real_rows, synthetic_rows, layout)
        data = OfflineData(dataset, layout, real_rows, synthetic_rows, augmented,
                           full.take(unseen).to_rows(layout) if len(unseen) else None)
        arms: dict[str, Any] = {}
        for arm in config.arms:
            with torch_threads(config.threads, small_networks=True), run.phase(f"agent_{arm}"):
                arms[arm] = _agent_phase(run, arm, data, device, progress)
            if arm in augmented:  # how its rows were made (the strength, tuned or given)
                arms[arm] = arms[arm] | {"augmentation": augmented[arm][1]}
    finally:
        run.close()
    returns = dataset.episode_returns()
    summary = OfflineSummary(
        env=config.env, algo=config.algo, seed=config.seed, preset=config.preset,
        dataset={"rows": len(dataset), "source": dataset.source,
                 "episode_return_mean": float(np.mean(returns)) if len(returns) else None,
                 **({} if config.subset == 1 else {"subset": config.subset, "full_rows": len(full)}),
                 **({} if config.cut is None else {"cut": config.cut, "full_rows": len(full)})},
        synthetic_rows=None if synthetic_rows is None else len(synthetic_rows),
        synther_seed=None if synthetic_rows is None else synther_config(config).seed,
        sampler=None if synthetic_rows is None else sampler_record(synther_config(config).edm),
        fidelity=None if fidelity is None else {k: v for k, v in fidelity.items() if k != "columns"},
        # the phases the summary reports on; the report's own time stays in state.json
        arms=arms, seconds={k: v for k, v in run.timings.items() if k != "report"}, device=str(device),
        guidance=guidance,
    )
    write_summary(run.path, summary)
    if fidelity is not None:
        write_json(run.artifact("fidelity"), fidelity)
        if config.report:
            _report_phase(run, data, summary)
    return OfflineResult(run.path, summary)


def _report_phase(run: Run, data: OfflineData, summary: OfflineSummary) -> None:
    """The data-quality report, from the rows the run holds (nothing is read back from disk); a
    failure there is reported as a warning and loses none of the run's results."""
    config: OfflineConfig = run.config
    written = run.state.get("report")
    if written and Path(written).exists():  # a finished run called again: the report stands
        return
    try:
        with run.phase("report"):
            model = run.artifact("diffusion_model")
            path = write_report(data.real_rows, data.synthetic_rows, data.layout, config.env, run.artifact("report"),
                                learning_curves=learning_curves(summary),
                                model_bytes=model.stat().st_size if model.is_file() else None,
                                unseen_rows=data.unseen_rows)
        run.record("report", str(path))  # in state.json at once
    except Exception as exc:  # the run's results are already on disk
        warnings.warn(f"the data-quality report could not be written ({type(exc).__name__}: {exc}); "
                      f"run `synther-fast report {run.path}` to retry", RuntimeWarning, stacklevel=3)


def _load_given_dataset(config: OfflineConfig, spec):
    dataset = load_dataset(config.dataset)
    if (dataset.obs_dim, dataset.act_dim) != (spec.obs_dim, spec.act_dim):
        raise ValueError(
            f"the dataset has observations of {dataset.obs_dim} and actions of {dataset.act_dim} "
            f"dimensions, but {config.env} has {spec.obs_dim} and {spec.act_dim}: pass the matching --env"
        )
    return dataset


def _warn_if_slow(config: OfflineConfig, device: torch.device) -> None:
    if device.type != "cpu" or config.preset != "paper":
        return
    # ~6.5e16 FLOP to sample 5M rows with the paper's denoiser (128 Heun steps), at ~1.3e11 FLOP/s on 2 cores.
    hours = 6.5e16 * config.synthetic_rows / 5e6 / 1.3e11 / 3600
    warnings.warn(
        f"the paper preset on a CPU: sampling {config.synthetic_rows:,} rows alone needs about "
        f"{hours:,.0f} hours on 2 cores (plus {config.synther.trainer.steps:,} diffusion steps and "
        f"{config.agent_steps:,} updates per arm); use a GPU or the quick preset",
        RuntimeWarning, stacklevel=3,
    )


def _dataset_phase(config: OfflineConfig, run: Run, progress: bool):
    path = run.artifact("dataset")
    if run.done("dataset") and path.exists():
        return load_dataset(path)
    dataset, _ = collect(config.env, config.collect_method, config.collect_steps, config.seed,
                         policy=config.collect_policy, noise=config.collect_noise, progress=progress,
                         has_terminal=config.has_terminal)
    save_dataset(dataset, path)
    run.mark_done("dataset", {"rows": len(dataset), "source": str(path)})
    return dataset


def _return_conditions(config: OfflineConfig, dataset) -> tuple[np.ndarray | None, dict[str, Any] | None]:
    """Return-conditioned generation (synther.guidance 'return', GTA): each real row's discounted
    return-to-go (the agents' gamma, 0.99) and the condition to generate at (a quantile of them,
    amplified); (None, None) for SynthER's unconditional model."""
    if config.synther.guidance != "return":
        return None, None
    guided = config.synther.guided
    returns = returns_to_go(dataset.rewards, (dataset.terminals > 0) | (dataset.timeouts > 0), 0.99)
    target = return_target(returns, guided.return_quantile, guided.return_amplify)
    return returns, {"kind": "return", "target": target, "quantile": guided.return_quantile,
                     "amplify": guided.return_amplify, "scale": guided.scale, "data_mean": float(returns.mean()),
                     "data_max": float(returns.max())}


def _diffusion_phase(config: OfflineConfig, run: Run, real_rows, layout, device, progress: bool,
                     conditions: np.ndarray | None = None):
    path, ckpt = run.artifact("diffusion_model"), run.artifact("diffusion_checkpoint")
    if run.done("diffusion") and path.exists():
        return SynthER.load(path, map_location=device)
    model = SynthER(layout, synther_config(config), device)
    model.fit(real_rows, checkpoint=ckpt, resume=ckpt if ckpt.exists() else None, progress=progress,
              conditions=conditions)
    model.save(path)
    run.mark_done("diffusion", {"steps": model.trained_steps, "final_loss": model.history[-1]["loss"]})
    return model


def synther_config(config: OfflineConfig):
    """The run's diffusion settings: told its task, with the fit seed resolved (synther.seed
    where set, else the run seed's FIT stream, so each run seed fits its own model)."""
    synther = for_task(config.synther, config.env)
    return dataclasses.replace(synther, seed=fit_seed(config.seed, synther.seed))


def _generate_phase(config: OfflineConfig, run: Run, model, progress: bool, conditions=None) -> np.ndarray:
    path = run.artifact("synthetic")
    if run.done("generate") and path.exists():
        return read_rows(path, model.layout)
    # Chunks are written into one preallocated array (the rows are held once, not twice).
    rows = np.empty((config.synthetic_rows, model.layout.width), np.float32)
    written = 0
    with progress_bar(config.synthetic_rows, "generate", unit="row", enabled=progress) as bar:
        seed = stream_seed(config.seed, Stream.GENERATION)
        for chunk in model.iter_chunks(config.synthetic_rows, seed=seed, conditions=conditions):
            rows[written:written + len(chunk)] = chunk
            written += len(chunk)
            bar.update(len(chunk))
    rows = rows[:written]  # non-finite rows may have been dropped
    write_rows(rows, model.layout, path, info=model.sampler_record)
    run.mark_done("generate", {"rows": written})
    return rows


def kept_data(config: OfflineConfig, full):
    """The real data a run fits and trains on (the paper's reduced datasets, Fig. 1a, or a
    scarce-data cut of whole episodes, drawn with the run's seed), and the index of the rows of
    ``full`` it leaves out: real data the model never sees."""
    seed = stream_seed(config.seed, Stream.SUBSET)
    if config.cut is not None:
        kept, dataset = full.cut_index(config.cut, seed), full.cut(config.cut, seed)
    else:
        kept = full.subset_index(config.subset, seed) if config.subset < 1 else np.arange(len(full))
        dataset = full.subset(config.subset, seed)
    return dataset, np.setdiff1d(np.arange(len(full)), kept)


def needs_synthetic_rows(config: OfflineConfig) -> bool:
    """Whether the run fits and samples a diffusion model: for a synthetic or mixed arm, or for an
    augmentation arm whose strength is tuned to the synthetic rows' novelty."""
    tuned = {"noise": config.noise_strength is None, "mixup": config.mixup_strength is None}
    return any(a in ("synthetic", "mixed") or tuned.get(a, False) for a in config.arms)


def _augmentation_phase(config: OfflineConfig, real_rows: np.ndarray, synthetic_rows: np.ndarray | None,
                        layout) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """Each explicit-augmentation arm's rows and what made them: ``synthetic_rows`` real rows drawn
    at random (as many rows as the synthetic arm gets) and augmented, at the configured strength or
    at the one whose mean novelty matches the synthetic rows' (seconds; recomputed on a resume,
    since the rows follow from the run's seed)."""
    out: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
    for index, arm in enumerate(AUGMENTATION_ARMS):  # a fixed index per arm: its seed never moves
        if arm not in config.arms:
            continue
        kind = AUGMENTATION_ARMS[arm]
        seed = stream_seed(config.seed, Stream.AUGMENTATION, index)
        rng = np.random.default_rng(seed)
        source = real_rows[rng.integers(0, len(real_rows), config.synthetic_rows)]
        strength = config.noise_strength if arm == "noise" else config.mixup_strength
        info: dict[str, Any] = {"augmentation": kind}
        if strength is None:
            assert synthetic_rows is not None  # a non-real arm: the synthetic rows were generated
            target = novelty(real_rows, synthetic_rows, max_rows=2000, seed=seed)["mean"]
            strength, reached = match_strength(kind, real_rows, layout, target, seed=seed)
            info |= {"tuned_to": "synthetic mean novelty", "target_novelty": target, "reached_novelty": reached}
        scale = {"scale": real_rows.astype(np.float64).std(axis=0)} if kind == "state_noise" else {}
        rows = AUGMENTATIONS[kind][0](source, float(strength), layout, seed=seed, **scale)
        out[arm] = (rows, info | {"strength": float(strength), "rows": len(rows)})
    return out


def reward_scale(dataset) -> float:
    """CORL's IQL reward normalisation for locomotion: 1000 / (max - min episode return)."""
    returns = dataset.episode_returns()
    if len(returns) < 2 or returns.max() == returns.min():
        return 1.0
    return float(1000.0 / (returns.max() - returns.min()))


def make_agent(config: OfflineConfig, dataset, device: torch.device):
    """The run's offline agent with its configured hyperparameters (config.td3_bc / .iql / .edac /
    .cql, and agent_width / agent_depth where set)."""
    # States are normalised with the real dataset's statistics, also for synthetic-only runs.
    mean = dataset.observations.mean(0)
    std = dataset.observations.std(0) + 1e-3
    settings = offline_agent_config(config)
    agents = {"td3_bc": TD3BC, "edac": EDAC, "cql": CQL, "iql": IQL}  # CORL's EDAC ignores mean / std
    if config.algo == "iql" and settings.max_steps is None:
        settings = dataclasses.replace(settings, max_steps=config.agent_steps)
    return agents[config.algo](dataset.obs_dim, dataset.act_dim, settings, mean, std, device, config.fast, config.seed)


@dataclass
class OfflineData:
    """What the agent phases learn from: the real dataset, its rows, and the synthetic rows."""

    dataset: Any
    layout: Any
    real_rows: np.ndarray
    synthetic_rows: np.ndarray | None
    augmented: dict[str, tuple[np.ndarray, dict[str, Any]]] = dataclasses.field(default_factory=dict)
    """augmentation arm -> (its rows, how they were made)"""
    unseen_rows: np.ndarray | None = None
    """real rows outside the cut or subset (never fitted on): the report's memorisation yardstick"""


def _agent_phase(run: Run, arm: str, data: OfflineData, device, progress: bool):
    config: OfflineConfig = run.config
    dataset, layout = data.dataset, data.layout
    phase = f"agent_{arm}"
    if run.done(phase):
        return run.result(phase)
    ratio = config.mixed_ratio if ARMS[arm] is None else ARMS[arm]
    # CORL's IQL scales rewards for the D4RL locomotion tasks only.
    locomotion = config.env.split("-")[0] in ("HalfCheetah", "Hopper", "Walker2d")
    scale = reward_scale(dataset) if config.algo == "iql" and locomotion else 1.0

    def buffer_of(rows):
        if rows is None:
            return None
        buffer = ReplayBuffer(len(rows), layout)
        if scale == 1.0:
            buffer.add(rows)
        else:
            scaled = rows.copy()
            scaled[:, layout.reward] *= scale
            buffer.add(scaled)
        return buffer

    second = data.augmented[arm][0] if arm in AUGMENTATION_ARMS else data.synthetic_rows
    real = buffer_of(data.real_rows) if ratio < 1 else None
    synthetic = buffer_of(second) if ratio > 0 else None
    sampler = MixedSampler(real, synthetic, ratio, config.batch_size, seed=stream_seed(config.seed, Stream.BATCHES))
    agent = make_agent(config, dataset, device)
    name = run.artifact("agent", arm=arm)
    step, evaluations = 0, []
    prefetch = Prefetcher(sampler, depth=2, device=device)
    state = _read_agent_checkpoint(run, name, device)
    if state is not None:
        agent.load_state_dict(state["agent"])
        prefetch.load_state_dict(json.loads(state["sampler"]))
        step, evaluations = int(state["step"]), json.loads(state["evaluations"])
        run.logger().truncate(phase, step)  # records after the checkpoint are logged again
    bar = progress_bar(config.agent_steps, f"{config.algo} on {arm}", unit="update", enabled=progress,
                       initial=step)
    try:
        while step < config.agent_steps:
            losses = agent.update(prefetch.next())
            step += 1
            bar.update(1)
            if step % config.eval_every == 0 or step == config.agent_steps:
                record = {} if config.env == NO_ENV else \
                    evaluation_record(agent.act, config.env, config.eval_episodes, config.seed, len(evaluations))
                record |= {k: float(v) for k, v in losses.items()}
                evaluations.append({"step": step, **record})
                run.logger().log(phase, step, record)
                if "return_mean" in record:
                    bar.set_postfix(ret=f"{record['return_mean']:.0f}")
            if step % config.checkpoint_every == 0 or step == config.agent_steps:
                payload = {"agent": agent.state_dict(), "sampler": json.dumps(prefetch.state_dict()),
                           "step": step, "evaluations": json.dumps(evaluations)}
                run.save_checkpoint(name, "offline_agent", payload, phase=phase)
    finally:
        prefetch.close()
        bar.close()
    final = evaluations[-1]
    info = {
        "ratio": ratio, "updates": step, "return_mean": final.get("return_mean"), "return_std": final.get("return_std"),
        "eval_episodes": 0 if config.env == NO_ENV else config.eval_episodes,
        "normalized_score": final.get("normalized_score"),
        # over every process that worked on this arm (resumes included), evaluations included
        "updates_per_second": step / max(run.timings.get(phase, 0.0), 1e-9),
        "evaluations": evaluations,
    }
    run.mark_done(phase, info)
    return info


def _read_agent_checkpoint(run: Run, path: Path, device) -> dict[str, Any] | None:
    """The arm's checkpoint; files of synther_fast 0.1.0 (untagged) are read as they were."""
    if not path.exists():
        return None
    try:
        return read_checkpoint(path, "offline_agent", device)
    except RunError:
        legacy = load_torch_dict(path, device, RunError, "agent checkpoint")
        if "format" not in legacy and {"agent", "sampler", "step", "evaluations"} <= set(legacy):
            return legacy
        raise


# -- several seeds ----------------------------------------------------------------------------------
def run_offline_seeds(config: OfflineConfig, seeds: list[int], run_dir: str | os.PathLike[str], *,
                      resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """One run per seed (runs.seed_dir: run_dir/seed_N), and mean ± std of each arm's final return."""
    results = [run_offline(dataclasses.replace(config, seed=s), seed_dir(run_dir, s), resume=resume,
                           progress=progress) for s in seeds]
    out = {"arms": aggregate_seeds([r.summary for r in results]), "runs": [str(r.run_dir) for r in results]}
    write_json(RunFiles(run_dir)["seed_summary"], out)
    return out


def format_summary(summary: OfflineSummary) -> str:
    """A side-by-side table of the arms (returns, normalised scores), then fidelity and time."""
    subset = summary["dataset"].get("subset")
    kept = "" if subset is None else f" (a {subset:.0%} subset of {summary['dataset']['full_rows']:,})"
    lines = [f"{summary['algo']} on {summary['env']} ({summary['dataset']['rows']:,} real transitions{kept}"
             + (f", {summary['synthetic_rows']:,} synthetic" if summary.get("synthetic_rows") else "")
             + f", seed {summary['seed']})"]
    lines.append(f"{'data':<10} {'return':>10} {'± spread':>10} {'normalised':>11}")
    for arm, info in summary["arms"].items():
        norm = "-" if info.get("normalized_score") is None else f"{info['normalized_score']:.1f}"
        ret, spread = (("-", "-") if info.get("return_mean") is None else
                       (f"{info['return_mean']:.1f}", f"{info['return_std']:.1f}"))
        lines.append(f"{arm:<10} {ret:>10} {spread:>10} {norm:>11}")
    episodes = next(iter(summary["arms"].values())).get("eval_episodes")
    if summary["env"] == NO_ENV:
        lines.append("return: not measured (--env none: a dataset alone, no environment to evaluate in); "
                     "the agents were trained and checkpointed")
    else:
        lines.append(f"return: mean over {episodes or 'the'} evaluation episodes of the final policy; spread: their "
                     f"standard deviation (one seed)")
    if any(info.get("normalized_score") is not None for info in summary["arms"].values()):
        low, high = D4RL_REFERENCE[summary["env"].split("-")[0]]
        lines.append(f"normalised: D4RL score 100 (R - {low:.1f}) / ({high:.1f} - {low:.1f}), D4RL's "
                     f"random and expert returns")
    if summary.get("fidelity"):
        f = summary["fidelity"]
        lines.append(f"synthetic marginals: mean KS {f['mean_ks']:.3f} (max {f['max_ks']:.3f}), "
                     f"mean |Δmean| {f['mean_gap_in_std']:.3f} std")
    if summary["dataset"].get("episode_return_mean") is not None:
        lines.append(f"dataset episodes: mean return {summary['dataset']['episode_return_mean']:.1f}")
    seconds = summary.get("seconds", {})
    if seconds:
        lines.append("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()))
    speeds = [f"{arm} {info['updates_per_second']:.0f}" for arm, info in summary["arms"].items()
              if "updates_per_second" in info]
    if speeds:
        lines.append("agent updates/s (this machine, under its load at the time): " + ", ".join(speeds))
    return "\n".join(lines)
