"""SynthER: fit a diffusion model to transition rows, generate new rows, save and load it."""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.common.cuda_graphs import CudaRngSlot
from synther_fast.common.devices import resolve_device
from synther_fast.common.distributed import agree, barrier, broadcast_module, mean_over_ranks, rank_and_world
from synther_fast.common.io import atomic_write, load_torch_dict
from synther_fast.common.progress import progress_bar
from synther_fast.common.rng import Stream, fit_seed, fresh_seed, seeded, stream_seed
from synther_fast.config import SynthERConfig, paper_offline, resolve_batch_size, validate
from synther_fast.config.diffusion import action_bounds_arrays
from synther_fast.data.rows import write_rows
from synther_fast.diffusion.denoiser import ResidualMLPDenoiser
from synther_fast.diffusion.edm import (
    SamplerSchedule,
    denoise,
    guided_denoisers,
    reference_sample,
    sampler_record,
    sampler_schedule,
)
from synther_fast.diffusion.fused_sampler import FusedSampler
from synther_fast.diffusion.normalizer import Normalizer
from synther_fast.diffusion.termination import (
    TerminationClassifier,
    label_terminals,
    load_classifier,
    match_terminal_rate,
    terminal_mode,
)
from synther_fast.diffusion.trainer import DiffusionTrainer
from synther_fast.envs.health import check_obs_width
from synther_fast.replay.buffer import ReplayBuffer
from synther_fast.replay.layout import TransitionLayout

MODEL_FORMAT = "synther_fast.SynthER"
MODEL_VERSION = 1


TOPUP_FRACTION = 32
"""A terminal-rate top-up draw holds chunk_size / TOPUP_FRACTION rows."""
MAX_TOPUPS = 64
"""Top-up draws per chunk at most (a model far from the data's terminal fraction gets fewer rows)."""


class ModelFileError(ValueError):
    """A model or checkpoint file that cannot be used: wrong format, corrupted or mismatched."""


def default_device() -> torch.device:
    return resolve_device(None)


def validate_rows(rows: Any, layout: TransitionLayout) -> np.ndarray:
    """Training rows as float32 (n, width); errors name empty data, bad shapes and NaN/inf cells."""
    if isinstance(rows, ReplayBuffer):
        if rows.layout != layout:
            raise ValueError(f"buffer layout {rows.layout} differs from the model's {layout}")
        rows = rows.to_numpy()
    elif isinstance(rows, torch.Tensor):
        rows = rows.detach().cpu().numpy()
    data = np.asarray(rows)
    if data.dtype.kind not in "fiu":
        raise TypeError(f"rows must hold real numbers, got dtype {data.dtype}")
    if data.ndim != 2 or data.shape[1] != layout.width:
        raise ValueError(f"rows must have shape (n, {layout.width}) for {layout}, got {data.shape}")
    if data.shape[0] == 0:
        raise ValueError("cannot fit a diffusion model to an empty dataset (0 rows)")
    data = np.ascontiguousarray(data, dtype=np.float32)
    bad = ~np.isfinite(data)
    if bad.any():
        bad_rows = np.flatnonzero(bad.any(axis=1))
        cols = sorted({layout.column_name(int(c)) for c in np.flatnonzero(bad.any(axis=0))})
        raise ValueError(
            f"rows contain NaN/inf: {len(bad_rows)} rows (first: {bad_rows[:10].tolist()}) in "
            f"columns {cols}; clean the data before fitting"
        )
    return data


def fingerprint(data: np.ndarray) -> dict[str, int]:
    return {"rows": int(data.shape[0]), "crc32": zlib.crc32(memoryview(data.reshape(-1).view(np.uint8)))}


