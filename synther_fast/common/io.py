"""File helpers shared by every writer in the package: nothing half-written ever replaces a file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def writable_path(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a file path that cannot be written, in one line that names why:
    it is a folder, a file stands where a folder is needed, or the folder is not writable.
    Missing folders are fine: :func:`make_parents` creates them when the file is written."""
    target = Path(path)
    if target.is_dir():
        raise IsADirectoryError(f"cannot write {target}: it is a directory")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot write {target}: {ancestor} is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {target}: no permission to write in {ancestor}")
    return target


def make_parents(path: str | os.PathLike[str]) -> Path:
    """Create the missing folders above ``path`` (as ``mkdir -p``), the one place every writer of
    the package does so: ``--out results/rows.npz`` works without a ``results/`` first."""
    target = writable_path(path)
    parent = target.parent if str(target.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    return parent


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over ``path``.

    If the body raises (or the process dies) the previous file at ``path`` is untouched and the
    temporary file is removed. Missing folders above ``path`` are created.
    """
    target = Path(path)
    directory = make_parents(target)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_umask())  # mkstemp creates 0600; use what open() would
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    # Make the rename itself durable.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


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


def remove_stale_temporaries(target: str | os.PathLike[str]) -> list[Path]:
    """Delete temporary files that an :func:`atomic_write` of ``target`` left behind when its
    process was killed (``.NAME.PID.*.tmp`` whose PID is gone; files of the older ``.NAME.*.tmp``
    pattern after an hour). Returns what was removed."""
    target = Path(target)
    directory = target.parent if str(target.parent) else Path(".")
    removed = []
    for candidate in directory.glob(f".{glob_escape(target.name)}.*.tmp"):
        middle = candidate.name[len(target.name) + 2:-len(".tmp")]
        pid_text = middle.split(".", 1)[0]
        if pid_text.isdigit() and "." in middle:
            stale = int(pid_text) != os.getpid() and not _alive(int(pid_text))
        else:
            with contextlib.suppress(OSError):
                stale = time.time() - candidate.stat().st_mtime > 3600
        if stale:
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_torch_dict(path: str | os.PathLike[str], map_location, error: type[Exception], what: str) -> dict:
    """``torch.load(weights_only=True)`` of a file holding a dict; a missing file raises
    FileNotFoundError, anything unreadable raises ``error`` naming the file and ``what`` it should be."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise error(f"{path} is a directory, not a {what}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    remove_stale_temporaries(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise error(f"{path}: not a readable {what} ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict):
        raise error(f"{path}: not a {what}")
    return payload
