"""Every file a run directory can hold: its name, its format, who writes it and who reads it.

The pipelines, the report and the sweeps reach a run's files only through this table
(:func:`artifact_path`, or :meth:`synther_fast.runs.Run.artifact`), so a name or a format is
written down once. ``tests/test_artifacts.py`` checks that every file a finished offline and online
run leaves is in the table.

Synthetic rows have one file format, the package's dataset file (:func:`write_rows` /
:func:`read_rows`); files of earlier releases (a bare ``rows`` array) are still read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synther_fast.data.dataset import Dataset, DatasetError, load_dataset, save_dataset
from synther_fast.replay.layout import TransitionLayout


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
    "summary": Artifact("summary.json", "OfflineSummary / OnlineSummary JSON (summaries.py)",
                        "offline.run_offline, online.run_online", "summaries.read_summary (CLI, sweeps, report)"),
    # offline runs (offline.py)
    "dataset": Artifact("dataset.npz", "dataset file (data.save_dataset)", "offline (collection phase)",
                        "offline (resume), analysis.report_for_run"),
    "diffusion_model": Artifact("synther.pt", "SynthER model file (SynthER.save)", "offline (diffusion phase)",
                                "offline (resume), synther-fast generate"),
    "diffusion_checkpoint": Artifact("synther.ckpt", "SynthER training checkpoint", "SynthER.fit",
                                     "SynthER.fit (resume)"),
    "synthetic": Artifact("synthetic.npz", "dataset file of the synthetic rows (artifacts.write_rows)",
                          "offline (generate phase)", "offline (resume), analysis.report_for_run"),
    "fidelity": Artifact("fidelity.json", "JSON: marginal fidelity per column", "offline.run_offline", "users"),
    "agent": Artifact("agent_{arm}.ckpt", "torch checkpoint of kind offline_agent (Run.save_checkpoint)",
                      "offline (agent phases)", "offline (resume)"),
    "report": Artifact("report", "folder: report.md, report.json, PNG figures", "analysis.write_report",
                       "users"),
    "seed_summary": Artifact("summary_seeds.json", "JSON: mean ± std over seeds (summaries.aggregate_seeds)",
                             "offline.run_offline_seeds (in the parent of the seed runs)", "users"),
    "demo_table": Artifact("demo_table.txt", "the printed table of synther-fast demo", "cli.Demo", "users"),
    # online runs (online.py)
    "online_checkpoint": Artifact("online.ckpt", "torch checkpoint of kind online (agent, sampler, OnlineState)",
                                  "online.OnlineRun.save", "online.OnlineRun.restore"),
    "real_replay": Artifact("real.replay", "replay snapshot (ReplayBuffer.save)", "online.OnlineRun.save",
                            "online.OnlineRun.restore"),
    "refit_model": Artifact("synther_{k}.pt", "SynthER model file of refit k", "refit.Refitter", "users"),
    "refit_rows": Artifact("synthetic_{k}.replay", "replay snapshot of refit k's rows", "refit.Refitter",
                           "refit.Refitter (resume)"),
    "refit_info": Artifact("synthetic_{k}.json", "JSON: refit k's numbers; written last, it marks the refit done",
                           "refit.Refitter", "refit.Refitter (resume)"),
    "learning_curve": Artifact("learning_curve.png", "PNG: return against environment steps", "online.run_online",
                               "users"),
}


def artifact_path(run_dir: str | os.PathLike[str], name: str, **keys: Any) -> Path:
    """The path of artefact ``name`` in ``run_dir`` (``arm=`` / ``k=`` fill the pattern)."""
    try:
        pattern = ARTIFACTS[name].pattern
    except KeyError:
        raise KeyError(f"unknown run artefact {name!r}; known: {', '.join(ARTIFACTS)}") from None
    return Path(run_dir) / pattern.format(**keys)


def unlisted_files(run_dir: str | os.PathLike[str]) -> list[str]:
    """Top-level entries of ``run_dir`` that match no artefact of the table (a check that the table
    is complete; temporary files of an atomic write in progress are ignored)."""
    patterns = [re.compile(re.escape(a.pattern).replace(r"\{arm\}", r"[a-z]+").replace(r"\{k\}", r"\d+") + "$")
                for a in ARTIFACTS.values()]
    return sorted(p.name for p in Path(run_dir).iterdir()
                  if not p.name.endswith(".tmp") and not any(r.match(p.name) for r in patterns))


def write_rows(rows: np.ndarray, layout: TransitionLayout, path: str | os.PathLike[str]) -> Path:
    """Synthetic rows as a dataset file (atomically): the one file format for generated rows."""
    return save_dataset(Dataset.from_rows(rows, layout), path)


def read_rows(path: str | os.PathLike[str], layout: TransitionLayout) -> np.ndarray:
    """Rows of a dataset file in ``layout``; a file of earlier releases (one ``rows`` array) too."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            if "rows" in f.files and "observations" not in f.files:  # synther_fast <= 0.2
                rows = np.asarray(f["rows"], np.float32)
                if rows.ndim != 2 or rows.shape[1] != layout.width:
                    raise DatasetError(f"{path}: rows of shape {rows.shape} do not fit a layout of width "
                                       f"{layout.width}")
                return rows
    dataset = load_dataset(path)
    if (dataset.obs_dim, dataset.act_dim) != (layout.obs_dim, layout.act_dim):
        raise DatasetError(f"{path}: observations of {dataset.obs_dim} and actions of {dataset.act_dim} "
                           f"dimensions do not fit the layout ({layout.obs_dim}, {layout.act_dim})")
    return dataset.to_rows(layout)