class SynthER:
    """Diffusion model of transition rows in a TransitionLayout (Lu et al. 2023).

    ``fit`` trains a fresh model (the online loop refits from scratch, as the paper);
    ``generate`` samples with the EMA weights and the sampler of ``config.edm`` (the published
    stochastic Heun by default; :meth:`with_sampler` or generate's ``sampler=``/``num_steps=``
    choose another on a fitted model).
    """

    def __init__(self, layout: TransitionLayout, config: SynthERConfig | None = None,
                 device: str | torch.device | None = None) -> None:
        if not isinstance(layout, TransitionLayout):
            raise TypeError(f"layout must be a TransitionLayout, got {type(layout).__name__}")
        self.layout = layout
        config = paper_offline() if config is None else validate(config)
        if config.seed is None:  # outside a run (whose pipeline resolves it): the fit seed of run seed 0
            config = dataclasses.replace(config, seed=fit_seed(0, None))
        self.config = config
        self.device = torch.device(device) if device is not None else default_device()
        self.network: ResidualMLPDenoiser | None = None
        self.ema: ResidualMLPDenoiser | None = None
        self.normalizer: Normalizer | None = None
        self.history: list[dict[str, float]] = []
        self.termination: TerminationClassifier | None = None  # terminals='classifier' only
        self.data_terminal_rate: float | None = None  # the fitted rows' terminal fraction
        self.condition_stats: tuple[float, float] | None = None  # a conditional model's (mean, std) of c

    # -- fitting ------------------------------------------------------------------------------
    def _new_model(self) -> None:
        with seeded(stream_seed(self.config.seed, Stream.DENOISER_INIT)):  # initial weights, frozen time frequencies
            self.network = self._denoiser().to(self.device)
        norm = self.config.normalizer
        self.normalizer = Normalizer.for_layout(
            norm.kind, self.layout, norm.skip_reward, norm.normalize_terminal
        ).to(self.device)

    def _denoiser(self) -> ResidualMLPDenoiser:
        return ResidualMLPDenoiser(self.config.denoiser, self.layout.width, conditional=self.config.conditional,
                                   null=self.config.guided.null)

    @property
    def conditional(self) -> bool:
        """Whether the model is conditioned on a relevance score (SynthERConfig.guidance)."""
        return self.config.conditional

    def fit(
        self, rows: Any, *, checkpoint: str | os.PathLike[str] | None = None,
        resume: str | os.PathLike[str] | None = None, progress: bool = True,
        stop_after: int | None = None, conditions: Any = None,
    ) -> SynthER:
        """Train a fresh model on ``rows`` (array, tensor or ReplayBuffer).

        ``conditions``: a conditional model's relevance score of each row (n,), standardised
        with its own statistics; each batch keeps a row's condition with probability
        1 - guided.cond_dropout (:func:`synther_fast.diffusion.trainer.keep_mask`).

        ``checkpoint``: write the training state there every ``trainer.checkpoint_every`` steps
        and at the end (atomically). ``resume``: continue the fit saved in that checkpoint (same
        data required); the result equals an uninterrupted fit. ``stop_after``: stop after this
        many steps in total (for tests and time-boxed runs; the checkpoint is written).

        Inside a torchrun process group (synther_fast.common.distributed.process_group) the fit is
        data-parallel over the global batch; rank 0 keeps the EMA, logs and writes the checkpoints,
        and at the end every rank receives rank 0's EMA weights (so every rank holds the model).
        """
        data = validate_rows(rows, self.layout)
        gen = self.config.generation
        if self.layout.terminal is not None and terminal_mode(gen.terminals, gen.task) == "rule":
            check_obs_width(gen.task, self.layout.obs_dim)  # before the fit, not after it
        scores = self._check_conditions(conditions, len(data))
        self._new_model()
        self.normalizer.fit(data)
        tensor = self.normalizer.normalize(torch.from_numpy(data).to(self.device))
        cfg = self.config.trainer
        rank, world = rank_and_world()
        cond = None
        if scores is not None:
            std = float(scores.std())
            self.condition_stats = (float(scores.mean()), std if std > 1e-8 else 1.0)
            cond = self._normalize_conditions(scores)
        trainer = DiffusionTrainer(self.network, tensor, self.config.edm, cfg,
                                   resolve_batch_size(cfg, len(data)),
                                   stream_seed(self.config.seed, Stream.DIFFUSION_TRAINING), shard=(rank, world),
                                   conditions=cond, cond_dropout=self.config.guided.cond_dropout)
        progress = progress and rank == 0
        prints = fingerprint(data)
        if scores is not None:
            prints["conditions_crc32"] = zlib.crc32(memoryview(scores.view(np.uint8)))
        if world > 1:
            # Every rank must resume (or start) alike, or their step counts and weights part.
            if agree(resume is not None) != (not agree(resume is None)):
                raise RuntimeError("the torchrun ranks disagree about resuming (some see the checkpoint, some "
                                   "not): put the checkpoint on storage every rank shares")
        if resume is not None:
            self._resume(trainer, resume, prints)
        self.ema = trainer.ema
        last = cfg.steps if stop_after is None else min(cfg.steps, stop_after)
        bar = progress_bar(cfg.steps, "diffusion fit", enabled=progress, initial=trainer.step)
        started = time.perf_counter()
        while trainer.step < last:
            before = trainer.step
            loss = trainer.train_step()
            bar.update(trainer.step - before)  # the first captured step also ran 3 warm-up steps
            if trainer.step % cfg.log_every == 0 or trainer.step == last:
                value = float(mean_over_ranks(loss))  # the only host sync, every log_every steps
                if not np.isfinite(value):
                    raise FloatingPointError(f"diffusion loss became {value} at step {trainer.step}")
                self.history.append({"step": trainer.step, "loss": value,
                                     "lr": float(trainer.scheduler.get_last_lr()[0])})
                bar.set_postfix(loss=f"{value:.4f}")
            if checkpoint is not None and rank == 0 and (
                    trainer.step % cfg.checkpoint_every == 0 or trainer.step == last):
                self._write_checkpoint(checkpoint, trainer, prints)
        bar.close()
        if world > 1:
            broadcast_module(trainer.ema)
            trainer.forward_network = self.network  # drop the DDP wrapper now, not at interpreter exit
        barrier()  # rank 0's last checkpoint is on disk before any rank goes on
        self.fit_seconds = time.perf_counter() - started
        if self.layout.terminal is not None:
            self.data_terminal_rate = float((data[:, self.layout.terminal.start] > 0.5).mean())
        if self.layout.terminal is not None and terminal_mode(gen.terminals, gen.task) == "classifier":
            # Small (seconds on a CPU) and deterministic: every rank fits the same one.
            self.termination = TerminationClassifier.fit(data, self.layout, seed=stream_seed(self.config.seed, Stream.TERMINATION))
        self.trained_steps = trainer.step
        return self

    def _write_checkpoint(self, path: str | os.PathLike[str], trainer: DiffusionTrainer,
                          prints: dict[str, int]) -> None:
        payload = self._payload()
        payload["trainer"] = trainer.state_dict()
        payload["data"] = json.dumps(prints)
        payload["history"] = json.dumps(self.history)
        with atomic_write(path) as handle:
            torch.save(payload, handle)

    def _resume(self, trainer: DiffusionTrainer, path: str | os.PathLike[str], prints: dict[str, int]) -> None:
        payload = _read_payload(path, self.device)
        if "trainer" not in payload:
            raise ModelFileError(f"{path} is a saved model, not a training checkpoint")
        self._check_compatible(payload, path)
        saved = json.loads(payload["data"])
        if saved != prints:
            raise ModelFileError(
                f"{path} was written for different data ({saved['rows']} rows, crc {saved['crc32']}); "
                f"these rows: {prints['rows']}, crc {prints['crc32']}"
            )
        self.normalizer.load_state_dict(payload["normalizer"])
        trainer.load_state_dict(payload["trainer"])
        self.history = json.loads(payload["history"])

    def _check_conditions(self, conditions: Any, n: int) -> np.ndarray | None:
        if not self.conditional:
            if conditions is not None:
                raise ValueError("conditions were given, but this model is unconditional (synther.guidance 'none')")
            return None
        if conditions is None:
            raise ValueError(f"a conditional model (synther.guidance {self.config.guidance!r}) needs each row's "
                             f"condition: fit(rows, conditions=scores)")
        if isinstance(conditions, torch.Tensor):
            conditions = conditions.detach().cpu().numpy()
        scores = np.ascontiguousarray(np.asarray(conditions, dtype=np.float64).reshape(-1)).astype(np.float32)
        if scores.shape != (n,):
            raise ValueError(f"conditions must hold one value per row ({n}), got shape {np.shape(conditions)}")
        if not np.isfinite(scores).all():
            raise ValueError(f"conditions contain NaN/inf in {int((~np.isfinite(scores)).sum())} rows")
        return scores

    def _normalize_conditions(self, values: Any) -> torch.Tensor:
        mean, std = self.condition_stats  # type: ignore[misc]
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float32).reshape(-1), device=self.device)
        return (tensor - mean) / std

    # -- sampling -----------------------------------------------------------------------------
    def _require_model(self) -> None:
        if self.ema is None:
            raise RuntimeError("the model is not fitted: call fit(rows) or SynthER.load(path) first")

    @torch.inference_mode()
    def sample_normalized(self, n: int, generator: torch.Generator | None = None,
                          num_steps: int | None = None, conditions: Any = None,
                          scale: float | None = None) -> torch.Tensor:
        """n rows in normalised space straight from the sampler (no post-processing).

        On CUDA with the fused denoiser, the fused sampler runs as one captured CUDA graph per
        batch size (noise drawn on the device); elsewhere the reference loop of the sampler.
        ``conditions`` (n,): a conditional model's target scores, one per row, sampled with
        classifier-free guidance at ``scale`` (None: guided.scale); without them, or at scale 0,
        the unconditional branch alone runs (the same rows, at half the cost).
        """
        self._require_model()
        edm = self.config.edm
        network = self.ema.eval()
        clamp = self.config.normalizer.kind == "minmax"
        schedule = self.schedule(num_steps)
        guidance = self.config.guided.scale if scale is None else float(scale)
        if not (np.isfinite(guidance) and guidance >= 0):
            raise ValueError(f"the guidance scale must be finite and >= 0, got {scale!r}")
        cond = None
        if conditions is not None:
            if not self.conditional:
                raise ValueError("conditions were given, but this model is unconditional (synther.guidance 'none')")
            cond = self._normalize_conditions(conditions)
            if cond.shape != (n,):
                raise ValueError(f"conditions must hold one value per generated row ({n}), got {tuple(cond.shape)}")
            if guidance == 0.0:
                cond = None  # D_uncond + 0 (D_cond - D_uncond) = D_uncond
        both = self.config.guided.both_evaluations
        probe = torch.empty(1, self.config.denoiser.width, device=self.device)
        if self.device.type == "cuda" and network.uses_fused_blocks(probe):
            # The captured sampler draws from the default CUDA generator: swap in a state seeded
            # from ``generator`` so that the caller's seed decides the rows and nothing global moves.
            seed = int(torch.randint(0, 2**62, (), generator=generator, device=generator.device)) \
                if generator is not None else fresh_seed()
            with CudaRngSlot(self.device, seed):
                sampler = self._fused_sampler(n, schedule, clamp, None if cond is None else guidance, both)
                if cond is not None:
                    sampler.cond.copy_(cond)
                return sampler.sample().clone()

        if cond is None:
            def denoiser(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
                out = denoise(network, x, sigma, edm.sigma_data)
                return out.clamp(-1.0, 1.0) if clamp else out
            second = None
        else:
            denoiser, second = guided_denoisers(network, cond, guidance, edm.sigma_data, both, clamp)

        x = reference_sample(denoiser, (n, self.layout.width), schedule, generator=generator, device=self.device,
                             second_denoiser=second)
        return x.clamp(-1.0, 1.0) if clamp else x

    def _fused_sampler(self, n: int, schedule: SamplerSchedule, clamp: bool, guidance: float | None = None,
                       both: bool = True):
        cache = self.__dict__.setdefault("_samplers", {})
        if cache and next(iter(cache))[2] != id(self.ema):  # another model's graphs: release them
            cache.clear()
        key = (n, schedule, id(self.ema), guidance, both)
        if key not in cache:
            if len(cache) >= 3:  # a full chunk, a remainder, a top-up; each graph holds its activations
                cache.pop(next(iter(cache)))
            cache[key] = FusedSampler(self.ema, schedule, self.config.edm.sigma_data, n,
                                          self.layout.width, self.device, clamp=clamp, guidance=guidance,
                                          both_evaluations=both)
        return cache[key]

    def schedule(self, num_steps: int | None = None) -> SamplerSchedule:
        """The sampler schedule generation uses (config.edm's sampler, ``num_steps`` or its own)."""
        return sampler_schedule(self.config.edm, num_steps)

    @property
    def sampler_record(self) -> dict[str, Any]:
        """What generated files and run summaries record of the sampler: name, steps and NFE."""
        return sampler_record(self.config.edm)

    def with_sampler(self, sampler: str | None = None, num_steps: int | None = None, *,
                     S_churn: float | None = None) -> SynthER:  # noqa: N803 (EDM's name)
        """This fitted model with another sampler, number of steps and/or churn (S_churn 0: EDM's
        deterministic Heun): every generation path (generate, generate_into, iter_chunks, sharded
        generation) of the returned model uses them. It shares this model's weights; None keeps the
        current value."""
        edm = self.config.edm
        changes = {k: v for k, v in (("sampler", sampler), ("num_steps", num_steps), ("S_churn", S_churn))
                   if v is not None}
        if not changes:
            return self
        config = validate(dataclasses.replace(self.config, edm=dataclasses.replace(edm, **changes)))
        other = copy.copy(self)
        other.config = config
        other.__dict__.pop("_samplers", None)  # captured graphs belong to one schedule set
        return other

    def iter_chunks(self, n: int, seed: int | None = None, chunks: range | None = None,
                    conditions: Any = None, scale: float | None = None, *, sampler: str | None = None,
                    num_steps: int | None = None) -> Iterator[np.ndarray]:
        """Generated rows in chunks of at most ``generation.chunk_size``, post-processed.

        Chunk k draws from its own stream, (seed, Stream.CHUNK, k), so any block of chunks can be
        drawn alone (``chunks``: those chunk indices only; sharded generation) and gives the
        same rows as in a full run. ``conditions``: a conditional model's pool of target scores;
        each row's condition is drawn from it uniformly (from the chunk's own stream) and the rows
        are guided toward it at ``scale`` (None: guided.scale). ``sampler`` / ``num_steps``: draw
        with these instead of config.edm's (:meth:`with_sampler`).
        """
        if sampler is not None or num_steps is not None:
            yield from self.with_sampler(sampler, num_steps).iter_chunks(n, seed, chunks, conditions, scale)
            return
        pool = None
        if conditions is not None:
            if not self.conditional:
                raise ValueError("conditions were given, but this model is unconditional (synther.guidance 'none')")
            pool = np.asarray(conditions, dtype=np.float32).reshape(-1)
            if pool.size == 0 or not np.isfinite(pool).all():
                raise ValueError("the pool of generation conditions must be non-empty and finite")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"number of rows must be a non-negative int, got {n!r}")
        self._require_model()
        base_seed = int(seed) if seed is not None else fresh_seed()
        chunk = self.config.generation.chunk_size
        n_chunks = -(-int(n) // chunk)
        if chunks is None:
            chunks = range(n_chunks)
        elif len(chunks) and (chunks.start < 0 or chunks.stop > n_chunks or chunks.step != 1):
            raise ValueError(f"chunks {chunks} must be a contiguous part of range({n_chunks})")
        generator = torch.Generator(device=self.device)
        dropped = short = 0
        matching = self._matches_terminal_rate()
        topup = max(1, -(-chunk // TOPUP_FRACTION))  # one size for every top-up: one more sampler graph on CUDA
        for k in chunks:
            count = min(chunk, int(n) - k * chunk)
            rows, bad = self._draw(count, stream_seed(base_seed, Stream.CHUNK, k), generator, pool, scale)
            dropped += bad
            if matching:
                # Thin to the data's terminal fraction, then refill what was thinned from top-up
                # draws of the chunk's own streams: the chunk still holds count - bad rows.
                rng = np.random.default_rng(stream_seed(base_seed, Stream.CHUNK_MATCH, k))
                want = count - bad
                rows = match_terminal_rate(rows, self.layout, self.data_terminal_rate, rng)  # type: ignore[arg-type]
                for j in range(MAX_TOPUPS):
                    if len(rows) >= want:
                        break
                    extra, _ = self._draw(topup, stream_seed(base_seed, Stream.CHUNK_TOPUP, k, j), generator, pool, scale)
                    extra = match_terminal_rate(extra, self.layout, self.data_terminal_rate, rng)  # type: ignore[arg-type]
                    rows = np.concatenate([rows, extra[: want - len(rows)]])
                short += max(0, want - len(rows))
            yield rows
        if dropped:
            warnings.warn(f"dropped {dropped} generated rows with NaN/inf values", RuntimeWarning,
                          stacklevel=2)
        if short:
            warnings.warn(f"{short} rows fewer than asked: the model's terminal fraction is so far from the "
                          f"data's ({self.data_terminal_rate:.2%}) that {MAX_TOPUPS} top-up draws per chunk did "
                          f"not refill what matching it removed (generation.terminal_prior='model' keeps the "
                          f"model's fraction)", RuntimeWarning, stacklevel=2)

    def _draw(self, count: int, seed: int, generator: torch.Generator, pool: np.ndarray | None = None,
              scale: float | None = None) -> tuple[np.ndarray, int]:
        """``count`` post-processed rows from stream ``seed``, without those holding NaN/inf (and
        how many those were); with a pool, each row guided toward a condition drawn from it."""
        generator.manual_seed(seed)
        conditions = None
        if pool is not None:
            conditions = pool[np.random.default_rng(stream_seed(seed, Stream.CONDITIONS)).integers(0, len(pool), count)]
        normalized = (self.sample_normalized(count, generator) if conditions is None else
                      self.sample_normalized(count, generator, conditions=conditions, scale=scale))
        rows = self._postprocess(self.normalizer.denormalize(normalized).cpu().numpy())
        keep = np.isfinite(rows).all(axis=1)
        return rows[keep], int((~keep).sum())

    def _matches_terminal_rate(self) -> bool:
        gen = self.config.generation
        return (gen.terminal_prior == "data" and self.data_terminal_rate is not None
                and terminal_mode(gen.terminals, gen.task) in ("rule", "classifier"))

    def _postprocess(self, rows: np.ndarray) -> np.ndarray:
        gen = self.config.generation
        label_terminals(rows, self.layout, terminal_mode(gen.terminals, gen.task), gen.task, self.termination,
                        gen.terminal_threshold)
        if gen.clip_actions:
            lo, hi = action_bounds_arrays(gen.action_bounds)
            if lo.ndim == 1 and lo.size != self.layout.act_dim:
                raise ValueError(f"GenerationConfig.action_bounds has {lo.size} per-dimension bounds, the model's "
                                 f"actions have {self.layout.act_dim} dimensions")
            rows[:, self.layout.action] = np.clip(rows[:, self.layout.action], lo, hi)
        return np.ascontiguousarray(rows, dtype=np.float32)

    def generate(self, n: int, seed: int | None = None, conditions: Any = None,
                 scale: float | None = None, *, sampler: str | None = None, num_steps: int | None = None) -> np.ndarray:
        """n new rows (fewer if non-finite rows had to be dropped) as a float32 numpy array;
        ``conditions``/``scale``: guided generation, ``sampler``/``num_steps``: another sampler
        (see :meth:`iter_chunks`)."""
        chunks = list(self.iter_chunks(n, seed, conditions=conditions, scale=scale, sampler=sampler,
                                       num_steps=num_steps))
        return np.concatenate(chunks) if chunks else np.zeros((0, self.layout.width), np.float32)

    def generate_into(self, target: Any, n: int, seed: int | None = None, conditions: Any = None,
                      scale: float | None = None, *, sampler: str | None = None, num_steps: int | None = None) -> int:
        """Stream n generated rows into a ReplayBuffer or an .npz file (which records the sampler
        and its NFE); returns rows written."""
        if sampler is not None or num_steps is not None:
            return self.with_sampler(sampler, num_steps).generate_into(target, n, seed, conditions, scale)
        if isinstance(target, ReplayBuffer):
            if target.layout != self.layout:
                raise ValueError(f"buffer layout {target.layout} differs from the model's {self.layout}")
            written = 0
            for rows in self.iter_chunks(n, seed, conditions=conditions, scale=scale):
                target.add(rows)
                written += len(rows)
            return written
        path = Path(target)
        if path.suffix != ".npz":
            raise ValueError(f"generate_into takes a ReplayBuffer or an .npz path, got {target!r}")
        rows = self.generate(n, seed, conditions=conditions, scale=scale)
        write_rows(rows, self.layout, path, info=self.sampler_record)  # the one file format for generated rows
        return len(rows)

    # -- persistence --------------------------------------------------------------------------
    def _payload(self) -> dict[str, Any]:
        return {
            "format": MODEL_FORMAT,
            "version": MODEL_VERSION,
            "layout": json.dumps(self.layout.to_dict()),
            "config": json.dumps(self.config.to_dict()),
            "network": self.network.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else self.network.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "normalizer_kind": self.normalizer.kind,
            "termination": self.termination.state_dict() if self.termination is not None else None,
            "data_terminal_rate": self.data_terminal_rate,
            **({} if self.condition_stats is None else {"condition_stats": json.dumps(list(self.condition_stats))}),
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """One file (weights, EMA, normaliser, layout, config as JSON), written atomically."""
        self._require_model()
        with atomic_write(path) as handle:
            torch.save(self._payload(), handle)

    @classmethod
    def load(cls, path: str | os.PathLike[str], map_location: str | torch.device | None = None) -> SynthER:
        device = torch.device(map_location) if map_location is not None else default_device()
        payload = _read_payload(path, device)
        try:
            layout = TransitionLayout.from_dict(json.loads(payload["layout"]))
            config = SynthERConfig.from_dict(json.loads(payload["config"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise ModelFileError(f"{path}: invalid layout or config ({exc})") from None
        model = cls(layout, config, device)
        model._new_model()
        model.ema = model._denoiser().to(device)
        try:
            model.network.load_state_dict(payload["network"])
            model.ema.load_state_dict(payload["ema"])
            model.normalizer.load_state_dict(payload["normalizer"])
        except (KeyError, RuntimeError) as exc:
            raise ModelFileError(f"{path}: weights do not match the stored config ({exc})") from None
        model.ema.requires_grad_(False).eval()
        gen = config.generation
        model.termination = load_classifier(payload.get("termination"), layout, terminal_mode(gen.terminals, gen.task), path)
        rate = payload.get("data_terminal_rate")  # absent from files of earlier releases: no rebalancing
        model.data_terminal_rate = None if rate is None else float(rate)
        if model.conditional:
            if "condition_stats" not in payload:
                raise ModelFileError(f"{path}: a conditional model's file without its condition statistics")
            mean, std = json.loads(payload["condition_stats"])
            model.condition_stats = (float(mean), float(std))
        return model

    def _check_compatible(self, payload: dict[str, Any], path: Any) -> None:
        layout = TransitionLayout.from_dict(json.loads(payload["layout"]))
        if layout != self.layout:
            raise ModelFileError(f"{path}: layout {layout} does not match this model's {self.layout}")
        config = SynthERConfig.from_dict(json.loads(payload["config"]))
        if config != self.config:
            raise ModelFileError(f"{path}: written with a different config than this model's")


def _read_payload(path: str | os.PathLike[str], device: torch.device) -> dict[str, Any]:
    payload = load_torch_dict(path, device, ModelFileError, "model file")
    if payload.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path}: not a synther_fast model file")
    if payload.get("version") != MODEL_VERSION:
        raise ModelFileError(
            f"{path}: model file version {payload.get('version')} is not supported (reads {MODEL_VERSION})"
        )
    return payload
