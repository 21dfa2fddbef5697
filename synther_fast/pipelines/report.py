"""The data-quality report of an offline run directory: its real dataset, its synthetic rows and,
once its agents finished, their learning curves, handed to analysis/quality.py."""

from __future__ import annotations

from pathlib import Path

from synther_fast.analysis.quality import write_report
from synther_fast.config import OfflineConfig
from synther_fast.data.dataset import load_dataset
from synther_fast.data.rows import read_rows
from synther_fast.envs import env_spec
from synther_fast.envs.names import NO_ENV
from synther_fast.runs import RunFiles, read_config
from synther_fast.runs.summaries import OfflineSummary, read_summary


def learning_curves(summary: OfflineSummary) -> dict[str, list[tuple[float, float]]]:
    """Each arm's (update, return) evaluations, for the report's learning-curve figure."""
    curves = {arm: [(e["step"], e["return_mean"]) for e in info.get("evaluations", []) if "return_mean" in e]
              for arm, info in summary.arms.items()}
    return {arm: points for arm, points in curves.items() if points}  # none without an environment


def report_for_run(run_dir: str | Path, out_dir: str | Path | None = None, *, max_rows: int = 5000,
                   seed: int = 0) -> Path:
    """The report of a finished or interrupted offline run directory (its config, dataset,
    synthetic rows and, once the agents finished, summary), in run_dir/report. A pipeline that has
    the rows at hand calls :func:`write_report` instead."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run directory {run_dir} does not exist")
    config = read_config(run_dir, OfflineConfig)
    files = RunFiles(run_dir)
    dataset_path = files.real_dataset(config.dataset)
    if not dataset_path.exists():
        raise FileNotFoundError(f"{dataset_path} does not exist: the run's real dataset is missing")
    from synther_fast.pipelines.offline import kept_data  # offline imports this module (its report phase)

    full = load_dataset(dataset_path)
    dataset, unseen = kept_data(config, full)  # what the run fitted on (its cut or subset), as the run's own report
    if config.env == NO_ENV:  # a dataset alone: as the pipeline decided
        has_terminal = bool(full.terminals.any()) if config.has_terminal is None else config.has_terminal
    else:
        has_terminal = env_spec(config.env, config.has_terminal).has_terminal
    layout = dataset.layout(has_terminal=has_terminal)
    synthetic_path = files["synthetic"]
    if not synthetic_path.is_file():
        raise FileNotFoundError(f"{synthetic_path} does not exist: the run has no synthetic rows "
                                f"(did it train only the 'real' arm, or stop before generating?)")
    synthetic = read_rows(synthetic_path, layout)
    # summary.json appears only once every arm has trained; without it the report has no curves.
    curves, notes = None, []
    try:
        summary = read_summary(run_dir)
    except FileNotFoundError as exc:
        notes.append(f"{exc} (the run has not finished its agents): no learning curves.")
    else:
        if isinstance(summary, OfflineSummary):
            curves = learning_curves(summary)
    model = files["diffusion_model"]
    return write_report(dataset.to_rows(layout), synthetic, layout, config.env,
                        files["report"] if out_dir is None else out_dir,
                        max_rows=max_rows, seed=seed, learning_curves=curves, notes=notes,
                        model_bytes=model.stat().st_size if model.is_file() else None,
                        unseen_rows=full.take(unseen).to_rows(layout) if len(unseen) else None)
