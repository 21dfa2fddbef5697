"""Transition datasets and their files.

Formats read (all from local disk; nothing downloads):
- the package's own ``.npz`` (observations, actions, rewards, next_observations, terminals,
  timeouts, and a JSON ``meta`` with a format version and the environment name);
- D4RL-layout HDF5 (``observations, actions, rewards, terminals, timeouts`` and optionally
  ``next_observations``; without it, next observations are taken from the following step of the
  same episode and the steps that end an episode by time-out are dropped, as D4RL's
  ``qlearning_dataset`` does);
- Minari dataset folders (``data/main_data.hdf5`` with one ``episode_N`` group per episode).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synther_fast.common.io import atomic_write, writable_path
from synther_fast.replay.layout import TransitionLayout

NPZ_FORMAT = "synther_fast.Dataset"
NPZ_VERSION = 1


class DatasetError(ValueError):
    """A dataset file or array that cannot be used; the message names the file and the problem."""


@dataclass(eq=False)
class Dataset:
    """Transitions as parallel arrays (N rows each)."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    env_name: str | None = None
    source: str = field(default="memory", compare=False)
    generated_by: dict | None = field(default=None, compare=False)
    """for generated rows: how they were drawn (the sampler, its steps and NFE), kept in the file"""

    def __post_init__(self) -> None:
        self.observations = _float2d(self.observations, "observations", self.source)
        self.actions = _float2d(self.actions, "actions", self.source)
        self.next_observations = _float2d(self.next_observations, "next_observations", self.source)
        self.rewards = _float1d(self.rewards, "rewards", self.source)
        self.terminals = _float1d(self.terminals, "terminals", self.source)
        self.timeouts = _float1d(self.timeouts, "timeouts", self.source)
        n = len(self.observations)
        for name in ("actions", "rewards", "next_observations", "terminals", "timeouts"):
            if len(getattr(self, name)) != n:
                raise DatasetError(
                    f"{self.source}: {name} has {len(getattr(self, name))} rows, observations {n}"
                )
        if self.next_observations.shape[1] != self.observations.shape[1]:
            raise DatasetError(f"{self.source}: next_observations and observations differ in width")
        if n == 0:
            raise DatasetError(f"{self.source}: the dataset is empty")
        for name in ("observations", "actions", "rewards", "next_observations", "terminals"):
            values = getattr(self, name)
            bad = ~np.isfinite(values.reshape(n, -1)).all(axis=1)
            if bad.any():
                rows = np.flatnonzero(bad)
                raise DatasetError(
                    f"{self.source}: {name} has NaN/inf in {len(rows)} rows (first: {rows[:10].tolist()})"
                )
        if not np.isin(self.terminals, (0.0, 1.0)).all():
            raise DatasetError(f"{self.source}: terminals must be 0 or 1")

    def __len__(self) -> int:
        return len(self.observations)

    ARRAYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Dataset):
            return NotImplemented
        return self.env_name == other.env_name and all(
            np.array_equal(getattr(self, k), getattr(other, k)) for k in self.ARRAYS)

    @property
    def obs_dim(self) -> int:
        return self.observations.shape[1]

    @property
    def act_dim(self) -> int:
        return self.actions.shape[1]

    def layout(self, has_terminal: bool = True) -> TransitionLayout:
        return TransitionLayout(self.obs_dim, self.act_dim, has_terminal)

    def to_rows(self, layout: TransitionLayout | None = None) -> np.ndarray:
        """Rows [obs | action | reward | next_obs | terminal?] for the replay and the diffusion model."""
        layout = layout or self.layout()
        if (layout.obs_dim, layout.act_dim) != (self.obs_dim, self.act_dim):
            raise DatasetError(f"layout {layout} does not fit obs {self.obs_dim} / action {self.act_dim}")
        parts = [self.observations, self.actions, self.rewards[:, None], self.next_observations]
        if layout.has_terminal:
            parts.append(self.terminals[:, None])
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)

    @classmethod
    def from_rows(cls, rows: np.ndarray, layout: TransitionLayout, env_name: str | None = None) -> Dataset:
        """A dataset of loose rows (e.g. synthetic ones): no episode structure, no time-outs."""
        rows = np.asarray(rows, dtype=np.float32)
        terminals = rows[:, layout.terminal][:, 0] if layout.terminal is not None else np.zeros(len(rows))
        return cls(rows[:, layout.obs], rows[:, layout.action], rows[:, layout.reward][:, 0],
                   rows[:, layout.next_obs], terminals, np.zeros(len(rows)), env_name, "rows")

    def episode_returns(self) -> np.ndarray:
        """Returns of the episodes that end (terminal or time-out) inside the dataset."""
        ends = np.flatnonzero((self.terminals > 0) | (self.timeouts > 0))
        returns, start = [], 0
        for end in ends:
            returns.append(float(self.rewards[start : end + 1].sum()))
            start = end + 1
        return np.asarray(returns)

    def subset(self, fraction: float, seed: int = 0) -> Dataset:
        """Whole episodes drawn at random (seeded) until they cover at least ``fraction`` of the
        rows, kept in their original order: the paper's reduced datasets (Fig. 1a: 15%).

        Episodes, not rows, so every kept transition keeps its neighbours; at random, not the
        first ones, because in a replay-style dataset (D4RL medium-replay, ``collect_method
        'sac'``) the first episodes are the worst and a prefix would also lower the data's quality.
        A trailing episode without an end counts as one."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
        if fraction == 1:
            return self
        return self.take(self.subset_index(fraction, seed))

    def subset_index(self, fraction: float, seed: int = 0) -> np.ndarray:
        """The rows :meth:`subset` keeps (their complement is data the model never saw)."""
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
        starts, stops, order, covered = self._episode_draw(seed)
        count = int(np.searchsorted(covered, fraction * len(self))) + 1  # first prefix reaching the target
        return np.concatenate([np.arange(starts[i], stops[i]) for i in np.sort(order[:count])])

    def cut(self, size: int, seed: int = 0) -> Dataset:
        """``size`` transitions of whole episodes drawn at random (seeded), the last one drawn
        truncated to fit: the scarce-data cuts (250 rows of HalfCheetah is a quarter episode).

        Kept episodes stay in their original order. The cut end of a truncated episode is marked
        a time-out (the episode goes on past it; it is not a terminal). A trailing episode without
        an end counts as one."""
        take = self.cut_index(size, seed)
        out = self.take(take)
        ends = (out.terminals > 0) | (out.timeouts > 0)
        last_of_episode = np.r_[np.diff(take) != 1, True]  # the next kept row is not the next row
        cut_ends = last_of_episode & ~ends & (take + 1 < len(self))
        out.timeouts[cut_ends] = 1.0
        return out

    def cut_index(self, size: int, seed: int = 0) -> np.ndarray:
        """The rows :meth:`cut` keeps, in order (their complement is data the model never saw)."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size <= 0:
            raise ValueError(f"a cut needs a positive number of transitions, got {size!r}")
        if size > len(self):
            raise ValueError(f"a cut of {size} transitions from a dataset of {len(self)}")
        starts, stops, order, covered = self._episode_draw(seed)
        count = int(np.searchsorted(covered, size)) + 1  # episodes drawn until they cover size rows
        chosen = order[:count]
        keep = {int(i): int(stops[i] - starts[i]) for i in chosen}
        keep[int(chosen[-1])] -= int(covered[count - 1] - size)  # the last drawn keeps only what fits
        return np.concatenate([np.arange(starts[i], starts[i] + keep[i]) for i in sorted(keep)])

    def _episode_draw(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Episode bounds, a seeded random order of the episodes and the rows each prefix of that
        order covers."""
        ends = np.flatnonzero((self.terminals > 0) | (self.timeouts > 0)) + 1
        bounds = np.unique(np.concatenate([[0], ends, [len(self)]]))
        starts, stops = bounds[:-1], bounds[1:]
        order = np.random.default_rng(seed).permutation(len(starts))
        return starts, stops, order, np.cumsum(stops[order] - starts[order])

    def take(self, index: np.ndarray) -> Dataset:
        """The rows at ``index`` (in that order), as a dataset of the same task."""
        return Dataset(self.observations[index], self.actions[index], self.rewards[index],
                       self.next_observations[index], self.terminals[index], self.timeouts[index].copy(),
                       self.env_name, self.source)


def _float2d(values: Any, name: str, source: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "fiub":
        raise DatasetError(f"{source}: {name} must be numeric, got dtype {array.dtype}")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise DatasetError(f"{source}: {name} must be 2-D (N, dim), got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def _float1d(values: Any, name: str, source: str) -> np.ndarray:
    array = np.asarray(values)
    if array.dtype.kind not in "fiub":
        raise DatasetError(f"{source}: {name} must be numeric, got dtype {array.dtype}")
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise DatasetError(f"{source}: {name} must be 1-D (N,), got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


# -- files ------------------------------------------------------------------------------------------
DATASET_SUFFIXES = (".npz", ".hdf5", ".h5")


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a dataset path that save_dataset could not write."""
    path = Path(path)
    if path.suffix not in DATASET_SUFFIXES:
        raise DatasetError(f"{path}: unknown dataset suffix {path.suffix!r} (use .npz, .hdf5 or .h5)")
    if path.is_dir():
        raise DatasetError(f"{path} is a directory")
    return writable_path(path)  # missing folders are created when it is written


def save_dataset(dataset: Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``.npz`` (the package's format) or ``.hdf5``/``.h5`` (D4RL layout), atomically."""
    path = Path(path)
    arrays = {
        "observations": dataset.observations, "actions": dataset.actions, "rewards": dataset.rewards,
        "next_observations": dataset.next_observations, "terminals": dataset.terminals,
        "timeouts": dataset.timeouts,
    }
    if path.suffix == ".npz":
        meta = json.dumps({"format": NPZ_FORMAT, "version": NPZ_VERSION, "env_name": dataset.env_name,
                           **({"generated_by": dataset.generated_by} if dataset.generated_by else {})})
        with atomic_write(path) as handle:
            np.savez(handle, meta=meta, **arrays)
    elif path.suffix in (".hdf5", ".h5"):
        import h5py

        with atomic_write(path) as handle:
            with h5py.File(handle, "w") as f:
                for key, value in arrays.items():
                    f.create_dataset(key, data=value.astype(bool) if key in ("terminals", "timeouts") else value)
                if dataset.env_name:
                    f.attrs["env_name"] = dataset.env_name
                if dataset.generated_by:
                    f.attrs["generated_by"] = json.dumps(dataset.generated_by)
    else:
        raise DatasetError(f"{path}: unknown dataset suffix {path.suffix!r} (use .npz, .hdf5 or .h5)")
    return path


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    """Load a dataset from a package .npz, a D4RL-layout HDF5 file or a Minari dataset folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"dataset {path} does not exist (datasets are never downloaded)")
    if path.is_dir():
        return _load_minari(path)
    if path.suffix == ".npz":
        return _load_npz(path)
    if path.suffix in (".hdf5", ".h5"):
        return _load_d4rl(path)
    raise DatasetError(f"{path}: unknown dataset format (expected .npz, .hdf5/.h5 or a Minari folder)")


def _load_npz(path: Path) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path}: not a readable .npz file ({exc})") from None
    if "meta" in data:
        try:
            meta = json.loads(str(data.pop("meta")))
        except ValueError:
            raise DatasetError(f"{path}: invalid 'meta' entry (not a synther_fast dataset)") from None
        if meta.get("format") != NPZ_FORMAT or meta.get("version") != NPZ_VERSION:
            raise DatasetError(f"{path}: unsupported dataset format {meta.get('format')} v{meta.get('version')}")
    else:  # a plain D4RL-style .npz: the arrays alone (timeouts optional, as the HDF5 loader)
        meta = {}
        if "timeouts" not in data and "terminals" in data:
            data["timeouts"] = np.zeros(len(data["terminals"]), np.float32)
    missing = {"observations", "actions", "rewards", "next_observations", "terminals", "timeouts"} - set(data)
    if missing:
        raise DatasetError(f"{path}: missing arrays {sorted(missing)}")
    return Dataset(**{k: data[k] for k in ("observations", "actions", "rewards", "next_observations",
                                            "terminals", "timeouts")},
                   env_name=meta.get("env_name"), source=str(path), generated_by=meta.get("generated_by"))


def _open_hdf5(path: Path):
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise DatasetError(f"{path}: not a readable HDF5 file ({exc})") from None


def _load_d4rl(path: Path) -> Dataset:
    with _open_hdf5(path) as f:
        missing = {"observations", "actions", "rewards", "terminals"} - set(f.keys())
        if missing:
            raise DatasetError(f"{path}: missing D4RL keys {sorted(missing)}")
        try:
            import h5py

            data = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
        except OSError as exc:
            raise DatasetError(f"{path}: truncated or corrupted HDF5 data ({exc})") from None
        env_name = f.attrs.get("env_name")
        generated_by = json.loads(f.attrs["generated_by"]) if "generated_by" in f.attrs else None
    n = len(data["observations"])
    if "next_observations" not in data and "timeouts" not in data:
        raise DatasetError(f"{path}: without 'next_observations' the file needs 'timeouts' to know "
                           f"where episodes end")
    timeouts = data.get("timeouts", np.zeros(n))
    if "next_observations" in data:
        return Dataset(data["observations"], data["actions"], data["rewards"], data["next_observations"],
                       data["terminals"], timeouts, env_name, str(path), generated_by)
    # Next observation = the following step of the same episode; drop steps ending by time-out
    # (their successor belongs to the next episode) and the final step.
    timeouts = np.asarray(timeouts) > 0
    keep = np.flatnonzero(~timeouts[:-1])
    obs = np.asarray(data["observations"])
    terminals = np.asarray(data["terminals"])[keep]
    # The last kept step of a timed-out episode now ends it; so does the last row of the file.
    ends = timeouts[keep + 1] & (terminals == 0)
    if len(ends):
        ends[-1] = terminals[-1] == 0
    return Dataset(obs[keep], np.asarray(data["actions"])[keep], np.asarray(data["rewards"])[keep],
                   obs[keep + 1], terminals, ends, env_name, str(path))


def _episode_array(group: Any, name: str, path: Path, episode: str) -> np.ndarray:
    if name not in group:
        raise DatasetError(f"{path}: {episode} lacks '{name}'")
    item = group[name]
    if hasattr(item, "keys"):  # a dict space: concatenate its parts in key order
        return np.concatenate([np.asarray(item[k][()]).reshape(len(item[k]), -1) for k in sorted(item.keys())], 1)
    return np.asarray(item[()])


def _load_minari(folder: Path) -> Dataset:
    main = folder / "data" / "main_data.hdf5"
    if not main.is_file():
        raise DatasetError(f"{folder}: not a Minari dataset folder (no data/main_data.hdf5)")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "rew", "next", "term", "trunc")}
    env_name = None
    meta_file = folder / "data" / "metadata.json"
    if meta_file.is_file():
        try:  # Minari stores the gymnasium EnvSpec as a JSON string
            spec = json.loads(meta_file.read_text()).get("env_spec")
            env_name = json.loads(spec).get("id") if isinstance(spec, str) else None
        except (ValueError, AttributeError):
            env_name = None
    with _open_hdf5(main) as f:
        episodes = sorted((k for k in f.keys() if k.startswith("episode_")), key=lambda k: int(k.split("_")[1]))
        if not episodes:
            raise DatasetError(f"{main}: no episode_N groups")
        for name in episodes:
            group = f[name]
            try:
                obs = _episode_array(group, "observations", main, name)
                act = _episode_array(group, "actions", main, name)
                rew = _episode_array(group, "rewards", main, name)
                term = _episode_array(group, "terminations", main, name)
                trunc = _episode_array(group, "truncations", main, name)
            except OSError as exc:
                raise DatasetError(f"{main}: truncated or corrupted episode {name} ({exc})") from None
            steps = len(act)
            if len(obs) != steps + 1:
                raise DatasetError(f"{main}: {name} has {len(obs)} observations for {steps} actions (expected one more)")
            parts["obs"].append(obs[:-1].reshape(steps, -1))
            parts["next"].append(obs[1:].reshape(steps, -1))
            parts["act"].append(act.reshape(steps, -1))
            parts["rew"].append(rew.reshape(steps))
            parts["term"].append(term.reshape(steps).astype(np.float32))
            trunc = trunc.reshape(steps).astype(np.float32)
            trunc[-1] = max(trunc[-1], 1.0 - term[-1])  # an episode's last step ends it
            parts["trunc"].append(trunc)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    return Dataset(cat["obs"], cat["act"], cat["rew"], cat["next"], cat["term"], cat["trunc"],
                   env_name if isinstance(env_name, str) else None, str(folder))
