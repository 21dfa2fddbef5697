"""Terminal labels of generated rows (issue 20): the task's rule, a classifier learned on the real rows,
or the published threshold; checked on a toy whose terminal is a known function of next_obs."""

from __future__ import annotations

import numpy as np
import pytest

from synther_fast import SynthER, TransitionLayout, quick
from synther_fast.config import GenerationConfig
from synther_fast.diffusion.termination import (
    TerminationClassifier,
    label_terminals,
    match_terminal_rate,
    terminal_mode,
)
from synther_fast.envs.health import unhealthy

LAYOUT = TransitionLayout(obs_dim=3, act_dim=1, has_terminal=True)
EDGE = 1.5  # terminal iff next_obs[0] > EDGE: about 6% of rows


def toy(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, 3))
    action = rng.uniform(-1, 1, size=(n, 1))
    next_obs = 0.8 * obs + 0.3 * action + 0.3 * rng.normal(size=(n, 3))
    reward = -np.abs(next_obs[:, :1])
    terminal = (next_obs[:, :1] > EDGE).astype(np.float64)
    return np.concatenate([obs, action, reward, next_obs, terminal], axis=1).astype(np.float32)


def test_auto_picks_the_rule_where_the_task_has_one() -> None:
    assert terminal_mode("auto", "Hopper-v5") == "rule" and terminal_mode("auto", "Walker2d-v5") == "rule"
    assert terminal_mode("auto", "HalfCheetah-v5") == "classifier" and terminal_mode("auto", None) == "classifier"
    assert terminal_mode("threshold", "Hopper-v5") == "threshold"
    with pytest.raises(ValueError, match="termination rule"):
        GenerationConfig(terminals="rule", task="HalfCheetah-v5")
    with pytest.raises(ValueError, match="terminals"):
        GenerationConfig(terminals="sometimes")


def test_the_rule_labels_exactly_the_unhealthy_next_states() -> None:
    hopper = TransitionLayout(11, 3, True)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(500, hopper.width)).astype(np.float32)
    rows[:, hopper.next_obs.start] = rng.uniform(0.5, 1.5, 500)  # height around the 0.7 bound
    rows[:, hopper.next_obs.start + 1] = rng.uniform(-0.3, 0.3, 500)  # angle around +-0.2
    label_terminals(rows, hopper, "rule", "Hopper-v5", None, 0.5)
    want = unhealthy("Hopper-v5", rows[:, hopper.next_obs])
    assert 0.2 < want.mean() < 0.8
    np.testing.assert_array_equal(rows[:, hopper.terminal.start], want.astype(np.float32))


@pytest.mark.slow
def test_the_classifier_learns_the_termination_function_from_real_rows() -> None:
    real, fresh = toy(6000, 0), toy(6000, 1)
    classifier = TerminationClassifier.fit(real, LAYOUT, seed=0)
    truth = fresh[:, LAYOUT.terminal.start] > 0.5
    labels = classifier.predict(fresh) > 0.5
    assert 0.04 < truth.mean() < 0.09
    assert (labels == truth).mean() > 0.99
    assert abs(labels.mean() / truth.mean() - 1) < 0.15
    # one class only (a task that never terminates): that constant, nothing trained
    never = real.copy()
    never[:, LAYOUT.terminal] = 0.0
    assert not TerminationClassifier.fit(never, LAYOUT).predict(fresh).any()


