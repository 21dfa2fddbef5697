"""The configuration tree: every setting of every part, with the published SynthER defaults.

One family of frozen dataclasses is the single source for the Python API, the CLI (generated from
these classes with tyro: the field docstrings are the help), run directories and presets. A preset
is a plain function returning a config, so a call site shows its defaults. Every config serialises
with one versioned scheme (:func:`config_to_dict` / :func:`config_from_dict`); nested fields are
overridden with dotted keys (:func:`with_overrides`, e.g. ``"synther.trainer.steps"``).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import difflib
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from synther_fast.envs.health import HEALTH_RULES

T = TypeVar("T")
S = TypeVar("S", bound="Serialisable")
CONFIG_FORMAT_VERSION = 1


_CHECKS_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("synther_fast_checks_deferred", default=False)


class Checked:
    """A config part whose ``check()`` runs when it is built, so ``SACConfig(utd=0)`` fails at
    once, naming the field. The checks are written once, in ``check()``; :func:`validate` runs
    them over a whole tree (after :func:`deferred_checks`, or after ``dataclasses.replace``)."""

    def __post_init__(self) -> None:
        if not _CHECKS_DEFERRED.get():
            self.check()  # type: ignore[attr-defined]


@contextlib.contextmanager
def deferred_checks() -> Iterator[None]:
    """Build configs without running their checks in this context only (the CLI parser, which
    then calls :func:`validate`: tyro would report an error raised while it builds a nested
    config in its own truncated box)."""
    token = _CHECKS_DEFERRED.set(True)
    try:
        yield
    finally:
        _CHECKS_DEFERRED.reset(token)


class Serialisable:
    """The serialisation and override methods every top-level config shares."""

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any]) -> S:
        return config_from_dict(cls, data)

    def with_overrides(self: S, **overrides: Any) -> S:
        """Fields by name; nested ones by dotted keys ('synther.trainer.steps', 'td3_bc.alpha')."""
        return with_overrides(self, **overrides)

    def replace(self: S, **changes: Any) -> S:
        """The same as :meth:`with_overrides`."""
        return with_overrides(self, **changes)


DENOISER_BACKENDS = ("auto", "reference", "fused", "emulated")
PRECISIONS = ("ieee", "tf32", "tf32x3", "bf16")
"""Matmul precisions of the fused denoiser blocks (synther_fast.precision implements them)."""


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
    (fp32 accumulation); see synther_fast.precision. The reference backend is always fp32."""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "width", "depth", "dim_t", "fourier_features")
        _choice(self, "backend", DENOISER_BACKENDS)
        _choice(self, "precision", PRECISIONS)
        if self.backend in ("fused", "emulated") and self.layer_norm:
            raise ValueError(f"DenoiserConfig: the {self.backend} residual blocks do not implement LayerNorm; "
                             f"use backend 'reference'")


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
    num_steps: int = 128
    """sampler steps (each a Heun step: two network evaluations but the last)"""
    S_churn: float = 80.0
    """total stochasticity of the Heun sampler (gamma = min(S_churn/N, sqrt 2 - 1))"""
    S_tmin: float = 0.05
    """churn only for sigma in [S_tmin, S_tmax]"""
    S_tmax: float = 50.0
    """churn only for sigma in [S_tmin, S_tmax]"""
    S_noise: float = 1.003
    """scale of the churn noise"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "sigma_data", "sigma_min", "sigma_max", "rho", "P_std", "num_steps")
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
    action_bounds: tuple[float, float] = (-1.0, 1.0)
    """bounds for clip_actions"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "chunk_size")
        _choice(self, "terminals", TERMINAL_LABELS)
        _choice(self, "terminal_prior", ("data", "model"))
        if self.terminals == "rule" and self.task not in HEALTH_RULES:
            raise ValueError(f"GenerationConfig.terminals='rule' needs a task with a termination rule "
                             f"({', '.join(HEALTH_RULES)}), got task={self.task!r}; use 'classifier' or 'auto'")


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
    seed (synther_fast.rng.fit_seed; run seed 0 for a model outside any run), so every run seed
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


