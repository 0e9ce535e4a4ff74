"""The dead-letter file: what the server refused as malformed, kept on disk for an operator.

Why a file and not a delete: a 400/413/422 says the batch itself is wrong, so resending it can never
succeed and would block every batch behind it; but the bytes are evidence (an agent bug, a server
that tightened its validation) and may be replayed by hand once the cause is fixed. So the batch
leaves the spool and lands here, and ``agent_points_dead_lettered_total`` counts it.

Format: JSON lines, one refused batch or event per line, readable with ``jq``::

    {"at": 1700000000.5, "kind": "metrics", "id": "<batch_id>", "points": 72, "status": 400,
     "reason": "HTTP 400: series[0]: a value is NaN", "payload": "<base64 of the bytes sent>"}

A metrics payload is the gzip'd wire batch exactly as it was POSTed (``infragent.wire.decode_batch``
reads it); an event's is its JSON body. Each line is fdatasync'ed before the spool lets the batch go,
so a crash loses neither. The file is bounded: past ``max_bytes`` it is renamed to ``.1`` (replacing
the previous ``.1``) and a new one begun, so at most twice ``max_bytes`` is kept — like logrotate with
one generation. Refusals of this kind are rare (a bug somewhere), so the bound is seldom reached.
"""

from __future__ import annotations

import base64
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec

from infragent.agent.spool.disk import Writer, fsync_dir, is_full
from infragent.agent.spool.model import SpoolFullError

logger = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 16 * 1024 * 1024
FILE_NAME = "dead-letter.jsonl"


class DeadLetter(msgspec.Struct, frozen=True):
    """One line of the file; ``payload`` is base64 of the exact bytes the server refused."""

    at: float
    kind: str  # "metrics" or "event"
    id: str  # the batch id, or "type/service" of an event
    points: int
    status: int
    reason: str
    payload: str

    def raw(self) -> bytes:
        return base64.b64decode(self.payload)


class DeadLetters:
    """Appends refused items to ``path`` (JSON lines), fsynced, bounded by one rollover."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = DEFAULT_MAX_BYTES,
        *,
        writer: Writer = os.write,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.previous = self.path.with_name(self.path.name + ".1")
        self._max_bytes = max_bytes
        self._write = writer
        self._clock = clock
        self._lock = threading.Lock()

    def add(self, kind: str, item_id: str, points: int, payload: bytes, status: int, reason: str) -> None:
        """Append one refused item durably; raises ``SpoolFullError`` on a full disk (nothing kept).

        The caller lets the item go (acks the spool) only after this returned.
        """
        entry = DeadLetter(
            self._clock(), kind, item_id, points, status, reason, base64.b64encode(payload).decode()
        )
        line = msgspec.json.encode(entry) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._roll_over_if_needed(len(line))
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            try:
                offset = os.fstat(fd).st_size
                try:
                    data = line
                    while data:
                        data = data[self._write(fd, data) :]
                    os.fdatasync(fd)
                except OSError as exc:
                    try:
                        os.ftruncate(fd, offset)  # no torn line left for a reader
                    except OSError:
                        logger.exception("dead letters: cannot roll back %s", self.path)
                    if is_full(exc):
                        raise SpoolFullError(self.path.parent, "dead-letter") from exc
                    raise
            finally:
                os.close(fd)

    def entries(self) -> Iterator[DeadLetter]:
        """Every entry kept, oldest first (the rolled-over file, then the current one)."""
        for path in (self.previous, self.path):
            try:
                lines = path.read_bytes().splitlines()
            except FileNotFoundError:
                continue
            for line in lines:
                try:
                    yield msgspec.json.decode(line, type=DeadLetter)
                except msgspec.DecodeError:
                    logger.warning("dead letters: unreadable line in %s skipped", path)

    def _roll_over_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size and size + incoming > self._max_bytes:
            os.replace(self.path, self.previous)
            fsync_dir(self.path.parent)
            logger.warning("dead letters: %s rolled over to %s", self.path, self.previous.name)
