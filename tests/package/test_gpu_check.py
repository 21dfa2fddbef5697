"""The GPU check driver (bench/gpu/gpu_check.py), proven on the CPU with stub commands: every step's
files land as it finishes, the summary is rewritten after each step, a step past its limit is
stopped with SIGINT (so pytest still writes its report), a kill from outside keeps what finished;
and every test file, node id and -k expression the driver names still selects tests here, so a
renamed test fails on the CPU rather than on a scarce GPU."""

from __future__ import annotations

import importlib.util
import json
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "gpu" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gpu_check = load("gpu_check")
gpu_summary = load("gpu_summary")


def py(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


@pytest.mark.slow
@pytest.mark.parametrize("step", [s for s in gpu_check.default_steps() if s.pytest_selection], ids=lambda s: s.name)
def test_every_selection_the_driver_names_collects_tests(step, tmp_path) -> None:
    for item in step.pytest_selection:
        assert (REPO / item.split("::")[0]).is_file(), f"{step.name}: {item} does not exist"
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
            "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO)]
    argv += ["-m", step.pytest_marker] if step.pytest_marker else []
    argv += ["-k", step.pytest_k] if step.pytest_k else []
    # From outside the checkout, as the driver runs it: `python -m` puts the working directory on
    # sys.path, and from the repository root the bare source tree would shadow the installed package.
    done = subprocess.run(argv + [str(REPO / s) for s in step.pytest_selection], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    for item in step.pytest_selection:  # every file (or node id) contributes at least one test
        assert any(item.split("/")[-1] in line for line in ids), f"{step.name}: {item} selects nothing"
    if step.pytest_k == gpu_check.DIFFUSION_K:  # the cut variants really are cut
        assert not any(re.search(r"ieee|tf32x3|compiled-fp32", line) for line in ids)
        assert any("fused-graph-tf32]" in line for line in ids) and any("matmul_rate" in line for line in ids)


def test_steps_are_in_priority_order_within_the_budget() -> None:
    names = [s.name for s in gpu_check.default_steps()]
    assert names[:5] == ["device", "install", "gpu-tests-core", "bench-online-learner", "bench-diffusion"]
    assert names.index("online-loop") < names.index("gpu-tests-rest") < names.index("profile")


def stub_pytest(tmp_path: Path) -> list[str]:
    """A pytest run (in a folder of its own) whose second test hangs until it is interrupted."""
    folder = tmp_path / "stub_tests"
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n")
    (folder / "test_stub.py").write_text("import time\n\ndef test_fast():\n    pass\n\n"
                                         "def test_hangs():\n    time.sleep(120)\n")
    return [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c", str(folder / "pytest.ini"),
            "--rootdir", str(folder), "--junitxml", "{OUT}/tests-stub.xml", str(folder / "test_stub.py")]


@pytest.mark.slow
def test_driver_runs_steps_under_one_deadline_and_keeps_every_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    Step = gpu_check.Step
    steps = [
        Step("writes", py(f"open({str(out / 'a.txt')!r}, 'w').write('done')"), 30),
        Step("fails", py("import sys; print('bad'); sys.exit(3)"), 30),
        Step("pytest-cut", stub_pytest(tmp_path), 12),
        Step("absent", py("pass"), 30, requires="no/such/folder"),
        Step("hangs", py("""
            import signal, sys, time
            def stop(*a):
                open(sys.argv[1], 'w').write('interrupted'); sys.exit(130)
            signal.signal(signal.SIGINT, stop)
            time.sleep(120)
        """) + [str(out / "partial.txt")], 60),
        Step("too-late", py("pass"), 30),
    ]
    summary_cmd = py("import sys; print('SUMMARY OF', len(sys.argv) - 1, 'files')")
    start = time.monotonic()
    records = gpu_check.run(steps, out, budget_s=25, grace_s=4, summary_cmd=summary_cmd, repo=tmp_path)
    assert time.monotonic() - start < 40
    status = {r["name"]: r["status"] for r in records}
    assert status == {"writes": "ok", "fails": "failed", "pytest-cut": "cut", "absent": "skipped",
                      "hangs": "cut", "too-late": "skipped"}, records
    assert (out / "a.txt").read_text() == "done"
    assert (out / "partial.txt").read_text() == "interrupted"  # SIGINT reached the step
    junit = (out / "tests-stub.xml").read_text()  # pytest, interrupted, still wrote its report
    assert "test_fast" in junit
    assert "bad" in (out / "01-fails.log").read_text()
    summary = (out / "summary.txt").read_text()
    assert "SUMMARY OF 1 files" in summary and "too-late" in summary and "no time left" in summary
    assert json.loads((out / "steps.json").read_text()) == records


def test_a_kill_from_outside_keeps_what_finished(tmp_path: Path) -> None:
    out = tmp_path / "out"
    script = tmp_path / "drive.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO / 'bench' / 'gpu')!r})
        from pathlib import Path
        import gpu_check
        Step = gpu_check.Step
        out = Path({str(out)!r})
        steps = [Step("first", [sys.executable, "-c", "open({str(out / 'first.txt')!r}, 'w').write('1')"], 30),
                 Step("second", [sys.executable, "-c", "import time; time.sleep(120)"], 120)]
        gpu_check.run(steps, out, budget_s=200, grace_s=2)
    """))
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if out.exists():
            for f in out.iterdir():
                f.unlink()
        driver = subprocess.Popen([sys.executable, str(script)])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            steps = out / "steps.json"
            if steps.exists() and '"first"' in steps.read_text() and (out / "01-second.log").exists():
                break
            time.sleep(0.2)
        else:
            driver.kill()
            pytest.fail("the driver never reached its second step")
        driver.send_signal(sig)
        driver.wait(30)
        assert (out / "first.txt").read_text() == "1"
        records = json.loads((out / "steps.json").read_text())
        assert records[0]["name"] == "first" and records[0]["status"] == "ok"
        assert "first" in (out / "summary.txt").read_text()
        if sig == signal.SIGTERM:  # handled: the step is stopped and the kill recorded
            assert records[-1]["status"] == "killed"
            assert driver.returncode == 128 + signal.SIGTERM


def test_summary_reads_groupless_benchmarks_and_partial_results(tmp_path: Path, capsys) -> None:
    bench = tmp_path / "bench_online.json"
    bench.write_text(json.dumps({"benchmarks": [
        {"name": "test_learner_block[fast-sac-utd20]", "group": None, "stats": {"median": 0.004},
         "extra_info": {"rows_per_call": 20, "unit": "critic updates/s"}},
        {"name": "test_learner_block[reference-sac-utd20]", "stats": {"median": 0.04},
         "extra_info": {"rows_per_call": 20, "unit": "critic updates/s"}},
    ]}))
    junit = tmp_path / "tests-core.xml"
    junit.write_text('<testsuites><testsuite tests="2" failures="1" errors="0" skipped="0">'
                     '<testcase classname="tests.test_sac" name="test_block"><failure message="boom"/></testcase>'
                     '<testcase classname="tests.test_sac" name="test_ok"/></testsuite></testsuites>')
    gpu_summary.main([str(junit), str(tmp_path / "tests-rest.xml"), str(bench), str(tmp_path / "bench_missing.json")])
    text = capsys.readouterr().out
    assert "FAIL tests.test_sac.test_block: boom" in text
    assert "no results in" in text and "tests-rest.xml" in text and "bench_missing.json" in text
    assert "5,000.0 critic updates/s" in text
    assert "10.00x vs the reference" in text