# -- agents -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TD3BCConfig:
    """TD3+BC (Fujimoto & Gu 2021) with CORL's defaults (the same for every D4RL locomotion task)."""

    actor_lr: float = 3e-4
    """Adam learning rate of the actor"""
    critic_lr: float = 3e-4
    """Adam learning rate of the critics"""
    discount: float = 0.99
    """gamma"""
    tau: float = 0.005
    """target-network soft-update rate"""
    policy_noise: float = 0.2
    """std of the target-policy smoothing noise"""
    noise_clip: float = 0.5
    """clip of the target-policy smoothing noise"""
    policy_freq: int = 2
    """actor (and target) update every policy_freq critic updates"""
    alpha: float = 2.5
    """weight of the Q term against behaviour cloning: lambda = alpha / mean|Q|"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of actor and critics"""
    cuda_graph: bool = True
    """on CUDA, capture each update as a graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""


@dataclass(frozen=True)
class IQLConfig:
    """IQL (Kostrikov et al. 2022) with CORL's defaults for D4RL locomotion."""

    lr: float = 3e-4
    """Adam learning rate of V, Q and the actor"""
    discount: float = 0.99
    """gamma"""
    tau: float = 0.005
    """target-network soft-update rate"""
    beta: float = 3.0
    """inverse temperature of the advantage-weighted actor loss"""
    expectile: float = 0.7
    """expectile of the value loss"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of every network"""
    max_steps: int | None = None
    """length of the actor's cosine learning-rate schedule; None: the run's number of updates"""
    cuda_graph: bool = True
    """on CUDA, capture each update as a graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""


@dataclass(frozen=True)
class EDACConfig(Checked):
    """EDAC (An et al. 2021) with CORL's defaults for D4RL locomotion: SAC over an ensemble of
    critics whose action-gradients are pushed apart (the diversity term, weight eta)."""

    num_critics: int = 10
    """critics in the ensemble (CORL: 10; 50 for hopper-* datasets)"""
    eta: float = 1.0
    """weight of the gradient-diversity term (CORL: 1; 5 for halfcheetah/walker2d medium-expert)"""
    hidden: tuple[int, ...] = (256, 256, 256)
    """hidden widths of the actor and of every critic"""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    """Adam learning rate of log alpha (auto-tuned, target entropy -|A|, log alpha starts at 0)"""
    discount: float = 0.99
    tau: float = 5e-3
    """target-critic soft-update rate"""
    cuda_graph: bool = True
    """on CUDA, capture each update as a graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "actor_lr", "critic_lr", "alpha_lr", "tau")
        _non_negative(self, "eta")
        if isinstance(self.num_critics, bool) or self.num_critics < 2:
            raise ValueError(f"EDACConfig.num_critics must be >= 2 (the diversity term compares critics), "
                             f"got {self.num_critics}")


