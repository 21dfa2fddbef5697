"""What every adapter shares: rows from a learner's own buffer, the refit driver and the mixing core.

An adapter (SB3, TorchRL, a CleanRL-style script) keeps its library's buffer for the real rows and
asks this module three things:

- :func:`raw_rows`: the real transitions as the diffusion model's rows, fitted **raw** (before any
  observation/reward normalisation the library applies at sample time), with
  ``terminal = done and not time-limit truncation``;
- :class:`Refits`: a fresh SynthER model fitted on those rows and ``num_samples`` rows generated
  from it (the paper's refit-and-refill, section 4.2), synchronously or in a background thread on
  CPU, with the refit's time, loss and KS for the library's logger;
- :class:`SyntheticMix`: the mixing core. ``int(ratio * B)`` rows of a batch of B come from the
  latest refill, the rest from the library's own ``sample()``; until the first refill every row is
  real (at ratio 1 too, with one warning), so a learner never crashes before its first refit.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from synther_fast.analysis.fidelity import marginal_fidelity
from synther_fast.common.devices import resolve_device
from synther_fast.config import SynthERConfig, resolve
from synther_fast.config.diffusion import for_task
from synther_fast.data.dataset import Dataset
from synther_fast.pipelines.refit import Refitter
from synther_fast.replay import TransitionLayout
from synther_fast.replay.sampler import check_ratio

log = logging.getLogger("synther_fast.integrations")


class SpaceError(TypeError):
    """An observation or action space SynthER cannot model (the message names it and why)."""


def box_dims(observation_space: Any, action_space: Any, who: str) -> tuple[int, int]:
    """(obs_dim, act_dim) of flat continuous Box spaces; anything else (Dict, image, discrete) is
    refused with the reason, since SynthER models a transition as one flat float row."""
    from gymnasium import spaces

    for role, space in (("observation", observation_space), ("action", action_space)):
        if not isinstance(space, spaces.Box):
            kind = type(space).__name__
            hint = " (a Dict space: flatten it with gymnasium.wrappers.FlattenObservation)" if kind == "Dict" else ""
            raise SpaceError(f"{who}: SynthER needs a continuous Box {role} space, got {kind}{hint}")
        if len(space.shape) != 1:
            raise SpaceError(f"{who}: SynthER models flat {role}s, got a Box of shape {space.shape} "
                             f"(images are not supported by this adapter)")
        if not np.issubdtype(space.dtype, np.floating):
            raise SpaceError(f"{who}: SynthER needs a float {role} Box, got dtype {space.dtype}")
    return int(observation_space.shape[0]), int(action_space.shape[0])


def raw_rows(observations: Any, actions: Any, rewards: Any, next_observations: Any, terminals: Any,
             source: str = "the buffer") -> np.ndarray:
    """Real transitions as float32 rows [obs | action | reward | next_obs | terminal]; ``terminals``
    must already exclude time-limit truncations. NaN/inf or lengths that differ are refused,
    naming the array and the rows."""
    n = len(observations)
    dataset = Dataset(np.reshape(observations, (n, -1)), np.reshape(actions, (len(actions), -1)),
                      np.reshape(rewards, -1), np.reshape(next_observations, (len(next_observations), -1)),
                      np.reshape(terminals, -1).astype(np.float32), np.zeros(n, np.float32), source=source)
    return dataset.to_rows()


def ring_rows(buffer: Any, source: str) -> np.ndarray:
    """Every transition stored in an SB3-layout ring buffer (arrays shaped (buffer_size, n_envs,
    ...) with ``pos``/``full``, as SB3's ReplayBuffer and CleanRL's vendored copy) as raw rows.
    ``timeouts`` is all 0 when the buffer does not record truncations."""
    upper = buffer.buffer_size if buffer.full else buffer.pos

    def flat(a: np.ndarray) -> np.ndarray:
        return a[:upper].reshape(upper * buffer.n_envs, *a.shape[2:])

    terminal = buffer.dones[:upper] * (1 - buffer.timeouts[:upper])  # a time-limit truncation is not an end
    return raw_rows(flat(buffer.observations), flat(buffer.actions), flat(buffer.rewards),
                    flat(buffer.next_observations), terminal.reshape(-1), source=source)


def synther_config(config: SynthERConfig | str, *, task: str | None = None,
                   action_bounds: tuple[Any, Any] | None = None) -> SynthERConfig:
    """A SynthERConfig, or a fit preset's name ('tiny', 'quick', 'paper_online', 'paper_offline'),
    told the task (for its termination rule) and, where given, the bounds to clip generated
    actions to (the learner's action convention)."""
    if isinstance(config, str):
        config = resolve("fit", config)
    elif not isinstance(config, SynthERConfig):
        raise TypeError(f"config must be a SynthERConfig or a preset name, got {type(config).__name__}")
    config = for_task(config, task)
    if action_bounds is not None:
        low, high = (np.asarray(b, dtype=np.float64).reshape(-1) for b in action_bounds)
        bounds: Any = ((float(low[0]), float(high[0])) if low.size == 1 and high.size == 1
                       else (tuple(map(float, low)), tuple(map(float, high))))
        config = config.with_overrides(**{"generation.clip_actions": True, "generation.action_bounds": bounds})
    return config


class Refits:
    """Refit k: a fresh model on the real rows, then ``num_samples`` new rows (held in memory; the
    adapter keeps them with its buffer). ``background=True`` fits in a thread on CPU devices; on
    CUDA it stays synchronous, as in the core online loop."""

    def __init__(self, layout: TransitionLayout, config: SynthERConfig, num_samples: int, *, seed: int = 0,
                 device: str | torch.device | None = None, background: bool = False, progress: bool = False) -> None:
        if int(num_samples) <= 0:
            raise ValueError(f"num_samples must be positive, got {num_samples!r}")
        self.layout, self.num_samples = layout, int(num_samples)
        self.device = resolve_device(None if device is None else str(device))
        self.background = background and self.device.type == "cpu"
        self._real: np.ndarray | None = None
        self._refitter = Refitter(layout, config, self.num_samples, self.num_samples, self.device, None, seed,
                                  asynchronous=self.background, progress=progress)

    @property
    def pending(self) -> bool:
        return self._refitter.pending

    def run(self, k: int, real_rows: np.ndarray, step: int) -> tuple[dict[str, float], np.ndarray] | None:
        """Refit k on ``real_rows`` at learner step ``step``: its numbers and rows now, or None when
        it was started in the background (collect it with :meth:`collect`)."""
        if len(real_rows) < 2:
            raise ValueError(f"a refit needs at least 2 real rows, the buffer holds {len(real_rows)}")
        self._real = real_rows
        if self.background:
            self._refitter.start(k, real_rows, step)
            return None
        return self._finish(self._refitter.refit(k, real_rows, step))

    def collect(self, wait: bool = False) -> tuple[dict[str, float], np.ndarray] | None:
        """A background refit's numbers and rows once it is done (``wait`` blocks); None otherwise."""
        done = self._refitter.finish(wait)
        return None if done is None else self._finish(done)

    def _finish(self, done: Any) -> tuple[dict[str, float], np.ndarray]:
        info, buffer = done
        rows = buffer.to_numpy()
        ks = marginal_fidelity(self._real, rows, self.layout, max_rows=20_000)
        numbers = {"refit": info["refit"], "rows": info["rows"], "fit_seconds": info["fit_seconds"],
                   "generate_seconds": info["generate_seconds"], "final_loss": info["final_loss"],
                   "mean_ks": ks["mean_ks"], "max_ks": ks["max_ks"]}
        return numbers, rows


class SyntheticMix:
    """The mixing core: which part of a batch is synthetic, and the synthetic rows themselves.

    ``n_synthetic(B)`` is ``int(ratio * B)`` once rows are installed, else 0 (with one warning at
    ratio 1, where a learner would otherwise have nothing to train on). Synthetic rows are drawn
    uniformly with replacement from the latest refill with this object's own seeded generator, so
    the library's real-row sampling (its own RNG) is left untouched. Plain numpy state: pickles
    with the buffer that holds it.
    """

    def __init__(self, ratio: float, seed: int = 0) -> None:
        self.ratio = check_ratio(ratio)
        self.rows: np.ndarray | None = None
        self.refills = 0
        self.last_refit_step: int | None = None
        self._rng = np.random.default_rng(seed)
        self._warned = False

    def install(self, rows: np.ndarray, step: int | None = None) -> None:
        """Replace the synthetic rows by a new refill (non-finite rows were dropped upstream)."""
        if rows.ndim != 2 or len(rows) == 0:
            raise ValueError(f"a refill needs a non-empty 2-d array of rows, got shape {rows.shape}")
        self.rows = np.ascontiguousarray(rows, dtype=np.float32)
        self.refills += 1
        self.last_refit_step = step

    def n_synthetic(self, batch_size: int) -> int:
        if self.rows is None or self.ratio == 0:
            if self.ratio == 1 and not self._warned:
                log.warning("synthetic ratio 1 but no refill yet: batches are all real rows until the first refit")
                self._warned = True
            return 0
        return int(self.ratio * batch_size)

    def draw(self, n: int) -> np.ndarray:
        """n synthetic rows (uniform, with replacement)."""
        if self.rows is None:
            raise RuntimeError("no synthetic rows yet: nothing has been refilled")
        return self.rows[self._rng.integers(0, len(self.rows), n)]

    def state_dict(self) -> dict[str, Any]:
        return {"ratio": self.ratio, "rows": self.rows, "refills": self.refills,
                "last_refit_step": self.last_refit_step, "rng": self._rng.bit_generator.state,
                "warned": self._warned}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.ratio = check_ratio(state["ratio"])
        self.rows = None if state["rows"] is None else np.asarray(state["rows"], dtype=np.float32)
        self.refills, self.last_refit_step = int(state["refills"]), state["last_refit_step"]
        self._rng.bit_generator.state = state["rng"]
        self._warned = bool(state["warned"])


def split_rows(rows: np.ndarray, layout: TransitionLayout) -> dict[str, np.ndarray]:
    """Rows as named float32 arrays: obs, action, reward (n,), next_obs, terminal (n,)."""
    terminal = rows[:, layout.terminal][:, 0] if layout.terminal is not None else np.zeros(len(rows), np.float32)
    return {"obs": rows[:, layout.obs], "action": rows[:, layout.action], "reward": rows[:, layout.reward][:, 0],
            "next_obs": rows[:, layout.next_obs], "terminal": terminal}


def due_refit(step: int, refit_every: int, refills_started: int) -> int | None:
    """The refit index due at learner step ``step`` (refits fall at every multiple of refit_every;
    with several environments a step may cross one without landing on it), or None."""
    k = step // refit_every
    return k - 1 if k > refills_started else None
