"""Configuration dataclasses and named presets. Defaults are the published SynthER settings.

A preset is a plain function returning a config; a call site shows its defaults. Configs serialise
to plain JSON (``to_dict`` / ``from_dict``) for model files and run directories.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
CONFIG_FORMAT_VERSION = 1


@dataclass(frozen=True)
class DenoiserConfig:
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


@dataclass(frozen=True)
class EDMConfig:
    """Elucidated diffusion (Karras et al. 2022): preconditioning, training noise, Heun sampler."""

    sigma_data: float = 1.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    P_mean: float = -1.2
    P_std: float = 1.2
    num_steps: int = 128
    """sampler steps (each a Heun step: two network evaluations but the last)"""
    S_churn: float = 80.0
    S_tmin: float = 0.05
    S_tmax: float = 50.0
    S_noise: float = 1.003


@dataclass(frozen=True)
class NormalizerConfig:
    """Per-dimension normalisation of rows before diffusion."""

    kind: str = "standard"
    """'standard' (zero mean, unit std) or 'minmax' (to [-1, 1]; samples are clamped there)"""
    skip_reward: bool = False
    """leave the reward column unnormalised (the published online DMC setting)"""


@dataclass(frozen=True)
class TrainerConfig:
    """Diffusion training: AdamW + cosine schedule + grad clipping + the published EMA."""

    steps: int = 100_000
    batch_size: int | None = None
    """None: the published rule, 256 below 800k rows, else 1024"""
    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_every: int = 10
    """EMA update period in steps (ema-pytorch update_every)"""
    ema_warmup: int = 100
    """steps during which the EMA is a plain copy (ema-pytorch update_after_step)"""
    ema_max_decay: float = 0.995
    ema_power: float = 2.0 / 3.0
    checkpoint_every: int = 10_000
    """steps between checkpoints when fitting with a checkpoint path"""
    log_every: int = 100
    cuda_graph: bool = True
    """on CUDA, capture the whole training step (forward, backward, clip, AdamW, EMA) as a graph"""


@dataclass(frozen=True)
class GenerationConfig:
    """Sampling rows from a fitted model."""

    chunk_size: int = 100_000
    """rows per sampler call (the published batches of 100k)"""
    terminal_threshold: float = 0.5
    clip_actions: bool = False
    """clip generated actions to action_bounds (the published code does not)"""
    action_bounds: tuple[float, float] = (-1.0, 1.0)


@dataclass(frozen=True)
class SynthERConfig:
    """Everything a SynthER model needs: network, diffusion, normaliser, training and sampling."""

    denoiser: DenoiserConfig = field(default_factory=DenoiserConfig)
    edm: EDMConfig = field(default_factory=EDMConfig)
    normalizer: NormalizerConfig = field(default_factory=NormalizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    seed: int = 0
    preset: str = "custom"

    def to_dict(self) -> dict[str, Any]:
        return {"format": "SynthERConfig", "version": CONFIG_FORMAT_VERSION, **_as_json(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthERConfig:
        if data.get("format") != "SynthERConfig":
            raise ValueError(f"not a SynthERConfig description: format {data.get('format')!r}")
        if data.get("version") != CONFIG_FORMAT_VERSION:
            raise ValueError(
                f"SynthERConfig version {data.get('version')!r} is not supported "
                f"(this package reads {CONFIG_FORMAT_VERSION})"
            )
        body = {k: v for k, v in data.items() if k not in ("format", "version")}
        return _from_json(cls, body)

    def replace(self, **changes: Any) -> SynthERConfig:
        """A copy with fields changed; nested ones as 'trainer.steps' style keys or whole configs."""
        nested: dict[str, dict[str, Any]] = {}
        top: dict[str, Any] = {}
        for key, value in changes.items():
            if "." in key:
                part, name = key.split(".", 1)
                nested.setdefault(part, {})[name] = value
            else:
                top[key] = value
        for part, fields in nested.items():
            if not hasattr(self, part):
                raise ValueError(f"unknown config section {part!r}")
            top[part] = dataclasses.replace(getattr(self, part), **fields)
        return dataclasses.replace(self, **top)


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


PRESETS = {"paper_offline": paper_offline, "paper_online": paper_online, "quick": quick}


def _as_json(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _as_json(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, tuple):
        return list(obj)
    return obj


def _from_json(cls: type[T], data: dict[str, Any]) -> T:
    kwargs = {}
    names = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = set(data) - set(names)
    if unknown:
        raise ValueError(f"{cls.__name__} has no fields {sorted(unknown)}")
    hints = {name: _field_type(cls, name) for name in names}
    for name, value in data.items():
        sub = hints[name]
        if dataclasses.is_dataclass(sub) and isinstance(value, dict):
            kwargs[name] = _from_json(sub, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def _field_type(cls: type, name: str) -> Any:
    import typing

    return typing.get_type_hints(cls).get(name)
