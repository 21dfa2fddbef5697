"""Environment make time and steps/s through the factory of an earlier commit and of this tree,
in one process (issue 22: opening the factory must not slow the tested tasks).

Usage: python bench/studies/envs_before_after.py REV OUT.json [--reverse]
(REV: the commit before the change; --reverse measures this tree first, to see order effects.)
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from synther_fast.envs import factory as new


def old_factory(rev: str):
    source = subprocess.run(["git", "show", f"{rev}:synther_fast/envs/factory.py"], capture_output=True, text=True,
                            check=True, cwd=Path(__file__).resolve().parents[2]).stdout
    path = Path(tempfile.mkdtemp()) / "old_factory.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_factory", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_factory"] = module
    spec.loader.exec_module(module)
    return module


def main() -> None:
    rev, out_path = sys.argv[1], sys.argv[2]
    factories = [("before", old_factory(rev)), ("after", new)]
    if "--reverse" in sys.argv:
        factories.reverse()
    out = {}
    for name in ("HalfCheetah-v5", "dmc:cheetah-run"):
        for label, module in factories:
            start = time.perf_counter()
            env = module.make_env(name, seed=0)
            make_s = time.perf_counter() - start
            rates = []
            for r in range(5):
                env.reset(seed=r)
                actions = np.random.default_rng(r).uniform(-1, 1, (1000, env.action_space.shape[0]))
                start = time.perf_counter()
                for a in actions:
                    env.step(a)
                rates.append(1000 / (time.perf_counter() - start))
            out[f"{name} {label}"] = {"make_seconds": make_s, "steps_per_second_median": float(np.median(rates))}
            print(f"{name} {label}: make {make_s * 1000:.1f} ms, {np.median(rates):.0f} steps/s (median of 5 x 1000)")
    Path(out_path).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
