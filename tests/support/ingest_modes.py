"""Test helpers: the two ingest modes the API tests run in (``server/ingest/pool.py``), and real
storage that fails the two ways ingest must answer 503 to (``server/errors.py``)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from infragent.store.metrics import SqlMetricStore
from infragent.store.sql import SqlStore

MODES = ["in-process", "workers"]
#: Seconds the exhausted pool waits for its one connection before SQLAlchemy's ``TimeoutError``.
POOL_TIMEOUT_S = 0.2


def ingest_workers(request: pytest.FixtureRequest, store: SqlStore) -> int:
    """``ingest_processes`` for a fixture parametrized over ``MODES``: 0 in-process, 2 worker
    processes on PostgreSQL (a SQLite run of the "workers" mode is skipped: it would not use them)."""
    if request.param != "workers":
        return 0
    if store.engine.dialect.name != "postgresql":
        pytest.skip("ingest workers are used on PostgreSQL only")
    return 2


@contextmanager
def refusing_postgres() -> Iterator[SqlMetricStore]:
    """A metric store whose PostgreSQL refuses every connection: storage down.

    The URL's port is bound (not listening) for as long as the store is used, so a connection is
    refused at once (``OperationalError``) and no other process can start listening on that port.
    """
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        engine = sa.create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/infragent")
        try:
            yield SqlMetricStore(engine)
        finally:
            engine.dispose()


@contextmanager
def exhausted_pool(store: SqlStore) -> Iterator[SqlMetricStore]:
    """A metric store over a real engine on ``store``'s database with one connection, held here:
    every checkout waits ``POOL_TIMEOUT_S`` and fails with SQLAlchemy's pool ``TimeoutError``."""
    url = store.engine.url.render_as_string(hide_password=False)
    engine = sa.create_engine(url, pool_size=1, max_overflow=0, pool_timeout=POOL_TIMEOUT_S)
    try:
        metrics = SqlMetricStore(engine)
        with engine.connect():
            yield metrics
    finally:
        engine.dispose()
