"""The online pipeline (Lu et al. 2023, section 4.2): SAC, REDQ, or SAC + SynthER in a run directory.

Every environment step: act (uniformly random for the first ``start_steps``), store the real
transition (a time-limit truncation is not a terminal), and — once the replay holds more than
``start_steps`` rows, as the REDQ code — run one learner block: ``utd`` critic updates on batches
from the C++ MixedSampler, the actor and temperature once (SACConfig). With SynthER, every
``retrain_every`` steps a *fresh* diffusion model is fitted on the whole real replay and
``num_samples`` generated rows replace the synthetic buffer; batches are then ``synthetic_ratio``
synthetic (all real before the first refill, as the published code).

The parts live apart: the environment loop, its state and the learner block in
``interaction.py`` (SAC data collection runs the same loop without a run directory), the refits in
``refit.py``; :class:`OnlineRun` wires them to the run directory's evaluations and checkpoints.

Resumable: a checkpoint (agent, optimisers, sampler and action RNG, counters, the real replay,
the evaluations and the current refill) is written atomically at the first episode end after
every ``checkpoint_every`` steps. Episodes are seeded from (seed, episode index), so a resumed run
replays exactly what an uninterrupted one does; refits already written are reloaded, not redone.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.agents.sac import SAC
from synther_fast.analysis.dynamics import dynamics_error
from synther_fast.analysis.fidelity import marginal_fidelity
from synther_fast.analysis.novelty import novelty
from synther_fast.analysis.tasks import unsupported_reason
from synther_fast.common.devices import resolve_device, torch_threads
from synther_fast.common.rng import Stream, fit_seed, stream_seed
from synther_fast.config import OnlineConfig, for_task, validate
from synther_fast.envs import env_spec, make_env
from synther_fast.pipelines.evaluation import evaluation_record
from synther_fast.pipelines.interaction import Learner, OnlineState, episode_seed, interact
from synther_fast.pipelines.refit import Refitter
from synther_fast.relevance import Curiosity, td_errors, top_fraction
from synther_fast.replay import ReplayBuffer, TransitionLayout
from synther_fast.runs import Run
from synther_fast.runs.summaries import OnlineSummary, read_summary, write_summary


@dataclass
class OnlineResult:
    run_dir: Path
    summary: OnlineSummary

    @property
    def final_return(self) -> float:
        return self.summary.final_return_mean

    def scores(self):
        return self.summary.scores()


def synther_config_for(config: OnlineConfig, suite: str):
    """The refit's diffusion settings: DMC rewards stay unnormalised (the published choice)."""
    synther = for_task(config.synther, config.env)
    if suite == "dmc" and not synther.normalizer.skip_reward:
        synther = dataclasses.replace(synther, normalizer=dataclasses.replace(synther.normalizer, skip_reward=True))
    return synther


def bulk_distance(real_rows: np.ndarray, rows: np.ndarray, max_rows: int = 20_000) -> float:
    """How far ``rows`` lie from the bulk of the real rows: their mean distance from the real mean
    in real standard deviations (RMS over columns), over that of the real rows themselves (1: as
    far out as the data; a guided refill aimed at rare transitions lies further)."""
    mean, std = real_rows.mean(0), real_rows.std(0) + 1e-6

    def spread(x: np.ndarray) -> float:
        x = x[np.random.default_rng(0).choice(len(x), max_rows, replace=False)] if len(x) > max_rows else x
        return float(np.sqrt((((x - mean) / std) ** 2).mean(1)).mean())

    return spread(rows) / spread(real_rows)



