"""The spool's directory on disk: ownership lock, atomic state file, segments' names, quarantine.

Why one object for the file operations: every write goes through one injectable ``Writer``
(``os.write``'s shape) so tests can make the disk "full" at any step, and every rename or unlink is
followed by an fsync of the directory, without which a crash could undo it.

Directory layout (one owning process at a time)::

    lock              flock(LOCK_EX) held while open; holds the owner's pid for the error message
    state.json        {"format", "consumed_seq", "dropped_records", "dropped_points", "corrupt_records"}
                      replaced atomically: write state.json.tmp, fsync, os.replace, fsync the directory
    seg-<20 digits>.spool    append-only segment files (``frames.py``); a higher id holds newer records
    quarantine/       bytes set aside because they failed validation, named <UTC time>-<source>.bad
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final, NamedTuple

import msgspec

from infragent.agent.spool.model import SpoolLockedError

logger = logging.getLogger(__name__)

SEGMENT_NAME: Final = re.compile(r"seg-(\d{20})\.spool")
STATE: Final = "state.json"
LOCK: Final = "lock"
QUARANTINE: Final = "quarantine"
_FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})

Writer = Callable[[int, bytes], int]
"""The file-write seam (``os.write``'s shape); tests inject one that fails with ENOSPC."""

_Count = Annotated[int, msgspec.Meta(ge=0)]


class SpoolState(msgspec.Struct, frozen=True):
    """``state.json``: the consumed watermark and the exact loss counters."""

    format: _Count = 1
    consumed_seq: _Count = 0
    dropped_records: _Count = 0
    dropped_points: _Count = 0
    corrupt_records: _Count = 0


class Entry(NamedTuple):
    """A pending record: where to read it, and what it counts for (kept in memory, ~100 B each)."""

    seq: int
    segment: int
    offset: int
    size: int
    points: int


@dataclass(slots=True)
class Segment:
    """One segment file; only the newest is open for appending."""

    id: int
    path: Path
    size: int
    last_seq: int
    fd: int | None = None  # open for appending: only the active (newest) segment
    poisoned: bool = False  # a failed write could not be rolled back: append elsewhere

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def fsync_dir(path: Path) -> None:
    """Make a create, rename or unlink in ``path`` durable, not only the file contents."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_full(exc: OSError) -> bool:
    return exc.errno in _FULL_ERRNOS


class SpoolDir:
    """File operations of one spool directory, all writing through ``writer``."""

    def __init__(self, path: Path, writer: Writer, clock: Callable[[], float]) -> None:
        self.path = path
        self._write = writer
        self._clock = clock

    def lock(self) -> int:
        """Take the directory's ``flock`` (raises ``SpoolLockedError``); returns the descriptor,
        whose closing releases it."""
        fd = os.open(self.path / LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise SpoolLockedError(self.path, holder) from None
        with contextlib.suppress(OSError):  # the pid is only informational
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def write_all(self, fd: int, data: bytes) -> None:
        while data:
            written = self._write(fd, data)
            data = data[written:]

    def write_file(self, path: Path, data: bytes) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            self.write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def load_state(self) -> SpoolState:
        """``state.json``, or a fresh state if it is missing; an unreadable one is quarantined."""
        path = self.path / STATE
        try:
            return msgspec.json.decode(path.read_bytes(), type=SpoolState)
        except FileNotFoundError:
            return SpoolState()
        except (msgspec.DecodeError, OSError):
            logger.exception("spool %s: unreadable %s; re-delivering everything held", self.path, STATE)
            with contextlib.suppress(OSError):
                self.quarantine_dir().mkdir(exist_ok=True)
                os.replace(path, self.quarantine_dir() / f"{self.stamp()}-{STATE}.bad")
            return SpoolState()

    def save_state(self, state: SpoolState) -> None:
        """Replace state.json atomically; on return the new state is durable (raises if not)."""
        path = self.path / STATE
        tmp = self.path / (STATE + ".tmp")
        try:
            self.write_file(tmp, msgspec.json.encode(state))
            os.replace(tmp, path)
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self.fsync_logged()

    def unlink(self, path: Path) -> bool:
        try:
            path.unlink()
        except OSError:
            logger.exception("spool %s: cannot remove %s", self.path, path.name)
            return False
        return True

    def fsync_logged(self) -> None:
        """After a rename or unlink that already happened: failing here must not undo bookkeeping."""
        try:
            fsync_dir(self.path)
        except OSError:
            logger.exception("spool %s: cannot fsync the directory", self.path)

    def segment_path(self, seg_id: int) -> Path:
        return self.path / f"seg-{seg_id:020d}.spool"

    def quarantine_dir(self) -> Path:
        return self.path / QUARANTINE

    def stamp(self) -> str:
        return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock()))
