"""The tiny configs of the test suite, declared once: seconds on 2 CPU cores, real code paths.

Each is a dict of (dotted) overrides; a test module adds only what it changes. They start from
the package's own ``tiny`` preset table (synther_fast.config.TINY, what ``--preset tiny`` sets)
and change only what the tests need: random collection (no policy file), no report, and for the
online loop a smaller refit at UTD 4.
"""

from __future__ import annotations

from synther_fast.config import TINY

SYNTHER = dict(TINY["fit"])  # SynthERConfig keys, on the quick preset

OFFLINE = {  # OfflineConfig keys, on offline_quick (no report: test_offline's end-to-end test asks for it)
    "collect_method": "random", **TINY["offline"], "report": False,
    **{f"synther.{k}": SYNTHER[k] for k in ("denoiser.width", "denoiser.depth", "denoiser.dim_t", "trainer.steps",
                                             "edm.num_steps")},
    "synther.trainer.log_every": 20,
}

ONLINE = {  # OnlineConfig keys, on online_quick(algo)
    **TINY["online"], "sac.utd": 4, "sac.policy_update_delay": 4,
    "synther.denoiser.width": 32, "synther.denoiser.depth": 1, "synther.denoiser.dim_t": 16,
    "synther.trainer.steps": 30, "synther.trainer.log_every": 10, "synther.edm.num_steps": 4,
    "synther.generation.chunk_size": 200,
}
