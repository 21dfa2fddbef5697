"""Guided generation in the pipelines: online refits guided by curiosity or TD error (files,
exact resume), offline return-conditioned generation, and the relevance functions."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny
import torch
from interrupt import kill_online_run

import synther_fast
from synther_fast.config import offline_quick, online_quick
from synther_fast.pipelines.online import OnlineRun, run_online
from synther_fast.relevance import Curiosity, return_target, returns_to_go, td_errors, top_fraction
from synther_fast.replay import TransitionLayout
from synther_fast.runs.files import unlisted_files


def guided_online(guidance: str = "curiosity", **extra):
    return online_quick().with_overrides(**(tiny.ONLINE | {"env": "Hopper-v5", "synther.guidance": guidance,
                                                           "synther.guided.curiosity_hidden": 32} | extra))


# -- relevance functions ---------------------------------------------------------------------------
LAYOUT = TransitionLayout(obs_dim=3, act_dim=1, has_terminal=False)


def linear_system(n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """s' = A s + B a: deterministic dynamics; ``shift`` moves the states off the training range."""
    rng = np.random.default_rng(seed)
    a_mat = np.array([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.1, 0.0, 0.7]])
    obs = rng.normal(size=(n, 3)) + shift
    act = rng.uniform(-1, 1, (n, 1))
    nxt = obs @ a_mat.T + act @ np.array([[0.5, -0.3, 0.2]])
    return np.concatenate([obs, act, np.zeros((n, 1)), nxt], axis=1).astype(np.float32)


def test_curiosity_error_falls_on_a_deterministic_system_and_rises_on_novel_states() -> None:
    model = Curiosity(LAYOUT, hidden=64, lr=1e-3, seed=0)
    train, held_out, novel = linear_system(4000, 0), linear_system(500, 1), linear_system(500, 2, shift=4.0)
    before = float(model.score(held_out).mean())
    rng = np.random.default_rng(0)
    for _ in range(600):
        model.update(train[rng.integers(0, len(train), 128)])
    after = float(model.score(held_out).mean())
    assert after < 0.3 * before, (before, after)  # it learns the dynamics
    assert float(model.score(novel).mean()) > 3 * after  # and is surprised away from them
    again = Curiosity(LAYOUT, hidden=64, lr=1e-3, seed=0)
    again.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(again.score(novel), model.score(novel))


def test_returns_to_go_by_hand_and_the_target() -> None:
    rewards = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    ends = np.array([0, 1, 0, 0, 0])  # an episode of 2 rows, then a cut one of 3
    np.testing.assert_allclose(returns_to_go(rewards, ends, 0.5), [1 + 0.5 * 2, 2, 3 + 0.5 * (4 + 0.5 * 5), 4 + 2.5, 5])
    np.testing.assert_allclose(returns_to_go(rewards, ends, 1.0), [3, 2, 12, 9, 5])
    assert return_target(np.arange(101.0), 0.9) == pytest.approx(90.0)
    assert return_target(np.arange(101.0), 0.9, amplify=1.5) == pytest.approx(135.0)
    with pytest.raises(ValueError, match="one value per row"):
        returns_to_go(rewards, ends[:3])


def test_top_fraction() -> None:
    scores = np.random.default_rng(0).permutation(100).astype(np.float32)
    np.testing.assert_array_equal(top_fraction(scores, 0.1), np.arange(90, 100))
    assert top_fraction(scores, 0.001).tolist() == [99.0]
    with pytest.raises(ValueError, match="fraction"):
        top_fraction(scores, 0.0)


def test_td_errors_by_hand() -> None:
    from synther_fast.agents.sac import SAC

    layout = TransitionLayout(obs_dim=3, act_dim=2, has_terminal=True)
    agent = SAC(3, 2, synther_fast.config.SACConfig(hidden=(16,)), seed=0)
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(9, layout.width)).astype(np.float32)
    rows[:, layout.terminal] = rng.random((9, 1)) < 0.5
    got = td_errors(agent, rows, layout, batch=4)
    t = torch.from_numpy(rows)
    with torch.no_grad():
        s, a, r, s2, d = (t[:, layout.obs], t[:, layout.action], t[:, layout.reward][:, 0], t[:, layout.next_obs],
                          t[:, layout.terminal][:, 0])
        a2 = torch.tanh(agent.actor.net(s2).chunk(2, -1)[0])
        q2 = torch.minimum(*[agent.critic_target(s2, a2)[k] for k in range(2)])
        want = (agent.critic(s, a).mean(0) - (r + 0.99 * (1 - d) * q2)).abs()
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6)


