"""A short fit on a known transition-like distribution produces rows that match held-out data and
obey its dynamics far better than Gaussian-noise augmentation at the same distance from the data.
The same checks reject an untrained model and two broken samplers (shown below), so they can fail.

Measured on the 2-core CI machine (3000 steps, width 256, depth 4, 128 Heun steps): mean_err ~0.07,
std_ratio_err ~0.05, corr_err ~0.11, energy ~0.009; held-out real vs real: 0.06 / 0.04 / 0.05 /
0.006; untrained: 0.76 / 0.18 / 1.05 / 0.28.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusion_fixtures import (
    LAYOUT,
    dynamics_residual,
    nearest_distance,
    passes,
    quality,
    transitions,
)

from synther_fast import SynthER, quick
from synther_fast.diffusion import synther as synther_module
from synther_fast.diffusion.edm import heun_sample

CONFIG = quick().replace(**{"trainer.steps": 3000, "edm.num_steps": 128})


@pytest.fixture(scope="module")
def fitted():
    train, held_out = transitions(5000, seed=0), transitions(2000, seed=1)
    model = SynthER(LAYOUT, CONFIG, device="cpu").fit(train, progress=False)
    samples = model.generate(2000, seed=0)
    return model, train, held_out, samples


@pytest.mark.slow
def test_fit_reduces_the_loss(fitted) -> None:
    model = fitted[0]
    losses = [h["loss"] for h in model.history]
    # On standardised data F = 0 (the ideal denoiser of unit Gaussians) scores exactly 1.0.
    assert np.mean(losses[-5:]) < 0.7 and np.mean(losses[-5:]) < np.mean(losses[:3]), losses


@pytest.mark.slow
def test_samples_match_held_out_data(fitted) -> None:
    _, _, held_out, samples = fitted
    q = quality(samples, held_out)
    assert passes(q), q


@pytest.mark.slow
def test_untrained_model_fails_the_same_checks(fitted) -> None:
    train, held_out = fitted[1], fitted[2]
    untrained = SynthER(LAYOUT, CONFIG, device="cpu").fit(train, progress=False, stop_after=1)
    q = quality(untrained.generate(2000, seed=0), held_out)
    assert not passes(q), q


def _sign_flipped(denoiser, shape, schedule, *, generator=None, device=None, dtype=torch.float32, noise=None,
                  second_denoiser=None):
    x = torch.randn(shape, generator=generator, device=device, dtype=dtype) * schedule.sigma[0]
    for i in range(schedule.num_steps):
        t, t_next = schedule.sigma[i], schedule.sigma[i + 1]
        d = (x - denoiser(x, torch.full((shape[0],), t))) / t
        x = x + (t - t_next) * d  # bug: steps away from the data
    return x


def _wrong_noise_level(denoiser, shape, schedule, **kw):
    # bug: the network is told a noise level 10x too small (a schedule / preconditioning mismatch)
    return heun_sample(lambda x, sigma: denoiser(x, sigma * 0.1), shape, schedule, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("broken", [_sign_flipped, _wrong_noise_level])
def test_broken_samplers_fail_the_same_checks(fitted, monkeypatch, broken) -> None:
    model, _, held_out, _ = fitted
    monkeypatch.setattr(synther_module, "reference_sample", broken)
    with np.errstate(all="ignore"):
        q = quality(model.generate(2000, seed=0), held_out)
    assert not passes(q), q


@pytest.mark.slow
def test_dynamics_beat_gaussian_augmentation_at_equal_novelty(fitted) -> None:
    """Synthetic rows are new (not copies) yet obey the dynamics; noisy copies of real rows at the
    same nearest-neighbour distance from the training set do not."""
    _, train, _, samples = fitted
    mu, sd = train.mean(0), train.std(0)
    z_train, z_syn = (train - mu) / sd, (samples - mu) / sd
    novelty = nearest_distance(z_syn[:1000], z_train)
    assert novelty > 0.05  # not memorised copies of the training rows
    rng = np.random.default_rng(5)
    base = z_train[rng.integers(0, len(z_train), 1000)]
    scale = novelty / np.sqrt(z_train.shape[1])
    for _ in range(3):  # calibrate the noise so the augmented rows are as far from the data
        augmented = base + scale * rng.normal(size=base.shape)
        scale *= novelty / nearest_distance(augmented, z_train)
    augmented = base + scale * rng.normal(size=base.shape)
    assert nearest_distance(augmented, z_train) == pytest.approx(novelty, rel=0.15)
    synthetic_residual = dynamics_residual(samples)
    augmented_residual = dynamics_residual(augmented * sd + mu)
    assert synthetic_residual < 0.5 * augmented_residual, (synthetic_residual, augmented_residual)
