"""GenerationConfig.action_bounds: one scalar pair, or per-dimension bounds (env-scale actions)."""

from __future__ import annotations

import numpy as np
import pytest
from diffusion_fixtures import random_rows

from synther_fast import SynthER, TransitionLayout
from synther_fast.config import SynthERConfig, tiny

LAYOUT = TransitionLayout(3, 2)


def fitted(bounds) -> SynthER:
    config = tiny().with_overrides(**{"generation.clip_actions": True, "generation.action_bounds": bounds,
                                      "generation.terminals": "threshold"})
    rows = random_rows(LAYOUT, 200, seed=1)
    rows[:, LAYOUT.action] *= np.array([0.5, 6.0], np.float32)  # the second dimension spans about +-10
    return SynthER(LAYOUT, config, "cpu").fit(rows, progress=False)


def test_per_dimension_bounds_clip_each_dimension_to_its_own_range():
    model = fitted(((-0.2, -3.0), (0.2, 3.0)))
    actions = model.generate(400, seed=0)[:, LAYOUT.action]
    assert actions[:, 0].min() >= -0.2 and actions[:, 0].max() <= 0.2
    assert actions[:, 1].min() >= -3.0 and actions[:, 1].max() <= 3.0
    # each bound binds (so the clip is per dimension, not one pair for all)
    assert (actions[:, 0] == 0.2).any() or (actions[:, 0] == -0.2).any()
    assert np.abs(actions[:, 1]).max() == 3.0


def test_a_scalar_pair_still_clips_every_dimension_alike():
    actions = fitted((-0.5, 0.5)).generate(300, seed=0)[:, LAYOUT.action]
    assert actions.min() >= -0.5 and actions.max() <= 0.5 and np.abs(actions[:, 1]).max() == 0.5


def test_bounds_of_another_action_width_are_refused_at_generation():
    model = fitted(((-1.0, -1.0, -1.0), (1.0, 1.0, 1.0)))
    with pytest.raises(ValueError, match="3 per-dimension bounds, the model's actions have 2 dimensions"):
        model.generate(10, seed=0)


@pytest.mark.parametrize(("bounds", "message"), [(((-1.0, -1.0), (1.0,)), "2 lows but 1 highs"),
                                                 (((1.0, 0.0), (0.0, 1.0)), "low <= high"),
                                                 ((float("nan"), 1.0), "finite")])
def test_inconsistent_bounds_are_refused_by_the_config(bounds, message):
    with pytest.raises(ValueError, match=message):
        tiny().with_overrides(**{"generation.action_bounds": bounds})


def test_per_dimension_bounds_survive_the_config_file_round_trip():
    config = tiny().with_overrides(**{"generation.action_bounds": [[-1, -2], [1, 2]]})
    again = SynthERConfig.from_dict(config.to_dict())
    assert again.generation.action_bounds == ((-1.0, -2.0), (1.0, 2.0)) == config.generation.action_bounds
