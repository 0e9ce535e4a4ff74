"""Test helper: the two ingest modes the API tests run in (server/ingest_pool.py)."""

from __future__ import annotations

import pytest

from infragent.store.sql import SqlStore

MODES = ["in-process", "workers"]


def ingest_workers(request: pytest.FixtureRequest, store: SqlStore) -> int:
    """``ingest_processes`` for a fixture parametrized over ``MODES``: 0 in-process, 2 worker
    processes on PostgreSQL (a SQLite run of the "workers" mode is skipped: it would not use them)."""
    if request.param != "workers":
        return 0
    if store.engine.dialect.name != "postgresql":
        pytest.skip("ingest workers are used on PostgreSQL only")
    return 2
