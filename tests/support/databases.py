"""Database URLs for tests (SQLite in a temp dir, PostgreSQL in a fresh schema per test), and the
store calls tests make, each one transaction around one aggregate function.

Why a schema per test: isolation without the cost of CREATE DATABASE; the schema is set through
``search_path`` in the connection options, so every connection of the engine lands in it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from infragent.auth.registration import register_client
from infragent.model import Event
from infragent.store import agents, audit, events
from infragent.store.base import Database
from infragent.store.records import AgentRecord, AuditRecord, EventDetail, Registration

PG_DSN = os.environ.get("INFRAGENT_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'infragent.db'}"


@contextmanager
def pg_schema_url() -> Iterator[str]:
    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_DSN else "?"
    try:
        yield f"{PG_DSN}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# -- one transaction each: what tests do to a store, over the aggregate functions ---------------------


def create_client(
    store: Database, email: str, company_name: str, webhook_url: str, now: float, **kw: Any
) -> Registration:
    return register_client(store, email, company_name, webhook_url, now, **kw)


def register_agent(store: Database, client_id: str, node_id: str, **kw: Any) -> AgentRecord:
    with store.write() as conn:
        return agents.register_agent(conn, client_id, node_id, **kw)


def get_agent(store: Database, client_id: str, node_id: str) -> AgentRecord | None:
    with store.read() as conn:
        return agents.get_agent(conn, client_id, node_id)


def insert_event(store: Database, client_id: str, **kw: Any) -> Event:
    with store.write() as conn:
        return events.insert_event(conn, client_id, **kw)


def list_events(store: Database, client_id: str, status: str | None = None) -> list[Event]:
    with store.read() as conn:
        return events.list_events(conn, client_id, status)


def get_event_detail(store: Database, client_id: str, event_id: str) -> EventDetail | None:
    with store.read() as conn:
        return events.get_event_detail(conn, client_id, event_id)


def pending_count(store: Database) -> int:
    with store.read() as conn:
        return events.pending_count(conn)


def audit_entries(store: Database, client_id: str) -> list[AuditRecord]:
    with store.read() as conn:
        return audit.entries(conn, client_id)
