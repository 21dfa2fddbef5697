"""Sweeps (synther_fast.pipelines.sweeps): specs are checked before anything runs; on a local Ray instance
a 2-cell sweep writes both run directories and the table, a rerun skips finished cells, and a
failing cell is reported while the other finishes."""

from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import pytest
import tiny

from synther_fast.cli import main as cli_main
from synther_fast.pipelines.sweeps import SweepError, SweepSpec, grid_tag, sweep

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason='needs Ray: pip install ".[distributed]" (CI installs it)')

# Each cell: a random-policy dataset of 400 steps, 10 diffusion steps, 20 agent updates, 1 episode.
TINY = tiny.OFFLINE | {"collect_steps": 400, "synthetic_rows": 256, "agent_steps": 20, "eval_every": 20,
                       "checkpoint_every": 20, "synther.trainer.steps": 10, "synther.trainer.checkpoint_every": 10}


def test_spec_errors_name_the_problem_before_anything_runs(tmp_path) -> None:
    with pytest.raises(SweepError, match="unknown task.*Hoper-v5"):
        SweepSpec.build(tasks=["Hoper-v5"], root=str(tmp_path))
    with pytest.raises(SweepError, match="seeds lists a value twice"):
        SweepSpec.build(seeds=[0, 0])
    with pytest.raises(SweepError, match="with tasks/algos/seeds"):
        SweepSpec.build(overrides={"seed": 3})
    with pytest.raises(SweepError, match="agent_stepz"):  # sweep() checks every cell before it writes
        sweep(mode="offline", tasks=["Hopper-v5"], overrides={"agent_stepz": 5}, root=str(tmp_path / "r"),
              progress=False)
    with pytest.raises(SweepError, match="share the run directory"):
        SweepSpec.build(tasks=["Hopper-v5"], grid={"mixed_ratio": [0.5, 0.50]}).cells()
    with pytest.raises(SweepError, match="non-empty list"):
        SweepSpec.build(tasks=["Hopper-v5"], grid={"dataset": "data.npz"})
    with pytest.raises(SweepError, match="unknown online algorithm"):
        SweepSpec.build(mode="online", algos=["td3_bc"]).cells()
    bad = tmp_path / "spec.toml"
    bad.write_text('mode = "offline"\ntaskz = ["Hopper-v5"]\n')
    with pytest.raises(SweepError, match="unknown key.*taskz"):
        SweepSpec.from_file(bad)
    bad.write_text("mode = [\n")
    with pytest.raises(SweepError, match="cannot parse"):
        SweepSpec.from_file(bad)
    assert not (tmp_path / "r").exists()  # nothing was created


def test_toml_spec_becomes_cells_with_their_own_run_directories(tmp_path) -> None:
    spec_file = tmp_path / "grid.toml"
    spec_file.write_text(
        'mode = "offline"\npreset = "quick"\ntasks = ["Hopper-v5", "dmc:cheetah-run"]\n'
        'algos = ["td3_bc", "iql"]\nseeds = [0, 1]\nroot = "out"\n'
        "[overrides]\nagent_steps = 50\n[overrides.synther.trainer]\nsteps = 30\n"
        "[grid]\nmixed_ratio = [0.25, 0.5]\n"
    )
    spec = SweepSpec.from_file(spec_file)
    cells = spec.cells()
    assert len(cells) == 2 * 2 * 2 * 2
    assert len({c.run_dir for c in cells}) == len(cells)
    first = cells[0]
    assert first.run_dir == (tmp_path / "out" / "Hopper-v5" / "td3_bc" / "mixed_ratio=0.25" / "seed_0").resolve()
    assert first.config.agent_steps == 50 and first.config.synther.trainer.steps == 30
    assert {c.config.mixed_ratio for c in cells} == {0.25, 0.5}
    assert {c.config.env for c in cells} == {"Hopper-v5", "dmc:cheetah-run"}
    assert "dmc_cheetah-run" in str(cells[-1].run_dir)  # ':' is not put into folder names
    tag = grid_tag({"dataset": "/a/b/data.npz"})
    assert tag.startswith("dataset=data.npz-") and tag != grid_tag({"dataset": "/a/c/data.npz"})


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    result = sweep(mode="offline", tasks=["Hopper-v5"], algos=["td3_bc"], seeds=[0, 1], overrides=TINY,
                   root=str(root), progress=False)
    return root, result


