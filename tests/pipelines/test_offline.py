"""The offline pipeline end to end at a tiny scale: files, metrics, resume, seeds, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny
import torch
from cli_runner import run_cli

import synther_fast
from synther_fast.agents.td3_bc import TD3BC
from synther_fast.common.rng import Stream, stream_seed
from synther_fast.data import Dataset, load_dataset, save_dataset
from synther_fast.envs import factory
from synther_fast.pipelines.offline import OfflineConfig, offline_quick, run_offline
from synther_fast.runs.files import unlisted_files
from synther_fast.runs.summaries import read_summary

TINY = tiny.OFFLINE


def tiny_config(**extra) -> OfflineConfig:
    return offline_quick().with_overrides(**(TINY | extra))


@pytest.mark.slow
def test_end_to_end_writes_everything(tmp_path) -> None:
    result = synther_fast.train(tiny_config(arms=("real", "synthetic", "mixed"), report=True), run_dir=tmp_path / "run",
                                progress=False)
    run = result.run_dir
    for name in ("config.json", "dataset.npz", "synther.pt", "synthetic.npz", "metrics.jsonl",
                 "metrics.csv", "summary.json", "fidelity.json", "agent_real.ckpt", "state.json"):
        assert (run / name).exists(), name
    assert unlisted_files(run) == []  # every file the run wrote is in the artefact table
    (run / "stray.bin").write_bytes(b"")
    assert unlisted_files(run) == ["stray.bin"]  # and the check sees one that is not
    assert read_summary(run) == result.summary and read_summary(run).scores()[0].arm == "real"
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary["arms"]) == {"real", "synthetic", "mixed"}
    for info in summary["arms"].values():
        assert np.isfinite(info["return_mean"]) and info["updates"] == 60
        assert info["normalized_score"] == pytest.approx(
            100 * (info["return_mean"] + 280.178953) / (12135.0 + 280.178953))
        assert [e["step"] for e in info["evaluations"]] == [30, 60]
        assert all(np.isfinite(e["critic_loss"]) for e in info["evaluations"])
    assert summary["arms"]["mixed"]["ratio"] == 0.5 and summary["arms"]["synthetic"]["ratio"] == 1.0
    assert 0 < summary["fidelity"]["mean_ks"] < 1
    assert set(summary["seconds"]) == {"dataset", "diffusion", "generate", "agent_real", "agent_synthetic",
                                       "agent_mixed"} and all(v > 0 for v in summary["seconds"].values())
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {r["phase"] for r in records} == {"agent_real", "agent_synthetic", "agent_mixed"}
    assert load_dataset(run / "synthetic.npz").to_rows().shape == (1000, 2 * 17 + 6 + 2)  # a dataset file
    report = (run / "report" / "report.md").read_text()  # the data-quality report, at the end
    assert "ynamics" in report and (run / "report" / "dynamics_vs_novelty.png").exists()
    assert json.loads((run / "state.json").read_text())["report"] == str(run / "report" / "report.md")


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["td3_bc", "edac", "cql"])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, monkeypatch, algo) -> None:
    from synther_fast.agents.cql import CQL
    from synther_fast.agents.edac import EDAC

    small = {"edac": {"edac.num_critics": 3, "edac.hidden": (16, 16)},
             "cql": {"cql.n_actions": 3, "cql.hidden": (16, 16)}}.get(algo, {})
    config = tiny_config(algo=algo, **small)
    full = run_offline(config, tmp_path / "full", progress=False)

    cls = {"td3_bc": TD3BC, "edac": EDAC, "cql": CQL}[algo]
    original = cls.update

    def crash_at_45(self, batch):
        if self.total_updates == 45 and self.config is not None and crash_at_45.armed:
            crash_at_45.armed = False
            raise KeyboardInterrupt("simulated interruption")
        return original(self, batch)

    crash_at_45.armed = True
    monkeypatch.setattr(cls, "update", crash_at_45)
    with pytest.raises(KeyboardInterrupt):
        run_offline(config, tmp_path / "cut", progress=False)
    state = json.loads((tmp_path / "cut" / "state.json").read_text())
    assert "generate" in state["done"] and "agent_real" not in state["done"]  # cut in the first arm
    with pytest.raises(FileExistsError, match="resume"):
        run_offline(config, tmp_path / "cut", progress=False)
    resumed = run_offline(config, tmp_path / "cut", resume=True, progress=False)
    for arm in ("real", "synthetic"):
        assert resumed.arms[arm]["evaluations"] == full.arms[arm]["evaluations"]
    a = torch.load(tmp_path / "full" / "agent_synthetic.ckpt", weights_only=True)["agent"]
    b = torch.load(tmp_path / "cut" / "agent_synthetic.ckpt", weights_only=True)["agent"]
    for key in ("actor", "critic"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)


def test_resume_with_another_config_is_refused(tmp_path) -> None:
    run_offline(tiny_config(arms=("real",)), tmp_path / "r", progress=False)
    with pytest.raises(ValueError, match="different config"):
        run_offline(tiny_config(arms=("real",), seed=1), tmp_path / "r", resume=True, progress=False)


@pytest.mark.slow
def test_iql_and_seeds(tmp_path) -> None:
    out = synther_fast.train(tiny_config(algo="iql", arms=("real",)), run_dir=tmp_path / "s", seeds=[0, 1],
                             progress=False)
    info = out["arms"]["real"]
    assert info["seeds"] == [0, 1] and np.isfinite(info["return_mean"]) and info["return_std"] >= 0
    assert (tmp_path / "s" / "seed_1" / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("algo, overrides, extra_loss, option", [
    ("edac", {"edac.num_critics": 2, "edac.hidden": (16, 16)}, "diversity", "--edac.num-critics INT"),
    ("cql", {"cql.n_actions": 3, "cql.hidden": (16, 16)}, "cql_gap", "--cql.cql-alpha FLOAT"),
])
def test_edac_and_cql_run_in_the_pipeline_and_their_fields_reach_the_cli(tmp_path, algo, overrides, extra_loss,
                                                                          option) -> None:
    result = synther_fast.train(tiny_config(algo=algo, arms=("real",), **overrides), run_dir=tmp_path / algo,
                                progress=False)
    info = result.arms["real"]
    assert np.isfinite(info["return_mean"]) and [e["step"] for e in info["evaluations"]] == [30, 60]
    assert all(np.isfinite(e[extra_loss]) and np.isfinite(e["td_loss"]) for e in info["evaluations"])
    state = torch.load(tmp_path / algo / "agent_real.ckpt", weights_only=True)["agent"]
    assert state["agent_kind"] == algo and state["critic"]["net.layers.0.weight"].shape[0] == \
        overrides.get("edac.num_critics", 2)
    assert option in run_cli("offline", "--help").stdout


def test_subset_and_agent_size_reach_the_fit_the_real_arm_and_the_networks(tmp_path, monkeypatch) -> None:
    from synther_fast.diffusion import SynthER
    from synther_fast.pipelines import offline

    fitted_on = []
    original_fit = SynthER.fit
    monkeypatch.setattr(SynthER, "fit", lambda self, rows, **kw: fitted_on.append(len(rows)) or original_fit(self, rows, **kw))
    config = tiny_config(env="Hopper-v5", subset=0.25, agent_width=24, agent_depth=3, agent_steps=20, eval_every=20)
    result = run_offline(config, tmp_path / "r", progress=False)
    full = load_dataset(tmp_path / "r" / "dataset.npz")
    kept = full.subset(0.25, seed=stream_seed(config.seed, Stream.SUBSET))
    assert 0.25 * len(full) <= result.summary.dataset["rows"] == len(kept) < 0.3 * len(full)  # whole episodes
    assert result.summary.dataset["full_rows"] == len(full) == 2000 and fitted_on == [len(kept)]
    assert "a 25% subset of 2,000" in offline.format_summary(result.summary)
    state = torch.load(tmp_path / "r" / "agent_real.ckpt", weights_only=True)["agent"]
    actor = [v.shape for k, v in state["actor"].items() if k.endswith("weight")]
    assert actor == [(24, 11), (24, 24), (24, 24), (3, 24)]  # three hidden layers of 24
    assert offline.offline_agent_config(tiny_config(algo="cql", agent_width=512)).hidden == (512, 512, 512)
    assert offline.offline_agent_config(tiny_config(agent_depth=4)).hidden == (256,) * 4
    plain = tiny_config()
    assert offline.offline_agent_config(plain) is plain.td3_bc


@pytest.mark.parametrize(
    "overrides, match",
    [({"algo": "awac"}, "algo"), ({"subset": 0.0}, "subset"), ({"subset": 1.5}, "subset"),
     ({"agent_width": 0}, "agent_width"), ({"arms": ("fake",)}, "arms"), ({"agent_steps": 0}, "agent_steps"),
     ({"mixed_ratio": 2.0}, "mixed_ratio"), ({"bogus": 1}, "unknown")],
)
def test_bad_config(overrides, match) -> None:
    with pytest.raises(ValueError, match=match):
        offline_quick().with_overrides(**overrides)


def test_paper_preset_on_cpu_warns_with_an_estimate(tmp_path, monkeypatch) -> None:
    from synther_fast.pipelines import offline

    monkeypatch.setattr(offline, "_dataset_phase", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("stop")))
    with pytest.warns(RuntimeWarning, match="hours on 2 cores"), pytest.raises(RuntimeError, match="stop"):
        run_offline(offline.offline_paper(), tmp_path / "p", progress=False)


def test_cli_collect_fit_generate(tmp_path) -> None:
    def cli(*args):
        out = run_cli(*args)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout

    cli("collect", "--env", "Hopper-v5", "--steps", "500", "--out", str(tmp_path / "d.npz"), str(tmp_path / "d.hdf5"))
    text = cli("fit", "--dataset", str(tmp_path / "d.hdf5"), "--out", str(tmp_path / "m.pt"),
               "--synther.trainer.steps", "20", "--synther.denoiser.width", "32", "--synther.denoiser.depth", "1",
               "--synther.edm.num_steps", "4")
    assert "fitted 20 steps" in text
    cli("generate", "--model", str(tmp_path / "m.pt"), "--rows", "64", "--out", str(tmp_path / "s.npz"))
    assert len(load_dataset(tmp_path / "s.npz")) == 64 and len(load_dataset(tmp_path / "d.npz")) == 500


def test_overrides_coerce_cli_values() -> None:
    config = offline_quick().with_overrides(collect_noise=0.5, agent_steps=1e5, arms="real")
    assert config.collect_noise == (0.5,) and config.agent_steps == 100_000 and config.arms == ("real",)
    with pytest.raises(ValueError, match="integer"):
        offline_quick().with_overrides(agent_steps=2.5)


def test_dataset_must_fit_the_environment(tmp_path) -> None:
    from synther_fast.data import save_dataset
    from synther_fast.pipelines.collect import rollouts

    save_dataset(rollouts("Hopper-v5", None, 300), tmp_path / "hopper.npz")
    with pytest.raises(ValueError, match="pass the matching --env"):
        run_offline(tiny_config(dataset=str(tmp_path / "hopper.npz")), tmp_path / "run", progress=False)


def test_offline_on_a_dataset_collected_from_a_users_own_env(tmp_path) -> None:
    env = "toy_env:SyntherFastToy-v0"  # registered by tests/helpers/toy_env.py on import
    assert run_cli("collect", "--env", env, "--steps", "600", "--out", str(tmp_path / "toy.npz")).returncode == 0
    result = run_offline(tiny_config(env=env, dataset=str(tmp_path / "toy.npz"), arms=("real", "synthetic")),
                         tmp_path / "run", progress=False)
    assert result.summary.dataset["rows"] == 600 and set(result.arms) == {"real", "synthetic"}
    assert all(np.isfinite(a["return_mean"]) and a["normalized_score"] is None for a in result.arms.values())


@pytest.mark.slow
def test_a_dataset_alone_runs_without_any_simulator(tmp_path, monkeypatch) -> None:
    """--env none: fit, generation, the report without its simulator parts, and the agents, with
    evaluation skipped and said so; no environment is ever made."""
    rng = np.random.default_rng(0)
    n = 1500  # logged data of some robot: 5-d state, 2-d action, a few terminals
    data = Dataset(rng.normal(size=(n, 5)), rng.uniform(-1, 1, (n, 2)), rng.normal(size=n), rng.normal(size=(n, 5)),
                   (rng.random(n) < 0.05).astype(float), np.zeros(n))
    save_dataset(data, tmp_path / "logged.npz")

    def no_simulator(*args, **kwargs):
        raise AssertionError("an environment was made")

    monkeypatch.setattr(factory, "make_env", no_simulator)
    out = run_cli("offline", "--env", "none", "--dataset", str(tmp_path / "logged.npz"), "--run-dir", str(tmp_path / "r"),
                  *[f"--{k.replace('_', '-')}={v}" for k, v in tiny.OFFLINE.items() if k.startswith("synther.")],
                  "--agent-steps", "40", "--eval-every", "20", "--synthetic-rows", "600", "--report")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "return: not measured (--env none" in out.stdout
    summary = read_summary(tmp_path / "r")
    assert set(summary.arms) == {"real", "synthetic"} and all(a["return_mean"] is None for a in summary.arms.values())
    assert [e["step"] for e in summary.arms["real"]["evaluations"]] == [20, 40]  # losses still recorded
    assert (tmp_path / "r" / "agent_synthetic.ckpt").exists() and summary.synthetic_rows == 600
    report = (tmp_path / "r" / "report" / "report.md").read_text()
    assert "Not measured: none" in report  # the dynamics error needs a simulator: skipped, with the reason
    with pytest.raises(ValueError, match="--env none needs --dataset"):
        run_offline(tiny_config(env="none"), tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()
