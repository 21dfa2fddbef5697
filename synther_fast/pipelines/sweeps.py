"""Sweeps: a grid of offline or online runs (tasks x algorithms x seeds x overrides) on Ray.

Each cell is one ordinary run in its own run directory (``ROOT/TASK/ALGO[/GRID]/seed_N``), started
as a Ray task with the CPUs and GPUs it declares, so Ray packs as many cells as fit on this
machine (local by default) or on a cluster (``address``). A finished cell is read, not rerun; an
interrupted one resumes (run directories already support both); a failed cell is reported and the
others go on. At the end one table, mean +- std over seeds per cell (D4RL-normalised where D4RL
defines the task), is written as markdown, CSV and PNG together with each cell's wall time.

Ray is an optional dependency (``pip install "synther_fast[distributed]"``); it is imported only
when a sweep has cells left to run. Every cell's config is built and checked before anything
starts, so a typo fails at once rather than in every cell.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import itertools
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomllib

from synther_fast.common.io import atomic_write, write_json
from synther_fast.common.tables import markdown_table
from synther_fast.config import (
    PRESETS,
    OfflineConfig,
    OnlineConfig,
    config_differences,
    config_from_dict,
    config_to_dict,
    resolve,
)
from synther_fast.envs.names import check_env_name
from synther_fast.pipelines.offline import run_offline
from synther_fast.pipelines.online import run_online
from synther_fast.runs import read_config, safe_name, seed_dir
from synther_fast.runs.summaries import Summary, aggregate_scores, read_summary

MODES = {"offline": OfflineConfig, "online": OnlineConfig}
SPEC_KEYS = ("mode", "preset", "tasks", "algos", "seeds", "overrides", "grid", "root", "cpus_per_cell",
             "gpus_per_cell")


class SweepError(ValueError):
    """A sweep specification that cannot run: unknown keys, bad values, an unreadable file."""


class RayMissingError(ModuleNotFoundError):
    """Ray (the distributed extra) is needed for a sweep with cells to run and is not installed."""


@dataclass(frozen=True)
class SweepSpec:
    """A grid of runs. Every cell is ``preset`` with ``overrides``, one combination of ``grid``
    values, one task, one algorithm and one seed."""

    mode: str = "offline"
    """'offline' (TD3+BC / IQL on real and synthetic data) or 'online' (SAC / REDQ / SAC+SynthER)"""
    preset: str = "quick"
    """the named preset every cell starts from ('quick' or 'paper')"""
    tasks: tuple[str, ...] = ("HalfCheetah-v5",)
    algos: tuple[str, ...] = ("td3_bc",)
    seeds: tuple[int, ...] = (0,)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """settings of every cell, by (dotted) config key: {"agent_steps": 50000}"""
    grid: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    """settings to vary: one cell per combination of the listed values"""
    root: str = "runs/sweep"
    """where the cells' run directories and the tables go"""
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SweepError(f"sweep mode must be one of {sorted(MODES)}, got {self.mode!r}")
        presets = PRESETS[self.mode]
        if self.preset not in presets:
            raise SweepError(f"unknown {self.mode} preset {self.preset!r}; choose from {sorted(presets)}")
        for name in ("tasks", "algos", "seeds"):
            value = getattr(self, name)
            if isinstance(value, (str, int)) or not len(value):
                raise SweepError(f"sweep {name} must be a non-empty list, got {value!r}")
            if len(set(value)) != len(value):
                raise SweepError(f"sweep {name} lists a value twice: {list(value)}")
        problems: dict[str, str] = {}
        for task in self.tasks:
            try:
                check_env_name(task)
            except ValueError as exc:
                problems[task] = str(exc)
        if problems:
            raise SweepError(f"unknown task(s) {list(problems)}: " + " | ".join(problems.values()))
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in self.seeds):
            raise SweepError(f"sweep seeds must be non-negative ints, got {list(self.seeds)}")
        for key, values in self.grid.items():
            if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
                raise SweepError(f"grid[{key!r}] must be a non-empty list of values, got {values!r}")
        clash = {"env", "algo", "seed"} & (set(self.overrides) | set(self.grid))
        if clash:
            raise SweepError(f"set {sorted(clash)} with tasks/algos/seeds, not in overrides or grid")
        if self.cpus_per_cell <= 0 or self.gpus_per_cell < 0:
            raise SweepError("cpus_per_cell must be positive and gpus_per_cell non-negative")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **changes: Any) -> SweepSpec:
        """Read a TOML (.toml) or YAML (.yaml/.yml) spec; nested tables become dotted keys.

        Relative paths inside it (``root``, a ``dataset`` override) are taken from the file's
        folder, so a spec means the same wherever the sweep is started.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"sweep spec {path} does not exist")
        text = path.read_text()
        try:
            if path.suffix == ".toml":
                data = tomllib.loads(text)
            elif path.suffix in (".yaml", ".yml"):
                try:
                    import yaml
                except ImportError:
                    raise SweepError("YAML specs need PyYAML (it comes with the distributed extra); "
                                     "or write the spec as TOML") from None
                data = yaml.safe_load(text) or {}
            else:
                raise SweepError(f"sweep spec {path} must be .toml, .yaml or .yml")
        except SweepError:
            raise
        except Exception as exc:  # the parsers' own error types
            raise SweepError(f"cannot parse sweep spec {path}: {exc}") from None
        if not isinstance(data, dict):
            raise SweepError(f"sweep spec {path} must be a table of keys, got {type(data).__name__}")
        unknown = sorted(set(data) - set(SPEC_KEYS))
        if unknown:
            raise SweepError(f"sweep spec {path}: unknown key(s) {unknown}; valid keys: {', '.join(SPEC_KEYS)}")
        base = path.resolve().parent
        data["overrides"] = _flatten(data.get("overrides", {}))
        data["grid"] = _flatten(data.get("grid", {}))
        if "dataset" in data["overrides"] and data["overrides"]["dataset"] is not None:
            data["overrides"]["dataset"] = str(base / data["overrides"]["dataset"])
        if isinstance(data["grid"].get("dataset"), list):  # anything else is refused by __post_init__
            data["grid"]["dataset"] = [v if v is None else str(base / v) for v in data["grid"]["dataset"]]
        data["root"] = str(base / data.get("root", "runs/sweep"))
        data |= changes
        return cls.build(**data)

    @classmethod
    def build(cls, **fields: Any) -> SweepSpec:
        """Like the constructor, with lists accepted wherever a tuple is meant."""
        for name in ("tasks", "algos", "seeds"):
            if name in fields and isinstance(fields[name], list):
                fields[name] = tuple(fields[name])
        return cls(**fields)

    def cells(self) -> list[Cell]:
        """Every cell in a fixed order, each with its checked config."""
        keys = sorted(self.grid)
        combos = list(itertools.product(*(list(self.grid[k]) for k in keys))) if keys else [()]
        root = Path(self.root).resolve()
        cells = []
        for task, algo, combo, seed in itertools.product(self.tasks, self.algos, combos, self.seeds):
            values = dict(zip(keys, combo))
            group = grid_tag(values)
            run_dir = seed_dir(root / safe_name(task) / algo / group if group else root / safe_name(task) / algo,
                               seed)
            cells.append(Cell(task, algo, seed, values, run_dir, self._config(task, algo, seed, values)))
        seen: dict[Path, Cell] = {}
        for cell in cells:  # two cells in one directory would overwrite each other's files
            if cell.run_dir in seen:
                raise SweepError(f"cells {seen[cell.run_dir].name!r} and {cell.name!r} would share the run "
                                 f"directory {cell.run_dir}: a grid lists the same value twice")
            seen[cell.run_dir] = cell
        return cells

    def _config(self, task: str, algo: str, seed: int, values: dict[str, Any]) -> OfflineConfig | OnlineConfig:
        settings = {**self.overrides, **values, "env": task, "seed": seed}
        try:
            return resolve(self.mode, self.preset, algo, settings)
        except (ValueError, TypeError) as exc:
            raise SweepError(f"cell {task} / {algo} / seed {seed}{' / ' + grid_tag(values) if values else ''}: "
                             f"{exc}") from None


@dataclass(frozen=True)
class Cell:
    task: str
    algo: str
    seed: int
    grid: dict[str, Any]
    run_dir: Path
    config: OfflineConfig | OnlineConfig

    @property
    def name(self) -> str:
        return " / ".join([self.task, self.algo, *([grid_tag(self.grid)] if self.grid else []), f"seed {self.seed}"])


@dataclass
class SweepResult:
    """The table (one row per task, algorithm, grid values and, offline, data arm), every cell's
    outcome, and the files written."""

    rows: list[dict[str, Any]]
    cells: list[dict[str, Any]]
    files: dict[str, Path]

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [c for c in self.cells if c["status"] == "failed"]

    def markdown(self) -> str:
        return self.files["markdown"].read_text()


# -- running ------------------------------------------------------------------------------------------
def sweep(spec: SweepSpec | str | os.PathLike[str] | None = None, *, address: str | None = None,
          progress: bool = True, **fields: Any) -> SweepResult:
    """Run every cell of a sweep that has not finished, then write the table.

    ``spec``: a SweepSpec, a path to a TOML/YAML spec, or None to build one from keywords
    (``sweep(mode="offline", tasks=[...], algos=[...], seeds=[0, 1, 2], overrides={...})``).
    ``address``: an existing Ray cluster ("auto" or "HOST:PORT"); None starts Ray on this machine
    (or uses the one already initialised in this process). Run directories must be on storage
    every node of the cluster shares.
    """
    if spec is None:
        spec = SweepSpec.build(**fields)
    elif not isinstance(spec, SweepSpec):
        spec = SweepSpec.from_file(spec, **fields)
    elif fields:
        spec = dataclasses.replace(spec, **fields)
    cells = spec.cells()
    outcomes: dict[int, dict[str, Any]] = {}
    pending = []
    for i, cell in enumerate(cells):
        finished = _finished_outcome(cell)
        if finished is not None:
            outcomes[i] = finished
        else:
            pending.append(i)
    _say(progress, f"sweep: {len(cells)} cells ({len(cells) - len(pending)} finished already, "
                   f"{len(pending)} to run) in {Path(spec.root).resolve()}")
    if pending:
        outcomes |= _run_on_ray(spec, cells, pending, address, progress)
    table_rows, cell_rows = _aggregate(spec, cells, [outcomes[i] for i in range(len(cells))])
    files = _write_tables(Path(spec.root).resolve(), spec, table_rows, cell_rows)
    result = SweepResult(table_rows, cell_rows, files)
    for failure in result.failed:
        _say(progress, f"sweep: FAILED {failure['cell']}: {failure['error']}")
    return result


def _say(enabled: bool, text: str) -> None:
    if enabled:
        print(text, flush=True)


def run_cell(mode: str, config: dict[str, Any], run_dir: str) -> dict[str, Any]:
    """One cell, in whichever process Ray gives it: run (or resume) it and return its outcome."""
    if mode == "offline":
        summary: Summary = run_offline(config_from_dict(OfflineConfig, config), run_dir, resume=True,
                                       progress=False).summary
    else:
        summary = run_online(config_from_dict(OnlineConfig, config), run_dir, resume=True, progress=False).summary
    return _outcome(summary, "ran")


def _run_on_ray(spec: SweepSpec, cells: list[Cell], pending: list[int], address: str | None,
                progress: bool) -> dict[int, dict[str, Any]]:
    try:
        import ray
    except ImportError:
        raise RayMissingError('sweeps run on Ray, which is not installed: pip install '
                              '"synther_fast[distributed]" (or pip install ray)') from None
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # nothing may phone home at run time
    started_here = not ray.is_initialized()
    if started_here:
        # Ray puts the driver's working directory first on every worker's sys.path. Started from a
        # source checkout, the workers would then import the bare source tree (no compiled
        # extension) instead of the installed package; so Ray is started from the sweep's root,
        # which holds run directories only.
        root = Path(spec.root).resolve()
        root.mkdir(parents=True, exist_ok=True)
        previous = os.getcwd()
        os.chdir(root)
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", configure_logging=True)
        finally:
            os.chdir(previous)
    outcomes: dict[int, dict[str, Any]] = {}
    try:
        resources = ray.cluster_resources()
        if spec.gpus_per_cell > 0 and resources.get("GPU", 0) < spec.gpus_per_cell:
            raise SweepError(f"each cell asks for {spec.gpus_per_cell} GPU(s) but the Ray cluster has "
                             f"{resources.get('GPU', 0)}")
        if resources.get("CPU", 0) < spec.cpus_per_cell:
            raise SweepError(f"each cell asks for {spec.cpus_per_cell} CPU(s) but the Ray cluster has "
                             f"{resources.get('CPU', 0)}")
        remote = ray.remote(run_cell).options(num_cpus=spec.cpus_per_cell, num_gpus=spec.gpus_per_cell,
                                              max_retries=0)
        futures = {remote.remote(spec.mode, config_to_dict(cells[i].config), str(cells[i].run_dir)): i
                   for i in pending}
        _say(progress, f"sweep: Ray has {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
                       f"each cell takes {spec.cpus_per_cell:g} CPU(s), {spec.gpus_per_cell:g} GPU(s)")
        submitted = time.perf_counter()
        waiting = list(futures)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            i = futures[done[0]]
            try:
                outcomes[i] = ray.get(done[0])
                summary = f"{_headline(outcomes[i])}, {outcomes[i]['seconds']:.0f} s"
            except Exception as exc:  # the cell's own error, wrapped by Ray
                cause = getattr(exc, "cause", None) or exc
                outcomes[i] = {"status": "failed", "error": f"{type(cause).__name__}: {cause}".splitlines()[0],
                               "scores": [], "seconds": None}
                summary = f"failed ({outcomes[i]['error']})"
            _say(progress, f"sweep: [{len(outcomes)}/{len(futures)}, {time.perf_counter() - submitted:.0f} s] "
                           f"{cells[i].name}: {summary}")
    finally:
        if started_here:
            ray.shutdown()
    return outcomes


# -- outcomes ---------------------------------------------------------------------------------------
def _finished_outcome(cell: Cell) -> dict[str, Any] | None:
    """The stored outcome of a cell whose run finished with this cell's config; None otherwise."""
    try:
        saved = read_config(cell.run_dir, type(cell.config))
        summary = read_summary(cell.run_dir)
    except (ValueError, TypeError, FileNotFoundError):
        return None  # not finished, or unreadable: let the run itself report it
    if config_differences(saved, cell.config):
        return None  # the run will refuse, naming the fields, and the cell is reported as failed
    return _outcome(summary, "finished before")


