"""The commands that have no pipeline test of their own, run to their end as a user types them
(``demo``, ``report``, ``replay-demo``), checking the lines a user reads and the files written.
The documented commands of the README and docs/ run in tests/package/test_readme.py."""

from __future__ import annotations

import json
import re

import pytest
from cli_runner import run_cli

from synther_fast.runs.files import unlisted_files
from synther_fast.runs.summaries import read_summary


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``synther-fast demo --preset tiny`` in a fresh folder, as a user would type it: the first
    call's output, the second call's output, and the run directory."""
    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        first = run_cli("demo", "--preset", "tiny")
        model = folder / "runs" / "demo-tiny" / "synther.pt"
        fitted = model.stat().st_mtime_ns if model.exists() else None
        second = run_cli("demo", "--preset", "tiny")
    return first, second, folder / "runs" / "demo-tiny", fitted


TABLE = re.compile(r"^real +-?\d+\.\d +\d+\.\d +-?\d+\.\d\nsynthetic +-?\d+\.\d +\d+\.\d +-?\d+\.\d$", re.M)


def test_demo_prints_its_plan_table_and_verdict_and_writes_the_run(demo) -> None:
    first, _, run, _ = demo
    assert first.returncode == 0, first.stderr[-3000:]
    out = first.stdout
    assert "synther-fast demo: tiny offline SynthER on HalfCheetah-v5" in out
    assert "phase 2/6: fit the diffusion model (0.04k steps)" in out  # the plan is the preset's
    assert TABLE.search(out), out
    assert re.search(r"TD3\+BC trained on synthetic data only (matches or beats|falls short of) TD3\+BC on the real "
                     r"data \(-?\d+ vs -?\d+\)", out)
    assert f"table saved to {run.relative_to(run.parents[1])}/demo_table.txt" in out
    for name in ("config.json", "dataset.npz", "synther.pt", "synthetic.npz", "summary.json", "demo_table.txt",
                 "agent_real.ckpt", "agent_synthetic.ckpt", "report/report.md"):
        assert (run / name).exists(), name
    assert unlisted_files(run) == []
    summary = read_summary(run)
    assert summary.preset == "tiny" and summary.arms["real"]["updates"] == 60 and summary.synthetic_rows == 1000
    assert (run / "demo_table.txt").read_text().strip() in out  # the file holds the printed table


def test_a_second_demo_reprints_the_finished_table_without_redoing_work(demo) -> None:
    first, second, run, fitted = demo
    assert second.returncode == 0, second.stderr[-3000:]
    assert TABLE.search(second.stdout).group(0) == TABLE.search(first.stdout).group(0)
    assert "At this small scale" in second.stdout and "table saved to" in second.stdout
    assert (run / "synther.pt").stat().st_mtime_ns == fitted  # the fit was read back, not redone


def test_report_rewrites_a_runs_data_quality_report(demo) -> None:
    _, _, run, _ = demo
    report = run / "report" / "report.md"
    report.unlink()
    out = run_cli("report", str(run))
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == f"report written to {report}"
    text = report.read_text()
    assert "ynamics" in text and "KS" in text and (run / "report" / "dynamics_vs_novelty.png").exists()
    missing = run_cli("report", str(run / "nope"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_replay_demo_measures_both_samplers_and_round_trips_the_buffer() -> None:
    out = run_cli("replay-demo", "--seconds", "0.05", "--batch-size", "64")
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout
    for line in ("C++ MixedSampler", "NumPy reference", "speed-up", "synthetic rows in the last batch: 32 of 64",
                 "while a writer adds"):
        assert line in text, line
    assert re.search(r"save \+ load of 200,000 rows \(\d+\.\d MB\): \d+\.\d+ s, identical: True", text)
    bad = run_cli("replay-demo", "--seconds", "0")
    assert bad.returncode == 2 and "--seconds" in bad.stderr


def test_tiny_is_a_preset_of_every_mode_and_demo_takes_it() -> None:
    from synther_fast.config import PRESETS, TINY, resolve

    assert {"tiny", "quick"} <= set(PRESETS["offline"]) and "tiny" in PRESETS["online"] and "tiny" in PRESETS["fit"]
    offline = resolve("offline", "tiny")
    assert offline.agent_steps == TINY["offline"]["agent_steps"] and offline.synther.denoiser.width == 32
    assert offline.collect_method == "policy" and offline.report  # the demo's shape, shrunk
    assert resolve("online", "tiny", "redq").sac.utd == 2 and resolve("online", "tiny", "sac").sac.utd == 1
    assert json.loads(json.dumps(resolve("fit", "tiny").to_dict()))["preset"] == "tiny"
