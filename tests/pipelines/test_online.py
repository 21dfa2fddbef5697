"""The online loop at a tiny scale: files, the refit/refill cycle, DMC, resume, bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny
import torch
import toy_env
from cli_runner import run_cli
from interrupt import kill_online_run

import synther_fast
from synther_fast.common.rng import Stream, fit_seed, stream_seed
from synther_fast.config import online_quick
from synther_fast.pipelines.online import OnlineRun, run_online
from synther_fast.runs.files import unlisted_files

TINY = tiny.ONLINE


def tiny(algo: str = "sac-synther", **extra):
    return online_quick(algo).with_overrides(**(TINY | {"env": "Hopper-v5"} | extra))


@pytest.mark.slow
def test_sac_synther_run_writes_everything(tmp_path) -> None:
    result = synther_fast.train(tiny(), run_dir=tmp_path / "run", progress=False)
    s = result.summary
    for name in ("config.json", "state.json", "summary.json", "metrics.jsonl", "metrics.csv", "online.ckpt",
                 "real.replay", "synther_0.pt", "synthetic_0.replay"):
        assert (tmp_path / "run" / name).exists(), name
    assert unlisted_files(tmp_path / "run") == []  # every file the run wrote is in the artefact table
    assert [e["env_step"] for e in s["evaluations"]] == [150, 300]
    assert all(np.isfinite(e["return_mean"]) and np.isfinite(e["critic_loss"]) for e in s["evaluations"])
    # learner blocks run once the replay holds more than start_steps rows: steps 101..300
    assert s["critic_updates"] == 200 * 4 and s["actor_updates"] == 200
    assert len(s["refits"]) == 1 and s["refits"][0]["env_step"] == 150 and s["refits"][0]["rows"] == 400
    assert 0 < s["refits"][0]["mean_ks"] < 1
    # refit k's fit seed: the run seed's FIT stream (synther.seed unset), then (REFIT_FIT, k)
    assert s["synther_seed"] == fit_seed(0, None) and s["refits"][0]["fit_seed"] == stream_seed(
        fit_seed(0, None), Stream.REFIT_FIT, 0)
    assert set(s["seconds"]) == {"env", "learner", "fit", "generate", "eval"}
    phases = {json.loads(line)["phase"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()}
    assert phases == {"online", "refit"}


def test_refill_replaces_the_synthetic_rows_and_batches_mix_exactly(tmp_path) -> None:
    from synther_fast.runs import Run

    config = tiny(**{"sac.batch_size": 32})
    run = Run.open(tmp_path / "r", config)
    loop = OnlineRun(config, run, torch.device("cpu"), progress=False)
    rng = np.random.default_rng(0)
    loop.real.add(rng.normal(size=(200, loop.layout.width)).astype(np.float32) * [1] * loop.layout.width)
    assert loop.sampler.sample().n_synthetic == 0  # all real before the first refill
    loop.refit()
    first = loop.synthetic.to_numpy().copy()
    assert len(first) == 400
    assert loop.sampler.sample().n_synthetic == 16  # int(32 * 0.5)
    loop.refit()
    assert len(loop.synthetic) == 400 and not np.array_equal(loop.synthetic.to_numpy(), first)  # replaced
    run.close()


def test_refits_draw_with_the_configured_sampler_and_record_it(tmp_path) -> None:
    from synther_fast.runs import Run

    config = tiny(**{"synther.edm.sampler": "dpmpp_2m", "synther.edm.num_steps": 5})
    run = Run.open(tmp_path / "r", config)
    loop = OnlineRun(config, run, torch.device("cpu"), progress=False)
    loop.real.add(np.random.default_rng(0).normal(size=(200, loop.layout.width)).astype(np.float32))
    info = loop.refit()
    assert (info["sampler"], info["num_steps"], info["nfe"]) == ("dpmpp_2m", 5, 5)
    model = synther_fast.SynthER.load(run.files.refit(0)[0], map_location="cpu")
    np.testing.assert_array_equal(model.generate(400, seed=loop.refitter.seed_for(0, "generate")),
                                  loop.synthetic.to_numpy())  # the refill is that sampler's draw
    run.close()


def test_truncation_is_not_a_terminal(tmp_path) -> None:
    result = run_online(tiny("sac", env="HalfCheetah-v5", env_steps=1000, eval_every=1000,
                             **{"sac.start_steps": 1000}), tmp_path / "hc", progress=False)
    rows = synther_fast.ReplayBuffer.load(tmp_path / "hc" / "real.replay").to_numpy()
    layout = synther_fast.TransitionLayout(17, 6, True)
    assert rows[:, layout.terminal].sum() == 0  # HalfCheetah never terminates; its time limit is no terminal
    assert result.summary["episodes"] == 1


@pytest.mark.slow
def test_dmc_task_models_no_terminal_and_keeps_rewards_unnormalised(tmp_path) -> None:
    result = run_online(tiny(env="dmc:cheetah-run", env_steps=200, retrain_every=120, eval_every=200,
                             **{"sac.start_steps": 80}), tmp_path / "dmc", progress=False)
    model = synther_fast.SynthER.load(tmp_path / "dmc" / "synther_0.pt", map_location="cpu")
    assert not model.layout.has_terminal and model.config.normalizer.skip_reward
    assert np.isfinite(result.final_return)


@pytest.mark.slow
def test_kill_and_resume_equals_uninterrupted(tmp_path, monkeypatch) -> None:
    config = tiny()
    full = run_online(config, tmp_path / "full", progress=False)
    kill_online_run(config, tmp_path / "cut", monkeypatch, at_step=260)
    saved = torch.load(tmp_path / "cut" / "online.ckpt", weights_only=True)
    assert 150 < json.loads(saved["counters"])["t"] < 260  # resumes after the refit, before the kill
    with pytest.raises(FileExistsError):
        run_online(config, tmp_path / "cut", progress=False)
    # a kill between the replay's write and the checkpoint's: the replay is ahead of the checkpoint
    replay = synther_fast.ReplayBuffer.load(tmp_path / "cut" / "real.replay")
    replay.add(np.zeros((7, replay.layout.width), np.float32))
    replay.save(tmp_path / "cut" / "real.replay")
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as f:
        f.write('{"phase": "online", "st')  # and a torn last metrics line
    resumed = run_online(config, tmp_path / "cut", resume=True, progress=False)
    strip = [{k: v for k, v in e.items() if not k.startswith("seconds")} for e in full.summary["evaluations"]]
    assert [{k: v for k, v in e.items() if not k.startswith("seconds")} for e in resumed.summary["evaluations"]] == strip
    a = torch.load(tmp_path / "full" / "online.ckpt", weights_only=True)["agent"]
    b = torch.load(tmp_path / "cut" / "online.ckpt", weights_only=True)["agent"]
    for name, tensor in a["actor"].items():
        assert torch.equal(tensor, b["actor"][name]), name
    records = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r["phase"] == "online"]
    assert steps == sorted(set(steps)) == [150, 300]  # nothing logged twice


@pytest.mark.parametrize("overrides, error, match", [
    ({"env": "NoSuchEnv-v0"}, ValueError, "unknown environment"),
    ({"device": "cuda:7"}, ValueError, "no CUDA device"),
])
def test_bad_inputs_fail_before_the_run_directory_exists(tmp_path, overrides, error, match) -> None:
    if "device" in overrides and torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(error, match=match):
        run_online(tiny(**overrides), tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def test_cli_online_and_its_errors(tmp_path) -> None:
    def cli(*args):
        return run_cli(*args)

    out = cli("online", "--env", "Hopper-v5", "--algo", "redq", "--env-steps", "120", "--sac.start-steps", "100",
              "--sac.utd", "2", "--sac.policy-update-delay", "2", "--sac.batch-size", "16",
              "--eval-every", "120", "--eval-episodes", "1", "--run-dir", str(tmp_path / "redq"))
    assert out.returncode == 0, out.stderr[-2000:]
    summary = json.loads((tmp_path / "redq" / "summary.json").read_text())
    config = json.loads((tmp_path / "redq" / "config.json").read_text())
    assert summary["algo"] == "redq" and config["sac"]["num_critics"] == 10 and summary["critic_updates"] == 40
    bad = cli("online", "--env", "Nope-v1", "--run-dir", str(tmp_path / "x"))
    assert bad.returncode == 2 and "unknown environment 'Nope-v1'" in bad.stderr and "Traceback" not in bad.stderr
    bad = cli("online", "--synthetic-ratio", "1.5", "--run-dir", str(tmp_path / "x"))
    assert bad.returncode == 2 and "synthetic_ratio" in bad.stderr
    assert cli("--version").stdout.startswith("synther-fast ")


@pytest.mark.slow
def test_async_refit_swaps_new_rows_in_while_learning_continues(tmp_path) -> None:
    result = run_online(tiny(async_refit=True, checkpoint_every=1000), tmp_path / "async", progress=False)
    refits = result.summary["refits"]
    assert len(refits) == 1 and refits[0]["env_step"] == 150 and refits[0]["rows"] == 400
    assert 150 <= refits[0]["swapped_at"] <= 300  # learning went on until the rows were ready
    assert result.summary["critic_updates"] == 200 * 4
    assert (tmp_path / "async" / "synthetic_0.replay").exists()


@pytest.mark.slow
def test_a_users_own_registered_env_runs_online(tmp_path) -> None:
    """A task registered by the user's own module (toy_env, as a plugin package would), named as
    gymnasium allows: module:EnvId."""
    result = run_online(tiny("sac-synther", env="toy_env:SyntherFastToy-v0", env_steps=200, retrain_every=150,
                             eval_every=200, **{"sac.start_steps": 100}), tmp_path / "toy", progress=False)
    s = result.summary
    assert s.env_steps == 200 and s.episodes == 4  # its own 50-step time limit
    assert len(s.refits) == 1 and s.refits[0]["rows"] == 400 and np.isfinite(s.final_return_mean)
    assert s.final_normalized_score is None  # no D4RL reference for this task


@pytest.mark.slow
def test_an_unregistered_env_factory_through_train_with_its_termination_overridden(tmp_path) -> None:
    def point_mass():  # a research environment registered nowhere
        return toy_env.PointMass()

    result = synther_fast.train(mode="online", env=point_mass, has_terminal=False, run_dir=tmp_path / "fn",
                                progress=False, **(TINY | {"env_steps": 200, "retrain_every": 150, "eval_every": 200,
                                                           "sac.start_steps": 100}))
    assert result.summary.env == "user/point_mass-v0" and result.summary.env_steps == 200
    rows = synther_fast.ReplayBuffer.load(tmp_path / "fn" / "real.replay")
    assert not rows.layout.has_terminal  # the user's word: no terminal column is modelled
    model = synther_fast.SynthER.load(tmp_path / "fn" / "synther_0.pt", map_location="cpu")
    assert not model.layout.has_terminal
