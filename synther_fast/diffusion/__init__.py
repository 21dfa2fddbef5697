"""The SynthER diffusion core in plain PyTorch: the reference path every fused kernel matches."""

from synther_fast.diffusion.denoiser import ResidualMLPDenoiser
from synther_fast.diffusion.edm import (
    SamplerSchedule,
    dpmpp_2m_sample,
    dpmpp_2m_sde_sample,
    euler_sample,
    heun_sample,
    reference_sample,
    sampler_schedule,
    sigma_steps,
)
from synther_fast.diffusion.normalizer import Normalizer
from synther_fast.diffusion.synther import ModelFileError, SynthER
from synther_fast.diffusion.trainer import DiffusionTrainer, ema_decay

__all__ = [
    "DiffusionTrainer", "ModelFileError", "Normalizer", "ResidualMLPDenoiser", "SamplerSchedule", "SynthER",
    "dpmpp_2m_sample", "dpmpp_2m_sde_sample", "ema_decay", "euler_sample", "heun_sample", "reference_sample", "sampler_schedule",
    "sigma_steps",
]
