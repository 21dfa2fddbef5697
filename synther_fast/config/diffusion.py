"""The diffusion model's settings (denoiser, EDM, normalizer, trainer, generation, guidance) and
its presets, with the published SynthER defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import tyro

from synther_fast.config.base import Checked, Serialisable, _choice, _non_negative, _positive
from synther_fast.envs.health import HEALTH_RULES

DENOISER_BACKENDS = ("auto", "reference", "fused", "emulated")
PRECISIONS = ("ieee", "tf32", "tf32x3", "bf16")
"""Matmul precisions of the fused denoiser blocks (synther_fast.kernels.precision implements them)."""


@dataclass(frozen=True)
class DenoiserConfig(Checked):
    """Residual-MLP denoiser (SynthER, Lu et al. 2023, section 3)."""

    width: int = 2048
    """hidden width of the residual blocks"""
    depth: int = 6
    """number of residual blocks x + Linear(relu(x))"""
    dim_t: int = 128
    """width of the input projection and of the time embedding"""
    fourier_features: int = 8
    """frozen random frequencies of the time embedding (features: c_noise, sin, cos -> 2k+1)"""
    layer_norm: bool = False
    """LayerNorm before each block's activation (off in the paper)"""
    backend: str = "auto"
    """'auto': fused Triton blocks on CUDA, the PyTorch reference elsewhere; 'reference'; 'fused';
    'emulated': plain PyTorch with the fused blocks' operand rounding at ``precision`` (any device)"""
    precision: str = "tf32"
    """matmul precision of the fused (and emulated) blocks: 'tf32' (default: tensor cores; the
    precision study in bench/RESULTS.md measured no loss in the diffusion-core statistics against
    fp32), 'ieee' (exact fp32 products), 'tf32x3' (three TF32 products, fp32-class) or 'bf16'
    (fp32 accumulation); see synther_fast.kernels.precision. The reference backend is always fp32."""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "width", "depth", "dim_t", "fourier_features")
        _choice(self, "backend", DENOISER_BACKENDS)
        _choice(self, "precision", PRECISIONS)
        if self.backend in ("fused", "emulated") and self.layer_norm:
            raise ValueError(f"DenoiserConfig: the {self.backend} residual blocks do not implement LayerNorm; "
                             f"use backend 'reference'")


SAMPLERS = ("heun", "euler", "dpmpp_2m", "dpmpp_2m_sde")
"""The generation samplers (synther_fast.diffusion.edm has their maths)."""


@dataclass(frozen=True)
class EDMConfig(Checked):
    """Elucidated diffusion (Karras et al. 2022): preconditioning, training noise, Heun sampler."""

    sigma_data: float = 1.0
    """std of the (normalised) data in EDM's preconditioning"""
    sigma_min: float = 0.002
    """lowest noise level of the sampler schedule"""
    sigma_max: float = 80.0
    """highest noise level of the sampler schedule"""
    rho: float = 7.0
    """schedule curvature: t_i = (s_max^(1/rho) + i/(N-1)(s_min^(1/rho) - s_max^(1/rho)))^rho"""
    P_mean: float = -1.2
    """mean of log sigma during training (log-normal noise levels)"""
    P_std: float = 1.2
    """std of log sigma during training"""
    sampler: str = "heun"
    """'heun' (EDM's Algorithm 2, the published sampler: 2 N - 1 network evaluations), 'euler'
    (first order, N evaluations) or 'dpmpp_2m' (DPM-Solver++(2M), second order from the previous
    step's denoised rows, N evaluations, deterministic: S_churn does not apply) or 'dpmpp_2m_sde'
    (its stochastic form, eta 1: fresh noise at every step instead of churn, N evaluations)"""
    num_steps: int = 128
    """sampler steps N on the Karras sigma schedule (network evaluations per row: see sampler)"""
    S_churn: float = 80.0
    """total stochasticity of the heun and euler samplers (gamma = min(S_churn/N, sqrt 2 - 1); 0:
    deterministic)"""
    S_tmin: float = 0.05
    """churn only for sigma in [S_tmin, S_tmax]"""
    S_tmax: float = 50.0
    """churn only for sigma in [S_tmin, S_tmax]"""
    S_noise: float = 1.003
    """scale of the churn noise"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "sigma_data", "sigma_min", "sigma_max", "rho", "P_std", "num_steps")
        _choice(self, "sampler", SAMPLERS)
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"EDMConfig.sigma_min ({self.sigma_min}) must be below sigma_max ({self.sigma_max})")


@dataclass(frozen=True)
class NormalizerConfig(Checked):
    """Per-dimension normalisation of rows before diffusion."""

    kind: str = "standard"
    """'standard' (zero mean, unit std) or 'minmax' (to [-1, 1]; samples are clamped there)"""
    skip_reward: bool = False
    """leave the reward column unnormalised (the published online DMC setting)"""
    normalize_terminal: bool = False
    """standardise the 0/1 terminal column like the others (the published code leaves it as is)"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _choice(self, "kind", ("standard", "minmax"))