@dataclass(frozen=True)
class CQLConfig(Checked):
    """CQL (Kumar et al. 2020) with CORL's defaults for D4RL locomotion (Lagrange, max-target
    backup and entropy backup off; rewards unscaled: CORL's 5 / -1 is its AntMaze transform)."""

    cql_alpha: float = 10.0
    """weight of the conservative term"""
    n_actions: int = 10
    """actions sampled per state for the log-sum-exp (uniform, from pi(s) and from pi(s'))"""
    temperature: float = 1.0
    """temperature of the log-sum-exp"""
    policy_lr: float = 3e-5
    """Adam learning rate of the policy and of log alpha (target entropy -|A|)"""
    qf_lr: float = 3e-4
    discount: float = 0.99
    tau: float = 5e-3
    """target-critic soft-update rate (every update)"""
    hidden: tuple[int, ...] = (256, 256, 256)
    """hidden widths of the policy and of both critics"""
    cuda_graph: bool = True
    """on CUDA, capture each update as a graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "n_actions", "temperature", "policy_lr", "qf_lr", "tau")
        _non_negative(self, "cql_alpha")


ENTROPY_RULES = ("auto", "mbpo")


@dataclass(frozen=True)
class SACConfig(Checked):
    """SAC as the REDQ code that SynthER's online experiments run (Chen et al. 2021)."""

    lr: float = 3e-4
    """Adam learning rate of actor, critics and temperature"""
    discount: float = 0.99
    """gamma"""
    polyak: float = 0.995
    """target <- polyak target + (1 - polyak) online, after every critic update"""
    hidden: tuple[int, ...] = (256, 256)
    """hidden widths of actor and critics"""
    batch_size: int = 256
    """rows per critic update"""
    start_steps: int = 5000
    """uniformly random actions (and no updates) for this many environment steps"""
    utd: int = 1
    """critic updates per environment step (the update-to-data ratio)"""
    policy_update_delay: int = 1
    """actor and temperature update once every this many critic updates (and at the last of a step)"""
    num_critics: int = 2
    """critic ensemble size (REDQ: 10)"""
    num_min: int = 2
    """critics drawn at random (without replacement) for the min in the target: REDQ uses 10 and 2"""
    target_entropy: float | None = None
    """the temperature's target entropy; None: set by entropy_rule"""
    entropy_rule: str = "auto"
    """target entropy when target_entropy is None: 'auto' = -|A| on every task (what SynthER's
    published online entry point passes); 'mbpo' = the REDQ code's own default table (Hopper -1,
    HalfCheetah -3, Walker2d -3, Ant -4, Humanoid -2; -|A| elsewhere)"""
    cuda_graph: bool = True
    """on CUDA, capture each environment step's learner block as one graph (the fast agent only; SYNTHER_FAST_CUDA_GRAPHS=0 turns every capture off)"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _positive(self, "lr", "batch_size", "utd", "policy_update_delay", "num_critics", "num_min")
        if self.start_steps < 0:
            raise ValueError(f"SACConfig.start_steps must be >= 0, got {self.start_steps}")
        if self.num_min > self.num_critics:
            raise ValueError(f"SACConfig.num_min ({self.num_min}) cannot exceed num_critics ({self.num_critics})")
        if not 0.0 <= self.polyak < 1.0:
            raise ValueError(f"SACConfig.polyak must lie in [0, 1), got {self.polyak}")
        if self.entropy_rule not in ENTROPY_RULES:
            raise ValueError(f"SACConfig.entropy_rule must be one of {ENTROPY_RULES}, got {self.entropy_rule!r}")


def sac_utd1() -> SACConfig:
    """Plain SAC: one critic update per environment step."""
    return SACConfig()


def sac_utd20() -> SACConfig:
    """SAC at UTD 20 with the actor and temperature updated once per environment step (SynthER)."""
    return SACConfig(utd=20, policy_update_delay=20)


def redq() -> SACConfig:
    """REDQ (Chen et al. 2021): 10 critics, min over a random pair, UTD 20."""
    return SACConfig(utd=20, policy_update_delay=20, num_critics=10, num_min=2)


# -- pipelines --------------------------------------------------------------------------------------
ARMS = {"real": 0.0, "synthetic": 1.0, "mixed": None}
"""Offline arms and their synthetic ratios (None: OfflineConfig.mixed_ratio)."""
OFFLINE_ALGOS = ("td3_bc", "iql", "edac", "cql")
COLLECT_METHODS = ("random", "policy", "sac")


@dataclass(frozen=True)
class OfflineConfig(Serialisable, Checked):
    """One offline experiment (paper section 4.1). Defaults are the paper's: 5M synthetic rows,
    1M agent updates, the paper_offline diffusion model."""

    env: str = "HalfCheetah-v5"
    """task: any gymnasium id (package:EnvId imports a registering package) or dmc:DOMAIN-TASK;
    evaluation runs there"""
    has_terminal: bool | None = None
    """model a terminal column: None takes it from the task (gymnasium tasks can terminate,
    dm_control tasks never do); set it for a task whose termination you know better"""
    dataset: str | None = None
    """dataset path (.npz, D4RL .hdf5, Minari folder); None: collect one with collect_*"""
    collect_method: str = "policy"
    """without a dataset: 'random', 'policy' (a checkpoint, per-episode noise) or 'sac' (replay)"""
    collect_steps: int = 50_000
    """environment steps to collect without a dataset"""
    collect_policy: str | None = None
    """policy checkpoint for collect_method 'policy'; None: the one shipped for env"""
    collect_noise: tuple[float, ...] = (0.0, 0.3, 0.6, 1.0)
    """per-episode action-noise levels, cycled: a spread gives mixed-quality data"""
    algo: str = "td3_bc"
    """offline agent: 'td3_bc', 'iql', 'edac' or 'cql'"""
    arms: tuple[str, ...] = ("real", "synthetic")
    """agents to train: 'real' (ratio 0), 'synthetic' (ratio 1, as the paper), 'mixed'"""
    mixed_ratio: float = 0.5
    """synthetic fraction of each batch of the 'mixed' arm"""
    synthetic_rows: int = 5_000_000
    """rows generated by the diffusion model"""
    synther: SynthERConfig = field(default_factory=paper_offline)
    """the diffusion model"""
    td3_bc: TD3BCConfig = field(default_factory=TD3BCConfig)
    """TD3+BC hyperparameters (algo td3_bc)"""
    iql: IQLConfig = field(default_factory=IQLConfig)
    """IQL hyperparameters (algo iql)"""
    edac: EDACConfig = field(default_factory=EDACConfig)
    """EDAC hyperparameters (algo edac)"""
    cql: CQLConfig = field(default_factory=CQLConfig)
    """CQL hyperparameters (algo cql)"""
    subset: float = 1.0
    """fraction of the real dataset kept, as whole episodes drawn at random with the run's seed:
    the diffusion model is fitted on them and the real arm learns from them (the paper's reduced
    datasets, Fig. 1a: 0.15); 1 keeps everything"""
    agent_width: int | None = None
    """hidden width of every network of the offline agent; None keeps the algorithm's own (256).
    With agent_depth it replaces the algorithm's ``hidden`` (the paper's larger-network runs)"""
    agent_depth: int | None = None
    """hidden layers of every network of the offline agent; None keeps the algorithm's own
    (TD3+BC, IQL: 2; EDAC, CQL: 3)"""
    agent_steps: int = 1_000_000
    """agent updates per arm"""
    batch_size: int = 256
    """rows per agent update"""
    eval_every: int = 10_000
    """updates between evaluations"""
    eval_episodes: int = 10
    """deterministic episodes per evaluation"""
    checkpoint_every: int = 10_000
    """updates between agent checkpoints"""
    seed: int = 0
    """seed of everything in the run (collection, diffusion, sampling, agents)"""
    device: str | None = None
    """None: cuda if available, else cpu"""
    fast: bool = True
    """stacked critics + foreach optimisers (+ CUDA graphs on GPU); False: the plain reference"""
    report: bool = True
    """write the data-quality report (report/report.md: fidelity, dynamics error, novelty against
    augmentations, plots) at the end of the run"""
    threads: int = 0
    """torch CPU threads (0: one for the agents' small networks on <= 2 cores, torch's default for
    the diffusion fit; see synther_fast.runtime)"""
    preset: str = "custom"
    """the named preset these settings start from ('quick': minutes on 2 CPU cores; 'paper': the
    published settings); on the command line it picks the defaults of every other option"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _choice(self, "algo", OFFLINE_ALGOS)
        _choice(self, "collect_method", COLLECT_METHODS)
        unknown = [a for a in self.arms if a not in ARMS]
        if unknown or not self.arms:
            raise ValueError(f"OfflineConfig.arms must be a non-empty subset of {tuple(ARMS)}, got {self.arms}")
        _positive(self, "agent_steps", "batch_size", "eval_every", "eval_episodes", "checkpoint_every",
                  "synthetic_rows", "collect_steps")
        _non_negative(self, "seed", "threads")
        if self.synther.guidance not in ("none", "return"):
            raise ValueError(f"OfflineConfig: synther.guidance {self.synther.guidance!r} is an online relevance "
                             f"(it needs a learner's critics or an online curiosity model); offline runs take "
                             f"'none' or 'return'")
        self.synther.check_guided_training()
        if not 0.0 < self.subset <= 1.0:
            raise ValueError(f"OfflineConfig.subset must lie in (0, 1] (a fraction of the dataset), got {self.subset}")
        for name in ("agent_width", "agent_depth"):
            if getattr(self, name) is not None:
                _positive(self, name)
        if not 0.0 <= self.mixed_ratio <= 1.0:
            raise ValueError(f"OfflineConfig.mixed_ratio must lie in [0, 1], got {self.mixed_ratio}")
        generation = self.synther.generation
        if any(a != "real" for a in self.arms) and generation.terminals == "threshold" and \
                generation.terminal_threshold is None:
            raise ValueError("OfflineConfig: synther.generation.terminal_threshold None keeps raw terminal values, "
                             "but the offline run stores its synthetic rows as a dataset file (terminals 0 or 1); "
                             "set a threshold or another synther.generation.terminals mode")
        if any(a != "real" for a in self.arms) and self.synthetic_rows < self.batch_size:
            raise ValueError(f"OfflineConfig.synthetic_rows ({self.synthetic_rows}) must be at least "
                             f"batch_size ({self.batch_size}) for a synthetic arm")


