"""The store's port: what callers hold to reach the database, as a Protocol.

Why functions over a ``Connection`` plus this one port, and not one class per aggregate: each
aggregate module (``tenants``, ``agents``, ``events``, ``claims``, ``commands``, ``audit``) is a set
of functions that take the caller's ``sa.Connection``, so one use case can touch several aggregates
in one transaction (a decision writes the decision, its command, its events and the audit chain
atomically). The caller opens the transaction through a ``Database``; ``SqlStore`` is the one
implementation, tests and background jobs may hold any other.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

import sqlalchemy as sa


class Database(Protocol):
    """An engine and its transactions; SQLite and PostgreSQL differences stay behind it."""

    engine: sa.Engine
    is_postgres: bool

    def read(self) -> AbstractContextManager[sa.Connection]:
        """A connection for reads only (on SQLite it takes no write lock)."""
        ...

    def write(self) -> AbstractContextManager[sa.Connection]:
        """A write transaction, committed on leaving the block, rolled back on an exception."""
        ...

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        ...

    def close(self) -> None: ...