@pytest.mark.slow
@needs_ray
def test_two_cell_sweep_writes_both_runs_and_the_table(finished_sweep) -> None:
    root, result = finished_sweep
    assert not result.failed, result.failed
    for seed in (0, 1):
        summary = json.loads((root / "Hopper-v5" / "td3_bc" / f"seed_{seed}" / "summary.json").read_text())
        assert summary["seed"] == seed and set(summary["arms"]) == {"real", "synthetic"}
    assert [c["status"] for c in result.cells] == ["ran", "ran"]
    rows = {r["arm"]: r for r in result.rows}
    assert set(rows) == {"real", "synthetic"} and all(r["seeds"] == 2 for r in rows.values())
    # The table's numbers are the runs' own: mean and std over the two seeds' final returns.
    import numpy as np

    returns = [json.loads((root / "Hopper-v5" / "td3_bc" / f"seed_{s}" / "summary.json").read_text())
               ["arms"]["real"]["return_mean"] for s in (0, 1)]
    assert rows["real"]["return_mean"] == pytest.approx(np.mean(returns))
    assert rows["real"]["return_std"] == pytest.approx(np.std(returns))
    assert rows["real"]["normalized_mean"] is not None  # Hopper has D4RL reference scores
    text = (root / "sweep.md").read_text()
    assert "| Hopper-v5 | td3_bc | real | 2 |" in text and "D4RL-normalised" in text
    with open(root / "sweep.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2
    with open(root / "cells.csv") as handle:
        cells = list(csv.DictReader(handle))
    assert len(cells) == 2 and all(float(c["seconds"]) > 0 for c in cells)
    assert (root / "sweep.png").stat().st_size > 1000


@needs_ray
def test_rerun_skips_finished_cells_through_the_cli(finished_sweep, tmp_path, capsys) -> None:
    root, first = finished_sweep
    before = {p: p.stat().st_mtime_ns for p in root.rglob("summary.json")}
    spec_file = tmp_path / "same.toml"
    overrides = "\n".join(f'"{k}" = {json.dumps(v) if not isinstance(v, bool) else str(v).lower()}'
                          for k, v in TINY.items())
    spec_file.write_text(f'mode = "offline"\ntasks = ["Hopper-v5"]\nalgos = ["td3_bc"]\nseeds = [0, 1]\n'
                         f'root = "{root}"\n[overrides]\n{overrides}\n')
    assert cli_main(["sweep", str(spec_file)]) == 0
    out = capsys.readouterr().out
    assert "2 finished already, 0 to run" in out and "| Hopper-v5 | td3_bc | real | 2 |" in out
    assert {p: p.stat().st_mtime_ns for p in root.rglob("summary.json")} == before  # nothing reran
    again = json.loads((root / "sweep.json").read_text())
    assert [c["status"] for c in again["cells"]] == ["finished before"] * 2
    assert [r["return_mean"] for r in again["rows"]] == [r["return_mean"] for r in first.rows]


@pytest.mark.slow
@needs_ray
def test_a_failing_cell_is_reported_and_the_other_finishes(tmp_path) -> None:
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"this is not a zip archive")
    result = sweep(mode="offline", tasks=["Hopper-v5"], algos=["td3_bc"], seeds=[0],
                   overrides={**TINY, "arms": ("real",)}, grid={"dataset": [None, str(broken)]},
                   root=str(tmp_path / "runs"), progress=False)
    statuses = {c["grid"].split("-")[0]: c["status"] for c in result.cells}
    assert statuses == {"dataset=None": "ran", "dataset=broken.npz": "failed"}
    failure = result.failed[0]
    assert "broken.npz" in failure["error"]
    assert (Path(result.cells[0]["run_dir"]) / "summary.json").exists()
    text = (tmp_path / "runs" / "sweep.md").read_text()
    assert "Failed cells:" in text and "broken.npz" in text
    rows = {r["grid"].split("-")[0]: r for r in result.rows}
    assert rows["dataset=broken.npz"]["return_mean"] is None  # valid JSON, not NaN
    json.loads((tmp_path / "runs" / "sweep.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert rows["dataset=broken.npz"]["failed"] == 1 and rows["dataset=broken.npz"]["seeds"] == 0
    assert rows["dataset=None"]["seeds"] == 1


def test_without_ray_a_sweep_with_work_says_how_to_install_it(tmp_path, monkeypatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ModuleNotFoundError, match=r"synther_fast\[distributed\]"):
        sweep(mode="offline", tasks=["Hopper-v5"], overrides=TINY, root=str(tmp_path), progress=False)


def test_yaml_spec_means_the_same_as_toml(tmp_path) -> None:
    pytest.importorskip("yaml", reason="YAML specs need PyYAML (the distributed extra brings it)")
    (tmp_path / "a.toml").write_text('mode = "online"\ntasks = ["Hopper-v5"]\nalgos = ["sac", "sac-synther"]\n'
                                     'seeds = [0, 1]\n[overrides.sac]\nutd = 5\n[grid]\nretrain_every = [1000, 2000]\n')
    (tmp_path / "a.yaml").write_text("mode: online\ntasks: [Hopper-v5]\nalgos: [sac, sac-synther]\nseeds: [0, 1]\n"
                                     "overrides: {sac: {utd: 5}}\ngrid: {retrain_every: [1000, 2000]}\n")
    toml_cells, yaml_cells = (SweepSpec.from_file(tmp_path / f"a.{ext}").cells() for ext in ("toml", "yaml"))
    assert [(c.run_dir, c.config) for c in toml_cells] == [(c.run_dir, c.config) for c in yaml_cells]
    assert len(toml_cells) == 8 and all(c.config.sac.utd == 5 for c in toml_cells)


@pytest.mark.slow
def test_an_online_cell_runs_and_is_then_read_back(tmp_path) -> None:
    # The cell function itself, in this process (what a Ray worker calls), then the finished check.
    ONLINE_TINY = tiny.ONLINE

    from synther_fast.config import config_to_dict
    from synther_fast.pipelines.sweeps import _finished_outcome, run_cell
    from synther_fast.runs.summaries import Score

    spec = SweepSpec.build(mode="online", tasks=["Hopper-v5"], algos=["sac-synther"], seeds=[3],
                           overrides=ONLINE_TINY, root=str(tmp_path))
    (cell,) = spec.cells()
    outcome = run_cell("online", config_to_dict(cell.config), str(cell.run_dir))
    summary = json.loads((cell.run_dir / "summary.json").read_text())
    assert outcome["status"] == "ran" and outcome["seconds"] > 0
    assert outcome["scores"] == [Score("", summary["final_return_mean"], summary["final_return_std"],
                                       summary["final_normalized_score"])]
    again = _finished_outcome(cell)
    assert again is not None and again["scores"] == outcome["scores"]
    # another config in the same directory is not taken as finished
    other = SweepSpec.build(mode="online", tasks=["Hopper-v5"], algos=["sac-synther"], seeds=[3],
                            overrides={**ONLINE_TINY, "eval_episodes": 2}, root=str(tmp_path)).cells()[0]
    assert _finished_outcome(other) is None


def test_every_shipped_sweep_spec_builds_its_cells() -> None:
    """docs/sweeps: each spec parses, every cell's config is checked, and the grids vary what
    their names promise (a renamed config key would fail here, not on a cluster)."""
    from pathlib import Path

    from synther_fast.pipelines.sweeps import SweepSpec

    specs = sorted((Path(__file__).resolve().parents[2] / "docs" / "sweeps").glob("*.toml"))
    assert {p.stem for p in specs} >= {"upsampling_cpu", "upsampling_paper", "larger_networks_cpu",
                                       "larger_networks_paper", "edac_cql_check_cpu", "guided_online_cpu",
                                       "guided_online_paper", "guided_offline_paper"}
    cells = {p.stem: SweepSpec.from_file(p).cells() for p in specs}
    assert {c.config.subset for c in cells["upsampling_paper"]} == {1.0, 0.15}
    assert {(c.config.agent_width, c.config.agent_depth) for c in cells["larger_networks_paper"]} == \
        {(256, 2), (256, 3), (1024, 2), (1024, 3)}
    assert {c.config.synther.guidance for c in cells["guided_online_paper"]} == {"none", "curiosity"}
    assert {c.config.synther.guidance for c in cells["guided_offline_paper"]} == {"none", "return"}
    assert all(c.config.preset == "paper" for name in cells if name.endswith("paper") for c in cells[name])
