"""The stream's resumable cursor (an event's ``id:``) and the events themselves.

A cursor is ``t<timeline id>.a<audit id>.h<milliseconds>``: the last incident-timeline row and the
last audit entry the client has been sent, and the server time (ms) of the last host check it
was sent the outcome of. The browser hands it back as ``Last-Event-ID`` when it reconnects and the
stream sends everything after it first (``hub.py``). Plain text and not signed: it only names
positions in the client's own tenant, and every read is scoped by tenant anyway.

Why the host part is a time and not an id: a host's online state is derived from its newest
sample and the clock, with no row per change to point at. A resumed stream re-sends the current
state of every host whose state may have changed since that time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

_CURSOR = re.compile(r"t(\d{1,18})\.a(\d{1,18})\.h(\d{1,15})")

EventName = Literal["incident", "command", "notification", "run", "host", "metrics", "reset", "ready"]


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """Positions in a tenant's tails; ``encode``/``decode`` are each other's inverse."""

    timeline: int = 0
    audit: int = 0
    hosts_ms: int = 0

    def encode(self) -> str:
        return f"t{self.timeline}.a{self.audit}.h{self.hosts_ms}"

    @staticmethod
    def decode(text: str | None) -> Cursor | None:
        """The cursor, or None for a missing or malformed one (the stream then starts from now)."""
        if not text:
            return None
        found = _CURSOR.fullmatch(text.strip())
        if found is None:
            return None
        return Cursor(int(found[1]), int(found[2]), int(found[3]))

    def ahead_of(self, other: Cursor) -> bool:
        """Whether any tail position is past ``other``'s (a cursor from another server or database)."""
        return self.timeline > other.timeline or self.audit > other.audit

    def max(self, other: Cursor) -> Cursor:
        return Cursor(
            max(self.timeline, other.timeline),
            max(self.audit, other.audit),
            max(self.hosts_ms, other.hosts_ms),
        )


@dataclass(frozen=True, slots=True)
class Event:
    """One message of the stream. ``cursor`` is its ``id:`` (None for metrics: not resumable).

    ``tail``/``seq`` say which tail position the event stands for (``"t"`` timeline id, ``"a"``
    audit id), so a subscriber resumed ahead of the feed skips what it already had.
    """

    name: EventName
    data: dict[str, Any]
    cursor: Cursor | None = None
    tail: Literal["t", "a", ""] = ""
    seq: int = 0
    #: tenant-wide, or only for the subscribers of one host (metrics)
    host: str | None = field(default=None, compare=False)
    #: tenant-wide (None), or only for these owners (``user:<id>``): an in-app notification is told
    #: only to the users it was written for
    owners: frozenset[str] | None = field(default=None, compare=False)

    @property
    def id(self) -> str | None:
        return None if self.cursor is None else self.cursor.encode()

    def for_owner(self, owner: str) -> bool:
        """Whether a stream held by ``owner`` (``user:<id>``/``key:<id>``) may be sent this event."""
        return self.owners is None or owner in self.owners

    def seen_by(self, floor: Cursor) -> bool:
        """Whether a client whose cursor is ``floor`` already had this event."""
        if self.tail == "t":
            return self.seq <= floor.timeline
        if self.tail == "a":
            return self.seq <= floor.audit
        return False
