"""Durable disk spool of the host agent: nothing accepted is lost.

Why it exists: every metric batch is written here before it is sent and leaves only when the
server has acknowledged it, so a server outage, an agent restart or a SIGKILL at any moment loses
nothing that ``append()`` returned for. Delivery is at-least-once: a crash between "the server
acknowledged" and "the ack is on disk" sends the batch again; the server dedupes by ``batch_id``.
Disk use is bounded: past ``max_bytes`` the oldest data is dropped and counted exactly.

Directory layout (one owning process at a time)::

    lock              flock(LOCK_EX) held while open; holds the owner's pid for the error message
    state.json        {"format", "consumed_seq", "dropped_records", "dropped_points", "corrupt_records"}
                      replaced atomically: write state.json.tmp, fsync, os.replace, fsync the directory
    seg-<20 digits>.spool    append-only segment files; a higher id holds newer records
    quarantine/       bytes set aside because they failed validation, named <UTC time>-<source>.bad

A segment is a run of frames, little-endian::

    offset  size  field
       0      4   magic b"\\xa5IAS"
       4      1   format version (1)
       5      1   flags (0, reserved)
       6      2   batch_id length in bytes (u16)
       8      8   seq: sequence number, strictly increasing over the spool's life (u64)
      16      8   points in the batch (u64)
      24      4   payload length (u32)
      28      4   CRC-32 (zlib.crc32) of bytes 0..27, then batch_id, then payload
      32      n   batch_id (UTF-8)
    32+n      m   payload (opaque, already encoded batch)

Why a sequence watermark instead of a (segment, offset) cursor: ``consumed_seq`` means "every
record with seq <= this is gone, acknowledged or dropped". It survives rewriting a damaged segment
without its bad bytes (offsets move, sequence numbers do not), and it makes counts exact across
crashes: the new watermark and counters are made durable *before* a segment file is removed, and
on open a record at or below the watermark is neither delivered nor counted again.

Recovery on open never raises because of what the files contain:

* a frame cut short at the end of the newest segment is the torn tail of a write killed midway;
  ``append()`` never returned for it, so it is truncated away and not counted;
* any other bad bytes (magic, framing, CRC) are copied to ``quarantine/``, counted in
  ``corrupt_records`` (one per damaged region) and the segment is rewritten without them; scanning
  resumes at the next frame whose CRC checks, so every intact record is still delivered;
* files that are neither ``lock``, ``state.json`` nor segments are ignored (and logged);
* an unreadable ``state.json`` is quarantined; the spool then re-delivers everything it holds.

A crash in the middle of a repair can count the same damaged region twice: over-reporting is
preferred to losing the count.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Annotated, Final, Literal, NamedTuple

import msgspec

from infragent.errors import InfrAgentError

logger = logging.getLogger(__name__)

MAGIC: Final = b"\xa5IAS"
FORMAT_VERSION: Final = 1
_HEAD = struct.Struct("<4sBBHQQI")  # the 28 bytes the CRC starts with
_CRC = struct.Struct("<I")
HEADER_SIZE: Final = _HEAD.size + _CRC.size
_MAX_U64: Final = 2**64 - 1
_SEGMENT_NAME = re.compile(r"seg-(\d{20})\.spool")
_STATE: Final = "state.json"
_LOCK: Final = "lock"
_QUARANTINE: Final = "quarantine"
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})

MiB: Final = 1024 * 1024

Writer = Callable[[int, bytes], int]
"""The file-write seam (``os.write``'s shape); tests inject one that fails with ENOSPC."""


#: How many dropped records are remembered in case their in-flight send is acknowledged later.
_MAX_DROPPED_REMEMBERED = 10_000


class SpoolError(InfrAgentError):
    """A spool operation failed; the spool is still consistent."""


class SpoolFullError(SpoolError):
    """The disk or quota is full, so nothing was changed.

    A type of its own because it is expected on a full disk rather than a bug: the agent logs it
    and carries on collecting.
    """

    def __init__(self, directory: Path, operation: str) -> None:
        super().__init__(f"spool {directory}: no space left on device during {operation}")
        self.directory = directory
        self.operation = operation


class SpoolLockedError(SpoolError):
    """Another process (or another ``Spool`` object) owns the directory."""

    def __init__(self, directory: Path, holder: str) -> None:
        who = f"process {holder}" if holder else "another process"
        super().__init__(f"spool {directory} is already open by {who}; one agent per spool directory")
        self.directory = directory
        self.holder = holder


class RecordTooLargeError(SpoolError, ValueError):
    """A record that could never fit under ``max_bytes``; storing it would mean dropping everything."""

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(f"record of {size} bytes cannot fit in a spool of max_bytes={max_bytes}")
        self.size = size
        self.max_bytes = max_bytes


@dataclass(frozen=True, slots=True)
class Record:
    """One spooled batch. ``seq`` is its position: unique and increasing within the spool."""

    batch_id: str
    points: int
    payload: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class SpoolStats:
    current_bytes: int
    max_bytes: int
    usage_percent: float
    records: int
    points_pending: int
    dropped_records: int
    dropped_points: int
    corrupt_records: int


_Count = Annotated[int, msgspec.Meta(ge=0)]


class _State(msgspec.Struct, frozen=True):
    format: _Count = 1
    consumed_seq: _Count = 0
    dropped_records: _Count = 0
    dropped_points: _Count = 0
    corrupt_records: _Count = 0


class _Frame(NamedTuple):
    seq: int
    points: int
    size: int
    batch_id: str
    payload_start: int


class _Entry(NamedTuple):
    """A pending record: where to read it, and what it counts for (kept in memory, ~100 B each)."""

    seq: int
    segment: int
    offset: int
    size: int
    points: int


@dataclass(slots=True)
class _Segment:
    id: int
    path: Path
    size: int
    last_seq: int
    fd: int | None = None  # open for appending: only the active (newest) segment
    poisoned: bool = False  # a failed write could not be rolled back: append elsewhere


_Bad = Literal["incomplete", "invalid"]


def encode_frame(seq: int, batch_id: bytes, points: int, payload: bytes) -> bytes:
    head = _HEAD.pack(MAGIC, FORMAT_VERSION, 0, len(batch_id), seq, points, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(batch_id, zlib.crc32(head)))
    return b"".join((head, _CRC.pack(crc), batch_id, payload))


def _parse(buf: bytes, off: int) -> _Frame | _Bad:
    """Validate the frame starting at ``off``; "incomplete" means it could be a cut-short write."""
    available = len(buf) - off
    if available < HEADER_SIZE:
        prefix = buf[off : off + len(MAGIC)]
        torn = MAGIC.startswith(prefix) and (available <= len(MAGIC) or buf[off + 4] == FORMAT_VERSION)
        return "incomplete" if torn else "invalid"
    magic, version, _flags, id_len, seq, points, payload_len = _HEAD.unpack_from(buf, off)
    if magic != MAGIC or version != FORMAT_VERSION:
        return "invalid"
    size = HEADER_SIZE + id_len + payload_len
    if size > available:
        return "incomplete"
    (crc,) = _CRC.unpack_from(buf, off + _HEAD.size)
    id_start = off + HEADER_SIZE
    payload_start = id_start + id_len
    body = memoryview(buf)
    actual = zlib.crc32(body[off : off + _HEAD.size])
    actual = zlib.crc32(body[id_start : off + size], actual)
    if actual != crc:
        return "invalid"
    try:
        batch_id = bytes(body[id_start:payload_start]).decode()
    except UnicodeDecodeError:
        return "invalid"
    return _Frame(seq, points, size, batch_id, payload_start - off)


@dataclass(slots=True)
class _Scan:
    frames: list[tuple[int, _Frame]]  # (offset, frame)
    bad: list[tuple[int, int]]  # damaged regions [start, end)
    torn_at: int | None  # offset of a cut-short final frame


def _scan(buf: bytes, *, newest: bool) -> _Scan:
    frames: list[tuple[int, _Frame]] = []
    bad: list[tuple[int, int]] = []
    off = 0
    while off < len(buf):
        got = _parse(buf, off)
        if isinstance(got, _Frame):
            frames.append((off, got))
            off += got.size
            continue
        resume = _resync(buf, off + 1)
        if resume is None:
            if got == "incomplete" and newest:
                return _Scan(frames, bad, torn_at=off)
            bad.append((off, len(buf)))
            break
        bad.append((off, resume))
        off = resume
    return _Scan(frames, bad, torn_at=None)


def _resync(buf: bytes, start: int) -> int | None:
    """Offset of the next frame whose CRC checks; a magic inside a payload does not count."""
    pos = buf.find(MAGIC, start)
    while pos != -1:
        if isinstance(_parse(buf, pos), _Frame):
            return pos
        pos = buf.find(MAGIC, pos + 1)
    return None


def _fsync_dir(path: Path) -> None:
    """Make a create, rename or unlink in ``path`` durable, not only the file contents."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _is_full(exc: OSError) -> bool:
    return exc.errno in _FULL_ERRNOS


class Spool:
    """Bounded, crash-safe FIFO of encoded batches; see the module docstring for the format.

    Thread-safe with one lock: the collector thread appends while the shipper peeks and acks.
    """

    def __init__(
        self,
        directory: Path,
        max_bytes: int = 100 * MiB,
        segment_bytes: int = 4 * MiB,
        *,
        writer: Writer = os.write,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError("max_bytes and segment_bytes must be positive")
        self._dir = Path(directory)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._write = writer
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _State()
        self._segments: dict[int, _Segment] = {}  # insertion order == id order == age
        self._pending: deque[_Entry] = deque()
        self._pending_points = 0
        # Records dropped for space, by seq: one still in flight may be acknowledged afterwards, and
        # then it was not lost after all (bounded; a restart forgets it, over-counting at worst).
        self._dropped_seqs: OrderedDict[int, int] = OrderedDict()
        self._bytes = 0
        self._next_seq = 1
        self._next_segment_id = 1
        self._active: _Segment | None = None
        self._closed = False
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._acquire_lock()
        try:
            self._recover()
        except BaseException:
            self._release()
            raise

    # ----------------------------------------------------------------------------- public API

    def append(self, batch_id: str, points: int, payload: bytes) -> int:
        """Store one batch durably (fsynced) and return its seq; raises SpoolFullError on ENOSPC."""
        raw_id = batch_id.encode()
        if len(raw_id) > 0xFFFF:
            raise ValueError("batch_id is longer than 65535 bytes")
        if not 0 <= points <= _MAX_U64:
            raise ValueError(f"points must be between 0 and 2**64-1, not {points}")
        size = HEADER_SIZE + len(raw_id) + len(payload)
        if size > self._max_bytes or len(payload) > 0xFFFFFFFF:
            raise RecordTooLargeError(size, self._max_bytes)
        with self._lock:
            self._check_open()
            seq = self._next_seq
            frame = encode_frame(seq, raw_id, points, payload)
            try:
                while self._segments and self._bytes + size > self._max_bytes:
                    self._drop_oldest()
                segment = self._writable_segment(size)
                offset = self._write_frame(segment, frame)
            except OSError as exc:
                if _is_full(exc):
                    raise SpoolFullError(self._dir, "append") from exc
                raise
            segment.last_seq = seq
            self._pending.append(_Entry(seq, segment.id, offset, size, points))
            self._pending_points += points
            self._next_seq = seq + 1
            return seq

    def peek(self, max_records: int) -> list[Record]:
        """The oldest records not yet acknowledged, oldest first; peeking again returns them again."""
        if max_records < 0:
            raise ValueError("max_records must not be negative")
        with self._lock:
            self._check_open()
            out: list[Record] = []
            readers: dict[int, int] = {}
            try:
                i = 0
                while len(out) < max_records and i < len(self._pending):
                    entry = self._pending[i]
                    fd = readers.get(entry.segment)
                    if fd is None:
                        fd = readers[entry.segment] = os.open(
                            self._segments[entry.segment].path, os.O_RDONLY | os.O_CLOEXEC
                        )
                    buf = os.pread(fd, entry.size, entry.offset)
                    frame = _parse(buf, 0)
                    if not isinstance(frame, _Frame) or frame.seq != entry.seq:
                        self._set_aside_pending(i, buf)
                        continue
                    payload = buf[frame.payload_start : frame.size]
                    out.append(Record(frame.batch_id, frame.points, payload, frame.seq))
                    i += 1
            finally:
                for fd in readers.values():
                    os.close(fd)
            return out

    def ack(self, records: Iterable[Record]) -> None:
        """Durably mark records done. They must be the oldest pending ones, in peek() order.

        Records already gone (dropped for space, or acknowledged before) are ignored, so a shipper
        that races a drop needs no special case. On a full disk the ack is not recorded
        (SpoolFullError) and the records will be sent again.
        """
        with self._lock:
            self._check_open()
            records = list(records)
            live = [r.seq for r in records if r.seq > self._state.consumed_seq]
            reclaimed = [
                r for r in records if r.seq <= self._state.consumed_seq and r.seq in self._dropped_seqs
            ]
            if not live and not reclaimed:
                return
            if len(live) > len(self._pending) or any(
                self._pending[i].seq != seq for i, seq in enumerate(live)
            ):
                raise ValueError("ack() takes the oldest pending records, in the order peek() returned them")
            state = self._state
            if reclaimed:  # dropped for space while in flight, yet delivered (or set aside): not lost
                state = msgspec.structs.replace(
                    state,
                    dropped_records=state.dropped_records - len(reclaimed),
                    dropped_points=state.dropped_points - sum(self._dropped_seqs[r.seq] for r in reclaimed),
                )
            if live:
                state = msgspec.structs.replace(state, consumed_seq=live[-1])
            try:
                self._save_state(state)
            except OSError as exc:
                if _is_full(exc):
                    raise SpoolFullError(self._dir, "ack") from exc
                raise
            for r in reclaimed:
                del self._dropped_seqs[r.seq]
            for _ in live:
                self._pending_points -= self._pending.popleft().points
            self._remove_consumed_segments()

    @property
    def stats(self) -> SpoolStats:
        with self._lock:
            return SpoolStats(
                current_bytes=self._bytes,
                max_bytes=self._max_bytes,
                usage_percent=100.0 * self._bytes / self._max_bytes,
                records=len(self._pending),
                points_pending=self._pending_points,
                dropped_records=self._state.dropped_records,
                dropped_points=self._state.dropped_points,
                corrupt_records=self._state.corrupt_records,
            )

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._release()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ----------------------------------------------------------------------------- ownership

    def _acquire_lock(self) -> int:
        fd = os.open(self._dir / _LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SpoolLockedError(self._dir, holder) from None
        with contextlib.suppress(OSError):  # the pid is only informational
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _release(self) -> None:
        for segment in self._segments.values():
            self._close_segment(segment)
        os.close(self._lock_fd)  # closing the descriptor releases the flock

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self._dir} is closed")

    # ----------------------------------------------------------------------------- recovery

    def _recover(self) -> None:
        self._state = self._load_state()
        ids: list[int] = []
        for path in sorted(self._dir.iterdir()):
            match = _SEGMENT_NAME.fullmatch(path.name)
            if match:
                ids.append(int(match.group(1)))
            elif path.name == _STATE + ".tmp" or _SEGMENT_NAME.fullmatch(path.name.removesuffix(".tmp")):
                # our own atomic write that never got renamed
                with contextlib.suppress(OSError):
                    path.unlink()
            elif path.name not in (_LOCK, _STATE, _QUARANTINE):
                logger.warning("spool %s: ignoring unexpected file %s", self._dir, path.name)
        ids.sort()
        last_seq = 0
        removed = False
        for seg_id in ids:
            path = self._segment_path(seg_id)
            try:
                buf = path.read_bytes()
            except OSError:
                logger.exception("spool %s: cannot read %s; leaving it alone", self._dir, path.name)
                continue
            size, frames = self._validate(path, buf, newest=seg_id == ids[-1])
            segment = _Segment(seg_id, path, size, last_seq=max(last_seq, self._state.consumed_seq))
            end = 0
            for offset, frame in frames:
                end = offset + frame.size
                if frame.seq <= last_seq:
                    logger.warning("spool %s: %s repeats seq %d; skipped", self._dir, path.name, frame.seq)
                    continue
                last_seq = segment.last_seq = frame.seq
                if frame.seq > self._state.consumed_seq:
                    self._pending.append(_Entry(frame.seq, seg_id, offset, frame.size, frame.points))
                    self._pending_points += frame.points
            if not self._pending or self._pending[-1].segment != seg_id:
                removed |= self._unlink(path)  # nothing left to deliver in it
                continue
            segment.poisoned = end != size  # never append after bytes we could not remove
            self._segments[seg_id] = segment
            self._bytes += size
        if removed:
            self._fsync_dir_logged()
        self._next_seq = max(last_seq, self._state.consumed_seq) + 1
        self._next_segment_id = (ids[-1] + 1) if ids else 1
        newest = next(reversed(self._segments.values()), None)
        if newest is not None and newest.id == ids[-1] and not newest.poisoned:
            newest.fd = os.open(newest.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            self._active = newest

    def _load_state(self) -> _State:
        path = self._dir / _STATE
        try:
            return msgspec.json.decode(path.read_bytes(), type=_State)
        except FileNotFoundError:
            return _State()
        except (msgspec.DecodeError, OSError):
            logger.exception("spool %s: unreadable %s; re-delivering everything held", self._dir, _STATE)
            with contextlib.suppress(OSError):
                self._quarantine_dir().mkdir(exist_ok=True)
                os.replace(path, self._quarantine_dir() / f"{self._stamp()}-{_STATE}.bad")
            return _State()

    def _validate(self, path: Path, buf: bytes, *, newest: bool) -> tuple[int, list[tuple[int, _Frame]]]:
        """Return (size on disk, intact frames at their offsets), repairing what can be repaired."""
        scan = _scan(buf, newest=newest)
        consumed = self._state.consumed_seq
        damaged = [(s, e) for s, e in scan.bad if not self._only_consumed(scan.frames, e, consumed)]
        if damaged:
            return self._repair(path, buf, scan.frames, damaged)
        if scan.torn_at is not None:
            logger.warning(
                "spool %s: %s ends with an interrupted write (%d bytes); truncating it",
                self._dir,
                path.name,
                len(buf) - scan.torn_at,
            )
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
                try:
                    os.ftruncate(fd, scan.torn_at)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                logger.exception("spool %s: cannot truncate %s", self._dir, path.name)
                return len(buf), scan.frames
            return scan.torn_at, scan.frames
        return len(buf), scan.frames

    @staticmethod
    def _only_consumed(frames: list[tuple[int, _Frame]], end: int, consumed: int) -> bool:
        """A damaged region followed by a record at or below the watermark held only consumed data."""
        following = next((frame.seq for offset, frame in frames if offset >= end), None)
        return following is not None and following <= consumed

    def _repair(
        self, path: Path, buf: bytes, frames: list[tuple[int, _Frame]], damaged: list[tuple[int, int]]
    ) -> tuple[int, list[tuple[int, _Frame]]]:
        """Quarantine damaged regions, count them, and rewrite the segment with intact frames only.

        Order matters: bytes are copied aside first (nothing is ever destroyed unseen), the count is
        made durable next, and only then is the segment replaced.
        """
        logger.error(
            "spool %s: %s has %d damaged region(s); setting aside", self._dir, path.name, len(damaged)
        )
        counted = msgspec.structs.replace(
            self._state, corrupt_records=self._state.corrupt_records + len(damaged)
        )
        try:
            self._quarantine_dir().mkdir(exist_ok=True)
            for start, end in damaged:
                name = f"{self._stamp()}-{path.name}-{start}-{end}.bad"
                self._write_file(self._quarantine_dir() / name, buf[start:end])
            _fsync_dir(self._quarantine_dir())
            self._save_state(counted)
        except OSError:
            logger.exception("spool %s: cannot set aside damage in %s; skipping it", self._dir, path.name)
            self._state = counted  # counted in memory; the bytes stay and are counted again next open
            return len(buf), frames
        kept: list[tuple[int, _Frame]] = []
        offset = 0
        for _, frame in frames:
            kept.append((offset, frame))
            offset += frame.size
        tmp = path.with_name(path.name + ".tmp")
        try:
            self._write_file(tmp, b"".join(buf[o : o + f.size] for o, f in frames))
            os.replace(tmp, path)
        except OSError:
            logger.exception("spool %s: cannot rewrite %s; skipping damage in place", self._dir, path.name)
            return len(buf), frames
        self._fsync_dir_logged()
        return offset, kept

    # ----------------------------------------------------------------------------- writing

    def _writable_segment(self, size: int) -> _Segment:
        active = self._active
        if active is not None and (
            active.poisoned or (active.size > 0 and active.size + size > self._segment_bytes)
        ):
            self._close_segment(active)
            self._active = active = None
        if active is not None:
            return active
        seg_id = self._next_segment_id
        self._next_segment_id += 1
        path = self._segment_path(seg_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            _fsync_dir(self._dir)
        except OSError:
            os.close(fd)
            self._unlink(path)
            raise
        segment = _Segment(seg_id, path, 0, last_seq=self._next_seq - 1, fd=fd)
        self._segments[seg_id] = segment
        self._active = segment
        return segment

    def _write_frame(self, segment: _Segment, frame: bytes) -> int:
        """Append and fdatasync one frame; on failure cut the file back so no torn frame remains."""
        assert segment.fd is not None
        offset = segment.size
        try:
            self._write_all(segment.fd, frame)
            os.fdatasync(segment.fd)  # the new size is flushed too: the data can be found again
        except OSError:
            try:
                os.ftruncate(segment.fd, offset)
            except OSError:
                logger.exception("spool %s: cannot roll back %s", self._dir, segment.path.name)
                segment.poisoned = True  # the torn bytes are detected and set aside on next open
            raise
        segment.size += len(frame)
        self._bytes += len(frame)
        return offset

    def _write_all(self, fd: int, data: bytes) -> None:
        while data:
            written = self._write(fd, data)
            data = data[written:]

    def _write_file(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            self._write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _save_state(self, state: _State) -> None:
        """Replace state.json atomically; on return the new state is in effect (raises if not)."""
        path = self._dir / _STATE
        tmp = self._dir / (_STATE + ".tmp")
        try:
            self._write_file(tmp, msgspec.json.encode(state))
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._state = state
        self._fsync_dir_logged()

    # ----------------------------------------------------------------------------- removing

    def _drop_oldest(self) -> None:
        """Make room by dropping the oldest segment; its pending records are counted as dropped."""
        segment = next(iter(self._segments.values()))
        records = points = 0
        for entry in self._pending:
            if entry.segment != segment.id:
                break
            records += 1
            points += entry.points
        self._save_state(
            msgspec.structs.replace(
                self._state,
                consumed_seq=max(self._state.consumed_seq, segment.last_seq),
                dropped_records=self._state.dropped_records + records,
                dropped_points=self._state.dropped_points + points,
            )
        )
        for _ in range(records):
            entry = self._pending.popleft()
            self._dropped_seqs[entry.seq] = entry.points
        while len(self._dropped_seqs) > _MAX_DROPPED_REMEMBERED:
            self._dropped_seqs.popitem(last=False)
        self._pending_points -= points
        logger.warning(
            "spool %s over %d bytes: dropped %d records (%d points)",
            self._dir,
            self._max_bytes,
            records,
            points,
        )
        self._remove_segment(segment)

    def _remove_consumed_segments(self) -> None:
        head = self._pending[0].segment if self._pending else None
        for segment in list(self._segments.values()):
            if head is not None and segment.id >= head:
                break
            if segment is self._active and segment.size < self._segment_bytes:
                break  # still being filled; it goes once it has rolled over
            self._remove_segment(segment)

    def _remove_segment(self, segment: _Segment) -> None:
        del self._segments[segment.id]
        self._bytes -= segment.size
        self._close_segment(segment)
        if segment is self._active:
            self._active = None
        if self._unlink(segment.path):
            self._fsync_dir_logged()

    def _set_aside_pending(self, index: int, raw: bytes) -> None:
        """A pending record that fails its CRC when read back (damaged while we ran)."""
        entry = self._pending[index]
        logger.error("spool %s: record seq %d is damaged on disk; setting it aside", self._dir, entry.seq)
        del self._pending[index]
        self._pending_points -= entry.points
        counted = msgspec.structs.replace(self._state, corrupt_records=self._state.corrupt_records + 1)
        try:
            self._quarantine_dir().mkdir(exist_ok=True)
            self._write_file(self._quarantine_dir() / f"{self._stamp()}-seq-{entry.seq}.bad", raw)
            self._save_state(counted)
        except OSError:
            logger.exception("spool %s: cannot record the damaged record", self._dir)
            self._state = counted

    # ----------------------------------------------------------------------------- small helpers

    def _close_segment(self, segment: _Segment) -> None:
        if segment.fd is not None:
            os.close(segment.fd)
            segment.fd = None

    def _unlink(self, path: Path) -> bool:
        try:
            path.unlink()
        except OSError:
            logger.exception("spool %s: cannot remove %s", self._dir, path.name)
            return False
        return True

    def _fsync_dir_logged(self) -> None:
        """After a rename or unlink that already happened: failing here must not undo bookkeeping."""
        try:
            _fsync_dir(self._dir)
        except OSError:
            logger.exception("spool %s: cannot fsync the directory", self._dir)

    def _segment_path(self, seg_id: int) -> Path:
        return self._dir / f"seg-{seg_id:020d}.spool"

    def _quarantine_dir(self) -> Path:
        return self._dir / _QUARANTINE

    def _stamp(self) -> str:
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
