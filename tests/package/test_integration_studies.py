"""The integrations' learning checks end to end at a tiny scale: bench/studies/sb3_learning_check.py
(three arms, resume with refits at the same steps, report and plot) and
bench/studies/upsample_td3bc.py (upsample() then a CORL-style TD3+BC loop, resume)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from synther_fast.data import save_dataset
from synther_fast.pipelines.collect import rollouts

STUDIES = Path(__file__).resolve().parents[2] / "bench" / "studies"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, STUDIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_the_sb3_learning_check_runs_resumes_and_reports(tmp_path):
    pytest.importorskip("stable_baselines3", reason="the [sb3] extra is not installed")
    study = load("sb3_learning_check")
    common = ["--task", "Pendulum-v1", "--seeds", "0", "--learning-starts", "40", "--hidden", "16", "16",
              "--batch-size", "16", "--refit-every", "60", "--num-samples", "64", "--synther-config", "tiny",
              "--chunk", "50", "--eval-episodes", "1", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out.json")]
    first = study.main([*common, "--steps", "100"])
    assert set(first["arms"]) == {"synther", "real20", "utd1"}
    assert all(entry["finished_seeds"] == [0] for entry in first["arms"].values())
    resumed = study.main([*common, "--steps", "150", "--arms", "synther", "--plot", str(tmp_path / "curve.png")])
    run = resumed["arms"]["synther"]["runs"][0]
    assert [e["step"] for e in run["evals"]] == [50, 100, 150]
    assert [(r["refit"], r["timestep"]) for r in run["refits"]] == [(0, 60), (1, 120)]
    assert (tmp_path / "curve.png").stat().st_size > 0
    assert json.loads((tmp_path / "out.json").read_text())["arms"]["synther"]["final_mean"] is not None


@pytest.mark.slow
def test_the_upsample_td3bc_check_runs_and_resumes(tmp_path, capsys):
    study = load("upsample_td3bc")
    dataset = tmp_path / "hopper.npz"
    save_dataset(rollouts("Hopper-v5", None, 400, seed=0), dataset)
    argv = ["--dataset", str(dataset), "--task", "Hopper-v5", "--rows", "300", "--preset", "tiny", "--updates", "10",
            "--eval-episodes", "1", "--seeds", "0", "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out.json")]
    results = study.main(argv)
    assert set(results["returns"]) == {"real_s0", "synthetic_s0"}
    assert (tmp_path / "work" / "Hopper-v5_upsampled_s0.npz").exists()
    capsys.readouterr()
    again = study.main(argv)  # everything on disk: nothing is retrained
    assert again["returns"] == results["returns"] and "return" not in capsys.readouterr().out.split("real:")[0]
