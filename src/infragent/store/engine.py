"""Engine creation: the SQLite and PostgreSQL settings that make one schema behave alike.

Why ``BEGIN IMMEDIATE`` on SQLite: a claim reads then writes; a deferred transaction would let two
claimers read the same free row before either writes. Taking the write lock up front serializes
them, which is what ``FOR UPDATE SKIP LOCKED`` gives us on PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event


def normalize_url(url: str) -> str:
    """Accept the URLs users write (``postgresql://``, ``postgres://``) and pick the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def create_engine(url: str, *, pool_size: int = 10, pre_ping: bool = True) -> sa.Engine:
    """``pre_ping`` checks each PostgreSQL connection before use (one round trip): right for the API,
    wasteful on the ingest workers' hot path (server/ingest/pool.py)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _sqlite_setup(engine)
        return engine
    return sa.create_engine(url, pool_size=pool_size, max_overflow=20, pool_pre_ping=pre_ping)


def _sqlite_setup(engine: sa.Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        # Only takes effect in a new, empty file: lets compaction hand freed pages back to the
        # file system (store/metrics/compaction.py) instead of keeping them for reuse.
        cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # Reads take no write lock; every write transaction takes it at once.
        readonly = conn.get_execution_options().get("infragent_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")
