"""Every file a run directory can hold (its name, format, writer and readers), and the one place
that builds run-directory paths.

A run's files are reached only through :class:`RunFiles` (``Run.files``; :func:`artifact_path` for a
directory without an open Run), so a name or a format is written down once. Where runs go is named
here too (:func:`default_run_dir`, :func:`seed_dir`). The offline and online pipeline tests
(tests/pipelines/) check with :func:`unlisted_files` that every file a finished run leaves is in the table.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synther_fast.config import OfflineConfig, OnlineConfig


class RunError(ValueError):
    """A run directory that cannot be used as asked (another run's config, a damaged checkpoint)."""


@dataclass(frozen=True)
class Artifact:
    pattern: str
    """file name inside the run directory; ``{arm}`` / ``{k}`` are filled in by artifact_path"""
    format: str
    writer: str
    readers: str


ARTIFACTS: dict[str, Artifact] = {
    # every run (runs.Run)
    "config": Artifact("config.json", "versioned config JSON (config_to_dict)", "runs.Run.open",
                       "runs.Run.open, runs.read_config (report, sweeps)"),
    "state": Artifact("state.json", "JSON: finished phases and their results, seconds per phase", "runs.Run",
                      "runs.Run.open"),
    "metrics": Artifact("metrics.jsonl", "one JSON record per line", "runs.MetricsLog", "runs.MetricsLog, users"),
    "metrics_csv": Artifact("metrics.csv", "CSV (phase, step, name, value)", "runs.MetricsLog", "users"),
    "tensorboard": Artifact("tensorboard", "TensorBoard event folder (when installed)", "runs.MetricsLog",
                            "TensorBoard"),
    "wandb": Artifact("wandb", "Weights & Biases folder (--wandb only)", "runs.MetricsLog", "wandb sync"),
    "summary": Artifact("summary.json", "OfflineSummary / OnlineSummary JSON (runs/summaries.py)",
                        "pipelines.offline, pipelines.online", "runs.read_summary (CLI, sweeps, report)"),
    # offline runs (pipelines/offline.py)
    "dataset": Artifact("dataset.npz", "dataset file (data.save_dataset)", "pipelines.offline (collection phase)",
                        "offline (resume), pipelines.report.report_for_run"),
    "diffusion_model": Artifact("synther.pt", "SynthER model file (SynthER.save)", "offline (diffusion phase)",
                                "offline (resume), synther-fast generate"),
    "diffusion_checkpoint": Artifact("synther.ckpt", "SynthER training checkpoint", "SynthER.fit",
                                     "SynthER.fit (resume)"),
    "synthetic": Artifact("synthetic.npz", "dataset file of the synthetic rows (data.rows.write_rows)",
                          "offline (generate phase)", "offline (resume), pipelines.report.report_for_run"),
    "fidelity": Artifact("fidelity.json", "JSON: marginal fidelity per column", "pipelines.offline.run_offline", "users"),
    "agent": Artifact("agent_{arm}.ckpt", "torch checkpoint of kind offline_agent (Run.save_checkpoint)",
                      "offline (agent phases)", "offline (resume)"),
    "report": Artifact("report", "folder: report.md, report.json, PNG figures", "analysis.quality.write_report",
                       "users"),
    "seed_summary": Artifact("summary_seeds.json", "JSON: mean ± std over seeds (runs.summaries.aggregate_seeds)",
                             "pipelines.offline.run_offline_seeds (in the parent of the seed runs)", "users"),
    "demo_table": Artifact("demo_table.txt", "the printed table of synther-fast demo", "cli.Demo", "users"),
    # online runs (pipelines/online.py)
    "online_checkpoint": Artifact("online.ckpt", "torch checkpoint of kind online (agent, sampler, OnlineState)",
                                  "pipelines.online.OnlineRun.save", "pipelines.online.OnlineRun.restore"),
    "real_replay": Artifact("real.replay", "replay snapshot (ReplayBuffer.save)", "pipelines.online.OnlineRun.save",
                            "pipelines.online.OnlineRun.restore"),
    "refit_model": Artifact("synther_{k}.pt", "SynthER model file of refit k", "pipelines.refit.Refitter", "users"),
    "refit_rows": Artifact("synthetic_{k}.replay", "replay snapshot of refit k's rows", "pipelines.refit.Refitter",
                           "pipelines.refit.Refitter (resume)"),
    "refit_info": Artifact("synthetic_{k}.json", "JSON: refit k's numbers; written last, it marks the refit done",
                           "pipelines.refit.Refitter", "pipelines.refit.Refitter (resume)"),
    "learning_curve": Artifact("learning_curve.png", "PNG: return against environment steps", "pipelines.online.run_online",
                               "users"),
}


class RunFiles:
    """The paths of one run directory's files, by their names in :data:`ARTIFACTS`, resolved once.

    ``files["config"]`` for a file with a fixed name; ``files.path("agent", arm="real")`` for one
    with a pattern; :meth:`refit` for the three files of one online refit."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._fixed = {name: self.root / a.pattern for name, a in ARTIFACTS.items() if "{" not in a.pattern}

    def __getitem__(self, name: str) -> Path:
        try:
            return self._fixed[name]
        except KeyError:
            if name in ARTIFACTS:
                raise KeyError(f"run artefact {name!r} has a pattern ({ARTIFACTS[name].pattern}): use "
                               f"RunFiles.path({name!r}, ...)") from None
            raise KeyError(f"unknown run artefact {name!r}; known: {', '.join(ARTIFACTS)}") from None

    def path(self, name: str, **keys: Any) -> Path:
        """The path of artefact ``name`` (``arm=`` / ``k=`` fill its pattern)."""
        if not keys:
            return self[name]
        try:
            pattern = ARTIFACTS[name].pattern
        except KeyError:
            raise KeyError(f"unknown run artefact {name!r}; known: {', '.join(ARTIFACTS)}") from None
        return self.root / pattern.format(**keys)

    def real_dataset(self, given: str | os.PathLike[str] | None) -> Path:
        """An offline run's real dataset: the file it was given (read from there, never copied in; a
        relative path that does not exist from here is taken relative to the run directory), or
        the dataset it collected."""
        if given is None:
            return self["dataset"]
        given = Path(given)
        return given if given.is_absolute() or given.exists() else self.root / given

    def refit(self, k: int) -> tuple[Path, Path, Path]:
        """Online refit k's model, rows and numbers files."""
        return self.path("refit_model", k=k), self.path("refit_rows", k=k), self.path("refit_info", k=k)

    def all_refit_files(self) -> list[Path]:
        """Every refit file in the directory (of any k)."""
        return sorted(stale for name in ("refit_model", "refit_rows", "refit_info")
                      for stale in self.root.glob(ARTIFACTS[name].pattern.format(k="*")))


