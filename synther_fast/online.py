"""The online loop (Lu et al. 2023, section 4.2): SAC, REDQ, or SAC + SynthER, in one module.

Every environment step: act (uniformly random for the first ``start_steps``), store the real
transition (a time-limit truncation is not a terminal), and — once the replay holds more than
``start_steps`` rows, as the REDQ code — run one learner block: ``utd`` critic updates on batches
from the C++ MixedSampler, the actor and temperature once (SACConfig). With SynthER, every
``retrain_every`` steps a *fresh* diffusion model is fitted on the whole real replay and
``num_samples`` generated rows replace the synthetic buffer; batches are then ``synthetic_ratio``
synthetic (all real before the first refill, as the published code).

The same loop with SynthER off is plain SAC or REDQ, and ``collect --method sac`` runs it too.

Resumable: a checkpoint (agent, optimisers, sampler and action RNG, counters, the real replay,
the evaluations and the current refill) is written atomically at the first episode end after
every ``checkpoint_every`` steps. Episodes are seeded from (seed, episode index), so a resumed run
replays exactly what an uninterrupted one does; refits already written are reloaded, not redone.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.config import OnlineConfig, for_task
from synther_fast.progress import progress_bar
from synther_fast.replay import MixedSampler
from synther_fast.replay.prefetch import StagedBlock
from synther_fast.runs import Run, write_json
from synther_fast.runtime import DeviceTimer

CHECKPOINT = "online.ckpt"
TIME_KEYS = ("env", "learner", "fit", "generate", "eval")


@dataclass
class OnlineResult:
    run_dir: Path
    summary: dict[str, Any]

    @property
    def final_return(self) -> float:
        return self.summary["final_return_mean"]


def synther_config_for(config: OnlineConfig, suite: str):
    """The refit's diffusion settings: DMC rewards stay unnormalised (the published choice)."""
    synther = for_task(config.synther, config.env)
    if suite == "dmc" and not synther.normalizer.skip_reward:
        synther = dataclasses.replace(synther, normalizer=dataclasses.replace(synther.normalizer, skip_reward=True))
    return synther


