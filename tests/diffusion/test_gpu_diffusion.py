"""GPU checks of the fast diffusion path (marked gpu; run by bench/gpu/gpu_check.py on a GPU machine)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusion_fixtures import LAYOUT, passes, quality, transitions

from synther_fast import SynthER, quick
from synther_fast.config import DenoiserConfig, EDMConfig, TrainerConfig
from synther_fast.diffusion import DiffusionTrainer, ResidualMLPDenoiser

pytestmark = pytest.mark.gpu


def test_captured_training_tracks_the_eager_loss_curve() -> None:
    data = torch.randn(20_000, 42, device="cuda")
    curves = {}
    for graphed in (False, True):
        torch.manual_seed(0)
        net = ResidualMLPDenoiser(DenoiserConfig(width=512, depth=6, dim_t=128, backend="fused"), 42).cuda()
        trainer = DiffusionTrainer(net, data, EDMConfig(), TrainerConfig(steps=600, cuda_graph=graphed), 256, 0)
        assert trainer.graphed == graphed
        losses = []
        while trainer.step < 600:
            losses.append(float(trainer.train_step()))
        curves[graphed] = np.array(losses)
    eager, graphed = curves[False][-100:].mean(), curves[True][-100:].mean()
    assert abs(eager - graphed) < 0.1 * eager, (eager, graphed)
    assert graphed < curves[True][:20].mean()  # it learns


@pytest.mark.parametrize("precision", ["ieee", "tf32x3", "tf32"])
def test_fused_path_generates_data_of_reference_quality(precision: str) -> None:
    train, held_out = transitions(5000, seed=0), transitions(2000, seed=1)
    config = quick().replace(**{"trainer.steps": 3000, "edm.num_steps": 128,
                                "denoiser.backend": "fused", "denoiser.precision": precision})
    model = SynthER(LAYOUT, config, device="cuda").fit(train, progress=False)
    q = quality(model.generate(2000, seed=0), held_out)
    assert passes(q), q
