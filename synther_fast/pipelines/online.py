"""The online pipeline (Lu et al. 2023, section 4.2): SAC, REDQ, or SAC + SynthER in a run directory.

Every environment step, in :meth:`OnlineRun.run_loop`'s order: act (uniformly random for the first
``start_steps``) and store the real transition (a time-limit truncation is not a terminal); once
the replay holds more than ``start_steps`` rows, as the REDQ code, learn (one learner block:
``utd`` critic updates on batches from the C++ MixedSampler, the actor and temperature once);
refit (with SynthER, every ``retrain_every`` steps a *fresh* diffusion model is fitted on the whole
real replay and ``num_samples`` generated rows replace the synthetic buffer; batches are then
``synthetic_ratio`` synthetic, all real before the first refill, as the published code); evaluate;
and at an episode's end, checkpoint.

The parts live apart: the environment step, the loop's state and the learner block in
``interaction.py`` (SAC data collection runs the same step without a run directory), the refits in
``refit.py``, what guided refits condition on in ``relevance/guidance.py`` and the measures of each
refill in ``analysis/refill.py``.

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
from synther_fast.analysis.refill import refill_dynamics, refill_fidelity
from synther_fast.common.devices import resolve_device, torch_threads
from synther_fast.common.progress import progress_bar
from synther_fast.common.rng import Stream, fit_seed, stream_seed
from synther_fast.config import OnlineConfig, for_task, validate
from synther_fast.envs import env_spec, make_env
from synther_fast.pipelines.evaluation import evaluation_record
from synther_fast.pipelines.interaction import EnvLoop, Learner, OnlineState, episode_seed, restore_real_replay
from synther_fast.pipelines.refit import Refitter
from synther_fast.relevance import RefitGuidance
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


class OnlineRun:
    """One online run: its parts wired to the run directory, the step loop, and checkpoints."""

    def __init__(self, config: OnlineConfig, run: Run, device: torch.device, progress: bool) -> None:
        self.config, self.run, self.device, self.progress = config, run, device, progress
        self.spec = env_spec(config.env, config.has_terminal)
        self.layout = TransitionLayout(self.spec.obs_dim, self.spec.act_dim, self.spec.has_terminal)
        self.env = make_env(config.env)
        self.agent = SAC(self.spec.obs_dim, self.spec.act_dim, config.sac, device, config.seed, config.env)
        self.real = ReplayBuffer(config.real_capacity, self.layout)
        synthetic = ReplayBuffer(config.synthetic_capacity, self.layout) if config.uses_synther else None
        self.learner = Learner(self.agent, self.real, synthetic, config.synthetic_ratio if config.uses_synther else 0.0,
                               config.sac.batch_size, config.sac.utd, self.layout, device, config.seed)
        self.refitter = Refitter(self.layout, synther_config_for(config, self.spec.suite), config.num_samples,
                                 config.synthetic_capacity, device, run.files, config.seed,
                                 asynchronous=config.async_refit, progress=progress)
        self.action_rng = np.random.default_rng(stream_seed(config.seed, Stream.EXPLORATION))
        self.state = OnlineState()
        self.guidance = RefitGuidance(config.synther, self.layout, self.agent, config.sac.batch_size, device,
                                      config.seed)

    sampler = property(lambda self: self.learner.sampler)
    synthetic = property(lambda self: self.learner.synthetic)
    t = property(lambda self: self.state.t)

    # -- the loop -----------------------------------------------------------------------------
    def run_loop(self) -> None:
        cfg = self.config
        loop = EnvLoop(self.env, self.agent, self.real, self.state, steps=cfg.env_steps,
                       start_steps=cfg.sac.start_steps, action_rng=self.action_rng, episode_seed=episode_seed(cfg.seed))
        next_checkpoint = (self.t // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        with progress_bar(cfg.env_steps, f"{cfg.algo} on {cfg.env}", enabled=self.progress, initial=self.t) as bar:
            while loop.running:
                episode_over = loop.step()  # act, store
                if loop.learning:
                    self.learn()
                if cfg.uses_synther and self.t % cfg.retrain_every == 0 and self.t < cfg.env_steps:
                    self.refit()  # after this step's updates, as the published loop
                elif self.refitter.pending:
                    self._collect_refit(wait=False)
                if self.t % cfg.eval_every == 0 or self.t == cfg.env_steps:
                    self.evaluate()
                    bar.set_postfix(ret=f"{self.state.evaluations[-1]['return_mean']:.0f}")
                bar.update(1)
                if episode_over:
                    loop.next_episode()
                    if self.t >= next_checkpoint:
                        self.save()
                        next_checkpoint = (self.t // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        self.save()

    def learn(self) -> None:
        self.learner.step()
        self.guidance.learn(self.real)  # guided by curiosity: one real batch per step, as PGR

    def refit(self) -> dict[str, Any] | None:
        """A fresh diffusion model on the whole real replay; its rows replace the synthetic ones (in
        the background with async_refit: a previous refit still running is collected first)."""
        self._collect_refit(wait=True)
        real_rows = self.real.to_numpy()
        k, conditions = len(self.state.refits), self.guidance.conditions(real_rows)
        if self.config.async_refit:
            self.refitter.start(k, real_rows, self.t, *conditions)
            return None
        return self._use_refill(*self.refitter.refit(k, real_rows, self.t, *conditions))

    def _collect_refit(self, wait: bool) -> None:
        done = self.refitter.finish(wait)
        if done is not None:
            self._use_refill(*done)

    def _use_refill(self, info: dict[str, Any], rows: ReplayBuffer) -> dict[str, Any]:
        """Swap the new synthetic rows in, and record their measures against the real rows."""
        self.state.seconds["fit"] += info.get("fit_seconds", 0.0)
        self.state.seconds["generate"] += info.get("generate_seconds", 0.0)
        self.learner.swap_synthetic(rows)
        k, synthetic_rows = len(self.state.refits), rows.to_numpy()
        info |= (refill_fidelity(self.real.to_numpy(), synthetic_rows, self.layout, seed=k) | {"swapped_at": self.t}
                 | refill_dynamics(synthetic_rows, self.layout, self.config.env, seed=k))
        self.state.refits.append(info)
        self.run.logger().log("refit", self.t, {k: v for k, v in info.items() if isinstance(v, (int, float))})
        return info

    def evaluate(self) -> None:
        start = time.perf_counter()
        policy = lambda o: self.agent.act(o, deterministic=True)
        record = {"env_step": self.t} | evaluation_record(policy, self.config.env, self.config.eval_episodes,
                                                          self.config.seed, len(self.state.evaluations))
        record |= {k: float(v) for k, v in self.learner.last_metrics.items()}  # the one host sync per eval
        record |= {"critic_updates": self.agent.critic_updates, "actor_updates": self.agent.actor_updates}
        self.state.seconds["learner"] = self.learner.seconds
        record |= {f"seconds_{k}": v for k, v in self.state.seconds.items()}
        self.state.seconds["eval"] += time.perf_counter() - start
        self.state.evaluations.append(record)
        self.run.logger().log("online", self.t, {k: v for k, v in record.items() if k != "env_step"})

    # -- checkpoints --------------------------------------------------------------------------
    def save(self) -> None:
        self._collect_refit(wait=True)  # a checkpoint never refers to a half-done refit
        self.state.seconds["learner"] = self.learner.seconds
        self.real.save(self.run.artifact("real_replay"))
        payload = {"agent": self.agent.state_dict(), "sampler": json.dumps(self.learner.sampler.state_dict()),
                   "action_rng": json.dumps(self.action_rng.bit_generator.state), **self.state.to_payload(),
                   **self.guidance.state_dict()}
        self.run.save_checkpoint(self.run.artifact("online_checkpoint"), "online", payload, phase="online")
        self.refitter.keep_only(len(self.state.refits) - 1)

    def restore(self) -> bool:
        state = self.run.load_checkpoint(self.run.artifact("online_checkpoint"), "online", map_location=self.device)
        if state is None:
            self.refitter.discard_all()
            return False
        self.agent.load_state_dict(state["agent"])
        self.state = OnlineState.from_payload(state)
        restore_real_replay(self.real, self.run.artifact("real_replay"), self.t)
        self.learner.reset_seconds(self.state.seconds["learner"])
        if self.state.refits:  # the synthetic rows the agent was learning from at the checkpoint
            self.learner.swap_synthetic(self.refitter.load(len(self.state.refits) - 1))
        self.learner.sampler.load_state_dict(json.loads(state["sampler"]))
        self.action_rng.bit_generator.state = json.loads(state["action_rng"])
        self.guidance.load_state_dict(state)
        if self.run.metrics is not None:  # records logged after the checkpoint are logged again
            self.run.metrics.truncate("online", self.t)
            self.run.metrics.truncate("refit", self.t)
        return True


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