class OnlineLoop:
    """The state of one online run and its phases (act, learn, refit, evaluate, checkpoint)."""

    def __init__(self, config: OnlineConfig, run: Run, device: torch.device, progress: bool) -> None:
        from synther_fast.agents.sac import SAC
        from synther_fast.envs import env_spec, make_env
        from synther_fast.replay import ReplayBuffer, TransitionLayout
        from synther_fast.replay.sampler import Batch

        self.config, self.run, self.device, self.progress = config, run, device, progress
        self.spec = env_spec(config.env)
        self.layout = TransitionLayout(self.spec.obs_dim, self.spec.act_dim, self.spec.has_terminal)
        self.env = make_env(config.env)
        self.agent = SAC(self.spec.obs_dim, self.spec.act_dim, config.sac, device, config.seed, config.env)
        self.real = ReplayBuffer(config.real_capacity, self.layout)
        self.synthetic = ReplayBuffer(config.synthetic_capacity, self.layout) if config.uses_synther else None
        ratio = config.synthetic_ratio if config.uses_synther else 0.0
        self.sampler = MixedSampler(self.real, self.synthetic, ratio, config.sac.batch_size, seed=config.seed)
        # The learner block's batches: (utd, B, width) in (pinned) host memory, sampled in place;
        # on CUDA copied to the device (the captured block copies them into its static input).
        shape = (config.sac.utd, config.sac.batch_size, Batch.row_width(self.layout))
        self.block = StagedBlock(shape, device)
        self.host_views = [Batch(self.block.host[i], self.layout) for i in range(config.sac.utd)]
        # Learner time is device time (CUDA events): launches return at once, and the GPU's time
        # would otherwise be counted where the host next waits (act(), in "env").
        self.learner_timer = DeviceTimer(device)
        self.action_rng = np.random.default_rng(config.seed)
        self.t = 0
        self.episode = 0
        self.episode_return = 0.0
        self.episode_returns: list[float] = []
        self.timeouts: list[int] = []
        self.evaluations: list[dict[str, Any]] = []
        self.refits: list[dict[str, Any]] = []
        self.seconds = dict.fromkeys(TIME_KEYS, 0.0)
        self.last_metrics: dict[str, torch.Tensor] = {}
        self._pending: tuple[threading.Thread, dict[str, Any]] | None = None

    # -- checkpoints --------------------------------------------------------------------------
    def save(self) -> None:
        self._finish_async_refit(wait=True)  # a checkpoint never refers to a half-done refit
        self.seconds["learner"] = self.learner_timer.total()
        self.real.save(self.run.file("real.replay"))
        payload = {
            "agent": self.agent.state_dict(),
            "sampler": json.dumps(self.sampler.state_dict()),
            "action_rng": json.dumps(self.action_rng.bit_generator.state),
            "counters": json.dumps({"t": self.t, "episode": self.episode}),
            "history": json.dumps({"episode_returns": self.episode_returns, "timeouts": self.timeouts,
                                   "evaluations": self.evaluations, "refits": self.refits,
                                   "seconds": self.seconds}),
        }
        self.run.save_checkpoint(CHECKPOINT, "online", payload, phase="online")
        for k in range(len(self.refits) - 1):  # rows no checkpoint refers to any more (models stay)
            self._refill_files(k)[1].unlink(missing_ok=True)

    def restore(self) -> bool:
        state = self.run.load_checkpoint(CHECKPOINT, "online", map_location=self.device)
        if state is None:  # a fresh start: files of an earlier start that never checkpointed go
            for stale in (*self.run.path.glob("synther_*.pt"), *self.run.path.glob("synthetic_*")):
                stale.unlink()
            return False
        self.agent.load_state_dict(state["agent"])
        counters = json.loads(state["counters"])
        self.t, self.episode = int(counters["t"]), int(counters["episode"])
        self.real.restore(self.run.file("real.replay"))
        if self.real.total_added != self.t:  # killed between the replay's write and the checkpoint's
            rows = self.real.to_numpy()[: self.t]  # oldest first, and env_steps <= real_capacity
            if len(rows) != self.t:
                raise RuntimeError(f"{self.run.file('real.replay')} holds {len(rows)} rows, the checkpoint "
                                   f"needs {self.t}: the run directory is damaged")
            self.real.clear()
            self.real.add(rows)
        history = json.loads(state["history"])
        self.episode_returns, self.timeouts = history["episode_returns"], history["timeouts"]
        self.evaluations, self.refits, self.seconds = history["evaluations"], history["refits"], history["seconds"]
        self.learner_timer = DeviceTimer(self.device, self.seconds["learner"])
        if self.refits:  # the synthetic rows the agent was learning from at the checkpoint
            self._load_refill(len(self.refits) - 1)
        self.sampler.load_state_dict(json.loads(state["sampler"]))
        self.action_rng.bit_generator.state = json.loads(state["action_rng"])
        if self.run.metrics is not None:  # records logged after the checkpoint are logged again
            self.run.metrics.truncate("online", self.t)
            self.run.metrics.truncate("refit", self.t)
        return True

    # -- SynthER refits -----------------------------------------------------------------------
    def _refill_files(self, k: int) -> tuple[Path, Path]:
        return self.run.file(f"synther_{k}.pt"), self.run.file(f"synthetic_{k}.replay")

    def _load_refill(self, k: int) -> None:
        _, rows_file = self._refill_files(k)
        self.synthetic.restore(rows_file)
        self._rebind_sampler()

    def refit(self) -> dict[str, Any]:
        """A fresh diffusion model on the whole real replay; its rows replace the synthetic ones."""
        k = len(self.refits)
        info, rows = self._fit_and_generate(k, self.real.to_numpy(), self.t)
        self._apply_refill(info, rows)
        return info

    def _fit_and_generate(self, k: int, real_rows: np.ndarray, env_step: int):
        """Refit number k on ``real_rows``: (info, new synthetic buffer). Touches no loop state, so
        an async refit runs it in a background thread."""
        from synther_fast.diffusion import SynthER
        from synther_fast.replay import ReplayBuffer

        model_file, rows_file = self._refill_files(k)
        info: dict[str, Any] = {"refit": k, "env_step": env_step, "real_rows": len(real_rows)}
        rows = ReplayBuffer(self.config.synthetic_capacity, self.layout)
        info_file = rows_file.with_suffix(".json")
        if model_file.exists() and rows_file.exists() and info_file.exists():  # written before a kill
            saved = json.loads(info_file.read_text())
            if saved.get("env_step") == env_step and saved.get("real_rows") == len(real_rows):
                rows.restore(rows_file)
                return saved | {"reloaded": True}, rows
        synther_cfg = dataclasses.replace(synther_config_for(self.config, self.spec.suite), seed=self._seed("fit", k))
        stream = torch.cuda.Stream(self.device) if self.config.async_refit and self.device.type == "cuda" else None
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            model = SynthER(self.layout, synther_cfg, self.device)
            start = time.perf_counter()
            model.fit(real_rows, progress=self.progress and not self.config.async_refit)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            written = model.generate_into(rows, self.config.num_samples, seed=self._seed("generate", k))
            gen_s = time.perf_counter() - start
        info |= {"rows": written, "fit_seconds": fit_s, "generate_seconds": gen_s,
                 "final_loss": model.history[-1]["loss"]}
        model.save(model_file)
        rows.save(rows_file)
        write_json(info_file, info)  # last: the three files together mark a finished refit
        return info, rows

    def _seed(self, purpose: str, k: int) -> int:
        """A seed of its own for each refit's fit and generation (none shares the agent's stream)."""
        words = [self.config.seed, k, {"fit": 1, "generate": 2}[purpose]]
        return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0] >> 2)

    def _rebind_sampler(self) -> None:
        """A sampler over the current buffers that continues the old one's random stream."""
        state = self.sampler.state_dict()
        self.sampler = MixedSampler(self.real, self.synthetic, self.sampler.ratio, self.sampler.batch_size,
                                    seed=self.config.seed)
        self.sampler.load_state_dict(state)

    def _apply_refill(self, info: dict[str, Any], rows) -> None:
        """Swap the new synthetic rows in and record the analysis module's measures of them
        (subsampled: a few hundred ms on a CPU)."""
        from synther_fast.analysis import marginal_fidelity, novelty

        self.seconds["fit"] += info.get("fit_seconds", 0.0)
        self.seconds["generate"] += info.get("generate_seconds", 0.0)
        self.synthetic = rows
        self._rebind_sampler()
        real_rows, synthetic_rows = self.real.to_numpy(), self.synthetic.to_numpy()
        fidelity = marginal_fidelity(real_rows, synthetic_rows, self.layout, max_rows=20_000)
        near = novelty(real_rows, synthetic_rows, max_rows=2000, seed=len(self.refits))
        info |= {"mean_ks": fidelity["mean_ks"], "max_ks": fidelity["max_ks"],
                 "mean_w1_in_std": fidelity["mean_w1_in_std"], "corr_error": fidelity["corr_error"],
                 "mean_gap_in_std": fidelity["mean_gap_in_std"], "novelty_mean": near["mean"],
                 "swapped_at": self.t}
        self.refits.append(info)
        self.run.logger().log("refit", self.t, {k: v for k, v in info.items() if isinstance(v, (int, float))})

    def _start_async_refit(self) -> None:
        self._finish_async_refit(wait=True)  # a previous one still running finishes first
        k = len(self.refits)
        real_rows, env_step = self.real.to_numpy(), self.t
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self._fit_and_generate(k, real_rows, env_step)
            except BaseException as exc:  # re-raised in the loop's thread
                box["error"] = exc

        thread = threading.Thread(target=work, name=f"synther-refit-{k}", daemon=True)
        thread.start()
        self._pending = (thread, box)

    def _finish_async_refit(self, wait: bool) -> None:
        if self._pending is None:
            return
        thread, box = self._pending
        if not wait and thread.is_alive():
            return
        thread.join()
        self._pending = None
        if "error" in box:
            raise box["error"]
        self._apply_refill(*box["result"])

    # -- the loop -----------------------------------------------------------------------------
    def _reset_env(self) -> np.ndarray:
        obs, _ = self.env.reset(seed=self.config.seed * 1_000_003 + self.episode)
        self.episode_return = 0.0
        return obs

    def _draw_block(self, host_rows: torch.Tensor) -> None:
        for view in self.host_views:
            self.sampler.sample(view)

    def learner_step(self) -> None:
        with self.learner_timer:
            rows = self.block.fill(self._draw_block)
            self.last_metrics = self.agent.update_block(rows, self.layout)

    def evaluate(self) -> dict[str, Any]:
        from synther_fast.evaluation import evaluation_record

        policy = lambda o: self.agent.act(o, deterministic=True)
        record = {"env_step": self.t} | evaluation_record(policy, self.config.env, self.config.eval_episodes,
                                                          self.config.seed, len(self.evaluations))
        record |= {k: float(v) for k, v in self.last_metrics.items()}  # the one host sync per eval
        record |= {"critic_updates": self.agent.critic_updates, "actor_updates": self.agent.actor_updates}
        self.seconds["learner"] = self.learner_timer.total()
        record |= {f"seconds_{k}": v for k, v in self.seconds.items()}
        return record

    def run_loop(self) -> None:
        cfg, sac = self.config, self.config.sac
        metrics = self.run.logger()
        bar = progress_bar(cfg.env_steps, f"{cfg.algo} on {cfg.env}", enabled=self.progress, initial=self.t)
        obs = self._reset_env()
        next_checkpoint = (self.t // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        try:
            while self.t < cfg.env_steps:
                start = time.perf_counter()
                if len(self.real) <= sac.start_steps:  # the REDQ code: random until size > start_steps
                    action = self.action_rng.uniform(-1.0, 1.0, self.spec.act_dim).astype(np.float32)
                else:
                    action = self.agent.act(obs[None])[0]
                next_obs, reward, terminated, truncated, _ = self.env.step(action)
                last = self.t == cfg.env_steps - 1
                row = np.concatenate([obs, action, [reward], next_obs] + ([[float(terminated)]]
                                                                            if self.layout.has_terminal else []))
                self.real.add(row.astype(np.float32))
                if (truncated or last) and not terminated:
                    self.timeouts.append(self.t)
                self.episode_return += float(reward)
                self.t += 1
                obs = next_obs
                self.seconds["env"] += time.perf_counter() - start
                if len(self.real) > sac.start_steps:  # the REDQ code's delay_update_steps='auto'
                    self.learner_step()
                # After this step's updates, as the published loop (store, train, then refit).
                if cfg.uses_synther and self.t % cfg.retrain_every == 0 and self.t < cfg.env_steps:
                    if cfg.async_refit:
                        self._start_async_refit()
                    else:
                        self.refit()
                elif self._pending is not None:
                    self._finish_async_refit(wait=False)
                if self.t % cfg.eval_every == 0 or self.t == cfg.env_steps:
                    start = time.perf_counter()
                    record = self.evaluate()
                    self.seconds["eval"] += time.perf_counter() - start
                    self.evaluations.append(record)
                    metrics.log("online", self.t, {k: v for k, v in record.items() if k != "env_step"})
                    bar.set_postfix(ret=f"{record['return_mean']:.0f}")
                bar.update(1)
                if terminated or truncated:
                    self.episode_returns.append(self.episode_return)
                    self.episode += 1
                    obs = self._reset_env()
                    if self.t >= next_checkpoint:
                        self.save()
                        next_checkpoint = (self.t // cfg.checkpoint_every + 1) * cfg.checkpoint_every
        finally:
            bar.close()
        self.save()


def run_online(config: OnlineConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
               wandb: bool = False) -> OnlineResult:
    """Run (or resume) one online run in ``run_dir``; returns its summary."""
    from synther_fast.envs import env_spec
    from synther_fast.runtime import resolve_device, torch_threads

    device = resolve_device(config.device)  # every input is checked before the run directory exists
    env_spec(config.env)
    if config.async_refit and device.type == "cuda":
        raise ValueError("async_refit is not available on CUDA yet: captured graphs of two threads would share "
                         "the default CUDA generator's seed/offset tensors; run it on the CPU or without async_refit")
    run = Run.open(run_dir, config, resume=resume)
    if run.done("online"):
        return OnlineResult(run.path, json.loads(run.file("summary.json").read_text()))
    try:
        run.logger(wandb=wandb)
        with torch_threads(config.threads, small_networks=True), run.phase("online"):
            loop = OnlineLoop(config, run, device, progress)
            loop.restore()
            loop.run_loop()
        summary = summarize(loop) | {"seconds_total": run.timings.get("online")}  # over every process
        write_json(run.file("summary.json"), summary)
        plot_learning_curve(loop.evaluations, run.file("learning_curve.png"), f"{config.algo} on {config.env}")
        run.mark_done("online", {"env_steps": loop.t, "final_return_mean": summary["final_return_mean"]})
    finally:
        run.close()
    return OnlineResult(run.path, summary)


def summarize(loop: OnlineLoop) -> dict[str, Any]:
    config, final = loop.config, loop.evaluations[-1]
    return {
        "env": config.env, "algo": config.algo, "seed": config.seed, "preset": config.preset,
        "env_steps": loop.t, "episodes": loop.episode, "device": str(loop.device),
        "final_return_mean": final["return_mean"], "final_return_std": final["return_std"],
        "final_normalized_score": final.get("normalized_score"),
        "critic_updates": loop.agent.critic_updates, "actor_updates": loop.agent.actor_updates,
        "utd": config.sac.utd, "evaluations": loop.evaluations, "refits": loop.refits,
        "seconds": loop.seconds,
        "critic_updates_per_learner_second": loop.agent.critic_updates / max(loop.seconds["learner"], 1e-9),
    }


def plot_learning_curve(evaluations: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """Return against environment steps as a PNG (the analysis module's plot; None without matplotlib)."""
    from synther_fast.analysis.plots import plot_learning_curves

    points = [(e["env_step"], e["return_mean"]) for e in evaluations]
    try:
        return plot_learning_curves({title: points}, path, xlabel="environment steps", title=title)
    except ImportError:  # the GPU check machines have no matplotlib
        return None
