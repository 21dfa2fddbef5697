"""SynthER: persistence, resume, generation targets, post-processing and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny
import torch
from diffusion_fixtures import random_rows

from synther_fast import ModelFileError, ReplayBuffer, SynthER, TransitionLayout, quick
from synther_fast.data import load_dataset
from synther_fast.data.rows import read_rows
from synther_fast.diffusion import synther as synther_module

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=True)
TINY = quick().replace(**tiny.SYNTHER)


def rows(n: int = 300, seed: int = 0) -> np.ndarray:
    return random_rows(LAYOUT, n, seed)


@pytest.fixture(scope="module")
def model() -> SynthER:
    return SynthER(LAYOUT, TINY, device="cpu").fit(rows(), progress=False)


@pytest.mark.slow
def test_save_load_gives_identical_samples(model, tmp_path) -> None:
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = SynthER.load(path, map_location="cpu")
    assert loaded.config == model.config and loaded.layout == model.layout
    np.testing.assert_array_equal(loaded.generate(100, seed=7), model.generate(100, seed=7))
    payload = torch.load(path, weights_only=True)  # plain tensors and JSON strings only
    assert json.loads(payload["config"])["format"] == "SynthERConfig"
    assert json.loads(payload["layout"])["format"] == "TransitionLayout"


def test_same_seed_same_rows_different_seed_different(model) -> None:
    a, b, c = model.generate(50, seed=1), model.generate(50, seed=1), model.generate(50, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.slow
def test_resume_equals_uninterrupted_fit(tmp_path) -> None:
    data = rows()
    full = SynthER(LAYOUT, TINY, device="cpu").fit(data, progress=False)
    ckpt = tmp_path / "fit.ckpt"
    SynthER(LAYOUT, TINY, device="cpu").fit(data, checkpoint=ckpt, stop_after=20, progress=False)
    resumed = SynthER(LAYOUT, TINY, device="cpu").fit(data, resume=ckpt, checkpoint=ckpt, progress=False)
    for (name, a), (_, b) in zip(full.ema.state_dict().items(), resumed.ema.state_dict().items()):
        assert torch.equal(a, b), name
    for (name, a), (_, b) in zip(full.network.state_dict().items(), resumed.network.state_dict().items()):
        assert torch.equal(a, b), name
    assert [h["loss"] for h in full.history] == [h["loss"] for h in resumed.history]
    np.testing.assert_array_equal(full.generate(64, seed=3), resumed.generate(64, seed=3))


@pytest.mark.slow
def test_resume_rejects_other_data_and_plain_models(tmp_path, model) -> None:
    ckpt = tmp_path / "fit.ckpt"
    SynthER(LAYOUT, TINY, device="cpu").fit(rows(), checkpoint=ckpt, stop_after=10, progress=False)
    with pytest.raises(ModelFileError, match="different data"):
        SynthER(LAYOUT, TINY, device="cpu").fit(rows(seed=1), resume=ckpt, progress=False)
    model.save(tmp_path / "model.pt")
    with pytest.raises(ModelFileError, match="not a training checkpoint"):
        SynthER(LAYOUT, TINY, device="cpu").fit(rows(), resume=tmp_path / "model.pt", progress=False)
    other = TransitionLayout(3, 2, has_terminal=False)
    with pytest.raises(ModelFileError, match="layout"):
        SynthER(other, TINY, device="cpu").fit(rows()[:, :-1], resume=ckpt, progress=False)


def test_generate_into_buffer_and_npz(model, tmp_path) -> None:
    buffer = ReplayBuffer(1000, LAYOUT)
    assert model.generate_into(buffer, 150, seed=4) == 150  # 3 chunks of at most 64
    assert len(buffer) == 150
    np.testing.assert_array_equal(buffer.to_numpy(), model.generate(150, seed=4))
    path = tmp_path / "synthetic.npz"
    assert model.generate_into(path, 70, seed=4) == 70
    np.testing.assert_array_equal(read_rows(path, LAYOUT), model.generate(70, seed=4))  # a dataset file
    assert load_dataset(path).obs_dim == LAYOUT.obs_dim
    with pytest.raises(ValueError, match="layout"):
        model.generate_into(ReplayBuffer(10, TransitionLayout(3, 2, False)), 5)
    with pytest.raises(ValueError, match=".npz"):
        model.generate_into(tmp_path / "x.csv", 5)


def test_terminals_are_thresholded(model) -> None:
    terminal = model.generate(200, seed=0)[:, LAYOUT.terminal]
    assert set(np.unique(terminal).tolist()) <= {0.0, 1.0}


def test_nonfinite_rows_are_dropped_with_a_warning(model, monkeypatch) -> None:
    original = model.sample_normalized

    def with_nans(n, generator=None, num_steps=None):
        out = original(n, generator, num_steps).clone()
        out[::10, 1] = float("nan")
        return out

    monkeypatch.setattr(model, "sample_normalized", with_nans)
    with pytest.warns(RuntimeWarning, match="dropped 6 generated rows"):
        out = model.generate(60, seed=0)  # one chunk: rows 0, 10, ..., 50 are NaN
    assert out.shape == (54, LAYOUT.width) and np.isfinite(out).all()


@pytest.mark.slow
def test_action_clipping_and_minmax_clamp() -> None:
    data = rows()
    data[:, LAYOUT.action] = np.clip(data[:, LAYOUT.action], -0.5, 0.5)
    clipped = TINY.replace(**{"generation.clip_actions": True, "generation.action_bounds": (-0.25, 0.25)})
    out = SynthER(LAYOUT, clipped, device="cpu").fit(data, progress=False).generate(300, seed=0)
    assert np.abs(out[:, LAYOUT.action]).max() <= 0.25
    minmax = TINY.replace(**{"normalizer.kind": "minmax"})
    out = SynthER(LAYOUT, minmax, device="cpu").fit(data, progress=False).generate(300, seed=0)
    lo, hi = data.min(0), data.max(0)
    body = slice(0, LAYOUT.width - 1)  # every column but the thresholded terminal
    assert (out[:, body] >= lo[body] - 1e-5).all() and (out[:, body] <= hi[body] + 1e-5).all()


@pytest.mark.slow
def test_zero_variance_columns_fit_without_nan() -> None:
    data = rows()
    data[:, 0] = 3.0
    out = SynthER(LAYOUT, TINY, device="cpu").fit(data, progress=False).generate(50, seed=0)
    assert np.isfinite(out).all()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nonfinite_data_names_rows_and_columns(value) -> None:
    data = rows()
    data[[4, 17], LAYOUT.next_obs.start + 2] = value
    with pytest.raises(ValueError, match=r"2 rows \(first: \[4, 17\]\) in columns \['next_obs\[2\]'\]"):
        SynthER(LAYOUT, TINY, device="cpu").fit(data, progress=False)


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (np.zeros((0, LAYOUT.width), np.float32), ValueError, "empty"),
        (np.zeros((5, LAYOUT.width + 1), np.float32), ValueError, "shape"),
        (np.array([["x"] * LAYOUT.width]), TypeError, "real numbers"),
    ],
)
def test_bad_data(bad, error, match) -> None:
    with pytest.raises(error, match=match):
        SynthER(LAYOUT, TINY, device="cpu").fit(bad, progress=False)


@pytest.mark.slow
def test_fit_from_replay_buffer_and_unfitted_errors(tmp_path) -> None:
    buffer = ReplayBuffer(500, LAYOUT)
    buffer.add(rows())
    model = SynthER(LAYOUT, TINY.replace(**{"trainer.steps": 5}), device="cpu")
    with pytest.raises(RuntimeError, match="not fitted"):
        model.generate(5)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.save(tmp_path / "m.pt")
    model.fit(buffer, progress=False)
    assert model.generate(5, seed=0).shape == (5, LAYOUT.width)
    with pytest.raises(ValueError, match="non-negative"):
        model.generate(-1)


def test_corrupted_and_missing_files(model, tmp_path) -> None:
    path = tmp_path / "model.pt"
    model.save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="not a readable model file"):
        SynthER.load(path)
    torch.save({"format": "something else"}, path)
    with pytest.raises(ModelFileError, match="not a synther_fast model"):
        SynthER.load(path)
    with pytest.raises(FileNotFoundError):
        SynthER.load(tmp_path / "missing.pt")


def test_default_config_is_paper_offline() -> None:
    assert SynthER(LAYOUT).config.preset == "paper_offline"


def test_failed_save_keeps_previous_file(model, tmp_path, monkeypatch) -> None:
    path = tmp_path / "model.pt"
    model.save(path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(synther_module.torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
