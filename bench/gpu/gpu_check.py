"""The whole GPU check as one deadline-driven command: build, verdicts, benchmarks, in priority order.

Usage (on the GPU machine, from the repository root; results under $OUT):

    OUT=/some/dir python3 bench/gpu/gpu_check.py [--budget 540] [--only STEP,...]

GPU machines have torch, triton, CMake, ninja, pybind11, scikit-build-core, pytest and
pytest-benchmark but no registry and no simulators, and lend ~15 minutes a session in commands of
at most 10. So the check is one command with one deadline (``--budget`` seconds, default 540):

- steps run most important first, each cut at its own limit or at the deadline, whichever comes
  first, by SIGINT (pytest then still writes its junit XML and benchmark JSON), then SIGTERM and
  SIGKILL if it does not stop;
- every step leaves its files under $OUT as it finishes (``NN-step.log``, its XML/JSON), and the
  summary (``summary.txt``) and step table (``steps.json``) are rewritten after every step, so a
  run killed from outside keeps everything finished before the kill;
- compiler caches (Triton, Inductor) and scratch go to /tmp, never under $OUT.

The steps, and the commands they run, are data (:func:`default_steps`), so tests check on a CPU that
every test file, node id and -k expression named here still selects tests (tests/package/test_gpu_check.py)
and that the driver keeps its promises with stub commands.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRATCH = Path("/tmp/synther_gpu_check")
GRACE_S = 20.0  # after SIGINT: time for pytest to write its reports


@dataclass
class Step:
    """One command of the check. ``limit_s``: its own cap (the deadline may cut it sooner)."""

    name: str
    argv: list[str]
    limit_s: float
    outputs: list[str] = field(default_factory=list)  # files under OUT that this step writes
    requires: str | None = None  # a path (relative to the repository) without which it is skipped
    pytest_selection: list[str] = field(default_factory=list)  # for the collection test
    pytest_k: str | None = None
    pytest_marker: str | None = None


def pytest_step(name: str, limit_s: float, selection: list[str], report: str, k: str | None = None,
                marker: str | None = None, benchmark: bool = False) -> Step:
    """A pytest run of ``selection`` (paths relative to the repository) from outside the checkout, so
    that the installed package is imported."""
    argv = [sys.executable, "-m", "pytest", "-c", str(REPO / "pyproject.toml"), "--rootdir", str(REPO),
            "-p", "no:cacheprovider", "-q", "-o", "console_output_style=classic",
            "--basetemp", str(SCRATCH / f"pytest-{name}")]
    if marker:
        argv += ["-m", marker]
    if k:
        argv += ["-k", k]
    if benchmark:
        argv += ["--benchmark-json", "{OUT}/" + report]
    else:
        argv += ["--junitxml", "{OUT}/" + report]
    argv += [str(REPO / s) for s in selection]
    return Step(name, argv, limit_s, outputs=[report], pytest_selection=selection, pytest_k=k, pytest_marker=marker)


# The GPU tests that give the verdicts everything else depends on: the captured online block, the
# captured agents, the prefetcher's static device tensors.
CORE_GPU_TESTS = ["tests/agents/test_sac.py", "tests/agents/test_agents.py", "tests/replay/test_prefetch.py"]
# The other files whose tests run on the GPU when there is one (their gpu-marked full-size tests and
# the small ones that pick CUDA): fused kernels, sampler steps, the diffusion path. What the CPU
# verifies as well (compile checks, precision emulation) is not repeated here.
OTHER_GPU_TESTS = ["tests/kernels/test_fused_linear.py", "tests/kernels/test_edm_step.py", "tests/diffusion/test_gpu_diffusion.py",
                   "tests/diffusion/test_guidance.py"]
# Sampling/training variants still worth a GPU minute; IEEE, 3xTF32 and compiled fp32 were measured
# on 2026-11-24 (bench/RESULTS.md) and are cut.
DIFFUSION_K = "not ieee and not tf32x3 and not compiled-fp32"


def default_steps() -> list[Step]:
    py = sys.executable
    return [
        Step("device", [py, "-c", "import subprocess, torch, triton; "
                        "print(subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version,memory.total', "
                        "'--format=csv,noheader'], capture_output=True, text=True).stdout.strip()); "
                        "print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, "
                        "'device', torch.cuda.get_device_name())"], 30),
        Step("install", [py, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", str(REPO)], 150),
        pytest_step("gpu-tests-core", 120, CORE_GPU_TESTS, "tests-core.xml", marker="gpu"),
        pytest_step("bench-online-learner", 90, ["bench/suites/bench_online.py::test_learner_block"], "bench_online.json",
                    benchmark=True),
        pytest_step("bench-diffusion", 200, ["bench/gpu/bench_diffusion_gpu.py"], "bench_diffusion_gpu.json",
                    k=DIFFUSION_K, benchmark=True),
        Step("online-loop", [py, str(REPO / "bench" / "gpu" / "gpu_online_smoke.py"), "{OUT}/online"], 150,
             outputs=["online/summary.json"], requires=".wheels"),
        pytest_step("gpu-tests-rest", 200, OTHER_GPU_TESTS, "tests-rest.xml"),
        Step("profile", [py, str(REPO / "bench" / "gpu" / "gpu_profile.py")], 120),
    ]


def _environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", MUJOCO_GL="disable",
               TRITON_CACHE_DIR=str(SCRATCH / "triton-cache"),
               TORCHINDUCTOR_CACHE_DIR=str(SCRATCH / "inductor-cache"))
    env.pop("TRITON_INTERPRET", None)
    return env


def _stop(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGINT (pytest writes its reports), then SIGTERM, then SIGKILL, to the step's process group."""
    for sig, wait_s in ((signal.SIGINT, grace_s), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _summary(out: Path, records: list[dict], summary_cmd: list[str] | None) -> None:
    lines = ["GPU check steps (status, seconds, limit):"]
    for r in records:
        lines.append(f"  {r['index']:02d} {r['name']:<22} {r['status']:<10} {r['seconds']:7.1f} s  "
                     f"(limit {r['limit_s']:.0f} s){'  ' + r['note'] if r.get('note') else ''}")
    text = "\n".join(lines) + "\n"
    if summary_cmd is not None:
        junit = sorted(glob.glob(str(out / "tests-*.xml")))
        benches = sorted(glob.glob(str(out / "bench_*.json")))
        try:
            done = subprocess.run(summary_cmd + [*junit, *benches], capture_output=True, text=True, timeout=60)
            text += "\n" + done.stdout + (("\nsummary errors:\n" + done.stderr) if done.returncode else "")
        except (OSError, subprocess.TimeoutExpired) as exc:
            text += f"\nsummary failed: {exc}\n"
    tmp = out / "summary.txt.tmp"
    tmp.write_text(text)
    tmp.replace(out / "summary.txt")
    tmp = out / "steps.json.tmp"
    tmp.write_text(json.dumps(records, indent=1))
    tmp.replace(out / "steps.json")


def run(steps: list[Step], out: Path, budget_s: float, *, grace_s: float = GRACE_S,
        summary_cmd: list[str] | None = None, repo: Path = REPO) -> list[dict]:
    """Run ``steps`` in order under one deadline; returns (and writes) the step records."""
    out.mkdir(parents=True, exist_ok=True)
    (SCRATCH / "work").mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + budget_s
    records: list[dict] = []
    current: dict[str, subprocess.Popen] = {}

    def interrupted(signum, frame):  # killed from outside: stop the step, keep what finished
        proc = current.get("proc")
        if proc is not None:
            _stop(proc, min(grace_s, 10.0))
        _summary(out, records + [{"index": len(records), "name": "(driver)", "status": "killed", "seconds": 0.0,
                                  "limit_s": 0.0, "note": f"signal {signum}"}], summary_cmd)
        sys.exit(128 + signum)

    old = {sig: signal.signal(sig, interrupted) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index, step in enumerate(steps):
            record = {"index": index, "name": step.name, **{k: v for k, v in asdict(step).items()
                                                             if k in ("limit_s", "outputs")}}
            left = deadline - time.monotonic() - grace_s
            if step.requires is not None and not (repo / step.requires).exists():
                record |= {"status": "skipped", "seconds": 0.0, "note": f"{step.requires} is not here"}
            elif left < 5:
                record |= {"status": "skipped", "seconds": 0.0, "note": "no time left before the deadline"}
            else:
                limit = min(step.limit_s, left)
                argv = [a.replace("{OUT}", str(out)) for a in step.argv]
                log = out / f"{index:02d}-{step.name}.log"
                start = time.monotonic()
                with open(log, "w") as handle:
                    handle.write("$ " + " ".join(argv) + "\n")
                    handle.flush()
                    proc = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, cwd=SCRATCH / "work",
                                            env=_environment(), start_new_session=True)
                    current["proc"] = proc
                    try:
                        rc = proc.wait(limit)
                        status = "ok" if rc == 0 else "failed"
                    except subprocess.TimeoutExpired:
                        _stop(proc, grace_s)
                        rc, status = proc.returncode, "cut"
                    current.pop("proc", None)
                record |= {"status": status, "rc": rc, "seconds": time.monotonic() - start, "limit_s": limit,
                           "note": "stopped at its limit" if status == "cut" else ""}
                if step.name == "install" and status != "ok":
                    records.append(record)
                    _summary(out, records, summary_cmd)
                    break  # nothing else can run without the package
            records.append(record)
            _summary(out, records, summary_cmd)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", type=float, default=540.0, help="seconds for the whole check")
    parser.add_argument("--only", default=None, help="comma-separated step names (default: all)")
    parser.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu_check"), help="results folder ($OUT)")
    args = parser.parse_args()
    steps = default_steps()
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {s.name for s in steps})
        if unknown:
            parser.error(f"unknown steps {unknown}; the steps are {[s.name for s in steps]}")
        steps = [s for s in steps if s.name in wanted]
    summary = [sys.executable, str(REPO / "bench" / "gpu" / "gpu_summary.py")]
    records = run(steps, Path(args.out), args.budget, summary_cmd=summary)
    print((Path(args.out) / "summary.txt").read_text())
    sys.exit(0 if all(r["status"] in ("ok", "skipped") for r in records) else 1)


if __name__ == "__main__":
    main()
