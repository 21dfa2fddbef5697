#!/usr/bin/env bash
# One command for a GPU machine that has torch, triton, CMake, ninja, pybind11, scikit-build-core,
# pytest and pytest-benchmark but no registry access (and no simulators): build and install the
# package without fetching anything, run the `gpu` tests, run the GPU benchmarks, print one table.
# Usage: bash bench/gpu_check.sh [all|tests|bench|extra]   (results under $OUT, default /tmp/gpu_check)
# "tests" (gpu tests), "bench" (diffusion sampling/training benchmarks) and "extra" (agent and CPU
# diffusion benchmarks, the profile) split the work for callers limited to ~10 minutes per command;
# the install runs in each stage (a few seconds).
set -uo pipefail
STAGE="${1:-all}"
# Each step is cut at LIMIT seconds so that a hung benchmark still leaves the summary (and $OUT)
# inside a 10-minute call; raise it for an unhurried "all".
LIMIT="${LIMIT:-480}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" | tee -a "$OUT/device.txt"

echo "== build and install (no deps, no build isolation)"
python3 -m pip install --no-deps --no-build-isolation --no-index "$REPO" > "$OUT/install.log" 2>&1 \
  || { tail -30 "$OUT/install.log"; exit 1; }
cd "$OUT"  # never import the bare source tree
python3 -c "import synther_fast._replay, synther_fast.kernels.fused_linear; print('installed', synther_fast.__file__)" \
  || exit 1

if [[ "$STAGE" == all || "$STAGE" == tests ]]; then
echo "== tests (GPU-capable files; the simulator tests need gymnasium, absent here)"
TESTS=(test_fused_linear.py test_precision.py test_compile_check.py test_edm_step.py test_gpu_diffusion.py test_agents.py test_prefetch.py
       test_replay_buffer.py test_mixed_sampler.py test_edm.py test_diffusion_parts.py test_synther_api.py
       test_sac.py test_config.py test_runs.py)
timeout "$LIMIT" python3 -m pytest -c "$REPO/pyproject.toml" --rootdir "$REPO" -p no:cacheprovider -q \
  --junitxml "$OUT/tests.xml" "${TESTS[@]/#/$REPO/tests/}" 2>&1 | tail -25

fi

if [[ "$STAGE" == all || "$STAGE" == bench ]]; then
echo "== diffusion benchmarks"
timeout "$LIMIT" python3 -m pytest -c "$REPO/pyproject.toml" --rootdir "$REPO" -p no:cacheprovider -q \
  "$REPO/bench/bench_diffusion_gpu.py" --benchmark-json "$OUT/bench_diffusion_gpu.json" 2>&1 | tail -5
fi

if [[ "$STAGE" == all || "$STAGE" == extra ]]; then
echo "== agent benchmarks"
timeout "$LIMIT" python3 -m pytest -c "$REPO/pyproject.toml" --rootdir "$REPO" -p no:cacheprovider -q \
  "$REPO/bench/bench_agents.py" "$REPO/bench/bench_diffusion.py" "$REPO/bench/bench_online.py::test_learner_block" \
  --benchmark-json "$OUT/bench_agents.json" 2>&1 | tail -5
echo "== profile (what limits each path)"
timeout "$LIMIT" python3 "$REPO/bench/gpu_profile.py" > "$OUT/profile.txt" 2>&1 || echo "profile failed: see profile.txt"
tail -60 "$OUT/profile.txt"

fi

echo "== summary"
shopt -s nullglob
python3 "$REPO/bench/gpu_summary.py" "$OUT/tests.xml" "$OUT"/bench_*.json | tee "$OUT/summary.txt"
