"""SynthER for TorchRL: a buffer shaped like ``OfflineToOnlineReplayBuffer`` whose second source is
SynthER's latest refill instead of an offline dataset, and a trainer hook.

``extend(td)`` stores collected transitions in a TorchRL ``ReplayBuffer`` (the real rows; collector
and policy keys such as ``("collector", ...)``, ``loc``, ``scale``, ``sample_log_prob`` are dropped
first, as TorchRL's own offline-to-online hook does, so that real and synthetic batches concatenate).
``sample(B)`` returns a flat TED TensorDict of ``B`` rows (``observation``, ``action``,
``("next", "observation" | "reward" | "done" | "terminated" | "truncated")``) that ``SACLoss``
accepts: ``int(ratio * B)`` synthetic rows once refilled, the rest from TorchRL's own ``sample``.
``refit()`` fits a fresh SynthER model on the real rows (``terminal = terminated``: truncation by a
time limit is not an end) and refills; :class:`SynthERTrainerHook` calls it every N frames.

TorchRL 0.14's compiled extension does not load against torch 2.13 (an ABI mismatch); the buffers
used here are pure Python and work, while TorchRL's prioritised samplers (which need it) do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from tensordict import TensorDict, TensorDictBase
from torchrl.data import LazyTensorStorage, ReplayBuffer

from synther_fast.config import SynthERConfig
from synther_fast.integrations.core import Refits, SyntheticMix, raw_rows, split_rows, synther_config
from synther_fast.replay import TransitionLayout

NEXT_KEYS = ("reward", "done", "terminated", "truncated")


class SynthERTorchRLBuffer:
    """Real rows in a TorchRL ReplayBuffer, synthetic rows from SynthER, mixed per batch.

    ``capacity``: real rows kept; ``synthetic_fraction`` (0.5): share of each batch drawn from the
    latest refill once there is one; ``batch_size``: default for :meth:`sample`; ``obs_key``: the
    observation entry (flat float vectors); ``seed``: the synthetic draws.
    """

    def __init__(self, capacity: int, *, synthetic_fraction: float = 0.5, batch_size: int | None = None,
                 obs_key: str = "observation", seed: int = 0) -> None:
        self.online = ReplayBuffer(storage=LazyTensorStorage(int(capacity)))  # batch sizes vary: given per sample()
        self.mix = SyntheticMix(synthetic_fraction, seed)
        self.batch_size, self.obs_key = batch_size, obs_key
        self.layout: TransitionLayout | None = None
        self.refits: Refits | None = None
        self.history: list[dict[str, float]] = []

    @property
    def keys(self) -> list[Any]:
        """The TED keys kept (everything else a collector or policy writes is dropped)."""
        return [self.obs_key, "action", ("next", self.obs_key), *(("next", k) for k in NEXT_KEYS)]

    def __len__(self) -> int:
        return len(self.online)

    def extend(self, data: TensorDictBase) -> torch.Tensor:
        """Store collected transitions (any batch shape; a collector's padding mask is honoured)."""
        if ("collector", "mask") in data.keys(True):
            data = data[data.get(("collector", "mask"))]
        data = data.reshape(-1)
        missing = [k for k in self.keys if k not in data.keys(True) and k != ("next", "truncated")]
        if missing:
            raise KeyError(f"SynthERTorchRLBuffer.extend: the transitions have no {missing} "
                           f"(expects TorchRL's TED layout with obs_key={self.obs_key!r})")
        data = data.select(*self.keys, strict=False).cpu()
        if ("next", "truncated") not in data.keys(True):
            data.set(("next", "truncated"), torch.zeros_like(data.get(("next", "done"))))
        self._check_layout(data)
        return self.online.extend(data)

    def _check_layout(self, data: TensorDictBase) -> None:
        obs, action = data.get(self.obs_key), data.get("action")
        if obs.ndim != 2 or action.ndim != 2 or not obs.is_floating_point() or not action.is_floating_point():
            raise TypeError(f"SynthER models flat float vectors: {self.obs_key!r} is {tuple(obs.shape[1:])} "
                            f"{obs.dtype}, 'action' {tuple(action.shape[1:])} {action.dtype} per row "
                            f"(images and discrete actions are not supported)")
        layout = TransitionLayout(int(obs.shape[1]), int(action.shape[1]), True)
        if self.layout is not None and layout != self.layout:
            raise ValueError(f"SynthERTorchRLBuffer.extend: rows of {layout}, the buffer holds {self.layout}")
        self.layout = layout

    def real_rows(self) -> np.ndarray:
        """Every stored transition as a raw row (``terminal = terminated``)."""
        data = self.online[:]
        return raw_rows(data.get(self.obs_key).numpy(), data.get("action").numpy(),
                        data.get(("next", "reward")).numpy(), data.get(("next", self.obs_key)).numpy(),
                        data.get(("next", "terminated")).float().numpy(), source="TorchRL replay buffer")

    def sample(self, batch_size: int | None = None) -> TensorDictBase:
        batch_size = batch_size if batch_size is not None else self.batch_size
        if batch_size is None:
            raise ValueError("SynthERTorchRLBuffer.sample needs a batch_size (here or at construction)")
        if len(self.online) == 0:
            raise ValueError("SynthERTorchRLBuffer.sample: no real transitions yet (extend first)")
        n_synthetic = self.mix.n_synthetic(batch_size)
        if n_synthetic == 0:
            return self.online.sample(batch_size)
        synthetic = self._synthetic(n_synthetic)
        if n_synthetic == batch_size:
            return synthetic
        return torch.cat([self.online.sample(batch_size - n_synthetic), synthetic])

    def _synthetic(self, n: int) -> TensorDict:
        assert self.layout is not None
        rows = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in split_rows(self.mix.draw(n), self.layout).items()}
        terminal = (rows["terminal"] > 0.5)[:, None]
        return TensorDict({
            self.obs_key: rows["obs"], "action": rows["action"],
            "next": TensorDict({self.obs_key: rows["next_obs"], "reward": rows["reward"][:, None], "done": terminal,
                                "terminated": terminal.clone(), "truncated": torch.zeros_like(terminal)}, [n]),
        }, [n])

    def refit(self, num_samples: int = 1_000_000, config: SynthERConfig | str = "quick", *, step: int | None = None,
              task: str | None = None, action_bounds: tuple[Any, Any] | None = None, seed: int = 0,
              device: str | None = None, progress: bool = False) -> dict[str, float]:
        """Fit a fresh SynthER model on the real rows and replace the synthetic rows by
        ``num_samples`` new ones (synchronously); returns the refit's numbers (time, loss, KS).
        ``action_bounds``: clip generated actions (e.g. the action spec's low/high)."""
        if self.layout is None:
            raise ValueError("SynthERTorchRLBuffer.refit: no real transitions yet (extend first)")
        if self.refits is None or self.refits.num_samples != num_samples:
            self.refits = Refits(self.layout, synther_config(config, task=task, action_bounds=action_bounds),
                                 num_samples, seed=seed, device=device, progress=progress)
        done = self.refits.run(self.mix.refills, self.real_rows(), len(self.online) if step is None else step)
        assert done is not None
        numbers, rows = done
        self.mix.install(rows, step)
        self.history.append(numbers)
        return numbers

    def state_dict(self) -> dict[str, Any]:
        return {"online": self.online.state_dict(), "mix": self.mix.state_dict(),
                "layout": None if self.layout is None else self.layout.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["online"])
        self.mix.load_state_dict(state["mix"])
        self.layout = None if state["layout"] is None else TransitionLayout.from_dict(state["layout"])