def offline_agent_config(config: OfflineConfig) -> Any:
    """The run's agent settings (config.td3_bc / .iql / .edac / .cql by config.algo), with
    agent_width / agent_depth, where set, replacing its hidden widths."""
    agent = getattr(config, config.algo)
    if config.agent_width is None and config.agent_depth is None:
        return agent
    width = config.agent_width if config.agent_width is not None else agent.hidden[0]
    depth = config.agent_depth if config.agent_depth is not None else len(agent.hidden)
    return dataclasses.replace(agent, hidden=(width,) * depth)


ONLINE_ALGOS = ("sac", "redq", "sac-synther")


@dataclass(frozen=True)
class OnlineConfig(Serialisable, Checked):
    """One online run (paper section 4.2): SAC at UTD 20 on 50/50 real/synthetic batches, with a
    fresh diffusion model fitted on the real replay every retrain_every environment steps."""

    env: str = "HalfCheetah-v5"
    """task: any gymnasium id (package:EnvId imports a registering package) or dmc:DOMAIN-TASK"""
    has_terminal: bool | None = None
    """model a terminal column: None takes it from the task (gymnasium tasks can terminate,
    dm_control tasks never do); set it for a task whose termination you know better"""
    algo: str = "sac-synther"
    """'sac-synther' (SynthER), 'redq' (10 critics, UTD 20) or 'sac' (real data only at sac.utd)"""
    env_steps: int = 100_000
    """environment steps of the run"""
    sac: SACConfig = field(default_factory=sac_utd20)
    """the agent (SAC; REDQ with num_critics 10, num_min 2)"""
    synther: SynthERConfig = field(default_factory=paper_online)
    """the diffusion model fitted at each refit (refit k's seed: derived from the run seed, or from
    synther.seed where set, and k)"""
    retrain_every: int = 10_000
    """environment steps between diffusion refits (each a fresh model on the whole real replay)"""
    num_samples: int = 1_000_000
    """synthetic rows generated at each refit; they replace the previous ones"""
    synthetic_capacity: int = 1_000_000
    """capacity of the synthetic ring buffer"""
    synthetic_ratio: float = 0.5
    """fraction of each batch drawn from the synthetic buffer once it has rows (all real before)"""
    async_refit: bool = False
    """beyond the paper: fit and generate the next model in a background thread (a second CUDA
    stream on GPU) while SAC keeps learning on the previous synthetic rows; the new rows swap in
    when ready. Off by default: the swap step depends on timing, so runs are not bit-reproducible"""
    real_capacity: int = 1_000_000
    """capacity of the real replay (must hold every environment step)"""
    eval_every: int = 1000
    """environment steps between evaluations (deterministic policy)"""
    eval_episodes: int = 10
    """deterministic episodes per evaluation"""
    checkpoint_every: int = 5000
    """environment steps between checkpoints (agent, optimisers, both buffers, RNG, counters)"""
    seed: int = 0
    """seed of everything in the run (episodes, actions, agent, refits)"""
    device: str | None = None
    """None: cuda if available, else cpu"""
    threads: int = 0
    """torch CPU threads (0: one on <= 2 cores, for the small SAC networks; see synther_fast.runtime)"""
    preset: str = "custom"
    """the named preset these settings start from ('quick': a short real run on 2 CPU cores;
    'paper': the published settings); on the command line it picks every other option's default"""

    def check(self) -> None:
        """This part's own fields (nested parts check theirs; :func:`validate` runs them all)."""
        _choice(self, "algo", ONLINE_ALGOS)
        _positive(self, "env_steps", "retrain_every", "num_samples", "synthetic_capacity", "real_capacity",
                  "eval_every", "eval_episodes", "checkpoint_every")
        _non_negative(self, "seed", "threads")
        if not 0.0 <= self.synthetic_ratio < 1.0:
            raise ValueError(f"OnlineConfig.synthetic_ratio must lie in [0, 1), got {self.synthetic_ratio}")
        if self.num_samples > self.synthetic_capacity:
            raise ValueError(f"OnlineConfig.num_samples ({self.num_samples}) exceeds synthetic_capacity "
                             f"({self.synthetic_capacity}): the refill would overwrite itself")
        if self.env_steps > self.real_capacity:
            raise ValueError(f"OnlineConfig.env_steps ({self.env_steps}) exceeds real_capacity "
                             f"({self.real_capacity}): the real replay would drop transitions")

        if self.synther.guidance == "return":
            raise ValueError("OnlineConfig: synther.guidance 'return' is the offline relevance (returns-to-go of a "
                             "fixed dataset); online runs take 'none', 'curiosity' or 'td'")
        self.synther.check_guided_training()
        if self.synther.conditional and not self.uses_synther:
            raise ValueError(f"OnlineConfig: synther.guidance {self.synther.guidance!r} guides SynthER's refits, "
                             f"but algo {self.algo!r} generates nothing; use algo 'sac-synther'")
        if self.algo == "redq" and self.sac.num_critics <= self.sac.num_min:
            raise ValueError(f"algo 'redq' draws num_min of more critics, but sac has num_critics "
                             f"{self.sac.num_critics} and num_min {self.sac.num_min}: start from "
                             f"online_paper('redq') / online_quick('redq'), or set sac=redq()")

    @property
    def uses_synther(self) -> bool:
        return self.algo == "sac-synther"


