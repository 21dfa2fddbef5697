"""The replay file format, shared by the C++ buffer and the NumPy reference.

Layout of a file:  MAGIC (8 bytes) | version u32 | header length u32 | header JSON | header crc32 u32
                   | rows: count x width float32, little-endian, oldest first.
The JSON holds the layout, capacity, count, total_added and the crc32 of the row bytes, so a
truncated, corrupted or mismatched file is rejected before anything is loaded.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synther_fast.common.io import atomic_write
from synther_fast.replay.layout import TransitionLayout

MAGIC = b"SYNRPLY\x00"
VERSION = 1
_PREFIX = struct.Struct("<8sII")
_CRC = struct.Struct("<I")
_MAX_HEADER = 1 << 20


class ReplayFileError(ValueError):
    """A replay file that cannot be loaded: wrong format, truncated, corrupted or mismatched."""


@dataclass(frozen=True)
class ReplayFile:
    layout: TransitionLayout
    capacity: int
    total_added: int
    rows: np.ndarray  # (count, width) float32, oldest first


def _raw(rows: np.ndarray) -> memoryview:
    """The bytes of a C-contiguous array, also when it has no rows."""
    return memoryview(rows.reshape(-1).view(np.uint8))


def write_replay_file(
    path: str | os.PathLike[str], layout: TransitionLayout, capacity: int, total_added: int,
    rows: np.ndarray,
) -> None:
    """Write atomically: a crash mid-write leaves any previous file at ``path`` intact."""
    rows = np.ascontiguousarray(rows, dtype="<f4")
    header = json.dumps(
        {
            "layout": layout.to_dict(),
            "capacity": int(capacity),
            "count": int(rows.shape[0]),
            "total_added": int(total_added),
            "dtype": "<f4",
            "rows_crc32": zlib.crc32(_raw(rows)),
        },
        sort_keys=True,
    ).encode()
    with atomic_write(path) as handle:
        handle.write(_PREFIX.pack(MAGIC, VERSION, len(header)))
        handle.write(header)
        handle.write(_CRC.pack(zlib.crc32(header)))
        handle.write(_raw(rows))


def read_replay_file(path: str | os.PathLike[str]) -> ReplayFile:
    """Read and fully validate a replay file; raises ReplayFileError naming the problem."""
    path = Path(path)
    if path.is_dir():
        raise ReplayFileError(f"{path} is a directory, not a replay file")
    if not path.is_file():
        raise FileNotFoundError(f"replay file {path} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(_PREFIX.size)
        if len(prefix) < _PREFIX.size:
            raise ReplayFileError(f"{path}: truncated ({size} bytes, shorter than the file prefix)")
        magic, version, header_len = _PREFIX.unpack(prefix)
        if magic != MAGIC:
            raise ReplayFileError(f"{path}: not a synther_fast replay file (bad magic {magic!r})")
        if version != VERSION:
            raise ReplayFileError(
                f"{path}: replay file version {version} is not supported (this package reads {VERSION})"
            )
        if header_len > _MAX_HEADER:
            raise ReplayFileError(f"{path}: corrupted header length {header_len}")
        header_bytes = handle.read(header_len)
        crc_bytes = handle.read(_CRC.size)
        if len(header_bytes) < header_len or len(crc_bytes) < _CRC.size:
            raise ReplayFileError(f"{path}: truncated inside the header")
        if zlib.crc32(header_bytes) != _CRC.unpack(crc_bytes)[0]:
            raise ReplayFileError(f"{path}: header checksum mismatch (the file is corrupted)")
        try:
            header = json.loads(header_bytes)
            layout = TransitionLayout.from_dict(header["layout"])
            capacity, count = int(header["capacity"]), int(header["count"])
            total_added, rows_crc = int(header["total_added"]), int(header["rows_crc32"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ReplayFileError(f"{path}: invalid header ({exc})") from None
        if header.get("dtype") != "<f4":
            raise ReplayFileError(f"{path}: unsupported row dtype {header.get('dtype')!r}")
        if not (0 <= count <= capacity and count <= total_added):
            raise ReplayFileError(
                f"{path}: inconsistent header (count {count}, capacity {capacity}, "
                f"total_added {total_added})"
            )
        expected = handle.tell() + count * layout.width * 4
        if size != expected:
            kind = "truncated" if size < expected else "has trailing bytes"
            raise ReplayFileError(f"{path}: {kind} ({size} bytes, expected {expected})")
        rows = np.empty((count, layout.width), dtype="<f4")
        handle.readinto(_raw(rows))
    if zlib.crc32(_raw(rows)) != rows_crc:
        raise ReplayFileError(f"{path}: row data checksum mismatch (the file is corrupted)")
    return ReplayFile(layout, capacity, total_added, rows.astype(np.float32, copy=False))
