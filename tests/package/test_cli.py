"""The command line as a new user meets it: help, version, one-line errors before any work."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli

from synther_fast.cli import main


def cli(*args: str):
    return run_cli(*args)  # in this process: cli.main(argv)


def test_help_shows_defaults_docs_and_the_valid_tasks() -> None:
    out = cli("offline", "--help").stdout
    assert "--synther.trainer.steps INT" in out and "(default: 12000)" in out  # the quick preset's
    assert "optimiser steps of one fit" in out and "--td3-bc.alpha" in out
    assert "dmc:quadruped-walk" in cli("--help").stdout
    paper = cli("offline", "--preset", "paper", "--help").stdout
    assert "(default: 100000)" in paper and "(default: 5000000)" in paper  # paper steps and rows
    assert "what the demo" not in cli("demo", "--help").stdout and "HalfCheetah" in cli("demo", "--help").stdout


@pytest.mark.slow
def test_version() -> None:
    import synther_fast

    assert main(["--version"]) == 0
    installed = subprocess.run(["synther-fast", "--version"], capture_output=True, text=True, timeout=300)
    assert installed.stdout.strip() == f"synther-fast {synther_fast.__version__}"  # the console script itself


@pytest.mark.parametrize("args, message", [
    (["offline", "--dataset", "nope.npz"], "nope.npz does not exist"),
    (["offline", "--seed", "-1"], "seed must be >= 0"),
    (["offline", "--synthetic-rows", "100"], "synthetic_rows (100) must be at least batch_size"),
    (["offline", "--synther.edm.num-steps", "0"], "num_steps must be positive"),
    (["offline", "--synther.trainer.checkpoint-every", "0"], "checkpoint_every must be positive"),
    (["offline", "--env", "Nope-v0"], "unknown environment 'Nope-v0'"),
    (["online", "--env", "Hoper-v5"], "unknown environment 'Hoper-v5' (did you mean Hopper-v5"),
    (["online", "--env", "dmc:cartpole-swingupp"], "did you mean dmc:cartpole-swingup"),
    (["offline", "--preset", "huge"], "unknown offline preset 'huge'"),
])
def test_user_errors_are_one_line_exit_2_before_any_work(tmp_path, args, message) -> None:
    run_dir = tmp_path / "run"
    started = time.perf_counter()
    out = cli(*args, "--run-dir", str(run_dir))
    assert out.returncode == 2, out.stderr[-2000:]
    assert message in out.stderr and "Traceback" not in out.stderr
    assert not run_dir.exists()  # nothing was created
    assert time.perf_counter() - started < 60  # refused before any expensive work


def test_debug_shows_the_traceback(tmp_path) -> None:
    out = cli("offline", "--dataset", "nope.npz", "--run-dir", str(tmp_path / "r"), "--debug")
    assert out.returncode != 0 and "Traceback" in out.stderr


@pytest.mark.slow
def test_fit_and_generate_check_their_outputs_first(tmp_path) -> None:
    from synther_fast.data import save_dataset
    from synther_fast.pipelines.collect import rollouts

    save_dataset(rollouts("Hopper-v5", None, 300), tmp_path / "d.npz")
    tiny = ["--synther.trainer.steps", "10", "--synther.denoiser.width", "16", "--synther.denoiser.depth", "1",
            "--synther.edm.num-steps", "3"]
    # A folder that does not exist yet is created (as SB3's save does); a file in its way is refused.
    out = cli("fit", "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "no" / "m.pt"), *tiny)
    assert out.returncode == 0 and (tmp_path / "no" / "m.pt").is_file(), out.stderr[-2000:]
    out = cli("fit", "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "d.npz" / "m.pt"), *tiny)
    assert out.returncode == 2 and "d.npz is a file, not a directory" in out.stderr and "Traceback" not in out.stderr
    assert cli("fit", "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m.pt"), *tiny).returncode == 0
    again = cli("fit", "--dataset", str(tmp_path / "d.npz"), "--out", str(tmp_path / "m.pt"), *tiny)
    assert again.returncode == 2 and "--resume" in again.stderr  # never silently replaced
    bad = cli("generate", "--model", str(tmp_path / "m.pt"), "--rows", "10", "--out", str(tmp_path / "g.parquet"))
    assert bad.returncode == 2 and "unknown dataset suffix '.parquet'" in bad.stderr


def test_mujoco_deprecation_noise_is_gone(tmp_path) -> None:
    out = cli("collect", "--env", "HalfCheetah-v5", "--steps", "50", "--out", str(tmp_path / "c.npz"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "settotalmass" not in out.stdout + out.stderr
    with np.load(tmp_path / "c.npz") as f:
        assert f["observations"].shape == (50, 17)


def test_outputs_into_missing_folders_are_written_and_a_file_in_the_way_is_named(tmp_path, monkeypatch) -> None:
    """``--out results/x.npz`` with no results/ yet works, from the CLI and the Python API alike."""
    from synther_fast.data import load_dataset, save_dataset

    monkeypatch.chdir(tmp_path)
    out = cli("collect", "--env", "Hopper-v5", "--steps", "40", "--out", "results/c.npz", "deep/er/c.hdf5")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "wrote 40 transitions to results/c.npz" in out.stdout and "wrote 40 transitions to deep/er/c.hdf5" in out.stdout
    data = load_dataset("deep/er/c.hdf5")
    assert len(data) == 40 and len(load_dataset("results/c.npz")) == 40
    save_dataset(data, tmp_path / "api" / "c.npz")
    assert len(load_dataset(tmp_path / "api" / "c.npz")) == 40
    Path("blocker").write_text("a file")
    bad = cli("collect", "--env", "Hopper-v5", "--steps", "40", "--out", "blocker/c.npz")
    assert bad.returncode == 2 and "blocker is a file, not a directory" in bad.stderr and "Traceback" not in bad.stderr
    assert Path("blocker").read_text() == "a file"


def test_agent_phases_pick_one_thread_on_small_machines(monkeypatch) -> None:
    import torch

    from synther_fast.common import devices as runtime

    monkeypatch.setattr(runtime.os, "cpu_count", lambda: 2)
    before = torch.get_num_threads()
    with runtime.torch_threads(0, small_networks=True) as chosen:
        assert chosen == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with runtime.torch_threads(3) as chosen:
        assert chosen == 3
