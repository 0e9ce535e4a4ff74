"""A connection handed back after the store was closed is closed at once, not left to the garbage
collector (which made psycopg warn in whichever test ran next: a CI failure of no test's own)."""

from __future__ import annotations

import gc

import pytest

from infragent.store.sql import open_store


def test_a_connection_returned_after_close_is_closed_not_pooled(db_url: str) -> None:
    store = open_store(db_url)
    late = store.engine.connect()  # a thread that outlives the store's owner holds one
    raw = late.connection.dbapi_connection
    store.close()
    late.close()
    del late
    gc.collect()  # filterwarnings=error: an unclosed psycopg connection found here would fail the test
    assert raw is not None
    with pytest.raises(Exception, match="closed"):  # psycopg: OperationalError; sqlite3: ProgrammingError
        raw.cursor().execute("SELECT 1")
