"""The explicit-augmentation arms of the offline pipeline ('noise': S4RL-style state noise, 'mixup'):
their rows, their strength (given or tuned to the synthetic rows' novelty), seeding, and a run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny

import synther_fast
from synther_fast.analysis.novelty import novelty
from synther_fast.config import offline_quick
from synther_fast.pipelines.offline import _augmentation_phase
from synther_fast.replay import TransitionLayout

LAYOUT = TransitionLayout(3, 2)


def real(n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(n, LAYOUT.width)).astype(np.float32)
    rows[:, LAYOUT.terminal] = rng.random((n, 1)) < 0.1
    return rows


def config(**overrides):
    return offline_quick().with_overrides(**{**tiny.OFFLINE, "synthetic_rows": 3000, **overrides})


def test_augmented_rows_are_real_rows_changed_as_configured():
    rows = real()
    out = _augmentation_phase(config(arms=("real", "noise", "mixup"), noise_strength=0.2, mixup_strength=0.3),
                              rows, None, LAYOUT)
    noisy, info = out["noise"]
    assert noisy.shape == (3000, LAYOUT.width) and info == {"augmentation": "state_noise", "strength": 0.2,
                                                             "rows": 3000}
    # every noisy row keeps a real row's action, reward and terminal exactly
    keys = {tuple(r) for r in rows[:, LAYOUT.action.start:].round(5)[:, :3]}
    assert all(tuple(r) in keys for r in noisy[:, LAYOUT.action.start:].round(5)[:, :3])
    assert not np.isin(noisy[:, 0], rows[:, 0]).any()  # while every state moved
    mixed, info = out["mixup"]
    assert info["strength"] == 0.3 and set(np.unique(mixed[:, LAYOUT.terminal])) <= {0.0, 1.0}
    again = _augmentation_phase(config(arms=("real", "noise", "mixup"), noise_strength=0.2, mixup_strength=0.3),
                                rows, None, LAYOUT)
    np.testing.assert_array_equal(again["noise"][0], noisy)  # the run's seed fixes them
    other = _augmentation_phase(config(arms=("real", "noise"), noise_strength=0.2, seed=1), rows, None, LAYOUT)
    assert not np.array_equal(other["noise"][0], noisy)
    assert _augmentation_phase(config(arms=("real", "synthetic")), rows, None, LAYOUT) == {}


def test_an_unset_strength_is_tuned_to_the_synthetic_rows_novelty():
    rows = real(1500)
    synthetic = rows + np.random.default_rng(5).normal(scale=0.4, size=rows.shape).astype(np.float32)
    synthetic[:, LAYOUT.terminal] = rows[:, LAYOUT.terminal]
    out = _augmentation_phase(config(arms=("real", "synthetic", "noise")), rows, synthetic, LAYOUT)
    noisy, info = out["noise"]
    target = info["target_novelty"]
    assert info["tuned_to"] == "synthetic mean novelty" and info["reached_novelty"] == pytest.approx(target, rel=0.02)
    assert novelty(rows, noisy, max_rows=1500)["mean"] == pytest.approx(target, rel=0.15)


def test_bad_strengths_are_refused():
    with pytest.raises(ValueError, match="noise_strength must be >= 0"):
        config(noise_strength=-1.0)
    with pytest.raises(ValueError, match=r"mixup_strength must lie in \[0, 0.5\]"):
        config(mixup_strength=0.9)
    with pytest.raises(ValueError, match="subset of"):
        config(arms=("real", "cutout"))


@pytest.mark.slow
def test_an_offline_run_trains_the_augmentation_arms(tmp_path):
    cfg = config(env="Hopper-v5", arms=("real", "noise", "mixup"), noise_strength=0.1, mixup_strength=0.2)
    synther_fast.train(cfg, run_dir=tmp_path / "run", progress=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert list(summary["arms"]) == ["real", "noise", "mixup"]
    assert summary["arms"]["noise"]["augmentation"]["strength"] == 0.1
    assert summary["arms"]["mixup"]["augmentation"]["augmentation"] == "mixup"
    assert all(np.isfinite(info["return_mean"]) for info in summary["arms"].values())
    assert summary["synthetic_rows"] is None and not (tmp_path / "run" / "synther.pt").exists()  # given strengths: no fit


def test_a_scarce_data_cut_is_what_the_run_fits_and_trains_on(tmp_path):
    cfg = config(env="Hopper-v5", arms=("real", "noise"), noise_strength=0.1, cut=250)
    synther_fast.train(cfg, run_dir=tmp_path / "run", progress=False)
    dataset = json.loads((tmp_path / "run" / "summary.json").read_text())["dataset"]
    assert dataset["rows"] == 250 and dataset["cut"] == 250 and dataset["full_rows"] == 2000
    with pytest.raises(ValueError, match="set cut .* or subset .*, not both"):
        config(cut=250, subset=0.5)
    with pytest.raises(ValueError, match="cut"):
        config(cut=0)
    with pytest.raises(ValueError, match=r"cut \(5000\) exceeds the 2000 transitions collect_steps collects"):
        config(env="Hopper-v5", arms=("real",), cut=5000)  # before any collection
    given = tmp_path / "given.npz"
    synther_fast.data.save_dataset(synther_fast.data.load_dataset(tmp_path / "run" / "dataset.npz"), given)
    with pytest.raises(ValueError, match="a cut of 5000 transitions from a dataset of 2000"):
        synther_fast.train(config(env="Hopper-v5", arms=("real",), cut=5000, dataset=str(given)),
                           run_dir=tmp_path / "big", progress=False)


def test_memorisation_of_a_cut_run_is_measured_against_rows_the_model_never_saw(tmp_path):
    from synther_fast.pipelines.offline import kept_data
    from synther_fast.pipelines.report import report_for_run

    cfg = config(env="Hopper-v5", arms=("real", "synthetic"), cut=500, report=True)
    synther_fast.train(cfg, run_dir=tmp_path / "run", progress=False)
    numbers = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    assert numbers["rows"]["real"] == 500  # the cut, not the 2,000 collected rows
    assert numbers["memorisation"]["held_out"] == "real rows outside the fitted ones"
    assert numbers["compression"]["model_bytes"] == (tmp_path / "run" / "synther.pt").stat().st_size
    again = json.loads((report_for_run(tmp_path / "run", tmp_path / "again").parent / "report.json").read_text())
    assert again["rows"]["real"] == 500 and again["memorisation"]["held_out"] == numbers["memorisation"]["held_out"]
    full = synther_fast.data.load_dataset(tmp_path / "run" / "dataset.npz")
    kept, unseen = kept_data(cfg, full)
    assert len(kept) == 500 and len(unseen) == 1500 and len(kept_data(config(), full)[1]) == 0