def offline_quick() -> OfflineConfig:
    """The CPU demo: 30k mixed-quality transitions from the shipped policy, the quick diffusion
    preset fitted for 12k steps, 100k synthetic rows, 10k TD3+BC updates per arm (about 5-6
    minutes on 2 cores). Rebalanced from 4k fit steps and 15k updates (same wall time): over seeds
    0-2 synthetic-only TD3+BC then reached 96% of real instead of ~75%; 94% (3822 ± 166 vs 4078 ±
    498) after the fit seed began to follow the run seed (docs/RESULTS.md)."""
    synther = dataclasses.replace(quick(), trainer=dataclasses.replace(quick().trainer, steps=12_000))
    return OfflineConfig(
        collect_steps=30_000, synthetic_rows=100_000, synther=synther, agent_steps=10_000,
        eval_every=5_000, eval_episodes=5, checkpoint_every=5_000, preset="quick",
    )


def offline_paper() -> OfflineConfig:
    """The published offline settings: 5M synthetic rows, paper_offline diffusion, 1M updates."""
    return OfflineConfig(preset="paper")


def online_sac_for(algo: str) -> SACConfig:
    """The SAC settings of each online algorithm: SynthER and REDQ at UTD 20, plain SAC at UTD 1."""
    return {"sac-synther": sac_utd20, "redq": redq, "sac": sac_utd1}[algo]()


