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
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from synther_fast.common.io import atomic_write, load_torch_dict, write_json
from synther_fast.config import OfflineConfig, OnlineConfig, config_differences, config_from_dict, config_to_dict
from synther_fast.runs.files import RunError, RunFiles
from synther_fast.runs.metrics import MetricsLog

CHECKPOINT_FORMAT = "synther_fast.checkpoint"
CHECKPOINT_VERSION = 1


def read_config(run_dir: str | os.PathLike[str], cls: type | None = None) -> Any:
    """The config a run directory was started with, checked as :func:`config_from_dict` checks it;
    ``cls`` None reads whichever of OfflineConfig / OnlineConfig the file names."""
    path = RunFiles(run_dir)["config"]
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} is not a run directory")
    return _config_from_file(path, cls)


def _config_from_file(path: Path, cls: type | None) -> Any:
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


class Run:
    """The files and bookkeeping of one run. Open it with :meth:`Run.open`."""

    def __init__(self, files: RunFiles, config: Any, state: dict[str, Any], resumed: bool) -> None:
        self.files = files
        self.path = files.root
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
        files = RunFiles(path)
        if files["config"].exists() and cls._holds_work(files):
            saved = _config_from_file(files["config"], type(config))
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
            state = json.loads(files["state"].read_text()) if files["state"].exists() else {}
            state.setdefault("done", {})
            state.setdefault("timings", {})
            return cls(files, config, state, resumed=True)
        path.mkdir(parents=True, exist_ok=True)
        for stale in ("metrics", "metrics_csv"):  # of a start that failed: not this run's
            files[stale].unlink(missing_ok=True)
        write_json(files["config"], config_to_dict(config))
        state = {"done": {}, "timings": {}}
        write_json(files["state"], state)
        return cls(files, config, state, resumed=False)

    @staticmethod
    def _holds_work(files: RunFiles) -> bool:
        if files["state"].exists():
            with contextlib.suppress(ValueError, OSError):
                if json.loads(files["state"].read_text()).get("done"):
                    return True
        return any(files.root.glob("*.ckpt"))

    # -- files and phases ---------------------------------------------------------------------
    def artifact(self, name: str, **keys: Any) -> Path:
        """The path of one of the run's files, by its name in :data:`synther_fast.runs.files.ARTIFACTS`."""
        return self.files.path(name, **keys)

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
            self.metrics = MetricsLog(self.path, wandb=wandb, config=config_to_dict(self.config))
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
