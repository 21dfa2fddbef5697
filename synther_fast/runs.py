"""One run directory, shared by every pipeline (offline, online).

A :class:`Run` owns the directory: the run's config (``config.json``, versioned), the phase
bookkeeping (``state.json``: finished phases with their results, and wall time per phase summed
over every process that worked on the run), checkpoints (atomic, versioned torch files) and the
metrics logger (``metrics.jsonl`` and ``metrics.csv``; TensorBoard when installed; Weights & Biases
when installed and asked for). Pipelines are short sequences of phase functions over a Run.

A directory whose config.json exists but that holds no finished phase and no checkpoint is not a
run yet (a start that failed): starting again there simply starts afresh.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.artifacts import artifact_path
from synther_fast.config import OfflineConfig, OnlineConfig, config_differences, config_from_dict, config_to_dict
from synther_fast.io import atomic_write, load_torch_dict

CHECKPOINT_FORMAT = "synther_fast.checkpoint"
CHECKPOINT_VERSION = 1


class RunError(ValueError):
    """A run directory that cannot be used as asked (another run's config, a damaged checkpoint)."""


# -- naming: the one rule for where runs go ----------------------------------------------------------
def mode_of(config: Any) -> str:
    """'offline' or 'online', from the config's class."""
    if isinstance(config, OnlineConfig):
        return "online"
    if isinstance(config, OfflineConfig):
        return "offline"
    raise TypeError(f"not a run config: {type(config).__name__}")


def safe_name(text: str) -> str:
    """``text`` as one folder name (task names such as dmc:cheetah-run included)."""
    return re.sub(r"[^A-Za-z0-9._=+-]", "_", text)


def default_run_dir(config: Any, root: str | os.PathLike[str] = "runs") -> Path:
    """Where a run goes when no directory is given: runs/MODE-TASK-ALGO-PRESET."""
    return Path(root) / f"{mode_of(config)}-{safe_name(config.env)}-{config.algo}-{config.preset}"


def seed_dir(parent: str | os.PathLike[str], seed: int) -> Path:
    """The run of one seed among several (offline --seeds, every sweep cell): PARENT/seed_N."""
    return Path(parent) / f"seed_{seed}"


def read_config(run_dir: str | os.PathLike[str], cls: type | None = None) -> Any:
    """The config a run directory was started with, checked as :func:`config_from_dict` checks it;
    ``cls`` None reads whichever of OfflineConfig / OnlineConfig the file names."""
    path = artifact_path(run_dir, "config")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a run directory")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise RunError(f"{path} is not valid JSON ({exc})") from None
    if cls is None:
        cls = OnlineConfig if data.get("format") == "OnlineConfig" else OfflineConfig
    try:
        return config_from_dict(cls, data)
    except (ValueError, TypeError) as exc:
        raise RunError(f"{path} cannot be read as a {cls.__name__} ({exc})") from None


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """JSON written atomically (numpy scalars and paths converted)."""
    with atomic_write(path) as handle:
        handle.write(json.dumps(data, indent=2, default=_json_default).encode())


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class Run:
    """The files and bookkeeping of one run. Open it with :meth:`Run.open`."""

    def __init__(self, path: Path, config: Any, state: dict[str, Any], resumed: bool) -> None:
        self.path = path
        self.config = config
        self.state = state
        self.resumed = resumed
        self._open_timers: dict[str, float] = {}
        self.metrics: MetricsLog | None = None

    # -- opening ------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], config: Any, *, resume: bool = False) -> Run:
        """Start a run in ``path`` or, with ``resume``, continue the one there.

        Call it after the config and inputs were checked: it is the first thing that writes.
        Refuses (naming the fields) to resume with another config, and refuses to start over a
        finished or interrupted run without ``resume``; nothing is changed when it refuses.
        """
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise RunError(f"{path} exists and is not a directory")
        config_file, state_file = artifact_path(path, "config"), artifact_path(path, "state")
        if config_file.exists() and cls._holds_work(path):
            saved = read_config(path, type(config))
            if not resume:
                raise FileExistsError(
                    f"{path} already holds a run; pass resume=True (--resume) to continue it, or "
                    f"choose another run directory (nothing was changed)"
                )
            differences = config_differences(saved, config)
            if differences:
                hint = ""
                if any(d.startswith("synther.seed: ") and d.endswith(" != None") for d in differences):
                    hint = (" (runs started before synther.seed became None by default, derived from the run "
                            "seed, recorded an integer: pass --synther.seed with the recorded value to resume one)")
                raise RunError(
                    f"{path} holds a run with a different config ({'; '.join(differences)}); resume it "
                    f"with the same config, or choose another run directory (nothing was changed){hint}"
                )
            state = json.loads(state_file.read_text()) if state_file.exists() else {}
            state.setdefault("done", {})
            state.setdefault("timings", {})
            return cls(path, config, state, resumed=True)
        path.mkdir(parents=True, exist_ok=True)
        for stale in ("metrics", "metrics_csv"):  # of a start that failed: not this run's
            artifact_path(path, stale).unlink(missing_ok=True)
        write_json(config_file, config_to_dict(config))
        state = {"done": {}, "timings": {}}
        write_json(state_file, state)
        return cls(path, config, state, resumed=False)

    @staticmethod
    def _holds_work(path: Path) -> bool:
        state_file = artifact_path(path, "state")
        if state_file.exists():
            with contextlib.suppress(ValueError, OSError):
                if json.loads(state_file.read_text()).get("done"):
                    return True
        return any(path.glob("*.ckpt"))

    # -- files and phases ---------------------------------------------------------------------
    def artifact(self, name: str, **keys: Any) -> Path:
        """The path of one of the run's files, by its name in :data:`synther_fast.artifacts.ARTIFACTS`."""
        return artifact_path(self.path, name, **keys)

    def done(self, phase: str) -> bool:
        return phase in self.state["done"]

    def result(self, phase: str) -> Any:
        return self.state["done"][phase]

    def mark_done(self, phase: str, info: Any) -> None:
        self.flush_time(phase)
        self.state["done"][phase] = info
        self._write_state()

    def record(self, key: str, value: Any) -> None:
        """Keep ``value`` in the run state under ``key`` (written to ``state.json`` at once)."""
        self.state[key] = value
        self._write_state()

    def _write_state(self) -> None:
        write_json(self.artifact("state"), self.state)

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time a phase; its seconds add up over every process that worked on it (resumes)."""
        self._open_timers[name] = time.perf_counter()
        try:
            yield
        finally:
            if name in self._open_timers:
                self.flush_time(name)
                del self._open_timers[name]

    def flush_time(self, name: str) -> None:
        """Add the time since the phase (re)started or was last flushed to ``state.json``."""
        started = self._open_timers.get(name)
        if started is None:
            return
        now = time.perf_counter()
        self.state["timings"][name] = self.state["timings"].get(name, 0.0) + now - started
        self._open_timers[name] = now
        self._write_state()

    @property
    def timings(self) -> dict[str, float]:
        return dict(self.state["timings"])

    # -- checkpoints --------------------------------------------------------------------------
    def _checkpoint_path(self, name: str | os.PathLike[str]) -> Path:
        return Path(name) if Path(name).is_absolute() or Path(name).parent != Path(".") else self.path / name

    def save_checkpoint(self, name: str | os.PathLike[str], kind: str, payload: dict[str, Any],
                        phase: str | None = None) -> None:
        """Write ``name`` (a file name in the run directory, or :meth:`artifact`'s path) atomically as
        a versioned torch file of ``kind`` (and flush the phase time)."""
        body = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "kind": kind, **payload}
        with atomic_write(self._checkpoint_path(name)) as handle:
            torch.save(body, handle)
        if phase is not None:
            self.flush_time(phase)

    def load_checkpoint(self, name: str | os.PathLike[str], kind: str,
                        map_location: Any = None) -> dict[str, Any] | None:
        """The checkpoint ``name`` if it exists (None otherwise); a damaged or foreign file raises."""
        path = self._checkpoint_path(name)
        if not path.exists():
            return None
        return read_checkpoint(path, kind, map_location)

    # -- metrics ------------------------------------------------------------------------------
    def logger(self, wandb: bool = False) -> MetricsLog:
        if self.metrics is None:
            self.metrics = MetricsLog(self, wandb=wandb)
        return self.metrics

    def close(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None


def read_checkpoint(path: str | os.PathLike[str], kind: str, map_location: Any = None) -> dict[str, Any]:
    """A checkpoint written by :meth:`Run.save_checkpoint`; the error names the file and the problem."""
    payload = load_torch_dict(path, map_location, RunError, f"{kind} checkpoint")
    if payload.get("format") != CHECKPOINT_FORMAT or payload.get("kind") != kind:
        raise RunError(f"{path}: not a {kind} checkpoint (format {payload.get('format')!r}, "
                       f"kind {payload.get('kind')!r})")
    if payload.get("version") != CHECKPOINT_VERSION:
        raise RunError(f"{path}: checkpoint version {payload.get('version')} is not supported "
                       f"(this package reads {CHECKPOINT_VERSION})")
    return payload


class MetricsLog:
    """metrics.jsonl (a record per line), metrics.csv (long format), TensorBoard if installed,
    and Weights & Biases when installed and asked for (offline mode unless WANDB_MODE says other)."""

    def __init__(self, run: Run, wandb: bool = False) -> None:
        self.jsonl = run.artifact("metrics")
        self.csv = run.artifact("metrics_csv")
        if not self.csv.exists():
            self.csv.write_text("phase,step,name,value\n")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run.artifact("tensorboard")))
        except Exception:  # tensorboard is optional
            self.tb = None
        self.wandb = None
        if wandb:
            try:
                import wandb as wandb_module
            except ImportError:
                raise RunError("--wandb asks for Weights & Biases, which is not installed "
                               "(pip install wandb)") from None
            os.environ.setdefault("WANDB_MODE", "offline")  # no network needed; sync later
            self.wandb = wandb_module.init(project="synther_fast", dir=str(run.path), name=run.path.name,
                                           config=config_to_dict(run.config), resume="allow",
                                           id=run.path.resolve().name.replace(os.sep, "_"))

    def log(self, phase: str, step: int, values: dict[str, float]) -> None:
        with open(self.jsonl, "a") as f:
            f.write(json.dumps({"phase": phase, "step": step, **values, "time": time.time()}) + "\n")
        with open(self.csv, "a") as f:
            for name, value in values.items():
                f.write(f"{phase},{step},{name},{value}\n")
        if self.tb is not None:
            for name, value in values.items():
                self.tb.add_scalar(f"{phase}/{name}", value, step)
        if self.wandb is not None:
            self.wandb.log({f"{phase}/{k}": v for k, v in values.items()} | {f"{phase}/step": step})

    def truncate(self, phase: str, step: int) -> None:
        """Drop the records of ``phase`` logged after ``step`` (a resume continues from there)."""
        if self.jsonl.exists():
            kept = [line for line in self.jsonl.read_text().splitlines()
                    if (record := _parse(line)) is not None and not _after(record, phase, step)]
            with atomic_write(self.jsonl) as handle:
                handle.write("".join(line + "\n" for line in kept).encode())
        if self.csv.exists():
            lines = self.csv.read_text().splitlines()
            kept = lines[:1] + [line for line in lines[1:] if not _csv_after(line, phase, step)]
            with atomic_write(self.csv) as handle:
                handle.write("".join(line + "\n" for line in kept).encode())

    def records(self, phase: str | None = None) -> list[dict[str, Any]]:
        if not self.jsonl.exists():
            return []
        out = [r for line in self.jsonl.read_text().splitlines() if (r := _parse(line)) is not None]
        return [r for r in out if phase is None or r["phase"] == phase]

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def _after(record: dict[str, Any], phase: str, step: int) -> bool:
    return record.get("phase") == phase and int(record.get("step", 0)) > step


def _parse(line: str) -> dict[str, Any] | None:
    """A JSONL record, or None for an empty or torn line (a kill during a write)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _csv_after(line: str, phase: str, step: int) -> bool:
    """True for rows to drop: records of ``phase`` after ``step``, and torn lines."""
    parts = line.split(",")
    if len(parts) != 4 or not parts[1].lstrip("-").isdigit():
        return True
    return parts[0] == phase and int(parts[1]) > step