def online_paper(algo: str = "sac-synther") -> OnlineConfig:
    """The published online settings (100k env steps, refit every 10k, 1M samples per refit as the
    README's commands for the reported runs; the published gin files say 200k)."""
    return OnlineConfig(algo=algo, sac=online_sac_for(algo), preset="paper")


def online_quick(algo: str = "sac-synther") -> OnlineConfig:
    """A real, short online run on 2 CPU cores: 6k env steps, 1k random start steps, UTD 20 (SAC
    at UTD 1), a small denoiser refit every 2k steps (3k diffusion steps, 20k rows, 32 sampler steps)."""
    sac = dataclasses.replace(online_sac_for(algo), start_steps=1000)
    synther = SynthERConfig(
        denoiser=DenoiserConfig(width=256, depth=3, dim_t=64),
        edm=EDMConfig(num_steps=32),
        trainer=TrainerConfig(steps=3000, batch_size=256, checkpoint_every=1000),
        generation=GenerationConfig(chunk_size=10_000),
        preset="quick",
    )
    return OnlineConfig(algo=algo, env_steps=6000, sac=sac, synther=synther, retrain_every=2000,
                        num_samples=20_000, synthetic_capacity=100_000, real_capacity=100_000,
                        eval_every=1000, eval_episodes=3, checkpoint_every=1000, preset="quick")


TINY = {
    "fit": {"denoiser.width": 32, "denoiser.depth": 2, "denoiser.dim_t": 16, "trainer.steps": 40,
            "trainer.batch_size": 32, "trainer.checkpoint_every": 10, "trainer.log_every": 10,
            "edm.num_steps": 6, "generation.chunk_size": 64},
    "offline": {"collect_steps": 2000, "agent_steps": 60, "eval_every": 30, "eval_episodes": 1,
                "checkpoint_every": 20, "synthetic_rows": 1000},
    "online": {"env_steps": 300, "sac.start_steps": 100, "sac.hidden": (32, 32), "sac.batch_size": 32,
               "retrain_every": 150, "num_samples": 400, "synthetic_capacity": 1000, "real_capacity": 1000,
               "eval_every": 150, "eval_episodes": 1, "checkpoint_every": 60},
}
"""What the tiny presets change (on quick): one table, which the test suite's tiny configs reuse."""


