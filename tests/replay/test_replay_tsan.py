"""The ring's seqlock under ThreadSanitizer: the stress program must run race-free with no torn
rows, and a deliberately unsynchronised variant must be reported (so the detector is live)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

CSRC = Path(__file__).resolve().parents[2] / "csrc"
CXX = shutil.which("g++") or shutil.which("clang++")

pytestmark = pytest.mark.skipif(
    CXX is None or not (CSRC / "stress" / "stress_ring.cpp").exists(),
    reason="needs a C++ compiler and the csrc/ sources (a source checkout)",
)


def build(tmp_path: Path, *defines: str) -> Path:
    exe = tmp_path / ("stress" + "".join(d.lower() for d in defines))
    cmd = [CXX, "-std=c++17", "-O1", "-g", "-fsanitize=thread", "-pthread", "-Wno-tsan",
           f"-I{CSRC}", *(f"-D{d}" for d in defines), str(CSRC / "stress" / "stress_ring.cpp"),
           "-o", str(exe)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0 and "unrecognized command-line option '-Wno-tsan'" in result.stderr:
        cmd.remove("-Wno-tsan")
        result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return exe


def run(exe: Path, rows: int) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), str(rows)], capture_output=True, text=True, timeout=300,
                          env={"TSAN_OPTIONS": "halt_on_error=0 exitcode=66"})


def test_ring_is_race_free_under_tsan(tmp_path) -> None:
    result = run(build(tmp_path), rows=40_000)
    assert "ThreadSanitizer" not in result.stderr, result.stderr[-4000:]
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    assert "torn 0" in result.stdout


def test_tsan_reports_an_unsynchronised_copy(tmp_path) -> None:
    result = run(build(tmp_path, "STRESS_UNSYNCHRONISED_READ"), rows=40_000)
    assert "WARNING: ThreadSanitizer: data race" in result.stderr