@dataclass(frozen=True)
class TrainerConfig(Checked):
    """Diffusion training: AdamW + cosine schedule + grad clipping + the published EMA."""

    steps: int = 100_000
    """optimiser steps of one fit"""
    batch_size: int | None = None
    """None: the published rule, 256 below 800k rows, else 1024"""
    lr: float = 3e-4
    """AdamW learning rate (cosine-decayed over the fit)"""
    betas: tuple[float, float] = (0.9, 0.99)
    """AdamW betas"""
    weight_decay: float = 0.0
    """AdamW weight decay"""
    grad_clip: float = 1.0
    """max gradient norm"""
    ema_every: int = 10
    """EMA update period in steps (ema-pytorch update_every)"""
    ema_warmup: int = 100
    """steps during which the EMA is a plain copy (ema-pytorch update_after_step)"""
    ema_max_decay: float = 0.995
    """the EMA decay's ceiling"""
    ema_power: float = 2.0 / 3.0
    """EMA decay 1 - (1 + t)^(-power) below the ceiling"""
    checkpoint_every: int = 10_000
    """steps between checkpoints when fitting with a checkpoint path"""
    log_every: int = 100
    """steps between loss records (the fit's only host syncs)"""
    cuda_graph: bool = True
    """on CUDA, capture the whole training step (forward, backward, clip, AdamW, EMA) as a graph"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "steps", "lr", "ema_every", "checkpoint_every", "log_every", "grad_clip")
        if self.batch_size is not None:
            _positive(self, "batch_size")
        _non_negative(self, "ema_warmup")


TERMINAL_LABELS = ("auto", "rule", "classifier", "threshold")


@dataclass(frozen=True)
class GenerationConfig(Checked):
    """Sampling rows from a fitted model."""

    chunk_size: int = 100_000
    """rows per sampler call (the published batches of 100k)"""
    terminals: str = "auto"
    """how generated rows get their 0/1 terminal: 'rule' (the task's termination rule applied to
    the generated next_obs: Hopper-v5, Walker2d-v5), 'classifier' (a termination classifier on
    next_obs fitted on the real rows with the model), 'threshold' (the generated value at or above
    terminal_threshold: the published code, which at quick scale gave ~10x too few terminals; see
    docs/RESULTS.md), 'auto' ('rule' where the task has one, else 'classifier')"""
    task: str | None = None
    """the environment the rows come from (the pipelines set it): selects the termination rule"""
    terminal_threshold: float | None = 0.5
    """for terminals='threshold': generated values at or above this become 1, else 0; None keeps
    the raw generated value (what the published online code stores)"""
    terminal_prior: str = "data"
    """with terminals labelled by 'rule' / 'classifier' (and 'auto'): 'data' thins each chunk at
    random so that its terminal fraction is the real rows' (stratified sampling on the terminal
    bit: at quick scale the model puts 27-42% too many states in the unhealthy region, and this
    drops the surplus, under 1% of the rows; docs/RESULTS.md); 'model' keeps the model's own
    fraction. 'threshold' never rebalances (the published behaviour)."""
    clip_actions: bool = False
    """clip generated actions to action_bounds (the published code does not)"""
    # The command line takes the scalar pair as two numbers (tyro would turn the union into
    # sub-commands); per-dimension bounds come from Python or a config file.
    action_bounds: Annotated[tuple[float, float] | tuple[tuple[float, ...], tuple[float, ...]],
                             tyro.conf.arg(constructor=tuple[float, float])] = (-1.0, 1.0)
    """bounds for clip_actions: one (low, high) pair for every action dimension, or a pair of
    per-dimension tuples ((low_0, ..., low_k), (high_0, ..., high_k)), e.g. a gymnasium Box's
    ``(tuple(space.low), tuple(space.high))`` for rows stored at the environment's scale"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "chunk_size")
        _choice(self, "terminals", TERMINAL_LABELS)
        _choice(self, "terminal_prior", ("data", "model"))
        low, high = action_bounds_arrays(self.action_bounds)
        if low.shape != high.shape:
            raise ValueError(f"GenerationConfig.action_bounds: {low.size} lows but {high.size} highs")
        if not (np.isfinite(low).all() and np.isfinite(high).all()) or (low > high).any():
            raise ValueError(f"GenerationConfig.action_bounds must be finite with low <= high in every "
                             f"dimension, got {self.action_bounds!r}")
        if self.terminals == "rule" and self.task not in HEALTH_RULES:
            raise ValueError(f"GenerationConfig.terminals='rule' needs a task with a termination rule "
                             f"({', '.join(HEALTH_RULES)}), got task={self.task!r}; use 'classifier' or 'auto'")


