"""What a finished run reports: typed offline and online summaries (``summary.json``), their
scores, and the one aggregation over seeds (``--seeds``, sweeps).

A summary reads like the JSON it is stored as (``summary["arms"]``, ``summary.get("seconds")``)
and has one :meth:`scores` method: one :class:`Score` per data arm (offline) or one for the run
(online). :func:`aggregate_scores` turns the scores of several seeds into mean ± std; the CLI, the
offline seed runs and the sweeps all use it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synther_fast.common.io import write_json
from synther_fast.common.tables import markdown_table
from synther_fast.runs.files import artifact_path


@dataclass(frozen=True)
class Score:
    """The final evaluation of one agent: mean (and spread) of its episode returns, and the
    D4RL-normalised score where D4RL defines the task."""

    arm: str
    """the offline data arm ('real', 'synthetic', 'mixed'); '' for an online run"""
    return_mean: float | None
    """None: not evaluated (an offline run on a dataset alone, --env none)"""
    return_std: float | None
    normalized: float | None


@dataclass(frozen=True)
class _Summary:
    """What every run reports first (task, algorithm, seed, preset), and field access by key, as
    the JSON reads (``summary["arms"]``)."""

    env: str
    algo: str
    seed: int
    preset: str

    def __getitem__(self, key: str) -> Any:
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default) if key in self.keys() else default

    def keys(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self)]  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.KIND, **{k: getattr(self, k) for k in self.keys()}}  # type: ignore[attr-defined]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        missing = [f.name for f in dataclasses.fields(cls)  # type: ignore[arg-type]
                   if f.name not in data and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        if missing:
            raise ValueError(f"not a {cls.__name__}: missing {missing}")
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class OfflineSummary(_Summary):
    """An offline run: the dataset, the synthetic rows' fidelity, and each arm's final agent."""

    KIND = "offline"
    dataset: dict[str, Any]
    """rows, source, mean episode return"""
    arms: dict[str, dict[str, Any]]
    """per arm: ratio, updates, return_mean/std, normalized_score, updates_per_second, evaluations"""
    synthetic_rows: int | None = None
    fidelity: dict[str, Any] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    guidance: dict[str, Any] | None = None
    """guided generation only: its kind, the condition generated at and the data's conditions"""
    synther_seed: int | None = None
    """the diffusion fit's effective seed (synther.seed, or derived from the run seed where unset)"""
    sampler: dict[str, Any] | None = None
    """the generation sampler: its name, steps and network evaluations per row (nfe)"""

    def scores(self) -> list[Score]:
        return [Score(arm, _float(info.get("return_mean")), _float(info.get("return_std")), info.get("normalized_score"))
                for arm, info in self.arms.items()]

    @property
    def total_seconds(self) -> float:
        return float(sum(self.seconds.values()))


@dataclass(frozen=True)
class OnlineSummary(_Summary):
    """An online run: its final evaluation, counters, every evaluation and refit, and its time."""

    KIND = "online"
    env_steps: int
    episodes: int
    final_return_mean: float
    final_return_std: float
    final_normalized_score: float | None = None
    critic_updates: int = 0
    actor_updates: int = 0
    utd: int = 1
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    refits: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    critic_updates_per_learner_second: float = 0.0
    seconds_total: float | None = None
    """wall time over every process that worked on the run (resumes included)"""
    device: str = "cpu"
    synther_seed: int | None = None
    """the base of every refit's fit seed (synther.seed, or derived from the run seed where unset;
    refit k's own seed is in its record, ``fit_seed``); None without SynthER"""

    def scores(self) -> list[Score]:
        return [Score("", float(self.final_return_mean), float(self.final_return_std), self.final_normalized_score)]

    @property
    def total_seconds(self) -> float | None:
        return self.seconds_total


Summary = OfflineSummary | OnlineSummary


def summary_from_dict(data: dict[str, Any]) -> Summary:
    """A summary from its JSON; files without a ``kind`` (earlier releases) are told apart by shape."""
    kind = data.get("kind", "offline" if "arms" in data else "online")
    cls = {"offline": OfflineSummary, "online": OnlineSummary}.get(kind)
    if cls is None:
        raise ValueError(f"unknown summary kind {kind!r}")
    return cls.from_dict(data)


def read_summary(run_dir: str | os.PathLike[str]) -> Summary:
    """The summary of a finished run (FileNotFoundError if the run has not finished)."""
    path = artifact_path(run_dir, "summary")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the run has not finished")
    try:
        return summary_from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{path}: not a run summary ({exc})") from None


def write_summary(run_dir: str | os.PathLike[str], summary: Summary) -> Path:
    path = artifact_path(run_dir, "summary")
    write_json(path, summary.to_dict())
    return path


# -- several seeds ----------------------------------------------------------------------------------
def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def aggregate_scores(scores: Sequence[Score]) -> dict[str, Any]:
    """Mean ± std (population) of the final returns (of the evaluated seeds) and, where every seed
    has one, of the normalised scores; ``seeds`` counts the scores."""
    returns = np.array([s.return_mean for s in scores if s.return_mean is not None], dtype=float)
    normalized = [s.normalized for s in scores]
    has_normalized = bool(normalized) and None not in normalized
    return {
        "seeds": len(scores),
        "return_mean": float(returns.mean()) if len(returns) else None,
        "return_std": float(returns.std()) if len(returns) else None,
        "normalized_mean": float(np.mean(normalized)) if has_normalized else None,  # type: ignore[arg-type]
        "normalized_std": float(np.std(normalized)) if has_normalized else None,  # type: ignore[arg-type]
    }


def aggregate_seeds(summaries: Sequence[Summary]) -> dict[str, dict[str, Any]]:
    """Per arm ('' for online runs): :func:`aggregate_scores` over the summaries (one per seed)."""
    by_arm: dict[str, list[Score]] = {}
    for summary in summaries:
        for score in summary.scores():
            by_arm.setdefault(score.arm, []).append(score)
    return {arm: aggregate_scores(scores) | {"seeds": [s.seed for s in summaries]} for arm, scores in by_arm.items()}


def seeds_table(aggregate: dict[str, dict[str, Any]]) -> str:
    """The mean ± std over seeds as a markdown table (the CLI prints it)."""
    rows = []
    for arm, a in aggregate.items():
        norm = "-" if a["normalized_mean"] is None else f"{a['normalized_mean']:.1f} ± {a['normalized_std']:.1f}"
        ret = "-" if a["return_mean"] is None else f"{a['return_mean']:.1f} ± {a['return_std']:.1f}"
        rows.append((arm or "-", ret, norm))
    return "\n".join(markdown_table(["data", "return (mean ± std)", "normalised (mean ± std)"], rows))