class SynthERTrainerHook:
    """Drives a :class:`SynthERTorchRLBuffer` from a TorchRL ``Trainer``: stores each collected
    batch (``pre_epoch``), serves the mixed batch (``process_optim_batch``) and refits every
    ``refit_every`` collected frames (``post_steps``). Its state is the buffer's."""

    def __init__(self, buffer: SynthERTorchRLBuffer, *, refit_every: int = 10_000, num_samples: int = 1_000_000,
                 config: SynthERConfig | str = "quick", batch_size: int | None = None, device: Any = None,
                 **refit_kwargs: Any) -> None:
        self.buffer, self.refit_every, self.num_samples, self.config = buffer, int(refit_every), num_samples, config
        self.batch_size, self.device, self.refit_kwargs = batch_size, device, refit_kwargs
        self.frames = 0

    def extend(self, batch: TensorDictBase) -> TensorDictBase:
        self.frames += int(self.buffer.extend(batch).numel())
        return batch

    def sample(self, batch: TensorDictBase) -> TensorDictBase:
        sample = self.buffer.sample(self.batch_size)
        return sample.to(self.device) if self.device is not None else sample

    def maybe_refit(self) -> None:
        if self.frames // self.refit_every > self.buffer.mix.refills:
            self.buffer.refit(self.num_samples, self.config, step=self.frames, **self.refit_kwargs)

    def state_dict(self) -> dict[str, Any]:
        return {"buffer": self.buffer.state_dict(), "frames": self.frames}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.buffer.load_state_dict(state["buffer"])
        self.frames = int(state["frames"])

    def register(self, trainer: Any, name: str = "synther_replay_buffer") -> None:
        trainer.register_op("pre_epoch", self.extend)
        trainer.register_op("process_optim_batch", self.sample)
        trainer.register_op("post_steps", self.maybe_refit)
        trainer.register_module(name, self)