@pytest.mark.slow
def test_generated_terminals_follow_the_generated_next_state_and_the_threshold_does_not() -> None:
    """A small model on the toy: labelled by the classifier, generated rows are terminal where
    their own next_obs says so; the published threshold on the generated column (the negative
    control) misses most of them."""
    config = quick().replace(**{"denoiser.width": 64, "denoiser.depth": 2, "denoiser.dim_t": 16,
                                "trainer.steps": 1500, "trainer.batch_size": 128, "edm.num_steps": 16,
                                "generation.chunk_size": 4000})
    real = toy(6000, 2)
    model = SynthER(LAYOUT, config.replace(**{"generation.terminal_prior": "model"}), device="cpu").fit(
        real, progress=False)
    labelled = model.generate(4000, seed=0)
    truth = labelled[:, LAYOUT.next_obs.start] > EDGE
    label = labelled[:, LAYOUT.terminal.start] > 0.5
    assert truth.mean() > 0.03
    assert (label == truth).mean() > 0.97 and abs(label.mean() / truth.mean() - 1) < 0.3
    model.config = config.replace(**{"generation.terminals": "threshold"})
    thresholded = model.generate(4000, seed=0)
    assert np.array_equal(thresholded[:, :LAYOUT.terminal.start], labelled[:, :LAYOUT.terminal.start])
    recall = (thresholded[truth, LAYOUT.terminal.start] > 0.5).mean()
    assert recall < 0.7, recall
    # the default prior: the same model, thinned to the real rows' terminal fraction and refilled
    model.config = config
    assert model.data_terminal_rate == pytest.approx(real[:, LAYOUT.terminal.start].mean())
    matched = model.generate(4000, seed=0)
    assert len(matched) == 4000  # top-up draws refill what the thinning removed
    assert abs(matched[:, LAYOUT.terminal.start].mean() - model.data_terminal_rate) < 0.003
    truth = matched[:, LAYOUT.next_obs.start] > EDGE
    assert ((matched[:, LAYOUT.terminal.start] > 0.5) == truth).mean() > 0.97  # labels still follow next_obs
    np.testing.assert_array_equal(model.generate(4000, seed=0), matched)  # reproducible from the seed


def test_matching_the_terminal_rate_thins_the_surplus_class_by_hand_counts() -> None:
    layout = TransitionLayout(obs_dim=1, act_dim=1, has_terminal=True)
    rows = np.zeros((1000, layout.width), np.float32)
    rows[:, 0] = np.arange(1000)  # an id, to check order and which rows are kept
    rows[::10, layout.terminal] = 1.0  # 100 terminals, 900 not
    many = match_terminal_rate(rows, layout, 0.05, np.random.default_rng(0))
    kept = int(many[:, -1].sum())
    assert kept in (47, 48) and (many[:, -1] == 0).sum() == 900  # 0.05 * 900 / 0.95 = 47.4 terminals
    assert np.all(np.diff(many[:, 0]) > 0)  # original order
    few = match_terminal_rate(rows, layout, 0.2, np.random.default_rng(0))  # too few terminals
    assert few[:, -1].sum() == 100 and (few[:, -1] == 0).sum() == 400  # 100 * 0.8 / 0.2 non-terminals
    mean = np.mean([match_terminal_rate(rows, layout, 0.05, np.random.default_rng(s))[:, -1].sum()
                    for s in range(200)])
    assert abs(mean - 0.05 * 900 / 0.95) < 0.1  # stochastic rounding: exact in expectation
    none = rows.copy()
    none[:, -1] = 0.0
    assert match_terminal_rate(none, layout, 0.05, np.random.default_rng(0)) is none  # nothing to match against


@pytest.mark.slow
def test_the_classifier_is_stored_with_the_model(tmp_path) -> None:
    config = quick().replace(**{"denoiser.width": 32, "denoiser.depth": 1, "denoiser.dim_t": 8,
                                "trainer.steps": 30, "edm.num_steps": 4, "generation.chunk_size": 500})
    model = SynthER(LAYOUT, config, device="cpu").fit(toy(2000, 3), progress=False)
    assert model.termination is not None
    model.save(tmp_path / "m.pt")
    again = SynthER.load(tmp_path / "m.pt", map_location="cpu")
    np.testing.assert_array_equal(again.generate(500, seed=1), model.generate(500, seed=1))
    # a file from before classifiers: its terminals are thresholded, with a warning
    import torch

    payload = torch.load(tmp_path / "m.pt", weights_only=True)
    del payload["termination"]
    torch.save(payload, tmp_path / "old.pt")
    with pytest.warns(RuntimeWarning, match="no termination classifier"):
        old = SynthER.load(tmp_path / "old.pt", map_location="cpu")
    assert old.termination is None and set(np.unique(old.generate(100, seed=0)[:, -1])) <= {0.0, 1.0}
