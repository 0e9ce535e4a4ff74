"""Database URLs for tests: SQLite in a temp dir, PostgreSQL in a fresh schema per test.

Why a schema per test: isolation without the cost of CREATE DATABASE; the schema is set through
``search_path`` in the connection options, so every connection of the engine lands in it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

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
