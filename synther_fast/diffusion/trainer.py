"""Diffusion training: AdamW, cosine learning rate, grad-norm clipping and the published EMA.

Every random draw (batch indices, sigma, noise) comes from one seeded torch.Generator, and its
state is part of the checkpoint, so a resumed run continues exactly as an uninterrupted one.

Data-parallel (torchrun, ``shard=(rank, world_size)``): every rank holds the whole dataset and the
same generator, draws the whole global batch (indices, sigma, noise) and computes the loss on its
own contiguous slice; DDP averages the gradients, which is the gradient of the global batch's mean
loss. So the fit is the single-process fit with the same global batch, up to floating-point
summation order. The EMA is kept on rank 0 only (it writes the checkpoints).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from synther_fast.common.cuda_graphs import CapturedStep, DeviceRandom, load_optimizer_state, will_capture
from synther_fast.config import EDMConfig, TrainerConfig, validate
from synther_fast.diffusion.edm import edm_loss

_HASH_MODULUS = 2**31 - 1  # a prime: x -> a x mod M permutes 1..M-1 (Park-Miller), no int64 overflow


def keep_mask(index: torch.Tensor, step: torch.Tensor, seed: int, dropout: float) -> torch.Tensor:
    """Which rows of a batch keep their condition (True) in condition dropout: a hash of (row
    index, step, seed) on the device, True with probability 1 - ``dropout``.

    A hash, not a draw from the fit's generator, so that a conditional fit consumes the same
    random stream as an unconditional one (with dropout 1 the two fits are the same numbers) and
    the captured training step needs no second generator. Integer arithmetic below 2**62 only."""
    m = _HASH_MODULUS
    h = (index.to(torch.int64) * 69069 + step.to(torch.int64) * 1_000_003 + (seed % m) * 7919 + 1) % m
    for multiplier in (48271, 16807, 48271):  # three Park-Miller rounds with xor-shift mixing between
        h = (h * multiplier) % m
        h = h ^ (h >> 13)
        h = h % (m - 1) + 1  # stay in 1..M-1: u = h / M lies in (0, 1)
    return h.to(torch.float64) / m >= dropout


def ema_decay(call_index: int, config: TrainerConfig) -> float | None:
    """The EMA weight decay applied at one EMA call (ema-pytorch defaults, as the published code).

    Returns None when the call makes no update (not a multiple of ``ema_every``), 0.0 for a plain
    copy (during the first ``ema_warmup`` calls), else min(max_decay, 1 - (1 + t)^(-power)) with
    t = call_index - ema_warmup.
    """
    if call_index % config.ema_every != 0:
        return None
    t = call_index - config.ema_warmup
    if t <= 0:
        return 0.0
    return min(config.ema_max_decay, 1.0 - (1.0 + t) ** (-config.ema_power))


class DiffusionTrainer:
    """Owns the network, its EMA copy, optimiser, schedule and RNG for one fit."""

    def __init__(
        self, network: nn.Module, data: torch.Tensor, edm: EDMConfig, config: TrainerConfig,
        batch_size: int, seed: int, shard: tuple[int, int] = (0, 1),
        conditions: torch.Tensor | None = None, cond_dropout: float = 0.25,
    ) -> None:
        """``conditions``: each data row's normalised condition (a conditional network), kept
        with probability 1 - ``cond_dropout`` in each batch (:func:`keep_mask`)."""
        validate(config)
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        rank, world = shard
        if batch_size % world != 0:
            raise ValueError(f"the global batch ({batch_size}) must split evenly over {world} processes")
        self.rank, self.world = rank, world
        local = batch_size // world
        self.rows = slice(rank * local, (rank + 1) * local) if world > 1 else None
        self.keeps_ema = rank == 0
        self.network = network
        self.data = data
        self.edm = edm
        self.config = config
        self.batch_size = batch_size
        device = data.device
        if conditions is not None and conditions.shape != (data.shape[0],):
            raise ValueError(f"conditions must hold one value per data row, shape ({data.shape[0]},), "
                             f"got {tuple(conditions.shape)}")
        self.conditions, self.cond_dropout, self.seed = conditions, cond_dropout, seed
        # The conditional fit's step counter on the device (the captured step reads it).
        self.cond_step = torch.zeros((), dtype=torch.int64, device=device)
        self.ema = copy.deepcopy(network).requires_grad_(False).eval()
        # One process: capture the step as a CUDA graph. Data-parallel: DDP's gradient hooks
        # all-reduce during backward, so the step stays eager.
        self.graphed = will_capture(device, config.cuda_graph) and world == 1
        self.forward_network: nn.Module = network
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.forward_network = DistributedDataParallel(
                network, device_ids=[device.index] if device.type == "cuda" else None)
        if self.graphed:
            # Capturable AdamW reads its lr from a device tensor that the scheduler fills in place.
            self.optimizer = torch.optim.AdamW(
                network.parameters(), lr=torch.tensor(config.lr, device=device), betas=tuple(config.betas),
                weight_decay=config.weight_decay, capturable=True, foreach=True,
            )
        else:
            self.optimizer = torch.optim.AdamW(
                network.parameters(), lr=config.lr, betas=tuple(config.betas),
                weight_decay=config.weight_decay,
            )
        # Captured, the draws come from the default CUDA generator (which graphs replay correctly)
        # with this fit's own state swapped in around each step; eager, from a generator of its own.
        self.rng = DeviceRandom(device, seed, self.graphed)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.steps)
        self.step = 0
        # The EMA call counter lives on the device so that the EMA update is tensor ops only.
        self.ema_calls = torch.zeros((), dtype=torch.int64, device=device)
        self._pairs = list(zip(self.ema.parameters(), network.parameters()))
        self._buffers = list(zip(self.ema.buffers(), network.buffers()))
        self._captured = CapturedStep(self._step_body, device, capture=self.graphed,
                                      state=(network, self.ema, self.optimizer, self.ema_calls, self.cond_step))

    @property
    def generator(self) -> torch.Generator | None:
        """The eager fit's generator (None when captured: draws then come from a CudaRngSlot)."""
        return self.rng.generator

    def _step_body(self) -> torch.Tensor:
        """Batch draw, loss, backward, clip, optimiser step and EMA: no host synchronisation."""
        index = torch.randint(0, self.data.shape[0], (self.batch_size,), generator=self.rng.generator,
                              device=self.data.device)
        if self.conditions is None:
            loss = edm_loss(self.forward_network, self.data[index], self.edm, self.rng.generator, self.rows)
        else:
            keep = keep_mask(index, self.cond_step, self.seed, self.cond_dropout)
            loss = edm_loss(self.forward_network, self.data[index], self.edm, self.rng.generator, self.rows,
                            cond=self.conditions[index], keep=keep)
            self.cond_step.add_(1)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(self.network.parameters(), self.config.grad_clip, foreach=True)
        self.optimizer.step()
        if self.keeps_ema:
            self.update_ema()
        return loss.detach()

    def train_step(self) -> torch.Tensor:
        """Exactly one optimiser step on a uniformly drawn batch; returns the loss (a device tensor).

        On CUDA (``cuda_graph``) the first call warms up on a side stream, undoes the warm-up and
        captures the step (cuda_graphs.CapturedStep); every call, that one included, is one step.
        """
        self.network.train()
        with self.rng.scope():
            loss = self._captured()
        self.scheduler.step()
        self.step += 1
        return loss

    @torch.no_grad()
    def update_ema(self) -> None:
        """ema <- lerp(ema, model, w) with w = 1 (copy), 1 - decay (update) or 0 (skip)."""
        cfg = self.config
        calls = self.ema_calls
        t = (calls - cfg.ema_warmup).clamp(min=0).to(torch.float32)
        decay = (1.0 - (1.0 + t) ** (-cfg.ema_power)).clamp(max=cfg.ema_max_decay)
        decay = torch.where(calls <= cfg.ema_warmup, torch.zeros_like(decay), decay)
        weight = torch.where(calls % cfg.ema_every == 0, 1.0 - decay, torch.zeros_like(decay))
        for ema_param, param in self._pairs:
            ema_param.lerp_(param, weight)
        for ema_buffer, buffer in self._buffers:
            ema_buffer.copy_(buffer)
        calls.add_(1)

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "network": self.network.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generator": self.rng.state_dict(),
            "ema_calls": self.ema_calls.clone(),
            **({} if self.conditions is None else {"cond_step": self.cond_step.clone()}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load a checkpoint (also one written eagerly or on another device). The optimiser
        replaces its state tensors, so a captured step is released and captured anew."""
        self._captured.release()
        self.network.load_state_dict(state["network"])
        self.ema.load_state_dict(state["ema"])
        load_optimizer_state(self.optimizer, state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.rng.load_state_dict(state["generator"], reseed_with=int(state["step"]))
        self.ema_calls.copy_(state["ema_calls"])
        if self.conditions is not None:
            self.cond_step.copy_(state["cond_step"])
        self.step = int(state["step"])