# -- online -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_curiosity_guided_quick_run_writes_every_file_and_resumes_exactly(tmp_path, monkeypatch) -> None:
    config = guided_online()
    full = run_online(config, tmp_path / "full", progress=False)
    assert unlisted_files(tmp_path / "full") == []
    refit = full.summary["refits"][0]
    assert refit["guidance"] == "curiosity" and refit["rows"] == 400
    assert refit["condition_pool_min"] >= refit["score_mean"]  # generated toward the top scores
    model = synther_fast.SynthER.load(tmp_path / "full" / "synther_0.pt", map_location="cpu")
    assert model.conditional and model.condition_stats is not None
    kill_online_run(config, tmp_path / "cut", monkeypatch, at_step=260)
    saved = torch.load(tmp_path / "cut" / "online.ckpt", weights_only=True)
    assert 150 < json.loads(saved["counters"])["t"] < 260 and saved["curiosity"]["updates"] > 0
    resumed = run_online(config, tmp_path / "cut", resume=True, progress=False)
    strip = lambda evals: [{k: v for k, v in e.items() if not k.startswith("seconds")} for e in evals]
    assert strip(resumed.summary["evaluations"]) == strip(full.summary["evaluations"])
    a = torch.load(tmp_path / "full" / "online.ckpt", weights_only=True)
    b = torch.load(tmp_path / "cut" / "online.ckpt", weights_only=True)
    for part in ("feature", "forward_model", "inverse"):
        for name, tensor in a["curiosity"][part].items():
            assert torch.equal(tensor, b["curiosity"][part][name]), (part, name)
    for name, tensor in a["agent"]["actor"].items():
        assert torch.equal(tensor, b["agent"]["actor"][name]), name


def test_a_td_guided_refit_fits_a_conditional_model(tmp_path) -> None:
    from synther_fast.runs import Run

    config = guided_online("td")
    run = Run.open(tmp_path / "r", config)
    loop = OnlineRun(config, run, torch.device("cpu"), progress=False)
    loop.real.add(np.random.default_rng(0).normal(size=(200, loop.layout.width)).astype(np.float32))
    info = loop.refit()
    assert info["guidance"] == "td" and len(loop.synthetic) == 400 and info["score_max"] > info["score_mean"]
    assert "dynamics_next_obs_relative_mse" in info  # Hopper rows are scored by the simulator
    assert info["bulk_distance"] > 0
    run.close()


def test_bulk_distance() -> None:
    from synther_fast.analysis.refill import bulk_distance

    real = np.random.default_rng(0).normal(size=(5000, 4))
    assert bulk_distance(real, real) == pytest.approx(1.0)
    assert bulk_distance(real, real[:2000]) == pytest.approx(1.0, abs=0.05)
    assert bulk_distance(real, 3 * real) == pytest.approx(3.0, rel=0.01)
    assert bulk_distance(real, real + 2.0) > 1.5


@pytest.mark.parametrize("overrides, match", [
    ({"synther.guidance": "return"}, "offline relevance"),
    ({"algo": "sac", "synther.guidance": "curiosity"}, "generates nothing"),
    ({"synther.guided.top_frac": 0.0}, "top_frac"),
    ({"synther.guided.cond_dropout": 1.5}, "cond_dropout"),
    ({"synther.guidance": "curiosity", "synther.guided.cond_dropout": 0.0}, "never trains the unconditional"),
    ({"synther.guidance": "td", "synther.guided.cond_dropout": 1.0}, "never trains the conditional"),
])
def test_bad_guidance_settings(overrides, match) -> None:
    with pytest.raises(ValueError, match=match):
        online_quick().with_overrides(**overrides)


# -- offline ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_offline_return_conditioned_generation(tmp_path) -> None:
    config = offline_quick().with_overrides(**(tiny.OFFLINE | {
        "env": "Hopper-v5", "arms": ("synthetic",), "synther.guidance": "return",
        "synther.guided.return_quantile": 0.9}))
    result = synther_fast.train(config, run_dir=tmp_path / "r", progress=False)
    guidance = result.summary.guidance
    assert guidance["kind"] == "return" and guidance["target"] > guidance["data_mean"]
    model = synther_fast.SynthER.load(tmp_path / "r" / "synther.pt", map_location="cpu")
    assert model.conditional
    with pytest.raises(ValueError, match="online relevance"):
        offline_quick().with_overrides(**{"synther.guidance": "td"})


def test_cli_generates_guided_rows_from_a_conditional_model(tmp_path) -> None:
    from cli_runner import run_cli

    from synther_fast import SynthER, quick

    rng = np.random.default_rng(0)
    rows = rng.normal(size=(300, LAYOUT.width)).astype(np.float32)
    model = SynthER(LAYOUT, quick().replace(guidance="return", **{"trainer.steps": 5, "denoiser.width": 16,
                                                                  "denoiser.depth": 1, "edm.num_steps": 3}), "cpu")
    model.fit(rows, conditions=rows[:, 0], progress=False)
    model.save(tmp_path / "m.pt")
    out = run_cli("generate", "--model", str(tmp_path / "m.pt"), "--rows", "40", "--out", str(tmp_path / "g.npz"),
                  "--conditions", "1.5", "--scale", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    guided = synther_fast.data.load_dataset(tmp_path / "g.npz").to_rows(LAYOUT)
    np.testing.assert_array_equal(guided, model.generate(40, seed=0, conditions=[1.5], scale=2.0))
    plain = run_cli("generate", "--model", str(tmp_path / "m.pt"), "--rows", "40", "--out", str(tmp_path / "u.npz"))
    assert plain.returncode == 0 and "unconditional branch" in plain.stdout
    with pytest.raises(ValueError, match="finite"):
        model.generate(4, seed=0, conditions=[1.0], scale=float("nan"))
    for mode in ("online", "offline"):  # every guidance field reaches the pipelines' CLI
        text = run_cli(mode, "--help").stdout
        assert "--synther.guidance" in text and "--synther.guided.top-frac" in text
    bad = run_cli("offline", "--synther.guidance", "curiosity", "--run-dir", str(tmp_path / "never"))
    assert bad.returncode == 2 and "online relevance" in bad.stderr and not (tmp_path / "never").exists()