def _outcome(summary: Summary, status: str) -> dict[str, Any]:
    """Scores and wall time of a finished run; the time adds up every process that worked on it."""
    return {"status": status, "scores": summary.scores(), "seconds": summary.total_seconds, "error": None}


def _headline(outcome: dict[str, Any]) -> str:
    return ", ".join(f"{s.arm + ' ' if s.arm else ''}{s.normalized if s.normalized is not None else s.return_mean:.1f}"
                     for s in outcome["scores"])


def _aggregate(spec: SweepSpec, cells: list[Cell], outcomes: list[dict[str, Any]]):
    groups: dict[tuple, dict[str, Any]] = {}
    cell_rows = []
    for cell, outcome in zip(cells, outcomes):
        cell_rows.append({"cell": cell.name, "task": cell.task, "algo": cell.algo, "grid": grid_tag(cell.grid),
                          "seed": cell.seed, "status": outcome["status"], "seconds": outcome["seconds"],
                          "scores": _headline(outcome) if outcome["scores"] else "",
                          "error": outcome["error"] or "", "run_dir": str(cell.run_dir)})
        arms = [s.arm for s in outcome["scores"]] or list(_arms(spec, cell))
        for arm in arms:
            key = (cell.task, cell.algo, grid_tag(cell.grid), arm)
            group = groups.setdefault(key, {"scores": [], "seconds": [], "failed": 0})
            score = next((s for s in outcome["scores"] if s.arm == arm), None)
            if score is None:
                group["failed"] += 1
                continue
            group["scores"].append(score)
            if outcome["seconds"] is not None:
                group["seconds"].append(outcome["seconds"])
    rows = []
    for (task, algo, grid, arm), g in groups.items():
        rows.append({"task": task, "algo": algo, "grid": grid, "arm": arm, **aggregate_scores(g["scores"]),
                     "failed": g["failed"],  # every seed failed: return_mean None
                     "seconds_per_cell": float(np.mean(g["seconds"])) if g["seconds"] else None})
    return rows, cell_rows


