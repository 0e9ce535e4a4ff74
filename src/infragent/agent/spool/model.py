"""What the spool hands out (``Record``, ``SpoolStats``) and the errors it raises."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infragent.errors import InfrAgentError


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
    """The spool's figures at one instant, for ``/metrics`` and the agent's own series."""

    current_bytes: int
    max_bytes: int
    usage_percent: float
    records: int
    points_pending: int
    dropped_records: int
    dropped_points: int
    corrupt_records: int
