"""A run's metrics log, given only its folder: metrics.jsonl (a record per line), metrics.csv (long
format), TensorBoard when installed, and Weights & Biases when installed and asked for."""

from __future__ import annotations

import json
import os
import time
from typing import Any

from synther_fast.common.io import atomic_write
from synther_fast.runs.files import RunError, RunFiles


class MetricsLog:
    """metrics.jsonl (a record per line), metrics.csv (long format), TensorBoard if installed,
    and Weights & Biases when installed and asked for (offline mode unless WANDB_MODE says other)."""

    def __init__(self, folder: str | os.PathLike[str], wandb: bool = False, config: dict[str, Any] | None = None) -> None:
        files = RunFiles(folder)
        self.jsonl, self.csv = files["metrics"], files["metrics_csv"]
        if not self.csv.exists():
            self.csv.write_text("phase,step,name,value\n")
        self.tb = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(files["tensorboard"]))
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
            self.wandb = wandb_module.init(project="synther_fast", dir=str(files.root), name=files.root.name,
                                           config=config, resume="allow",
                                           id=files.root.resolve().name.replace(os.sep, "_"))

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
