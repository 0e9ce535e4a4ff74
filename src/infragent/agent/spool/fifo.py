"""``Spool``: a bounded, crash-safe FIFO of encoded batches on disk.

Why a sequence watermark instead of a (segment, offset) cursor: ``consumed_seq`` means "every
record with seq <= this is gone, acknowledged or dropped". It survives rewriting a damaged segment
without its bad bytes (offsets move, sequence numbers do not), and it makes counts exact across
crashes: the new watermark and counters are made durable *before* a segment file is removed, and
on open a record at or below the watermark is neither delivered nor counted again (``recovery.py``).
Disk use is bounded: past ``max_bytes`` the oldest segment is dropped and its records counted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Final

import msgspec

from infragent.agent.spool.disk import Entry, Segment, SpoolDir, SpoolState, Writer, fsync_dir, is_full
from infragent.agent.spool.frames import HEADER_SIZE, Frame, encode_frame, parse_frame
from infragent.agent.spool.model import Record, RecordTooLargeError, SpoolError, SpoolFullError, SpoolStats
from infragent.agent.spool.recovery import recover

logger = logging.getLogger(__name__)

_MAX_U64: Final = 2**64 - 1
MiB: Final = 1024 * 1024

#: How many dropped records are remembered in case their in-flight send is acknowledged later.
_MAX_DROPPED_REMEMBERED = 10_000


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
        self._disk = SpoolDir(self._dir, writer, clock)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._lock = threading.Lock()
        # Records dropped for space, by seq: one still in flight may be acknowledged afterwards, and
        # then it was not lost after all (bounded; a restart forgets it, over-counting at worst).
        self._dropped_seqs: OrderedDict[int, int] = OrderedDict()
        self._closed = False
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._disk.lock()
        self._segments: dict[int, Segment] = {}
        try:
            found = recover(self._disk)
        except BaseException:
            self._release()
            raise
        self._state = found.state
        self._segments = found.segments  # insertion order == id order == age
        self._pending = found.pending
        self._pending_points = found.pending_points
        self._bytes = found.bytes
        self._next_seq = found.next_seq
        self._next_segment_id = found.next_segment_id
        self._active = found.active

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
                if is_full(exc):
                    raise SpoolFullError(self._dir, "append") from exc
                raise
            segment.last_seq = seq
            self._pending.append(Entry(seq, segment.id, offset, size, points))
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
                    frame = parse_frame(buf, 0)
                    if not isinstance(frame, Frame) or frame.seq != entry.seq:
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
                if is_full(exc):
                    raise SpoolFullError(self._dir, "ack") from exc
                raise
            for r in reclaimed:
                del self._dropped_seqs[r.seq]
            for _ in live:
                self._pending_points -= self._pending.popleft().points
            self._remove_consumed_segments()

    @property
    def directory(self) -> Path:
        return self._dir

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

    def _release(self) -> None:
        for segment in self._segments.values():
            segment.close()
        os.close(self._lock_fd)  # closing the descriptor releases the flock

    def _check_open(self) -> None:
        if self._closed:
            raise SpoolError(f"spool {self._dir} is closed")

    # ----------------------------------------------------------------------------- writing

    def _writable_segment(self, size: int) -> Segment:
        active = self._active
        if active is not None and (
            active.poisoned or (active.size > 0 and active.size + size > self._segment_bytes)
        ):
            active.close()
            self._active = active = None
        if active is not None:
            return active
        seg_id = self._next_segment_id
        self._next_segment_id += 1
        path = self._disk.segment_path(seg_id)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644)
        try:
            fsync_dir(self._dir)
        except OSError:
            os.close(fd)
            self._disk.unlink(path)
            raise
        segment = Segment(seg_id, path, 0, last_seq=self._next_seq - 1, fd=fd)
        self._segments[seg_id] = segment
        self._active = segment
        return segment

    def _write_frame(self, segment: Segment, frame: bytes) -> int:
        """Append and fdatasync one frame; on failure cut the file back so no torn frame remains."""
        assert segment.fd is not None
        offset = segment.size
        try:
            self._disk.write_all(segment.fd, frame)
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

    def _save_state(self, state: SpoolState) -> None:
        """Replace state.json atomically; on return the new state is in effect (raises if not)."""
        self._disk.save_state(state)
        self._state = state

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

    def _remove_segment(self, segment: Segment) -> None:
        del self._segments[segment.id]
        self._bytes -= segment.size
        segment.close()
        if segment is self._active:
            self._active = None
        if self._disk.unlink(segment.path):
            self._disk.fsync_logged()

    def _set_aside_pending(self, index: int, raw: bytes) -> None:
        """A pending record that fails its CRC when read back (damaged while we ran)."""
        entry = self._pending[index]
        logger.error("spool %s: record seq %d is damaged on disk; setting it aside", self._dir, entry.seq)
        del self._pending[index]
        self._pending_points -= entry.points
        counted = msgspec.structs.replace(self._state, corrupt_records=self._state.corrupt_records + 1)
        try:
            self._disk.quarantine_dir().mkdir(exist_ok=True)
            self._disk.write_file(
                self._disk.quarantine_dir() / f"{self._disk.stamp()}-seq-{entry.seq}.bad", raw
            )
            self._save_state(counted)
        except OSError:
            logger.exception("spool %s: cannot record the damaged record", self._dir)
            self._state = counted
