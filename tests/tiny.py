"""The tiny configs of the test suite, declared once: seconds on 2 CPU cores, real code paths.

Each is a dict of (dotted) overrides; a test module adds only what it changes.
"""

from __future__ import annotations

SYNTHER = {  # SynthERConfig keys, on the quick preset
    "denoiser.width": 32, "denoiser.depth": 2, "denoiser.dim_t": 16, "trainer.steps": 40,
    "trainer.batch_size": 32, "trainer.checkpoint_every": 10, "trainer.log_every": 10,
    "edm.num_steps": 6, "generation.chunk_size": 64,
}

OFFLINE = {  # OfflineConfig keys, on offline_quick (no report: test_offline's end-to-end test asks for it)
    "collect_method": "random", "collect_steps": 2000, "agent_steps": 60, "eval_every": 30, "eval_episodes": 1,
    "checkpoint_every": 20, "synthetic_rows": 1000, "report": False,
    "synther.denoiser.width": 32, "synther.denoiser.depth": 2, "synther.denoiser.dim_t": 16,
    "synther.trainer.steps": 40, "synther.trainer.log_every": 20, "synther.edm.num_steps": 6,
}

ONLINE = {  # OnlineConfig keys, on online_quick(algo)
    "env_steps": 300, "sac.start_steps": 100, "sac.utd": 4, "sac.policy_update_delay": 4,
    "sac.hidden": (32, 32), "sac.batch_size": 32, "retrain_every": 150, "num_samples": 400,
    "synthetic_capacity": 1000, "real_capacity": 1000, "eval_every": 150, "eval_episodes": 1,
    "checkpoint_every": 60, "synther.denoiser.width": 32, "synther.denoiser.depth": 1,
    "synther.denoiser.dim_t": 16, "synther.trainer.steps": 30, "synther.trainer.log_every": 10,
    "synther.edm.num_steps": 4, "synther.generation.chunk_size": 200,
}
