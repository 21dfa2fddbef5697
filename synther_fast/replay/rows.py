"""Turning user input (numpy arrays, CPU torch tensors, lists) into validated float32 row blocks."""

from __future__ import annotations

from typing import Any

import numpy as np

from synther_fast.replay.layout import TransitionLayout


def as_row_block(rows: Any, layout: TransitionLayout) -> np.ndarray:
    """A float32, C-contiguous (n, width) view of ``rows``; converts other real dtypes once.

    float32 C-contiguous input (numpy, or a CPU torch tensor) is returned without a copy.
    """
    if type(rows).__module__.startswith("torch"):
        rows = _torch_to_numpy(rows)
    array = np.asarray(rows)
    if array.dtype.kind not in "fiu":
        raise TypeError(
            f"rows must hold real numbers (float or int), got dtype {array.dtype}"
        )
    if array.ndim == 1:
        array = array.reshape(1, -1)
    elif array.ndim != 2:
        raise ValueError(
            f"rows must be one row (width,) or a batch (n, width); got shape {array.shape}"
        )
    if array.shape[1] != layout.width:
        raise ValueError(
            f"rows have width {array.shape[1]}, but the layout {layout} has width {layout.width} "
            f"(obs {layout.obs_dim} + action {layout.act_dim} + reward 1 + next_obs "
            f"{layout.obs_dim}{' + terminal 1' if layout.has_terminal else ''})"
        )
    if array.dtype != np.float32 or not array.flags.c_contiguous:
        with np.errstate(over="ignore"):  # overflow to inf is caught by the finiteness check
            array = np.ascontiguousarray(array, dtype=np.float32)
    return array


def nonfinite_error(rows: np.ndarray, row: int, column: int, layout: TransitionLayout) -> ValueError:
    """The error for a NaN/inf found at (row, column), naming the field and how many rows are bad."""
    bad_rows = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    return ValueError(
        f"rows contain non-finite values: {len(bad_rows)} of {len(rows)} rows, first at row {row}, "
        f"column {column} ({layout.column_name(column)}) = {rows[row, column]}; nothing was added "
        f"(pass allow_nonfinite=True to store them anyway)"
    )


def _torch_to_numpy(tensor: Any) -> np.ndarray:
    if tensor.device.type != "cpu":
        raise ValueError(
            f"rows are a torch tensor on {tensor.device}; move them to the CPU first (tensor.cpu())"
        )
    tensor = tensor.detach()
    if tensor.is_complex():
        raise TypeError(f"rows must hold real numbers, got torch dtype {tensor.dtype}")
    if str(tensor.dtype) == "torch.bfloat16":  # numpy has no bfloat16
        tensor = tensor.float()
    return tensor.numpy()
