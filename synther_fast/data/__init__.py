"""Offline datasets: loading (package .npz, D4RL-layout HDF5, Minari folders), validation, writing
and local collection. Nothing is downloaded."""

from synther_fast.data.dataset import Dataset, DatasetError, load_dataset, save_dataset

__all__ = ["Dataset", "DatasetError", "load_dataset", "save_dataset"]
