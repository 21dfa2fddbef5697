"""A short real online run on the GPU machine (run by bench/gpu/gpu_check.py): SAC + SynthER on Hopper-v5,
quick preset cut to 3000 environment steps (1000 random, then UTD 20, one refit at 2000), on CUDA.

The GPU machines have no simulators and no registry: the cp312 wheels of gymnasium, mujoco (<4) and
their pure-Python dependencies are carried in ``.wheels/`` (the recipe is in the README's GPU check
section) and installed here without an index. Prints the run's summary (return, seconds per phase, critic
updates per learner second, the learner time being device time from CUDA events).

Usage: python bench/gpu/gpu_online_smoke.py RUN_DIR
"""

from __future__ import annotations

import glob
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main() -> None:
    run_dir = Path(sys.argv[1])
    try:
        import gymnasium  # noqa: F401
    except ImportError:
        wheels = sorted(glob.glob(str(REPO / ".wheels" / "*.whl")))
        if not wheels:
            sys.exit("no gymnasium and no .wheels/ folder to install it from")
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", *wheels], check=True)
    from synther_fast.config import online_quick
    from synther_fast.pipelines.online import run_online

    config = online_quick("sac-synther").with_overrides(env="Hopper-v5", env_steps=3000, device="cuda",
                                                        eval_every=1000, eval_episodes=2)
    result = run_online(config, run_dir, resume=(run_dir / "config.json").exists(), progress=False)
    keys = ("final_return_mean", "critic_updates", "seconds", "critic_updates_per_learner_second", "device")
    print(json.dumps({k: result.summary[k] for k in keys}, indent=1))


if __name__ == "__main__":
    main()
