"""SynthER refits of the online loop: a fresh diffusion model fitted on the whole real replay,
whose generated rows become the new synthetic buffer (Lu et al. 2023, section 4.2).

A :class:`Refitter` fits and generates (synchronously, or in a background thread), writes each
refit's files (model, rows, numbers; the numbers file last, so the three together mark a finished
refit that a resumed run reloads instead of redoing), reloads them, and removes rows that no
checkpoint refers to any more. It touches no loop state: it returns the new buffer. Without run
files (the integrations' in-memory refits, synther_fast.integrations) it writes and reloads nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from synther_fast.common.io import write_json
from synther_fast.common.rng import Stream, fit_seed, stream_seed
from synther_fast.config import SynthERConfig
from synther_fast.diffusion import SynthER
from synther_fast.replay import ReplayBuffer, TransitionLayout
from synther_fast.runs import RunFiles

Refill = tuple[dict[str, Any], ReplayBuffer]
"""A finished refit: its numbers and its rows."""


class Refitter:
    def __init__(self, layout: TransitionLayout, synther: SynthERConfig, num_samples: int, capacity: int,
                 device: torch.device, run_files: RunFiles | None, seed: int, *, asynchronous: bool = False,
                 progress: bool = False) -> None:
        self.layout, self.synther, self.num_samples, self.capacity = layout, synther, num_samples, capacity
        self.device, self.run_files, self.seed = device, run_files, seed
        self.asynchronous, self.progress = asynchronous, progress
        self._pending: tuple[threading.Thread, dict[str, Any]] | None = None

    # -- files --------------------------------------------------------------------------------
    def files(self, k: int) -> tuple[Path, Path, Path]:
        """Refit k's model, rows and numbers files."""
        return self._run_files().refit(k)

    def _run_files(self) -> RunFiles:
        if self.run_files is None:
            raise RuntimeError("this Refitter keeps its refits in memory: it has no files")
        return self.run_files

    def load(self, k: int) -> ReplayBuffer:
        """Refit k's rows, as written."""
        rows = ReplayBuffer(self.capacity, self.layout)
        rows.restore(self.files(k)[1])
        return rows

    def keep_only(self, k: int) -> None:
        """Delete the rows of refits before k (no checkpoint refers to them; the models stay)."""
        for j in range(k):
            self.files(j)[1].unlink(missing_ok=True)

    def discard_all(self) -> None:
        """A fresh start: every refit file of an earlier start that never checkpointed goes."""
        for stale in self._run_files().all_refit_files():
            stale.unlink()

    def seed_for(self, k: int, purpose: str) -> int:
        """Refit k's fit seed (of the fit base: synther.seed where set, else the run seed's FIT
        stream) or generation seed (of the run seed); none shares another part's stream."""
        if purpose == "fit":
            return stream_seed(fit_seed(self.seed, self.synther.seed), Stream.REFIT_FIT, k)
        return stream_seed(self.seed, Stream.REFIT_GENERATION, k)

    # -- fitting ------------------------------------------------------------------------------
    def refit(self, k: int, real_rows: np.ndarray, env_step: int, conditions: np.ndarray | None = None,
              pool: np.ndarray | None = None) -> Refill:
        """Refit k on ``real_rows`` now; a refit whose three files were written before a kill is
        reloaded instead. Guided (a conditional model): ``conditions`` are the rows' relevance
        scores and the rows are generated toward conditions drawn from ``pool``."""
        info: dict[str, Any] = {"refit": k, "env_step": env_step, "real_rows": len(real_rows)}
        rows = ReplayBuffer(self.capacity, self.layout)
        files = self.files(k) if self.run_files is not None else None
        if files is not None and all(f.exists() for f in files):
            model_file, rows_file, info_file = files
            saved = json.loads(info_file.read_text())
            if saved.get("env_step") == env_step and saved.get("real_rows") == len(real_rows):
                rows.restore(rows_file)
                return saved | {"reloaded": True}, rows
        config = dataclasses.replace(self.synther, seed=self.seed_for(k, "fit"))
        stream = torch.cuda.Stream(self.device) if self.asynchronous and self.device.type == "cuda" else None
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            model = SynthER(self.layout, config, self.device)
            start = time.perf_counter()
            model.fit(real_rows, progress=self.progress and not self.asynchronous, conditions=conditions)
            fit_s = time.perf_counter() - start
            start = time.perf_counter()
            written = model.generate_into(rows, self.num_samples, seed=self.seed_for(k, "generate"), conditions=pool)
            gen_s = time.perf_counter() - start
        info |= {"rows": written, "fit_seed": config.seed, "fit_seconds": fit_s, "generate_seconds": gen_s,
                 "final_loss": model.history[-1]["loss"], **model.sampler_record}
        if conditions is not None:
            info |= {"guidance": self.synther.guidance, "score_mean": float(np.mean(conditions)),
                     "score_max": float(np.max(conditions)), "condition_pool_min": float(np.min(pool))}
        if files is not None:
            model_file, rows_file, info_file = files
            model.save(model_file)
            rows.save(rows_file)
            write_json(info_file, info)  # last: the three files together mark a finished refit
        return info, rows

    def start(self, k: int, real_rows: np.ndarray, env_step: int, conditions: np.ndarray | None = None,
              pool: np.ndarray | None = None) -> None:
        """Refit k in a background thread (a previous one still running must be collected first)."""
        if self._pending is not None:
            raise RuntimeError("a refit is still pending: collect it with finish() first")
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["result"] = self.refit(k, real_rows, env_step, conditions, pool)
            except BaseException as exc:  # re-raised in the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=work, name=f"synther-refit-{k}", daemon=True)
        thread.start()
        self._pending = (thread, box)

    @property
    def pending(self) -> bool:
        return self._pending is not None

    def finish(self, wait: bool) -> Refill | None:
        """The background refit's result once it is done (``wait`` blocks until then); None while
        it runs or when there is none."""
        if self._pending is None:
            return None
        thread, box = self._pending
        if not wait and thread.is_alive():
            return None
        thread.join()
        self._pending = None
        if "error" in box:
            raise box["error"]
        return box["result"]
