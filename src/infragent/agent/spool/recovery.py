"""Opening a spool: rebuild the pending records from the segments, repairing what can be repaired.

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
import logging
import os
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from infragent.agent.spool.disk import (
    LOCK,
    QUARANTINE,
    SEGMENT_NAME,
    STATE,
    Entry,
    Segment,
    SpoolDir,
    SpoolState,
    fsync_dir,
)
from infragent.agent.spool.frames import Frame, scan

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class Recovered:
    """The spool's in-memory bookkeeping as found on disk."""

    state: SpoolState
    segments: dict[int, Segment] = field(default_factory=dict)  # insertion order == id order == age
    pending: deque[Entry] = field(default_factory=deque)
    pending_points: int = 0
    bytes: int = 0
    next_seq: int = 1
    next_segment_id: int = 1
    active: Segment | None = None


def recover(disk: SpoolDir) -> Recovered:
    """Read every segment of ``disk``, set damage aside, and open the newest segment for appending."""
    out = Recovered(disk.load_state())
    ids: list[int] = []
    for path in sorted(disk.path.iterdir()):
        match = SEGMENT_NAME.fullmatch(path.name)
        if match:
            ids.append(int(match.group(1)))
        elif path.name == STATE + ".tmp" or SEGMENT_NAME.fullmatch(path.name.removesuffix(".tmp")):
            # our own atomic write that never got renamed
            with contextlib.suppress(OSError):
                path.unlink()
        elif path.name not in (LOCK, STATE, QUARANTINE):
            logger.warning("spool %s: ignoring unexpected file %s", disk.path, path.name)
    ids.sort()
    last_seq = 0
    removed = False
    for seg_id in ids:
        path = disk.segment_path(seg_id)
        try:
            buf = path.read_bytes()
        except OSError:
            logger.exception("spool %s: cannot read %s; leaving it alone", disk.path, path.name)
            continue
        size, frames = _validate(disk, out, path, buf, newest=seg_id == ids[-1])
        segment = Segment(seg_id, path, size, last_seq=max(last_seq, out.state.consumed_seq))
        end = 0
        for offset, frame in frames:
            end = offset + frame.size
            if frame.seq <= last_seq:
                logger.warning("spool %s: %s repeats seq %d; skipped", disk.path, path.name, frame.seq)
                continue
            last_seq = segment.last_seq = frame.seq
            if frame.seq > out.state.consumed_seq:
                out.pending.append(Entry(frame.seq, seg_id, offset, frame.size, frame.points))
                out.pending_points += frame.points
        if not out.pending or out.pending[-1].segment != seg_id:
            removed |= disk.unlink(path)  # nothing left to deliver in it
            continue
        segment.poisoned = end != size  # never append after bytes we could not remove
        out.segments[seg_id] = segment
        out.bytes += size
    if removed:
        disk.fsync_logged()
    out.next_seq = max(last_seq, out.state.consumed_seq) + 1
    out.next_segment_id = (ids[-1] + 1) if ids else 1
    newest = next(reversed(out.segments.values()), None)
    if newest is not None and newest.id == ids[-1] and not newest.poisoned:
        newest.fd = os.open(newest.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        out.active = newest
    return out


def _validate(
    disk: SpoolDir, out: Recovered, path: Path, buf: bytes, *, newest: bool
) -> tuple[int, list[tuple[int, Frame]]]:
    """Return (size on disk, intact frames at their offsets), repairing what can be repaired."""
    found = scan(buf, newest=newest)
    consumed = out.state.consumed_seq
    damaged = [(s, e) for s, e in found.bad if not _only_consumed(found.frames, e, consumed)]
    if damaged:
        return _repair(disk, out, path, buf, found.frames, damaged)
    if found.torn_at is not None:
        logger.warning(
            "spool %s: %s ends with an interrupted write (%d bytes); truncating it",
            disk.path,
            path.name,
            len(buf) - found.torn_at,
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.ftruncate(fd, found.torn_at)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            logger.exception("spool %s: cannot truncate %s", disk.path, path.name)
            return len(buf), found.frames
        return found.torn_at, found.frames
    return len(buf), found.frames


def _only_consumed(frames: list[tuple[int, Frame]], end: int, consumed: int) -> bool:
    """A damaged region followed by a record at or below the watermark held only consumed data."""
    following = next((frame.seq for offset, frame in frames if offset >= end), None)
    return following is not None and following <= consumed


def _repair(
    disk: SpoolDir,
    out: Recovered,
    path: Path,
    buf: bytes,
    frames: list[tuple[int, Frame]],
    damaged: list[tuple[int, int]],
) -> tuple[int, list[tuple[int, Frame]]]:
    """Quarantine damaged regions, count them, and rewrite the segment with intact frames only.

    Order matters: bytes are copied aside first (nothing is ever destroyed unseen), the count is
    made durable next, and only then is the segment replaced.
    """
    logger.error("spool %s: %s has %d damaged region(s); setting aside", disk.path, path.name, len(damaged))
    counted = msgspec.structs.replace(out.state, corrupt_records=out.state.corrupt_records + len(damaged))
    try:
        disk.quarantine_dir().mkdir(exist_ok=True)
        for start, end in damaged:
            name = f"{disk.stamp()}-{path.name}-{start}-{end}.bad"
            disk.write_file(disk.quarantine_dir() / name, buf[start:end])
        fsync_dir(disk.quarantine_dir())
        disk.save_state(counted)
        out.state = counted
    except OSError:
        logger.exception("spool %s: cannot set aside damage in %s; skipping it", disk.path, path.name)
        out.state = counted  # counted in memory; the bytes stay and are counted again next open
        return len(buf), frames
    kept: list[tuple[int, Frame]] = []
    offset = 0
    for _, frame in frames:
        kept.append((offset, frame))
        offset += frame.size
    tmp = path.with_name(path.name + ".tmp")
    try:
        disk.write_file(tmp, b"".join(buf[o : o + f.size] for o, f in frames))
        os.replace(tmp, path)
    except OSError:
        logger.exception("spool %s: cannot rewrite %s; skipping damage in place", disk.path, path.name)
        return len(buf), frames
    disk.fsync_logged()
    return offset, kept
