"""The run directory: validate first, refuse clearly, keep time and logs right across processes."""

from __future__ import annotations

import json
import os

import pytest
import torch

from synther_fast.common.io import atomic_write
from synther_fast.config import offline_quick
from synther_fast.runs import Run, RunError


def test_a_failed_start_does_not_block_the_retry(tmp_path) -> None:
    Run.open(tmp_path / "r", offline_quick())  # config written, then (say) the dataset was missing
    run = Run.open(tmp_path / "r", offline_quick().with_overrides(seed=3))  # not a run yet: starts afresh
    assert json.loads((tmp_path / "r" / "config.json").read_text())["seed"] == 3 and not run.resumed


def test_resume_with_another_config_names_the_fields(tmp_path) -> None:
    run = Run.open(tmp_path / "r", offline_quick())
    run.mark_done("dataset", {"rows": 1})
    with pytest.raises(FileExistsError, match="resume"):
        Run.open(tmp_path / "r", offline_quick())
    with pytest.raises(RunError, match=r"agent_steps: 10000 != 10; seed: 0 != 1"):
        Run.open(tmp_path / "r", offline_quick().with_overrides(seed=1, agent_steps=10), resume=True)
    again = Run.open(tmp_path / "r", offline_quick(), resume=True)
    assert again.resumed and again.done("dataset") and again.result("dataset") == {"rows": 1}


def test_phase_time_adds_up_over_processes(tmp_path, monkeypatch) -> None:
    clock = iter([0.0, 5.0, 5.0, 100.0, 103.0])
    monkeypatch.setattr("synther_fast.runs.run.time.perf_counter", lambda: next(clock))
    run = Run.open(tmp_path / "r", offline_quick())
    with run.phase("agent"):
        run.save_checkpoint("a.ckpt", "test", {"x": torch.ones(1)}, phase="agent")  # flushes 5 s
    assert run.timings["agent"] == pytest.approx(5.0)
    resumed = Run.open(tmp_path / "r", offline_quick(), resume=True)  # a second process
    with resumed.phase("agent"):
        pass
    assert resumed.timings["agent"] == pytest.approx(8.0)


def test_metrics_truncate_to_the_checkpoint_on_resume(tmp_path) -> None:
    run = Run.open(tmp_path / "r", offline_quick())
    log = run.logger()
    for step in (500, 1000, 1500):
        log.log("agent_real", step, {"loss": step / 1000})
    log.log("agent_synthetic", 2000, {"loss": 1.0})
    log.truncate("agent_real", 1000)
    assert [r["step"] for r in log.records("agent_real")] == [500, 1000]
    assert [r["step"] for r in log.records("agent_synthetic")] == [2000]
    csv = (tmp_path / "r" / "metrics.csv").read_text().splitlines()
    assert csv[0] == "phase,step,name,value" and "agent_real,1500,loss,1.5" not in csv and len(csv) == 4
    run.close()


def test_checkpoints_are_versioned_and_checked(tmp_path) -> None:
    run = Run.open(tmp_path / "r", offline_quick())
    run.save_checkpoint("x.ckpt", "online", {"t": 3})
    assert run.load_checkpoint("x.ckpt", "online")["t"] == 3
    assert run.load_checkpoint("missing.ckpt", "online") is None
    with pytest.raises(RunError, match="not a offline_agent checkpoint"):
        run.load_checkpoint("x.ckpt", "offline_agent")
    (tmp_path / "r" / "bad.ckpt").write_bytes(b"garbage")
    with pytest.raises(RunError, match="not a readable"):
        run.load_checkpoint("bad.ckpt", "online")


def test_temporaries_of_killed_writers_are_cleaned_on_the_next_write(tmp_path) -> None:
    target = tmp_path / "big.replay"
    dead = tmp_path / ".big.replay.999999999.x1.tmp"  # a pid that cannot be alive
    live = tmp_path / f".big.replay.{os.getppid()}.x2.tmp"  # a live process: maybe still writing
    dead.write_bytes(b"0" * 100)
    live.write_bytes(b"1")
    with atomic_write(target) as handle:
        handle.write(b"new")
    assert not dead.exists() and live.exists() and target.read_bytes() == b"new"


def test_run_files_name_every_file_once(tmp_path) -> None:
    from synther_fast.runs import ARTIFACTS, RunFiles, unlisted_files

    files = RunFiles(tmp_path)
    assert files["config"] == tmp_path / "config.json" and files.path("agent", arm="mixed") == tmp_path / "agent_mixed.ckpt"
    assert files.refit(3) == (tmp_path / "synther_3.pt", tmp_path / "synthetic_3.replay", tmp_path / "synthetic_3.json")
    with pytest.raises(KeyError, match="has a pattern"):
        files["agent"]  # a patterned name needs its key
    with pytest.raises(KeyError, match="unknown run artefact 'metric'"):
        files["metric"]
    for k in (0, 1):
        for path in files.refit(k):
            path.write_text("x")
    files["summary"].write_text("{}")
    assert [p.name for p in files.all_refit_files()] == sorted(p.name for k in (0, 1) for p in files.refit(k))
    assert unlisted_files(tmp_path) == []
    (tmp_path / "stray.bin").write_text("x")
    assert unlisted_files(tmp_path) == ["stray.bin"]
    assert len({a.pattern for a in ARTIFACTS.values()}) == len(ARTIFACTS)  # no two names for one file


def test_a_given_dataset_is_read_where_it_was_given(tmp_path, monkeypatch) -> None:
    from synther_fast.runs import RunFiles

    files = RunFiles(tmp_path / "run")
    assert files.real_dataset(None) == files["dataset"]  # collected by the run
    assert files.real_dataset(tmp_path / "d.npz") == tmp_path / "d.npz"  # absolute: as given
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here.npz").write_text("x")
    assert files.real_dataset("here.npz") == tmp_path.joinpath("here.npz").relative_to(tmp_path)  # exists from here
    assert files.real_dataset("inside.npz") == tmp_path / "run" / "inside.npz"  # else relative to the run


def test_the_metrics_log_needs_only_a_folder(tmp_path) -> None:
    from synther_fast.runs import MetricsLog

    log = MetricsLog(tmp_path)
    log.log("online", 10, {"return_mean": 1.5})
    log.log("online", 20, {"return_mean": 2.5})
    log.truncate("online", 10)
    assert [r["step"] for r in log.records("online")] == [10]
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["phase,step,name,value", "online,10,return_mean,1.5"]
    log.close()
