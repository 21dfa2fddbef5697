"""The data-quality report: report.md with its PNG figures, from rows or from a run directory."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from synther_fast.analysis import gaussian_noise, write_report
from synther_fast.config import config_to_dict, offline_quick
from synther_fast.data import Dataset, save_dataset
from synther_fast.data.rows import write_rows
from synther_fast.pipelines.collect import rollouts
from synther_fast.pipelines.report import report_for_run
from synther_fast.runs.summaries import OfflineSummary, write_summary

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def hopper():
    return rollouts("Hopper-v5", None, 400, seed=0)


def write_config(path, env="Hopper-v5", **overrides):
    (path / "config.json").write_text(json.dumps(config_to_dict(offline_quick().with_overrides(env=env, **overrides))))


def make_run(path, dataset, synthetic, env="Hopper-v5", summary=True, legacy_rows=False):
    path.mkdir()
    write_config(path, env)
    save_dataset(dataset, path / "dataset.npz")
    if legacy_rows:  # the synthetic-rows file of synther_fast <= 0.2: one bare array (NaN rows possible)
        np.savez(path / "synthetic.npz", rows=synthetic)
    else:
        write_rows(synthetic, dataset.layout(not env.startswith("dmc:")), path / "synthetic.npz")
    if summary:
        evaluations = [{"step": s, "return_mean": float(s) / 10, "return_std": 1.0} for s in (0, 100, 200)]
        arms = {"real": {"return_mean": 20.0, "return_std": 1.0, "evaluations": evaluations},
                "synthetic": {"return_mean": 10.0, "return_std": 1.0, "evaluations": evaluations[:2]}}
        write_summary(path, OfflineSummary(env=env, algo="td3_bc", seed=0, preset="quick", dataset={"rows": len(dataset)},
                                           arms=arms))
    return path


def figures_of(report: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)


@pytest.mark.slow
def test_report_for_a_run_directory_renders_tables_and_figures(tmp_path, hopper) -> None:
    layout = hopper.layout(True)
    synthetic = gaussian_noise(hopper.to_rows(layout), 0.05, layout, seed=1)
    synthetic[:3] = np.nan  # a generator's bad rows are counted and dropped, not propagated
    run = make_run(tmp_path / "run", hopper, synthetic, legacy_rows=True)
    path = report_for_run(run, max_rows=150)
    assert path == run / "report" / "report.md"
    text = path.read_text()
    pngs = figures_of(text)
    assert {"marginals.png", "novelty.png", "dynamics_vs_novelty.png", "learning_curves.png"} <= set(pngs)
    for name in pngs:
        assert (path.parent / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for heading in ("## Marginal fidelity", "## Terminals", "## Novelty", "## Dynamics error", "## Learning curves"):
        assert heading in text
    assert "terminal rate if unhealthy" in text and "n/a" not in text  # no NaN reached a table
    numbers = json.loads((path.parent / "report.json").read_text())
    assert numbers["rows"]["synthetic_non_finite_dropped"] == 3
    dyn = numbers["dynamics"]
    assert dyn["real held-out"]["next_obs_mse"] < 1e-9  # the sanity row of the table
    assert dyn["noise"]["next_obs_mse"] > dyn["synthetic"]["next_obs_mse"] > 1e3 * dyn["real held-out"]["next_obs_mse"]
    assert numbers["novelty"]["synthetic"]["rows"] == 150
    # rows 0.05 std from their training rows sit nearer to them than held-out real rows do
    assert numbers["memorisation"]["memorised_share"] > 0.5 and "## Memorisation" in text
    assert numbers["compression"] is None and "No model file given." in text  # the run has no model file


def test_the_report_states_compression_against_the_model_file(tmp_path, hopper) -> None:
    layout = hopper.layout(True)
    real = hopper.to_rows(layout)
    synthetic = real[np.random.default_rng(0).permutation(len(real))[:300]] + 1.0  # far from every real row
    write_report(real, synthetic, layout, "Hopper-v5", tmp_path / "r", max_rows=100, model_bytes=4000)
    numbers = json.loads((tmp_path / "r" / "report.json").read_text())
    comp = numbers["compression"]
    assert comp["real_bytes"] == len(real) * layout.width * 4 and comp["synthetic_bytes"] == 300 * layout.width * 4
    assert comp["real_over_model"] == pytest.approx(len(real) * layout.width * 4 / 4000)
    assert "float32" in comp["basis"] and "## Compression" in (tmp_path / "r" / "report.md").read_text()
    assert numbers["memorisation"]["memorised_share"] < 0.2  # shifted rows copy nothing
    with pytest.raises(ValueError, match="model_bytes must be positive"):
        write_report(real, synthetic, layout, "Hopper-v5", tmp_path / "r2", max_rows=100, model_bytes=0)


def test_report_for_a_task_without_dynamics_says_why(tmp_path) -> None:
    rng = np.random.default_rng(0)
    n, obs_dim, act_dim = 300, 5, 2  # a DMC-like task: no terminal column
    data = Dataset(rng.standard_normal((n, obs_dim)), rng.uniform(-1, 1, (n, act_dim)), rng.random(n),
                   rng.standard_normal((n, obs_dim)), np.zeros(n), np.zeros(n), "dmc:cheetah-run")
    layout = data.layout(False)
    path = write_report(data.to_rows(layout), data.to_rows(layout)[::-1] + 0.1, layout, "dmc:cheetah-run",
                        tmp_path / "out", max_rows=100)
    text = path.read_text()
    assert "Not measured: dmc:cheetah-run" in text and "No terminal column" in text
    assert "dynamics_vs_novelty.png" not in figures_of(text) and "None given." in text
    assert (tmp_path / "out" / "marginals.png").exists() and (tmp_path / "out" / "novelty.png").exists()


def test_missing_run_files_are_named(tmp_path, hopper) -> None:
    layout = hopper.layout(True)
    run = make_run(tmp_path / "run", hopper, hopper.to_rows(layout)[:50], summary=False)
    (run / "synthetic.npz").unlink()
    with pytest.raises(FileNotFoundError, match="synthetic.npz"):
        report_for_run(run)
    (run / "dataset.npz").unlink()
    with pytest.raises(FileNotFoundError, match="dataset.npz"):
        report_for_run(run)
    (run / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        report_for_run(run)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        report_for_run(tmp_path / "nowhere")


@pytest.mark.slow
def test_a_dataset_given_by_path_and_no_summary_yet(tmp_path, hopper) -> None:
    layout = hopper.layout(True)
    run = make_run(tmp_path / "run", hopper, hopper.to_rows(layout)[::-1].copy(), summary=False)
    elsewhere = tmp_path / "data.npz"
    (run / "dataset.npz").rename(elsewhere)
    write_config(run, dataset=str(elsewhere))
    text = report_for_run(run, tmp_path / "out", max_rows=80).read_text()
    assert "summary.json does not exist" in text and "learning_curves.png" not in figures_of(text)
    numbers = json.loads((tmp_path / "out" / "report.json").read_text())
    assert numbers["rows"]["real"] == len(hopper)
    # the 'synthetic' rows are the real ones in another order: fidelity like a perfect generator
    assert numbers["fidelity"]["synthetic"]["mean_ks"] < 0.2
    assert numbers["novelty"]["synthetic"]["exact_copies"] > 0
