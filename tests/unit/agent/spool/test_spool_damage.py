"""Damaged files, torn tails, stray files and a full disk: the spool opens and keeps what is intact."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import pytest

from infragent.agent.spool import HEADER_SIZE, Spool, SpoolFullError


def payload(i: int, size: int = 300) -> bytes:
    return (f"<{i:06d}>".encode() * (size // 8 + 1))[:size]


def write_batches(directory: Path, count: int) -> None:
    with Spool(directory) as spool:
        for i in range(count):
            spool.append(f"batch-{i}", i + 1, payload(i))


def only_segment(directory: Path) -> Path:
    (segment,) = directory.glob("seg-*.spool")
    return segment


def delivered(directory: Path) -> list[str]:
    with Spool(directory) as spool:
        records = spool.peek(1000)
    for r in records:
        assert r.payload == payload(int(r.batch_id.split("-")[1]))
    return [r.batch_id for r in records]


def frame_start(data: bytes | bytearray, i: int) -> int:
    return data.index(f"batch-{i}".encode()) - HEADER_SIZE


@pytest.mark.parametrize(
    "where",
    ["payload", "batch_id", "magic", "crc", "huge_length"],
)
def test_damaged_middle_record_is_set_aside_and_the_rest_delivered(tmp_path: Path, where: str) -> None:
    write_batches(tmp_path, 10)
    segment = only_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    start = frame_start(data, 5)
    if where == "huge_length":
        struct.pack_into("<I", data, start + 24, 0x7FFFFFFF)  # points past the end of the file
    else:
        offset = {"magic": 0, "crc": 29, "batch_id": HEADER_SIZE + 2, "payload": HEADER_SIZE + 100}[where]
        data[start + offset] ^= 0x40
    segment.write_bytes(bytes(data))

    expected = [f"batch-{i}" for i in range(10) if i != 5]
    with Spool(tmp_path) as spool:
        assert spool.stats.corrupt_records == 1
        assert spool.stats.points_pending == sum(i + 1 for i in range(10) if i != 5)
    assert delivered(tmp_path) == expected
    quarantined = list((tmp_path / "quarantine").iterdir())
    assert len(quarantined) == 1
    assert quarantined[0].read_bytes() == bytes(data[start : frame_start(data, 6)])

    with Spool(tmp_path) as spool:  # counted once, persisted
        assert spool.stats.corrupt_records == 1
        spool.append("batch-10", 11, payload(10))
    assert delivered(tmp_path) == [*expected, "batch-10"]


def test_damage_in_already_acknowledged_bytes_is_not_counted(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(6):
            spool.append(f"batch-{i}", 1, payload(i))
        spool.ack(spool.peek(3))
    segment = only_segment(tmp_path)
    data = bytearray(segment.read_bytes())
    data[frame_start(data, 1) + HEADER_SIZE + 50] ^= 0xFF
    segment.write_bytes(bytes(data))

    with Spool(tmp_path) as spool:
        assert spool.stats.corrupt_records == 0
    assert delivered(tmp_path) == ["batch-3", "batch-4", "batch-5"]


@pytest.mark.parametrize("kept", [0, 2, 10, HEADER_SIZE, HEADER_SIZE + 120])
def test_torn_tail_is_truncated_silently(tmp_path: Path, kept: int) -> None:
    """What a SIGKILL in the middle of write(2) leaves: a prefix of the last frame."""
    write_batches(tmp_path, 5)
    segment = only_segment(tmp_path)
    data = segment.read_bytes()
    segment.write_bytes(data[: frame_start(data, 4) + kept])

    assert delivered(tmp_path) == [f"batch-{i}" for i in range(4)]
    with Spool(tmp_path) as spool:
        assert spool.stats.corrupt_records == 0
        spool.append("batch-4", 5, payload(4))  # lands right after the last intact frame
    assert delivered(tmp_path) == [f"batch-{i}" for i in range(5)]
    assert not (tmp_path / "quarantine").exists()


def test_stray_files_are_ignored_or_set_aside(tmp_path: Path) -> None:
    write_batches(tmp_path, 4)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "subdir").mkdir()
    (tmp_path / "seg-00000000000000000099.spool").write_bytes(os.urandom(500))  # garbage "segment"
    (tmp_path / "seg-00000000000000000098.spool").write_bytes(b"")

    assert delivered(tmp_path) == [f"batch-{i}" for i in range(4)]
    with Spool(tmp_path) as spool:
        assert spool.stats.corrupt_records == 1
        spool.append("batch-4", 5, payload(4))
    assert delivered(tmp_path) == [f"batch-{i}" for i in range(5)]
    assert (tmp_path / "notes.txt").read_text() == "hello"


def test_unreadable_state_means_redelivery_not_a_crash(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(4):
            spool.append(f"batch-{i}", 1, payload(i))
        spool.ack(spool.peek(2))
    (tmp_path / "state.json").write_bytes(b"\x00not json")

    assert delivered(tmp_path) == [f"batch-{i}" for i in range(4)]  # at-least-once
    assert any(p.name.endswith("state.json.bad") for p in (tmp_path / "quarantine").iterdir())


class FullDisk:
    """The write seam: passes through until told the disk is full (optionally after a short write)."""

    def __init__(self) -> None:
        self.full = False
        self.short_first = False

    def __call__(self, fd: int, data: bytes) -> int:
        if not self.full:
            return os.write(fd, data)
        if self.short_first:
            self.short_first = False
            return os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("short_first", [False, True])
def test_disk_full_on_append_raises_and_leaves_the_spool_consistent(
    tmp_path: Path, short_first: bool
) -> None:
    disk = FullDisk()
    with Spool(tmp_path, writer=disk) as spool:
        for i in range(3):
            spool.append(f"batch-{i}", i + 1, payload(i))
        before = spool.stats
        size = only_segment(tmp_path).stat().st_size

        disk.full, disk.short_first = True, short_first
        with pytest.raises(SpoolFullError, match="no space left"):
            spool.append("batch-lost", 99, payload(99))
        assert spool.stats == before
        assert only_segment(tmp_path).stat().st_size == size  # no torn frame left behind
        assert [r.batch_id for r in spool.peek(10)] == ["batch-0", "batch-1", "batch-2"]

        disk.full = False
        spool.append("batch-3", 4, payload(3))
    assert delivered(tmp_path) == [f"batch-{i}" for i in range(4)]
    with Spool(tmp_path) as spool:
        assert spool.stats.corrupt_records == 0


def test_disk_full_on_ack_keeps_the_records(tmp_path: Path) -> None:
    disk = FullDisk()
    with Spool(tmp_path, writer=disk) as spool:
        for i in range(3):
            spool.append(f"batch-{i}", 1, payload(i))
        records = spool.peek(2)
        disk.full = True
        with pytest.raises(SpoolFullError):
            spool.ack(records)
        assert spool.stats.records == 3
        assert not (tmp_path / "state.json.tmp").exists()
        disk.full = False
        spool.ack(records)
    assert delivered(tmp_path) == ["batch-2"]


def test_record_damaged_while_open_is_set_aside_when_read(tmp_path: Path) -> None:
    with Spool(tmp_path) as spool:
        for i in range(3):
            spool.append(f"batch-{i}", i + 1, payload(i))
        segment = only_segment(tmp_path)
        data = bytearray(segment.read_bytes())
        data[frame_start(data, 1) + HEADER_SIZE + 10] ^= 0x01
        segment.write_bytes(bytes(data))  # same size, in place: the spool's offsets stay right

        records = spool.peek(10)
        assert [r.batch_id for r in records] == ["batch-0", "batch-2"]
        assert (spool.stats.corrupt_records, spool.stats.records, spool.stats.points_pending) == (1, 2, 4)
        spool.ack(records)
    with Spool(tmp_path) as spool:
        assert spool.stats.corrupt_records == 1  # behind the watermark now: not counted twice
        assert spool.peek(10) == []


def test_leftover_temp_files_of_our_own_are_removed_and_others_kept(tmp_path: Path) -> None:
    write_batches(tmp_path, 2)
    (tmp_path / "state.json.tmp").write_bytes(b"{")
    (tmp_path / "seg-00000000000000000001.spool.tmp").write_bytes(b"half a rewrite")
    (tmp_path / "mine.tmp").write_text("an operator's file")
    assert delivered(tmp_path) == ["batch-0", "batch-1"]
    assert sorted(p.name for p in tmp_path.glob("*.tmp")) == ["mine.tmp"]
