"""Denoiser shapes, normaliser, EMA schedule and configs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from synther_fast import TransitionLayout
from synther_fast.config import (
    DenoiserConfig,
    EDMConfig,
    SynthERConfig,
    TrainerConfig,
    paper_offline,
    paper_online,
    quick,
    resolve_batch_size,
)
from synther_fast.diffusion import DiffusionTrainer, Normalizer, ResidualMLPDenoiser, ema_decay


def test_denoiser_shapes_and_structure() -> None:
    net = ResidualMLPDenoiser(DenoiserConfig(width=64, depth=3, dim_t=16), d_in=11)
    x, c = torch.randn(7, 11), torch.randn(7)
    assert net(x, c).shape == (7, 11)
    assert net.time_embedding(c).shape == (7, 17)  # c, 8 sines, 8 cosines
    assert len(net.blocks) == 3
    names = {n for n, _ in net.named_parameters()}
    assert "time_embedding.frequencies" not in names  # frozen
    assert "time_embedding.frequencies" in net.state_dict()


def test_time_embedding_formula() -> None:
    net = ResidualMLPDenoiser(DenoiserConfig(width=8, depth=1, dim_t=4), d_in=3)
    c = torch.tensor([0.3, -1.2])
    w = net.time_embedding.frequencies
    expected = torch.cat([c[:, None], torch.sin(2 * math.pi * c[:, None] * w), torch.cos(2 * math.pi * c[:, None] * w)], 1)
    torch.testing.assert_close(net.time_embedding(c), expected)


def test_residual_block_is_x_plus_linear_relu_x() -> None:
    net = ResidualMLPDenoiser(DenoiserConfig(width=8, depth=1, dim_t=4), d_in=3)
    block = net.blocks[0]
    x = torch.randn(5, 8)
    torch.testing.assert_close(block(x), x + block.linear(torch.relu(x)))
    with_norm = ResidualMLPDenoiser(DenoiserConfig(width=8, depth=1, dim_t=4, layer_norm=True), 3)
    assert isinstance(with_norm.blocks[0].norm, torch.nn.LayerNorm)


def test_paper_online_parameter_count() -> None:
    """~6.8M parameters for a HalfCheetah-sized row: width 1024, 6 blocks (the paper's online denoiser)."""
    layout = TransitionLayout(17, 6)
    net = ResidualMLPDenoiser(paper_online().denoiser, layout.width)
    n = sum(p.numel() for p in net.parameters())
    w, t, d = 1024, 256, layout.width
    expected = (d * t + t) + (17 * t + t) + (t * t + t) + (t * w + w) + 6 * (w * w + w) + (w * d + d)
    assert n == expected and 6.5e6 < n < 7.0e6


@pytest.mark.parametrize("kind", ["standard", "minmax"])
def test_normalizer_round_trip_and_skips(kind: str) -> None:
    layout = TransitionLayout(3, 2, has_terminal=True)
    rng = np.random.default_rng(0)
    rows = rng.normal(3.0, 2.0, size=(500, layout.width)).astype(np.float32)
    rows[:, layout.terminal] = rng.random((500, 1)) < 0.2
    rows[:, 1] = 5.0  # a constant column: no division by zero
    norm = Normalizer.for_layout(kind, layout, skip_reward=True).fit(rows)
    x = torch.from_numpy(rows)
    z = norm.normalize(x)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(norm.denormalize(z), x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(z[:, layout.terminal], x[:, layout.terminal])  # skipped
    torch.testing.assert_close(z[:, layout.reward], x[:, layout.reward])  # skipped on request
    active = [0, 2, 3, 4, 6, 7, 8]
    if kind == "standard":
        torch.testing.assert_close(z[:, active].mean(0), torch.zeros(len(active)), atol=1e-4, rtol=0)
        torch.testing.assert_close(z[:, active].std(0, unbiased=False), torch.ones(len(active)), atol=1e-4, rtol=0)
    else:
        torch.testing.assert_close(z[:, active].min(0).values, -torch.ones(len(active)), atol=1e-5, rtol=0)
        torch.testing.assert_close(z[:, active].max(0).values, torch.ones(len(active)), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="kind"):
        Normalizer("zscore", 3)


def test_ema_decay_formula() -> None:
    cfg = TrainerConfig()
    assert ema_decay(0, cfg) == 0.0 and ema_decay(100, cfg) == 0.0  # warm-up: plain copies
    assert ema_decay(5, cfg) is None and ema_decay(101, cfg) is None  # only every 10 calls
    assert ema_decay(110, cfg) == pytest.approx(1 - 11 ** (-2 / 3))
    assert ema_decay(1000, cfg) == pytest.approx(min(0.995, 1 - 901 ** (-2 / 3)))
    assert ema_decay(10**6, cfg) == 0.995


def test_trainer_ema_follows_the_formula() -> None:
    """The tensor-op EMA equals a plain Python EMA driven by ema_decay, step for step."""
    torch.manual_seed(0)
    net = ResidualMLPDenoiser(DenoiserConfig(width=16, depth=1, dim_t=8), d_in=4)
    data = torch.randn(64, 4)
    cfg = TrainerConfig(steps=260, lr=1e-2)
    trainer = DiffusionTrainer(net, data, EDMConfig(), cfg, batch_size=16, seed=0)
    shadow = {k: v.clone() for k, v in net.state_dict().items()}
    for call in range(260):
        trainer.train_step()
        decay = ema_decay(call, cfg)
        if decay is not None:
            for k, v in net.state_dict().items():
                shadow[k] = decay * shadow[k] + (1 - decay) * v
        if call in (50, 105, 259):
            for k, v in trainer.ema.state_dict().items():
                torch.testing.assert_close(v, shadow[k], rtol=1e-5, atol=1e-6)
    # After the warm-up the EMA lags the weights: it is not a copy any more.
    assert any(not torch.equal(v, net.state_dict()[k]) for k, v in trainer.ema.state_dict().items())


def test_presets_and_batch_rule() -> None:
    assert paper_offline().denoiser.width == 2048 and paper_offline().denoiser.dim_t == 128
    assert paper_online().denoiser.width == 1024 and paper_online().denoiser.dim_t == 256
    assert paper_online().trainer.batch_size == 256
    assert resolve_batch_size(paper_offline().trainer, 799_999) == 256
    assert resolve_batch_size(paper_offline().trainer, 800_000) == 1024
    q = quick()
    assert q.denoiser.width == 256 and q.trainer.steps <= 5000
    assert paper_offline().edm.num_steps == 128 and paper_offline().edm.S_churn == 80


def test_config_json_round_trip_and_replace() -> None:
    cfg = quick().replace(**{"trainer.steps": 7, "edm.num_steps": 9, "seed": 3})
    assert cfg.trainer.steps == 7 and cfg.edm.num_steps == 9 and cfg.seed == 3
    again = SynthERConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="version"):
        SynthERConfig.from_dict(cfg.to_dict() | {"version": 42})
    with pytest.raises(ValueError, match="no fields"):
        SynthERConfig.from_dict(cfg.to_dict() | {"bogus": 1})


def test_denoiser_rejects_bad_config() -> None:
    with pytest.raises(ValueError, match="width"):
        ResidualMLPDenoiser(DenoiserConfig(width=0), 4)