def tiny() -> SynthERConfig:
    """Seconds on 2 CPU cores: the quick settings shrunk (width 32, 40 steps, 6 sampler steps) to
    check a command end to end; it learns nothing useful."""
    return quick().with_overrides(**TINY["fit"], preset="tiny")


def offline_tiny() -> OfflineConfig:
    """The quick offline run shrunk to seconds (2k transitions, a tiny fit, 1k rows, 60 updates
    per arm, the report included): every phase and file of a real run, for checks and tests."""
    synther = {f"synther.{k}": v for k, v in TINY["fit"].items()}
    return offline_quick().with_overrides(**TINY["offline"], **synther, preset="tiny", **{"synther.preset": "tiny"})


def online_tiny(algo: str = "sac-synther") -> OnlineConfig:
    """The quick online run shrunk to seconds (300 env steps, 32-wide networks, UTD at most 2, a
    refit every 150 steps): every phase and file of a real run, for checks and tests."""
    base = online_quick(algo)
    synther = {f"synther.{k}": v for k, v in TINY["fit"].items() if k != "denoiser.depth"}
    utd = min(base.sac.utd, 2)
    return base.with_overrides(**TINY["online"], **synther, **{"synther.denoiser.depth": 1, "sac.utd": utd,
                               "sac.policy_update_delay": utd,
                               "synther.preset": "tiny"}, preset="tiny")


PRESETS: dict[str, dict[str, Callable[..., Any]]] = {
    "offline": {"tiny": offline_tiny, "quick": offline_quick, "paper": offline_paper},
    "online": {"tiny": online_tiny, "quick": online_quick, "paper": online_paper},
    "fit": {"tiny": tiny, "quick": quick, "paper_offline": paper_offline, "paper_online": paper_online},
}
"""The one preset registry: mode -> preset name -> a function returning the config (an online
preset takes the algorithm)."""


def resolve(mode: str = "offline", preset: str = "quick", algo: str | None = None,
            overrides: dict[str, Any] | None = None) -> Any:
    """The config that the words (mode, preset, algorithm, dotted overrides) mean, the same for the
    Python API, the CLI and the sweeps; checked (:func:`validate`) before it is returned.

    Every entry point starts from the ``quick`` preset unless told otherwise; a bare
    ``OfflineConfig()`` / ``OnlineConfig()`` holds the published values (as the ``paper`` preset).
    """
    presets = PRESETS.get(mode)
    if presets is None:
        raise ValueError(f"mode must be one of {sorted(PRESETS)}, got {mode!r}")
    if preset not in presets:
        raise ValueError(f"unknown {mode} preset {preset!r}; choose from {sorted(presets)}")
    overrides = dict(overrides or {})
    if algo is None and "algo" in overrides:
        algo = overrides.pop("algo")
    if mode == "online":
        if algo is not None and algo not in ONLINE_ALGOS:
            raise ValueError(f"unknown online algorithm {algo!r}; choose from {list(ONLINE_ALGOS)}")
        config = presets[preset](algo or "sac-synther")  # the algorithm picks the SAC settings
    else:
        config = presets[preset]()
        if algo is not None:
            if mode == "fit":
                raise ValueError("a diffusion fit has no algorithm")
            overrides = {"algo": algo} | overrides
    return config.with_overrides(**overrides) if overrides else validate(config)


# -- one serialisation, one override rule -----------------------------------------------------------
LEGACY_FORMATS = {"synther_fast.OfflineConfig": "OfflineConfig"}
"""Format names written by earlier releases (run directories of 0.1.0 keep loading)."""


def config_to_dict(config: Any) -> dict[str, Any]:
    """Plain JSON of a config tree, tagged with its class name and the format version."""
    return {"format": type(config).__name__, "version": CONFIG_FORMAT_VERSION, **_as_json(config)}