def _arms(spec: SweepSpec, cell: Cell) -> tuple[str, ...]:
    return tuple(cell.config.arms) if spec.mode == "offline" else ("",)  # type: ignore[union-attr]


# -- tables -----------------------------------------------------------------------------------------
def _write_tables(root: Path, spec: SweepSpec, rows: list[dict[str, Any]], cells: list[dict[str, Any]]):
    root.mkdir(parents=True, exist_ok=True)
    files = {"markdown": root / "sweep.md", "csv": root / "sweep.csv", "cells": root / "cells.csv",
             "json": root / "sweep.json", "png": root / "sweep.png"}
    _atomic_text(files["markdown"], _markdown(spec, rows, cells))
    _atomic_csv(files["csv"], rows)
    _atomic_csv(files["cells"], cells)
    write_json(files["json"], {"spec": _spec_dict(spec), "rows": rows, "cells": cells})
    try:
        _plot(rows, files["png"], spec)
    except ImportError:  # matplotlib is a dependency, but the GPU check machines lack it
        files.pop("png")
    return files


def _markdown(spec: SweepSpec, rows: list[dict[str, Any]], cells: list[dict[str, Any]]) -> str:
    offline = spec.mode == "offline"
    head = ["task", "algorithm", *(["grid"] if spec.grid else []), *(["data"] if offline else []),
            "seeds", "score (mean ± std)", "return (mean ± std)", "wall time per cell"]
    lines = [f"# Sweep: {spec.mode}, preset {spec.preset}, seeds {list(spec.seeds)}", "",
             "score: D4RL-normalised final return, 100 (R - R_random) / (R_expert - R_random), where D4RL "
             "defines the task (else -); mean ± std over seeds (population std). return: the final "
             "evaluation's mean episode return.", ""]
    table = []
    for r in rows:
        score = "-" if r["normalized_mean"] is None else f"{r['normalized_mean']:.1f} ± {r['normalized_std']:.1f}"
        ret = "-" if not r["seeds"] else f"{r['return_mean']:.1f} ± {r['return_std']:.1f}"
        seeds = f"{r['seeds']}" + (f" ({r['failed']} failed)" if r["failed"] else "")
        wall = "-" if r["seconds_per_cell"] is None else _duration(r["seconds_per_cell"])
        table.append([r["task"], r["algo"], *([r["grid"]] if spec.grid else []), *([r["arm"]] if offline else []),
                      seeds, score, ret, wall])
    lines += markdown_table(head, table)
    failed = [c for c in cells if c["status"] == "failed"]
    total = sum(c["seconds"] or 0.0 for c in cells)
    lines += ["", f"{len(cells)} cells, {len(failed)} failed; {_duration(total)} of cell time in all "
                  f"(summed over cells, resumed work included)."]
    if failed:
        lines += ["", "Failed cells:", ""] + [f"- {c['cell']}: {c['error']}" for c in failed]
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _plot(rows: list[dict[str, Any]], path: Path, spec: SweepSpec) -> None:
    from synther_fast.analysis.plots import plot_grouped_bars

    use_normalized = all(r["normalized_mean"] is not None for r in rows if r["seeds"])
    groups: dict[str, dict[str, tuple[float, float]]] = {}
    for r in rows:
        if not r["seeds"]:
            continue
        series = " ".join(x for x in (r["algo"], r["grid"], r["arm"]) if x)
        value = (r["normalized_mean"], r["normalized_std"]) if use_normalized else (r["return_mean"], r["return_std"])
        groups.setdefault(r["task"], {})[series] = value
    ylabel = "D4RL-normalised score" if use_normalized else "final return"
    plot_grouped_bars(groups, path, ylabel=ylabel,
                      title=f"{spec.mode} sweep ({spec.preset}): mean ± std over {len(spec.seeds)} seed(s)")


