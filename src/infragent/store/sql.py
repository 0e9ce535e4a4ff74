"""SqlStore: the engine and its transactions, the one implementation of ``store.base.Database``.

Why so little: what the store knows lives in one module per aggregate (``tenants``, ``agents``,
``events``, ``claims``, ``commands``, ``audit``), as functions over the ``Connection`` this class
opens, so a use case composes them in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa


class SqlStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.is_postgres = engine.dialect.name == "postgresql"

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
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
