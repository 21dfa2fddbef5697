"""The run directory: one owner for every file a run writes and reads.

- ``files``: the table of a run's files (:class:`RunFiles`), and where runs go;
- ``run``: :class:`Run` (config, phase bookkeeping, checkpoints);
- ``metrics``: :class:`MetricsLog`, given only a folder;
- ``summaries``: what a finished run reports (``summary.json``) and the aggregation over seeds.

Nothing outside this package builds a path inside a run directory.
"""

from synther_fast.runs.files import (
    ARTIFACTS,
    RunError,
    RunFiles,
    artifact_path,
    default_run_dir,
    mode_of,
    safe_name,
    seed_dir,
    unlisted_files,
)
from synther_fast.runs.metrics import MetricsLog
from synther_fast.runs.run import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, Run, read_checkpoint, read_config

__all__ = [
    "ARTIFACTS",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "MetricsLog",
    "Run",
    "RunError",
    "RunFiles",
    "artifact_path",
    "default_run_dir",
    "mode_of",
    "read_checkpoint",
    "read_config",
    "safe_name",
    "seed_dir",
    "unlisted_files",
]