def _atomic_text(path: Path, text: str) -> None:
    with atomic_write(path) as handle:
        handle.write(text.encode())


def _atomic_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    _atomic_text(path, buffer.getvalue())


def _spec_dict(spec: SweepSpec) -> dict[str, Any]:
    return {f.name: (dict(v) if isinstance(v := getattr(spec, f.name), Mapping) else v)
            for f in dataclasses.fields(spec)}


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"synther": {"trainer": {"steps": 10}}} -> {"synther.trainer.steps": 10}."""
    if not isinstance(table, Mapping):
        raise SweepError(f"expected a table of settings, got {table!r}")
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= _flatten(value, name + ".")
        else:
            flat[name] = value
    return flat


def grid_tag(values: Mapping[str, Any]) -> str:
    """A cell's grid values as a folder name: "mixed_ratio=0.25,synther.trainer.steps=100"; a
    dataset by its file name and a short hash of its whole path (two data.npz stay apart)."""
    def shown(key: str, value: Any) -> str:
        if key == "dataset" and value is not None:
            digest = hashlib.sha1(str(Path(str(value)).resolve()).encode()).hexdigest()[:6]
            return f"{Path(str(value)).name}-{digest}"
        return str(value)

    return ",".join(f"{k}={safe_name(shown(k, v))}" for k, v in sorted(values.items()))