def action_bounds_arrays(bounds: Any) -> tuple[np.ndarray, np.ndarray]:
    """GenerationConfig.action_bounds as float32 (low, high) arrays: 0-d for one scalar pair,
    1-d for per-dimension bounds."""
    low, high = bounds
    return np.asarray(low, dtype=np.float32), np.asarray(high, dtype=np.float32)


GUIDANCE_KINDS = ("none", "curiosity", "td", "return")
"""Relevance functions a conditional model can be guided by (synther_fast.relevance)."""


@dataclass(frozen=True)
class GuidedConfig(Checked):
    """Relevance-guided generation (beyond SynthER): a denoiser conditioned on a scalar relevance
    score and sampled with classifier-free guidance toward high scores (PGR, Wang et al. 2024,
    arXiv 2410.18082; offline, return-conditioned as GTA, arXiv 2405.16907). Used only when
    SynthERConfig.guidance is not 'none'."""

    cond_dropout: float = 0.25
    """probability that a training row's condition is replaced by the null embedding (PGR: 0.25)"""
    null: str = "zero"
    """the null (unconditional) embedding: 'zero' (PGR's: the unconditional branch is then exactly
    the unconditional network) or 'learned' (a trained vector)"""
    scale: float = 2.0
    """guidance scale w: D = D_uncond + w (D_cond - D_uncond); 0 samples the unconditional branch,
    1 the conditional one (PGR: 2.0)"""
    both_evaluations: bool = True
    """guide both network evaluations of each Heun step; False guides the first only and runs the
    second on the conditional branch alone (PGR's code; half the second evaluation's cost)"""
    top_frac: float = 0.25
    """online: generation conditions are drawn from the top fraction of the real rows' scores
    (PGR: 0.1-0.25)"""
    return_quantile: float = 0.9
    """offline 'return': generate at this quantile of the rows' returns-to-go ..."""
    return_amplify: float = 1.0
    """... times this factor (GTA's amplification; 1 keeps the quantile)"""
    curiosity_hidden: int = 256
    """width of the curiosity (ICM) networks (PGR: 256 on DMC)"""
    curiosity_lr: float = 3e-4
    """Adam learning rate of the curiosity networks (one update per environment step, on real rows)"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        if not 0.0 <= self.cond_dropout <= 1.0:
            raise ValueError(f"GuidedConfig.cond_dropout must lie in [0, 1], got {self.cond_dropout}")
        _choice(self, "null", ("zero", "learned"))
        _non_negative(self, "scale")
        if not 0.0 < self.top_frac <= 1.0:
            raise ValueError(f"GuidedConfig.top_frac must lie in (0, 1], got {self.top_frac}")
        if not 0.0 <= self.return_quantile <= 1.0:
            raise ValueError(f"GuidedConfig.return_quantile must lie in [0, 1], got {self.return_quantile}")
        _positive(self, "return_amplify", "curiosity_hidden", "curiosity_lr")


@dataclass(frozen=True)
class SynthERConfig(Serialisable, Checked):
    """Everything a SynthER model needs: network, diffusion, normaliser, training and sampling."""

    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    """the residual-MLP network"""
    edm: EDMConfig = field(default_factory=EDMConfig)
    """diffusion maths and the sampler"""
    normalizer: NormalizerConfig = field(default_factory=NormalizerConfig)
    """per-column normalisation of the rows"""
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    """the fit"""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """sampling rows"""
    guidance: str = "none"
    """beyond SynthER: condition the model on a relevance score and guide generation toward high
    scores: 'curiosity' (online: an ICM forward-model error, PGR), 'td' (online: the critics' TD
    error), 'return' (offline: return-to-go, GTA); 'none' is SynthER's unconditional model"""
    guided: GuidedConfig = field(default_factory=GuidedConfig)
    """the conditional model and its guidance (with guidance other than 'none')"""
    seed: int | None = None
    """seed of the fit (initial weights, batch draws, training noise); None: derived from the run's
    seed (synther_fast.common.rng.fit_seed; run seed 0 for a model outside any run), so every run seed
    fits its own model. Set it to fit the same model under several run seeds"""
    preset: str = "custom"
    """name of the preset this config came from (informational)"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _choice(self, "guidance", GUIDANCE_KINDS)
        if self.seed is not None:
            _non_negative(self, "seed")

    def check_guided_training(self) -> None:
        """For the pipelines' guided runs (the model API allows the extremes, for comparisons):
        guidance subtracts the unconditional branch from the conditional one, so both must train."""
        dropout, scale = self.guided.cond_dropout, self.guided.scale
        if self.conditional and scale not in (0.0, 1.0) and dropout in (0.0, 1.0):
            branch = "unconditional (null)" if dropout == 0.0 else "conditional"
            raise ValueError(f"synther.guided.cond_dropout {dropout} never trains the {branch} branch, which "
                             f"guidance at scale {scale} uses; choose a dropout strictly between 0 and 1 (PGR: 0.25)")

    @property
    def conditional(self) -> bool:
        """Whether the model is conditioned on a relevance score."""
        return self.guidance != "none"


def for_task(config: SynthERConfig, task: str | None) -> SynthERConfig:
    """``config`` told which environment its rows come from (for the terminal rule), unless it
    names one already."""
    if task is None or config.generation.task is not None:
        return config
    return dataclasses.replace(config, generation=dataclasses.replace(config.generation, task=task))


def resolve_batch_size(config: TrainerConfig, n_rows: int) -> int:
    """The published rule: batch 256 below 800k rows, else 1024, unless set explicitly."""
    if config.batch_size is not None:
        return config.batch_size
    return 256 if n_rows < 800_000 else 1024


def paper_offline() -> SynthERConfig:
    """The published offline settings (width 2048, dim_t 128, 100k steps, batch rule)."""
    return SynthERConfig(preset="paper_offline")


def paper_online() -> SynthERConfig:
    """The published online settings (width 1024, dim_t 256, batch 256)."""
    return SynthERConfig(
        denoiser=DenoiserConfig(width=1024, dim_t=256),
        trainer=TrainerConfig(batch_size=256),
        generation=GenerationConfig(chunk_size=100_000),
        preset="paper_online",
    )


def quick() -> SynthERConfig:
    """Fits and samples in a few minutes on 2 CPU cores: width 256, depth 4, 4000 steps, 32 steps
    of the sampler (the paper's maths, smaller and shorter)."""
    return SynthERConfig(
        denoiser=DenoiserConfig(width=256, depth=4, dim_t=64),
        edm=EDMConfig(num_steps=32),
        trainer=TrainerConfig(steps=4000, batch_size=256, checkpoint_every=1000),
        generation=GenerationConfig(chunk_size=10_000),
        preset="quick",
    )


