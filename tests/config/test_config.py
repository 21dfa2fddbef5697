"""The config tree: one versioned serialisation, checked dotted overrides, inputs refused up front."""

from __future__ import annotations

import json

import pytest

from synther_fast.config import (
    OfflineConfig,
    OnlineConfig,
    config_differences,
    config_from_dict,
    config_to_dict,
    offline_quick,
    online_paper,
    online_quick,
    paper_online,
)


@pytest.mark.parametrize("config", [offline_quick(), online_quick(), online_paper("redq"), paper_online()])
def test_round_trip_through_json(config) -> None:
    data = json.loads(json.dumps(config_to_dict(config)))
    assert data["format"] == type(config).__name__ and data["version"] == 1
    assert config_from_dict(type(config), data) == config


def test_older_run_directories_keep_loading() -> None:
    data = config_to_dict(offline_quick())
    data["format"] = "synther_fast.OfflineConfig"  # as 0.1.0 wrote it, without the agent sections
    del data["td3_bc"], data["iql"], data["threads"]
    assert config_from_dict(OfflineConfig, data) == offline_quick()
    data["version"] = 7
    with pytest.raises(ValueError, match="version 7"):
        config_from_dict(OfflineConfig, data)
    with pytest.raises(ValueError, match="not a OnlineConfig"):
        config_from_dict(OnlineConfig, config_to_dict(offline_quick()))


def test_dotted_overrides_reach_every_part_and_coerce() -> None:
    c = offline_quick().with_overrides(**{"synther.trainer.steps": "20", "td3_bc.alpha": 3, "agent_steps": 1e5,
                                          "arms": "real", "iql.max_steps": None})
    assert (c.synther.trainer.steps, c.td3_bc.alpha, c.agent_steps, c.arms) == (20, 3.0, 100_000, ("real",))
    assert config_differences(c, offline_quick()) == [
        "arms: ('real',) != ('real', 'synthetic')", "synther.trainer.steps: 20 != 12000",
        "td3_bc.alpha: 3.0 != 2.5", "agent_steps: 100000 != 10000"]


@pytest.mark.parametrize("overrides, match", [
    ({"agent_steps": "ten"}, "agent_steps takes an integer"),
    ({"agent_steps": 2.5}, "integer"),
    ({"trainer.stepz": 1}, "unknown OfflineConfig field 'trainer'; valid: env"),
    ({"synther.trainer.stepz": 1}, "did you mean 'steps'"),
    ({"synther.edm.num_steps": 0}, "num_steps must be positive"),
    ({"synther.trainer.checkpoint_every": 0}, "checkpoint_every must be positive"),
    ({"seed": -1}, "seed must be >= 0"),
    ({"synthetic_rows": 100}, "synthetic_rows"),
    ({"algo": "awac"}, "algo"), ({"arms": ("fake",)}, "arms"), ({"mixed_ratio": 2.0}, "mixed_ratio"),
    ({"fast": "maybe"}, "true or false"),
])
def test_bad_offline_values_are_refused_before_any_work(overrides, match) -> None:
    with pytest.raises(ValueError, match=match):
        offline_quick().with_overrides(**overrides)


@pytest.mark.parametrize("overrides, match", [
    ({"algo": "ppo"}, "algo"), ({"synthetic_ratio": 1.0}, "synthetic_ratio"),
    ({"num_samples": 10**7}, "synthetic_capacity"), ({"env_steps": 10**7}, "real_capacity"),
    ({"sac.num_min": 3}, "num_min"), ({"sac.utd": 0}, "utd"), ({"retrain_every": 0}, "retrain_every"),
])
def test_bad_online_values_are_refused(overrides, match) -> None:
    with pytest.raises(ValueError, match=match):
        online_quick().with_overrides(**overrides)


def test_online_presets_follow_the_paper() -> None:
    paper = online_paper()
    assert (paper.env_steps, paper.retrain_every, paper.num_samples, paper.synthetic_capacity) == \
        (100_000, 10_000, 1_000_000, 1_000_000)  # 1M per refit: the README commands of the reported runs
    assert paper.sac.target_entropy is None and paper.sac.entropy_rule == "auto"  # -|A|, online_exp.py
    assert (paper.sac.utd, paper.sac.policy_update_delay, paper.sac.num_critics, paper.sac.start_steps) == (20, 20, 2, 5000)
    assert paper.synther.denoiser.width == 1024 and paper.synther.denoiser.dim_t == 256
    assert online_paper("redq").sac.num_critics == 10 and online_paper("redq").sac.num_min == 2
    assert online_paper("sac").sac.utd == 1
