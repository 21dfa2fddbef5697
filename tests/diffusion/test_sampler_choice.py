"""The sampler chosen at generation time on a fitted model: every generation path honours it, files
and summaries record it, model files from before the option load as Heun, bad names are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny
import torch
from cli_runner import run_cli
from diffusion_fixtures import random_rows

from synther_fast import ReplayBuffer, SynthER, TransitionLayout, quick
from synther_fast.data import load_dataset
from synther_fast.diffusion.sharded import generate_sharded

LAYOUT = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=True)
TINY = quick().replace(**tiny.SYNTHER)  # 4 Heun steps


def rows(n: int = 300, seed: int = 0) -> np.ndarray:
    return random_rows(LAYOUT, n, seed)


@pytest.fixture(scope="module")
def model() -> SynthER:
    return SynthER(LAYOUT, TINY, device="cpu").fit(rows(), progress=False)


def evaluations(model: SynthER, monkeypatch) -> int:
    """Network evaluations (forward calls of the EMA network) for one draw of the sampler."""
    calls = []
    original = type(model.ema).forward
    monkeypatch.setattr(type(model.ema), "forward", lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    model.sample_normalized(10)
    monkeypatch.undo()
    return len(calls)


@pytest.mark.parametrize(("sampler", "steps", "nfe"), [("heun", 5, 9), ("euler", 5, 5), ("dpmpp_2m", 7, 7),
                                                       ("dpmpp_2m_sde", 6, 6)])
def test_each_sampler_makes_its_number_of_network_evaluations(model, monkeypatch, sampler, steps, nfe) -> None:
    assert evaluations(model.with_sampler(sampler, steps), monkeypatch) == nfe
    assert model.with_sampler(sampler, steps).sampler_record == {"sampler": sampler, "num_steps": steps, "nfe": nfe}


def test_with_sampler_shares_the_weights_and_leaves_the_model_alone(model) -> None:
    fast = model.with_sampler("dpmpp_2m", 6)
    assert fast.ema is model.ema and fast.normalizer is model.normalizer
    assert (fast.config.edm.sampler, fast.config.edm.num_steps) == ("dpmpp_2m", 6)
    assert (model.config.edm.sampler, model.config.edm.num_steps) == ("heun", TINY.edm.num_steps)
    assert model.with_sampler() is model
    np.testing.assert_array_equal(fast.generate(40, seed=3), model.generate(40, seed=3, sampler="dpmpp_2m", num_steps=6))
    assert not np.array_equal(fast.generate(40, seed=3), model.generate(40, seed=3))  # another sampler, other rows
    np.testing.assert_array_equal(np.concatenate(list(model.iter_chunks(40, seed=3, sampler="dpmpp_2m", num_steps=6))),
                                  fast.generate(40, seed=3))
    assert np.isfinite(fast.generate(40, seed=3)).all()


def test_generated_files_record_the_sampler_and_its_nfe(model, tmp_path) -> None:
    out = tmp_path / "g.npz"
    assert model.generate_into(out, 30, seed=1, sampler="euler", num_steps=3) == 30
    assert load_dataset(out).generated_by == {"sampler": "euler", "num_steps": 3, "nfe": 3}
    np.testing.assert_array_equal(load_dataset(out).to_rows(LAYOUT), model.generate(30, seed=1, sampler="euler",
                                                                                     num_steps=3))
    buffer = ReplayBuffer(64, LAYOUT)
    model.generate_into(buffer, 30, seed=1, sampler="euler", num_steps=3)
    np.testing.assert_array_equal(buffer.to_numpy(), load_dataset(out).to_rows(LAYOUT))
    sharded = tmp_path / "s.hdf5"
    generate_sharded(model, 30, 1, sharded, sampler="euler", num_steps=3)  # one process here; torchrun in test_distributed
    assert load_dataset(sharded).generated_by == {"sampler": "euler", "num_steps": 3, "nfe": 3}
    np.testing.assert_array_equal(load_dataset(sharded).to_rows(LAYOUT), load_dataset(out).to_rows(LAYOUT))


def test_model_files_from_before_the_option_load_as_heun(model, tmp_path) -> None:
    path = tmp_path / "old.pt"
    model.save(path)
    payload = torch.load(path, weights_only=True)
    config = json.loads(payload["config"])
    del config["edm"]["sampler"]  # as written before EDMConfig.sampler existed
    payload["config"] = json.dumps(config)
    torch.save(payload, path)
    old = SynthER.load(path, map_location="cpu")
    assert old.config.edm.sampler == "heun"
    np.testing.assert_array_equal(old.generate(20, seed=2), model.generate(20, seed=2))


def test_unknown_samplers_and_steps_are_refused(model) -> None:
    with pytest.raises(ValueError, match="sampler must be one of"):
        model.with_sampler("ddim")
    with pytest.raises(ValueError, match="num_steps must be positive"):
        model.generate(5, sampler="euler", num_steps=0)


def test_cli_generate_takes_the_sampler_and_steps(model, tmp_path) -> None:
    model.save(tmp_path / "m.pt")
    out = tmp_path / "g.npz"
    result = run_cli("generate", "--model", str(tmp_path / "m.pt"), "--rows", "25", "--out", str(out),
                     "--seed", "4", "--sampler", "dpmpp_2m", "--num-steps", "5", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "dpmpp_2m, 5 steps, 5 network evaluations per row" in result.stdout
    assert load_dataset(out).generated_by == {"sampler": "dpmpp_2m", "num_steps": 5, "nfe": 5}
    np.testing.assert_array_equal(load_dataset(out).to_rows(LAYOUT), model.generate(25, seed=4, sampler="dpmpp_2m",
                                                                                     num_steps=5))
    bad = run_cli("generate", "--model", str(tmp_path / "m.pt"), "--rows", "5", "--out", str(tmp_path / "b.npz"),
                  "--sampler", "ddim")
    assert bad.returncode != 0 and "ddim" in bad.stderr
