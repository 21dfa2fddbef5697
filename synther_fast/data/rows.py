"""The one file format of generated rows: the package's dataset file (data/dataset.py), written
atomically. Files of earlier releases (one bare ``rows`` array) are still read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from synther_fast.data.dataset import Dataset, DatasetError, load_dataset, save_dataset
from synther_fast.replay.layout import TransitionLayout


def write_rows(rows: np.ndarray, layout: TransitionLayout, path: str | os.PathLike[str],
               info: dict | None = None) -> Path:
    """Synthetic rows as a dataset file (atomically): the one file format for generated rows.
    ``info``: how they were drawn (SynthER.sampler_record), stored as the file's generated_by."""
    dataset = Dataset.from_rows(rows, layout)
    dataset.generated_by = info
    return save_dataset(dataset, path)


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
