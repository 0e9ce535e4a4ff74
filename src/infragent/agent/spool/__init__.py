"""Durable disk spool of the host agent: nothing accepted is lost.

Why it exists: every metric batch is written here before it is sent and leaves only when the
server has acknowledged it, so a server outage, an agent restart or a SIGKILL at any moment loses
nothing that ``append()`` returned for. Delivery is at-least-once: a crash between "the server
acknowledged" and "the ack is on disk" sends the batch again; the server dedupes by ``batch_id``.

    frames.py     the record frame: encode, validate, scan (pure; fuzzable alone)
    disk.py       the directory: lock, atomic state.json, segment names, quarantine, the write seam
    recovery.py   open: rebuild pending records from the segments, set damage aside
    fifo.py       ``Spool``: append, peek, ack, drop the oldest past ``max_bytes``
    model.py      ``Record``, ``SpoolStats`` and the errors
    deadletter.py ``DeadLetters``: what the server refused as malformed, kept in a JSON-lines file
"""

from __future__ import annotations

from infragent.agent.spool.deadletter import DeadLetter, DeadLetters
from infragent.agent.spool.disk import Writer
from infragent.agent.spool.fifo import MiB, Spool
from infragent.agent.spool.frames import FORMAT_VERSION, HEADER_SIZE, MAGIC, encode_frame
from infragent.agent.spool.model import (
    Record,
    RecordTooLargeError,
    SpoolError,
    SpoolFullError,
    SpoolLockedError,
    SpoolStats,
)

__all__ = [
    "FORMAT_VERSION",
    "HEADER_SIZE",
    "MAGIC",
    "DeadLetter",
    "DeadLetters",
    "MiB",
    "Record",
    "RecordTooLargeError",
    "Spool",
    "SpoolError",
    "SpoolFullError",
    "SpoolLockedError",
    "SpoolStats",
    "Writer",
    "encode_frame",
]
