"""save / load / restore: atomic writes, round trips, and rejection of bad files."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
from replay_helpers import numbered_rows, random_rows

from synther_fast import ReplayBuffer, ReplayFileError, TransitionLayout
from synther_fast.replay.reference import NumpyReplayBuffer

LAYOUT = TransitionLayout(obs_dim=4, act_dim=2, has_terminal=False)
IMPLS = [ReplayBuffer, NumpyReplayBuffer]


def wrapped_buffer(impl=ReplayBuffer, capacity: int = 20, total: int = 47):
    buf = impl(capacity, LAYOUT)
    rows = random_rows(np.random.default_rng(total), total, LAYOUT)
    for start in range(0, total, 9):
        buf.add(rows[start : start + 9])
    return buf


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("total", [0, 5, 20, 47])
def test_round_trip(tmp_path, impl, total) -> None:
    buf = wrapped_buffer(impl, total=total)
    buf.save(tmp_path / "b.replay")
    loaded = impl.load(tmp_path / "b.replay")
    assert loaded.layout == LAYOUT and loaded.capacity == buf.capacity
    assert len(loaded) == len(buf) and loaded.total_added == buf.total_added
    np.testing.assert_array_equal(loaded.to_numpy(), buf.to_numpy())
    # The loaded buffer keeps working as a ring: the next add overwrites the oldest row.
    loaded.add(numbered_rows(1000, 1, LAYOUT))
    buf.add(numbered_rows(1000, 1, LAYOUT))
    np.testing.assert_array_equal(loaded.to_numpy(), buf.to_numpy())


def test_files_are_interchangeable_between_implementations(tmp_path) -> None:
    wrapped_buffer(ReplayBuffer).save(tmp_path / "cpp.replay")
    wrapped_buffer(NumpyReplayBuffer).save(tmp_path / "np.replay")
    assert (tmp_path / "cpp.replay").read_bytes() == (tmp_path / "np.replay").read_bytes()
    loaded = NumpyReplayBuffer.load(tmp_path / "cpp.replay")
    np.testing.assert_array_equal(loaded.to_numpy(), wrapped_buffer().to_numpy())


def test_load_into_smaller_capacity_keeps_newest(tmp_path) -> None:
    buf = wrapped_buffer()
    buf.save(tmp_path / "b.replay")
    with pytest.raises(ValueError, match="drop_oldest"):  # never silently
        ReplayBuffer.load(tmp_path / "b.replay", capacity=8)
    small = ReplayBuffer.load(tmp_path / "b.replay", capacity=8, drop_oldest=True)
    assert len(small) == 8 and small.total_added == buf.total_added
    np.testing.assert_array_equal(small.to_numpy(), buf.to_numpy()[-8:])


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "b.replay"
    wrapped_buffer().save(path)
    return path


def _restore_fails(path, match):
    target = wrapped_buffer(total=11)
    before = target.to_numpy()
    with pytest.raises(ReplayFileError, match=match):
        target.restore(path)
    assert len(target) == 11 and target.total_added == 11
    np.testing.assert_array_equal(target.to_numpy(), before)


@pytest.mark.parametrize("keep", [0, 7, 15, 40, -1, -4])
def test_truncated_file_rejected(saved, keep) -> None:
    data = saved.read_bytes()
    saved.write_bytes(data[:keep])
    _restore_fails(saved, "truncated")


def test_trailing_bytes_rejected(saved) -> None:
    saved.write_bytes(saved.read_bytes() + b"\0\0\0\0")
    _restore_fails(saved, "trailing")


def test_corrupted_rows_rejected(saved) -> None:
    data = bytearray(saved.read_bytes())
    data[-10] ^= 0x40
    saved.write_bytes(bytes(data))
    _restore_fails(saved, "row data checksum")


def test_corrupted_header_rejected(saved) -> None:
    data = bytearray(saved.read_bytes())
    data[30] ^= 0x01
    saved.write_bytes(bytes(data))
    _restore_fails(saved, "header checksum")


def test_wrong_magic_and_version(saved, tmp_path) -> None:
    data = saved.read_bytes()
    other = tmp_path / "other.replay"
    other.write_bytes(b"NOTAFILE" + data[8:])
    _restore_fails(other, "bad magic")
    other.write_bytes(data[:8] + struct.pack("<I", 99) + data[12:])
    _restore_fails(other, "version 99")


def test_layout_mismatch_rejected(tmp_path) -> None:
    other = ReplayBuffer(5, TransitionLayout(4, 2, has_terminal=True))
    other.add(np.ones((2, other.layout.width)))
    other.save(tmp_path / "other.replay")
    _restore_fails(tmp_path / "other.replay", "does not match")


def test_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ReplayBuffer.load(tmp_path / "nope.replay")


def test_failed_save_leaves_previous_file(tmp_path, monkeypatch) -> None:
    path = tmp_path / "b.replay"
    wrapped_buffer(total=11).save(path)
    before = path.read_bytes()
    from synther_fast.replay import storage_file

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(storage_file.zlib, "crc32", explode)
    with pytest.raises(OSError, match="disk full"):
        wrapped_buffer(total=47).save(path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["b.replay"]  # no temporary file left behind


def test_save_into_a_missing_directory_creates_it(tmp_path) -> None:
    buffer = wrapped_buffer()
    buffer.save(tmp_path / "no" / "such" / "dir.replay")
    assert np.array_equal(ReplayBuffer.load(tmp_path / "no" / "such" / "dir.replay").to_numpy(), buffer.to_numpy())


def test_save_where_a_file_stands_in_for_a_folder_says_so(tmp_path) -> None:
    (tmp_path / "taken").write_bytes(b"not a folder")
    with pytest.raises(NotADirectoryError, match="taken is a file, not a directory"):
        wrapped_buffer().save(tmp_path / "taken" / "b.replay")
    assert (tmp_path / "taken").read_bytes() == b"not a folder"


def test_load_of_a_directory_says_so(tmp_path) -> None:
    with pytest.raises(ReplayFileError, match="is a directory"):
        ReplayBuffer.load(tmp_path)


def test_clear_drops_every_row() -> None:
    buf = wrapped_buffer()
    buf.clear()
    assert len(buf) == 0 and buf.total_added == 0
    buf.add(np.ones((2, buf.layout.width), np.float32))
    np.testing.assert_array_equal(buf.to_numpy(), np.ones((2, buf.layout.width), np.float32))
