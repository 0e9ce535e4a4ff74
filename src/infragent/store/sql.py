"""SqlStore: the engine and its transactions, the one implementation of ``store.base.Database``.

Why so little: what the store knows lives in one module per aggregate (``tenants``, ``agents``,
``events``, ``claims``, ``commands``, ``audit``), as functions over the ``Connection`` this class
opens, so a use case composes them in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import sqlalchemy as sa

from infragent.errors import StoreError


class SqlStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"
        self.closed = False
        sa.event.listen(engine, "checkin", self._closed_checkin)

    def _closed_checkin(self, dbapi_connection: Any, _record: Any) -> None:
        """A connection handed back after ``close`` (by a thread that outlived the store's owner)
        is closed, not pooled. Why: ``dispose`` leaves checked-out connections alone, and one
        returned to the dropped pool later is only closed when the garbage collector finds it,
        in whatever code runs then (psycopg warns "connection deleted while still open")."""
        if self.closed and dbapi_connection is not None:
            with suppress(Exception):  # closing a connection nobody will use again
                dbapi_connection.close()

    def close(self) -> None:
        """Close the pool's connections; later transactions are refused (``StoreError``).

        Why refused: SQLAlchemy would quietly open a new pool for a late writer (a shutdown flush
        that runs after the store's owner closed it), whose connection nobody would ever close."""
        self.closed = True
        self.engine.dispose()

    def _open(self) -> None:
        if self.closed:
            raise StoreError("the store is closed")

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        self._open()
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        self._open()
        with self.engine.connect().execution_options(infragent_readonly=True) as conn:
            yield conn

    def ping(self) -> None:
        with self.read() as conn:
            conn.execute(sa.text("SELECT 1"))


def open_store(url: str) -> SqlStore:
    """Create the engine for ``url`` and bring its schema to the latest migration."""
    from infragent.store.engine import create_engine
    from infragent.store.migrate import upgrade

    engine = create_engine(url)
    upgrade(engine)
    return SqlStore(engine)
