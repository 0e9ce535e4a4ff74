"""Fixtures of the pipeline tests: a tenant on the test's store (both databases, the ``store``
fixture), and a PostgreSQL-only store for the tests of concurrent claims."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infragent.store.records import Registration
from infragent.store.sql import SqlStore, open_store
from support.databases import create_client, pg_schema_url


@pytest.fixture
def tenant(client_reg: Registration) -> str:
    return client_reg.client.id


@pytest.fixture
def pg_url() -> Iterator[str]:
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[SqlStore]:
    s = open_store(pg_url)
    yield s
    s.close()


@pytest.fixture
def pg_tenant(pg_store: SqlStore) -> str:
    return create_client(pg_store, "pg@example.com", "Acme", "http://127.0.0.1:9/hook", now=1000.0).client.id