def config_from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """The inverse of :func:`config_to_dict`; fields missing from older files take their defaults,
    unknown fields and other formats or versions are refused with a message that names them."""
    fmt = LEGACY_FORMATS.get(data.get("format"), data.get("format"))
    if fmt != cls.__name__:
        raise ValueError(f"not a {cls.__name__} description: format {data.get('format')!r}")
    if data.get("version") != CONFIG_FORMAT_VERSION:
        raise ValueError(
            f"{cls.__name__} version {data.get('version')!r} is not supported "
            f"(this package reads {CONFIG_FORMAT_VERSION})"
        )
    return validate(_from_json(cls, {k: v for k, v in data.items() if k not in ("format", "version")}))


def with_overrides(config: T, **overrides: Any) -> T:
    """A copy of ``config`` with fields replaced, nested ones named by dotted keys.

    Values are checked against the field's type (``"ten"`` for an int is refused, ``1e5`` becomes
    100000, a scalar for a tuple field becomes a 1-tuple); an unknown key raises naming the valid
    keys at that level.
    """
    nested: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    names = {f.name: f for f in dataclasses.fields(config)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(type(config))
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head not in names:
            close = difflib.get_close_matches(head, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ValueError(f"unknown {type(config).__name__} field {head!r}{hint}; valid: {', '.join(names)}")
        if rest:
            if not dataclasses.is_dataclass(getattr(config, head)):
                raise ValueError(f"{type(config).__name__}.{head} has no fields (got key {key!r})")
            nested.setdefault(head, {})[rest] = value
        else:
            top[head] = _coerce(value, hints[head], f"{type(config).__name__}.{head}")
    for head, changes in nested.items():
        top[head] = with_overrides(top.get(head, getattr(config, head)), **changes)
    return validate(dataclasses.replace(config, **top))  # type: ignore[type-var]


def validate(config: T) -> T:
    """Run every check of ``config`` and of each nested part (raises ValueError naming the field);
    returns the config. Each field is checked in one place, its part's ``check()``; building a
    part runs it, and every entry point (:func:`resolve`, :func:`with_overrides`,
    :func:`config_from_dict`, the pipelines, the models and agents built from a config) runs the
    whole tree's, which also covers parts built under :func:`deferred_checks`."""
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            validate(value)
    check = getattr(config, "check", None)
    if check is not None:
        check()
    return config


def config_differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two configs of one class differ, with both values."""
    out: list[str] = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x) and dataclasses.is_dataclass(y):
            out += config_differences(x, y, f"{prefix}{f.name}.")
        elif x != y:
            out.append(f"{prefix}{f.name}: {x!r} != {y!r}")
    return out


def _coerce(value: Any, hint: Any, name: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):  # type: ignore[arg-type]
            raise ValueError(f"{name} takes a {hint.__name__}, got {value!r}")
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if type(None) in args and (value is None or (isinstance(value, str) and value.lower() == "none")):
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, name)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError(errors[0])
    if origin is tuple:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        inner = args[0] if args and (len(args) == 2 and args[1] is Ellipsis or len(args) == 1) else None
        if inner is None and args:
            if len(items) != len(args):
                raise ValueError(f"{name} takes {len(args)} values, got {value!r}")
            return tuple(_coerce(v, a, name) for v, a in zip(items, args))
        return tuple(_coerce(v, inner, name) for v in items) if inner is not None else tuple(items)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise ValueError(f"{name} takes true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool):
            raise ValueError(f"{name} takes an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)  # exact, also beyond float precision
            except ValueError:
                pass
            try:
                number = float(value)
            except ValueError:
                raise ValueError(f"{name} takes an integer, got {value!r}") from None
            return _coerce(number, int, name)
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool):
            raise ValueError(f"{name} takes a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} takes a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} takes a string, got {value!r}")
        return value
    return value


def _as_json(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _as_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return [_as_json(v) for v in obj]
    return obj


def _from_json(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            kwargs[name] = _from_json(hint, value)  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(value, hint, f"{cls.__name__}.{name}")
    return cls(**kwargs)


def _positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not value > 0:
            raise ValueError(f"{type(config).__name__}.{name} must be positive, got {value!r}")


def _non_negative(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or value < 0:
            raise ValueError(f"{type(config).__name__}.{name} must be >= 0, got {value!r}")


def _choice(config: Any, name: str, options: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in options:
        raise ValueError(f"{type(config).__name__}.{name} must be one of {options}, got {value!r}")