class OnlineRun:
    """One online run's parts, wired together: the environment loop (interaction.interact), the
    learner block, the SynthER refits, evaluations and checkpoints in the run directory."""

    def __init__(self, config: OnlineConfig, run: Run, device: torch.device, progress: bool) -> None:
        self.config, self.run, self.device, self.progress = config, run, device, progress
        self.spec = env_spec(config.env, config.has_terminal)
        self.layout = TransitionLayout(self.spec.obs_dim, self.spec.act_dim, self.spec.has_terminal)
        self.env = make_env(config.env)
        self.agent = SAC(self.spec.obs_dim, self.spec.act_dim, config.sac, device, config.seed, config.env)
        self.real = ReplayBuffer(config.real_capacity, self.layout)
        synthetic = ReplayBuffer(config.synthetic_capacity, self.layout) if config.uses_synther else None
        ratio = config.synthetic_ratio if config.uses_synther else 0.0
        self.learner = Learner(self.agent, self.real, synthetic, ratio, config.sac.batch_size, config.sac.utd,
                               self.layout, device, config.seed)
        self.refitter = Refitter(self.layout, synther_config_for(config, self.spec.suite), config.num_samples,
                                 config.synthetic_capacity, device, run.files, config.seed,
                                 asynchronous=config.async_refit, progress=progress)
        self.action_rng = np.random.default_rng(stream_seed(config.seed, Stream.EXPLORATION))
        self.state = OnlineState()
        self._next_checkpoint = config.checkpoint_every
        # Guided refits by curiosity: the ICM model learns from one real batch per learner step (PGR).
        guided = config.synther.guided
        self.curiosity = self.curiosity_rng = None
        if config.synther.guidance == "curiosity":
            self.curiosity = Curiosity(self.layout, guided.curiosity_hidden, guided.curiosity_lr, device,
                                       seed=stream_seed(config.seed, Stream.CURIOSITY_INIT))
            self.curiosity_rng = np.random.default_rng(stream_seed(config.seed, Stream.CURIOSITY_BATCHES))

    # -- views used by tests and benchmarks -----------------------------------------------------
    @property
    def sampler(self):
        return self.learner.sampler

    @property
    def synthetic(self) -> ReplayBuffer | None:
        return self.learner.synthetic

    @property
    def t(self) -> int:
        return self.state.t

    # -- checkpoints --------------------------------------------------------------------------
    def save(self) -> None:
        self._collect_refit(wait=True)  # a checkpoint never refers to a half-done refit
        self.state.seconds["learner"] = self.learner.seconds
        self.real.save(self.run.artifact("real_replay"))
        payload = {"agent": self.agent.state_dict(), "sampler": json.dumps(self.learner.sampler.state_dict()),
                   "action_rng": json.dumps(self.action_rng.bit_generator.state), **self.state.to_payload()}
        if self.curiosity is not None:
            payload |= {"curiosity": self.curiosity.state_dict(),
                        "curiosity_rng": json.dumps(self.curiosity_rng.bit_generator.state)}
        self.run.save_checkpoint(self.run.artifact("online_checkpoint"), "online", payload, phase="online")
        self.refitter.keep_only(len(self.state.refits) - 1)

    def restore(self) -> bool:
        state = self.run.load_checkpoint(self.run.artifact("online_checkpoint"), "online", map_location=self.device)
        if state is None:
            self.refitter.discard_all()
            return False
        self.agent.load_state_dict(state["agent"])
        self.state = OnlineState.from_payload(state)
        replay = self.run.artifact("real_replay")
        self.real.restore(replay)
        if self.real.total_added != self.t:  # killed between the replay's write and the checkpoint's
            rows = self.real.to_numpy()[: self.t]  # oldest first, and env_steps <= real_capacity
            if len(rows) != self.t:
                raise RuntimeError(f"{replay} holds {len(rows)} rows, the checkpoint needs {self.t}: the run "
                                   f"directory is damaged")
            self.real.clear()
            self.real.add(rows)
        self.learner.reset_seconds(self.state.seconds["learner"])
        if self.state.refits:  # the synthetic rows the agent was learning from at the checkpoint
            self.learner.swap_synthetic(self.refitter.load(len(self.state.refits) - 1))
        self.learner.sampler.load_state_dict(json.loads(state["sampler"]))
        self.action_rng.bit_generator.state = json.loads(state["action_rng"])
        if self.curiosity is not None:
            self.curiosity.load_state_dict(state["curiosity"])
            self.curiosity_rng.bit_generator.state = json.loads(state["curiosity_rng"])
        if self.run.metrics is not None:  # records logged after the checkpoint are logged again
            self.run.metrics.truncate("online", self.t)
            self.run.metrics.truncate("refit", self.t)
        return True

    # -- SynthER refits -----------------------------------------------------------------------
    def refit(self) -> dict[str, Any]:
        """A fresh diffusion model on the whole real replay; its rows replace the synthetic ones."""
        real_rows = self.real.to_numpy()
        info, rows = self.refitter.refit(len(self.state.refits), real_rows, self.t, *self.relevance(real_rows))
        self._apply_refill(info, rows)
        return info

    def relevance(self, real_rows: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Guided refits: every real row's relevance score (the conditions of the fit) and the
        pool of generation conditions, the top guided.top_frac of the scores (PGR). (None, None)
        for SynthER's unconditional refits."""
        guidance = self.config.synther.guidance
        if guidance == "none":
            return None, None
        if guidance == "curiosity":
            scores = self.curiosity.score(real_rows)
        else:  # "td": the current critics' TD errors
            scores = td_errors(self.agent, real_rows, self.layout)
        return scores, top_fraction(scores, self.config.synther.guided.top_frac)

    def _apply_refill(self, info: dict[str, Any], rows: ReplayBuffer) -> None:
        """Swap the new synthetic rows in and record the analysis module's measures of them
        (subsampled: a few hundred ms on a CPU)."""
        self.state.seconds["fit"] += info.get("fit_seconds", 0.0)
        self.state.seconds["generate"] += info.get("generate_seconds", 0.0)
        self.learner.swap_synthetic(rows)
        real_rows, synthetic_rows = self.real.to_numpy(), rows.to_numpy()
        fidelity = marginal_fidelity(real_rows, synthetic_rows, self.layout, max_rows=20_000)
        near = novelty(real_rows, synthetic_rows, max_rows=2000, seed=len(self.state.refits))
        info |= {"mean_ks": fidelity["mean_ks"], "max_ks": fidelity["max_ks"],
                 "mean_w1_in_std": fidelity["mean_w1_in_std"], "corr_error": fidelity["corr_error"],
                 "mean_gap_in_std": fidelity["mean_gap_in_std"], "novelty_mean": near["mean"],
                 "bulk_distance": bulk_distance(real_rows, synthetic_rows), "swapped_at": self.t}
        if unsupported_reason(self.config.env) is None:  # the simulator's verdict on 1000 of the rows (~0.1 s)
            error = dynamics_error(synthetic_rows, self.layout, self.config.env, max_rows=1000,
                                   seed=len(self.state.refits)).summary()
            info |= {"dynamics_next_obs_relative_mse": error["next_obs_relative_mse"],
                     "dynamics_reward_mse": error["reward_mse"]}
        self.state.refits.append(info)
        self.run.logger().log("refit", self.t, {k: v for k, v in info.items() if isinstance(v, (int, float))})

    def _collect_refit(self, wait: bool) -> None:
        done = self.refitter.finish(wait)
        if done is not None:
            self._apply_refill(*done)

    # -- the loop's hooks ---------------------------------------------------------------------
    def learn(self) -> None:
        self.learner.step()
        if self.curiosity is not None:  # one real batch per environment step, as PGR
            index = self.curiosity_rng.integers(0, len(self.real), self.config.sac.batch_size)
            self.curiosity.update(self.real.storage()[index])

    def evaluate(self) -> dict[str, Any]:
        policy = lambda o: self.agent.act(o, deterministic=True)
        record = {"env_step": self.t} | evaluation_record(policy, self.config.env, self.config.eval_episodes,
                                                          self.config.seed, len(self.state.evaluations))
        record |= {k: float(v) for k, v in self.learner.last_metrics.items()}  # the one host sync per eval
        record |= {"critic_updates": self.agent.critic_updates, "actor_updates": self.agent.actor_updates}
        self.state.seconds["learner"] = self.learner.seconds
        record |= {f"seconds_{k}": v for k, v in self.state.seconds.items()}
        return record

    def _after_step(self) -> None:
        cfg = self.config
        # After this step's updates, as the published loop (store, train, then refit).
        if cfg.uses_synther and self.t % cfg.retrain_every == 0 and self.t < cfg.env_steps:
            if cfg.async_refit:
                self._collect_refit(wait=True)  # a previous one still running finishes first
                real_rows = self.real.to_numpy()
                self.refitter.start(len(self.state.refits), real_rows, self.t, *self.relevance(real_rows))
            else:
                self.refit()
        elif self.refitter.pending:
            self._collect_refit(wait=False)
        if self.t % cfg.eval_every == 0 or self.t == cfg.env_steps:
            start = time.perf_counter()
            record = self.evaluate()
            self.state.seconds["eval"] += time.perf_counter() - start
            self.state.evaluations.append(record)
            self.run.logger().log("online", self.t, {k: v for k, v in record.items() if k != "env_step"})

    def _after_episode(self) -> None:
        if self.t >= self._next_checkpoint:
            self.save()
            self._next_checkpoint = (self.t // self.config.checkpoint_every + 1) * self.config.checkpoint_every

    def run_loop(self) -> None:
        cfg = self.config
        self._next_checkpoint = (self.t // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        interact(self.env, self.agent, self.real, self.state, steps=cfg.env_steps, start_steps=cfg.sac.start_steps,
                 action_rng=self.action_rng, learn=self.learn, episode_seed=episode_seed(cfg.seed),
                 after_step=self._after_step, after_episode=self._after_episode, progress=self.progress,
                 label=f"{cfg.algo} on {cfg.env}")
        self.save()


def run_online(config: OnlineConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
               wandb: bool = False) -> OnlineResult:
    """Run (or resume) one online run in ``run_dir``; returns its summary."""
    validate(config)
    device = resolve_device(config.device)  # every input is checked before the run directory exists
    env_spec(config.env)
    if config.async_refit and device.type == "cuda":
        raise ValueError("async_refit is not available on CUDA yet: captured graphs of two threads would share "
                         "the default CUDA generator's seed/offset tensors; run it on the CPU or without async_refit")
    run = Run.open(run_dir, config, resume=resume)
    if run.done("online"):
        run.close()
        return OnlineResult(run.path, read_summary(run.path))  # type: ignore[arg-type]
    try:
        run.logger(wandb=wandb)
        with torch_threads(config.threads, small_networks=True), run.phase("online"):
            online = OnlineRun(config, run, device, progress)
            online.restore()
            online.run_loop()
        summary = summarize(online, seconds_total=run.timings.get("online"))  # over every process
        write_summary(run.path, summary)
        plot_learning_curve(online.state.evaluations, run.artifact("learning_curve"), f"{config.algo} on {config.env}")
        run.mark_done("online", {"env_steps": online.t, "final_return_mean": summary.final_return_mean})
    finally:
        run.close()
    return OnlineResult(run.path, summary)


def summarize(online: OnlineRun, seconds_total: float | None = None) -> OnlineSummary:
    config, state = online.config, online.state
    final = state.evaluations[-1]
    return OnlineSummary(
        env=config.env, algo=config.algo, seed=config.seed, preset=config.preset, env_steps=state.t,
        episodes=state.episode, device=str(online.device), final_return_mean=final["return_mean"],
        final_return_std=final["return_std"], final_normalized_score=final.get("normalized_score"),
        critic_updates=online.agent.critic_updates, actor_updates=online.agent.actor_updates, utd=config.sac.utd,
        evaluations=state.evaluations, refits=state.refits, seconds=state.seconds,
        critic_updates_per_learner_second=online.agent.critic_updates / max(state.seconds["learner"], 1e-9),
        seconds_total=seconds_total,
        synther_seed=fit_seed(config.seed, config.synther.seed) if config.uses_synther else None,
    )


def plot_learning_curve(evaluations: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Return against environment steps as a PNG (the analysis module's plot; None without matplotlib)."""
    from synther_fast.analysis.plots import plot_learning_curves

    points = [(e["env_step"], e["return_mean"]) for e in evaluations]
    try:
        return plot_learning_curves({title: points}, path, xlabel="environment steps", title=title)
    except ImportError:  # the GPU check machines have no matplotlib
        return None