def artifact_path(run_dir: str | os.PathLike[str], name: str, **keys: Any) -> Path:
    """The path of artefact ``name`` in ``run_dir`` (``arm=`` / ``k=`` fill the pattern)."""
    return RunFiles(run_dir).path(name, **keys)


# -- naming: the one rule for where runs go ----------------------------------------------------------
def safe_name(text: str) -> str:
    """``text`` as one folder name (task names such as dmc:cheetah-run included)."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def mode_of(config: Any) -> str:
    """'offline' or 'online', from the config's class."""
    if isinstance(config, OnlineConfig):
        return "online"
    if isinstance(config, OfflineConfig):
        return "offline"
    raise TypeError(f"not a run config: {type(config).__name__}")


def default_run_dir(config: Any, root: str | os.PathLike[str] = "runs") -> Path:
    """Where a run goes when no directory is given: runs/MODE-TASK-ALGO-PRESET."""
    return Path(root) / f"{mode_of(config)}-{safe_name(config.env)}-{config.algo}-{config.preset}"


def seed_dir(parent: str | os.PathLike[str], seed: int) -> Path:
    """The run of one seed among several (offline --seeds, every sweep cell): PARENT/seed_N."""
    return Path(parent) / f"seed_{seed}"


def unlisted_files(run_dir: str | os.PathLike[str]) -> list[str]:
    """Top-level entries of ``run_dir`` that match no artefact of the table (a check that the table
    is complete; temporary files of an atomic write in progress are ignored)."""
    patterns = [re.compile(re.escape(a.pattern).replace(r"\{arm\}", r"[a-z]+").replace(r"\{k\}", r"\d+") + "$")
                for a in ARTIFACTS.values()]
    return sorted(p.name for p in Path(run_dir).iterdir()
                  if not p.name.endswith(".tmp") and not any(r.match(p.name) for r in patterns))
