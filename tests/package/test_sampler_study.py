"""bench/studies/sampler_study.py: its pass rule on made-up numbers (a metric outside the tolerance
fails the sampler; the fewest passing NFE needs every larger NFE to pass), and the study run end to
end at a tiny scale on real HalfCheetah-v5 rows (fit, floor, draws, verdicts, resume, plot)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny

from synther_fast.config import offline_quick
from synther_fast.data import save_dataset
from synther_fast.pipelines.collect import rollouts

STUDY = Path(__file__).resolve().parents[2] / "bench" / "studies" / "sampler_study.py"


@pytest.fixture(scope="module")
def study():
    spec = importlib.util.spec_from_file_location("sampler_study", STUDY)
    module = importlib.util.module_from_spec(spec)
    sys.modules["sampler_study"] = module
    spec.loader.exec_module(module)
    return module


def record(variant, steps, nfe, seed, ks, dyn=0.1):
    return {"variant": variant, "steps": steps, "nfe": nfe, "seed": seed, "seconds": 1.0, "mean_ks": ks,
            "mean_w1": 0.05, "corr_error": 0.02, "novelty": 0.3, "dynamics_error": dyn, "reward_error": 0.01}


def test_the_pass_rule(study) -> None:
    floor = {"mean_ks": 0.01, "mean_w1": 0.01, "corr_error": 0.01, "novelty": 0.01, "dynamics_error": 0.01,
             "reward_error": 0.01}
    draws = {}
    for seed, ks in enumerate([0.050, 0.052, 0.051]):
        draws[f"heun-128-s{seed}"] = record("heun", 128, 255, seed, ks)
    for steps, nfe, ks in [(4, 4, 0.20), (8, 8, 0.055), (16, 16, 0.049), (32, 32, 0.050)]:
        for seed in range(3):
            draws[f"dpmpp_2m-{steps}-s{seed}"] = record("dpmpp_2m", steps, nfe, seed, ks)
    for seed in range(3):  # KS fine, dynamics far off: fails
        draws[f"euler-16-s{seed}"] = record("euler", 16, 16, seed, 0.05, dyn=0.5)
    entry = {"draws": draws, "floor": floor}
    table = study.verdicts(entry)
    assert not table["dpmpp_2m"]["4"]["passes"] and table["dpmpp_2m"]["8"]["passes"]
    assert not table["euler"]["16"]["passes"] and not table["euler"]["16"]["within"]["dynamics_error"]
    assert entry["baseline"]["tolerance"]["mean_ks"] == pytest.approx(max(3 * np.std([0.05, 0.052, 0.051], ddof=1), 0.01))
    assert study.fewest_passing(table) == {"dpmpp_2m": 8, "euler": None, "heun": 255}
    bends = study.bends(table)
    assert bends["euler"]["mean_ks"] == 16 and bends["euler"]["dynamics_error"] is None
    assert bends["dpmpp_2m"]["mean_ks"] == 8 and bends["dpmpp_2m"]["corr_error"] == 4
    draws["dpmpp_2m-16-s0"]["mean_ks"] = draws["dpmpp_2m-16-s1"]["mean_ks"] = draws["dpmpp_2m-16-s2"]["mean_ks"] = 0.3
    assert study.fewest_passing(study.verdicts(entry))["dpmpp_2m"] == 32  # 8 passes, 16 does not: 32


@pytest.mark.slow
def test_the_study_runs_end_to_end_at_a_tiny_scale(study, tmp_path, monkeypatch) -> None:
    work, out = tmp_path / "work", tmp_path / "study.json"
    work.mkdir()
    save_dataset(rollouts("HalfCheetah-v5", None, 600, seed=0), work / "HalfCheetah-v5_sac30k_s0.npz")
    monkeypatch.setattr(study, "offline_quick", lambda: offline_quick().with_overrides(**tiny.OFFLINE))
    monkeypatch.setattr(study, "VARIANTS", {"heun": ("heun", None, [128]), "dpmpp_2m": ("dpmpp_2m", None, [3])})
    argv = ["sampler_study.py", "--tasks", "HalfCheetah-v5", "--work", str(work), "--out", str(out), "--rows", "200",
            "--seeds", "2", "--plot", str(tmp_path / "plot.png")]
    monkeypatch.setattr(sys, "argv", argv)
    study.main()
    results = json.loads(out.read_text())["HalfCheetah-v5"]
    assert set(results["draws"]) == {"heun-128-s0", "heun-128-s1", "dpmpp_2m-3-s0", "dpmpp_2m-3-s1"}
    assert results["draws"]["dpmpp_2m-3-s0"]["nfe"] == 3 and results["draws"]["heun-128-s0"]["nfe"] == 255
    assert set(results["floor"]) >= {"mean_ks", "novelty", "dynamics_error", "terminal_rate"}
    assert isinstance(results["verdicts"]["dpmpp_2m"]["3"]["passes"], bool)
    assert (tmp_path / "plot.png").stat().st_size > 0 and (work / "HalfCheetah-v5_quick_s0.pt").exists()
    table = study.markdown(json.loads(out.read_text()))
    assert "| dpmpp_2m | 3 | 2 |" in table and "fewest passing NFE" in table
    before = out.read_text()
    study.main()  # resumed: nothing to redo, nothing changed
    assert out.read_text() == before
